"""The estimation model: the keypoints and part masks a pose estimator and a human parser give.

From a frame's exact annotations and a random stream, noisy copies (docs/synthetic.md,
"Estimated annotations", has the published figures the defaults are calibrated to):

Keypoints, for a person ``s`` pixels tall (head top to lowest ankle):

- a joint inside the frame is missed with probability ``kp_miss_rate`` if visible (exact
  visibility 1), ``kp_miss_hidden`` if hidden (0.5); one outside the frame (0) always is. A
  missed joint is written (0, 0, 0), OpenPose's convention for an undetected joint;
- a detected joint moves by N(0, (kp_jitter * sigma_j * s)^2) per axis, sigma_j calibrated to
  the joint type's PCKh@0.5 (``SIGMA``); a hidden joint by twice that. Its confidence is
  U(0.5, 1) if it is visible, U(0.1, 0.5) if hidden;
- per frame, each limb pair (arms, legs) has its left and right joints exchanged with
  probability ``kp_swap_rate`` (positions and confidences).

Part masks (labels 0..4), at ``u = height / 128``:

- dropped thin parts: per frame and part, with probability ``mask_drop_rate``, the part's thin
  pieces (what an opening with a (6u + 1)-pixel square removes: arms, legs) become background;
- part confusion: in the 2u-pixel band along the border of two parts, blocks of 4u pixels
  covering a fraction ``mask_confusion`` of it take the neighbouring part's label;
- boundary noise: the labels are resampled through a smooth random displacement field of
  std ``mask_boundary * u`` pixels per axis, so parts and background bleed into each other.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from bench.data.synthetic.config import GeneratorConfig

# HRNet-W32 on MPII (val), PCKh@0.5 in % per joint type (Sun et al., CVPR 2019, Table 3).
PCKH = {
    "head": 97.1,
    "shoulder": 95.9,
    "elbow": 90.3,
    "wrist": 86.4,
    "hip": 89.1,
    "knee": 87.1,
    "ankle": 83.3,
}
PCKH_MEAN = 90.3  # the same table's mean over all joints
# The 14 joints (docs/methods.md) by type: head top, neck, right arm, left arm, left leg, right leg.
JOINT_TYPES = ("head", "head") + ("shoulder", "elbow", "wrist") * 2 + ("hip", "knee", "ankle") * 2
LIMB_PAIRS = ((slice(2, 5), slice(5, 8)), (slice(8, 11), slice(11, 14)))  # arms, legs
HEAD_FRACTION = 0.1  # MPII's head segment as a fraction of the body height (an assumption)
CALIBRATION_MISS, CALIBRATION_SWAP = 0.02, 0.03  # the default miss and swap rates


def _sigma(pckh: float, limb: bool) -> float:
    """Per-axis jitter std (fraction of body height) whose PCKh@0.5 is ``pckh`` once the
    default misses (and, for limbs, swaps) are counted as errors: the 2-D error is Rayleigh,
    P(r < tau) = 1 - exp(-tau^2 / 2 sigma^2) with tau = half the head segment."""
    hit = pckh / 100 / (1 - CALIBRATION_MISS) / ((1 - CALIBRATION_SWAP) if limb else 1)
    tau = 0.5 * HEAD_FRACTION
    return tau / float(np.sqrt(-2 * np.log(1 - min(hit, 0.999))))


SIGMA = np.array([_sigma(PCKH[kind], kind != "head") for kind in JOINT_TYPES], np.float32)


def estimate_keypoints(
    exact: np.ndarray, cfg: GeneratorConfig, rng: np.random.Generator
) -> np.ndarray:
    """(14, 3) exact x, y, visibility -> (14, 3) estimated x, y, confidence (float32)."""
    vis = exact[:, 2]
    size = max(float(np.ptp(exact[:, 1])), 1.0)
    hidden = vis < 1
    miss = np.where(hidden, cfg.kp_miss_hidden, cfg.kp_miss_rate)
    found = (rng.random(14) >= miss) & (vis > 0)
    std = cfg.kp_jitter * SIGMA * size * np.where(hidden, 2.0, 1.0)
    out = np.zeros((14, 3), np.float32)
    out[:, :2] = exact[:, :2] + rng.standard_normal((14, 2)) * std[:, None]
    out[:, 2] = np.where(hidden, rng.uniform(0.1, 0.5, 14), rng.uniform(0.5, 1.0, 14))
    out[~found] = 0.0
    for right, left in LIMB_PAIRS:
        if rng.random() < cfg.kp_swap_rate:
            out[right], out[left] = out[left].copy(), out[right].copy()
    return out


def estimate_mask(labels: np.ndarray, cfg: GeneratorConfig, rng: np.random.Generator):
    """(H, W) uint8 exact part labels -> (H, W) uint8 estimated labels."""
    h, w = labels.shape
    unit = h / 128
    out = _drop_thin(labels.copy(), cfg.mask_drop_rate, max(1, round(3 * unit)), rng)
    out = _confuse(out, cfg.mask_confusion, max(1, round(2 * unit)), max(1, round(4 * unit)), rng)
    return _warp(out, cfg.mask_boundary * unit, max(4, round(16 * unit)), rng)


def _drop_thin(labels: np.ndarray, rate: float, radius: int, rng: np.random.Generator):
    """Per part, with probability ``rate``: its pixels an opening by a square removes -> 0."""
    side = 2 * radius + 1
    for part, drop in enumerate(rng.random(4) < rate, start=1):
        region = (labels == part).view(np.uint8)
        if drop and region.any():
            eroded = ndimage.minimum_filter(region, side, mode="constant", cval=0)
            kept = ndimage.maximum_filter(eroded, side, mode="constant", cval=0)
            labels[(region > kept)] = 0
    return labels


def _confuse(labels: np.ndarray, rate: float, band: int, block: int, rng: np.random.Generator):
    """Blocks of the border band between two parts take the neighbour's label (the highest
    other part label within ``band`` pixels, else the lowest)."""
    h, w = labels.shape
    cells = rng.random((-(-h // block), -(-w // block))) < rate
    blobs = np.kron(cells, np.ones((block, block), bool))[:h, :w]
    side = 2 * band + 1
    high = ndimage.maximum_filter(labels, side)
    low = ndimage.minimum_filter(np.where(labels > 0, labels, 255).astype(np.uint8), side)
    other = np.where(high != labels, high, low)
    change = blobs & (labels > 0) & (other != labels) & (other > 0) & (other < 255)
    return np.where(change, other, labels).astype(np.uint8)


def _warp(labels: np.ndarray, std: float, cell: int, rng: np.random.Generator) -> np.ndarray:
    """Resample labels (nearest) through a smooth displacement field: std ``std`` px, one
    random vector per ``cell`` pixels, bilinearly interpolated."""
    h, w = labels.shape
    coarse = rng.normal(0.0, std, (2, h // cell + 2, w // cell + 2)).astype(np.float32)
    dy, dx = (
        np.asarray(Image.fromarray(c).resize((w, h), Image.Resampling.BILINEAR)) for c in coarse
    )
    ys, xs = _grid(h, w)
    y = np.clip(np.rint(ys + dy), 0, h - 1).astype(np.intp)
    x = np.clip(np.rint(xs + dx), 0, w - 1).astype(np.intp)
    return labels[y, x]


@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return ys, xs
