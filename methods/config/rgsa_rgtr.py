"""The config of RGSA-RGTR (AAAI 2020): the paper's defaults and its ablation switches.

Kept apart from the method (and torch) so that a suite validates without importing them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.config import MethodConfig
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
