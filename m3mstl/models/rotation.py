"""Rotation representations for the head-pose head, in torch.

Kim et al. (IEEE Access 2023) predict head pose as a rotation matrix built from a 6D
representation (Zhou et al., "On the Continuity of Rotation Representations in Neural
Networks", CVPR 2019) and train it with the geodesic distance between rotations.
Euler angles are only derived for reporting.

Why 6D: every representation with fewer than 5 dimensions (Euler angles, quaternions
up to sign) has discontinuities somewhere on SO(3); near gimbal lock (pitch = +-90 deg)
a smooth head motion makes yaw and roll jump by 180 degrees, so a regressor trained on
Euler angles must learn a discontinuous function there. The 6D representation is the
first two columns of the matrix: it changes exactly as smoothly as the rotation does,
and Gram-Schmidt maps any (non-degenerate) 6-vector back to a valid rotation.

Conventions follow `m3mstl.core.pose`: R = R_y(yaw) @ R_x(pitch) @ R_z(roll), degrees.
The 6D vector is (first column, second column) of R, i.e. ``R[..., :, 0]`` then
``R[..., :, 1]`` (Zhou et al.'s column convention).

All functions compute in float32 (or float64 if given) even under `torch.autocast`:
Gram-Schmidt and arccos near +-1 are too imprecise in half precision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Smallest norm allowed when normalising in Gram-Schmidt; guards against a zero vector.
_NORM_EPS = 1e-8

#: arccos' derivative is infinite at +-1; the gradient is taken at cos clamped to
#: [-1 + eps, 1 - eps] while the value uses the exact clamp to [-1, 1].
GEODESIC_GRAD_EPS = 1e-6


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    """float32 unless the caller already works in float64 (autocast may hand us bf16)."""
    return x if x.dtype == torch.float64 else x.float()


def rotation_from_6d(d6: torch.Tensor) -> torch.Tensor:
    """Map (..., 6) vectors to (..., 3, 3) rotation matrices by Gram-Schmidt.

    The first 3-vector gives the first column (normalised); the second 3-vector, with
    its component along the first removed, gives the second column; the third column
    is their cross product, so the result is orthonormal with determinant +1.
    """
    if d6.shape[-1] != 6:
        raise ValueError(f"rotation_from_6d expects a last dimension of 6, got shape {tuple(d6.shape)}")
    with torch.autocast(device_type=d6.device.type, enabled=False):
        d6 = _full_precision(d6)
        a1, a2 = d6[..., 0:3], d6[..., 3:6]
        b1 = F.normalize(a1, dim=-1, eps=_NORM_EPS)
        b2 = F.normalize(a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1, dim=-1, eps=_NORM_EPS)
        b3 = torch.linalg.cross(b1, b2, dim=-1)
        return torch.stack([b1, b2, b3], dim=-1)  # columns


def rotation_to_6d(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 6): its first two columns; inverse of `rotation_from_6d`."""
    _check_matrix(rotation, "rotation_to_6d")
    return torch.cat([rotation[..., :, 0], rotation[..., :, 1]], dim=-1)


def geodesic_distance(rotation_a: torch.Tensor, rotation_b: torch.Tensor) -> torch.Tensor:
    """Angle in radians, in [0, pi], of the rotation taking `rotation_b` to `rotation_a`.

    The training loss is theta = arccos((trace(R_a R_b^T) - 1) / 2) with cos clamped to
    [-1 + eps, 1 - eps], so its gradient is finite everywhere (arccos' derivative is
    infinite at +-1). The returned *value* is the same angle computed without that
    bias: atan2(sin, cos) with sin from the antisymmetric part of R_a R_b^T, which stays
    exact in float32 near 0 and pi where arccos of a rounded cosine is off by ~5e-4 rad.
    Value and gradient are joined by a straight-through correction.
    """
    _check_matrix(rotation_a, "geodesic_distance")
    _check_matrix(rotation_b, "geodesic_distance")
    with torch.autocast(device_type=rotation_a.device.type, enabled=False):
        rotation_a, rotation_b = _full_precision(rotation_a), _full_precision(rotation_b)
        # trace(A B^T) = sum of the elementwise product: no matmul needed for the loss.
        cos = ((rotation_a * rotation_b).sum(dim=(-2, -1)) - 1.0) / 2.0
        safe = torch.acos(cos.clamp(-1.0 + GEODESIC_GRAD_EPS, 1.0 - GEODESIC_GRAD_EPS))
        with torch.no_grad():
            relative = rotation_a @ rotation_b.transpose(-2, -1)
            axis = torch.stack([relative[..., 2, 1] - relative[..., 1, 2],
                                relative[..., 0, 2] - relative[..., 2, 0],
                                relative[..., 1, 0] - relative[..., 0, 1]], dim=-1)
            exact = torch.atan2(axis.norm(dim=-1) / 2.0, cos)
        return safe + (exact - safe.detach())


def geodesic_loss(predicted: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean geodesic distance (radians) over the batch; `weight` (B,) bool/float selects samples.

    With an all-zero weight the loss is a graph-connected zero, so a batch without pose
    labels still backpropagates (nothing) instead of failing.
    """
    angles = geodesic_distance(predicted, target)
    if weight is None:
        return angles.mean()
    weight = weight.to(angles.dtype)
    return (angles * weight).sum() / weight.sum().clamp_min(1.0)


def rotation_from_euler(angles_deg: torch.Tensor) -> torch.Tensor:
    """(..., 3) yaw, pitch, roll in degrees -> (..., 3, 3), R = R_y(yaw) R_x(pitch) R_z(roll).

    Torch twin of `m3mstl.core.pose.rotation_from_euler` (differentiable, batched).
    """
    if angles_deg.shape[-1] != 3:
        raise ValueError(f"rotation_from_euler expects (..., 3) angles, got shape {tuple(angles_deg.shape)}")
    with torch.autocast(device_type=angles_deg.device.type, enabled=False):
        radians = torch.deg2rad(_full_precision(angles_deg))
        yaw, pitch, roll = radians.unbind(-1)
        return _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(roll)


def euler_from_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3) yaw, pitch, roll in degrees; torch twin of `m3mstl.core.pose.euler_from_rotation`.

    With R = R_y(y) R_x(p) R_z(r): R[1,2] = -sin p, (R[0,2], R[2,2]) = cos p (sin y, cos y),
    (R[1,0], R[1,1]) = cos p (sin r, cos r). Pitch lies in [-90, 90]; at gimbal lock
    (cos p = 0) yaw and roll are not separable and the split is arbitrary.
    """
    _check_matrix(rotation, "euler_from_rotation")
    with torch.autocast(device_type=rotation.device.type, enabled=False):
        rotation = _full_precision(rotation)
        pitch = torch.asin((-rotation[..., 1, 2]).clamp(-1.0, 1.0))
        yaw = torch.atan2(rotation[..., 0, 2], rotation[..., 2, 2])
        roll = torch.atan2(rotation[..., 1, 0], rotation[..., 1, 1])
        return torch.rad2deg(torch.stack([yaw, pitch, roll], dim=-1))


def wrap_degrees(angles_deg: torch.Tensor) -> torch.Tensor:
    """Wrap angles to [-180, 180): the Euler head's L1 loss compares angles modulo a turn."""
    return torch.remainder(angles_deg + 180.0, 360.0) - 180.0


def _check_matrix(rotation: torch.Tensor, caller: str) -> None:
    if rotation.shape[-2:] != (3, 3):
        raise ValueError(f"{caller} expects (..., 3, 3) matrices, got shape {tuple(rotation.shape)}")


def _rot_x(a: torch.Tensor) -> torch.Tensor:
    c, s, one, zero = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([one, zero, zero, zero, c, -s, zero, s, c], dim=-1).unflatten(-1, (3, 3))


def _rot_y(a: torch.Tensor) -> torch.Tensor:
    c, s, one, zero = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], dim=-1).unflatten(-1, (3, 3))


def _rot_z(a: torch.Tensor) -> torch.Tensor:
    c, s, one, zero = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=-1).unflatten(-1, (3, 3))


#: Identity rotation as a 6D vector: the pose head's bias starts here (a frontal face).
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

__all__ = [
    "GEODESIC_GRAD_EPS", "IDENTITY_6D", "euler_from_rotation", "geodesic_distance", "geodesic_loss",
    "rotation_from_6d", "rotation_from_euler", "rotation_to_6d", "wrap_degrees",
]
