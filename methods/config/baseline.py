"""The config of the temporal-pooling baseline: the paper's defaults and its ablation switches.

Kept apart from the method (and torch) so that a suite validates without importing them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.config import MethodConfig
from bench.registry import register_method_config


@register_method_config("baseline")
class BaselineConfig(MethodConfig):
    triplet: Literal["batch-hard", "weighted", "none"] = Field(
        "batch-hard", description="triplet loss on the clip feature ('none' = L_ce only)"
    )
    triplet_margin: float = Field(0.3, ge=0, description="batch-hard margin")
    triplet_metric: Literal["euclidean", "cosine"] = "euclidean"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
