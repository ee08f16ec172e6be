"""The config of STAL (TIP 2019): the paper's defaults and its ablation switches.

Kept apart from the method (and torch) so that a suite validates without importing them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.config import TEST_TIME, MethodConfig
from bench.registry import register_method_config

Branches = Literal["both", "global", "local"]


@register_method_config("stal")
class STALConfig(MethodConfig):
    """The paper's defaults (docs/methods.md#stal) and the switches of its ablations."""

    split_stage: int = Field(
        3, ge=1, le=3, description="last stage of the low-level CNN (3 = stride 16)"
    )
    ran: bool = Field(True, description="residual attention on the low-level map (global branch)")
    parts: Literal["keypoints", "prior"] = Field(
        "keypoints", description="part boxes from the 14 joints, or prior boxes"
    )
    min_box_cells: float = Field(
        2.0, gt=0, description="minimum part-box side, in cells of the low-level map"
    )
    roi_size: int = Field(8, ge=1, description="RoI-align output size (s x s)")
    part_net: Literal["copy", "light"] = Field(
        "copy",
        description="copies of the backbone's stages after the split (the paper's Table I), or "
        "a light conv head (a named deviation: docs/deviations.md)",
    )
    global_dim: int | None = Field(
        None, ge=1, description="global embedding size (linear projection; None = backbone width)"
    )
    local_dim: int = Field(1024, ge=1, description="per-part embedding size")
    train_branches: Branches = Field(
        "both", description="branches trained: both | global (PGB) | local (PLB)"
    )
    test_branches: Branches = Field(
        "both",
        description="branches in the test distance: both | global (GB) | local (LB)",
        json_schema_extra=TEST_TIME,
    )
    attention: Literal["st", "temporal", "spatial", "none"] = Field(
        "st",
        description="attention at test: st | temporal (TAN) | spatial (SAN) | none (ones)",
        json_schema_extra=TEST_TIME,
    )
    fusion_rate: float = Field(
        0.3, ge=0, description="test distance d = d_l + rate * d_g", json_schema_extra=TEST_TIME
    )
    margin_global: float = Field(1.2, ge=0, description="triplet margin m_g on d_g")
    margin_local: float = Field(0.8, ge=0, description="triplet margin m_l on d_l")
    local_weight: float = Field(0.3, ge=0, description="weight lambda of the local triplet")

    @model_validator(mode="after")
    def _tested_branches_are_trained(self) -> STALConfig:
        if self.train_branches != "both" and self.test_branches != self.train_branches:
            raise ValueError(
                f"test_branches '{self.test_branches}' uses a branch that train_branches "
                f"'{self.train_branches}' does not train"
            )
        return self

    def trains(self, branch: str) -> bool:
        return self.train_branches in ("both", branch)

    def tests(self, branch: str) -> bool:
        return self.test_branches in ("both", branch)
