"""A contact sheet: a few tracklets, each frame shown raw and with its mask and skeleton.

Rows come in pairs: the query tracklet of a test identity and one of its gallery tracklets
from another camera, so the sheet also shows what changes between cameras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.data.base import Split, Tracklet
from bench.data.npy import load_array
from bench.data.synthetic.tracklet import HIDDEN
from bench.errors import DataError
from bench.files.atomic import atomic_path

# Part label -> overlay colour (head, upper body, lower body, shoes).
PART_COLOURS = np.array(
    [[0, 0, 0], [255, 60, 60], [60, 200, 60], [60, 120, 255], [255, 220, 0]], np.float32
)
# Skeleton edges in the 14-joint order of docs/methods.md (0-based).
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (2, 11), (5, 8), (8, 9),
         (9, 10), (11, 12), (12, 13), (8, 11))  # fmt: skip
ZOOM = 2
LABEL_H = 14


def pick_tracklets(split: Split, pairs: int) -> list[tuple[str, Tracklet]]:
    """Up to ``pairs`` (query, cross-camera gallery) tracklet pairs, with their roles."""
    rows: list[tuple[str, Tracklet]] = []
    for q in split.query:
        match = next((g for g in split.gallery if g.pid == q.pid and g.camid != q.camid), None)
        if match is not None:
            rows += [("query", q), ("gallery", match)]
        if len(rows) >= 2 * pairs:
            break
    return rows or [("train", t) for t in split.train[: 2 * pairs]]


def overlay(frame: Image.Image, mask: Image.Image | None, keypoints: np.ndarray | None):
    """The frame tinted by its part mask, with the skeleton drawn (hidden joints hollow)."""
    rgb = np.asarray(frame.convert("RGB"), np.float32)
    if mask is not None:
        labels = np.asarray(mask)
        tint = PART_COLOURS[np.clip(labels, 0, 4)]
        alpha = np.where(labels[..., None] > 0, 0.55, 0.0)
        rgb = rgb * (1 - alpha) + tint * alpha
    w, h = frame.size
    out = Image.fromarray(rgb.astype(np.uint8)).resize((w * ZOOM, h * ZOOM), Image.NEAREST)
    if keypoints is not None:
        _skeleton(ImageDraw.Draw(out), keypoints * np.array([ZOOM, ZOOM, 1]))
    return out


def _skeleton(draw: ImageDraw.ImageDraw, kp: np.ndarray) -> None:
    for a, b in BONES:
        if kp[a, 2] > 0 and kp[b, 2] > 0:
            draw.line([tuple(kp[a, :2]), tuple(kp[b, :2])], fill=(255, 255, 255), width=1)
    for x, y, v in kp:
        if v > 0:
            fill = (255, 0, 255) if v > HIDDEN else None  # visible, or confident
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=fill, outline=(255, 0, 255))


def tracklet_row(role: str, t: Tracklet, frames: int) -> Image.Image:
    """One row: ``frames`` evenly spaced frames, each raw then overlaid, under a caption."""
    picks = np.unique(np.linspace(0, len(t.frames) - 1, frames).round().astype(int))
    keypoints = load_array(t.keypoints) if t.keypoints else None
    tiles = []
    for i in picks:
        frame = Image.open(t.frames[i])
        mask = Image.open(t.masks[i]) if t.masks else None
        kp = keypoints[i] if keypoints is not None else None
        raw = frame.convert("RGB").resize((frame.width * ZOOM, frame.height * ZOOM), Image.NEAREST)
        tiles += [raw, overlay(frame, mask, kp)]
    w, h = tiles[0].size
    row = Image.new("RGB", (w * len(tiles) + len(picks) * 4, h + LABEL_H), (255, 255, 255))
    for k, tile in enumerate(tiles):
        row.paste(tile, (k * w + (k // 2) * 4, LABEL_H))
    caption = f"{role}  pid {t.pid}  camera {t.camid}  {len(t.frames)} frames"
    ImageDraw.Draw(row).text((2, 1), caption, fill=(0, 0, 0))
    return row


def contact_sheet(split: Split, out: Path, pairs: int = 3, frames: int = 6) -> Path:
    """Write the sheet of ``pairs`` query/gallery pairs to ``out`` (PNG); returns ``out``."""
    chosen = pick_tracklets(split, pairs)
    if not chosen:
        raise DataError("the dataset has no tracklets to show")
    rows = [tracklet_row(role, t, frames) for role, t in chosen]
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height + 6 for r in rows)), (255, 255, 255))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 6
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp)
    return out
