"""Pairwise distances, shared by the losses and the evaluator."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: pairs whose squared distance is below this fraction of |a|^2 + |b|^2 are recomputed from
#: differences (the Gram form cannot resolve them; equal rows then give exactly 0)
NEAR = 1e-9


def euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a: (..., N, D), b: (..., M, D) -> (..., N, M) Euclidean distances, in a's dtype.

    The Gram form |a|^2 + |b|^2 - 2 a.b is taken in float64, so it keeps float32 accuracy
    where float32 would cancel (7e-3 off for large norms); pairs too close for even that are
    recomputed as |a - b|, so equal rows give exactly 0. The gradient is that of |a - b|, and
    0 at distance 0 (a subgradient), never NaN.
    """
    a64, b64 = a.double(), b.double()
    na, nb = a64.pow(2).sum(-1), b64.pow(2).sum(-1)
    sq = (na[..., :, None] + nb[..., None, :] - 2 * a64 @ b64.transpose(-1, -2)).clamp_min(0)
    near = sq <= NEAR * (na[..., :, None] + nb[..., None, :])
    if near.any():
        *batch, i, j = near.nonzero(as_tuple=True)
        ai, bj = a64[(*batch, i)], b64[(*batch, j)]
        sq = sq.index_put((*batch, i, j), (ai - bj).pow(2).sum(-1))
    positive = sq > 0
    dist = torch.where(positive, torch.where(positive, sq, 1).sqrt(), 0)
    return dist.to(a.dtype)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a: (N, D), b: (M, D) -> (N, M) cosine distances 1 - cos(a_i, b_j), in [0, 2]."""
    return 1 - F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()


METRICS = {"euclidean": euclidean, "cosine": cosine}
