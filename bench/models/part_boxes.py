"""Body-part boxes from 14 joints, fixed prior boxes, and RoI features of the boxes.

Joints follow docs/methods.md's STAL order (1-based): 1 head top, 2 neck, 3 right shoulder,
4 right elbow, 5 right wrist, 6 left shoulder, 7 left elbow, 8 left wrist, 9 left hip,
10 left knee, 11 left ankle, 12 right hip, 13 right knee, 14 right ankle. Boxes are
(x1, y1, x2, y2) in input-image pixels, (..., R, 4) with R = 6 parts in :data:`PART_NAMES` order.
"""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

NUM_JOINTS = 14
PART_NAMES = ("head", "torso", "right_arm", "left_arm", "right_leg", "left_leg")
PART_JOINTS = ((1, 2, 3, 6), (2, 3, 6, 9, 12), (3, 4, 5), (6, 7, 8), (12, 13, 14), (9, 10, 11))
"""1-based joints of each part (STAL eq. 7, Fig. 3c)."""

PRIOR_BOXES = (
    (0.30, 0.00, 0.70, 0.20),
    (0.25, 0.15, 0.75, 0.55),
    (0.05, 0.15, 0.40, 0.60),
    (0.60, 0.15, 0.95, 0.60),
    (0.20, 0.50, 0.55, 1.00),
    (0.45, 0.50, 0.80, 1.00),
)
"""Part boxes as fractions of (width, height, width, height) for an upright pedestrian filling
the crop and facing the camera (the person's right on the image's left)."""


def _membership(device: torch.device) -> torch.Tensor:
    """(R, 14) bool: joint j belongs to part r."""
    member = torch.zeros(len(PART_JOINTS), NUM_JOINTS, dtype=torch.bool, device=device)
    for r, joints in enumerate(PART_JOINTS):
        member[r, [j - 1 for j in joints]] = True
    return member


def part_visibility(occluded: torch.Tensor, misdetected: torch.Tensor) -> torch.Tensor:
    """occluded (..., 14) bool joints, misdetected (...) bool frames -> (..., R): the share of
    each part's joints that no occluder covers, 0 in a misdetected frame."""
    member = _membership(occluded.device).float()
    free = (~occluded).float() @ member.T / member.sum(1)
    return free * (~misdetected).float()[..., None]


def prior_boxes(image_size: tuple[int, int], device: torch.device | None = None) -> torch.Tensor:
    """(R, 4) prior part boxes in pixels of an image of ``image_size`` = (H, W)."""
    h, w = image_size
    return torch.tensor(PRIOR_BOXES, device=device) * torch.tensor([w, h, w, h], device=device)


def part_boxes(keypoints: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """keypoints (..., 14, 3) (x, y, visibility) -> part boxes (..., R, 4) (STAL eq. 7).

    A box spans the min/max x and y of its part's joints with visibility > 0; a part none of
    whose joints is visible gets its prior box, so that the attention can still weigh it down.
    """
    xy = keypoints[..., None, :, :2]  # (..., 1, 14, 2)
    use = _membership(keypoints.device) & (keypoints[..., None, :, 2] > 0)  # (..., R, 14)
    inf = xy.new_tensor(float("inf"))
    lo = torch.where(use[..., None], xy, inf).amin(-2)
    hi = torch.where(use[..., None], xy, -inf).amax(-2)
    boxes = torch.cat([lo, hi], -1)
    prior = prior_boxes(image_size, keypoints.device).to(boxes.dtype)
    return torch.where(use.any(-1, keepdim=True), boxes, prior)


def pad_boxes(
    boxes: torch.Tensor, min_size: tuple[float, float], image_size: tuple[int, int]
) -> torch.Tensor:
    """Clip boxes (..., 4) to the image, grow each about its centre to at least
    ``min_size`` = (min width, min height) (at most the image), and shift it back inside."""
    h, w = image_size
    size = boxes.new_tensor([w, h])
    lo = boxes[..., :2].clamp(min=torch.zeros_like(size), max=size)
    hi = boxes[..., 2:].clamp(min=torch.zeros_like(size), max=size)
    half = torch.maximum((hi - lo) / 2, boxes.new_tensor(min_size) / 2).minimum(size / 2)
    centre = ((lo + hi) / 2).clamp(min=half, max=size - half)
    return torch.cat([centre - half, centre + half], -1)


def roi_features(
    feats: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int], output_size: int
) -> torch.Tensor:
    """RoI-align each box on its frame's feature map.

    feats: (B, T, C, h, w) maps of an input of ``image_size`` = (H, W); boxes: (B, T, R, 4) in
    input pixels -> (B, T, R, C, s, s) with s = ``output_size``. Pixel boxes are mapped to the
    map by the per-axis ratios w / W and h / H (exact for any stride or rounding).
    """
    b, t, c, fh, fw = feats.shape
    r = boxes.shape[2]
    h, w = image_size
    scaled = boxes.reshape(-1, 4) * boxes.new_tensor([fw / w, fh / h, fw / w, fh / h])
    frame = torch.arange(b * t, device=boxes.device, dtype=boxes.dtype).repeat_interleave(r)
    rois = torch.cat([frame[:, None], scaled], 1).to(feats.dtype)
    out = roi_align(feats.flatten(0, 1), rois, output_size, sampling_ratio=2, aligned=True)
    return out.reshape(b, t, r, c, output_size, output_size)
