"""RGSA-RGTR: the relation module, RGSA, RGTR, the weighted triplet loss and the plugin."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import optuna
import pytest
import torch
import torch.nn.functional as F
import yaml

from bench.config import DataConfig, Defaults, EvalConfig, ModelConfig
from bench.errors import BenchError
from bench.losses import weighted_triplet
from bench.models.heads import spatial_avg
from bench.models.relation import InnerProductRelation, LinearBN, RelationModule, reduced
from bench.suite.load import load_suite
from methods.rgsa_rgtr import RGSA, RGSARGTR, RGTR, RGSARGTRConfig

SUITE = Path(__file__).resolve().parents[1] / "suites" / "ablations" / "rgsa-rgtr.yaml"


def calibrate(module: torch.nn.Module, run) -> None:
    """Put module in eval mode with BN running statistics taken from one batch (``run()``),
    perturbed, and non-trivial BN affine parameters (so that some ReLUs open, some close)."""
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for bn in bns:
        bn.momentum = 1.0
    with torch.no_grad():
        module.train()
        run()
        for bn in bns:
            bn.momentum = 0.1
            bn.running_mean.add_(0.1 * torch.randn_like(bn.running_mean))
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.7, 1.3))
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.3)
    module.eval()


def assert_mixed(r: torch.Tensor) -> None:
    """Relation vectors after ReLU: some entries zero, some positive (the test is not vacuous)."""
    assert 0.1 < (r > 0).float().mean() < 0.9


def bn_eval(bn: torch.nn.BatchNorm1d, y: torch.Tensor) -> torch.Tensor:
    return (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def bn_batch(bn: torch.nn.BatchNorm1d, y: torch.Tensor) -> torch.Tensor:
    """BN with the statistics of the rows of y: (M, D)."""
    var = y.var(0, unbiased=False)
    return (y - y.mean(0)) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias


def lin_bn(layer: LinearBN, y: torch.Tensor) -> torch.Tensor:
    return bn_eval(layer.bn, y @ layer.linear.weight.t())


def rm_direct(rm: RelationModule, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """Eq. 1-2 for one pair of C-d vectors, with BN in inference form."""
    diff = F.relu(lin_bn(rm.theta, f1)) - F.relu(lin_bn(rm.phi, f2))
    return F.relu(lin_bn(rm.w, diff))


def global_relation(rel: torch.nn.Module, feats: list[torch.Tensor], i: int) -> torch.Tensor:
    """r~_i = concat_j rel(x_i, x_j) (Eq. 4 and 8)."""
    return torch.cat([rel(feats[i], feats[j]) for j in range(len(feats))])


# --- relation module -----------------------------------------------------------------------


def test_relation_vector_of_each_pair_is_eq_1_2():
    torch.manual_seed(0)
    rm = RelationModule(16, r1=4, r2=8)
    x = torch.randn(2, 5, 16)
    calibrate(rm, lambda: rm.pairwise(x))
    out = rm.pairwise(x)
    assert_mixed(out)
    assert out.shape == (2, 5, 5, 2)
    for b in range(2):
        for i in range(5):
            for j in range(5):
                expected = rm_direct(rm, x[b, i], x[b, j])
                torch.testing.assert_close(out[b, i, j], expected)
                torch.testing.assert_close(rm(x[b, i], x[b, j]), expected)
    assert not torch.allclose(out, out.transpose(1, 2))  # RM(f1, f2) != RM(f2, f1)


def test_relation_pairwise_in_training_normalises_over_all_pairs():
    torch.manual_seed(1)
    rm = RelationModule(16, r1=4, r2=4).train()
    x = torch.randn(3, 4, 16)
    out = rm.pairwise(x)
    # the definition, with the (B, N, N, C/r1) difference tensor formed explicitly
    flat = x.reshape(-1, 16)
    theta = F.relu(bn_batch(rm.theta.bn, flat @ rm.theta.linear.weight.t())).reshape(3, 4, -1)
    phi = F.relu(bn_batch(rm.phi.bn, flat @ rm.phi.linear.weight.t())).reshape(3, 4, -1)
    diff = (theta[:, :, None] - phi[:, None, :]).reshape(-1, theta.shape[-1])
    expected = F.relu(bn_batch(rm.w.bn, diff @ rm.w.linear.weight.t())).reshape(3, 4, 4, 4)
    torch.testing.assert_close(out, expected)
    pairs = rm(x[:, :, None].expand(-1, -1, 4, -1), x[:, None].expand(-1, 4, -1, -1))
    torch.testing.assert_close(out, pairs)


def test_inner_product_relation_is_scaled_dot_product():
    x = torch.randn(2, 3, 8)
    out = InnerProductRelation(8).pairwise(x)
    assert out.shape == (2, 3, 3, 1)
    for i in range(3):
        for j in range(3):
            expected = (x[:, i] * x[:, j]).sum(-1) / math.sqrt(8)
            torch.testing.assert_close(out[:, i, j, 0], expected)


@pytest.mark.parametrize(
    ("channels", "hidden", "out"), [(2048, 64, 8), (512, 16, 2), (64, 2, 1), (16, 1, 1)]
)
def test_reduced_widths_never_drop_below_one(channels, hidden, out):
    rm = RelationModule(channels, r1=32, r2=256)
    assert (rm.theta.linear.out_features, rm.out_dim) == (hidden, out)
    assert reduced(channels, 256) == out
    assert rm.pairwise(torch.randn(2, 3, channels)).shape == (2, 3, 3, out)


# --- RGSA ----------------------------------------------------------------------------------


def make_rgsa(seed: int = 0) -> RGSA:
    torch.manual_seed(seed)
    return RGSA(16, (3, 2), RelationModule(16, r1=4, r2=8))


@pytest.mark.parametrize("bias", [30.0, -2.0])
def test_rgsa_with_constant_attention_is_average_pooling(bias):
    rgsa = make_rgsa()
    x = torch.randn(2, 3, 16, 3, 2)
    assert not torch.allclose(rgsa(x), spatial_avg(x), atol=1e-4)
    with torch.no_grad():  # BN(.) = bias at every position: a = sigmoid(bias) (1.0 for 30)
        rgsa.guided.proj.bn.weight.zero_()
        rgsa.guided.proj.bn.bias.fill_(bias)
    torch.testing.assert_close(rgsa(x), spatial_avg(x))


def test_rgsa_is_eq_3_to_6():
    rgsa = make_rgsa()
    x = torch.randn(1, 2, 16, 3, 2)
    calibrate(rgsa, lambda: rgsa(x))
    out = rgsa(x)
    w_a, relations = rgsa.guided.proj, []
    for t in range(2):
        feats = [x[0, t, :, h, w] for h in range(3) for w in range(2)]  # X^i, row-major
        num, den = torch.zeros(16), torch.zeros(16)
        for i, x_i in enumerate(feats):
            relations.append(global_relation(rgsa.guided.relation, feats, i))
            a_i = torch.sigmoid(lin_bn(w_a, torch.cat([x_i, relations[-1]])))
            num, den = num + a_i * x_i, den + a_i
        torch.testing.assert_close(out[0, t], num / den)
    assert_mixed(torch.stack(relations))


def test_rgsa_rejects_another_feature_size():
    with pytest.raises(BenchError, match="built for 3x2 feature maps"):
        make_rgsa()(torch.randn(1, 2, 16, 4, 2))


# --- RGTR ----------------------------------------------------------------------------------


def make_rgtr(frames: int, relation: torch.nn.Module | None = None) -> RGTR:
    torch.manual_seed(0)
    return RGTR(16, frames, relation or RelationModule(16, r1=4, r2=8))


def test_rgtr_is_eq_7_to_9():
    rgtr = make_rgtr(3)
    f = torch.randn(2, 3, 16)
    calibrate(rgtr, lambda: rgtr(f))
    out, relations = rgtr(f), []
    for b in range(2):
        feats = list(f[b])
        for t in range(3):
            relations.append(global_relation(rgtr.guided.relation, feats, t))
            expected = lin_bn(rgtr.guided.proj, torch.cat([feats[t], relations[-1]]))
            torch.testing.assert_close(out[b, t], expected)
    assert_mixed(torch.stack(relations))


def permute_relation_blocks(rgtr: RGTR, perm: list[int]) -> RGTR:
    """A copy whose W_R reads relation block s where the original reads block perm[s]."""
    out = copy.deepcopy(rgtr)
    c, d = 16, rgtr.guided.relation.out_dim
    weight = rgtr.guided.proj.linear.weight
    blocks = [weight[:, c + p * d : c + (p + 1) * d] for p in perm]
    with torch.no_grad():
        out.guided.proj.linear.weight.copy_(torch.cat([weight[:, :c], *blocks], dim=1))
    return out


@pytest.mark.parametrize("relation", [RelationModule(16, r1=4, r2=8), InnerProductRelation(16)])
def test_permuting_frames_permutes_rgtr_outputs(relation):
    rgtr = make_rgtr(4, relation).train()
    f, perm = torch.randn(3, 4, 16), [2, 0, 3, 1]
    out = rgtr(f)
    if isinstance(relation, RelationModule):
        assert_mixed(relation.pairwise(f))
    # Eq. 8 concatenates r(t, s) in frame order s, so W_R is order-aware: permuting the frames
    # permutes the outputs once W_R's relation blocks are permuted the same way ...
    torch.testing.assert_close(permute_relation_blocks(rgtr, perm)(f[:, perm]), out[:, perm])
    assert not torch.allclose(rgtr(f[:, perm]), out[:, perm], atol=1e-4)
    # ... and exactly, with the same module, when the blocks are tied.
    with torch.no_grad():
        w, d = rgtr.guided.proj.linear.weight, relation.out_dim
        w[:, 16:] = w[:, 16 : 16 + d].repeat(1, 4)
    torch.testing.assert_close(rgtr(f[:, perm]), rgtr(f)[:, perm])
    torch.testing.assert_close(rgtr(f[:, perm]).mean(1), rgtr(f).mean(1))


def test_rgtr_rejects_another_clip_length():
    with pytest.raises(BenchError, match="T = 4 frames"):
        make_rgtr(4)(torch.randn(2, 3, 16))


# --- weighted triplet loss -----------------------------------------------------------------


def test_weighted_triplet_matches_hand_computation():
    x = [0.0, 1.0, 3.0, 4.0, 6.0, 7.0]
    pids = [0, 0, 0, 1, 1, 1]
    losses = []
    for a in range(6):
        pos = [abs(x[a] - x[p]) for p in range(6) if pids[p] == pids[a] and p != a]
        neg = [abs(x[a] - x[n]) for n in range(6) if pids[n] != pids[a]]
        d_p = sum(d * math.exp(d) for d in pos) / sum(math.exp(d) for d in pos)  # Eq. 12
        d_n = sum(d * math.exp(-d) for d in neg) / sum(math.exp(-d) for d in neg)  # Eq. 13
        losses.append(math.log1p(math.exp(d_p - d_n)))  # Eq. 14
    feats = torch.tensor(x, dtype=torch.float64)[:, None]
    loss = weighted_triplet(feats, torch.tensor(pids))
    assert loss.item() == pytest.approx(sum(losses) / 6, rel=1e-9)


# --- the plugin ----------------------------------------------------------------------------

DATA = DataConfig(height=64, width=32, seq_len=2, p=2, k=2)


def build(data: DataConfig = DATA, **fields) -> RGSARGTR:
    torch.manual_seed(0)
    model = ModelConfig(backbone="resnet18", pretrained=False, last_stride=1)
    return RGSARGTR(RGSARGTRConfig(**fields), model, data, num_classes=3)


def input_width(module) -> int:
    return module.guided.proj.linear.in_features


@pytest.mark.parametrize(
    ("height", "r2", "relation", "n"),
    [(64, 256, "rm", 8), (64, 128, "rm", 8), (96, 256, "rm", 12), (64, 256, "inner-product", 8)],
)
def test_attention_and_refinement_input_widths(height, r2, relation, n):
    data = DataConfig(height=height, width=32, seq_len=2, p=2, k=2)
    model = build(data, r2=r2, relation=relation)
    c = model.backbone.out_channels
    assert c == 512 and model.rgsa.size == (height // 16, 2)
    if relation == "rm":  # W_A: (N/r2 + 1) x C inputs, W_R: (T/r2 + 1) x C inputs
        assert input_width(model.rgsa) == int((n / r2 + 1) * c)
        assert input_width(model.rgtr) == int((2 / r2 + 1) * c)
    else:  # a 1-d relation per position / frame
        assert input_width(model.rgsa) == c + n
        assert input_width(model.rgtr) == c + 2


def test_r1_sets_the_embedding_width():
    model = build(r1=16, r2=128)
    assert model.rgsa.guided.relation.theta.linear.out_features == 32
    assert model.rgtr.guided.relation.out_dim == 4


VARIANTS = [
    ({}, {"ce_clip", "ce_frame", "triplet"}),
    ({"relation": "inner-product"}, {"ce_clip", "ce_frame", "triplet"}),
    ({"spatial": "avg", "temporal": "avg", "loss": "ce"}, {"ce_clip", "ce_frame"}),
]


@pytest.mark.parametrize(("fields", "terms"), VARIANTS)
def test_training_step_reaches_every_learned_part(fields, terms):
    model = build(**fields).train()
    assert (model.rgsa is None, model.rgtr is None) == (
        fields.get("spatial") == "avg",
        fields.get("temporal") == "avg",
    )
    batch = {"clips": torch.randn(4, 2, 3, 64, 32), "pids": torch.tensor([0, 0, 1, 1])}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(3):
        losses = model.loss(model(batch), batch)
        assert set(losses) == terms and all(v.dim() == 0 for v in losses.values())
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert math.isfinite(history[0]) and history[-1] < history[0]
    # checked after a few steps: timm zero-initialises each residual branch's last BN, which
    # blocks the first step's gradient to the convolutions inside the branch
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_clip_feature_and_losses_are_eq_10_11_14():
    model = build().train()
    batch = {"clips": torch.randn(4, 2, 3, 64, 32), "pids": torch.tensor([0, 0, 1, 2])}
    out, pids = model(batch), batch["pids"]
    frames = model.frame_features(batch["clips"])  # train-mode BN: same batch, same statistics
    torch.testing.assert_close(out["feat"], model.rgtr(frames).mean(1))
    losses = model.loss(out, batch)
    frame_pids = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(losses["ce_frame"], F.cross_entropy(out["frame_logits"], frame_pids))
    torch.testing.assert_close(losses["ce_clip"], F.cross_entropy(out["clip_logits"], pids))
    torch.testing.assert_close(losses["triplet"], weighted_triplet(out["feat"], pids))


def test_embed_needs_the_training_clip_length_and_size():
    model = build().eval()
    with torch.no_grad():
        assert model.embed(torch.randn(3, 2, 3, 64, 32), {})["feat"].shape == (3, 512)
        with pytest.raises(BenchError, match="clips of T = 2 frames"):
            model.embed(torch.randn(1, 3, 3, 64, 32), {})
        with pytest.raises(BenchError, match="built for 4x2 feature maps"):
            model.embed(torch.randn(1, 2, 3, 96, 32), {})
        pooled = build(spatial="avg", temporal="avg").eval()
        assert pooled.embed(torch.randn(1, 3, 3, 96, 32), {})["feat"].shape == (1, 512)


def test_config_is_registered_and_strict():
    assert RGSARGTR.name == "rgsa-rgtr"
    with pytest.raises(ValueError):
        RGSARGTRConfig(spatial="max")
    with pytest.raises(ValueError):
        RGSARGTRConfig(r3=4)


def test_search_space_ties_the_test_stride_to_the_clip_length():
    params = {"seq_len": 6, "r1": 16, "r2": 128, "lr": 3e-4, "weight_decay": 5e-4}
    override = RGSARGTR.search_space(optuna.trial.FixedTrial(params))
    fields = {k: v for k, v in override.items() if k not in Defaults.model_fields}
    assert RGSARGTRConfig(**fields) == RGSARGTRConfig(r1=16, r2=128)
    assert DataConfig(**override["data"]).seq_len == 6
    assert EvalConfig(**override["eval"]) == EvalConfig(clip_stride=3, clip_norm=True)
    assert override["train"] == {"lr": 3e-4, "weight_decay": 5e-4}


def test_ablation_suite_has_the_rows_of_tables_1_to_3():
    # the suite's own dataset may be swapped for the test fixture; everything else is as written
    suite = load_suite(SUITE, ["datasets=[fixture-video]"])
    (entry,) = yaml.safe_load(SUITE.read_text())["datasets"]
    assert entry == {"name": "synthetic-video", "test_ids": 60, "distractors": 10, "max_len": 12}
    cells = [c for c in suite.cells if c.method == "rgsa-rgtr"]
    assert {c.seed for c in cells} == {0, 1, 2}  # the statistics issue: at least 3 seeds
    configs = {c.variant: c.method_config for c in cells}
    assert {(c.spatial, c.temporal, c.relation, c.loss) for c in configs.values()} >= {
        ("avg", "avg", "rm", "ce"),
        ("avg", "avg", "rm", "total"),
        ("rgsa", "avg", "rm", "total"),
        ("avg", "rgtr", "rm", "total"),
        ("rgsa", "rgtr", "rm", "ce"),
        ("rgsa", "rgtr", "inner-product", "total"),
        ("rgsa", "rgtr", "rm", "total"),
    }
    # MobileNetV2 without its head conv (C = 320, not 2048): r2 keeps the paper's relation
    # widths (8-d, 16-d), r1 the ratio between Table 2's rows
    assert {(c.r1, c.r2) for c in configs.values()} == {(2, 20), (2, 40), (4, 20), (4, 40)}
    assert {(320 // c.r2) for c in configs.values()} == {8, 16}
    assert {c.sections.data.seq_len for c in cells} == {2, 4, 6, 8}
    deviations = {(c.rgtr_residual, c.rgtr_stop_gradient, c.neck) for c in configs.values()}
    assert deviations == {
        (False, False, "none"),
        (False, False, "bn"),
        (True, False, "none"),
        (True, False, "bn"),
        (False, True, "none"),
    }
    for c in cells:  # the paper's test protocol at every clip length: clips of T, stride T/2
        ev = c.sections.eval
        assert ev.clip_norm and ev.clip_len is None, c.label
        assert ev.clip_stride == c.sections.data.seq_len // 2, c.label


def test_the_main_suites_row_is_the_form_the_ablation_reading_recommends():
    """reports/rgsa-rgtr-ablations.md: residual RGTR with BN-necks (rgtr-residual-neck-bn)."""
    suite = load_suite(SUITE.parent.parent / "video.yaml", ["datasets=[fixture-video]"])
    rows = [c for c in suite.cells if c.method == "rgsa-rgtr" and c.variant == "default"]
    config, *others = [c.method_config for c in rows]
    ablation = load_suite(SUITE, ["datasets=[fixture-video]"])
    row = next(c.method_config for c in ablation.cells if c.variant == "rgtr-residual-neck-bn")
    assert all(c == config for c in others)
    assert (config.rgtr_residual, config.neck) == (row.rgtr_residual, row.neck) == (True, "bn")


# --- deviations and the test protocol --------------------------------------------------------

BATCH = {"clips": torch.randn(4, 2, 3, 64, 32), "pids": torch.tensor([0, 0, 1, 1])}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_diff(a: torch.nn.Module, b: torch.nn.Module) -> set[str]:
    """Keys of the two state dicts that are missing from one or hold different values."""
    sa, sb = a.state_dict(), b.state_dict()
    return {
        k for k in sa.keys() | sb.keys() if k not in sa or k not in sb or not sa[k].equal(sb[k])
    }


def test_residual_rgtr_starts_as_the_identity_and_adds_the_paper_refinement():
    paper, residual = build(), build(rgtr_residual=True)
    assert n_params(paper) == n_params(residual)
    assert state_diff(paper, residual) == {"rgtr.guided.proj.bn.weight"}
    assert not residual.rgtr.guided.proj.bn.weight.any()
    f = torch.randn(4, 2, 512)
    torch.testing.assert_close(residual.rgtr(f), f)  # BN0's weight is zero: f~_t = f_t
    with torch.no_grad():
        residual.rgtr.guided.proj.bn.weight.copy_(paper.rgtr.guided.proj.bn.weight)
    torch.testing.assert_close(residual.rgtr(f), f + paper.rgtr(f))


def test_stop_gradient_changes_only_the_gradient_into_the_frame_features():
    paper, stopped = build().train(), build(rgtr_stop_gradient=True).train()
    assert state_diff(paper, stopped) == set()
    grads = []
    for model in (paper, stopped):
        losses = model.loss(model(BATCH), BATCH)
        sum(losses.values()).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
        grads[-1]["loss"] = sum(losses.values()).detach()
    torch.testing.assert_close(grads[0]["loss"], grads[1]["loss"])  # the same forward pass
    rgtr = {k for k in grads[0] if k.startswith("rgtr.") or "neck" in k}
    for k in rgtr:  # RGTR and the heads see the same inputs and upstream gradients
        torch.testing.assert_close(grads[0][k], grads[1][k], msg=k)
    upstream = [k for k in grads[0] if k.startswith(("rgsa.", "backbone."))]
    assert any(not torch.allclose(grads[0][k], grads[1][k]) for k in upstream)
    f = torch.randn(4, 2, 512, requires_grad=True)  # d f~ / d f: only through the [f_t] half
    stopped.rgtr(f).sum().backward()
    r = stopped.rgtr.guided.relation.pairwise(f.detach()).flatten(2)
    g = torch.autograd.grad(stopped.rgtr.guided.proj(torch.cat([f, r], -1)).sum(), f)[0]
    torch.testing.assert_close(f.grad, g)


def test_neck_switch_adds_bn_necks_and_nothing_else():
    paper, necked = build().eval(), build(neck="bn").eval()
    c = paper.backbone.out_channels
    assert n_params(necked) - n_params(paper) == 2 * 2 * c  # two BNs: weight and bias
    assert state_diff(paper, necked) == {
        f"{head}_neck.bn.{k}"
        for head in ("frame", "clip")
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    }
    with torch.no_grad():
        clips = BATCH["clips"]
        feat = paper.clip_feature(paper.frame_features(clips))
        torch.testing.assert_close(paper.embed(clips, {})["feat"], feat)  # the paper: f~ itself
        torch.testing.assert_close(necked.embed(clips, {})["feat"], necked.clip_neck.bn(feat))
        out = paper(BATCH)
        torch.testing.assert_close(out["clip_logits"], feat @ paper.clip_neck.classifier.weight.t())
    paper.train(), necked.train()
    lp, ln = paper.loss(paper(BATCH), BATCH), necked.loss(necked(BATCH), BATCH)
    torch.testing.assert_close(lp["triplet"], ln["triplet"])  # the triplet reads f~, pre-neck
    assert not torch.allclose(lp["ce_clip"], ln["ce_clip"])


def test_the_method_sets_the_papers_test_protocol_and_a_suite_overrides_it():
    over = ["datasets=[fixture-video]", "seeds=[0]", "ablations={}"]
    cells = {c.method: c.sections.eval for c in load_suite(SUITE, over).cells}
    assert cells["rgsa-rgtr"] == EvalConfig(batch_size=64, clip_stride=2, clip_norm=True)
    # other methods keep the harness defaults (the suite sets the main job's batch size)
    assert cells["baseline"] == EvalConfig(batch_size=64)
    explicit = [*over, "eval.clip_norm=false", "method_config.rgsa-rgtr.eval={clip_stride: 1}"]
    cells = {c.method: c.sections.eval for c in load_suite(SUITE, explicit).cells}
    assert cells["rgsa-rgtr"] == EvalConfig(batch_size=64, clip_stride=1, clip_norm=False)
    long = load_suite(SUITE, [*over, "data.seq_len=6"]).cells
    assert [c.sections.eval.clip_stride for c in long if c.method == "rgsa-rgtr"] == [3]
