"""bench export: every shipped method's embedding model as ONNX gives PyTorch's embeddings
(within 1e-4, in onnxruntime, at another batch size than it was exported with)."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from bench.config import Defaults
from bench.engine.cost import dummy_batch
from bench.engine.export import export
from bench.registry import METHODS

pytestmark = pytest.mark.slow  # torch.export and ONNX translation: several seconds a method

#: a small ResNet (two blocks in stage 2, where IAUnet's block sits before the last one)
SECTIONS = Defaults.model_validate(
    {
        "model": {"backbone": "resnet18", "kwargs": {"layers": [1, 2, 1, 1]}},
        "data": {"height": 64, "width": 32, "seq_len": 2},
    }
)


def built(name: str):
    torch.manual_seed(0)
    cls = METHODS.get(name)
    config = cls.Config()
    method = cls(config, SECTIONS.model, SECTIONS.data, num_classes=5).eval()
    for module in method.modules():  # BatchNorm statistics away from their initial values
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return method, cls.aux_inputs(config)


@pytest.mark.parametrize("name", ["baseline", "iaunet", "stal", "rgsa-rgtr"])
def test_onnx_embeddings_equal_pytorchs(name, tmp_path):
    method, aux = built(name)
    path = export(method, SECTIONS, aux, "onnx", tmp_path / "m.onnx", {"method": name})
    info = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["bench"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    t = method.fixed_clip_len or SECTIONS.data.seq_len
    batch = dummy_batch(3, t, 64, 32)  # exported with 2 clips: the batch is free
    feeds = {"clips": batch["clips"].numpy()}
    if "keypoints" in aux:
        feeds["keypoints"] = batch["keypoints"].numpy()
    assert [i.name for i in session.get_inputs()] == list(feeds)
    got = dict(zip(info["outputs"], session.run(info["outputs"], feeds), strict=True))
    with torch.no_grad():
        want = method.embed(batch["clips"], {k: batch[k] for k in aux if k == "keypoints"})
    assert sorted(want) == info["outputs"] and info["method"] == name
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value.numpy(), atol=1e-4, rtol=0)
    assert info["inputs"]["clips"] == [t, 3, 64, 32]


def test_torchscript_embeddings_equal_pytorchs(tmp_path):
    method, aux = built("baseline")
    path = export(method, SECTIONS, aux, "torchscript", tmp_path / "m.pt", {"method": "baseline"})
    loaded = torch.jit.load(str(path))
    clips = dummy_batch(3, 2, 64, 32)["clips"]
    with torch.no_grad():
        (feat,) = loaded(clips)
        torch.testing.assert_close(feat, method.embed(clips, {})["feat"], atol=1e-4, rtol=0)
