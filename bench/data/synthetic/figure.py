"""A pedestrian as shapes: the 14-joint pose dressed in the identity's part attributes.

Limbs are capsules between joints; the torso, skirt, bags and shoes are 3-D boxes projected
to their convex hull; the head is an ellipse with hair, face and hat layers. Everything is
projected at the camera's yaw, so what is visible (a front logo, a backpack, the face) depends
on the viewpoint. Part labels: 1 head (hair, face, hat, neck), 2 upper body (torso, arms,
hands, carried bags), 3 lower body (trousers, shorts, skirt, bare legs), 4 shoes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.synthetic.attributes import BODY_SHAPES, COLOURS, SKIN_TONES, Identity
from bench.data.synthetic.shapes import Shape, convex_hull
from bench.data.synthetic.skeleton import J, rotate, walking_pose

HEAD, UPPER, LOWER, SHOES = 1, 2, 3, 4
Span = tuple[float, float]
Joints = tuple[int, ...]
TORSO_JOINTS = tuple(J[n] for n in ("neck", "r_shoulder", "l_shoulder", "l_hip", "r_hip"))
HEAD_JOINTS = (J["head_top"], J["neck"])


@dataclass(frozen=True)
class Placement:
    """Where a body stands in the canvas: foot point (cx, foot_y), pixels per body unit, yaw."""

    cx: float
    foot_y: float
    scale: float
    yaw: float

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body points (..., 3) -> canvas pixels (..., 2) and depth towards the camera (...)."""
        ud = rotate(pts, self.yaw)
        xy = np.stack([self.cx + ud[..., 0] * self.scale, self.foot_y - pts[..., 1] * self.scale])
        return np.moveaxis(xy, 0, -1), ud[..., 1]


def colours(identity: Identity) -> dict[str, np.ndarray]:
    """Material name -> RGB (float) for an identity, with its personal tint."""
    _, hair = identity.value("head")
    upper, _, upper2, _ = identity.value("upper")
    names = {
        "hair": hair,
        "upper": upper,
        "upper2": upper2,
        "lower": identity.value("lower")[0],
        "shoe": identity.value("shoes")[0],
        "bag": identity.value("bag")[1],
    }
    out = {k: np.array(COLOURS[v], np.float32) for k, v in names.items()}
    out["skin"] = np.array(SKIN_TONES[identity.value("skin")[0]], np.float32)
    tint = np.array(identity.tint, np.float32)
    return {k: np.clip(v + tint, 0, 255) for k, v in out.items()}


@dataclass
class Part:
    """A shape in body units, projected later with all others in one call.

    ``screen`` = (shift, radii) in body units makes a screen-aligned ellipse around the single
    point ``pts``; ``depth`` fixes the depth instead of the mean depth of the points.
    """

    kind: str
    pts: np.ndarray
    material: str
    label: int
    joints: tuple[int, ...] = ()
    radius: float = 0.0
    order: float = 0.0
    arc: tuple[float, float] = (0.0, 360.0)
    screen: tuple[tuple[float, float], tuple[float, float]] | None = None
    depth: float | None = None


class Dresser:
    """Builds the parts of one person; see the module docstring."""

    def __init__(self, identity: Identity, pose: np.ndarray, place: Placement):
        self.ident, self.pose, self.place = identity, pose, place
        self.width = BODY_SHAPES[identity.value("body")[0]][0] * identity.width
        self.parts: list[Part] = []

    def box(
        self,
        mat: str,
        label: int,
        x: Span,
        y: Span,
        z: Span,
        joints: Joints = (),
        order: float = 0.0,
        xb: Span | None = None,
        zb: Span | None = None,
    ) -> Part:
        """A frustum: x, z = (min, max) at the top y[1], and xb, zb at the bottom y[0]."""
        xb, zb = xb or x, zb or z
        top = [(xi, y[1], zi) for xi in x for zi in z]
        pts = np.array(top + [(xi, y[0], zi) for xi in xb for zi in zb], np.float64)
        return self._add(Part("poly", pts, mat, label, tuple(joints), order=order))

    def capsule(
        self, mat: str, label: int, a, b, radius: float, joints: Joints = (), order: float = 0.0
    ) -> Part:
        """A limb of ``radius`` (body units) between body points a and b."""
        pts = np.array([a, b], np.float64)
        return self._add(Part("capsule", pts, mat, label, tuple(joints), radius, order))

    def ellipse(self, mat: str, centre, shift: Span, radii: Span, order: float) -> Part:
        """A screen-aligned head layer around a body point, shifted and sized in body units."""
        pts = np.asarray(centre, np.float64)[None]
        part = Part("ellipse", pts, mat, HEAD, HEAD_JOINTS, order=order, screen=(shift, radii))
        return self._add(part)

    def _add(self, part: Part) -> Part:
        self.parts.append(part)
        return part

    def build(self) -> list[Part]:
        self.legs()
        self.torso()
        self.arms()
        self.head()
        self.bag()
        return self.parts

    def legs(self) -> None:
        p, w = self.pose, self.width
        _, kind = self.ident.value("lower")
        for side in "lr":
            hip, knee, ankle = (J[f"{side}_{n}"] for n in ("hip", "knee", "ankle"))
            thigh = "skin" if kind == "skirt" else "lower"
            split = p[hip] + (0.7 if kind == "shorts" else 1.0) * (p[knee] - p[hip])
            self.capsule(thigh, LOWER, p[hip], split, 0.046 * w, (hip, knee))
            if kind == "shorts":
                self.capsule("skin", LOWER, split, p[knee], 0.036 * w, (knee,))
            shank = "lower" if kind == "trousers" else "skin"
            self.capsule(shank, LOWER, p[knee], p[ankle], 0.038 * w, (knee, ankle))
            x, y, z = p[ankle]
            foot = ((x - 0.035, x + 0.035), (0.0, y + 0.02), (z - 0.03, z + 0.09))
            self.box("shoe", SHOES, *foot, (ankle,), order=0.02)
        if kind == "skirt":
            knees = p[[J["l_knee"], J["r_knee"]]]
            hy, ky, hw = p[J["l_hip"], 1], knees[:, 1].mean(), abs(p[J["l_hip"], 0]) + 0.05 * w
            top = ((-hw, hw), (ky + 0.02, hy + 0.03), (-0.07, 0.07), (J["l_hip"], J["r_hip"]))
            skirt = self.box("lower", LOWER, *top, xb=(-hw - 0.05, hw + 0.05), zb=(-0.1, 0.1))
            skirt.depth = float(self.place.project(knees)[1].max()) + 0.002  # over both thighs

    def torso(self) -> None:
        p, w = self.pose, self.width
        _, pattern, _, _ = self.ident.value("upper")
        sx, hx, d = abs(p[J["l_shoulder"], 0]) + 0.02, abs(p[J["l_hip"], 0]) + 0.025, 0.06 * w
        top, bottom = p[J["l_shoulder"], 1] + 0.02, p[J["l_hip"], 1] - 0.02

        def slab(y0: float, y1: float, mat: str, x0: float = -1.0, x1: float = 1.0) -> None:
            h0, h1 = (hx + (y - bottom) / (top - bottom) * (sx - hx) for y in (y0, y1))
            xt, xb = (x0 * h1, x1 * h1), (x0 * h0, x1 * h0)
            self.box(mat, UPPER, xt, (y0, y1), (-d, d), TORSO_JOINTS, xb=xb)

        if pattern == "stripes":
            edges = np.linspace(bottom, top, 7)
            for k in range(6):
                slab(edges[k], edges[k + 1], "upper" if k % 2 else "upper2")
        elif pattern == "two-tone":
            slab(bottom, top, "upper", 0.0, 1.0)
            slab(bottom, top, "upper2", -1.0, 0.0)
        else:
            slab(bottom, top, "upper")
        if pattern == "logo":
            yc = top - 0.35 * (top - bottom)
            logo = ((-0.045 * w, 0.045 * w), (yc - 0.045, yc + 0.04), (d, d + 0.004))
            self.box("upper2", UPPER, *logo, order=0.01)

    def arms(self) -> None:
        p, w = self.pose, self.width
        fore = "upper" if self.ident.value("upper")[3] == "long" else "skin"
        for side in "lr":
            sh, el, wr = (J[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist"))
            self.capsule("upper", UPPER, p[sh], p[el], 0.04 * w, (sh, el))
            self.capsule(fore, UPPER, p[el], p[wr], 0.033 * w, (el, wr))
            hand = p[wr] + 0.35 * (p[wr] - p[el])
            self.capsule("skin", UPPER, p[wr], hand, 0.026, (wr,), order=0.001)

    def head(self) -> None:
        p = self.pose
        style, _ = self.ident.value("head")
        neck = p[J["neck"]]
        self.capsule("skin", HEAD, neck - (0, 0.04, 0), neck, 0.03, (J["neck"],))
        centre, rx, ry = p[J["head_top"]] - (0, 0.076, 0), 0.06, 0.076
        hatted = style in ("cap", "beanie")
        self.ellipse("skin" if hatted else "hair", centre, (0.0, 0.0), (rx, ry), 0.01)
        yaw = np.deg2rad(self.place.yaw)
        if np.cos(yaw) > -0.35:  # the face turns with the walking direction
            half_w = rx * (0.55 + 0.3 * abs(np.cos(yaw)))
            shift = (0.45 * rx * np.sin(yaw), -0.02)
            self.ellipse("skin", centre, shift, (half_w, 0.78 * ry), 0.02)
        if style == "long":
            hair = ((-0.075, 0.075), (centre[1] - 0.2, centre[1] + 0.02), (-0.08, -0.03))
            self.box("hair", HEAD, *hair, HEAD_JOINTS, order=-0.03)
        elif hatted:
            hat = self.ellipse("hair", centre, (0.0, 0.0), (rx + 0.006, ry + 0.006), 0.03)
            hat.kind, hat.arc = "chord", (180.0, 360.0) if style == "cap" else (165.0, 375.0)
        if style == "cap":
            brim = ((-0.06, 0.06), (centre[1] + 0.005, centre[1] + 0.02), (0.06, 0.13))
            self.box("hair", HEAD, *brim, HEAD_JOINTS, order=0.04)

    def bag(self) -> None:
        kind, _ = self.ident.value("bag")
        p, w = self.pose, self.width
        sy, hy, d = p[J["l_shoulder"], 1], p[J["l_hip"], 1], 0.06 * w
        if kind == "backpack":
            pack = ((-0.085 * w, 0.085 * w), (sy - 0.22, sy - 0.02), (-d - 0.08, -d))
            self.box("bag", UPPER, *pack, order=-0.001)
        elif kind == "shoulder":
            x = abs(p[J["l_hip"], 0]) + 0.06 * w
            self.box("bag", UPPER, (x - 0.02, x + 0.03), (hy - 0.1, hy + 0.03), (-0.06, 0.05))
            strap = (-0.6 * abs(p[J["r_shoulder"], 0]), sy, d + 0.004), (x, hy + 0.03, d / 2)
            self.capsule("bag", UPPER, *strap, 0.012, order=0.01)
        elif kind == "hand":
            x, y, z = p[J["r_wrist"]]
            hand_bag = ((x - 0.035, x + 0.035), (y - 0.13, y - 0.03), (z - 0.05, z + 0.05))
            self.box("bag", UPPER, *hand_bag, order=0.01)


def _shape(part: Part, xy: np.ndarray, depth: float, colour: np.ndarray, scale: float) -> Shape:
    """A projected part as a canvas shape."""
    points = xy
    if part.kind == "poly":
        points = convex_hull(xy)
    elif part.screen is not None:
        (sx, sy), (rx, ry) = part.screen
        cx, cy = xy[0, 0] + sx * scale, xy[0, 1] - sy * scale
        points = np.array([[cx - rx * scale, cy - ry * scale], [cx + rx * scale, cy + ry * scale]])
    shape = Shape(part.kind, points, depth, colour, part.label, part.joints)
    shape.radius, shape.arc = part.radius * scale, part.arc
    return shape


def person_shapes(
    identity: Identity, pose: np.ndarray, place: Placement, target: bool, bias: float = 0.0
) -> list[Shape]:
    """The shapes of a person, shaded darker on the far side, all projected in one call.

    A non-target (passer-by) gets label 0 and owns no joints.
    """
    parts = Dresser(identity, pose, place).build()
    xy, depth = place.project(np.concatenate([p.pts for p in parts]))
    sizes = np.array([len(p.pts) for p in parts])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    mean = np.add.reduceat(depth, starts) / sizes
    shade = 0.92 + 0.08 * np.clip(mean / 0.1, -1, 1)
    mats = colours(identity)
    shapes = []
    for k, part in enumerate(parts):
        d = part.depth if part.depth is not None else float(mean[k])
        colour = mats[part.material] * shade[k]
        seg = xy[starts[k] : starts[k] + sizes[k]]
        shapes.append(_shape(part, seg, bias + d + part.order, colour, place.scale))
        if not target:
            shapes[-1].label, shapes[-1].joints = 0, ()
    return shapes


def pose_of(identity: Identity, phase: float) -> np.ndarray:
    """The identity's (14, 3) walking pose at gait ``phase``, with its body shape and gait."""
    width, legs = BODY_SHAPES[identity.value("body")[0]]
    return walking_pose(width * identity.width, legs, phase, identity.arm_swing)


def keypoints_2d(pose: np.ndarray, place: Placement) -> np.ndarray:
    """(14, 3) body joints -> (14, 2) canvas pixels."""
    return place.project(pose)[0]
