"""The 14-joint skeleton of docs/methods.md (STAL) and a walking cycle in 3-D.

Body coordinates, in units of a standing height of about 1: x to the person's left, y up from
the ground, z forward (the walking direction). A camera at yaw 0 sees the person from the
front, at 180 from the back, at 90 from the person's right side.
"""

from __future__ import annotations

import numpy as np

JOINTS = (
    "head_top",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_hip",
    "r_knee",
    "r_ankle",
)
J = {name: i for i, name in enumerate(JOINTS)}

ANKLE_HEIGHT = 0.04
TORSO = 0.29  # hip to shoulder
NECK = 0.035  # shoulder to neck joint
HEAD = 0.15  # neck joint to head top
UPPER_ARM, FOREARM = 0.165, 0.155
STRIDE = 0.42  # hip swing amplitude (radians)
KNEE_FLEX = 0.95  # peak knee flexion in swing (radians)


def _limb(start: np.ndarray, length: float, angle: float, out: float) -> np.ndarray:
    """End of a limb swung by ``angle`` (radians, + = forward) in the sagittal plane."""
    return start + np.array([out, -length * np.cos(angle), length * np.sin(angle)])


def walking_pose(width: float, legs: float, phase: float, arm_swing: float) -> np.ndarray:
    """Joints (14, 3) in body coordinates at gait ``phase`` (radians, one cycle = 2 pi).

    The hips swing as ``STRIDE * sin(phase)`` (left leg in antiphase), the knee flexes in the
    swing half of its cycle, the arms swing against the legs, and the body is lifted so the
    lower ankle sits at ``ANKLE_HEIGHT`` (which gives the vertical bob of a real gait).
    """
    segment = 0.245 * legs
    hip_y = ANKLE_HEIGHT + 2 * segment
    shoulder_y = hip_y + TORSO
    sw, hw = 0.105 * width, 0.068 * width
    pose = np.zeros((14, 3))
    pose[J["head_top"]] = (0, shoulder_y + NECK + HEAD, 0)
    pose[J["neck"]] = (0, shoulder_y + NECK, 0)
    for side, sign, shift in (("r", -1.0, 0.0), ("l", 1.0, np.pi)):
        swing = STRIDE * np.sin(phase + shift)
        flex = KNEE_FLEX * max(0.0, np.cos(phase + shift)) + 0.08
        hip = np.array([sign * hw, hip_y, 0.0])
        knee = _limb(hip, segment, swing, 0.0)
        pose[J[f"{side}_hip"]] = hip
        pose[J[f"{side}_knee"]] = knee
        pose[J[f"{side}_ankle"]] = _limb(knee, segment, swing - flex, 0.0)
        arm = -arm_swing * np.sin(phase + shift)
        shoulder = np.array([sign * sw, shoulder_y, 0.0])
        elbow = _limb(shoulder, UPPER_ARM, arm, sign * 0.02)
        pose[J[f"{side}_shoulder"]] = shoulder
        pose[J[f"{side}_elbow"]] = elbow
        pose[J[f"{side}_wrist"]] = _limb(elbow, FOREARM, arm + 0.3, sign * 0.01)
    ankles = pose[[J["l_ankle"], J["r_ankle"]], 1]
    pose[:, 1] += ANKLE_HEIGHT - ankles.min()
    return pose


def rotate(points: np.ndarray, yaw_deg: float) -> np.ndarray:
    """(..., 3) body points -> (..., 2) of (u, depth): u to the image right, depth to camera."""
    t = np.deg2rad(yaw_deg)
    x, z = points[..., 0], points[..., 2]
    return np.stack([x * np.cos(t) + z * np.sin(t), -x * np.sin(t) + z * np.cos(t)], -1)
