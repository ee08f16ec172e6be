"""What a method's mechanism does, measured against the truth: the probe kit.

A method declares its probes (``Method.probe_names``) and computes them in ``Method.probes``
from batches of test clips with their exact annotations (:class:`ProbeBatch`, synthetic data
only); it draws its attention for ``bench show attention`` as an :class:`AttentionView`. The
figures below are what the probes share: a rank correlation, a soft IoU, the share of a
pooling's weight on a region, a relative change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import rankdata

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ProbeBatch:
    """Test clips with their exact annotations, at the network's input size.

    clips: (B, T, C, H, W) as ``Method.embed`` gets them; aux: the auxiliary inputs the method
    receives (estimated or exact, as the cell's ``aux`` says). The truth: masks (B, T, H, W)
    long exact part labels 0..4; keypoints (B, T, 14, 3) exact joints (x, y in input pixels,
    visibility); misdetected (B, T) bool, the crop drifted off the person or shows another one;
    occluded (B, T, 14) bool, joints covered by an occluder or the black box.
    """

    clips: torch.Tensor
    aux: Batch
    masks: torch.Tensor
    keypoints: torch.Tensor
    misdetected: torch.Tensor
    occluded: torch.Tensor


@dataclass
class AttentionView:
    """A method's attention on one clip (B = 1), for drawing.

    maps: name -> (T, h, w) maps on the feature grid, in [0, 1] or any scale (each is drawn
    over the frames with its own colour range); boxes: (T, R, 4) pixel boxes with their scores
    (T, R) and names; per_frame: name -> (T,) values; matrices: name -> (M, M) with the
    labels of its rows (e.g. IAUnet's relations between the T x N parts).
    """

    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    boxes: torch.Tensor | None = None
    box_scores: torch.Tensor | None = None
    box_names: tuple[str, ...] = ()
    per_frame: dict[str, torch.Tensor] = field(default_factory=dict)
    matrices: dict[str, tuple[torch.Tensor, list[str]]] = field(default_factory=dict)


def rank_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's correlation of two equally long value lists (ties share their mean rank);
    NaN when either is constant or has fewer than 3 values."""
    a = x.detach().flatten().double().cpu().numpy()
    b = y.detach().flatten().double().cpu().numpy()
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


def soft_iou(attention: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(sum of min, sum of max) of two maps of values in [0, 1]: their soft IoU is the ratio
    (1 iff equal), kept apart so that batches add up."""
    return float(torch.minimum(attention, target).sum()), float(
        torch.maximum(attention, target).sum()
    )


def region_share(weights: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Share of a pooling's weight on a region: weights (..., N) >= 0 over N positions (any
    scale), region (..., N) in [0, 1] (the fraction of each position inside it) ->
    (...) sum_i w_i region_i / sum_i w_i."""
    return (weights * region).sum(-1) / weights.sum(-1)


def relative_change(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """|after - before| / |before| along the last dimension."""
    return (after - before).norm(dim=-1) / before.norm(dim=-1).clamp_min(1e-12)


def nearest_clean(bad: torch.Tensor) -> torch.Tensor:
    """bad (B, T) bool frames, each row with a clean one -> (B, T) index of the nearest clean
    frame of each frame (itself when clean; ties: the earlier one)."""
    t = torch.arange(bad.shape[1], device=bad.device)
    dist = (t[:, None] - t[None]).abs().float()  # (T, T)
    dist = dist.expand(bad.shape[0], -1, -1).masked_fill(bad[:, None, :], math.inf)
    return dist.argmin(-1)
