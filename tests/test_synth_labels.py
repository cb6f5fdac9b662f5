"""SynthTFD68 landmark labels: visibility, occlusion causes, the occluder mask, pose and mirroring."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from m3mstl.data.synth import load_priors, mirror_spec, render, sample_spec, with_occluders
from m3mstl.data.synth.face3d import Expression
from m3mstl.data.synth.spec import Pose
from m3mstl.core.landmarks import MIRROR, flip_horizontal
from m3mstl.core.pose import euler_from_rotation, flip_rotation, rotation_from_euler

PRIORS = load_priors()
SIZE = 96


def _spec(seed: int, **changes):
    spec = sample_spec(np.random.default_rng(seed), PRIORS, f"{seed:03d}", seed)
    return dataclasses.replace(spec, **changes)


@pytest.mark.parametrize("expression", [Expression(), Expression("mouth_open", mouth_open_mm=20.0),
                                        Expression("smile", smile=1.0), Expression("brow_raise", brow_raise=1.0)])
def test_frontal_face_without_occluders_shows_all_68(expression):
    for seed in range(4):
        spec = _spec(seed, pose=Pose(), occluders=(), expression=expression)
        face = render(spec, SIZE)
        assert face.occlusion_cause == ["none"] * 68, (seed, expression.name)
        assert (face.visibility == 2).all()
        assert (face.occluder_mask == 0).all()


def test_landmarks_under_an_occluder_are_occluded_and_visible_ones_are_not_under_one():
    checked_covered = 0
    for seed in range(40):
        spec = _spec(100 + seed)
        if not spec.occluders:
            spec = with_occluders(spec, ["glasses", "mask", "hand"][seed % 3:seed % 3 + 1], seed=seed)
        face = render(spec, SIZE)
        col = np.floor(face.landmarks[:, 0]).astype(int)
        row = np.floor(face.landmarks[:, 1]).astype(int)
        bits = face.occluder_mask[row, col]
        kinds = [o.kind for o in spec.occluders]
        for i in range(68):
            if bits[i]:
                checked_covered += 1
                assert face.visibility[i] == 1, (seed, i)
                covering = {kinds[k] for k in range(len(kinds)) if bits[i] >> k & 1}
                assert face.occlusion_cause[i] in covering, (seed, i, face.occlusion_cause[i], covering)
            if face.visibility[i] == 2:
                assert bits[i] == 0 and face.occlusion_cause[i] == "none"
            else:
                assert face.occlusion_cause[i] in set(kinds) | {"self"}
    assert checked_covered > 100   # the check ran on many covered landmarks


def test_glasses_hide_the_eyes_and_a_mask_the_mouth_in_a_frontal_view():
    spec = with_occluders(_spec(3, pose=Pose(), expression=Expression()), ["glasses", "mask"], seed=1)
    face = render(spec, SIZE)
    eyes = list(range(36, 48))
    assert all(face.occlusion_cause[i] == "glasses" for i in eyes)
    assert all(face.occlusion_cause[i] == "mask" for i in range(48, 68))
    assert all(face.occlusion_cause[i] == "mask" for i in (30, 31, 32, 33, 34, 35))
    # Brows stay visible, apart from a brow tail behind a wide frame.
    assert sum(face.occlusion_cause[i] == "none" for i in range(17, 27)) >= 8


def test_occluders_do_not_move_landmarks():
    spec = _spec(11, occluders=())
    bare = render(spec, SIZE)
    dressed = render(with_occluders(spec, ["sunglasses", "mask", "hand"], seed=2), SIZE)
    np.testing.assert_array_equal(bare.landmarks, dressed.landmarks)
    np.testing.assert_array_equal(bare.landmarks_3d, dressed.landmarks_3d)
    assert dressed.visibility.min() == 1 and bare.occlusion_cause.count("none") > dressed.occlusion_cause.count("none")


@pytest.mark.parametrize("yaw", [62.0, 68.0, 75.0])
def test_far_side_is_self_occluded_beyond_60_degrees_of_yaw(yaw):
    for seed in range(3):
        spec = _spec(20 + seed, occluders=(), expression=Expression(), pose=Pose(yaw=yaw))
        face = render(spec, SIZE)
        # Positive yaw turns the nose to the image right: the subject's left (x > 0) goes away.
        far_jaw = range(12, 17)
        assert all(face.occlusion_cause[i] == "self" for i in far_jaw), (yaw, seed, face.occlusion_cause[9:17])
        assert face.occlusion_cause[45] == "self"                  # far outer eye corner
        near = [0, 1, 2, 36, 17, 48]
        assert all(face.occlusion_cause[i] == "none" for i in near), (yaw, seed)
        mirrored = render(mirror_spec(spec), SIZE)
        assert all(mirrored.occlusion_cause[i] == "self" for i in range(0, 5))


def test_mirrored_spec_renders_the_mirror_image():
    for seed in (5, 6, 7):
        spec = _spec(40 + seed)
        if not spec.occluders:
            spec = with_occluders(spec, ["hand"], seed=seed)
        face = render(spec, SIZE)
        mirror = render(mirror_spec(spec), SIZE)
        np.testing.assert_allclose(mirror.landmarks, flip_horizontal(face.landmarks, SIZE), atol=1e-6)
        np.testing.assert_array_equal(mirror.visibility, face.visibility[MIRROR])
        assert mirror.occlusion_cause == [face.occlusion_cause[j] for j in MIRROR]
        np.testing.assert_allclose(mirror.skin_temperature_c, face.skin_temperature_c[MIRROR], atol=1e-9)
        pose, mpose = face.image_fields["head_pose"], mirror.image_fields["head_pose"]
        assert mpose["yaw"] == pytest.approx(-pose["yaw"]) and mpose["roll"] == pytest.approx(-pose["roll"])
        np.testing.assert_allclose(mpose["rotation"], flip_rotation(np.array(pose["rotation"])), atol=1e-12)
        # The pictures are mirror images too (up to sample ties at a few pixels).
        diff = np.abs(mirror.temperature_c - face.temperature_c[:, ::-1])
        assert np.mean(diff > 0.05) < 0.01
        assert np.mean(mirror.occluder_mask != face.occluder_mask[:, ::-1]) < 0.002


def test_pose_fields_and_3d_landmarks_are_consistent_with_the_image():
    spec = _spec(9)
    face = render(spec, SIZE)
    pose = face.image_fields["head_pose"]
    rotation = np.array(pose["rotation"])
    np.testing.assert_allclose(rotation, rotation_from_euler(spec.pose.yaw, spec.pose.pitch, spec.pose.roll))
    np.testing.assert_allclose(euler_from_rotation(rotation), [pose["yaw"], pose["pitch"], pose["roll"]], atol=1e-9)
    focal, cx, cy = face.image_fields["camera"]["intrinsics_px"]
    p = face.landmarks_3d
    projected = np.column_stack([focal * p[:, 0] / p[:, 2] + cx, focal * p[:, 1] / p[:, 2] + cy])
    np.testing.assert_allclose(projected, face.landmarks, atol=1e-9)
    assert 550.0 < p[:, 2].mean() < 1600.0                       # camera 0.6-1.5 m away
    x, y, w, h = face.bbox
    assert x >= 0 and y >= 0 and x + w <= SIZE and y + h <= SIZE
    np.testing.assert_allclose([x, y, x + w, y + h], [*face.landmarks.min(0), *face.landmarks.max(0)])


def test_same_spec_renders_identical_arrays():
    spec = _spec(13)
    a, b = render(spec, SIZE), render(spec, SIZE)
    np.testing.assert_array_equal(a.image_u8, b.image_u8)
    np.testing.assert_array_equal(a.temperature_c, b.temperature_c)
    np.testing.assert_array_equal(a.occluder_mask, b.occluder_mask)
