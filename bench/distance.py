"""Pairwise distances, shared by the losses and the evaluator."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a: (N, D), b: (M, D) -> (N, M) Euclidean distances (differentiable at 0)."""
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.t()
    return sq.clamp_min(1e-12).sqrt()


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a: (N, D), b: (M, D) -> (N, M) cosine distances 1 - cos(a_i, b_j), in [0, 2]."""
    return 1 - F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()


METRICS = {"euclidean": euclidean, "cosine": cosine}
