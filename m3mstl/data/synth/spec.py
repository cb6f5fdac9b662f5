"""What one synthetic image shows: `FaceSpec`, and how specs are drawn from the priors.

The generator is split into `sample_spec` (all random choices, a frozen dataclass) and
`render` (a deterministic function of the spec). A caller can therefore take one spec, change
it with `dataclasses.replace` (add or remove occluders, change the pose or the room) and render
the same face again; `mirror_spec` gives the horizontally mirrored face.

Randomness: a subject's identity comes from its own generator (`sample_identity`), so every
image of the subject shares it; each image then draws its pose, expression, conditions,
occluders and camera from the image's generator.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from m3mstl.data.synth.camera import BackgroundSpec, CameraSpec
from m3mstl.data.synth.face3d import Expression, FaceShape, HairStyle
from m3mstl.data.synth.occluders import MAX_OCCLUDERS, OCCLUDER_KINDS, OccluderSpec, sample_occluder
from m3mstl.data.synth.priors import load_priors
from m3mstl.data.synth.thermal import ThermalConditions, ThermalProfile
from m3mstl.core.landmarks import NUM_LANDMARKS


@dataclass(frozen=True)
class Clothing:
    """What the subject wears below the neck."""

    temperature_fraction: float = 0.45   # clothing surface T_a + f (T_skin - T_a) (2.4)
    neckline_mm: float = 190.0           # below the pupil line


@dataclass(frozen=True)
class Identity:
    """Everything that stays the same across a subject's images."""

    subject: str = "000"
    sex: str = "male"
    population: str = "white"
    shape: FaceShape = field(default_factory=FaceShape)
    hair: HairStyle = field(default_factory=HairStyle)
    thermal: ThermalProfile = field(default_factory=ThermalProfile)
    clothing: Clothing = field(default_factory=Clothing)
    wears_glasses: bool = False
    glasses: OccluderSpec | None = None     # the subject's own pair (same frame in every image)
    fringe: OccluderSpec | None = None      # a fringe is a hair style: in every image


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees (m3mstl.core.pose convention) and how much the neck follows it."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    neck_follow: tuple[float, float, float] = (0.45, 0.35, 0.5)


@dataclass(frozen=True)
class FaceSpec:
    """All choices behind one image; `render(spec, size)` turns it into pixels and labels."""

    subject: str = "000"
    index: int = 0
    identity: Identity = field(default_factory=Identity)
    expression: Expression = field(default_factory=Expression)
    pose: Pose = field(default_factory=Pose)
    conditions: ThermalConditions = field(default_factory=ThermalConditions)
    occluders: tuple[OccluderSpec, ...] = ()
    camera: CameraSpec = field(default_factory=CameraSpec)
    background: BackgroundSpec = field(default_factory=BackgroundSpec)
    expression_code: int = 0
    mirrored: bool = False

    def __post_init__(self) -> None:
        if len(self.occluders) > MAX_OCCLUDERS:
            raise ValueError(f"at most {MAX_OCCLUDERS} occluders fit the uint8 occluder mask, got {len(self.occluders)}")

    @property
    def ambient_c(self) -> float:
        """Room air temperature of the image (deg C)."""
        return self.conditions.ambient_c

    @property
    def fever_core_delta_c(self) -> float:
        """Core temperature above normal (0 for an afebrile subject)."""
        return self.conditions.core_delta_c

    @property
    def image_id(self) -> str:
        """File stem in the TFD68 scheme: thermal_<subject>_<a>_<b> (a = index, b = expression code)."""
        return f"thermal_{self.subject}_{self.index}_{self.expression_code}"


# ---------------------------------------------------------------------------------------------
# Sampling helpers
# ---------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, bounds: Any) -> float:
    lo, hi = bounds
    return float(rng.uniform(lo, hi))


def _normal(rng: np.random.Generator, mean_sd: Any) -> float:
    mean, sd = mean_sd
    return float(rng.normal(mean, sd))


def _smooth_offsets(rng: np.random.Generator, sd: float) -> tuple[tuple[float, float], ...]:
    """Per-landmark (68, 2) offsets, correlated within each facial part so shapes stay smooth."""
    from m3mstl.core.landmarks import GROUPS

    out = np.zeros((NUM_LANDMARKS, 2))
    for indices in GROUPS.values():
        idx = list(indices)
        shared = rng.normal(0.0, sd, size=2)
        own = rng.normal(0.0, 0.5 * sd, size=(len(idx), 2))
        out[idx] = shared + own
    return tuple((float(x), float(y)) for x, y in out)


def sample_identity(rng: np.random.Generator, priors: dict[str, Any], subject: str) -> Identity:
    """Draw a subject: sex, population, measurements, hair, thermal profile, clothing, eyewear."""
    sp, hp, tp = priors["subject"], priors["hair"], priors["thermal"]
    sex = "female" if rng.random() < sp["female_probability"] else "male"
    populations = sorted(sp["en_en_mm"])
    population = str(populations[int(rng.integers(len(populations)))])
    means = sp[sex]
    rel = sp["relative_sd"]

    def measure(name: str) -> float:
        return float(means[name] * (1.0 + rng.normal(0.0, rel)))

    shape = FaceShape(
        scale=float(means["scale"] * (1.0 + rng.normal(0.0, sp["scale_sd"]))),
        en_en=float(np.clip(_normal(rng, sp["en_en_mm"][population]), 24.0, 46.0)),
        eye_width=measure("eye_width"), zy_zy=measure("zy_zy"), go_go=measure("go_go"), al_al=measure("al_al"),
        ch_ch=measure("ch_ch"), n_sn=measure("n_sn"), sn_sto=measure("sn_sto"), sn_me=measure("sn_me"),
        forehead_height=_uniform(rng, sp["forehead_height_mm"]),
        nose_projection=_uniform(rng, sp["nose_projection_mm"]),
        lip_fullness=_uniform(rng, sp["lip_fullness"]), chin_projection=_uniform(rng, sp["chin_projection"]),
        cheek_fullness=_uniform(rng, sp["cheek_fullness"]), brow_ridge=_uniform(rng, sp["brow_ridge"][sex]),
        head_breadth=measure("head_breadth"), head_length=measure("head_length"), ear_length=measure("ear_length"),
        ear_protrusion_deg=_uniform(rng, sp["ear_protrusion_deg"]),
        landmark_offsets=_smooth_offsets(rng, sp["landmark_noise_mm"]),
    )
    bald = rng.random() < hp["bald_probability"][sex]
    beard_density, beard_thickness = 0.0, 0.0
    if sex == "male" and rng.random() < hp["beard_probability"]:
        if rng.random() < hp["full_beard_fraction"]:
            beard_density = _uniform(rng, hp["full_beard_density"])
            beard_thickness = _uniform(rng, hp["beard_thickness_mm"])
        else:
            beard_density = _uniform(rng, hp["stubble_density"])
    hair = HairStyle(
        density=0.0 if bald else _uniform(rng, hp["density"]),
        thickness_mm=_uniform(rng, hp["thickness_mm"][sex]),
        recession_mm=_uniform(rng, hp["recession_mm"][sex]),
        sideburn_mm=_uniform(rng, hp["sideburn_mm"]),
        beard_density=beard_density, beard_thickness_mm=beard_thickness,
    )
    nose = float(tp["nose_deficit_c"][0] + tp["nose_deficit_c"][1] * rng.standard_t(4))
    thermal = ThermalProfile(
        inner_canthus_c=_normal(rng, tp["inner_canthus_c"]),
        forehead_deficit=float(np.clip(_normal(rng, tp["forehead_deficit_c"]), 0.5, 2.8)),
        nose_deficit=float(np.clip(nose, 0.3, 9.0)),
        ear_deficit=float(np.clip(_normal(rng, tp["ear_deficit_c"]), 1.0, 6.0)),
        neck_deficit=float(np.clip(_normal(rng, tp["neck_deficit_c"]), 0.0, 2.0)),
        lips_deficit=float(np.clip(_normal(rng, tp["lips_deficit_c"]), -0.2, 2.5)),
        cheek_deficit=float(np.clip(_normal(rng, tp["cheek_deficit_c"]), 0.5, 2.5)),
        brow_density=_uniform(rng, tp["brow_density"]),
        asymmetry_c=_normal(rng, tp["asymmetry_c"]),
        emissivity=_uniform(rng, tp["emissivity"]),
        hair_insulation=_uniform(rng, tp["hair_insulation"]),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )
    clothing = Clothing(temperature_fraction=_uniform(rng, priors["clothing"]["temperature_fraction"]),
                        neckline_mm=_uniform(rng, priors["clothing"]["neckline_mm"]))
    op = priors["occluders"]
    wears = bool(rng.random() < op["glasses"]["subject_probability"])
    glasses = sample_occluder("glasses", rng, priors) if wears else None
    fringe = (sample_occluder("hair_fringe", rng, priors)
              if hair.density > 0 and rng.random() < op["hair_fringe"]["subject_probability"] else None)
    return Identity(subject=subject, sex=sex, population=population, shape=shape, hair=hair, thermal=thermal,
                    clothing=clothing, wears_glasses=wears, glasses=glasses, fringe=fringe)


def _sweep_schedule(priors: dict[str, Any]) -> list[tuple[float, float]]:
    d = priors["dataset"]
    schedule = [(float(y), 0.0) for y in d["yaw_sweep_deg"]]
    schedule += [(0.0, float(p)) for p in d["pitch_sweep_deg"]]
    schedule += [(float(y), float(p)) for p in d["combined_pitch_deg"] for y in d["combined_yaw_deg"]]
    return schedule


def sample_pose(rng: np.random.Generator, priors: dict[str, Any], index: int) -> Pose:
    """The image's pose: its place in the subject's sweep schedule (jittered), or a random pose."""
    pp, d = priors["pose"], priors["dataset"]
    (ylo, yhi), (plo, phi), (rlo, rhi) = pp["yaw_deg"], pp["pitch_deg"], pp["roll_deg"]
    random_pose = rng.random() < d["random_pose_fraction"]
    schedule = _sweep_schedule(priors)
    yaw, pitch = schedule[index % len(schedule)]
    jitter = d["sweep_jitter_deg"]
    yaw += rng.normal(0.0, jitter)
    pitch += rng.normal(0.0, jitter)
    roll = rng.normal(0.0, pp["roll_sd_deg"])
    if random_pose:
        yaw, pitch = rng.uniform(ylo, yhi), rng.uniform(plo, phi)
    return Pose(yaw=float(np.clip(yaw, ylo, yhi)), pitch=float(np.clip(pitch, plo, phi)),
                roll=float(np.clip(roll, rlo, rhi)), neck_follow=tuple(float(v) for v in pp["neck_follow"]))


def sample_expression(rng: np.random.Generator, priors: dict[str, Any]) -> tuple[Expression, int]:
    ep = priors["expression"]
    names = sorted(ep["probabilities"])
    weights = np.array([ep["probabilities"][n] for n in names], dtype=float)
    name = str(names[int(rng.choice(len(names), p=weights / weights.sum()))])
    code = int(priors["dataset"]["expression_codes"][name])
    if name == "mouth_open":
        return Expression(name=name, mouth_open_mm=_uniform(rng, ep["mouth_open_mm"])), code
    if name == "smile":
        return Expression(name=name, smile=_uniform(rng, ep["smile"])), code
    if name == "brow_raise":
        return Expression(name=name, brow_raise=_uniform(rng, ep["brow_raise"])), code
    return Expression(name=name), code


def sample_occluders(rng: np.random.Generator, priors: dict[str, Any], identity: Identity) -> tuple[OccluderSpec, ...]:
    """Zero, one or several occluders: subject eyewear and fringe, then per-image accessories."""
    op = priors["occluders"]
    chosen: list[OccluderSpec] = []
    if identity.fringe is not None:
        chosen.append(identity.fringe)
    if rng.random() < op["sunglasses"]["probability"]:
        chosen.append(sample_occluder("sunglasses", rng, priors))
    elif identity.glasses is not None and rng.random() < op["glasses"]["keep_probability"]:
        chosen.append(identity.glasses)
    if rng.random() < op["mask"]["probability"]:
        chosen.append(sample_occluder("mask", rng, priors))
    if rng.random() < op["scarf"]["probability"]:
        chosen.append(sample_occluder("scarf", rng, priors))
    if rng.random() < op["hat"]["probability"]:
        chosen.append(sample_occluder("hat", rng, priors))
    if rng.random() < op["hand"]["probability"]:
        first = sample_occluder("hand", rng, priors)
        chosen.append(first)
        if rng.random() < op["hand"]["second_hand_probability"]:
            second = sample_occluder("hand", rng, priors)
            params = dict(second.params, side=-first.params["side"])
            chosen.append(dataclasses.replace(second, params=params))
    limit = min(int(op["max_per_image"]), MAX_OCCLUDERS)
    return tuple(chosen[:limit])


def sample_camera(rng: np.random.Generator, priors: dict[str, Any]) -> CameraSpec:
    cp, crop = priors["camera"], priors["crop"]
    sensors = cp["sensors"]
    weights = np.array([row[2] for row in sensors], dtype=float)
    width, height, _ = sensors[int(rng.choice(len(sensors), p=weights / weights.sum()))]
    bad = int(rng.integers(1, cp["bad_pixels_max"] + 1)) if (cp["bad_pixels_max"] > 0 and
                                                          rng.random() < cp["bad_pixel_probability"]) else 0
    return CameraSpec(
        sensor_width=int(width), sensor_height=int(height), distance_m=_uniform(rng, cp["distance_m"]),
        face_fraction=_uniform(rng, cp["face_fraction"]),
        frame_offset=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
        crop_margin=_uniform(rng, crop["margin"]),
        crop_shift=(_uniform(rng, crop["shift_x"]), _uniform(rng, crop["shift_y"])),
        netd_mk=_uniform(rng, cp["netd_mk"]), column_noise_mk=_uniform(rng, cp["column_noise_mk"]),
        row_noise_mk=_uniform(rng, cp["row_noise_mk"]), fpn_c=_uniform(rng, cp["fpn_c"]),
        vignetting_c=_uniform(rng, cp["vignetting_c"]), narcissus_c=_uniform(rng, cp["narcissus_c"]),
        offset_error_c=_uniform(rng, cp["offset_error_c"]), blur_sigma_px=_uniform(rng, cp["blur_sigma_px"]),
        bad_pixels=bad, seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_background(rng: np.random.Generator, priors: dict[str, Any]) -> BackgroundSpec:
    bp = priors["background"]
    objects = []
    if rng.random() < bp["warm_object_probability"]:
        for _ in range(int(rng.integers(1, bp["max_objects"] + 1))):
            # Objects sit towards the frame edges, partly behind the subject.
            cx = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.5) + 0.5)
            objects.append((cx, float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.05, 0.2)),
                            float(rng.uniform(0.05, 0.3)), _uniform(rng, bp["warm_object_c"]),
                            float(rng.uniform(0.0, 1.0))))
    return BackgroundSpec(wall_offset_c=_uniform(rng, bp["wall_offset_c"]),
                          gradient_c=(_uniform(rng, bp["gradient_c"]), _uniform(rng, bp["gradient_c"])),
                          objects=tuple(objects))


def sample_conditions(rng: np.random.Generator, priors: dict[str, Any]) -> ThermalConditions:
    tp, fp = priors["thermal"], priors["fever"]
    core = _uniform(rng, fp["core_delta_c"]) if rng.random() < fp["probability"] else 0.0
    return ThermalConditions(
        ambient_c=_uniform(rng, priors["ambient_c"]),
        core_delta_c=core,
        session_offset_c=float(rng.normal(0.0, tp["session_offset_sd_c"])),
        nose_offset_c=float(rng.normal(0.0, tp["nose_image_sd_c"])),
        breathing_phase=float(rng.random()),
        breathing_amplitude_c=_uniform(rng, priors["breathing"]["amplitude_c"]),
        blink_cooling_c=_uniform(rng, tp["blink_cooling_c"]),
    )


def sample_spec(rng: np.random.Generator, priors: dict[str, Any] | None, subject: Identity | str,
                index: int) -> FaceSpec:
    """Draw one image of `subject` (an Identity, or an id for a fresh subject drawn from `rng`)."""
    priors = load_priors() if priors is None else priors
    identity = sample_identity(rng, priors, subject) if isinstance(subject, str) else subject
    pose = sample_pose(rng, priors, index)
    expression, code = sample_expression(rng, priors)
    conditions = sample_conditions(rng, priors)
    occluders = sample_occluders(rng, priors, identity)
    camera = sample_camera(rng, priors)
    background = sample_background(rng, priors)
    return FaceSpec(subject=identity.subject, index=int(index), identity=identity, expression=expression,
                    pose=pose, conditions=conditions, occluders=occluders, camera=camera,
                    background=background, expression_code=code)


def mirror_spec(spec: FaceSpec) -> FaceSpec:
    """The same image mirrored left-right: yaw and roll change sign and the face is reflected.

    The camera's lateral offsets keep their stored values: the renderer applies them with the
    opposite sign to a mirrored spec, so the crop, the background and the sensor noise mirror too.
    """
    pose = dataclasses.replace(spec.pose, yaw=-spec.pose.yaw, roll=-spec.pose.roll)
    return dataclasses.replace(spec, pose=pose, mirrored=not spec.mirrored)


def default_occluder(kind: str, seed: int = 0, priors: dict[str, Any] | None = None) -> OccluderSpec:
    """An occluder of `kind` drawn with a fixed seed: for adding accessories to an existing spec."""
    if kind not in OCCLUDER_KINDS:
        raise ValueError(f"unknown occluder kind {kind!r}; expected one of {OCCLUDER_KINDS}")
    priors = load_priors() if priors is None else priors
    return sample_occluder(kind, np.random.default_rng(seed), priors)


def with_occluders(spec: FaceSpec, kinds: list[str] | tuple[str, ...], seed: int = 0,
                   priors: dict[str, Any] | None = None) -> FaceSpec:
    """The spec with exactly these occluder kinds (existing ones of a kind are kept, others dropped)."""
    keep = [o for o in spec.occluders if o.kind in kinds]
    present = {o.kind for o in keep}
    added = [default_occluder(kind, seed=seed + i, priors=priors) for i, kind in enumerate(kinds) if kind not in present]
    return dataclasses.replace(spec, occluders=tuple(keep + added))
