"""Render one tracklet: its frames, 4-part label maps and 14 keypoints.

Frames are drawn on a canvas at twice the output size and averaged down (anti-aliasing); the
part labels and joint visibilities are read from the same element map, so they match what is
drawn: a joint is visible (1) if a shape owning it is within 2 canvas pixels of it, hidden
(0.5) if it lies inside the frame under something else (the far side of the body, an occluder,
the black box), and 0 if it lies outside the frame. A joint is *occluded* when it is not visible
and an occluder or the black box covers its pixel (the far side of the body alone does not
count): the truth behind the nuisance records (bench/data/nuisances.py), with each frame's
misdetection.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bench.data.synthetic.attributes import Identity
from bench.data.synthetic.cameras import Camera, background, camera, photometry
from bench.data.synthetic.config import GeneratorConfig
from bench.data.synthetic.figure import Placement, keypoints_2d, person_shapes, pose_of
from bench.data.synthetic.occluders import Occluder, black_box, make_occluder, misdetections
from bench.data.synthetic.shapes import Raster, coverage, rasterise

SS = 2  # supersampling factor of the canvas
BG_WIDTH = 6  # camera scene width, in frame widths
HIDDEN = 0.5


@dataclass(frozen=True)
class TrackletSpec:
    """What to render: tracklet ``index`` (seeds its randomness) of ``identity`` in a camera."""

    index: int
    path: str
    role: str
    identity: Identity
    camid: int
    n_frames: int


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) uint8, 0..4
    keypoints: np.ndarray  # (14, 3) float32: x, y (pixels), visibility
    occluded: np.ndarray  # (14,) bool: joints covered by an occluder or the black box


class TrackletScene:
    """The per-tracklet draws (viewpoint, gait phase, light, occluder, bad crops)."""

    def __init__(self, cfg: GeneratorConfig, spec: TrackletSpec):
        self.cfg, self.spec = cfg, spec
        self.rng = np.random.default_rng([cfg.seed, 3, spec.index])
        self.cam: Camera = camera(cfg.seed, spec.camid)
        self.h, self.w = SS * cfg.height, SS * cfg.width
        rng, n = self.rng, spec.n_frames
        self.yaw = float(rng.choice(self.cam.yaws) + rng.normal(0, 12))
        self.phase = float(rng.uniform(0, 2 * np.pi))
        self.light = float(rng.uniform(0.85, 1.15))
        stride = 0.8 * spec.identity.cadence * self.cam.scale * self.h  # px per frame
        self.scroll = -np.sin(np.deg2rad(self.yaw)) * stride
        span = (BG_WIDTH - 1) * self.w  # room for the crop window to move
        travel = float(self.scroll * (n - 1))
        low, high = max(0.0, -travel), min(span, span - travel)
        self.bg_x = float(rng.uniform(low, high)) if low < high else 0.0
        self.occluder: Occluder | None = None
        if rng.random() < cfg.occlusion_rate:
            self.occluder = make_occluder(rng, n, self.w, self.h, self.scroll, self.cam.yaws)
        self.bad = misdetections(rng, n, cfg.misdetection_rate, self.w, self.h)

    def frames(self) -> Iterator[Frame]:
        for t in range(self.spec.n_frames):
            yield self.frame(t)

    def frame(self, t: int) -> Frame:
        rng, cam, ident = self.rng, self.cam, self.spec.identity
        bad = self.bad[t]
        if bad is not None and bad.kind == "wrong":
            ident = bad.person
        jitter = rng.normal(0, self.cfg.position_jitter * cam.jitter * self.h / 128, 2)
        zoom = float(np.exp(rng.normal(0, self.cfg.scale_jitter))) * (bad.zoom if bad else 1.0)
        shift = np.array([bad.dx, bad.dy]) if bad else np.zeros(2)
        pose = pose_of(ident, self.phase + 2 * np.pi * ident.cadence * t)
        scale = cam.scale * self.h * zoom / pose[0, 1]
        cx, foot = self.w / 2 + jitter[0] + shift[0], (self.h + cam.scale * self.h) / 2
        place = Placement(cx, foot + jitter[1] + shift[1], scale, self.yaw)
        shapes = person_shapes(ident, pose, place, target=True)
        occluding = self.occluder.shapes(t, self.h) if self.occluder is not None else []
        raster = rasterise(shapes + occluding, self._background(t))
        labels = raster.labels[raster.elements[SS // 2 :: SS, SS // 2 :: SS]]
        joints = keypoints_2d(pose, place)
        keypoints = self._keypoints(raster, joints)
        hidden = keypoints[:, 2] < 1  # within 2 px of its own shape, a joint stays visible
        occluded = self._covered(joints, coverage(occluding, self.h, self.w)) & hidden
        image = np.asarray(raster.image.reduce(SS), np.float32)
        image = photometry(image, cam, self.light, rng)
        if self.cfg.polluted:
            occluded |= self._pollute(image, labels, keypoints)
        return Frame(image, labels, keypoints, occluded)

    def _background(self, t: int) -> np.ndarray:
        """The camera's scene, scrolled as the tracker follows the walker: (H, W, 3) uint8."""
        cfg = self.cfg
        bg = background(cfg.seed, self.spec.camid, self.h, self.w, BG_WIDTH, cfg.clutter)
        span = bg.shape[1] - self.w
        q = (self.bg_x + self.scroll * t) % (2 * span)  # reflect at the ends (long tracklets)
        x = int(q if q <= span else 2 * span - q)
        return bg[:, x : x + self.w]

    def _keypoints(self, raster: Raster, xy: np.ndarray) -> np.ndarray:
        """(14, 2) canvas joints -> (14, 3) output pixels and visibility."""
        out = np.zeros((14, 3), np.float32)
        out[:, :2] = xy / SS
        ids = raster.elements
        for j, (x, y) in enumerate(np.round(xy).astype(int)):
            if not (0 <= x < self.w and 0 <= y < self.h):
                continue
            near = np.unique(ids[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3])
            out[j, 2] = 1.0 if any(j in raster.joints[i] for i in near) else HIDDEN
        return out

    def _covered(self, xy: np.ndarray, cover: np.ndarray) -> np.ndarray:
        """(14, 2) canvas joints -> (14,) bool: inside the canvas and on a covered pixel."""
        x, y = np.round(xy).astype(int).T
        inside = (x >= 0) & (x < self.w) & (y >= 0) & (y < self.h)
        out = np.zeros(len(xy), bool)
        out[inside] = cover[y[inside], x[inside]]
        return out

    def _pollute(self, image: np.ndarray, labels: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Black out STAL's box in place; (14,) bool: the joints under it."""
        top, left, side = black_box(self.rng, self.cfg.height, self.cfg.width)
        image[top : top + side, left : left + side] = 0
        labels[top : top + side, left : left + side] = 0
        x, y = keypoints[:, 0], keypoints[:, 1]
        inside = (x >= left) & (x < left + side) & (y >= top) & (y < top + side)
        keypoints[inside & (keypoints[:, 2] > 0), 2] = HIDDEN
        return inside
