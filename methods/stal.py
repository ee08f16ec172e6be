"""STAL: spatial-temporal attention-aware learning (Chen et al., TIP 2019; docs/methods.md#stal).

A timm CNN split after stage ``split_stage`` into a low-level and a high-level part.

- Global branch: residual attention (RAN) on the low-level map, the high-level stages, spatial
  and temporal average pooling -> g (B, Dg).
- Local branch: six part boxes per frame (from the 14 joints, eq. 7, or prior boxes), RoI-align
  on the low-level map to s x s, one part network per part -> f[r, t] (B, T, R, Dl) (eq. 1).
- STAN: per-frame scores (R outputs shared across frames), sigmoid, L1-normalised over the
  T x R map -> a (B, T, R).
- Aggregation (eq. 9) f[r] = sum_t a[r,t] f[r,t] / sum_t a[r,t], abar[r] = mean_t a[r,t];
  distance (eq. 8) d_l = sum_r abar_i[r] abar_j[r] / (|abar_i| |abar_j|) |f_i[r] - f_j[r]|,
  d_g = |g_i - g_j|, d = d_l + rate * d_g.
- Loss (eq. 3-6): triplet on d_g (m_g 1.2) + lambda (0.3) x triplet on d_l (m_l 0.8), both
  batch-hard; cross-entropy on g; consistency cross-entropy on every f[r, t] with one
  classifier per part shared across frames.

The embedding of a clip is ``{"g": (B, Dg), "f": (B, R, Dl), "a": (B, R)}``; :meth:`STAL.aggregate`
and :meth:`STAL.distance` define how clips combine and how tracklets compare. Probe
(docs/probes.md): how STAN's unit scores rank against each part's exact visibility.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from timm.layers import ConvNormAct
from torch import nn

from bench.config import DataConfig, ModelConfig
from bench.errors import BenchError, DataError
from bench.eval.distance import euclidean
from bench.losses import cross_entropy, triplet_from_distances
from bench.method import Batch, Embedding, Method
from bench.models.backbone import Backbone, Stage
from bench.models.heads import spatial_avg
from bench.models.part_boxes import (
    NUM_JOINTS,
    PART_NAMES,
    pad_boxes,
    part_boxes,
    part_visibility,
    prior_boxes,
    roi_features,
)
from bench.models.probes import AttentionView, ProbeBatch, rank_correlation
from bench.models.residual_attention import ResidualAttention
from bench.registry import register_method
from methods.config.stal import STALConfig


class PartNet(nn.Module):
    """A part-specific network (eq. 1; Table I ``*_part``): stages over the RoI maps, spatial
    average pooling, FC. (B, T, C, s, s) -> f[r, t]: (B, T, D)."""

    def __init__(self, stages: list[Stage], channels: int, dim: int):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(channels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        y = x.flatten(0, 1)
        for stage in self.stages:
            y = stage(y, t)
        return self.fc(spatial_avg(y.unflatten(0, (b, t))))


def make_part_net(kind: str, backbone: Backbone, split: int, dim: int) -> PartNet:
    """``copy``: the backbone's stages after ``split`` (own weights, same init); ``light``: a
    1x1 conv to C/2 and a 3x3 conv of stride 2."""
    if kind == "copy":
        stages = [copy.deepcopy(backbone.stages[k]) for k in range(split + 1, 5)]
        return PartNet(stages, backbone.out_channels, dim)
    c = backbone.channels[split]
    light = Stage([ConvNormAct(c, c // 2, 1), ConvNormAct(c // 2, c // 2, 3, stride=2)])
    return PartNet([light], c // 2, dim)


class STAN(nn.Module):
    """Spatial-temporal attention network (sec. III-C): low-level maps (B, T, C, h, w) ->
    sigmoid scores s (B, T, R).

    7x7 conv, two 3x3 convs, max pool, FC. The FC scores each frame (R outputs shared across
    frames, docs/methods.md) so any T works; the 7x7 max pool is an adaptive max pool to the 2 x 2
    grid it gives on the paper's 14 x 14 map, so any input size works.
    """

    def __init__(self, channels: int, parts: int, width: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            ConvNormAct(channels, width, 7),
            ConvNormAct(width, width, 3),
            ConvNormAct(width, width, 3),
            nn.AdaptiveMaxPool2d(2),
            nn.Flatten(),
        )
        self.score = nn.Linear(4 * width, parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        return torch.sigmoid(self.score(self.features(x.flatten(0, 1)))).reshape(b, t, -1)


def l1_normalise(scores: torch.Tensor) -> torch.Tensor:
    """(B, T, R) scores -> attention map a summing to 1 over each clip's T x R map."""
    return scores / scores.sum((1, 2), keepdim=True)


def temporal_pool(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. 9: f (B, T, R, D), weights w (B, T, R) -> sum_t w f / sum_t w: (B, R, D)."""
    return (w[..., None] * f).sum(1) / w.sum(1)[..., None]


def local_distance(
    fq: torch.Tensor, aq: torch.Tensor, fg: torch.Tensor, ag: torch.Tensor
) -> torch.Tensor:
    """Eq. 8 for all pairs: f (Q, R, D), a (Q, R) vs (G, R, D), (G, R) -> d_l (Q, G).

    R per-part Euclidean matrices (R, Q, G), weighted by the outer product of the
    L2-normalised part scores and summed over parts. Equal scores give the mean over parts.
    """
    per_part = euclidean(fq.transpose(0, 1), fg.transpose(0, 1))
    wq, wg = nn.functional.normalize(aq, dim=1), nn.functional.normalize(ag, dim=1)
    return torch.einsum("rqg,qr,gr->qg", per_part, wq, wg)


def consistency_loss(logits: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
    """Eq. 6 as cross-entropy: logits (B, T, R, K) of every f[r, t] -> sum over parts of the
    mean over clips and frames (one softmax loss per part, as in the paper's Caffe model)."""
    _, t, r, k = logits.shape
    return r * cross_entropy(logits.reshape(-1, k), pids.repeat_interleave(t * r))


def _keypoints(source: Batch, clips: torch.Tensor) -> torch.Tensor:
    """The batch's keypoints (B, T, 14, 3), checked against the clips."""
    b, t = clips.shape[:2]
    kp = source.get("keypoints")
    if kp is None:
        raise BenchError(
            "stal with parts: keypoints needs 'keypoints' (B, T, 14, 3) in the batch, and "
            "there are none; use a dataset with keypoints or set parts: prior"
        )
    if tuple(kp.shape) != (b, t, NUM_JOINTS, 3):
        raise DataError(
            f"batch 'keypoints': expected shape ({b}, {t}, {NUM_JOINTS}, 3) to match the clips "
            f"(x, y, visibility of 14 joints per frame), got {tuple(kp.shape)}"
        )
    return kp.to(clips.dtype)


@register_method("stal")
class STAL(Method):
    """STAL over any timm CNN; see the module docstring."""

    Config = STALConfig
    frame_separable = True  # frame-wise CNN, RAN, STAN and part nets; eq. 9 pools frames
    version = "1"  # bump when results change for a reason the code does not show
    probe_names = {
        "stal.visibility_rank_corr": "Spearman correlation, over the probed (frame, part) units, "
        "of STAN's score with the part's exact visibility in that frame: 0 if the frame is "
        "misdetected, else the share of its joints that no occluder covers",
    }

    def __init__(self, config: STALConfig, model: ModelConfig, data: DataConfig, num_classes: int):
        super().__init__(config, model, data, num_classes)
        self.backbone = Backbone(model)
        split, parts = config.split_stage, len(PART_NAMES)
        if config.trains("global"):
            width = self.backbone.out_channels
            self.ran = ResidualAttention(self.backbone.channels[split]) if config.ran else None
            self.project = nn.Linear(width, config.global_dim) if config.global_dim else None
            self.classifier = nn.Linear(config.global_dim or width, num_classes)
        if config.trains("local"):
            self.part_nets = nn.ModuleList(
                make_part_net(config.part_net, self.backbone, split, config.local_dim)
                for _ in range(parts)
            )
            self.stan = STAN(self.backbone.channels[split], parts)
            self.part_classifiers = nn.ModuleList(
                nn.Linear(config.local_dim, num_classes) for _ in range(parts)
            )

    @classmethod
    def adapt_config(
        cls, config: STALConfig, available: frozenset[str]
    ) -> tuple[STALConfig, list[str]]:
        if cls.aux_inputs(config) - available:
            note = (
                "stal: the dataset provides no keypoints; part boxes fall back to prior boxes "
                "from body proportions (parts: prior)"
            )
            return config.model_copy(update={"parts": "prior"}), [note]
        return config, []

    @classmethod
    def aux_inputs(cls, config: STALConfig) -> frozenset[str]:
        """Keypoints, when part boxes come from joints and the local branch is trained."""
        uses = config.parts == "keypoints" and config.trains("local")
        return frozenset({"keypoints"}) if uses else frozenset()

    @property
    def _temporal(self) -> bool:
        return self.config.attention in ("st", "temporal")

    @property
    def _spatial(self) -> bool:
        return self.config.attention in ("st", "spatial")

    def _global(self, low: torch.Tensor) -> torch.Tensor:
        """Low-level maps (B, T, C, h, w) -> g (B, Dg): RAN, high-level stages, pooling."""
        if self.ran is not None:
            low = self.ran(low.flatten(0, 1)).unflatten(0, low.shape[:2])
        g = spatial_avg(self.backbone(low, self.config.split_stage + 1, 4)).mean(1)
        return g if self.project is None else self.project(g)

    def _boxes(self, low: torch.Tensor, source: Batch, clips: torch.Tensor) -> torch.Tensor:
        """Part boxes (B, T, R, 4) in input pixels, at least ``min_box_cells`` map cells wide."""
        (b, t, _, fh, fw), size = low.shape, tuple(clips.shape[-2:])
        if self.config.parts == "prior":
            boxes = prior_boxes(size, low.device).expand(b, t, -1, -1)
        else:
            boxes = part_boxes(_keypoints(source, clips), size)
        cells = self.config.min_box_cells
        return pad_boxes(boxes, (cells * size[1] / fw, cells * size[0] / fh), size)

    def _local(
        self, low: torch.Tensor, source: Batch, clips: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> part features f[r, t] (B, T, R, Dl) and STAN scores s (B, T, R) in (0, 1)."""
        boxes = self._boxes(low, source, clips)
        rois = roi_features(low, boxes, tuple(clips.shape[-2:]), self.config.roi_size)
        f = torch.stack([net(rois[:, :, r]) for r, net in enumerate(self.part_nets)], 2)
        return f, self.stan(low)

    def forward(self, batch: Batch) -> dict[str, Any]:
        clips = batch["clips"]
        low = self.backbone(clips, 0, self.config.split_stage)
        out: dict[str, Any] = {}
        if self.config.trains("global"):
            g = self._global(low)
            out.update(g=g, logits=self.classifier(g))
        if self.config.trains("local"):
            f, s = self._local(low, batch, clips)
            logits = [c(f[:, :, r]) for r, c in enumerate(self.part_classifiers)]
            out.update(f_frames=f, a=l1_normalise(s), part_logits=torch.stack(logits, 2))
        return out

    def loss(self, outputs: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        cfg, pids = self.config, batch["pids"]
        terms = {}
        if "g" in outputs:
            g = outputs["g"]
            terms["tri_global"] = triplet_from_distances(euclidean(g, g), pids, cfg.margin_global)
            terms["ce_global"] = cross_entropy(outputs["logits"], pids)
        if "a" in outputs:
            a = outputs["a"]
            f, abar = temporal_pool(outputs["f_frames"], a), a.mean(1)
            d_l = local_distance(f, abar, f, abar)
            tri = triplet_from_distances(d_l, pids, cfg.margin_local)
            terms["tri_local"] = cfg.local_weight * tri
            terms["consistency"] = consistency_loss(outputs["part_logits"], pids)
        return terms

    def embed(self, clips: torch.Tensor, aux: Batch) -> Embedding:
        """clips (B, T, C, H, W), any T -> {"g": (B, Dg), "f": (B, R, Dl), "a": (B, R)} (the
        tested branches only).

        ``f`` is eq. 9 with the STAN scores (a plain mean when temporal attention is off);
        ``a`` is the clip's mean sigmoid score per part: abar of eq. 8 before the clip's L1
        normaliser, a positive factor that eq. 8 divides out, kept so that clips pool exactly.
        """
        low = self.backbone(clips, 0, self.config.split_stage)
        emb = {}
        if self.config.tests("global"):
            emb["g"] = self._global(low)
        if self.config.tests("local"):
            f, s = self._local(low, aux, clips)
            emb["f"] = temporal_pool(f, s if self._temporal else torch.ones_like(s))
            emb["a"] = s.mean(1)
        return emb

    def aggregate(self, clips: Embedding, owner: torch.Tensor, count: int, norm: bool) -> Embedding:
        """Clips -> tracklets, so that equal-length clips give what the whole tracklet would.

        ``g`` and ``a``: the mean over clips (= the mean over all frames). ``f``: the mean over
        clips weighted by each clip's ``a`` (its score mass per part), i.e. eq. 9 over all the
        tracklet's frames; unweighted when temporal attention is off. ``norm`` does not apply:
        STAL compares raw features with Euclidean distances.
        """
        out = super().aggregate({k: v for k, v in clips.items() if k != "f"}, owner, count, False)
        if "f" in clips:
            f, w = clips["f"], clips["a"] if self._temporal else torch.ones_like(clips["a"])
            num = f.new_zeros(count, *f.shape[1:]).index_add_(0, owner, w[..., None] * f)
            den = w.new_zeros(count, w.shape[1]).index_add_(0, owner, w)
            out["f"] = num / den[..., None]
        return out

    def distance(self, query: Embedding, gallery: Embedding) -> torch.Tensor:
        """(Q, G): d_l + rate * d_g (both), d_g (global) or d_l (local); without spatial
        attention all parts weigh the same (d_l = mean over parts)."""
        cfg = self.config
        if cfg.test_branches == "global":
            return euclidean(query["g"], gallery["g"])
        aq, ag = query["a"], gallery["a"]
        if not self._spatial:
            aq, ag = torch.ones_like(aq), torch.ones_like(ag)
        d = local_distance(query["f"], aq, gallery["f"], ag)
        if cfg.test_branches == "local":
            return d
        return d + cfg.fusion_rate * euclidean(query["g"], gallery["g"])

    def diagnostics(self, emb: Embedding) -> dict[str, float]:
        """The scales of the fused distance's two terms over test pairs (up to 512 x 512
        tracklets): ``diag.stal.d_local`` (mean d_l) and ``diag.stal.d_global_fused`` (mean
        fusion_rate * d_g), so that a report says which term dominates ``d``."""
        if "g" not in emb or "f" not in emb:
            return {}
        sub = {k: v[:512] for k, v in emb.items()}
        d_l = local_distance(sub["f"], sub["a"], sub["f"], sub["a"])
        d_g = self.config.fusion_rate * euclidean(sub["g"], sub["g"])
        off = ~torch.eye(len(d_l), dtype=torch.bool, device=d_l.device)
        return {
            "diag.stal.d_local": float(d_l[off].mean()),
            "diag.stal.d_global_fused": float(d_g[off].mean()),
        }

    def probes(self, batches: Iterable[ProbeBatch]) -> dict[str, float]:
        """STAN's sigmoid scores s (before the clip's L1 normaliser, so comparable across
        clips) against each unit's exact visibility; none without the local branch."""
        if not self.config.trains("local"):
            return {}
        scores, visible = [], []
        for batch in batches:
            scores.append(self.stan(self.backbone(batch.clips, 0, self.config.split_stage)))
            visible.append(part_visibility(batch.occluded, batch.misdetected))
        return {
            "stal.visibility_rank_corr": rank_correlation(torch.cat(scores), torch.cat(visible))
        }

    def attention(self, clips: torch.Tensor, aux: Batch) -> AttentionView | None:
        """The six part boxes of every frame with their STAN scores, and RAN's soft mask (mean
        over channels) on the low-level map."""
        low = self.backbone(clips, 0, self.config.split_stage)
        view = AttentionView()
        if self.config.trains("global") and self.ran is not None:
            view.maps["RAN mask (channel mean)"] = self.ran.mask(low[0]).mean(1)
        if self.config.trains("local"):
            scores = self.stan(low)[0]
            view.boxes, view.box_scores = self._boxes(low, aux, clips)[0], scores
            view.box_names = PART_NAMES
            view.per_frame["STAN score, mean over parts"] = scores.mean(1)
        return view

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """Learning rate, margins, fusion rate, local loss weight and embedding sizes, over the
        ranges of the paper's parameter analysis (sec. IV-D)."""
        sizes = [128, 256, 512, 1024]
        return {
            "margin_global": trial.suggest_float("margin_global", 0.4, 2.0),
            "margin_local": trial.suggest_float("margin_local", 0.4, 2.0),
            "fusion_rate": trial.suggest_float("fusion_rate", 0.0, 1.0),
            "local_weight": trial.suggest_float("local_weight", 0.1, 1.0),
            "global_dim": trial.suggest_categorical("global_dim", sizes),
            "local_dim": trial.suggest_categorical("local_dim", sizes),
            "train": {"lr": trial.suggest_float("lr", 1e-4, 1e-3, log=True)},
        }
