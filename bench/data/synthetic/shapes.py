"""Flat 2-D shapes and their rasterisation into an element-id map (painter's algorithm).

A frame is drawn as a map of element ids (uint8, 0 = background); each element carries its
colour, its part label (0..4) and the joints it covers, so the colour image, the part mask and
the keypoint visibilities all come from the same drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass
class Shape:
    """One drawn element in canvas pixels.

    kind: 'poly' (points (n, 2)), 'capsule' (points (2, 2), radius), 'ellipse' (points = bbox
    corners (2, 2)) or 'chord' (ellipse bbox plus ``arc`` = (start, end) degrees).
    """

    kind: str
    points: np.ndarray
    depth: float
    colour: np.ndarray
    label: int = 0
    joints: tuple[int, ...] = ()
    radius: float = 0.0
    arc: tuple[float, float] = (0.0, 360.0)


@dataclass
class Raster:
    """elements (H, W) uint8 ids; image (H, W, 3) uint8; labels (N,) and joints[N] by id."""

    elements: np.ndarray
    image: Image.Image
    labels: np.ndarray
    joints: list[tuple[int, ...]]


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, value: int | tuple[int, ...]) -> None:
    pts = [tuple(p) for p in shape.points.tolist()]
    if shape.kind == "poly":
        draw.polygon(pts, fill=value)
    elif shape.kind == "capsule":
        r = shape.radius
        draw.line(pts, fill=value, width=max(1, round(2 * r)))
        for x, y in pts:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=value)
    elif shape.kind == "ellipse":
        draw.ellipse(_bbox(shape.points), fill=value)
    else:
        draw.chord(_bbox(shape.points), shape.arc[0], shape.arc[1], fill=value)


def _bbox(points: np.ndarray) -> tuple[float, float, float, float]:
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    return float(x0), float(y0), float(x1), float(y1)


def rasterise(shapes: list[Shape], background: np.ndarray) -> Raster:
    """Draw shapes far to near (stable for equal depths) over an (H, W, 3) uint8 background.

    Two passes of the same drawing: element ids into an 'L' map, colours into the image.
    """
    if len(shapes) > 255:
        raise ValueError(f"{len(shapes)} shapes do not fit a uint8 element map")
    height, width = background.shape[:2]
    ids = Image.new("L", (width, height), 0)
    image = Image.fromarray(background)
    draw_ids, draw_rgb = ImageDraw.Draw(ids), ImageDraw.Draw(image)
    ordered = sorted(shapes, key=lambda s: s.depth)
    for i, shape in enumerate(ordered, start=1):
        _draw(draw_ids, shape, i)
        rgb = np.clip(shape.colour + 0.5, 0, 255).astype(int)
        _draw(draw_rgb, shape, tuple(rgb.tolist()))
    labels = np.array([0] + [s.label for s in ordered], np.uint8)
    joints = [()] + [s.joints for s in ordered]
    return Raster(np.asarray(ids), image, labels, joints)


def coverage(shapes: list[Shape], height: int, width: int) -> np.ndarray:
    """(height, width) bool: the pixels any of ``shapes`` covers."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        _draw(draw, shape, 1)
    return np.asarray(canvas, dtype=bool)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """(n, 2) -> hull vertices (m, 2) in order (Andrew's monotone chain)."""
    pts = sorted(map(tuple, points.tolist()))

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
