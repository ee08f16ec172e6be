"""How well estimated annotations agree with the exact ones: PCKh per joint type, IoU per part.

The same measures the published figures of docs/synthetic.md use, so that the estimation
model's defaults can be checked against them (``benchmarks/estimation_quality.py``).
"""

from __future__ import annotations

import numpy as np

from bench.data.synthetic.estimate import HEAD_FRACTION, JOINT_TYPES, PCKH

PART_NAMES = ("head", "upper", "lower", "shoes")


def pckh(exact: np.ndarray, estimated: np.ndarray, ratio: float = 0.5) -> dict[str, float]:
    """PCKh@ratio (%) per joint type over the exact-visible joints of (N, 14, 3) arrays.

    A joint counts as correct if it was detected (confidence > 0) within ``ratio`` head
    segments (``HEAD_FRACTION`` of the body height) of its exact position; missed ones are
    errors, as in MPII's evaluation.
    """
    size = np.maximum(np.ptp(exact[:, :, 1], axis=1), 1.0)[:, None]  # (N, 1)
    error = np.linalg.norm(estimated[..., :2] - exact[..., :2], axis=-1)
    correct = (error < ratio * HEAD_FRACTION * size) & (estimated[..., 2] > 0)
    visible = exact[..., 2] >= 1
    kinds = np.array(JOINT_TYPES)
    out = {}
    for kind in PCKH:
        use = visible & (kinds == kind)[None]
        out[kind] = 100.0 * float(correct[use].mean()) if use.any() else float("nan")
    out["mean"] = 100.0 * float(correct[visible].mean())
    return out


def part_iou(exact: np.ndarray, estimated: np.ndarray) -> dict[str, float]:
    """IoU (%) per part (labels 1..4) over stacks of (N, H, W) label maps, and their mean."""
    out = {}
    for label, name in enumerate(PART_NAMES, start=1):
        a, b = exact == label, estimated == label
        union = np.logical_or(a, b).sum()
        out[name] = 100.0 * float(np.logical_and(a, b).sum() / union) if union else float("nan")
    out["mIoU"] = float(np.nanmean([out[n] for n in PART_NAMES]))
    return out
