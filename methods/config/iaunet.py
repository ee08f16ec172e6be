"""The config of IAUnet (TNNLS 2020): the paper's defaults and its ablation switches.

Kept apart from the method (and torch) so that a suite validates without importing them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bench.config import MethodConfig
from bench.registry import register_method_config

STIAU_BLOCKS = ("ciau-stiau", "stiau-ciau", "parallel", "stiau")


@register_method_config("iaunet")
class IAUnetConfig(MethodConfig):
    blocks: Literal[
        "ciau-stiau",
        "stiau-ciau",
        "parallel",
        "stiau",
        "ciau",
        "nonlocal",
        "se",
        "se-residual",
        "none",
    ] = Field(
        "ciau-stiau",
        description="block at each stage: IAU (CIAU then STIAU), another arrangement (Table X), "
        "one module (Tables VII-VIII), a comparator (Table VI: se = SE gating F * s, "
        "se-residual = F + BN(F * s)) or none",
    )
    placement: Literal["before_last_block", "after_stage"] = Field(
        "before_last_block",
        description="where a stage's block goes: before its last residual block (the paper) "
        "or after the stage (the authors' image code)",
    )
    stages: list[Literal[1, 2, 3, 4]] | None = Field(
        None, description="stages that get a block (None = [2] for video, [2, 3] for T = 1)"
    )
    relations: Literal["spatio-temporal", "spatial", "temporal"] = Field(
        "spatio-temporal", description="STIAU relations: within frames, along parts, or both"
    )
    relation_fn: Literal["subnet", "l2"] = Field(
        "subnet", description="STIAU relation: W_r subnet (eqs. 1-2) or -||p_j - p_k||^2"
    )
    relation_norm: Literal["none", "bn"] = Field(
        "none", description="STIAU relation logits as they are (paper) or BatchNorm'd (code)"
    )
    channel_relation: Literal["dot", "l2"] = Field(
        "dot", description="CIAU relation: f_i . f_j (eq. 11) or -||f_i - f_j||^2"
    )
    part_division: Literal["learned", "stripes"] = Field(
        "learned",
        description="STIAU parts: attention maps (eq. 8, supervised by L_p when masks exist) "
        "or four fixed horizontal bands (no L_p)",
    )
    lambda_tri: float = Field(1.0, ge=0, description="lambda1: weight of the triplet loss")
    lambda_p: float = Field(0.5, ge=0, description="lambda2: weight of the part-mask loss L_p")
    triplet_margin: float = Field(0.3, ge=0, description="batch-hard triplet margin (cosine)")

    @field_validator("stages")
    @classmethod
    def _distinct_stages(cls, stages: list[int] | None) -> list[int] | None:
        if stages is not None and (not stages or len(set(stages)) != len(stages)):
            raise ValueError("give distinct stages in 1..4 (for no block use blocks: none)")
        return None if stages is None else sorted(stages)

    @property
    def uses_part_loss(self) -> bool:
        """Whether L_p is trained: learned part division inside an STIAU, lambda_p > 0."""
        return self.blocks in STIAU_BLOCKS and self.part_division == "learned" and self.lambda_p > 0
