"""A cheap hand-crafted reference: colour-histogram nearest neighbour, query vs gallery.

Each tracklet is described by the mean over its frames of a joint RGB histogram (``bins`` per
channel, L1-normalised), optionally over the person only (its part mask); the distance is
the L1 distance. Scored with the harness's own metric (same-camera matches removed), next to
the rank-1 of a random ranking (``chance``), this says whether a dataset is trivial or not.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from bench.data.base import Split, Tracklet
from bench.eval.metrics import evaluate_split


def histogram(t: Tracklet, bins: int = 8, person_only: bool = False) -> np.ndarray:
    """(bins ** 3,) mean joint RGB histogram of a tracklet's frames."""
    total = np.zeros(bins**3)
    for k, path in enumerate(t.frames):
        rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3) // (256 // bins)
        codes = (rgb[:, 0] * bins + rgb[:, 1]) * bins + rgb[:, 2]
        if person_only and t.masks:
            codes = codes[np.asarray(Image.open(t.masks[k])).reshape(-1) > 0]
        hist = np.bincount(codes, minlength=bins**3).astype(np.float64)
        total += hist / max(hist.sum(), 1.0)
    return total / len(t.frames)


def chance_rank1(split: Split) -> float:
    """Expected rank-1 (%) of a random ranking: mean over queries of matches / valid items."""
    g_pid = np.array([g.pid for g in split.gallery])
    g_cam = np.array([g.camid for g in split.gallery])
    rates = []
    for q in split.query:
        valid = ~((g_pid == q.pid) & (g_cam == q.camid))
        good = (g_pid == q.pid) & valid
        if good.any():
            rates.append(good.sum() / valid.sum())
    return 100.0 * float(np.mean(rates)) if rates else 0.0


def histogram_baseline(split: Split, person_only: bool = False) -> dict[str, float]:
    """{'R1', 'R5', 'mAP', 'chance'} (%) of the colour-histogram nearest neighbour."""
    q = torch.tensor(np.stack([histogram(t, person_only=person_only) for t in split.query]))
    g = torch.tensor(np.stack([histogram(t, person_only=person_only) for t in split.gallery]))
    dist = torch.cdist(q, g, p=1)
    result = evaluate_split(dist, split)
    return {
        "R1": result["R1"],
        "R5": result["R5"],
        "mAP": float(result.get("mAP", float("nan"))),
        "chance": chance_rank1(split),
    }
