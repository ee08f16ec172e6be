"""STAL: part boxes, attention, aggregation, distance, switches and one training step."""

from __future__ import annotations

import copy

import optuna
import pydantic
import pytest
import torch

from bench.config import DataConfig, ModelConfig
from bench.errors import BenchError, DataError
from bench.models.part_boxes import pad_boxes, part_boxes, prior_boxes, roi_features
from methods.stal import STAL, STALConfig, local_distance, temporal_pool

H, W = 64, 32
POSE = torch.tensor(  # (x, y) of the 14 joints of the box test, in a 64 x 32 image
    [[16, 2], [16, 10], [10, 12], [8, 20], [7, 28], [22, 12], [24, 20]]
    + [[25, 28], [20, 32], [21, 46], [21, 60], [12, 32], [11, 46], [11, 60]],
    dtype=torch.float32,
)


def make(**overrides) -> STAL:
    torch.manual_seed(0)
    overrides.setdefault("local_dim", 32)
    return STAL(
        STALConfig(**overrides),
        ModelConfig(backbone="resnet18", pretrained=False),
        DataConfig(height=H, width=W, seq_len=2, p=2, k=2),
        num_classes=4,
    )


@pytest.fixture(scope="module")
def model() -> STAL:
    """A small STAL in eval mode (4 x 4 RoIs) shared by the tests that only run it."""
    return make(roi_size=4).eval()


def switched(m: STAL, **test_time) -> STAL:
    """The same model (shared weights) under other test-time switches."""
    other = copy.copy(m)
    other.config = m.config.model_copy(update=test_time)
    return other


def keypoints(b: int, t: int) -> torch.Tensor:
    """(B, T, 14, 3): the test pose jittered by up to 2 pixels, all joints visible."""
    xy = POSE + 4 * torch.rand(b, t, 14, 2) - 2
    return torch.cat([xy, torch.ones(b, t, 14, 1)], -1)


def batch(t: int = 2) -> dict[str, torch.Tensor]:
    pids = torch.tensor([0, 0, 1, 1])
    return {"clips": torch.randn(4, t, 3, H, W), "pids": pids, "keypoints": keypoints(4, t)}


def per_part_mean(fq, fg):
    """Reference: mean over parts of Euclidean distances, pair by pair."""
    return torch.tensor(
        [[(q - g).norm(dim=-1).mean().item() for g in fg] for q in fq], dtype=fq.dtype
    )


# --- part boxes -----------------------------------------------------------------------------


def test_boxes_from_joints_match_hand_computed():
    kp = torch.cat([POSE, torch.ones(14, 1)], -1)
    kp[4, 2] = 0  # right wrist invisible: the right arm spans shoulder and elbow only
    kp[8:11, 2] = 0  # left hip, knee, ankle invisible: the left leg falls back to its prior
    expected = torch.tensor(
        [
            [10, 2, 22, 12],  # head: joints 1, 2, 3, 6
            [10, 10, 22, 32],  # torso: 2, 3, 6, 12 (9 invisible)
            [8, 12, 10, 20],  # right arm: 3, 4
            [22, 12, 25, 28],  # left arm: 6, 7, 8
            [11, 32, 12, 60],  # right leg: 12, 13, 14
            [0.45 * W, 0.5 * H, 0.8 * W, H],  # left leg: prior box
        ],
        dtype=torch.float32,
    )
    assert torch.allclose(part_boxes(kp, (H, W)), expected)
    padded = pad_boxes(expected, (8.0, 8.0), (H, W))
    assert torch.allclose(padded[0], expected[0])  # already large enough
    assert torch.allclose(padded[2], torch.tensor([5.0, 12, 13, 20]))  # 2 px wide -> 8
    assert torch.allclose(padded[4], torch.tensor([7.5, 32, 15.5, 60]))  # 1 px wide -> 8


def test_padding_keeps_boxes_inside_the_image():
    boxes = torch.tensor([[30.0, 0, 31, 3], [-5, 50, 3, 70], [-10, -10, 100, 100]])
    padded = pad_boxes(boxes, (8.0, 8.0), (H, W))
    expected = torch.tensor([[24.0, 0, 32, 8], [0, 50, 8, 64], [0, 0, W, H]])
    assert torch.allclose(padded, expected)


def test_roi_align_maps_pixel_boxes_to_feature_cells():
    # a 4 x 2 map (stride 16) whose value is the x (channel 0) or y (channel 1) coordinate of
    # each cell centre: RoI-align of a linear map returns the bin centres of the mapped box
    ys, xs = torch.meshgrid(torch.arange(4.0) + 0.5, torch.arange(2.0) + 0.5, indexing="ij")
    feats = torch.stack([xs, ys])[None, None]  # (1, 1, 2, 4, 2)
    box = torch.tensor([[[[8.0, 16, 24, 48]]]])  # -> x 0.5..1.5, y 1..3 in map cells
    out = roi_features(feats, box, (H, W), 4)[0, 0, 0]
    centres_x = 0.5 + (torch.arange(4.0) + 0.5) / 4
    centres_y = 1.0 + (torch.arange(4.0) + 0.5) * 2 / 4
    assert torch.allclose(out[0], centres_x.expand(4, 4), atol=1e-5)
    assert torch.allclose(out[1], centres_y[:, None].expand(4, 4), atol=1e-5)


# --- attention, aggregation and distance ------------------------------------------------------


def test_equal_attention_is_average_pooling_and_mean_part_distance():
    f = torch.randn(3, 5, 6, 7)
    assert torch.allclose(temporal_pool(f, torch.full((3, 5, 6), 0.2)), f.mean(1), atol=1e-6)
    fq, fg = f[:, 0], torch.randn(4, 6, 7)
    d = local_distance(fq, torch.full((3, 6), 0.3), fg, torch.full((4, 6), 0.7))
    assert torch.allclose(d, per_part_mean(fq, fg), atol=1e-5)


def test_model_with_uniform_stan_scores_pools_by_average():
    m = make(roi_size=4, test_branches="local").eval()
    torch.nn.init.zeros_(m.stan.score.weight)  # every score is sigmoid(0)
    torch.nn.init.zeros_(m.stan.score.bias)
    clips, aux = torch.randn(2, 3, 3, H, W), {"keypoints": keypoints(2, 3)}
    with torch.no_grad():
        f_frames, _ = m._local(m.backbone(clips, 0, 3), aux, clips)
        emb = m.embed(clips, aux)
    assert torch.allclose(emb["f"], f_frames.mean(1), atol=1e-6)
    q, g = ({k: v[i : i + 1] for k, v in emb.items()} for i in (0, 1))
    assert torch.allclose(m.distance(q, g), per_part_mean(q["f"], g["f"]), rtol=1e-4)


@pytest.mark.parametrize("t", [1, 3])
def test_attention_map_sums_to_one_over_frames_and_parts(model, t):
    with torch.no_grad():
        out = model(batch(t))
    a = out["a"]
    assert a.shape == (4, t, 6) and (a > 0).all()
    assert torch.allclose(a.sum((1, 2)), torch.ones(4), atol=1e-6)


@pytest.mark.parametrize(
    ("attention", "branches", "rate"),
    [("st", "both", 0.3), ("st", "both", 0.7), ("none", "both", 0.3), ("temporal", "both", 0.3)]
    + [("spatial", "local", 0.3), ("st", "global", 0.3)],
)
def test_distance_matches_pair_by_pair_reference(model, attention, branches, rate):
    m = switched(model, attention=attention, test_branches=branches, fusion_rate=rate)
    q = {"g": torch.randn(3, 8), "f": torch.randn(3, 6, 5), "a": torch.rand(3, 6) + 0.1}
    g = {"g": torch.randn(4, 8), "f": torch.randn(4, 6, 5), "a": torch.rand(4, 6) + 0.1}
    spatial = attention in ("st", "spatial")
    ref = torch.zeros(3, 4)
    for i in range(3):
        for j in range(4):
            ai, aj = (q["a"][i], g["a"][j]) if spatial else (torch.ones(6), torch.ones(6))
            w = ai * aj / (ai.norm() * aj.norm())  # eq. 8
            d_l = sum(w[r] * (q["f"][i, r] - g["f"][j, r]).norm() for r in range(6))
            d_g = (q["g"][i] - g["g"][j]).norm()
            ref[i, j] = {"both": d_l + rate * d_g, "local": d_l, "global": d_g}[branches]
    assert torch.allclose(m.distance(q, g), ref, atol=1e-5)


@pytest.mark.parametrize("t", [1, 3, 8, 50])
def test_embed_accepts_any_number_of_frames(model, t):
    m = model
    frame, kp = torch.randn(1, 1, 3, H, W), keypoints(1, 1)
    aux = {"keypoints": kp.expand(1, t, 14, 3)}
    with torch.no_grad():
        one = m.embed(frame, {"keypoints": kp})
        many = m.embed(frame.expand(1, t, 3, H, W), aux)
    assert many["g"].shape == (1, 512) and many["f"].shape == (1, 6, 32)
    assert many["a"].shape == (1, 6)
    for key in one:  # T copies of a frame are that frame, whatever the attention
        assert torch.allclose(many[key], one[key], atol=1e-5)


@pytest.mark.parametrize("attention", ["st", "spatial"])
def test_aggregating_clips_equals_embedding_the_whole_tracklet(model, attention):
    m = switched(model, attention=attention)
    clips, kp = torch.randn(1, 6, 3, H, W), keypoints(1, 6)
    with torch.no_grad():
        whole = m.embed(clips, {"keypoints": kp})
        parts = m.embed(clips.reshape(2, 3, 3, H, W), {"keypoints": kp.reshape(2, 3, 14, 3)})
    pooled = m.aggregate(parts, torch.tensor([0, 0]), 1, norm=True)
    for key in whole:
        assert torch.allclose(pooled[key], whole[key], atol=1e-5)
    assert not torch.allclose(parts["f"][0], parts["f"][1])  # the clips do differ


def test_temporal_attention_switch_weights_frames(model):
    clips, kp = torch.randn(2, 4, 3, H, W), {"keypoints": keypoints(2, 4)}
    with torch.no_grad():
        f, s = model._local(model.backbone(clips, 0, 3), kp, clips)
        for attention in ["st", "temporal", "spatial", "none"]:
            weighted = attention in ("st", "temporal")
            expected = temporal_pool(f, s) if weighted else f.mean(1)
            got = switched(model, attention=attention).embed(clips, kp)["f"]
            assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(temporal_pool(f, s), f.mean(1), atol=1e-6)


# --- training ---------------------------------------------------------------------------------


def test_training_step_and_gradients_reach_stan_ran_and_part_networks():
    m = make(local_dim=1024).train()
    b = batch(2)
    terms = m.loss(m(b), b)
    assert set(terms) == {"tri_global", "ce_global", "tri_local", "consistency"}
    assert all(torch.isfinite(v) and v > 0 for v in terms.values())
    total = sum(terms.values())
    total.backward()
    for name in ["stan", "ran", "part_classifiers"]:
        grads = [p.grad for p in m.get_submodule(name).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name
    for r in range(6):  # copies of the backbone's stages: timm's zero-init last BNs hold some
        grads = [p.grad for p in m.part_nets[r].parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), r
    # timm zero-initialises each block's last BN, so only some low-level weights move at first
    assert any(p.grad.abs().sum() > 0 for p in m.backbone.stages[1].parameters())
    torch.optim.Adam(m.parameters(), lr=1e-3).step()
    after = m.loss(m(b), b)
    assert sum(after.values()) < total and after["ce_global"] < terms["ce_global"]


@pytest.mark.parametrize(
    ("train", "test", "losses", "keys"),
    [
        ("global", "global", {"tri_global", "ce_global"}, {"g"}),  # PGB
        ("local", "local", {"tri_local", "consistency"}, {"f", "a"}),  # PLB
        ("both", "global", {"tri_global", "ce_global", "tri_local", "consistency"}, {"g"}),
        ("both", "local", {"tri_global", "ce_global", "tri_local", "consistency"}, {"f", "a"}),
    ],
)
def test_branch_switches(train, test, losses, keys):
    m = make(train_branches=train, test_branches=test, roi_size=4)
    assert hasattr(m, "stan") == (train != "global") and hasattr(m, "ran") == (train != "local")
    b = batch(1)
    assert set(m.loss(m(b), b)) == losses
    with torch.no_grad():
        assert set(m.eval().embed(b["clips"], b)) == keys


def test_tested_branches_must_be_trained():
    with pytest.raises(pydantic.ValidationError, match="test_branches"):
        STALConfig(train_branches="global", test_branches="both")


def test_ran_split_stage_and_embedding_sizes():
    m = make(ran=False, split_stage=2, global_dim=16, local_dim=8, roi_size=4).eval()
    assert m.ran is None
    b = batch(1)
    with torch.no_grad():
        emb = m.embed(b["clips"], b)
    assert emb["g"].shape == (4, 16) and emb["f"].shape == (4, 6, 8)


def test_copy_part_networks_have_their_own_weights():
    m = make(part_net="copy", local_dim=8, roi_size=4)
    weights = [net.stages[0].body[0][0].conv1.weight for net in m.part_nets]
    original = m.backbone.stages[4].body[0][0].conv1.weight
    assert all(torch.equal(w, original) for w in weights)  # initialised as the backbone's
    assert len({w.data_ptr() for w in [original, *weights]}) == 7  # but separate tensors
    b = batch(1)
    sum(m.loss(m(b), b).values()).backward()
    assert original.grad is None or not original.grad.abs().sum()  # stage 4 of g only
    for net in m.part_nets:
        assert any(p.grad.abs().sum() > 0 for p in net.parameters())


# --- part sources and configuration ----------------------------------------------------------


def test_prior_parts_need_no_keypoints(model):
    m = switched(model, parts="prior")
    clips = torch.randn(1, 2, 3, H, W)
    with torch.no_grad():
        low = m.backbone(clips, 0, 3)
        boxes = m._boxes(low, {}, clips)
        assert m.embed(clips, {})["f"].shape == (1, 6, 32)
    # the 4 x 2 map has 16-pixel cells: minimum box 32 x 32 pixels
    expected = pad_boxes(prior_boxes((H, W)), (32.0, 32.0), (H, W))
    assert torch.allclose(boxes, expected.expand(1, 2, 6, 4))


def test_missing_or_malformed_keypoints_are_clear_errors(model):
    m = model
    clips = torch.randn(1, 2, 3, H, W)
    with pytest.raises(BenchError, match="parts: prior"):
        m.embed(clips, {})
    with pytest.raises(DataError, match=r"expected shape \(1, 2, 14, 3\)"):
        m.embed(clips, {"keypoints": torch.zeros(1, 2, 17, 3)})


def test_adapt_config_falls_back_to_prior_boxes():
    cfg, notes = STAL.adapt_config(STALConfig(), frozenset({"part_masks"}))
    assert cfg.parts == "prior" and "prior" in notes[0]
    assert STAL.adapt_config(STALConfig(), frozenset({"keypoints"})) == (STALConfig(), [])
    assert STAL.aux_inputs(STALConfig()) == {"keypoints"}
    assert STAL.aux_inputs(cfg) == frozenset()
    global_only = STALConfig(train_branches="global", test_branches="global")
    assert STAL.adapt_config(global_only, frozenset()) == (global_only, [])
    assert STAL.aux_inputs(global_only) == frozenset()


def test_search_space_gives_valid_overrides():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        override = STAL.search_space(study.ask())
        train = override.pop("train")
        assert 1e-4 <= train["lr"] <= 1e-3
        cfg = STALConfig(**override)
        assert 0.4 <= cfg.margin_global <= 2 and 0 <= cfg.fusion_rate <= 1
        assert cfg.local_dim in (128, 256, 512, 1024)


def test_test_time_switches_are_marked_so_their_cells_share_training():
    from methods.stal import STALConfig

    assert STALConfig.test_time_fields() == {"attention", "test_branches", "fusion_rate"}
