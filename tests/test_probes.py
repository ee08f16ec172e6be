"""The probes: each method's on a hand-built model whose answer is known, the probe kit, the
probe clips and their run on the test split (skipped, with a reason, without exact truth)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bench.config import DataConfig, EvalConfig, ModelConfig
from bench.data.build import prepared
from bench.data.probe_clips import probe_sample, probe_window
from bench.engine import probes as engine_probes
from bench.engine.probes import NO_TRUTH, run_probes
from bench.models.part_boxes import part_visibility
from bench.models.probes import (
    ProbeBatch,
    nearest_clean,
    rank_correlation,
    region_share,
    relative_change,
    soft_iou,
)
from bench.registry import METHODS, method_config
from methods.iaunet import STIAU, IAUnet, IAUnetConfig, part_mask_targets
from methods.rgsa_rgtr import RGSARGTR, RGSARGTRConfig
from methods.stal import STAL, STALConfig

H, W = 64, 32
TINY = dict(train_ids=4, test_ids=4, distractors=1, cameras=3, min_len=4, max_len=6)
NUISANCES = dict(occlusion_rate=0.8, misdetection_rate=0.3)  # a sample with many of them
NARROW = {"channels": [8, 16, 32, 64]}  # a narrow ResNet-18: fast


def probe_batch(clips=None, masks=None, misdetected=None, occluded=None, b=2, t=3):
    """A ProbeBatch of ``b`` clips of ``t`` frames (random pixels unless given)."""
    clips = torch.randn(b, t, 3, H, W) if clips is None else clips
    masks = torch.zeros(b, t, H, W, dtype=torch.long) if masks is None else masks
    misdetected = torch.zeros(b, t, dtype=torch.bool) if misdetected is None else misdetected
    occluded = torch.zeros(b, t, 14, dtype=torch.bool) if occluded is None else occluded
    keypoints = torch.cat([torch.rand(b, t, 14, 2) * 30, torch.ones(b, t, 14, 1)], -1)
    return ProbeBatch(clips, {"keypoints": keypoints}, masks, keypoints, misdetected, occluded)


def bands(b: int, t: int) -> torch.Tensor:
    """Part masks of four horizontal bands of H / 4 rows: head, upper, lower body, shoes."""
    rows = torch.arange(H) // (H // 4) + 1
    return rows[:, None].expand(H, W).expand(b, t, H, W).clone()


@pytest.fixture(autouse=True)
def no_grad():
    """Probes run without gradients, as the engine calls them."""
    with torch.no_grad():
        yield


# --- the probe kit ----------------------------------------------------------------------


def test_rank_correlation_ties_and_undefined_cases():
    x = torch.tensor([0.1, 0.2, 0.2, 0.9])
    assert rank_correlation(x, torch.tensor([1.0, 2.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert rank_correlation(x, -x) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(x, torch.ones(4)))
    assert math.isnan(rank_correlation(x[:2], x[:2]))


def test_soft_iou_region_share_and_relative_change():
    target = torch.tensor([[0.0, 1.0], [1.0, 0.5]])
    lo, hi = soft_iou(target, target)
    assert lo == hi == 2.5
    lo, hi = soft_iou(torch.full((2, 2), 0.5), target)
    assert lo / hi == pytest.approx(1.5 / 3.0)
    region = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert float(region_share(region, region)) == 1.0
    assert float(region_share(torch.ones(4) * 7, region)) == 0.5
    a = torch.tensor([[3.0, 4.0]])
    assert float(relative_change(a, 2 * a)) == 1.0 and float(relative_change(a, a)) == 0.0


def test_nearest_clean_frame_prefers_the_earlier_on_ties():
    bad = torch.tensor([[False, True, True, False], [False, True, False, False]])
    assert nearest_clean(bad).tolist() == [[0, 0, 3, 3], [0, 0, 2, 3]]


def test_part_visibility_counts_a_part_s_free_joints():
    occluded = torch.zeros(2, 14, dtype=torch.bool)
    occluded[0, [0, 1]] = True  # head top and neck
    vis = part_visibility(occluded, torch.tensor([False, True]))
    # head (joints 1, 2, 3, 6): 2 of 4 covered; torso (2, 3, 6, 9, 12): the neck of 5
    assert vis[0].tolist() == pytest.approx([0.5, 0.8, 1, 1, 1, 1])
    assert vis[1].tolist() == [0] * 6  # a misdetected frame shows no part of the person


# --- the probe clips ------------------------------------------------------------------


def test_probe_window_takes_the_most_nuisance_and_keeps_a_clean_frame():
    flags = np.array([0, 1, 1, 1, 1, 0, 0, 1], bool)
    assert probe_window(flags, 3) == [0, 1, 2]  # [1, 2, 3] would have no clean frame
    assert probe_window(flags, 4) == [0, 1, 2, 3]
    assert probe_window(np.ones(5, bool), 3) == [0, 1, 2]  # no clean frame anywhere
    assert probe_window(np.array([0, 1], bool), 4) == [0, 1, 0, 1]  # short: cyclic


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A tiny synthetic-video dataset with many nuisances, as the cells load it."""
    options = {"root": str(tmp_path_factory.mktemp("syn")), **TINY, **NUISANCES}
    return prepared("synthetic-video", options, None)


def test_probe_sample_puts_tracklets_with_nuisances_first_up_to_half(synthetic):
    tracks = synthetic.load_split(0).gallery
    sample = probe_sample(tracks, 6)
    flagged = [bool(r.misdetected.any() or r.occluded.any()) for _, r in sample]
    assert len(sample) == 6 and flagged[:3] == [True] * 3
    assert probe_sample(tracks, 6) == sample  # the same for every method and seed
    everything = [t for t, _ in probe_sample(tracks, 100)]
    assert len(everything) == len(tracks) and set(everything) == set(tracks)


# --- STAL --------------------------------------------------------------------------------


class FixedScores(nn.Module):
    """A hand-built STAN: the given unit scores (B, T, R), whatever the frames."""

    def __init__(self, scores: torch.Tensor):
        super().__init__()
        self.scores = scores

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.scores


def stal(**fields) -> STAL:
    torch.manual_seed(0)
    data = DataConfig(height=H, width=W, seq_len=3, p=2, k=2)
    model = ModelConfig(backbone="resnet18", kwargs=NARROW)
    return STAL(STALConfig(local_dim=16, **fields), model, data, num_classes=4).eval()


def test_stal_probe_ranks_scores_against_exact_visibility():
    occluded = torch.zeros(2, 3, 14, dtype=torch.bool)
    occluded[0, 1, [8, 9, 10]] = True  # the left leg of clip 0, frame 1
    occluded[1, 2, [0, 1, 2]] = True
    misdetected = torch.tensor([[False, False, True], [False, False, False]])
    batch = probe_batch(misdetected=misdetected, occluded=occluded)
    visible = part_visibility(occluded, misdetected)
    model = stal()
    for scores, expected in ((0.05 + 0.9 * visible, 1.0), (1 - visible, -1.0)):
        model.stan = FixedScores(scores)
        found = model.probes([batch])
        assert found == {"stal.visibility_rank_corr": pytest.approx(expected)}
    model.stan = FixedScores(torch.full_like(visible, 0.5))
    assert math.isnan(model.probes([batch])["stal.visibility_rank_corr"])
    assert stal(train_branches="global", test_branches="global").probes([batch]) == {}


# --- IAUnet ------------------------------------------------------------------------------


def iaunet(**fields) -> IAUnet:
    torch.manual_seed(0)
    data = DataConfig(height=H, width=W, seq_len=3)
    model = ModelConfig(backbone="resnet18", kwargs=NARROW)
    config = IAUnetConfig(**{"blocks": "stiau", **fields})
    return IAUnet(config, model, data, num_classes=4).eval()


class FixedDivision(nn.Module):
    """A hand-built part division: the real one's parts under the given attention logits."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        area = x.shape[-2] * x.shape[-1]
        parts = torch.einsum("btnhw,btdhw->btnd", self.logits.sigmoid(), x) / area
        return parts, self.logits


def only(model: IAUnet) -> STIAU:
    (stiau,) = [m for m in model.modules() if isinstance(m, STIAU)]
    return stiau


def test_iaunet_part_iou_is_one_for_attention_that_is_the_mask():
    batch = probe_batch(masks=bands(2, 3))
    stripes = iaunet(part_division="stripes").probes([batch])
    assert stripes["iaunet.part_iou"] == pytest.approx(1.0)  # the bands are the stripes
    empty = iaunet(part_division="stripes").probes([probe_batch()])
    assert empty["iaunet.part_iou"] == 0.0  # no person: no overlap
    model = iaunet()
    (_, maps), *_ = model.stiau_states(batch.clips)
    target = part_mask_targets(batch.masks, maps.shape[-2:])
    assert set(target.unique().tolist()) == {0.0, 1.0}  # the bands fill whole cells
    only(model).divide = FixedDivision(40 * (2 * target - 1))
    assert model.probes([batch])["iaunet.part_iou"] == pytest.approx(1.0, abs=1e-6)
    only(model).divide = FixedDivision(torch.zeros_like(target))  # A = 0.5 everywhere
    expected = 0.5 * target.sum() / (0.5 * (1 - target).sum() + target.sum())
    assert model.probes([batch])["iaunet.part_iou"] == pytest.approx(float(expected))


def test_iaunet_blackout_changes_with_and_without_relations():
    batch = probe_batch(masks=bands(2, 3))
    model = iaunet()
    update = only(model).part_update
    d = update.weight.shape[0]
    with torch.no_grad():  # a hand-built update that keeps the raw parts: p^ = p
        update.weight.copy_(torch.cat([torch.eye(d), torch.zeros(d, d)], 1))
    found = model.probes([batch])
    assert found["iaunet.own_change_raw"] > 0.01
    for name in ("own_change", "other_change"):
        assert found[f"iaunet.{name}_related"] == pytest.approx(found[f"iaunet.{name}_raw"])
    with torch.no_grad():  # an update blind to the parts it relates: nothing changes
        update.weight.zero_()
    found = model.probes([batch])
    assert found["iaunet.own_change_related"] == found["iaunet.other_change_related"] == 0.0
    assert iaunet(blocks="none").probes([batch]) == {}
    assert set(found) == set(IAUnet.probe_names)


# --- RGSA-RGTR ---------------------------------------------------------------------------


def rgsa_rgtr(**fields) -> RGSARGTR:
    torch.manual_seed(0)
    data = DataConfig(height=H, width=W, seq_len=3, p=2, k=2)
    model = ModelConfig(backbone="resnet18", last_stride=1, kwargs=NARROW)
    return RGSARGTR(RGSARGTRConfig(**fields), model, data, num_classes=4).eval()


def person_in_cells(b: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks whose person fills the left column of the 4 x 2 map's middle rows (cells of 16 x
    16 pixels), and that region per cell (b * t, 8)."""
    masks = torch.zeros(b, t, H, W, dtype=torch.long)
    masks[..., 16:48, :16] = 2
    cells = torch.zeros(4, 2)
    cells[1:3, 0] = 1
    return masks, cells.flatten().expand(b * t, 8)


def test_rgsa_share_is_one_for_attention_that_is_the_mask_and_the_area_for_pooling():
    masks, region = person_in_cells(2, 3)
    batch = probe_batch(masks=masks)
    model = rgsa_rgtr()
    channels = model.backbone.out_channels
    model.rgsa.attention = lambda pos: (region[..., None] + 1e-9).expand(-1, -1, channels)
    found = model.probes([batch])
    assert found["rgsa.mask_share"] == pytest.approx(1.0) and found["rgsa.mask_area"] == 0.25
    model.rgsa.attention = lambda pos: torch.ones(len(pos), 8, channels)
    assert model.probes([batch])["rgsa.mask_share"] == pytest.approx(0.25)
    misdetected = torch.tensor([[True, False, False]] * 2)
    masks[:, 0] = 1  # misdetected frames are left out, whatever their mask
    pooled = rgsa_rgtr(spatial="avg").probes([probe_batch(masks=masks, misdetected=misdetected)])
    assert pooled["rgsa.mask_share"] == pooled["rgsa.mask_area"] == 0.25


class Scaled(nn.Module):
    """A hand-built RGTR: every frame feature times ``factor``."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.factor * f


def test_rgtr_change_and_misdetection_influence():
    misdetected = torch.tensor([[False, True, False], [False, False, False]])
    batch = probe_batch(misdetected=misdetected)
    model = rgsa_rgtr()
    model.rgtr = Scaled(2.0)
    found = model.probes([batch])
    assert found["rgtr.change_misdetected"] == pytest.approx(1.0)
    assert found["rgtr.change_clean"] == pytest.approx(1.0)
    assert found["rgtr.misdetection_influence"] > 1e-4
    model.rgtr = Scaled(1.0)
    assert model.probes([batch])["rgtr.change_clean"] == 0.0
    same = batch.clips.clone()
    same[:, 1] = same[:, 0]  # the misdetected frame shows what its nearest clean one does
    found = rgsa_rgtr().probes([probe_batch(clips=same, misdetected=misdetected)])
    assert found["rgtr.misdetection_influence"] == pytest.approx(0.0, abs=1e-6)
    control = rgsa_rgtr(spatial="avg", temporal="avg").probes([batch])
    assert "rgtr.change_clean" not in control and control["rgtr.misdetection_influence"] > 0
    assert "rgtr.change_clean" not in rgsa_rgtr().probes([probe_batch()])  # nothing to contrast


# --- on the test split --------------------------------------------------------------------


def built(name: str, **fields):
    torch.manual_seed(0)
    cls = METHODS.get(name)
    config, _ = cls.adapt_config(
        method_config(name).model_validate(fields), frozenset({"part_masks", "keypoints"})
    )
    data = DataConfig(height=H, width=W, seq_len=3, p=2, k=2)
    model = ModelConfig(backbone="resnet18", last_stride=1, kwargs=NARROW)
    return cls(config, model, data, 4), cls.aux_inputs(config), data


@pytest.mark.parametrize(
    ("name", "fields"), [("stal", {"split_stage": 2}), ("iaunet", {}), ("rgsa-rgtr", {})]
)
def test_every_declared_probe_is_measured_on_synthetic_test_data(
    synthetic, monkeypatch, name, fields
):
    monkeypatch.setattr(engine_probes, "PROBE_TRACKLETS", 6)
    method, aux, data = built(name, **fields)
    metrics, note = run_probes(method, synthetic.load_split(0), data, EvalConfig(), aux)
    assert note is None
    assert set(metrics) == {f"probe.{n}" for n in type(method).probe_names}
    assert all(math.isfinite(v) for v in metrics.values())


def test_probes_are_skipped_with_a_reason_without_exact_truth(synthetic, tmp_path, monkeypatch):
    monkeypatch.setattr(engine_probes, "PROBE_TRACKLETS", 4)
    method, aux, data = built("rgsa-rgtr")
    fixture = prepared("fixture-video", {"root": str(tmp_path / "fx")}, None)
    assert run_probes(method, fixture.load_split(0), data, EvalConfig(), aux) == ({}, NO_TRUTH)
    image = prepared("synthetic-image", {"root": str(synthetic.root), **TINY, **NUISANCES}, None)
    assert run_probes(method, image.load_split(0), data, EvalConfig(), aux) == ({}, NO_TRUTH)
    baseline, aux, data = built("baseline")
    assert run_probes(baseline, synthetic.load_split(0), data, EvalConfig(), aux) == ({}, None)
    control, aux, data = built("iaunet", blocks="none")
    metrics, note = run_probes(control, synthetic.load_split(0), data, EvalConfig(), aux)
    assert metrics == {} and "control without the mechanism" in note


def test_a_probe_the_method_did_not_declare_is_an_error(synthetic, monkeypatch):
    monkeypatch.setattr(engine_probes, "PROBE_TRACKLETS", 2)
    method, aux, data = built("stal", split_stage=2)
    monkeypatch.setattr(STAL, "probes", lambda self, batches: {"stal.other": 1.0})
    with pytest.raises(ValueError, match="stal.other"):
        run_probes(method, synthetic.load_split(0), data, EvalConfig(), aux)
