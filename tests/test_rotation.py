"""6D rotation representation, geodesic loss and torch Euler conversions (m3mstl.models.rotation)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from m3mstl.core import pose as np_pose
from m3mstl.models.rotation import (
    IDENTITY_6D, euler_from_rotation, geodesic_distance, geodesic_loss, rotation_from_6d, rotation_from_euler,
    rotation_to_6d, wrap_degrees,
)

torch.set_num_threads(1)


def _random_angles(n: int, seed: int = 0, max_pitch: float = 85.0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    angles = np.stack([rng.uniform(-179, 179, n), rng.uniform(-max_pitch, max_pitch, n), rng.uniform(-179, 179, n)], -1)
    return torch.tensor(angles, dtype=torch.float64)


def test_6d_to_matrix_is_orthonormal_with_determinant_one():
    d6 = torch.randn(500, 6, generator=torch.Generator().manual_seed(0)) * 3.0
    rot = rotation_from_6d(d6)
    identity = torch.eye(3).expand(500, 3, 3)
    assert torch.allclose(rot.transpose(-2, -1) @ rot, identity, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(500), atol=1e-5)


def test_6d_gram_schmidt_hand_worked_case():
    # a1 = (2, 0, 0) -> b1 = x; a2 = (5, 3, 0) minus its x part -> b2 = y; b3 = x cross y = z.
    rot = rotation_from_6d(torch.tensor([2.0, 0.0, 0.0, 5.0, 3.0, 0.0]))
    assert torch.allclose(rot, torch.eye(3), atol=1e-7)
    # Non-axis case: a1 along (1,1,0), a2 = z -> columns (1,1,0)/sqrt2, z, (1,1,0)/sqrt2 x z = (1,-1,0)/sqrt2.
    rot = rotation_from_6d(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 4.0]))
    s = 1 / math.sqrt(2)
    expected = torch.tensor([[s, 0.0, s], [s, 0.0, -s], [0.0, 1.0, 0.0]])
    assert torch.allclose(rot, expected, atol=1e-6)
    assert torch.allclose(rotation_from_6d(torch.tensor(IDENTITY_6D)), torch.eye(3))


def test_6d_round_trip_recovers_the_rotation():
    rot = rotation_from_euler(_random_angles(200))
    assert torch.allclose(rotation_from_6d(rotation_to_6d(rot)), rot, atol=1e-12)
    # The 6D vector is the first two columns (Zhou et al.'s convention).
    assert torch.allclose(rotation_to_6d(rot)[:, :3], rot[:, :, 0])
    assert torch.allclose(rotation_to_6d(rot)[:, 3:], rot[:, :, 1])


def test_torch_euler_conversions_match_the_project_convention():
    angles = _random_angles(100, seed=1)
    rot = rotation_from_euler(angles)
    for i in range(0, 100, 7):
        np.testing.assert_allclose(rot[i].numpy(), np_pose.rotation_from_euler(*angles[i].tolist()), atol=1e-12)
    np.testing.assert_allclose(euler_from_rotation(rot).numpy(), np_pose.euler_from_rotation(rot.numpy()), atol=1e-9)
    # Round trip where the decomposition is unique (|pitch| < 90).
    assert torch.allclose(euler_from_rotation(rot), angles, atol=1e-8)
    # Hand-worked: yaw 90 turns the head-frame x axis into -z (the subject's left goes away from the camera).
    ry90 = rotation_from_euler(torch.tensor([90.0, 0.0, 0.0], dtype=torch.float64))
    assert torch.allclose(ry90 @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                          torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-12)


def test_6d_is_continuous_through_gimbal_lock_where_euler_angles_jump():
    # A smooth head motion: pitch sweeps 80 -> 100 degrees through gimbal lock at 90.
    step_deg = 0.05
    pitch = torch.arange(80.0, 100.0 + 1e-9, step_deg, dtype=torch.float64)
    angles = torch.stack([torch.full_like(pitch, 30.0), pitch, torch.full_like(pitch, 20.0)], -1)
    rot = rotation_from_euler(angles)
    d6 = rotation_to_6d(rot)
    # Each column turns at most at the path's angular speed: |d(6D)| <= sqrt(2) * d(theta).
    d6_steps = (d6[1:] - d6[:-1]).norm(dim=-1)
    assert d6_steps.max() <= math.sqrt(2) * math.radians(step_deg) * 1.001
    # The rotation itself moves by exactly one step each time (geodesic distance).
    geo_steps = torch.rad2deg(geodesic_distance(rot[1:], rot[:-1]))
    assert torch.allclose(geo_steps, torch.full_like(geo_steps, step_deg), atol=1e-6)
    # The Euler angles recovered from the same path jump: yaw and roll flip by 180 degrees after pitch 90.
    euler = euler_from_rotation(rot)
    yaw_steps = wrap_degrees(euler[1:, 0] - euler[:-1, 0]).abs()
    roll_steps = wrap_degrees(euler[1:, 2] - euler[:-1, 2]).abs()
    assert yaw_steps.max() > 170 and roll_steps.max() > 170
    assert euler[:, 1].max() <= 90.0 + 1e-9  # pitch folds back instead of passing 90
    # ... and mapping 6D back gives the smooth path itself.
    assert torch.allclose(rotation_from_6d(d6), rot, atol=1e-12)


def test_geodesic_distance_zero_for_equal_and_pi_for_opposite_rotations():
    rot = rotation_from_euler(_random_angles(50, seed=2)).float()
    assert torch.allclose(geodesic_distance(rot, rot), torch.zeros(50), atol=1e-6)
    for axis in torch.eye(3):
        half_turn = torch.tensor(Rotation.from_rotvec(math.pi * axis.numpy()).as_matrix(), dtype=torch.float32)
        assert geodesic_distance(rot @ half_turn, rot).sub(math.pi).abs().max() < 1e-5
    # A half turn about a generic axis too.
    axis = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    half_turn = torch.tensor(Rotation.from_rotvec(math.pi * axis).as_matrix(), dtype=torch.float32)
    assert abs(float(geodesic_distance(half_turn, torch.eye(3))) - math.pi) < 1e-5


def test_geodesic_distance_matches_the_angle_of_known_rotations():
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(200, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0.0, math.pi, 200)
    delta = torch.tensor(Rotation.from_rotvec(axes * angles[:, None]).as_matrix(), dtype=torch.float32)
    base = rotation_from_euler(_random_angles(200, seed=4)).float()
    measured = geodesic_distance(base @ delta, base)
    np.testing.assert_allclose(measured.numpy(), angles, atol=2e-5)
    # Symmetric in its arguments.
    assert torch.allclose(geodesic_distance(base, base @ delta), measured, atol=1e-6)


def test_geodesic_gradient_is_finite_at_zero_and_pi_and_points_downhill():
    eye = torch.eye(3)
    for d6 in (torch.tensor(IDENTITY_6D), torch.tensor([-1.0, 0.0, 0.0, 0.0, 1.0, 0.0])):  # 0 and pi
        d6 = d6.clone().requires_grad_(True)
        geodesic_distance(rotation_from_6d(d6), eye).backward()
        assert torch.isfinite(d6.grad).all()
    # Away from the ends a gradient step reduces the angle.
    target = rotation_from_euler(torch.tensor([40.0, -20.0, 10.0]))
    d6 = torch.tensor(IDENTITY_6D, requires_grad=True)
    before = geodesic_distance(rotation_from_6d(d6), target)
    before.backward()
    with torch.no_grad():
        after = geodesic_distance(rotation_from_6d(d6 - 0.05 * d6.grad), target)
    assert after < before


def test_geodesic_loss_averages_only_samples_with_pose():
    target = rotation_from_euler(torch.tensor([[30.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 60.0, 0.0]]))
    predicted = torch.eye(3).expand(3, 3, 3)
    assert math.isclose(float(geodesic_loss(predicted, target)), math.radians(30.0), abs_tol=1e-5)
    weight = torch.tensor([True, False, True])
    assert math.isclose(float(geodesic_loss(predicted, target, weight)), math.radians(45.0), abs_tol=1e-5)
    assert float(geodesic_loss(predicted, target, torch.zeros(3, dtype=torch.bool))) == 0.0


def test_rotation_functions_run_in_full_precision_under_autocast():
    d6 = torch.randn(8, 6, generator=torch.Generator().manual_seed(5)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rot = rotation_from_6d(d6)
        angle = geodesic_distance(rot, rot)
    assert rot.dtype == torch.float32 and angle.dtype == torch.float32
    assert torch.allclose(rot.transpose(-2, -1) @ rot, torch.eye(3).expand(8, 3, 3), atol=1e-5)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="last dimension of 6"):
        rotation_from_6d(torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        geodesic_distance(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="angles"):
        rotation_from_euler(torch.zeros(4, 2))
