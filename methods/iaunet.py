"""IAUnet (Hou et al., TNNLS 2020): interaction-aggregation-update blocks inside a timm CNN.

An IAU block (CIAU then STIAU, each ``Y = F + BN(E)``) is inserted right before the last
residual block of the chosen backbone stages (``placement: after_stage``: after the stage, as
the authors' image code does); it sees the clip feature map F: (B, T, D, H, W), so it relates
body parts across frames (image mode: T = 1). The head is the baseline's (temporal average
pooling, BN-neck, cosine at test). Loss (eq. 17): ``L_cls + lambda1 * L_tri + lambda2 * L_p``.
Equation numbers are the paper's; the resolved ambiguities are those of docs/methods.md, section
"IAUnet".

Why the global context u cancels (eqs. 1-4): W_r is a weight vector (a linear map 2D -> 1), so
``W_r^T [|p_j - p_k|, u] = w_d^T |p_j - p_k| + w_u^T u``. The second term is one number per clip,
the same for every entry of every row of R, and a softmax is invariant to adding a constant to
a row: R, and so the block, does not depend on u through the relations, and w_u gets no
gradient. This is faithful (the paper's "weight vector"; the authors' code is a 1x1 conv
followed by BatchNorm, no nonlinearity). ``relation_norm: bn`` adds that BatchNorm on the
logits: in training its batch statistics mix the clips' u terms, so u then acts (as a learned
temperature of the softmax) and w_u learns; with running statistics at test it cancels again.
(u still enters the frame update W_fu, eq. 7.)

Probes (docs/probes.md): the part attention's IoU with the exact part masks, and how much a
part's feature changes when a part is blacked out, before and after the relations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bench.config import DataConfig, ModelConfig
from bench.errors import BenchError, DataError
from bench.losses import batch_hard_triplet, cross_entropy
from bench.method import Batch, Embedding, Method
from bench.models.backbone import Backbone, ClipModule
from bench.models.context_blocks import NonLocal, ResidualBN, SqueezeExcitation, per_frame
from bench.models.heads import BNNeck, temporal_avg
from bench.models.probes import AttentionView, ProbeBatch, relative_change, soft_iou
from bench.registry import register_method
from methods.config.iaunet import IAUnetConfig

N_PARTS = 4  # head, upper body, lower body, shoes: the labels 1..4 of a part mask
PART_LABELS = ("head", "upper body", "lower body", "shoes")
STAGE_CHOICES = {"1": [1], "2": [2], "3": [3], "4": [4], "2,3": [2, 3]}


class PartDivision(nn.Module):
    """Learned part division unit (eqs. 8-9): ``A = sigmoid(W_a * F + b_a)``,
    ``p[t, n] = sum_hw A[t, n, h, w] F[t, :, h, w] / (H W)``.

    forward(x: (B, T, D, H, W)) -> parts (B, T, N, D), attention logits (B, T, N, H, W).
    """

    def __init__(self, dim: int, parts: int = N_PARTS):
        super().__init__()
        self.attention = nn.Conv2d(dim, parts, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = per_frame(self.attention, x)
        area = x.shape[-2] * x.shape[-1]
        parts = torch.einsum("btnhw,btdhw->btnd", logits.sigmoid(), x) / area
        return parts, logits


class StripeDivision(nn.Module):
    """Fixed part division into N equal horizontal bands, each average-pooled (the paper's
    CIFAR-100 variant, sec. IV-A5). forward(x: (B, T, D, H, W)) -> parts (B, T, N, D), None."""

    def __init__(self, parts: int = N_PARTS):
        super().__init__()
        self.parts = parts

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        b, t, d = x.shape[:3]
        bands = F.adaptive_avg_pool2d(x.flatten(0, 1), (self.parts, 1))  # (B*T, D, N, 1)
        return bands.reshape(b, t, d, self.parts).transpose(2, 3), None


def structure_mask(
    frames: int, parts: int, relations: str, device: torch.device | None = None
) -> torch.Tensor:
    """The structural support of R (eq. 3), self-relations excluded: (TN, TN) bool.

    Row i = t * N + n relates part n of frame t to the other parts of frame t (spatial) and
    to part n of the other frames (temporal): N + T - 2 entries for spatio-temporal.
    """
    t = torch.arange(frames, device=device).repeat_interleave(parts)
    n = torch.arange(parts, device=device).repeat(frames)
    same_t, same_n = t[:, None] == t[None], n[:, None] == n[None]
    spatial, temporal = same_t & ~same_n, same_n & ~same_t
    supports = {"spatial": spatial, "temporal": temporal, "spatio-temporal": spatial | temporal}
    return supports[relations]


def masked_softmax(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """The modified softmax of eq. 4: each row normalised over its support only, zero
    elsewhere; a row without support (temporal relations at T = 1) is all zero."""
    empty = ~support.any(-1, keepdim=True)
    logits = logits.masked_fill(~support, float("-inf")).masked_fill(empty, 0.0)
    return torch.softmax(logits, dim=-1) * support


class PairRelation(nn.Module):
    """Relation logits between the M members of each group (eqs. 1-2).

    subnet: ``r[j, k] = W_r^T [|x_j - x_k|, u]`` (W_r: 2D -> 1, shared by spatial and temporal
    relations); l2 (STIAU-L2, Table IX): ``r[j, k] = -||x_j - x_k||^2``. ``norm: bn`` (the
    authors' code) applies a 1-channel BatchNorm to the logits of all B x G x M x M pairs.
    forward(x: (B, G, M, D), u: (B, D)) -> (B, G, M, M).
    """

    def __init__(self, dim: int, kind: Literal["subnet", "l2"], norm: str = "none"):
        super().__init__()
        self.dim = dim
        self.w_r = nn.Linear(2 * dim, 1, bias=False) if kind == "subnet" else None
        self.norm = nn.BatchNorm1d(1) if norm == "bn" else None

    def logits(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        diff = x[:, :, :, None] - x[:, :, None, :]  # (B, G, M, M, D)
        if self.w_r is None:
            return -diff.pow(2).sum(-1)
        w_diff, w_u = self.w_r.weight[0].split(self.dim)
        return diff.abs() @ w_diff + (u @ w_u)[:, None, None, None]

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r = self.logits(x, u)
        return r if self.norm is None else self.norm(r.reshape(-1, 1)).reshape(r.shape)


def stripe_maps(frames: torch.Tensor, parts: int = N_PARTS) -> torch.Tensor:
    """The fixed division's maps for feature maps (B, T, D, h, w): (B, T, N, h, w), 1 on the
    rows of band n (the rows adaptive average pooling gives it), else 0."""
    b, t, _, h, w = frames.shape
    rows = torch.arange(h, device=frames.device)
    starts = torch.tensor([n * h // parts for n in range(parts)], device=frames.device)
    ends = torch.tensor([-(-(n + 1) * h // parts) for n in range(parts)], device=frames.device)
    bands = ((rows >= starts[:, None]) & (rows < ends[:, None])).float()  # (N, h)
    return bands[:, :, None].expand(parts, h, w).expand(b, t, parts, h, w)


class STIAUState(NamedTuple):
    """One STIAU call: parts p (B, T, N, D) (eqs. 8-9), updated parts p^ (B, T, N, D) (eq. 6),
    part attention logits (B, T, N, H, W) or None for stripes, relations R (B, TN, TN)
    (eqs. 1-4) and the global context u (B, D)."""

    parts: torch.Tensor
    updated: torch.Tensor
    attention: torch.Tensor | None
    relations: torch.Tensor
    context: torch.Tensor


class STIAU(nn.Module):
    """Spatial-temporal interaction-aggregation-update (sec. III-A, eqs. 1-9).

    forward(x: (B, T, D, H, W)) -> E_S: (B, T, D), one vector per frame. The part attention
    logits of the last call, (B, T, N, H, W) or None for stripes, wait in ``last_attention``
    for L_p until :meth:`pop_attention`. :meth:`relate` gives the steps before the frame update.
    """

    def __init__(self, dim: int, cfg: IAUnetConfig):
        super().__init__()
        self.relations = cfg.relations
        self.divide = PartDivision(dim) if cfg.part_division == "learned" else StripeDivision()
        self.relation = PairRelation(dim, cfg.relation_fn, cfg.relation_norm)
        self.part_update = nn.Linear(2 * dim, dim, bias=False)  # W_pu, eq. 6
        self.frame_update = nn.Linear(2 * dim, dim, bias=False)  # W_fu, eq. 7
        self.last_attention: torch.Tensor | None = None

    def relation_map(self, parts: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """parts: (B, T, N, D), u: (B, D) -> R: (B, TN, TN), row i = t * N + n (eqs. 1-4)."""
        b, t, n, _ = parts.shape
        logits = parts.new_zeros(b, t, n, t, n)
        if self.relations != "temporal":  # logits[:, t, n, t, k] = S_t[n, k]
            logits = logits + self.relation(parts, u)[:, :, :, None, :]
        if self.relations != "spatial":  # logits[:, t, n, s, n] = T_n[t, s]
            temporal = self.relation(parts.transpose(1, 2), u).permute(0, 2, 1, 3)[..., None]
            same_frame = torch.eye(t, dtype=torch.bool, device=parts.device)[:, None, :, None]
            logits = torch.where(same_frame, logits, temporal)
        support = structure_mask(t, n, self.relations, parts.device)
        return masked_softmax(logits.reshape(b, t * n, t * n), support)

    def relate(self, x: torch.Tensor) -> STIAUState:
        """x: (B, T, D, H, W) -> the parts, their relations and the updated parts."""
        parts, logits = self.divide(x)
        b, t, n, d = parts.shape
        u = x.mean(dim=(1, 3, 4))  # global context: GAP over T, H, W
        relations = self.relation_map(parts, u)
        z = relations @ parts.reshape(b, t * n, d)  # eq. 5
        p_hat = self.part_update(torch.cat([parts, z.reshape(b, t, n, d)], dim=-1))  # eq. 6
        return STIAUState(parts, p_hat, logits, relations, u)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self.relate(x)
        self.last_attention = state.attention
        b, t, _, d = state.parts.shape
        u = state.context[:, None].expand(b, t, d)
        return self.frame_update(torch.cat([state.updated.mean(2), u], -1))  # eq. 7

    def pop_attention(self) -> torch.Tensor | None:
        attention, self.last_attention = self.last_attention, None
        return attention


def channel_relation(f: torch.Tensor, kind: Literal["dot", "l2"]) -> torch.Tensor:
    """Channel relation map C (eq. 11) of f: (B, T*D, H*W) -> (B, T*D, T*D), rows summing to 1.

    dot: ``C = softmax_rows(f f^T)``; l2 (CIAU-L2, Table IX): ``softmax_rows(-||f_i - f_j||^2)``.
    """
    gram = f @ f.transpose(1, 2)
    if kind == "l2":
        sq = gram.diagonal(dim1=1, dim2=2)
        gram = 2 * gram - sq[:, :, None] - sq[:, None, :]
    return torch.softmax(gram, dim=-1)


class CIAU(nn.Module):
    """Channel interaction-aggregation-update (sec. III-B, eqs. 11-13): the channels of all
    frames interact, ``Z_C = C F``, ``E_C = W_cu * Z_C + b_cu`` (1x1 conv, D -> D).

    forward(x: (B, T, D, H, W)) -> E_C: (B, T, D, H, W).
    """

    def __init__(self, dim: int, kind: Literal["dot", "l2"]):
        super().__init__()
        self.kind = kind
        self.update = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(3).flatten(1, 2)  # (B, T*D, H*W)
        z = channel_relation(f, self.kind) @ f  # eq. 12
        return per_frame(self.update, z.reshape(x.shape))


class IAUBlock(ClipModule):
    """Units in sequence (residual units, eq. 14, or SE gating), or residual units in parallel:
    ``Y = F + sum_i BN(E_i)`` (Table X). forward(x: (B, T, D, H, W)) -> (B, T, D, H, W)."""

    def __init__(self, units: list[nn.Module], parallel: bool = False):
        super().__init__()
        self.units = nn.ModuleList(units)
        self.parallel = parallel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.parallel:
            return x + sum(unit.delta(x) for unit in self.units)
        for unit in self.units:
            x = unit(x)
        return x


def build_block(cfg: IAUnetConfig, dim: int) -> IAUBlock:
    """The block ``cfg.blocks`` names, for D = ``dim`` channels ("ciau-stiau" = CIAU then STIAU;
    "se" = SE gating ``Y = F * s``, "se-residual" = ``Y = F + BN(F * s)``)."""
    if cfg.blocks == "se":
        return IAUBlock([SqueezeExcitation(dim)])
    operations = {
        "stiau": lambda: STIAU(dim, cfg),
        "ciau": lambda: CIAU(dim, cfg.channel_relation),
        "nonlocal": lambda: NonLocal(dim),
        "se": lambda: SqueezeExcitation(dim),
    }
    names = {"parallel": ["stiau", "ciau"], "se-residual": ["se"]}.get(
        cfg.blocks, cfg.blocks.split("-")
    )
    units = [ResidualBN(operations[name](), dim) for name in names]
    return IAUBlock(units, parallel=cfg.blocks == "parallel")


def part_mask_targets(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Part label maps (B, T, H, W) in 0..N -> (B, T, N, h, w): the fraction of each feature
    cell covered by parts 1..N (one-hot channels area-resized, so thin parts such as shoes
    survive a stride-8 or -16 map where nearest sampling would alias them away)."""
    onehot = F.one_hot(masks, N_PARTS + 1)[..., 1:].permute(0, 1, 4, 2, 3).float()
    resized = F.adaptive_avg_pool2d(onehot.flatten(0, 1), size)
    return resized.reshape(*masks.shape[:2], N_PARTS, *size)


def part_mask_loss(attention: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
    """L_p (eq. 10): binary cross-entropy between A = sigmoid(logits) and the resized masks,
    averaged over B, T, N, H, W, then over the STIAU blocks.

    attention: logits (B, T, N, h, w) of each block; masks: (B, T, H, W) long in 0..N.
    """
    losses = [
        F.binary_cross_entropy_with_logits(a, part_mask_targets(masks, a.shape[-2:]))
        for a in attention
    ]
    return torch.stack(losses).mean()


def check_part_masks(batch: Batch) -> torch.Tensor:
    """batch['part_masks'], checked against the clips: (B, T, H, W) integer labels in 0..N."""
    if "part_masks" not in batch:
        raise BenchError(
            "iaunet: L_p (lambda_p > 0, part_division: learned) needs batch['part_masks'], which "
            "this dataset does not provide; set lambda_p: 0 or part_division: stripes"
        )
    masks, clips = batch["part_masks"], batch["clips"]
    if masks.dim() != 4 or masks.shape[:2] != clips.shape[:2]:
        raise DataError(
            f"part_masks: expected shape (B, T, H, W) = {tuple(clips.shape[:2])} x "
            f"(H, W), got {tuple(masks.shape)}"
        )
    if masks.is_floating_point() or masks.min() < 0 or masks.max() > N_PARTS:
        raise DataError(
            f"part_masks: expected integer labels 0..{N_PARTS} (0 = background), "
            f"got {masks.dtype} in [{masks.min().item()}, {masks.max().item()}]"
        )
    return masks.long()


def default_stages(seq_len: int) -> list[int]:
    """The paper's placement: stage 2 for video, stages 2 and 3 for images (sec. III-D)."""
    return [2] if seq_len > 1 else [2, 3]


@register_method("iaunet")
class IAUnet(Method):
    Config = IAUnetConfig
    version = "1"  # bump when results change for a reason the code does not show
    probe_names = {
        "iaunet.part_iou": "soft IoU of the part attention (or the stripes) with the exact part "
        "masks area-resized to its map, over the probed frames (mean over STIAU blocks)",
        "iaunet.own_change_raw": "relative change of a part's feature when that part's pixels "
        "are blacked out in the clip's middle frame, before the relations (p, eq. 9)",
        "iaunet.own_change_related": "the same after the relations (the updated part, eq. 6)",
        "iaunet.other_change_raw": "relative change of the other parts' features in that frame "
        "when one part is blacked out, before the relations",
        "iaunet.other_change_related": "the same after the relations",
    }

    def __init__(
        self, config: IAUnetConfig, model: ModelConfig, data: DataConfig, num_classes: int
    ):
        super().__init__(config, model, data, num_classes)
        self.backbone = Backbone(model)
        self.stages = config.stages or default_stages(data.seq_len)
        if config.blocks != "none":
            for stage in self.stages:
                if config.placement == "after_stage":
                    block = build_block(config, self.backbone.channels[stage])
                    self.backbone.insert_after_stage(stage, block)
                else:
                    block = build_block(config, self.backbone.last_block_channels(stage))
                    self.backbone.insert_before_last_block(stage, block)
        self.neck = BNNeck(self.backbone.out_channels, num_classes)

    @classmethod
    def adapt_config(
        cls, config: IAUnetConfig, available: frozenset[str]
    ) -> tuple[IAUnetConfig, list[str]]:
        """Without part masks, a learned part division trains with lambda_p = 0
        (docs/methods.md#iaunet-ambiguities)."""
        if "part_masks" in available or not config.uses_part_loss:
            return config, []
        note = (
            "iaunet: the dataset provides no part masks, so L_p is off: the learned part "
            f"division trains unsupervised (lambda_p {config.lambda_p} -> 0, the paper's "
            "'w/o L_p' row); set part_division: stripes for fixed horizontal bands instead"
        )
        return config.model_copy(update={"lambda_p": 0.0}), [note]

    @classmethod
    def aux_inputs(cls, config: IAUnetConfig) -> frozenset[str]:
        """Part masks, read by L_p only."""
        return frozenset({"part_masks"} if config.uses_part_loss else ())

    def features(self, clips: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """clips: (B, T, C, H, W) -> clip feature (B, D) (spatial then temporal averaging) and
        the part attention logits (B, T, N, h, w) of each STIAU with a learned division."""
        feat = temporal_avg(self.backbone(clips))
        stiaus = [m for m in self.modules() if isinstance(m, STIAU)]
        attention = [m.pop_attention() for m in stiaus]
        return feat, [a for a in attention if a is not None]

    def forward(self, batch: Batch) -> dict[str, Any]:
        feat, attention = self.features(batch["clips"])
        _, logits = self.neck(feat)
        return {"feat": feat, "logits": logits, "attention": attention}

    def loss(self, outputs: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        """Eq. 17, each term weighted: ce, lambda1 * triplet, lambda2 * part_mask."""
        cfg, pids = self.config, batch["pids"]
        terms = {"ce": cross_entropy(outputs["logits"], pids)}
        if cfg.lambda_tri > 0:
            tri = batch_hard_triplet(outputs["feat"], pids, cfg.triplet_margin, "cosine")
            terms["triplet"] = cfg.lambda_tri * tri
        if cfg.uses_part_loss:
            lp = part_mask_loss(outputs["attention"], check_part_masks(batch))
            terms["part_mask"] = cfg.lambda_p * lp
        return terms

    def embed(self, clips: torch.Tensor, aux: Batch) -> Embedding:
        z, _ = self.neck(self.features(clips)[0])
        return {"feat": z}

    def stiau_states(self, clips: torch.Tensor) -> list[tuple[STIAUState, torch.Tensor]]:
        """Each STIAU's state on a forward of ``clips``, with its part maps (B, T, N, h, w) in
        [0, 1]: the attention A (eq. 8) or the stripes."""
        inputs: dict[nn.Module, torch.Tensor] = {}
        stiaus = [m for m in self.modules() if isinstance(m, STIAU)]
        hooks = [
            m.register_forward_hook(lambda mod, args, _: inputs.__setitem__(mod, args[0]))
            for m in stiaus
        ]
        try:
            self.features(clips)
        finally:
            for hook in hooks:
                hook.remove()
        out = []
        for m in stiaus:
            state = m.relate(inputs[m])
            maps = stripe_maps(inputs[m]) if state.attention is None else state.attention.sigmoid()
            out.append((state, maps))
        return out

    def probes(self, batches: Iterable[ProbeBatch]) -> dict[str, float]:
        """The part IoU and the blackout changes (``probe_names``); none without an STIAU."""
        if not any(isinstance(m, STIAU) for m in self.modules()):
            return {}
        overlap: dict[int, list[float]] = {}
        changes: dict[str, list[torch.Tensor]] = {}
        for batch in batches:
            clean = self.stiau_states(batch.clips)
            for i, (_, maps) in enumerate(clean):
                lo, hi = soft_iou(maps, part_mask_targets(batch.masks, maps.shape[-2:]))
                sums = overlap.setdefault(i, [0.0, 0.0])
                sums[0], sums[1] = sums[0] + lo, sums[1] + hi
            for name, values in self._blackout_changes(batch, clean).items():
                changes.setdefault(name, []).append(values)
        out = {"iaunet.part_iou": sum(lo / hi for lo, hi in overlap.values()) / len(overlap)}
        return out | {f"iaunet.{k}": float(torch.cat(v).mean()) for k, v in changes.items()}

    def _blackout_changes(
        self, batch: ProbeBatch, clean: list[tuple[STIAUState, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Relative changes of the parts' features in the middle frame when each part's exact
        pixels there are set to 0 (the mean colour), own part and others, raw and related."""
        t0 = batch.clips.shape[1] // 2
        out: dict[str, list[torch.Tensor]] = {}
        for k in range(N_PARTS):
            region = batch.masks[:, t0] == k + 1  # (B, H, W)
            present = region.flatten(1).any(1)
            if not present.any():
                continue
            clips = batch.clips.clone()
            clips[:, t0] = clips[:, t0].masked_fill(region[:, None], 0.0)
            others = [n for n in range(N_PARTS) if n != k]
            for (before, _), (after, _) in zip(clean, self.stiau_states(clips), strict=True):
                for kind, a, b in (
                    ("raw", before.parts, after.parts),
                    ("related", before.updated, after.updated),
                ):
                    change = relative_change(a[:, t0], b[:, t0])[present]  # (b, N)
                    out.setdefault(f"own_change_{kind}", []).append(change[:, k])
                    out.setdefault(f"other_change_{kind}", []).append(change[:, others].flatten())
        return {name: torch.cat(values) for name, values in out.items()}

    def attention(self, clips: torch.Tensor, aux: Batch) -> AttentionView | None:
        """Each STIAU's part maps and its relations between the T x N parts."""
        states = self.stiau_states(clips)
        if not states:
            return None
        view = AttentionView()
        for i, (state, maps) in enumerate(states):
            block = f"stage {self.stages[i]}" if i < len(self.stages) else f"block {i}"
            for n, name in enumerate(PART_LABELS):
                view.maps[f"{block} {name}"] = maps[0, :, n]
            t = maps.shape[1]
            labels = [f"t{f} {name}" for f in range(t) for name in PART_LABELS]
            view.matrices[f"{block} relations R"] = (state.relations[0], labels)
        return view

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """Method.search_space's lr and weight decay, plus the loss weights, margin, stages."""
        return {
            **Method.search_space(trial),
            "triplet_margin": trial.suggest_float("triplet_margin", 0.1, 0.5),
            "lambda_tri": trial.suggest_float("lambda_tri", 0.0, 2.0),
            "lambda_p": trial.suggest_float("lambda_p", 0.0, 1.0),
            "stages": STAGE_CHOICES[trial.suggest_categorical("stages", list(STAGE_CHOICES))],
        }
