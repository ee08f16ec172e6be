"""What goes wrong in a tracklet: occluders, misdetected frames, and STAL's black box.

Occluders (one per occluded tracklet) are a box standing on the floor (a bin, a bench, a car),
a pole, or a passer-by walking in front; static ones move with the background as the tracker
follows the walker. Misdetections come in short episodes of 1-4 frames: the crop drifts off
the person (shifted and rescaled), or jumps to the wrong person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.synthetic.attributes import Identity, random_identity
from bench.data.synthetic.figure import Placement, person_shapes, pose_of
from bench.data.synthetic.shapes import Shape

FRONT = 100.0  # depth offset that puts occluders in front of the person
OCCLUDER_KINDS = ("box", "pole", "person")
MIS_EPISODE = (1, 4)  # misdetection episode lengths (frames)


@dataclass(frozen=True)
class Occluder:
    """kind, left edge x0 and velocity vx (canvas px, px/frame), size (w, h), colour or person."""

    kind: str
    x0: float
    vx: float
    size: tuple[float, float]
    colour: tuple[float, float, float]
    person: Identity | None = None
    yaw: float = 0.0
    phase: float = 0.0

    def shapes(self, t: int, height: int) -> list[Shape]:
        x = self.x0 + self.vx * t
        w, h = self.size
        if self.kind == "person":
            assert self.person is not None
            place = Placement(x, height * 1.08, h, self.yaw)
            pose = pose_of(self.person, self.phase + 2 * np.pi * self.person.cadence * t)
            return person_shapes(self.person, pose, place, target=False, bias=FRONT)
        top = height - h
        body = np.array([[x, top], [x + w, top], [x + w, height], [x, height]], np.float64)
        colour = np.array(self.colour, np.float32)
        shapes = [Shape("poly", body, FRONT, colour)]
        if self.kind == "box":  # a darker lid gives it some structure
            lid = np.array([[x, top], [x + w, top], [x + w, top + 0.12 * h], [x, top + 0.12 * h]])
            shapes.append(Shape("poly", lid, FRONT + 1, colour * 0.7))
        return shapes


def make_occluder(
    rng: np.random.Generator,
    n: int,
    width: int,
    height: int,
    scroll: float,
    yaws: tuple[float, ...],
) -> Occluder:
    """An occluder that crosses the person around the middle of an ``n``-frame tracklet."""
    kind = OCCLUDER_KINDS[int(rng.integers(len(OCCLUDER_KINDS)))]
    vx = scroll if abs(scroll) > 0.5 else float(rng.uniform(-1.5, 1.5)) * width / 128
    colour = tuple(float(c) for c in rng.uniform(30, 200, 3))
    if kind == "person":
        scale = height * float(rng.uniform(0.95, 1.2))
        vx = float(rng.choice([-1, 1])) * width * float(rng.uniform(0.04, 0.1))
        centre = width / 2 + float(rng.uniform(-0.25, 0.25)) * width
        x0 = centre - vx * n / 2
        stranger = random_identity(rng)
        yaw = float(rng.choice(yaws)) + float(rng.normal(0, 15))
        phase = float(rng.uniform(0, 2 * np.pi))
        return Occluder(kind, x0, vx, (0.0, scale), colour, stranger, yaw, phase)
    if kind == "box":
        size = (width * float(rng.uniform(0.5, 1.1)), height * float(rng.uniform(0.2, 0.45)))
    else:
        size = (width * float(rng.uniform(0.1, 0.2)), float(height))
    centre = width / 2 + float(rng.uniform(-0.3, 0.3)) * width
    return Occluder(kind, centre - size[0] / 2 - vx * n / 2, vx, size, colour)


@dataclass(frozen=True)
class Misdetection:
    """A bad crop: 'drift' (shift dx, dy in canvas px and zoom) or 'wrong' (another person)."""

    kind: str
    dx: float = 0.0
    dy: float = 0.0
    zoom: float = 1.0
    person: Identity | None = None


def misdetections(
    rng: np.random.Generator, n: int, rate: float, width: int, height: int
) -> list[Misdetection | None]:
    """Per frame, None or the misdetection of that frame; about ``rate`` of frames are bad."""
    out: list[Misdetection | None] = [None] * n
    mean_len = sum(MIS_EPISODE) / 2
    start_p = rate / (mean_len * (1 - rate) + rate) if rate < 1 else 1.0
    t = 0
    while t < n:
        if rng.random() >= start_p:
            t += 1
            continue
        length = min(int(rng.integers(MIS_EPISODE[0], MIS_EPISODE[1] + 1)), n - t)
        if rng.random() < 0.35:
            wrong = Misdetection("wrong", person=random_identity(rng))
            out[t : t + length] = [wrong] * length
        else:
            dx = float(rng.choice([-1, 1]) * rng.uniform(0.25, 0.55)) * width
            dy = float(rng.uniform(-0.15, 0.25)) * height
            zoom = float(np.exp(rng.uniform(-0.4, 0.35)))
            for k in range(length):
                f = (k + 1) / length
                out[t + k] = Misdetection("drift", f * dx, f * dy, zoom**f)
        t += length
    return out


def black_box(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int]:
    """STAL's pollution: (top, left, side) of a 25 x 25 box (at 128 x 64) inside the frame."""
    side = max(1, round(25 * height / 128))
    return int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)), side
