"""The iBUG-68 schema in m3mstl.core.landmarks, checked against a face built from geometry alone."""
from __future__ import annotations

import numpy as np

from conftest import FACE_TEMPLATE
from m3mstl.core.landmarks import (
    GROUPS,
    INNER_CANTHI,
    MIRROR,
    NAMES,
    NUM_LANDMARKS,
    OUTER_EYE_CORNERS,
    REGION_OF,
    REGIONS,
    eye_centres,
    flip_horizontal,
)


def test_mirror_is_an_involution_permutation() -> None:
    assert sorted(MIRROR.tolist()) == list(range(NUM_LANDMARKS))
    np.testing.assert_array_equal(MIRROR[MIRROR], np.arange(NUM_LANDMARKS))


def test_mirror_maps_right_features_onto_left_ones() -> None:
    for right, left in (("right_brow", "left_brow"), ("right_eye", "left_eye")):
        assert set(MIRROR[list(GROUPS[right])].tolist()) == set(GROUPS[left])
    assert MIRROR[36] == 45 and MIRROR[39] == 42          # outer and inner eye corners
    assert MIRROR[0] == 16 and MIRROR[8] == 8            # jaw ends swap, chin stays
    assert MIRROR[48] == 54 and MIRROR[31] == 35         # mouth corners, nostril wings
    centre_line = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]
    np.testing.assert_array_equal(MIRROR[centre_line], centre_line)
    assert set(MIRROR[list(REGIONS["eyes"])].tolist()) == set(REGIONS["eyes"])  # regions are mirror-closed


def test_mirror_agrees_with_a_symmetric_face() -> None:
    # FACE_TEMPLATE is symmetric about x = 0 by construction: reflecting it and relabelling with
    # MIRROR must give the same face back, point for point.
    reflected = FACE_TEMPLATE * [-1.0, 1.0]
    np.testing.assert_allclose(reflected[MIRROR], FACE_TEMPLATE, atol=1e-12)


def test_flip_horizontal_round_trip_and_symmetric_face() -> None:
    width = 64.0
    face = 32.0 + 10.0 * FACE_TEMPLATE
    rng = np.random.default_rng(0)
    noisy = face + rng.normal(0, 1.5, face.shape)
    np.testing.assert_allclose(flip_horizontal(flip_horizontal(noisy, width), width), noisy, atol=1e-12)
    np.testing.assert_allclose(flip_horizontal(face, width), face, atol=1e-12)  # centred symmetric face
    flipped = flip_horizontal(noisy, width)
    # Continuous convention: x -> width - x, so the flipped point of MIRROR[i] is where point i went.
    np.testing.assert_allclose(flipped[MIRROR[3], 0], width - noisy[3, 0])
    right, left = eye_centres(flipped)
    assert right[0] < left[0]  # the subject's right eye stays on the image left after relabelling


def test_schema_constants() -> None:
    assert len(NAMES) == NUM_LANDMARKS and len(set(NAMES)) == NUM_LANDMARKS
    assert sorted(i for idx in REGIONS.values() for i in idx) == list(range(NUM_LANDMARKS))
    assert REGION_OF[40] == "eyes" and REGION_OF[30] == "nose" and REGION_OF[60] == "mouth"
    assert OUTER_EYE_CORNERS == (36, 45) and INNER_CANTHI == (39, 42)
    np.testing.assert_allclose(eye_centres(FACE_TEMPLATE), [[-0.4, -0.2], [0.4, -0.2]], atol=1e-12)
