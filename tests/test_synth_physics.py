"""SynthTFD68 temperatures against the physics spec (docs/thermal_physics.md)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from m3mstl.data.synth import load_priors, render, sample_identity, sample_spec, with_occluders
from m3mstl.data.synth.face3d import Expression, HeadModel, ear_surface
from m3mstl.data.synth.renderer import OCCLUDER, SKIN
from m3mstl.data.synth.spec import Pose
from m3mstl.data.synth.thermal import SkinField, ThermalConditions

PRIORS = load_priors()
ROOM = ThermalConditions(ambient_c=23.0)          # spec 1.4 gives its regional values at ~23 deg C


def _identities(count: int, seed: int = 0):
    return [sample_identity(np.random.default_rng([seed, i]), PRIORS, f"{i:03d}") for i in range(count)]


def _face_temperature(field: SkinField, chart_points: np.ndarray, cavity: float = 0.0) -> np.ndarray:
    """Bare-skin temperature at neutral chart points (neutral expression: chart == neutral)."""
    model = field.model
    chart = np.asarray(chart_points, dtype=float)
    z = model.front_depth(chart)
    points = np.column_stack([chart, z])
    _, front = model.base_front(chart[:, 0], chart[:, 1])
    zeros = np.zeros(len(chart))
    return field.face(points, chart, front, zeros, zeros, np.full(len(chart), cavity), include_hair=False)


def _region_values(identity, cond: ThermalConditions) -> dict[str, float]:
    model = HeadModel(identity.shape, identity.hair, Expression())
    field = SkinField(model, identity.thermal, cond)
    lay = model.layout
    lm = lay["landmarks"]
    canthus = np.array([lm[39] + [2.0, 0.0], lm[42] - [2.0, 0.0]])   # the spot sits nasal of 39 and 42
    out = {
        "inner_canthus": _face_temperature(field, canthus).mean(),
        "forehead": _face_temperature(field, [[0.0, lay["nasion_y"] + 44.0]])[0],
        "cheek": _face_temperature(field, [[-40.0, -30.0], [40.0, -30.0]]).mean(),
        "nose_tip": _face_temperature(field, [lm[30]])[0],
        "lips": _face_temperature(field, [[0.0, lay["sto_y"] + 4.0], [0.0, lay["sto_y"] - 5.0]]).mean(),
        "chin": _face_temperature(field, [[0.0, lay["me_y"] + 15.0]])[0],
        "brows": _face_temperature(field, [lm[19], lm[24]]).mean(),
        "mouth_interior": _face_temperature(field, [[0.0, lay["sto_y"]]], cavity=1.0)[0],
    }
    ear = ear_surface(model, 1.0, 1.0)
    out["ears"] = field.ear(ear.param, ear.points).mean()
    theta = np.linspace(-np.pi / 2, np.pi / 2, 41)
    neck = np.column_stack([50.0 * np.sin(theta), np.full(41, -160.0), -12.0 + 56.0 * np.cos(theta)])
    out["neck"] = field.neck(neck).mean()
    return out


# Spec 1.4 ("suggested absolute regional means for T_a ~ 23 deg C") and 1.1 / 0 for the canthi.
SPEC_RANGES = {
    "inner_canthus": (35.0, 35.6), "forehead": (34.0, 34.5), "cheek": (33.5, 34.5), "nose_tip": (30.0, 33.0),
    "lips": (33.5, 34.5), "chin": (33.0, 34.0), "brows": (32.5, 33.0), "mouth_interior": (35.5, 36.5),
    "ears": (31.0, 33.0), "neck": (34.0, 35.0),
}


def test_region_means_lie_in_the_spec_ranges_at_23_degrees():
    values = [_region_values(identity, ROOM) for identity in _identities(120)]
    for region, (lo, hi) in SPEC_RANGES.items():
        mean = float(np.mean([v[region] for v in values]))
        assert lo <= mean <= hi, f"{region}: mean {mean:.2f} outside spec 1.4 range {lo}-{hi}"
    # Ordering facts: canthi hottest skin (0, 1.1), forehead ~1.2 under them (FDA 1.19 +- 0.5),
    # nose the coldest of the face (1.2), open mouth near the face maximum (1.1).
    gap = np.mean([v["inner_canthus"] - v["forehead"] for v in values])
    assert 0.9 <= gap <= 1.5
    assert all(v["inner_canthus"] > v["forehead"] for v in values)
    assert all(v["inner_canthus"] > v["nose_tip"] for v in values)
    assert np.median([v["nose_tip"] for v in values]) < np.median([v["cheek"] for v in values]) - 1.0
    # The nose varies far more between subjects than the canthi (Howell & Smith: 9.3 vs 1.3 deg C range).
    assert np.std([v["nose_tip"] for v in values]) > 3 * np.std([v["inner_canthus"] for v in values])


def test_hair_surface_reads_28_to_31_degrees():
    hairy = [i for i in _identities(60, seed=3) if i.hair.density >= 0.5]
    values = []
    for identity in hairy:
        model = HeadModel(identity.shape, identity.hair, Expression())
        field = SkinField(model, identity.thermal, ROOM)
        crown = np.array([[0.0, 95.0, 60.0]])
        skin = field.face(crown, crown[:, :2], np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))
        covered = field.face(crown, crown[:, :2], np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1))
        assert covered[0] < skin[0] - 2.0
        values.append(covered[0])
    assert 28.0 <= np.mean(values) <= 31.0        # spec 1.4: hair-covered scalp 28-31 deg C


def test_ambient_and_fever_dependence_follow_the_fda_slopes():
    identity = _identities(1, seed=5)[0]
    cold = _region_values(identity, ThermalConditions(ambient_c=20.0))
    warm = _region_values(identity, ThermalConditions(ambient_c=26.0))
    # IC slope 0.103 deg C per deg C (spec 1.1/1.5), forehead 0.18, nose far more.
    assert warm["inner_canthus"] - cold["inner_canthus"] == pytest.approx(0.103 * 6.0, abs=0.03)
    assert warm["forehead"] - cold["forehead"] == pytest.approx(0.18 * 6.0, abs=0.2)
    assert warm["nose_tip"] - cold["nose_tip"] > warm["forehead"] - cold["forehead"] + 0.5
    base = _region_values(identity, ROOM)
    fever = _region_values(identity, ThermalConditions(ambient_c=23.0, core_delta_c=1.5))
    assert fever["inner_canthus"] - base["inner_canthus"] == pytest.approx(0.9 * 1.5, abs=0.02)   # spec 1.6
    assert fever["forehead"] - base["forehead"] == pytest.approx(0.7 * 1.5, abs=0.05)


def _frontal(seed: int, ambient: float, kinds: list[str], size: int = 96):
    spec = sample_spec(np.random.default_rng(seed), PRIORS, f"{seed:03d}", 0)
    spec = with_occluders(spec, kinds, seed=seed)
    spec = dataclasses.replace(spec, pose=Pose(), conditions=dataclasses.replace(spec.conditions, ambient_c=ambient))
    return spec, render(spec, size)


@pytest.mark.parametrize("ambient", [20.0, 26.0])
@pytest.mark.parametrize("kind", ["glasses", "sunglasses"])
def test_lens_reads_at_least_3_degrees_under_the_periorbital_skin(kind, ambient):
    for seed in (1, 2, 3):
        spec, face = _frontal(seed, ambient, [kind])
        bit = 1 << [o.kind for o in spec.occluders].index(kind)
        covered = (face.occluder_mask & bit) > 0
        # Lens pixels: under the glasses at the eye centres (the frame is at the rim).
        centres = [face.landmarks[[37, 38, 40, 41]].mean(axis=0), face.landmarks[[43, 44, 46, 47]].mean(axis=0)]
        rows, cols = np.mgrid[0:face.temperature_c.shape[0], 0:face.temperature_c.shape[1]]
        near_eye = np.zeros_like(covered)
        for cx, cy in centres:
            near_eye |= (cols + 0.5 - cx) ** 2 + (rows + 0.5 - cy) ** 2 < 3.0 ** 2
        lens = covered & near_eye & (face.part_map == OCCLUDER)
        assert lens.sum() >= 10
        lens_reading = float(np.median(face.temperature_c[lens]))
        # Periorbital skin: the true skin under the lens at the lids, and the visible skin
        # just below the glasses (the cheek under the lower rim).
        lids = face.skin_temperature_c[[37, 38, 40, 41, 43, 44, 46, 47]].mean()
        assert lens_reading <= lids - 3.0, (kind, ambient, seed, lens_reading, lids)
        below = (face.part_map == SKIN) & ~covered & (rows > max(c[1] for c in centres) + 4) & (
            rows < max(c[1] for c in centres) + 14)
        if below.sum() > 10:
            assert lens_reading <= float(np.median(face.temperature_c[below])) - 3.0
        # And the lens is the coldest thing on the face (spec 2.2).
        face_pixels = (face.part_map == SKIN) & ~covered
        assert lens_reading < np.percentile(face.temperature_c[face_pixels], 5)


def test_mask_is_between_room_and_skin_with_a_warm_top_edge():
    for seed in (4, 5):
        spec, face = _frontal(seed, 22.0, ["mask"], size=128)
        amb = spec.conditions.ambient_c
        mask = (face.occluder_mask & 1) > 0
        scene = face.scene_c                        # noise-free, to compare small differences
        skin = scene[(face.part_map == SKIN) & ~mask]
        cover = scene[mask]
        assert amb + 1.0 < np.median(cover) < np.median(skin) - 2.0
        # Warm leakage band: the top rows of the mask read warmer than its middle.
        rows = np.nonzero(mask.any(axis=1))[0]
        top, bottom = rows.min(), rows.max()
        band = mask.copy()
        band[top + 4:] = False
        middle = mask.copy()
        middle[:top + (bottom - top) // 3] = False
        middle[top + 2 * (bottom - top) // 3:] = False
        assert np.median(scene[band]) > np.median(scene[middle]) + 0.3
        # The skin beneath the mask warms (Scarano et al., spec 2.3).
        bare = render(dataclasses.replace(spec, occluders=()), 128)
        under = [i for i in range(68) if face.occlusion_cause[i] == "mask"]
        assert np.all(face.skin_temperature_c[under] >= bare.skin_temperature_c[under] - 1e-9)
        assert np.mean(face.skin_temperature_c[under] - bare.skin_temperature_c[under]) > 0.2


def test_canthi_are_the_hottest_skin_and_the_nose_is_cool_in_a_rendered_face():
    spec, face = _frontal(7, 23.0, [], size=128)
    scene = face.scene_c
    skin = face.part_map == SKIN
    hottest = np.argwhere(skin & (scene >= np.percentile(scene[skin], 99.8)))
    canthi = face.landmarks[[39, 42]]
    # The hottest skin pixels sit at the inner canthi (or the mouth corners / open mouth,
    # which the spec also calls near the face maximum).
    hot_spots = np.vstack([canthi, face.landmarks[[48, 54, 62, 66]]])
    dist = np.min(np.linalg.norm((hottest[:, ::-1] + 0.5)[:, None, :] - hot_spots[None], axis=2), axis=1)
    assert np.median(dist) < 6.0
    x, y = face.landmarks[30]
    assert scene[int(y), int(x)] < np.median(scene[skin])
