"""Head-pose convention shared by the generator, the datasets and the models.

Head frame: x to the image right of a frontal face (the subject's left), y up, z out of
the face towards the camera. ``rotation`` (the pose stored per image) rotates head-frame
vectors; it is composed yaw, then pitch, then roll about the head's own axes:

    R = R_y(yaw) @ R_x(pitch) @ R_z(roll)

Positive yaw turns the nose towards the image right, positive pitch tilts the nose
down, positive roll lifts the image-right side of the head. Angles are in degrees.
A horizontal image flip negates yaw and roll (R -> M R M with M = diag(-1, 1, 1)).
The camera looks along the head's -z axis when the pose is zero; see
``m3mstl.data.synth`` for the projection.
"""
from __future__ import annotations

import numpy as np

from m3mstl.core import vec3

FLIP = np.diag([-1.0, 1.0, 1.0])


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation for yaw, pitch, roll in degrees (order documented in the module)."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    return vec3.matmul(vec3.matmul(_ry(y), _rx(p)), _rz(r))  # no BLAS: the same bits on every CPU


def euler_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Inverse of `rotation_from_euler` for (..., 3, 3) arrays; returns (..., 3) degrees."""
    rot = np.asarray(rotation, dtype=float)
    pitch = np.arcsin(np.clip(-rot[..., 1, 2], -1.0, 1.0))
    yaw = np.arctan2(rot[..., 0, 2], rot[..., 2, 2])
    roll = np.arctan2(rot[..., 1, 0], rot[..., 1, 1])
    return np.rad2deg(np.stack([yaw, pitch, roll], axis=-1))


def flip_rotation(rotation: np.ndarray) -> np.ndarray:
    """Pose of the mirrored image: yaw and roll change sign, pitch is kept."""
    return FLIP @ np.asarray(rotation, dtype=float) @ FLIP
