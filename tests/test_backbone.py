"""The timm backbone: stages, last stride, module insertion, weights from file or hub."""

import os
import subprocess
import sys

import pytest
import timm
import torch

from bench.config import ModelConfig
from bench.errors import BenchError
from bench.models.backbone import Backbone, ClipModule


@pytest.mark.parametrize(("name", "last"), [("resnet18", 512), ("resnet50", 2048)])
def test_stages_strides_and_last_stride(name, last):
    x = torch.randn(2, 3, 3, 64, 32)
    for last_stride, size in ((1, (4, 2)), (2, (2, 1))):
        b = Backbone(ModelConfig(backbone=name, last_stride=last_stride))
        shapes = [b(x, 0, k).shape for k in range(5)]
        assert [s[-2:] for s in shapes[1:4]] == [(16, 8), (8, 4), (4, 2)]
        assert shapes[4] == (2, 3, last, *size)
        assert b.output_size(64, 32) == size


def test_running_stage_ranges_equals_the_whole():
    b = Backbone(ModelConfig(backbone="resnet18")).eval()
    x = torch.randn(1, 2, 3, 64, 32)
    assert torch.allclose(b(b(x, 0, 2), 3, 4), b(x), atol=1e-5)


class Recorder(ClipModule):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x * 2


def test_clip_module_sees_the_clip_before_the_last_block():
    b = Backbone(ModelConfig(backbone="resnet18"))
    rec = Recorder()
    b.insert_before_last_block(2, rec)
    body = list(b.stages[2].body)
    assert body[-2] is rec and type(body[-1]).__name__ == "BasicBlock"
    b(torch.randn(2, 3, 3, 64, 32))
    assert rec.shapes == [(2, 3, 128, 8, 4)]


@pytest.mark.parametrize(("stage", "channels"), [(1, 24), (2, 32), (3, 96), (4, 160)])
def test_a_module_before_the_last_block_gets_the_width_entering_it(stage, channels):
    """MobileNetV2's stage 4 ends in a block that widens 160 to 320 channels: a module before it
    sees 160 (at the stages that keep their width, the stage's own)."""
    b = Backbone(ModelConfig(backbone="mobilenetv2_100", last_stride=1, feature_head="drop"))
    assert b.last_block_channels(stage) == channels
    rec = Recorder()
    b.insert_before_last_block(stage, rec)
    assert b(torch.randn(1, 2, 3, 64, 32)).shape[2] == 320
    assert rec.shapes[0][2] == channels


def test_any_timm_cnn_with_stages():
    b = Backbone(ModelConfig(backbone="efficientnet_b0"))  # its 1x1 head conv kept
    assert b(torch.randn(1, 2, 3, 64, 32)).shape[:3] == (1, 2, 1280)
    b = Backbone(ModelConfig(backbone="efficientnet_b0", feature_head="drop"))
    assert b(torch.randn(1, 2, 3, 64, 32)).shape[:3] == (1, 2, 320)


def test_local_weight_file_is_loaded(tmp_path):
    reference = timm.create_model("resnet18", num_classes=0)
    with torch.no_grad():
        reference.conv1.weight.fill_(0.25)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    b = Backbone(ModelConfig(backbone="resnet18", weights=str(path)))
    conv1 = next(m for m in b.stages[0].body if isinstance(m, torch.nn.Conv2d))
    assert torch.all(conv1.weight == 0.25)
    with pytest.raises(BenchError, match="no such file"):
        Backbone(ModelConfig(backbone="resnet18", weights=str(tmp_path / "missing.pth")))


def test_pretrained_without_network_fails_with_a_clear_message():
    code = (
        "from bench.config import ModelConfig\nfrom bench.models.backbone import Backbone\n"
        "Backbone(ModelConfig(backbone='resnet18', pretrained=True))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "could not load pretrained weights for 'resnet18'" in out.stderr
    assert "model.weights" in out.stderr


def test_unknown_backbone():
    with pytest.raises(BenchError, match="unknown timm backbone 'resnet7'"):
        Backbone(ModelConfig(backbone="resnet7"))
