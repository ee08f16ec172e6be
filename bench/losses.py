"""Losses shared by the method plugins: identity cross-entropy and triplet variants.

Triplet losses take features (N, D) of a P x K batch and integer identities (N,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.eval.distance import METRICS


def cross_entropy(logits: torch.Tensor, pids: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """logits: (N, num_classes), pids: (N,) -> scalar identity loss."""
    return F.cross_entropy(logits, pids, label_smoothing=smoothing)


def _pair_masks(pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    return same & ~eye, ~same


def hardest_pairs(dist: torch.Tensor, pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dist: (N, N) -> (hardest positive, hardest negative) distance per anchor, each (N,).

    Anchors without a positive or a negative in the batch get NaN and are dropped by callers.
    """
    pos, neg = _pair_masks(pids)
    nan = torch.full_like(dist, float("nan"))
    d_ap = torch.where(pos, dist, nan).nan_to_num(-torch.inf).amax(1)
    d_an = torch.where(neg, dist, nan).nan_to_num(torch.inf).amin(1)
    valid = torch.isfinite(d_ap) & torch.isfinite(d_an)
    return d_ap[valid], d_an[valid]


def triplet_from_distances(dist: torch.Tensor, pids: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) on a precomputed (N, N) distance matrix:
    mean over anchors of max(0, margin + max_pos d - min_neg d)."""
    d_ap, d_an = hardest_pairs(dist, pids)
    if d_ap.numel() == 0:
        return dist.sum() * 0
    return F.relu(margin + d_ap - d_an).mean()


def batch_hard_triplet(
    feats: torch.Tensor, pids: torch.Tensor, margin: float = 0.3, metric: str = "euclidean"
) -> torch.Tensor:
    """feats: (N, D), pids: (N,) -> batch-hard triplet loss under ``metric``."""
    return triplet_from_distances(METRICS[metric](feats, feats), pids, margin)


def weighted_triplet(
    feats: torch.Tensor, pids: torch.Tensor, metric: str = "euclidean"
) -> torch.Tensor:
    """Adaptive weighted triplet loss (Ristani & Tomasi 2018), as RGSA-RGTR uses it.

    For anchor a: w_p = softmax over positives of d(a, p), w_n = softmax over negatives of
    -d(a, n); loss = softplus(sum_p w_p d(a, p) - sum_n w_n d(a, n)), averaged over anchors.
    """
    dist = METRICS[metric](feats, feats)
    pos, neg = _pair_masks(pids)
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        return dist.sum() * 0
    w_p = torch.softmax(dist.masked_fill(~pos, -torch.inf), dim=1).nan_to_num(0.0)
    w_n = torch.softmax((-dist).masked_fill(~neg, -torch.inf), dim=1).nan_to_num(0.0)
    d_p = (w_p * dist).sum(1)
    d_n = (w_n * dist).sum(1)
    return F.softplus(d_p - d_n)[valid].mean()
