"""The temporal-pooling baseline that IAUnet, STAL and RGSA-RGTR all compare against.

A timm CNN (last stride 1) -> spatial average pooling per frame -> temporal average pooling
per clip -> BN-neck -> identity classifier. Loss: cross-entropy on the logits plus a triplet
loss on the pooled feature (docs/methods.md, "baseline"). Test: cosine on the BN-neck feature.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.config import DataConfig, ModelConfig
from bench.losses import batch_hard_triplet, cross_entropy, weighted_triplet
from bench.method import Batch, Embedding, Method
from bench.models.backbone import Backbone
from bench.models.heads import BNNeck, temporal_avg
from bench.registry import register_method
from methods.config.baseline import BaselineConfig


def triplet_term(cfg: BaselineConfig, feat: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
    """The configured triplet loss on (B, D) features."""
    if cfg.triplet == "weighted":
        return weighted_triplet(feat, pids, cfg.triplet_metric)
    return batch_hard_triplet(feat, pids, cfg.triplet_margin, cfg.triplet_metric)


@register_method("baseline")
class Baseline(Method):
    Config = BaselineConfig
    frame_separable = True  # frame-wise CNN, affine head after a temporal mean
    version = "1"  # bump when results change for a reason the code does not show

    def __init__(
        self, config: BaselineConfig, model: ModelConfig, data: DataConfig, num_classes: int
    ):
        super().__init__(config, model, data, num_classes)
        self.backbone = Backbone(model)
        self.neck = BNNeck(self.backbone.out_channels, num_classes)

    def pooled(self, clips: torch.Tensor) -> torch.Tensor:
        """clips: (B, T, C, H, W) -> clip feature (B, D): spatial then temporal averaging."""
        return temporal_avg(self.backbone(clips))

    def forward(self, batch: Batch) -> dict[str, Any]:
        feat = self.pooled(batch["clips"])
        _, logits = self.neck(feat)
        return {"feat": feat, "logits": logits}

    def loss(self, outputs: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        terms = {"ce": cross_entropy(outputs["logits"], batch["pids"], cfg.label_smoothing)}
        if cfg.triplet != "none":
            terms["triplet"] = triplet_term(cfg, outputs["feat"], batch["pids"])
        return terms

    def embed(self, clips: torch.Tensor, aux: Batch) -> Embedding:
        z, _ = self.neck(self.pooled(clips))
        return {"feat": z}
