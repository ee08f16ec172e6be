"""Clip-level augmentation: one draw per clip, applied to all its frames (and their masks
and keypoints), so a clip stays a consistent piece of video."""

from __future__ import annotations

import math
import random

import torch

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# joint order of METHODS.md: (r-shoulder, l-shoulder), (r-elbow, l-elbow), ... swap on a flip
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
    sample: dict[str, torch.Tensor], flip: float, erasing: float, rng: random.Random
) -> dict[str, torch.Tensor]:
    """Draw a flip and an erasing box once for the clip and apply them to all T frames.

    sample["clips"]: normalised (T, 3, H, W); erasing fills the box with noise.
    """
    if rng.random() < flip:
        sample = flip_clip(sample)
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
