"""Clip-level augmentation: one draw per clip, applied to all its frames (and their masks
and keypoints), so a clip stays a consistent piece of video."""

from __future__ import annotations

import math
import random

import torch

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# joint order of docs/methods.md: (r-shoulder, l-shoulder), (r-elbow, l-elbow), ... swap on a flip
FLIP_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13))


def normalize(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float (T, 3, H, W) normalised with ImageNet statistics."""
    return (frames.float() / 255 - IMAGENET_MEAN) / IMAGENET_STD


def flip_clip(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mirror every frame, mask and keypoint of a clip; left/right joints swap names."""
    out = dict(sample)
    out["clips"] = sample["clips"].flip(-1)
    if "part_masks" in sample:
        out["part_masks"] = sample["part_masks"].flip(-1)
    if "keypoints" in sample:
        kp = sample["keypoints"].clone()
        width = sample["clips"].shape[-1]
        kp[..., 0] = width - 1 - kp[..., 0]
        for a, b in FLIP_PAIRS:
            kp[:, [a, b]] = kp[:, [b, a]]
        out["keypoints"] = kp
    return out


def shift(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """Move the content of (..., H, W) by (dy, dx) pixels, filling what comes in with ``fill``:
    the crop at offset (pad - dy, pad - dx) of the map padded by ``pad`` on every side."""
    h, w = x.shape[-2:]
    out = torch.full_like(x, fill)
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    yd, xd = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[..., ys, xs] = x[..., yd, xd]
    return out


def crop_clip(sample: dict[str, torch.Tensor], dy: int, dx: int) -> dict[str, torch.Tensor]:
    """One random-crop box for the whole clip: pad every frame, crop H x W, so that its content
    moves by (dy, dx). Frames are padded with 0 (the mean colour once normalised), part masks
    with background; keypoints move along and joints that leave the frame become invisible."""
    out = {**sample, "clips": shift(sample["clips"], dy, dx, 0.0)}
    if "part_masks" in sample:
        out["part_masks"] = shift(sample["part_masks"], dy, dx, 0)
    if "keypoints" in sample:
        kp = sample["keypoints"].clone()
        kp[..., 0] += dx
        kp[..., 1] += dy
        h, w = sample["clips"].shape[-2:]
        inside = (
            (kp[..., 0] >= 0) & (kp[..., 0] <= w - 1) & (kp[..., 1] >= 0) & (kp[..., 1] <= h - 1)
        )
        kp[..., 2] = kp[..., 2] * inside
        out["keypoints"] = kp
    return out


def erase_box(h: int, w: int, rng: random.Random) -> tuple[int, int, int, int] | None:
    """A random-erasing box (Zhong et al. 2020): area 2-40 %, aspect 0.3-3.3; (y, x, bh, bw)."""
    for _ in range(20):
        area = rng.uniform(0.02, 0.4) * h * w
        aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
        bh, bw = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < bh < h and 0 < bw < w:
            return rng.randrange(h - bh), rng.randrange(w - bw), bh, bw
    return None


def augment_clip(
    sample: dict[str, torch.Tensor],
    flip: float,
    erasing: float,
    rng: random.Random,
    crop: float = 0.0,
    crop_pad: int = 0,
) -> dict[str, torch.Tensor]:
    """Draw a flip, a crop box (pad ``crop_pad``, crop) and an erasing box once for the clip
    and apply them to all T frames, in that order. The crop draws from ``rng`` only when
    ``crop`` > 0, so that clips without it are augmented as before.

    sample["clips"]: normalised (T, 3, H, W); erasing fills the box with noise.
    """
    if rng.random() < flip:
        sample = flip_clip(sample)
    if crop > 0 and rng.random() < crop:
        dy, dx = rng.randint(-crop_pad, crop_pad), rng.randint(-crop_pad, crop_pad)
        sample = crop_clip(sample, dy, dx)
    if rng.random() < erasing:
        h, w = sample["clips"].shape[-2:]
        box = erase_box(h, w, rng)
        if box is not None:
            y, x, bh, bw = box
            clips = sample["clips"].clone()
            gen = torch.Generator().manual_seed(rng.randrange(2**31))
            clips[..., y : y + bh, x : x + bw] = torch.randn(3, bh, bw, generator=gen)
            sample = {**sample, "clips": clips}
    return sample
