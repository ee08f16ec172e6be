"""Cameras: viewpoint, scale, detector jitter, background, illumination and colour cast.

Each camera is drawn once from the seed. Its viewpoints come from a fixed rotation (front,
back, side, oblique front, oblique back, ...) so that what is visible of a person (face, front
logo, backpack) changes from camera to camera; its photometry (per-channel gains, brightness,
gamma, a light gradient, blur and sensor noise) changes every colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

# Yaw choices (degrees) of camera c: VIEWS[c % len(VIEWS)]; a side camera sees both directions.
VIEWS: tuple[tuple[float, ...], ...] = (
    (0.0,),
    (180.0,),
    (90.0, 270.0),
    (35.0, 325.0),
    (145.0, 215.0),
    (60.0, 300.0),
    (0.0, 180.0),
    (120.0, 240.0),
)


@dataclass(frozen=True)
class Camera:
    camid: int
    yaws: tuple[float, ...]
    scale: float  # person height / frame height
    jitter: float  # detector jitter (std, pixels at 128 x 64)
    gains: tuple[float, float, float]  # colour cast
    brightness: float
    gamma: float
    gradient: float  # vertical light fall-off (fraction)
    blur: float  # Gaussian blur radius at 128 x 64 (0 = sharp)
    noise: float  # sensor noise std (grey levels)


def camera(seed: int, camid: int) -> Camera:
    """The deterministic parameters of camera ``camid`` for a generator seed."""
    rng = np.random.default_rng([seed, 7, camid])
    return Camera(
        camid=camid,
        yaws=VIEWS[camid % len(VIEWS)],
        scale=float(rng.uniform(0.74, 0.92)),
        jitter=float(rng.uniform(0.8, 2.5)),
        gains=tuple(float(g) for g in np.clip(rng.normal(1.0, 0.09, 3), 0.8, 1.2)),
        brightness=float(rng.uniform(0.7, 1.15)),
        gamma=float(rng.uniform(0.8, 1.25)),
        gradient=float(rng.uniform(-0.35, 0.35)),
        blur=float(rng.choice([0.0, 0.5, 0.9])),
        noise=float(rng.uniform(2.0, 7.0)),
    )


@lru_cache(maxsize=16)
def background(
    seed: int, camid: int, height: int, width: int, frames: int, clutter: float = 1.0
) -> np.ndarray:
    """A (height, frames * width, 3) uint8 scene for camera ``camid``: wall, floor, clutter.

    ``width`` is the frame width (clutter is sized by it); about 1.5 items per frame width,
    times ``clutter`` (0: a bare wall and floor).
    """
    rng = np.random.default_rng([seed, 11, camid])
    wide = frames * width
    horizon = int(height * rng.uniform(0.45, 0.75))
    img = np.empty((height, wide, 3), np.float32)
    img[:horizon], img[horizon:] = _muted(rng, 70, 200), _muted(rng, 50, 160)
    items = round(int(rng.integers(frames, 2 * frames + 1)) * clutter)
    for _ in range(items):  # windows, doors, posters
        x0, w = int(rng.integers(0, wide)), int(rng.integers(width // 8, width))
        y0, h = int(rng.integers(0, horizon)), int(rng.integers(height // 10, height // 2))
        saturated = rng.random() < 0.25
        colour = rng.uniform(20, 235, 3) if saturated else _muted(rng, 30, 220)
        img[y0 : min(y0 + h, horizon), x0 : x0 + w] = colour
    tile = int(rng.integers(width // 6, width // 2))
    img[horizon:, ::tile] *= 0.8  # floor tile joints
    img[horizon:] *= np.linspace(0.85, 1.1, height - horizon, dtype=np.float32)[:, None, None]
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))


def _muted(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A greyish colour: a grey level in [low, high] with a slight per-channel tint."""
    return rng.uniform(low, high) * rng.normal(1.0, 0.1, 3)


def photometry(img: np.ndarray, cam: Camera, light: float, rng: np.random.Generator) -> np.ndarray:
    """Apply a camera's look to an (H, W, 3) float image in [0, 255]; returns uint8.

    ``light`` is the tracklet's own illumination factor around the camera's brightness.
    """
    h = img.shape[0]
    fall = 1.0 + cam.gradient * (np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None, None])
    gain = np.array(cam.gains, np.float32) * np.float32(cam.brightness * light / 255.0)
    out = np.power(np.clip(img * gain * fall, 0.0, 1.0), np.float32(cam.gamma)) * 255.0
    if cam.blur > 0:
        radius = cam.blur * h / 128
        pil = Image.fromarray(out.astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
        out = np.asarray(pil, np.float32)
    out += rng.standard_normal(out.shape, np.float32) * np.float32(cam.noise)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
