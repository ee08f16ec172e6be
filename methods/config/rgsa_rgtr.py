"""The config of RGSA-RGTR (AAAI 2020): the paper's defaults and its ablation switches.

Kept apart from the method (and torch) so that a suite validates without importing them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from bench.config import DataConfig, MethodConfig
from bench.registry import register_method_config


@register_method_config("rgsa-rgtr")
class RGSARGTRConfig(MethodConfig):
    spatial: Literal["rgsa", "avg"] = Field(
        "rgsa", description="frame feature: relation-guided spatial attention or average pooling"
    )
    temporal: Literal["rgtr", "avg"] = Field(
        "rgtr", description="clip feature: relation-guided temporal refinement, or plain mean"
    )
    relation: Literal["rm", "inner-product"] = Field(
        "rm", description="relation of two features: relation module or inner product (IP row)"
    )
    loss: Literal["total", "ce"] = Field(
        "total", description="L_total = L_ce + weighted triplet, or L_ce (frame + clip CE) only"
    )
    r1: int = Field(32, ge=1, description="relation module: theta/phi reduce C to C/r1")
    r2: int = Field(256, ge=1, description="relation module: relation vectors are C/r2-d")
    rgtr_residual: bool = Field(
        False, description="deviation: RGTR as f_t + BN0(W_R [f_t, r_t]), BN0 weight zero-init"
    )
    rgtr_stop_gradient: bool = Field(
        False, description="deviation: no gradient from RGTR's relation vectors into f_t"
    )
    neck: Literal["none", "bn"] = Field(
        "none", description="none (paper): classifiers and test on f_t, f~; bn: BN-necks"
    )

    def eval_defaults(self, data: DataConfig) -> dict[str, Any]:
        """The paper's test protocol: clips of T frames with stride T/2, each clip feature
        L2-normalised, averaged, L2-normalised again (Sec. 4.1)."""
        return {"clip_stride": max(1, data.seq_len // 2), "clip_norm": True}
