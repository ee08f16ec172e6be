"""IAUnet: the mathematics of STIAU / CIAU / the IAU block, the part-mask loss, the plugin."""

from __future__ import annotations

import math

import pytest
import torch
from optuna.trial import FixedTrial
from pydantic import ValidationError
from torch import nn

from bench.config import DataConfig, ModelConfig
from bench.errors import BenchError, DataError
from bench.models.context_blocks import NonLocal, ResidualBN, SqueezeExcitation
from methods.iaunet import (
    CIAU,
    STIAU,
    IAUBlock,
    IAUnet,
    IAUnetConfig,
    PartDivision,
    StripeDivision,
    build_block,
    channel_relation,
    part_mask_loss,
    part_mask_targets,
)

B, T, D, H, W, N = 2, 3, 16, 4, 2, 4
BLOCKS = ["ciau-stiau", "stiau-ciau", "parallel", "stiau", "ciau", "nonlocal", "se-residual", "se"]
RESIDUAL_BLOCKS = BLOCKS[:-1]  # every block but SE gating starts as the identity


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def clip(frames: int = T) -> torch.Tensor:
    return torch.randn(B, frames, D, H, W)


def activate(module: nn.Module) -> nn.Module:
    """Give every residual BN a non-zero weight, as training does, so that E shows in Y."""
    for m in module.modules():
        if isinstance(m, ResidualBN):
            nn.init.ones_(m.bn.weight)
    return module


def units(block: IAUBlock, kind: type) -> nn.Module:
    return next(u.operation for u in block.units if isinstance(u.operation, kind))


def expected_support(relations: str) -> torch.Tensor:
    """Eq. 3 written out: row (t, n) relates to (s, k) within a frame or along a part."""
    mask = torch.zeros(T * N, T * N, dtype=torch.bool)
    for t in range(T):
        for n in range(N):
            for s in range(T):
                for k in range(N):
                    spatial = s == t and k != n and relations != "temporal"
                    temporal = k == n and s != t and relations != "spatial"
                    mask[t * N + n, s * N + k] = spatial or temporal
    return mask


# --- STIAU: interaction (eqs. 1-4) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("relations", "support"),
    [("spatio-temporal", N + T - 2), ("spatial", N - 1), ("temporal", T - 1)],
)
def test_relation_map_rows_sum_to_one_over_their_structural_support(relations, support):
    stiau = STIAU(D, IAUnetConfig(relations=relations))
    r = stiau.relation_map(torch.randn(B, T, N, D), torch.randn(B, D))
    assert r.shape == (B, T * N, T * N)
    mask = expected_support(relations)
    assert ((r > 0) == mask).all()  # spatial-only: no cross-frame; temporal-only: no cross-part
    assert (mask.sum(1) == support).all()
    torch.testing.assert_close(r.sum(-1), torch.ones(B, T * N))


def test_identical_parts_give_uniform_relations():
    """With all parts equal every logit is the same, so each row is 1 / (N + T - 2) on its
    support: the mask is structural, not a test of values against 0."""
    stiau = STIAU(D, IAUnetConfig())
    r = stiau.relation_map(torch.ones(1, T, N, D), torch.randn(1, D))[0]
    mask = expected_support("spatio-temporal")
    torch.testing.assert_close(r[mask], torch.full((mask.sum(),), 1 / (N + T - 2)))


def test_relation_logits_follow_eqs_1_and_2_with_one_shared_w_r():
    stiau = STIAU(D, IAUnetConfig())
    parts, u = torch.randn(1, T, N, D), torch.randn(1, D)
    r = stiau.relation_map(parts, u)[0]
    w = stiau.relation.w_r.weight[0, :D]
    p = parts[0].reshape(T * N, D)
    i, j_spatial, j_temporal = 1 * N + 2, 1 * N + 0, 2 * N + 2  # (t1, n2), (t1, n0), (t2, n2)
    expected = w @ ((p[i] - p[j_spatial]).abs() - (p[i] - p[j_temporal]).abs())
    torch.testing.assert_close(r[i, j_spatial].log() - r[i, j_temporal].log(), expected)


def test_l2_relation_is_minus_squared_distance():
    stiau = STIAU(D, IAUnetConfig(relation_fn="l2"))
    parts = 0.1 * torch.randn(1, T, N, D)
    r = stiau.relation_map(parts, torch.randn(1, D))[0]
    p = parts[0].reshape(T * N, D)
    i, j, k = 0, 1, 1 * N  # (t0, n0) -> (t0, n1) and (t1, n0)
    expected = (p[i] - p[k]).pow(2).sum() - (p[i] - p[j]).pow(2).sum()
    torch.testing.assert_close(r[i, j].log() - r[i, k].log(), expected)


def test_temporal_only_at_one_frame_relates_nothing():
    stiau = STIAU(D, IAUnetConfig(relations="temporal"))
    r = stiau.relation_map(torch.randn(B, 1, N, D), torch.randn(B, D))
    assert torch.equal(r, torch.zeros(B, N, N))
    assert torch.isfinite(
        activate(build_block(IAUnetConfig(relations="temporal"), D))(clip(1))
    ).all()


# --- part division (eqs. 8-10) --------------------------------------------------------------


def test_part_features_are_attention_weighted_means():
    divide = PartDivision(D)
    nn.init.zeros_(divide.attention.weight)
    with torch.no_grad():
        divide.attention.bias.copy_(torch.tensor([-2.0, -1.0, 0.5, 3.0]))
    x = clip()
    parts, logits = divide(x)
    expected = torch.sigmoid(divide.attention.bias)[:, None] * x.mean(dim=(-2, -1))[:, :, None]
    torch.testing.assert_close(parts, expected)
    assert logits.shape == (B, T, N, H, W)


def test_stripes_are_band_means():
    x = torch.randn(B, T, D, 8, W)
    parts, attention = StripeDivision()(x)
    assert attention is None
    for n in range(N):
        torch.testing.assert_close(parts[:, :, n], x[..., 2 * n : 2 * n + 2, :].mean(dim=(-2, -1)))


def test_part_mask_targets_are_area_fractions():
    masks = torch.zeros(1, 1, 8, 4, dtype=torch.long)
    masks[..., 0:2, :] = 1
    masks[..., 2:6, :] = 2
    masks[..., 6, :] = 3
    masks[..., 7, :] = 4
    masks[..., 7, 0] = 0  # one background pixel among the shoes
    target = part_mask_targets(masks, (4, 2))[0, 0]  # (N, 4, 2), cells of 2 x 2 pixels
    assert torch.equal(target[0, 0], torch.ones(2)) and target[0, 1:].sum() == 0
    assert torch.equal(target[1, 1:3], torch.ones(2, 2))
    assert torch.equal(target[2, 3], torch.full((2,), 0.5))
    assert torch.equal(target[3, 3], torch.tensor([0.25, 0.5]))


def test_part_mask_loss_is_bce_averaged_over_blocks():
    masks = torch.randint(0, N + 1, (B, T, 16, 8))
    hard = part_mask_targets(masks, (4, 2)).round()
    agree = 20 * (2 * hard - 1)  # confident attention maps on the nearest masks
    assert part_mask_loss([torch.zeros(B, T, N, 4, 2)], masks).item() == pytest.approx(math.log(2))
    both = part_mask_loss([torch.zeros(B, T, N, 8, 4), agree], masks)
    alone = part_mask_loss([agree], masks)
    assert both.item() == pytest.approx((math.log(2) + alone.item()) / 2)


# --- CIAU (eqs. 11-13) ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dot", "l2"])
def test_channel_relation_is_td_by_td_softmax(kind):
    f = 0.2 * torch.randn(B, T * D, H * W)
    c = channel_relation(f, kind)
    assert c.shape == (B, T * D, T * D)
    torch.testing.assert_close(c.sum(-1), torch.ones(B, T * D))
    i, j, k = 0, 1, 2 * D + 5  # channel 0 of frame 0 vs channel 1 (frame 0), channel 5 (frame 2)
    fi, fj, fk = f[0, i], f[0, j], f[0, k]
    if kind == "dot":
        expected = fi @ fj - fi @ fk
    else:
        expected = (fi - fk).pow(2).sum() - (fi - fj).pow(2).sum()
    torch.testing.assert_close(c[0, i, j].log() - c[0, i, k].log(), expected)


def test_ciau_aggregates_channels_of_all_frames():
    ciau = CIAU(D, "dot")
    with torch.no_grad():
        ciau.update.weight.copy_(torch.eye(D)[..., None, None])
        nn.init.zeros_(ciau.update.bias)
    x = 0.2 * clip()
    f = x.flatten(3).flatten(1, 2)
    torch.testing.assert_close(ciau(x), (channel_relation(f, "dot") @ f).reshape(x.shape))
    changed = x.clone()
    changed[:, 0] += 1.0
    assert not torch.allclose(ciau(changed)[:, 2], ciau(x)[:, 2])


# --- the IAU block (eq. 14) -----------------------------------------------------------------


@pytest.mark.parametrize("blocks", RESIDUAL_BLOCKS)
def test_fresh_block_is_identity(blocks):
    block = build_block(IAUnetConfig(blocks=blocks), D)
    x = clip()
    assert torch.equal(block(x), x)
    assert torch.equal(block.eval()(x), x)


@pytest.mark.parametrize("blocks", ["stiau", "ciau-stiau", "parallel", "nonlocal"])
def test_permuting_frames_permutes_outputs(blocks):
    block = activate(build_block(IAUnetConfig(blocks=blocks), D))
    x, perm = clip(), torch.tensor([2, 0, 1])
    torch.testing.assert_close(block(x[:, perm]), block(x)[:, perm])
    if blocks == "stiau":
        stiau = units(block, STIAU)
        parts, u = torch.randn(1, T, N, D), torch.randn(1, D)
        order = (perm[:, None] * N + torch.arange(N)).flatten()  # rows of the permuted clip
        r_perm = stiau.relation_map(parts[:, perm], u)[0]
        torch.testing.assert_close(r_perm, stiau.relation_map(parts, u)[0][order][:, order])


SWITCHES = [
    {"relations": "spatial"},
    {"relations": "temporal"},
    {"relation_fn": "l2"},
    {"channel_relation": "l2"},
    {"part_division": "stripes"},
    {"relation_norm": "bn"},
    *({"blocks": b} for b in BLOCKS[1:]),
]


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: "-".join(map(str, s.values())))
def test_each_block_switch_changes_the_output(switch):
    """Shared weights are copied from the default block, so only the switch differs."""
    base = activate(build_block(IAUnetConfig(), D))
    variant = activate(build_block(IAUnetConfig(**switch), D))
    variant.load_state_dict(base.state_dict(), strict=False)
    x = clip()
    assert (variant(x) - base(x)).abs().max() > 1e-3


def test_gradients_reach_every_iau_weight():
    block = activate(build_block(IAUnetConfig(), D))
    (block(clip()) * torch.randn(B, T, D, H, W)).sum().backward()
    stiau, ciau = units(block, STIAU), units(block, CIAU)
    w_r = stiau.relation.w_r.weight.grad[0]
    for grad in (
        w_r[:D],
        stiau.part_update.weight.grad,
        stiau.frame_update.weight.grad,
        stiau.divide.attention.weight.grad,
        ciau.update.weight.grad,
    ):
        assert grad is not None and grad.abs().sum() > 0
    # u enters every logit of a row alike (eqs. 1-2), so its half of W_r cancels in eq. 4.
    assert w_r[D:].abs().max() < 1e-6


def test_stiau_update_is_constant_over_space_and_se_scales_channels():
    stiau_unit = activate(build_block(IAUnetConfig(blocks="stiau"), D)).units[0]
    delta = stiau_unit.delta(clip())
    assert delta.shape == (B, T, D, 1, 1)
    x = clip().abs() + 0.1
    ratio = SqueezeExcitation(D)(x) / x
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))
    assert ((ratio > 0) & (ratio < 1)).all()


def test_nonlocal_is_embedded_gaussian_over_all_clip_positions():
    nl = NonLocal(D, inner=D)
    for conv in (nl.theta, nl.phi, nl.g, nl.out):
        with torch.no_grad():
            conv.weight.copy_(torch.eye(D)[..., None, None])
            nn.init.zeros_(conv.bias)
    x = 0.3 * clip()
    positions = x.permute(0, 1, 3, 4, 2).reshape(B, T * H * W, D)  # every frame's positions
    y = torch.softmax(positions @ positions.transpose(1, 2), -1) @ positions
    torch.testing.assert_close(nl(x), y.reshape(B, T, H, W, D).permute(0, 1, 4, 2, 3))


def test_image_mode_one_frame():
    block = activate(build_block(IAUnetConfig(), D))
    r = units(block, STIAU).relation_map(torch.randn(B, 1, N, D), torch.randn(B, D))
    assert ((r > 0).sum(-1) == N - 1).all()  # N + T - 2 with T = 1
    y = block(clip(1))
    assert y.shape == (B, 1, D, H, W) and torch.isfinite(y).all()


# --- the plugin -----------------------------------------------------------------------------


def make(config: IAUnetConfig | None = None, seq_len: int = 2, backbone: str = "resnet18"):
    data = DataConfig(height=64, width=32, seq_len=seq_len)
    return IAUnet(config or IAUnetConfig(), ModelConfig(backbone=backbone), data, num_classes=4)


def batch(frames: int = 2, height: int = 64, width: int = 32) -> dict[str, torch.Tensor]:
    return {
        "clips": torch.randn(8, frames, 3, height, width),
        "pids": torch.arange(4).repeat_interleave(2),
        "camids": torch.zeros(8, dtype=torch.long),
        "part_masks": torch.randint(0, N + 1, (8, frames, height, width)),
    }


@pytest.mark.parametrize("frames", [2, 1])
def test_plugin_trains_one_step(frames):
    model = make(seq_len=frames)
    model.train()
    b = batch(frames)
    terms = model.loss(model(b), b)
    assert set(terms) == {"ce", "triplet", "part_mask"}
    assert all(torch.isfinite(v) and v > 0 for v in terms.values())
    sum(terms.values()).backward()
    blocks = [m for m in model.modules() if isinstance(m, IAUBlock)]
    assert len(blocks) == (1 if frames > 1 else 2)  # stage 2 for video, 2 and 3 for images
    stiau = units(blocks[0], STIAU)
    assert stiau.divide.attention.weight.grad.abs().sum() > 0  # through L_p
    assert blocks[0].units[1].bn.weight.grad.abs().sum() > 0  # the block can leave identity
    model.eval()
    with torch.no_grad():
        feat = model.embed(b["clips"], {})["feat"]
    assert feat.shape == (8, 512) and torch.isfinite(feat).all()
    assert stiau.last_attention is None  # nothing left holding a graph


def test_fresh_plugin_equals_the_plain_backbone():
    torch.manual_seed(1)
    iau = make(IAUnetConfig(stages=[1, 2, 3]))
    torch.manual_seed(1)
    plain = make(IAUnetConfig(blocks="none"))
    x = torch.randn(2, 2, 3, 32, 16)
    torch.testing.assert_close(iau.features(x)[0], plain.features(x)[0])


def test_stage_switch_changes_the_output():
    x = torch.randn(2, 2, 3, 32, 16)
    feats = []
    for stages in ([2], [3]):
        torch.manual_seed(1)
        feats.append(activate(make(IAUnetConfig(stages=stages))).eval().features(x)[0])
    assert (feats[0] - feats[1]).abs().max() > 1e-3


@pytest.mark.parametrize("backbone", ["resnet34", "resnet50"])
def test_blocks_sit_before_the_last_block_of_each_stage(backbone):
    model = make(IAUnetConfig(stages=[1, 2, 3, 4]), seq_len=2, backbone=backbone)
    for stage in model.backbone.stages[1:]:
        assert isinstance(stage.body[-2], IAUBlock)
        assert not isinstance(stage.body[-1], IAUBlock)
    with torch.no_grad():
        out = model.eval().embed(torch.randn(1, 2, 3, 32, 16), {})["feat"]
    assert out.shape == (1, model.backbone.out_channels)


def test_loss_weights():
    model = make()
    b = batch(height=32, width=16)
    out = model(b)
    base = model.loss(out, b)
    model.config = IAUnetConfig(lambda_p=1.0, lambda_tri=2.0)
    heavier = model.loss(out, b)
    torch.testing.assert_close(heavier["part_mask"], 2 * base["part_mask"])
    torch.testing.assert_close(heavier["triplet"], 2 * base["triplet"])
    scaled = model.loss({**out, "feat": 10 * out["feat"]}, b)  # the triplet is cosine
    torch.testing.assert_close(scaled["triplet"], heavier["triplet"])
    model.config = IAUnetConfig(lambda_p=0.0, lambda_tri=0.0)
    assert set(model.loss(out, b)) == {"ce"}


def test_missing_masks_fall_back_with_a_note():
    learned, notes = IAUnet.adapt_config(IAUnetConfig(), frozenset({"keypoints"}))
    assert learned.lambda_p == 0 and learned.part_division == "learned"
    assert len(notes) == 1 and "no part masks" in notes[0] and "lambda_p 0.5 -> 0" in notes[0]
    for config in (IAUnetConfig(part_division="stripes"), IAUnetConfig(blocks="ciau")):
        assert IAUnet.adapt_config(config, frozenset()) == (config, [])
    with_masks = IAUnetConfig()
    assert IAUnet.adapt_config(with_masks, frozenset({"part_masks"})) == (with_masks, [])
    assert IAUnet.aux_inputs(with_masks) == {"part_masks"}
    assert IAUnet.aux_inputs(learned) == frozenset()  # the fallback reads no masks


def test_bad_or_missing_masks_are_clear_errors():
    model = make()
    b = batch(height=32, width=16)
    out = model(b)
    with pytest.raises(BenchError, match="part_masks"):
        model.loss(out, {k: v for k, v in b.items() if k != "part_masks"})
    with pytest.raises(DataError, match="0..4"):
        model.loss(out, {**b, "part_masks": b["part_masks"] + 3})
    with pytest.raises(DataError, match="shape"):
        model.loss(out, {**b, "part_masks": b["part_masks"][:, :1]})


def test_config_validation():
    assert IAUnetConfig(stages=[3, 2]).stages == [2, 3]
    for bad in ({"stages": [2, 2]}, {"stages": [5]}, {"stages": []}, {"blocks": "iau"}):
        with pytest.raises(ValidationError):
            IAUnetConfig(**bad)


def test_search_space_is_a_valid_override():
    trial = FixedTrial(
        {
            "lr": 3e-4,
            "weight_decay": 5e-4,
            "triplet_margin": 0.2,
            "lambda_tri": 1.5,
            "lambda_p": 0.1,
            "stages": "2,3",
        }
    )
    override = IAUnet.search_space(trial)
    assert override.pop("train") == {"lr": 3e-4, "weight_decay": 5e-4}
    config = IAUnetConfig(**override)
    assert config.stages == [2, 3] and config.lambda_p == 0.1 and config.triplet_margin == 0.2


# --- SE, relation_norm, placement, and why u cancels ------------------------------------------


def test_se_is_gating_and_se_residual_is_the_old_residual_form():
    x = clip()
    gate = build_block(IAUnetConfig(blocks="se"), D)
    se = gate.units[0]
    assert isinstance(se, SqueezeExcitation) and len(gate.units) == 1
    s = se.excite(x.mean(dim=(-2, -1)))[..., None, None]  # (B, T, D, 1, 1) in (0, 1)
    torch.testing.assert_close(gate(x), x * s)  # Y = F * s (Hu et al., eq. 4)
    torch.manual_seed(0)
    residual = activate(build_block(IAUnetConfig(blocks="se-residual"), D))
    unit = residual.units[0]
    assert set(residual.state_dict()) == {f"units.0.operation.{k}" for k in se.state_dict()} | {
        f"units.0.bn.{k}" for k in unit.bn.state_dict()
    }
    unit.operation.load_state_dict(se.state_dict())
    e = (x * s).reshape(B * T, D, -1)
    torch.testing.assert_close(residual(x), x + unit.bn(e).reshape(x.shape))  # F + BN(F * s)
    n_params = [sum(p.numel() for p in m.parameters()) for m in (gate, residual)]
    assert n_params[1] - n_params[0] == 2 * D  # the BN's weight and bias


def test_u_cancels_in_the_softmax_unless_the_logits_are_batch_normalised():
    parts, u1, u2 = torch.randn(B, T, N, D), torch.randn(B, D), 5 * torch.randn(B, D)
    plain = STIAU(D, IAUnetConfig())
    torch.testing.assert_close(plain.relation_map(parts, u1), plain.relation_map(parts, u2))
    w_u = plain.relation.w_r.weight
    (plain.relation_map(parts, u1) * torch.randn(B, T * N, T * N)).sum().backward()
    assert w_u.grad[0, :D].abs().max() > 0.1 and w_u.grad[0, D:].abs().max() < 1e-5  # float noise
    normed = STIAU(D, IAUnetConfig(relation_norm="bn"))
    normed.relation.w_r.load_state_dict(plain.relation.w_r.state_dict())
    # training: batch statistics over both clips' logits couple u into R, and w_u learns
    r1, r2 = normed.relation_map(parts, u1), normed.relation_map(parts, u2)
    assert (r1 - r2).abs().max() > 1e-3
    (r1 * torch.randn(B, T * N, T * N)).sum().backward()
    assert normed.relation.w_r.weight.grad[0, D:].abs().max() > 1e-4
    # test: running statistics are one affine map, and u cancels again
    normed.eval()
    torch.testing.assert_close(normed.relation_map(parts, u1), normed.relation_map(parts, u2))


def test_relation_norm_adds_one_bn_on_the_logits_and_nothing_else():
    torch.manual_seed(0)
    plain = STIAU(D, IAUnetConfig())
    torch.manual_seed(0)
    normed = STIAU(D, IAUnetConfig(relation_norm="bn"))
    extra = {k: v for k, v in normed.state_dict().items() if k not in plain.state_dict()}
    assert set(extra) == {f"relation.norm.{k}" for k in nn.BatchNorm1d(1).state_dict()}
    assert all(v.equal(normed.state_dict()[k]) for k, v in plain.state_dict().items())
    parts, u = torch.randn(B, T, N, D), torch.randn(B, D)
    logits = plain.relation(parts, u)
    flat = logits.flatten()
    expected = (flat - flat.mean()) / torch.sqrt(flat.var(unbiased=False) + 1e-5)
    torch.testing.assert_close(normed.relation(parts, u), expected.reshape(logits.shape))


def plugin_params(model: IAUnet) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(parameters of the IAU blocks, all other parameters), each in module order."""
    block = {id(p) for m in model.modules() if isinstance(m, IAUBlock) for p in m.parameters()}
    params = list(model.parameters())
    return [p for p in params if id(p) in block], [p for p in params if id(p) not in block]


def test_placement_after_stage_moves_the_block_and_nothing_else():
    x = torch.randn(2, 2, 3, 32, 16)
    models = {}
    for placement in ("before_last_block", "after_stage"):
        torch.manual_seed(1)
        models[placement] = make(IAUnetConfig(stages=[2, 3], placement=placement)).eval()
    before, after = models["before_last_block"], models["after_stage"]
    for pa, pb in zip(plugin_params(before), plugin_params(after), strict=True):
        assert len(pa) == len(pb) and all(a.equal(b) for a, b in zip(pa, pb, strict=True))
    for stage in (2, 3):
        body = after.backbone.stages[stage].body
        assert isinstance(body[-1], IAUBlock) and isinstance(body[0], nn.Sequential)
    torch.manual_seed(1)
    plain = make(IAUnetConfig(blocks="none")).eval()
    seen = []  # the block after stage 2 sees stage 2's output of the plain backbone
    after.backbone.stages[2].body[-1].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        torch.testing.assert_close(after.features(x)[0], plain.features(x)[0])  # fresh: identity
        stage2 = plain.backbone(x, 0, 2)
    torch.testing.assert_close(seen[0], stage2)
    with torch.no_grad():
        feats = [activate(m).features(x)[0] for m in (before, after)]
    assert (feats[0] - feats[1]).abs().max() > 1e-3
