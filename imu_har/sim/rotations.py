"""Rotation matrices of the simulated body: roll, pitch and yaw, and the body's lean and heading.

Vectorized over arrays of angles (radians): a stream of samples for many
wearers is rotated at once. Used by :mod:`imu_har.sim.wearable`.
"""

from __future__ import annotations

import numpy as np

# The upright body: spine (x) up, chest (z) toward magnetic north, y = west (left).
UPRIGHT = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])


def rotation(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rz(yaw) @ Ry(pitch) @ Rx(roll) for arrays of angles (rad) -> (..., 3, 3)."""
    cr, sr, cp, sp, cy, sy = (f(a) for a in (roll, pitch, yaw) for f in (np.cos, np.sin))
    return np.stack(
        [
            np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1),
            np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1),
            np.stack([-sp, cp * sr, cp * cr], -1),
        ],
        -2,
    )


def body_rotation(pitch: np.ndarray, roll: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World-from-body rotation: heading about world up, then lean in the body frame.

    The lean acts on the upright body about its left axis (pitch: + leans back so the
    chest faces up) and its spine (roll), expressed through the upright frame.
    """
    zero = np.zeros_like(pitch)
    heading = rotation(zero, zero, yaw)
    lean = rotation(roll, pitch, zero)  # in body coordinates: x spine, y left, z chest
    upright_lean = UPRIGHT @ lean @ UPRIGHT.T
    return heading @ upright_lean
