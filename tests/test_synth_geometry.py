"""SynthTFD68 head geometry: anthropometry, landmarks on the surface, expressions, hole-free rendering."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import binary_fill_holes

from m3mstl.data.synth import load_priors, render, sample_spec
from m3mstl.data.synth.face3d import Expression, FaceShape, HairStyle, HeadModel
from m3mstl.data.synth.spec import Pose
from m3mstl.core.landmarks import MIRROR

PRIORS = load_priors()


def test_default_face_matches_the_anthropometric_recipe():
    lm = HeadModel(FaceShape(), HairStyle(), Expression()).landmarks()
    # Spec 5.2 (male means) and 5.3 (frame and depths).
    assert np.linalg.norm(lm[39] - lm[42]) == pytest.approx(32.2, abs=0.5)      # en-en
    assert np.linalg.norm(lm[36] - lm[45]) == pytest.approx(98.2, abs=1.5)      # ex-ex
    assert np.linalg.norm(lm[36] - lm[39]) == pytest.approx(34.0, abs=1.5)      # ex-en (3D)
    assert np.linalg.norm(lm[48] - lm[54]) == pytest.approx(55.9, abs=1.0)      # ch-ch
    assert lm[27, 1] - lm[33, 1] == pytest.approx(51.0, abs=1.0)                # n-sn
    assert lm[33, 1] - lm[8, 1] == pytest.approx(76.4, abs=1.0)                 # sn-me
    assert 100.0 <= lm[30, 2] <= 105.0                                          # nose tip depth
    assert lm[27, 2] == pytest.approx(85.0, abs=3.0)                            # nasion depth
    assert lm[30, 2] == lm[:, 2].max()                                          # the tip is foremost
    assert lm[36, 2] < lm[39, 2] - 5.0                                          # outer canthi further back
    # Without identity offsets the face is left-right symmetric under the iBUG mirror map.
    mirrored = lm[MIRROR] * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(mirrored, lm, atol=1e-6)


def test_landmarks_lie_on_the_surface_and_inside_test_is_exact():
    model = HeadModel(FaceShape(), HairStyle(density=0.0), Expression())
    lm = model.landmarks()
    normal = np.array([0.0, 0.0, 1.0])
    assert not model.inside(lm + normal * 0.5).any()            # just in front: outside
    assert model.inside(lm - normal * 1.5).all()                # just behind: inside
    assert model.inside(np.array([[0.0, 0.0, 0.0]])).all()      # the head's centre
    assert not model.inside(np.array([[0.0, 0.0, 150.0], [0.0, 200.0, 0.0], [120.0, 0.0, 0.0]])).any()


def test_expressions_move_the_right_landmarks():
    neutral = HeadModel(FaceShape(), HairStyle(), Expression()).landmarks()
    open_mouth = HeadModel(FaceShape(), HairStyle(), Expression("mouth_open", mouth_open_mm=20.0)).landmarks()
    smile = HeadModel(FaceShape(), HairStyle(), Expression("smile", smile=1.0)).landmarks()
    brows = HeadModel(FaceShape(), HairStyle(), Expression("brow_raise", brow_raise=1.0)).landmarks()
    gap = open_mouth[66, 1] - open_mouth[62, 1]
    assert gap < neutral[66, 1] - neutral[62, 1] - 10.0           # lips part by more than 1 cm
    assert open_mouth[8, 1] < neutral[8, 1] - 15.0                # the chin drops (5.3: 5-25 mm)
    np.testing.assert_allclose(open_mouth[17:48], neutral[17:48], atol=1e-6)   # brows, nose, eyes stay
    assert smile[48, 1] > neutral[48, 1] + 2.0 and smile[54, 0] > neutral[54, 0] + 2.0   # corners up and out
    assert np.all(brows[17:27, 1] > neutral[17:27, 1] + 4.0)      # brows up
    np.testing.assert_allclose(brows[48:68], neutral[48:68], atol=1e-6)


def test_identity_measurements_scale_the_face():
    small = HeadModel(FaceShape(scale=0.9), HairStyle(), Expression()).landmarks()
    wide_eyes = HeadModel(FaceShape(en_en=38.0), HairStyle(), Expression()).landmarks()
    base = HeadModel(FaceShape(), HairStyle(), Expression()).landmarks()
    assert np.linalg.norm(small[36] - small[45]) == pytest.approx(0.9 * np.linalg.norm(base[36] - base[45]), rel=0.02)
    assert np.linalg.norm(wide_eyes[39] - wide_eyes[42]) == pytest.approx(38.0, abs=0.5)


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (45.0, 15.0), (-70.0, -30.0), (20.0, 40.0)])
def test_rendered_person_has_no_pinholes(yaw, pitch):
    for seed in range(3):
        spec = sample_spec(np.random.default_rng(seed), PRIORS, "000", 0)
        spec = dataclasses.replace(spec, occluders=(), pose=Pose(yaw=yaw, pitch=pitch))
        face = render(spec, 128)
        person = face.part_map > 0
        holes = binary_fill_holes(person) & ~person
        assert holes.sum() <= 0.002 * person.sum(), (yaw, pitch, seed, int(holes.sum()))
