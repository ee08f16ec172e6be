"""RGSA-RGTR: relation-guided spatial attention and temporal refinement (Li et al., AAAI 2020).

A timm CNN (last stride 1) gives X_t (C, H, W) per frame; RGSA (Sec. 3.3) or spatial average
pooling turns it into a frame feature f_t; RGTR (Sec. 3.4) or nothing refines the T frame
features, and their mean is the clip feature f~ (Eq. 10). Loss (Sec. 3.5, Eq. 11-15):
frame-level CE on every f_t + clip-level CE on f~ (+ the adaptive weighted triplet loss on f~).
In the paper's form (``neck: none``) both classifiers read f_t and f~ directly and the test
embedding is f~. docs/methods.md, "RGSA-RGTR", fixes the defaults and the ablation switches of
Tables 1-3.

Deviations, each a named switch that is off in the paper's form (docs/deviations.md):

- ``rgtr_residual``: ``f~_t = f_t + BN0(W_R [f_t, r~_t])`` with BN0's weight zero-initialised,
  so that a fresh RGTR is the identity. Trained from scratch, the paper's ``BN(W_R [...])``
  collapses the frame features (reports/rgsa-rgtr-ablations.md).
- ``rgtr_stop_gradient``: RGTR's relation vectors r~_t are computed from f_t with the gradient
  stopped, so that the relation module cannot pull the frame features towards a collapse.
- ``neck: bn``: a BN-neck (Luo et al. 2019) before both classifiers and on the test embedding.

RGSA sizes W_A for the N = H x W positions of the training input, and RGTR sizes W_R for the
training clip length T: test clips must have the training frame size and length T. The method
sets the paper's test protocol as its eval defaults (:meth:`RGSARGTRConfig.eval_defaults`: clips of
length T, stride T/2, per-clip L2, average, L2); a suite's explicit ``eval`` keys override them.

Probes (docs/probes.md): the share of the spatial pooling on the person's exact mask, RGTR's
change of misdetected and clean frames, and how much misdetected frames move the embedding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from bench.config import DataConfig, ModelConfig
from bench.errors import BenchError
from bench.losses import cross_entropy, weighted_triplet
from bench.method import Batch, Embedding, Method
from bench.models.backbone import Backbone
from bench.models.heads import BNNeck, LinearClassifier, spatial_avg
from bench.models.probes import (
    AttentionView,
    ProbeBatch,
    nearest_clean,
    region_share,
    relative_change,
)
from bench.models.relation import RelationGuided, build_relation
from bench.registry import register_method
from methods.config.rgsa_rgtr import RGSARGTRConfig


class RGSA(torch.nn.Module):
    """Relation-guided spatial attention, Eq. 3-6: (B, T, C, H, W) -> frame features (B, T, C).

    a_i = sigmoid(BN(W_A [X_i, r~_i])) per position i (channel-wise), f = sum_i a_i X_i / sum_i a_i.
    All N x N position pairs are related at once.
    """

    def __init__(self, channels: int, size: tuple[int, int], relation: torch.nn.Module):
        super().__init__()
        self.size = tuple(size)
        self.guided = RelationGuided(channels, size[0] * size[1], relation)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """x: (M, N, C) position features -> attention (M, N, C) in (0, 1) (Eq. 5)."""
        return torch.sigmoid(self.guided(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        if (h, w) != self.size:
            raise BenchError(
                f"rgsa-rgtr: RGSA was built for {self.size[0]}x{self.size[1]} feature maps "
                f"(N = {self.guided.count} positions, the width of W_A) from the training input "
                f"size data.height x data.width; got {h}x{w} feature maps. Test clips must have "
                "the training input size."
            )
        pos = x.flatten(3).transpose(2, 3).flatten(0, 1)  # (B*T, N, C)
        a = self.attention(pos)
        f = (a * pos).sum(1) / a.sum(1)
        return f.reshape(b, t, c)


class RGTR(torch.nn.Module):
    """Relation-guided temporal refinement, Eq. 7-9: (B, T, C) -> refined (B, T, C).

    f~_t = BN(W_R [f_t, r~_t]) with r~_t = concat_s RM(f_t, f_s) in frame order s = 1..T.
    ``residual`` (a deviation): f~_t = f_t + BN0(W_R [f_t, r~_t]), BN0's weight zero-initialised.
    ``stop_gradient`` (a deviation): r~_t is computed from f_t without gradient.
    """

    def __init__(
        self,
        channels: int,
        frames: int,
        relation: torch.nn.Module,
        residual: bool = False,
        stop_gradient: bool = False,
    ):
        super().__init__()
        self.guided = RelationGuided(channels, frames, relation, stop_gradient)
        self.residual = residual
        if residual:
            torch.nn.init.zeros_(self.guided.proj.bn.weight)

    @property
    def gate(self) -> torch.Tensor | None:
        """BN0's zero-initialised weight of the residual form (none in the paper's form)."""
        return self.guided.proj.bn.weight if self.residual else None

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if f.shape[1] != self.guided.count:
            raise BenchError(
                f"rgsa-rgtr: RGTR was built for clips of T = {self.guided.count} frames "
                f"(data.seq_len; W_R takes one relation vector per frame); got {f.shape[1]}. "
                "Evaluate in clips of the training length (eval.clip_len unset or = data.seq_len)."
            )
        refined = self.guided(f)
        return f + refined if self.residual else refined


@register_method("rgsa-rgtr")
class RGSARGTR(Method):
    Config = RGSARGTRConfig
    version = "1"  # bump when results change for a reason the code does not show
    probe_names = {
        "rgsa.mask_share": "share of the spatial pooling's weight (mean over channels) on the "
        "tracked person's exact mask, in the probed frames that are not misdetected (average "
        "pooling gives rgsa.mask_area)",
        "rgsa.mask_area": "the person's share of the feature map's area in those frames",
        "rgtr.change_misdetected": "RGTR's relative change of a frame feature, |f~_t - f_t| / "
        "|f_t|, in the misdetected frames of the probed clips",
        "rgtr.change_clean": "the same in the clean frames of clips with a misdetected frame",
        "rgtr.misdetection_influence": "1 - cos between a clip's test embedding and that of the "
        "same clip with each misdetected frame replaced by its nearest clean frame",
    }

    def __init__(
        self, config: RGSARGTRConfig, model: ModelConfig, data: DataConfig, num_classes: int
    ):
        super().__init__(config, model, data, num_classes)
        self.backbone = Backbone(model)
        c = self.backbone.out_channels
        self.rgsa = self.rgtr = None
        if config.spatial == "rgsa":
            size = self.backbone.output_size(data.height, data.width)
            self.rgsa = RGSA(c, size, self._relation(c))
        if config.temporal == "rgtr":
            self.rgtr = RGTR(
                c, data.seq_len, self._relation(c), config.rgtr_residual, config.rgtr_stop_gradient
            )
            self.fixed_clip_len = data.seq_len
        head = BNNeck if config.neck == "bn" else LinearClassifier  # neck + classifier, or alone
        self.frame_neck = head(c, num_classes)
        self.clip_neck = head(c, num_classes)

    def _relation(self, channels: int) -> torch.nn.Module:
        cfg = self.config
        return build_relation(cfg.relation, channels, cfg.r1, cfg.r2)

    def frame_features(self, clips: torch.Tensor) -> torch.Tensor:
        """clips: (B, T, 3, H, W) -> frame features f_t: (B, T, C)."""
        return self.pool_frames(self.backbone(clips))

    def pool_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps (B, T, C, h, w) -> frame features (B, T, C): RGSA or average pooling."""
        return spatial_avg(x) if self.rgsa is None else self.rgsa(x)

    def spatial_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps (B, T, C, h, w) -> each position's pooling weight, mean over channels
        (B, T, h * w), summing to 1: RGSA's a_i / sum_i a_i (Eq. 6), or 1 / hw for average
        pooling."""
        b, t, _, h, w = x.shape
        if self.rgsa is None:
            return x.new_full((b, t, h * w), 1 / (h * w))
        a = self.rgsa.attention(x.flatten(3).transpose(2, 3).flatten(0, 1))  # (BT, N, C)
        return (a / a.sum(1, keepdim=True)).mean(-1).reshape(b, t, h * w)

    def clip_feature(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (B, T, C) -> clip feature f~ = mean_t f~_t: (B, C) (Eq. 10)."""
        return (frames if self.rgtr is None else self.rgtr(frames)).mean(1)

    def forward(self, batch: Batch) -> dict[str, Any]:
        frames = self.frame_features(batch["clips"])
        feat = self.clip_feature(frames)
        _, frame_logits = self.frame_neck(frames.flatten(0, 1))
        _, clip_logits = self.clip_neck(feat)
        return {"feat": feat, "clip_logits": clip_logits, "frame_logits": frame_logits}

    def loss(self, outputs: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        pids = batch["pids"]
        frames_per_clip = outputs["frame_logits"].shape[0] // pids.shape[0]
        terms = {
            "ce_clip": cross_entropy(outputs["clip_logits"], pids),
            "ce_frame": cross_entropy(
                outputs["frame_logits"], pids.repeat_interleave(frames_per_clip)
            ),
        }
        if self.config.loss == "total":
            terms["triplet"] = weighted_triplet(outputs["feat"], pids)
        return terms

    def embed(self, clips: torch.Tensor, aux: Batch) -> Embedding:
        z, _ = self.clip_neck(self.clip_feature(self.frame_features(clips)))
        return {"feat": z}

    def probes(self, batches: Iterable[ProbeBatch]) -> dict[str, float]:
        """The probes of ``probe_names``; the RGTR change only with RGTR."""
        found: dict[str, list[torch.Tensor]] = {}
        for batch in batches:
            for name, values in self._batch_probes(batch).items():
                found.setdefault(name, []).append(values)
        return {name: float(torch.cat(v).float().mean()) for name, v in found.items()}

    def _batch_probes(self, batch: ProbeBatch) -> dict[str, torch.Tensor]:
        """Per frame or per clip values of each probe on one batch."""
        x = self.backbone(batch.clips)
        b, t = x.shape[:2]
        person = F.adaptive_avg_pool2d((batch.masks > 0).float().flatten(0, 1), x.shape[-2:])
        person = person.reshape(b, t, -1)
        good, bad = ~batch.misdetected, batch.misdetected
        out = {
            "rgsa.mask_share": region_share(self.spatial_weights(x), person)[good],
            "rgsa.mask_area": person.mean(-1)[good],
        }
        mixed = bad.any(1) & good.any(1)
        if not mixed.any():
            return out
        if self.rgtr is not None:
            frames = self.pool_frames(x)[mixed]
            change = relative_change(frames, self.rgtr(frames))
            out["rgtr.change_misdetected"] = change[bad[mixed]]
            out["rgtr.change_clean"] = change[good[mixed]]
        clips = batch.clips[mixed]
        swapped = clips[torch.arange(len(clips))[:, None], nearest_clean(bad[mixed])]
        before, after = self.embed(clips, {})["feat"], self.embed(swapped, {})["feat"]
        out["rgtr.misdetection_influence"] = 1 - F.cosine_similarity(before, after, dim=-1)
        return out

    def attention(self, clips: torch.Tensor, aux: Batch) -> AttentionView | None:
        """RGSA's pooling weights over the map, RGTR's change of each frame, and each frame's
        share of the clip feature, <f~_t, f~> / (T |f~|^2) (they sum to 1)."""
        x = self.backbone(clips)
        view = AttentionView()
        if self.rgsa is not None:
            view.maps["RGSA pooling weight"] = self.spatial_weights(x)[0].reshape(-1, *x.shape[-2:])
        frames = self.pool_frames(x)
        refined = frames if self.rgtr is None else self.rgtr(frames)
        if self.rgtr is not None:
            view.per_frame["RGTR change |f~_t - f_t| / |f_t|"] = relative_change(frames, refined)[0]
        clip = refined.mean(1)
        share = (refined @ clip[..., None])[..., 0] / (
            refined.shape[1] * clip.pow(2).sum(-1, keepdim=True)
        )
        view.per_frame["share of the clip feature"] = share[0]
        return view

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """lr, weight decay, r1, r2 (Table 2) and clip length T (Table 3, test stride T/2)."""
        seq_len = trial.suggest_categorical("seq_len", [2, 4, 6, 8])
        return {
            "r1": trial.suggest_categorical("r1", [8, 16, 32, 64]),
            "r2": trial.suggest_categorical("r2", [64, 128, 256, 512]),
            "train": {
                "lr": trial.suggest_float("lr", 1e-4, 1e-3, log=True),
                "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True),
            },
            "data": {"seq_len": seq_len},
            "eval": {"clip_stride": max(1, seq_len // 2), "clip_norm": True},
        }
