"""Skin temperature field of SynthTFD68 (degrees C), from the physics spec (docs/thermal_physics.md).

The field is written relative to the inner canthus (IC), the hottest and most stable facial
skin (spec 0, 1.1):

    T_region(T_a) = IC(T_a) + fever_gain_r * dCore - deficit_r * (1 - compression_r * (T_a - 23))
    IC(T_a)       = IC_24.1 + 0.103 * (T_a - 24.1)          (FDA OLS slope, 1.1)

Every point blends the region temperatures with soft weights (a partition of unity, so a
blend never leaves the range of its regions), then adds a smooth subject texture, the
left-right asymmetry, breathing at the nostrils and local effects of occluders (skin warms
under a mask, 2.3). Region deficits at 23 deg C (1.4 unless noted) and their spec sources:

    inner canthus 0 | lids 0.75 [A] | open eye ~1.1 (TVST cornea ~ forehead, 1.2) | outer
    canthus 1.5 (TVST) | forehead 1.19 +- 0.50 (FDA within-subject) | temples 0.8 (Haddad:
    temporal hot) | cheek / general skin 1.3, cooling by up to 0.6 towards the face outline [A]
    | brows 1.6 K x brow density under the skin (1.4: 32.5-33) | nose tip 3.0 median, subject sd ~2,
    heavy-tailed, image sd 0.9 (Howell & Smith; 1.2, 1.4) | nose bridge / sides 1.0 (ASCS:
    side of the nose least affected) | nasolabial 2.0 (Haddad cold) | lips 1.1, mouth corners
    0.5 (labial commissure hot), lower lip 1.5 (inferior labial cold) | open mouth -0.2 (= face
    max, IC + 0.2, FDA round 4) | chin 1.8 | ears 3.3, rim colder (1.4: 31-33) | neck 1.1
    (34-35) | hair-covered scalp: the hair surface mixes scalp and air (28-31 at 23 deg C).

"compression" shrinks a region's deficit as the room warms (1.4: a 26 deg C room compresses
the spread; the nose tracks ambient far more than the canthi, 1.5). The forehead's value is
the FDA slope difference (0.18 - 0.10) / 1.19 = 0.065 per deg C; the others are [A].
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from m3mstl.data.synth.face3d import HeadModel, bump, smoothstep
from m3mstl.core import vec3

REFERENCE_AMBIENT_IC = 24.1      # ambient of the FDA inner-canthus prior (1.1)
IC_AMBIENT_SLOPE = 0.103         # deg C of IC per deg C of ambient (1.1, 1.5)
DEFICIT_REFERENCE_AMBIENT = 23.0  # ambient of the region deficits (1.4)
CAMERA_EMISSIVITY = 0.98         # the emissivity the camera is set to (1.9: standard setting)
BROW_BELOW_SKIN_C = 1.6          # brows under the surrounding skin at full brow density (1.4)

# Region table: deficit below IC at 23 deg C, compression per deg C, fever gain (dT_r / dCore).
# Fever gains: IC 0.9, forehead 0.7, mouth 0.86 (FDA febrile vs afebrile, 1.6); others [A] 0.8,
# hair and ears [A] 0.5 (poorly perfused / insulated).
REGIONS: dict[str, tuple[float, float, float]] = {
    "skin": (1.3, 0.10, 0.8),
    "canthus": (0.0, 0.0, 0.9),
    "eye": (1.1, 0.03, 0.9),
    "outer_canthus": (1.5, 0.06, 0.85),
    "periorbital": (0.75, 0.04, 0.85),
    "forehead": (1.19, 0.065, 0.7),
    "temple": (0.8, 0.06, 0.75),
    "brow": (2.9, 0.08, 0.7),          # nominal; SkinField sets brows from the skin value
    "nose_bridge": (1.0, 0.08, 0.8),
    "nose_tip": (3.0, 0.12, 0.8),
    "nasolabial": (2.0, 0.10, 0.8),
    "lips": (1.1, 0.06, 0.86),
    "mouth_corner": (0.5, 0.04, 0.86),
    "lower_lip": (1.5, 0.08, 0.86),
    "mouth_interior": (-0.2, 0.0, 0.86),
    "chin": (1.8, 0.10, 0.8),
    "jaw": (1.8, 0.10, 0.8),
    "submental": (1.0, 0.06, 0.8),
    "scalp": (1.0, 0.065, 0.7),
    "ear": (3.3, 0.15, 0.5),
    "neck": (1.1, 0.06, 0.8),
}


@dataclass(frozen=True)
class ThermalProfile:
    """Subject-level thermal identity: keeps a subject recognisable across its images."""

    inner_canthus_c: float = 35.64    # IC at 24.1 deg C ambient; FDA afebrile 35.64 +- 0.38 (0, 1.1)
    forehead_deficit: float = 1.19    # IC - forehead centre; FDA within-subject 1.19 +- 0.50
    nose_deficit: float = 3.0         # IC - nose tip; Howell & Smith median 3.0, wide (1.2)
    ear_deficit: float = 3.3          # IC - pinna (1.4: ears 31-33 at 23 deg C)
    neck_deficit: float = 1.1         # IC - neck (1.4: neck 34-35)
    lips_deficit: float = 1.1         # IC - lips (1.4: lips 33.5-34.5; FDA mouth IC - 0.2 +- 0.4)
    cheek_deficit: float = 1.3        # IC - cheek/temple skin (1.4: 33.5-34.5)
    brow_density: float = 1.0         # 0..1.3, how much colder the brows read (hair insulates)
    asymmetry_c: float = -0.1         # left minus right skin temperature (Rustemeyer: left 0.1 colder)
    emissivity: float = 0.98          # skin emissivity, 1.9: 0.972 (0.96-0.99)
    hair_insulation: float = 0.5      # 0..1 fraction of the scalp-to-air drop across the hair layer
    texture_seed: int = 0             # smooth skin texture, hair strands, stubble


@dataclass(frozen=True)
class ThermalConditions:
    """Per-image thermal state."""

    ambient_c: float = 23.0           # room air, spec 0: U(20, 26)
    core_delta_c: float = 0.0         # fever: core temperature above normal (0 afebrile), 1.6
    session_offset_c: float = 0.0     # day-to-day / circadian offset of all skin (1.2: <= 1, 0.7)
    nose_offset_c: float = 0.0        # intra-subject nose variation (1.2: range 3.7 deg C)
    breathing_phase: float = 0.0      # 0..1 position in the breathing cycle
    breathing_amplitude_c: float = 0.6  # peak-to-peak at the nostrils, 1.7 recipe 0.3-1.0 at 23 deg C
    blink_cooling_c: float = 0.0      # cornea cooling since the last blink (1.2: ~0.01 deg C/s)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def breathing_wave(phase: float) -> float:
    """Nostril temperature wave in [-0.5, 0.5] (peak-to-peak 1) at a phase in [0, 1).

    Inhaled room air cools the nostril rim quickly (first 40 % of the cycle); exhaled air
    warms it back more slowly (1.7 recipe: asymmetric wave).
    """
    p = phase % 1.0
    if p < 0.4:
        return float(0.5 - smoothstep(p / 0.4))
    return float(-0.5 + smoothstep((p - 0.4) / 0.6))


def region_temperature(name: str, profile: ThermalProfile, cond: ThermalConditions,
                       deficit: float | None = None) -> float:
    """Temperature of one region under the image's conditions (formula in the module docstring)."""
    base_deficit, compression, fever_gain = REGIONS[name]
    if deficit is None:
        deficit = base_deficit
    ic = profile.inner_canthus_c + IC_AMBIENT_SLOPE * (cond.ambient_c - REFERENCE_AMBIENT_IC)
    squeeze = max(0.0, 1.0 - compression * (cond.ambient_c - DEFICIT_REFERENCE_AMBIENT))
    return ic + fever_gain * cond.core_delta_c - deficit * squeeze + cond.session_offset_c


def smooth_texture(points: np.ndarray, seed: int, amplitude: float, wavelengths: tuple[float, float],
                   waves: int = 6) -> np.ndarray:
    """Sum of random plane waves in 3D (head-frame mm): a smooth, deterministic texture.

    Normalised so its standard deviation over random points is `amplitude`.
    """
    vectors, phase = _plane_waves(int(seed), float(wavelengths[0]), float(wavelengths[1]), int(waves))
    out = np.zeros(len(points))
    for (kx, ky, kz), p in zip(vectors, phase):
        out += np.sin(kx * points[:, 0] + ky * points[:, 1] + kz * points[:, 2] + p)
    return out * (amplitude * np.sqrt(2.0 / waves))


@lru_cache(maxsize=256)
def _plane_waves(seed: int, shortest: float, longest: float, waves: int) -> tuple[np.ndarray, np.ndarray]:
    """Wave vectors (waves, 3) and phases of a texture (cached: textures repeat per subject)."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(waves, 3))
    direction = vec3.normalised(direction)
    k = 2.0 * np.pi / rng.uniform(shortest, longest, size=waves)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=waves)
    return direction * k[:, None], phase


def hash_noise(points: np.ndarray, seed: int, cell_mm: float) -> np.ndarray:
    """Uncorrelated-looking noise in [-1, 1] that is a fixed function of 3D position.

    Points in the same `cell_mm` cube get the same value: stubble or strand speckle that stays
    put when the camera, resolution or worker changes.
    """
    cells = np.floor(points / cell_mm).astype(np.int64)
    h = (cells[:, 0] * 73856093) ^ (cells[:, 1] * 19349663) ^ (cells[:, 2] * 83492791) ^ (seed * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF).astype(np.float64) / 32767.5 - 1.0


def apparent_temperature(true_c: np.ndarray, cos_view: np.ndarray, emissivity: float | np.ndarray,
                         ambient_c: float) -> np.ndarray:
    """What a camera set to emissivity 0.98 reads for a grey surface (spec 2.1 mixing formula).

    apparent = eps * T + (1 - eps) * T_reflected with T_reflected = T_a indoors; the camera then
    corrects with its own emissivity setting. Directional emissivity: constant to ~45 deg from
    the normal and falling towards grazing view (to 0.6 of it at 90 deg) [A], so face edges read a little colder.
    """
    # Falloff from 45 deg (cos 0.707) to grazing (cos 0), written in the cosine (no arccos).
    directional = 1.0 - 0.4 * smoothstep((0.7071 - np.abs(cos_view)) / 0.7071)
    eps = np.asarray(emissivity) * directional
    radiated = eps * true_c + (1.0 - eps) * ambient_c
    return (radiated - (1.0 - CAMERA_EMISSIVITY) * ambient_c) / CAMERA_EMISSIVITY


# ---------------------------------------------------------------------------------------------
# The face field
# ---------------------------------------------------------------------------------------------


class SkinField:
    """Skin temperature of one face: regions in chart coordinates, plus ears and neck."""

    def __init__(self, model: HeadModel, profile: ThermalProfile, cond: ThermalConditions) -> None:
        self.model, self.profile, self.cond = model, profile, cond
        p = profile
        self.t = {name: region_temperature(name, p, cond) for name in REGIONS}
        self.t["forehead"] = region_temperature("forehead", p, cond, p.forehead_deficit)
        self.t["scalp"] = region_temperature("scalp", p, cond, p.forehead_deficit + 0.2)
        self.t["nose_tip"] = region_temperature("nose_tip", p, cond, p.nose_deficit) + cond.nose_offset_c
        # The nose can approach room air but not fall below it, nor outrun the canthi: keep it
        # within [T_a + 1, IC - 0.8] whatever the subject and image offsets.
        self.t["nose_tip"] = float(np.clip(self.t["nose_tip"], cond.ambient_c + 1.0, self.t["canthus"] - 0.8))
        # A cold tip pulls the lower bridge down a little; the root between the eyes stays warm.
        self.t["nose_bridge"] = min(self.t["nose_bridge"], (2.0 * self.t["nose_bridge"] + self.t["nose_tip"]) / 3.0 + 0.5)
        self.t["ear"] = region_temperature("ear", p, cond, p.ear_deficit)
        self.t["neck"] = region_temperature("neck", p, cond, p.neck_deficit)
        self.t["lips"] = region_temperature("lips", p, cond, p.lips_deficit)
        self.t["skin"] = region_temperature("skin", p, cond, p.cheek_deficit)
        # Brows read ~1 K under the skin around them (1.4: brows 32.5-33 vs skin 33.5-34.5),
        # scaled by how dense the brow hair is.
        squeeze = max(0.0, 1.0 - REGIONS["brow"][1] * (cond.ambient_c - DEFICIT_REFERENCE_AMBIENT))
        self.t["brow"] = self.t["skin"] - BROW_BELOW_SKIN_C * p.brow_density * squeeze
        self.t["eye"] -= cond.blink_cooling_c
        # Breathing: amplitude scales with the exhaled-air-to-room difference (1.7 recipe).
        self.breath = (cond.breathing_amplitude_c * (34.0 - cond.ambient_c) / (34.0 - 23.0)
                       * breathing_wave(cond.breathing_phase))
        self.local_effects: list = []   # callables (points, neutral) -> delta deg C (occluder effects)
        squeeze = max(0.0, 1.0 - 0.1 * (cond.ambient_c - DEFICIT_REFERENCE_AMBIENT))
        self.lateral_cooling = 0.6 * squeeze

    # --- face ---------------------------------------------------------------------------------
    def _face_weights(self, neutral: np.ndarray) -> dict[str, np.ndarray]:
        """Soft region masks (0..1) at neutral chart points of the face."""
        lay, s = self.model.layout, self.model.shape.scale
        lm = lay["landmarks"]
        x, y = neutral[:, 0], neutral[:, 1]
        ax = np.abs(x)
        w: dict[str, np.ndarray] = {}
        # Inner canthi: small hot spots at the medial eye corners (39, 42), slightly nasal.
        w["canthus"] = sum(bump(x - (lm[i, 0] - np.sign(lm[i, 0]) * 2.0 * s), y - lm[i, 1], 6.0 * s, 4.5 * s)
                           for i in (39, 42))
        w["outer_canthus"] = sum(bump(x - lm[i, 0], y - lm[i, 1], 6.0 * s, 5.0 * s) for i in (36, 45))
        # Open eye: the almond between the lids.
        eye = np.zeros_like(x)
        for idx in ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)):
            pts = lm[list(idx)]
            cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
            half_w = 0.5 * abs(pts[0, 0] - pts[3, 0])
            half_h = 0.5 * (pts[1:3, 1].mean() - pts[4:6, 1].mean())
            eye += bump(x - cx, y - cy, half_w * 0.92, half_h * 1.05)
        w["eye"] = np.minimum(eye * 3.0, 1.0)
        w["periorbital"] = sum(bump(x - sgn * lay["pupil_x"], y - 0.5 * s, 22.0 * s, 12.0 * s) for sgn in (-1, 1))
        # Brows: arcs through the brow landmarks.
        brow = np.zeros_like(x)
        for idx in (range(17, 22), range(22, 27)):
            pts = lm[list(idx)]
            order = np.argsort(pts[:, 0])
            bx, by = pts[order, 0], pts[order, 1]
            near = np.nonzero((x > bx[0] - 4.0 * s) & (x < bx[-1] + 4.0 * s) & (np.abs(y - by.mean()) < 12.0 * s))[0]
            if len(near) == 0:
                continue
            xs = x[near]
            centre_y = np.interp(xs, bx, by)
            # Thick near the nose, thinning towards the tail (brow hair density).
            along = np.clip((xs - bx[0]) / (bx[-1] - bx[0]), 0.0, 1.0)
            inner_end = along if bx[-1] < 0 else 1.0 - along
            half = (2.2 + 1.6 * inner_end) * s
            taper = smoothstep((xs - bx[0] + 4.0 * s) / (8.0 * s)) * smoothstep((bx[-1] + 4.0 * s - xs) / (8.0 * s))
            brow[near] += bump(np.zeros_like(xs), y[near] - centre_y, 1.0, half) * taper
        w["brow"] = np.minimum(brow, 1.0)
        # Forehead centre and the temples beside it.
        top = lay["trichion_y"]
        w["forehead"] = (smoothstep((y - 30.0 * s) / (12.0 * s)) * smoothstep((top + 10.0 * s - y) / (10.0 * s))
                         * (1.0 - smoothstep((ax - 35.0 * s) / (20.0 * s))))
        w["temple"] = bump(ax - 58.0 * s, y - 20.0 * s, 16.0 * s, 22.0 * s)
        # Nose: bridge (warm) grading to a cold tip and alae along the nose's length.
        tip, nasion, sn = lay["tip_y"], lay["nasion_y"], lay["sn_y"]
        sto, ch = lay["sto_y"], lay["ch"]
        along = np.clip((nasion - y) / (nasion - tip), 0.0, 1.2)
        nose_width = (8.0 + 8.0 * np.clip(along, 0.0, 1.0)) * s
        in_nose = (y < nasion + 4.0 * s) & (y > sn - 3.0 * s)
        nose = np.where(in_nose, np.clip(1.0 - (x / nose_width) ** 2, 0.0, 1.0), 0.0)
        tipness = smoothstep((along - 0.45) / 0.5)
        alae = sum(bump(x - sgn * (lay["al"] - 6.0 * s), y - (sn + 5.0 * s), 11.0 * s, 9.0 * s) for sgn in (-1, 1))
        w["nose_tip"] = np.minimum(nose * tipness + 0.85 * alae, 1.0)
        w["nose_bridge"] = nose * (1.0 - tipness)
        # Nasolabial folds: a thin cool band from the alae down past the mouth corners.
        fold = np.zeros_like(x)
        for sgn in (-1, 1):
            x0, y0 = sgn * (lay["al"] + 2.0 * s), sn + 2.0 * s
            x1, y1 = sgn * (ch + 6.0 * s), sto - 8.0 * s
            near = np.nonzero((np.abs(x - 0.5 * (x0 + x1)) < 20.0 * s) & (y < y0 + 5.0 * s) & (y > y1 - 5.0 * s))[0]
            if len(near) == 0:
                continue
            xs, ys = x[near], y[near]
            t = np.clip(((xs - x0) * (x1 - x0) + (ys - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0.0, 1.0)
            dist = np.hypot(xs - (x0 + t * (x1 - x0)), ys - (y0 + t * (y1 - y0)))
            fold[near] += np.clip(1.0 - dist / (4.0 * s), 0.0, 1.0) ** 2 * np.sin(np.pi * t) ** 0.5
        w["nasolabial"] = np.minimum(fold, 1.0)
        # Mouth: lips, hot corners, cooler lower lip.
        w["lips"] = bump(x, y - (sto + 1.0 * s), ch * 1.02, 11.0 * s)
        w["mouth_corner"] = sum(bump(x - sgn * (ch - 1.0 * s), y - sto, 6.0 * s, 3.5 * s) for sgn in (-1, 1))
        w["lower_lip"] = bump(x, y - (sto - 7.0 * s), ch * 0.8, 5.0 * s) * 0.7
        w["chin"] = bump(x, y - (lay["me_y"] + 16.0 * s), 28.0 * s, 22.0 * s)
        w["jaw"] = smoothstep((ax - 35.0 * s) / (25.0 * s)) * smoothstep((-45.0 * s - y) / (25.0 * s))
        w["submental"] = smoothstep((lay["me_y"] + 2.0 * s - y) / (8.0 * s))
        return w

    # Region strength: how strongly a region overrides the general skin inside its mask.
    _STRENGTH = {"canthus": 80.0, "outer_canthus": 8.0, "eye": 40.0, "periorbital": 8.0, "brow": 12.0,
                 "forehead": 6.0, "temple": 3.0, "nose_tip": 20.0, "nose_bridge": 10.0, "nasolabial": 1.5,
                 "lips": 10.0, "mouth_corner": 6.0, "lower_lip": 6.0, "chin": 3.0, "jaw": 2.0,
                 "submental": 4.0}

    def face(self, points: np.ndarray, neutral: np.ndarray, front: np.ndarray, hair: np.ndarray,
             beard: np.ndarray, cavity: np.ndarray, *, include_hair: bool = True) -> np.ndarray:
        """Skin (and hair-surface) temperature of head points; `include_hair=False` gives bare skin."""
        num = np.full(len(points), self.t["skin"])
        den = np.ones(len(points))
        face_gate = front  # regions only exist on the front of the face
        on_face = np.nonzero(front > 0)[0]
        if len(on_face):
            gate = front[on_face]
            for name, mask in self._face_weights(neutral[on_face]).items():
                a = self._STRENGTH[name] * mask * gate
                num[on_face] += a * self.t[name]
                den[on_face] += a
        # Scalp (under the hair, or bald) gets the forehead-like scalp value.
        scalp = smoothstep((points[:, 1] - 40.0) / 30.0) * (1.0 - face_gate * 0.7)
        a = 6.0 * np.maximum(scalp, 0.8 * hair)
        num += a * self.t["scalp"]
        den += a
        # Behind the face (sides of the head, under the jaw) the skin is jaw-like.
        side = 1.0 - face_gate
        a = 1.5 * side * smoothstep((-20.0 - points[:, 1]) / 30.0)
        num += a * self.t["jaw"]
        den += a
        temp = num / den
        # The periphery of the face (towards the ears and the jaw line) runs cooler than its
        # centre; 1.4 gives cheek/temple skin a ~1 K spread [A: ramp in the outline ratio].
        width = self.model.profiles("W", points[:, 1])
        ratio = np.abs(points[:, 0]) / np.maximum(width, 1e-6)
        low_face = 1.0 - 0.7 * smoothstep((points[:, 1] - 20.0) / 40.0)
        temp = temp - self.lateral_cooling * smoothstep((ratio - 0.45) / 0.5) * low_face
        # Open mouth interior.
        temp = temp + cavity * (self.t["mouth_interior"] - temp)
        temp += self._texture(points) + self._asymmetry(points)
        temp += self._breathing(neutral) * face_gate
        for effect in self.local_effects:
            temp += effect(points, neutral)
        if include_hair:
            temp = self._hair_surface(temp, points, hair, beard)
        return temp

    def _texture(self, points: np.ndarray) -> np.ndarray:
        # Smooth skin texture, sd ~0.15 K over 15-45 mm: blood-flow patterns that are visible
        # but faint ("almost no fine texture", spec "What real frames look like").
        return smooth_texture(points, self.profile.texture_seed, 0.15, (15.0, 45.0))

    def _asymmetry(self, points: np.ndarray) -> np.ndarray:
        return 0.5 * self.profile.asymmetry_c * np.tanh(points[:, 0] / 30.0)

    def _breathing(self, neutral: np.ndarray) -> np.ndarray:
        if self.breath == 0.0:
            return np.zeros(len(neutral))
        lay, s = self.model.layout, self.model.shape.scale
        x, y = neutral[:, 0], neutral[:, 1]
        nostrils = sum(bump(x - sgn * 0.5 * lay["nostril"], y - (lay["sn_y"] + 1.0 * s), 9.0 * s, 6.0 * s)
                       for sgn in (-1, 1))
        plume = 0.5 * bump(x, y - (lay["sn_y"] - 8.0 * s), 16.0 * s, 9.0 * s)
        return self.breath * np.minimum(nostrils + plume, 1.0)

    def _hair_surface(self, skin: np.ndarray, points: np.ndarray, hair: np.ndarray, beard: np.ndarray) -> np.ndarray:
        """Where hair covers the skin the camera sees the hair's outer surface, nearer to room air."""
        amb = self.cond.ambient_c
        density = self.model.hair_style.density
        out = skin
        if density > 0 and np.any(hair > 0):
            drop = self.profile.hair_insulation * (0.55 + 0.45 * density)
            strands = 0.5 * hash_noise(points, self.profile.texture_seed + 1, 1.2)
            strands += smooth_texture(points, self.profile.texture_seed + 2, 0.45, (6.0, 14.0), waves=8)
            hair_t = skin - drop * (skin - amb) + strands
            out = out + hair * (hair_t - out)
        bd = self.model.hair_style.beard_density
        if bd > 0 and np.any(beard > 0):
            speckle = hash_noise(points, self.profile.texture_seed + 3, 0.9)
            # Stubble reads as darker speckle; a full beard as a cooler layer (1.4: beard 31-33).
            cover = beard * np.clip(bd + 0.35 * speckle, 0.0, 1.0)
            beard_t = skin - (0.1 + 0.2 * bd) * (skin - amb)
            out = out + cover * (beard_t - out)
        return out

    # --- ears and neck ---------------------------------------------------------------------------
    def ear(self, param: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Pinna: cool, colder at the rim, warm in the concha near the ear canal (Haddad: hot)."""
        back = np.where(param[:, 1] <= 0.5, 2.0 * param[:, 1], 2.0 - 2.0 * param[:, 1])
        along = 2.0 * param[:, 0] - 1.0
        rim = smoothstep((back - 0.7) / 0.25) + smoothstep((np.abs(along) - 0.75) / 0.2)
        concha = bump(back - 0.25, along + 0.1, 0.3, 0.35)
        base = self.t["ear"]
        temp = base - 1.0 * np.minimum(rim, 1.0) + concha * (self.t["skin"] + 0.3 - base)
        return temp + self._texture(points) * 0.7

    def neck(self, points_body: np.ndarray) -> np.ndarray:
        """Neck: warm (34-35 at 23 deg C), a little warmer at the throat and under the jaw."""
        throat = smoothstep(points_body[:, 2] / 40.0) * 0.3
        low = smoothstep((-200.0 - points_body[:, 1]) / 80.0) * 0.6
        # The sides of the neck run cooler than the throat, like the face's periphery [A].
        side = smoothstep((np.abs(points_body[:, 0]) - 15.0) / 35.0) * 1.3 * self.lateral_cooling
        return self.t["neck"] + throat - low - side + self._texture(points_body) * 0.8
