"""Whole camera scenes: several people at different distances, indoors or outdoors (issue 30).

A full frame of `m3mstl synth --full-frame` is a portrait: one face filling a third to a half of the
frame, cut at the chest, before a room. A real LWIR camera at a door or in a street sees something
else: people standing, their bodies reaching the frame's lower edge, faces from about 20 px wide
(far) to 160 px (near), sometimes cut by the frame's edge or hidden behind a nearer person, before a
room or before a cold sky, a warm road and trees. These scenes are what the face detector and the
landmark pipeline are measured on (`m3mstl.evaluation.detection.evaluate_scenes`,
`benchmarks/bench_scenes.py`).

How a scene is made (docs/thermal_physics.md section 7 for the sourced numbers):

1. People: each is an ordinary generated face (`spec.sample_spec`: identity, pose, occluders,
   skin physics) placed in one 640x512 sensor: its face width in pixels sets the camera's
   `face_fraction`, its place the `frame_offset`; rendered as a full frame with the clothed body
   reaching the lower edge (`renderer.render(..., full_body=True)`), before the sensor model.
2. Background: indoors, the generator's room (`camera.background_field`); outdoors, a sky whose
   apparent temperature falls from near the air's at the horizon to the zenith value (clear sky far
   below freezing, cloud near the air's), the ground below the horizon (a road in sun well above the
   air, in shade near it) and trees near the air temperature, with leafy texture.
3. Composition: people are painted far to near over the background (a nearer person hides a
   farther one: those landmarks become occluded, cause "person"); a person may be pushed part-way
   out of the frame (a partial face at the edge). Then ONE sensor model for the whole frame
   (`camera.simulate_sensor`: blur, noise, fixed pattern, vignetting, offset) and the 8-bit view.

Each person's truth: the head box of what is visible of their head in the frame (skin, hair, ears:
a detector's box, stopping at the chin/jaw line, not the neck), the 68 landmarks in frame pixels
with visibility, the face width in pixels, whether the head is cut by the frame's edge, occluders,
head pose, the true canthus skin temperature. Deterministic: a (seed, index) gives the same scene.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from m3mstl.data.synth.camera import BackgroundSpec, CameraSpec, CropGeometry, background_field, simulate_sensor, white_hot_view
from m3mstl.data.synth.renderer import BACKGROUND, EAR, HAIR, NECK, SKIN, RenderedFace, head_box, render
from m3mstl.data.synth.spec import FaceSpec

SCENE_KINDS: tuple[str, ...] = ("indoor", "outdoor")
SENSOR_SIZE = (640, 512)                 # width, height: the Boson / A655 class of sensor
FACE_WIDTH_PX = (20.0, 160.0)            # face width (landmark extent) range in sensor pixels
PEOPLE_PER_SCENE = (1, 4)                # inclusive
PARTIAL_SHARE = 0.15                     # share of people pushed part-way out of the frame
VERTICAL_FOV_DEG = 37.0                  # a 640x512 LWIR camera with a ~14-19 mm lens [A]
# Outdoor apparent temperatures (docs/thermal_physics.md 7.1-7.2).
CLEAR_SKY_ZENITH_C = (-45.0, -25.0)      # clear dry sky, 8-14 um: about -40 deg C and colder
CLOUD_BELOW_AIR_K = (2.0, 20.0)          # cloud base: a degree (low, heavy) to ~20 K (high, thin) below the air
SKY_HORIZON_E_FOLD_DEG = 8.0             # the sky warms towards the air temperature near the horizon
SUNLIT_ROAD_ABOVE_AIR_K = (8.0, 30.0)    # dark pavement in sun: 10-30 K above the air
SHADED_ROAD_ABOVE_AIR_K = (-2.0, 3.0)
VEGETATION_ABOVE_AIR_K = (-2.0, 2.0)     # transpiring leaves stay near the air temperature [A]
INDOOR_AMBIENT_C = (18.0, 26.0)
OUTDOOR_AMBIENT_C = (-2.0, 32.0)


@dataclass(frozen=True)
class OutdoorSpec:
    """The outdoor background: horizon row (fraction of the height from the top), sky and ground."""

    horizon: float
    sky_zenith_c: float
    cloudy: bool
    road_c: float
    trees: tuple[tuple[float, float, float, float, float], ...]   # (cx, cy, rx, ry, dT) frame fractions, K
    texture_seed: int


@dataclass(frozen=True)
class ScenePerson:
    """One person in a scene: their face spec (camera set for the scene) and `edge_cut`, the share of
    their face (landmark extent) pushed out of the frame: 0 for most, negative past the left edge,
    positive past the right one."""

    spec: FaceSpec
    edge_cut: float = 0.0


@dataclass(frozen=True)
class SceneSpec:
    index: int
    kind: str
    ambient_c: float
    people: tuple[ScenePerson, ...]      # far to near
    camera: CameraSpec                   # the scene's sensor and its noise
    room: BackgroundSpec | None = None   # indoor
    outdoor: OutdoorSpec | None = None   # outdoor


@dataclass
class RenderedScene:
    temperature_c: np.ndarray            # (H, W) measured deg C
    image_u8: np.ndarray                 # (H, W) white-hot view
    people: list[dict[str, Any]]         # per person, far to near: the truth (module docstring)
    owner: np.ndarray                    # (H, W) int: index of the person seen at each pixel, -1 none


def scene_spec(seed: int, index: int, priors: dict[str, Any]) -> SceneSpec:
    """The spec of scene `index` (deterministic in (seed, index))."""
    from m3mstl.data.synth.spec import sample_identity, sample_spec

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7, index)))
    kind = SCENE_KINDS[int(rng.integers(len(SCENE_KINDS)))]
    ambient = float(rng.uniform(*(INDOOR_AMBIENT_C if kind == "indoor" else OUTDOOR_AMBIENT_C)))
    width, height = SENSOR_SIZE
    n_people = int(rng.integers(PEOPLE_PER_SCENE[0], PEOPLE_PER_SCENE[1] + 1))
    # Log-uniform face widths: as many far faces as near ones per octave of size.
    widths = np.sort(np.exp(rng.uniform(np.log(FACE_WIDTH_PX[0]), np.log(FACE_WIDTH_PX[1]), n_people)))
    people = []
    for k, face_width in enumerate(widths):
        person_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(8, index, k)))
        identity = sample_identity(person_rng, priors, f"s{index:05d}p{k}")
        spec = sample_spec(person_rng, priors, identity, 0)
        # Standing people: eyes near the camera's height, so nearer faces sit only a little lower.
        offset_y = float(np.clip(rng.normal(-0.2, 0.25), -0.9, 0.6))
        camera = dataclasses.replace(spec.camera, sensor_width=width, sensor_height=height,
                                     face_fraction=float(face_width / width),
                                     frame_offset=(float(rng.uniform(-1.0, 1.0)), offset_y))
        conditions = dataclasses.replace(spec.conditions, ambient_c=ambient)
        spec = dataclasses.replace(spec, camera=camera, conditions=conditions, subject=f"scene{index:05d}",
                                   index=k)
        cut = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6)) if rng.uniform() < PARTIAL_SHARE else 0.0
        people.append(ScenePerson(spec, cut))
    base = people[-1].spec.camera   # the nearest person's camera noise stands for the scene's
    camera = dataclasses.replace(base, seed=int(rng.integers(2**31)), bad_pixels=int(rng.integers(0, 4)))
    if kind == "indoor":
        return SceneSpec(index, kind, ambient, tuple(people), camera, room=people[-1].spec.background)
    cloudy = bool(rng.uniform() < 0.4)
    zenith = (ambient - float(rng.uniform(*CLOUD_BELOW_AIR_K))) if cloudy else float(rng.uniform(*CLEAR_SKY_ZENITH_C))
    sunlit = bool(rng.uniform() < 0.5)
    road = ambient + float(rng.uniform(*(SUNLIT_ROAD_ABOVE_AIR_K if sunlit else SHADED_ROAD_ABOVE_AIR_K)))
    horizon = float(rng.uniform(0.3, 0.55))
    trees = tuple((float(rng.uniform(0, 1)), float(horizon - rng.uniform(0.0, 0.15)), float(rng.uniform(0.05, 0.2)),
                   float(rng.uniform(0.1, 0.3)), float(rng.uniform(*VEGETATION_ABOVE_AIR_K)))
                  for _ in range(int(rng.integers(0, 5))))
    outdoor = OutdoorSpec(horizon, zenith, cloudy, road, trees, int(rng.integers(2**31)))
    return SceneSpec(index, kind, ambient, tuple(people), camera, outdoor=outdoor)


def outdoor_field(spec: OutdoorSpec, ambient_c: float, width: int, height: int) -> np.ndarray:
    """Apparent temperature (height, width) of an outdoor background: sky above the horizon, ground
    below, trees over the horizon line."""
    rng = np.random.default_rng(spec.texture_seed)
    rows = (np.arange(height) + 0.5)[:, None]
    horizon_row = spec.horizon * height
    elevation = (horizon_row - rows) * VERTICAL_FOV_DEG / height           # degrees above the horizon
    sky = spec.sky_zenith_c + (ambient_c - 1.0 - spec.sky_zenith_c) * np.exp(-np.maximum(elevation, 0.0)
                                                                            / SKY_HORIZON_E_FOLD_DEG)
    if spec.cloudy:   # cloud texture: a couple of kelvin of smooth structure
        sky = sky + 2.0 * _smooth_noise(rng, (height, width), 18.0)
    # The ground: the road's temperature near the camera, fading to the air's towards the horizon.
    depth = np.clip((rows - horizon_row) / max(height - horizon_row, 1.0), 0.0, 1.0)
    ground = ambient_c + (spec.road_c - ambient_c) * depth ** 0.5
    ground = ground + 0.4 * _smooth_noise(rng, (height, width), 2.0)
    field = np.where(rows < horizon_row, sky, ground) * np.ones((1, width))
    yy, xx = (np.arange(height) + 0.5)[:, None] / height, (np.arange(width) + 0.5)[None, :] / width
    leaves = _smooth_noise(rng, (height, width), 3.0)
    for cx, cy, rx, ry, warm in spec.trees:
        crown = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1.0 + 0.3 * leaves
        trunk = (np.abs(xx - cx) < rx * 0.12) & (yy > cy) & (yy < spec.horizon + 0.02)
        field = np.where(crown | trunk, ambient_c + warm + 0.8 * leaves, field)
    return field


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian noise smoothed over `sigma` pixels, scaled back to unit standard deviation."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-12)


def _full_frame_crop(width: int, height: int) -> tuple[CropGeometry, int]:
    """The whole sensor as the square grid the sensor model works on, and the rows (or columns) of
    padding before the real frame."""
    side = max(width, height)
    pad = (side - min(width, height)) // 2
    x0, y0 = (0, -pad) if width >= height else (-pad, 0)
    return CropGeometry(focal_px=1.0, principal=(0.5 * width, 0.5 * height), translation=np.zeros(3),
                        x0=x0, y0=y0, side=side), pad


def _shift(array: np.ndarray, dx: int, dy: int, fill: Any) -> np.ndarray:
    """`array` moved by (dx, dy) pixels, what moves out dropped, what moves in `fill`."""
    out = np.full_like(array, fill)
    h, w = array.shape
    src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    out[dst_y, dst_x] = array[src_y, src_x]
    return out


def render_scene(spec: SceneSpec) -> RenderedScene:
    """Render a scene (module docstring): people far to near over the background, one sensor model."""
    width, height = SENSOR_SIZE
    crop, pad = _full_frame_crop(width, height)
    if spec.kind == "indoor":
        square = background_field(spec.room or BackgroundSpec(), spec.ambient_c, crop, spec.camera, crop.side, False)
        scene_c = square[pad:pad + height, :width] if width >= height else square[:height, pad:pad + width]
    else:
        scene_c = outdoor_field(spec.outdoor, spec.ambient_c, width, height)
    scene_c = np.array(scene_c, dtype=np.float64)
    owner = np.full((height, width), -1, dtype=np.int64)
    parts = np.full((height, width), BACKGROUND, dtype=np.uint8)
    faces: list[RenderedFace] = []
    placed: list[tuple[tuple[int, int], np.ndarray]] = []   # each person's shift and part map in the frame
    for k, person in enumerate(spec.people):
        face = render(person.spec, 16, full_frame=True, full_body=True)
        dx, dy = _edge_shift(face, person.edge_cut, width), 0
        part_map = _shift(face.part_map, dx, dy, BACKGROUND)
        placed.append(((dx, dy), part_map))
        person_c = _shift(face.scene_c.astype(np.float64), dx, dy, 0.0)
        seen = part_map != BACKGROUND
        scene_c[seen], owner[seen], parts[seen] = person_c[seen], k, part_map[seen]
        faces.append(face)
    measured = _sensor(scene_c, spec.camera, crop, pad, width, height)
    person_pixels = owner >= 0
    skin_pixels = np.isin(parts, (SKIN, EAR, NECK))
    image_u8, _, _ = white_hot_view(measured, person_pixels, skin_pixels)
    people = [_person_truth(k, person, face, shift, part_map, owner, parts, width, height)
              for k, (person, face, (shift, part_map)) in enumerate(zip(spec.people, faces, placed))]
    return RenderedScene(measured.astype(np.float32), image_u8, people, owner)


def _sensor(scene_c: np.ndarray, camera: CameraSpec, crop: CropGeometry, pad: int, width: int, height: int) -> np.ndarray:
    """One sensor model over the whole frame (on the padded square grid it works on, then cut)."""
    from m3mstl.data import coco

    if width >= height:
        square = np.pad(scene_c, ((pad, crop.side - height - pad), (0, 0)), mode="edge")
    else:
        square = np.pad(scene_c, ((0, 0), (pad, crop.side - width - pad)), mode="edge")
    measured = simulate_sensor(square, camera, crop, False)
    measured = measured[pad:pad + height, :width] if width >= height else measured[:height, pad:pad + width]
    # Recorded as 10 mK counts, as every generated map is (`renderer.render`).
    return coco.decode_centikelvin(coco.encode_centikelvin(measured)).astype(np.float64)


def _edge_shift(face: RenderedFace, edge_cut: float, width: int) -> int:
    """Columns to move a rendered person so `edge_cut` of their face width lies past a frame edge."""
    if edge_cut == 0.0:
        return 0
    lo, hi = face.landmarks[:, 0].min(), face.landmarks[:, 0].max()
    face_width = hi - lo
    if edge_cut < 0:
        return int(round(edge_cut * face_width - lo))
    return int(round(width + edge_cut * face_width - hi))


def _person_truth(k: int, person: ScenePerson, face: RenderedFace, shift: tuple[int, int], placed_parts: np.ndarray,
                  owner: np.ndarray, parts: np.ndarray, width: int, height: int) -> dict[str, Any]:
    """The truth of person k; `placed_parts` is their part map moved into the frame (`_shift`)."""
    dx, dy = shift
    landmarks = face.landmarks + np.array([dx, dy], dtype=float)
    visible_head = np.where(owner == k, parts, BACKGROUND)
    box = head_box(visible_head)
    inside = (landmarks[:, 0] >= 0) & (landmarks[:, 0] < width) & (landmarks[:, 1] >= 0) & (landmarks[:, 1] < height)
    visibility = np.array(face.visibility, dtype=np.int8)
    causes = list(face.occlusion_cause)
    for i, (x, y) in enumerate(landmarks):
        if not inside[i]:
            visibility[i], causes[i] = 0, "outside"     # COCO: not labelled (out of the frame)
        elif owner[int(y), int(x)] > k:                  # a nearer person stands in front
            visibility[i], causes[i] = 1, "person"
    full_box = head_box(placed_parts) if (dx or dy) else face.head_bbox
    whole = head_box(face.part_map)
    cut = whole is not None and (full_box is None or full_box[2] * full_box[3] < 0.98 * whole[2] * whole[3])
    lo, hi = face.landmarks.min(axis=0), face.landmarks.max(axis=0)
    return {
        "person": k,
        "head_bbox": None if box is None else [float(v) for v in box],
        "landmarks": landmarks,
        "visibility": visibility,
        "occlusion_cause": causes,
        "face_width_px": float(hi[0] - lo[0]),
        "cut_by_frame_edge": bool(cut),
        "hidden_share": float(1.0 - (np.count_nonzero(np.isin(visible_head, (SKIN, HAIR, EAR)))
                                     / max(np.count_nonzero(np.isin(placed_parts, (SKIN, HAIR, EAR))), 1))),
        "occluders": [o.kind for o in person.spec.occluders],
        "head_pose": {"yaw": person.spec.pose.yaw, "pitch": person.spec.pose.pitch, "roll": person.spec.pose.roll},
        "canthus_skin_max_c": [float(v) for v in face.canthus_skin_max_c],
        "skin_temperature_c": face.skin_temperature_c,
    }


# -- a scene set on disk -----------------------------------------------------------------------
SCENE_GENERATOR = "m3mstl synth --scenes"
MAX_SCENES = 100_000
_STATE: dict[str, Any] = {}


@dataclass
class Scene:
    """One scene of a scene set read back: its files, kind and the people in it (truth as written)."""

    image_id: str
    image_path: Any
    temperature_path: Any
    kind: str
    width: int
    height: int
    people: list[dict[str, Any]]


def _init_scene_worker(state: dict[str, Any]) -> None:
    _STATE.clear()
    _STATE.update(state)


def _scene_worker(index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Render scene `index` and write its image and map into the build folder; its JSON entries."""
    from PIL import Image

    from m3mstl.core.fileio import atomic_path
    from m3mstl.data.synth.recording import recorded

    st = _STATE
    spec = scene_spec(st["seed"], index, st["priors"])
    scene = render_scene(spec)
    image_id = f"scene_{index:05d}"
    root = st["root"]
    with atomic_path(root / "thermal" / f"{image_id}.png") as tmp:
        Image.fromarray(scene.image_u8).save(tmp, format="PNG")
    with atomic_path(root / "temperature" / f"{image_id}.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, scene.temperature_c)
    height, width = scene.temperature_c.shape
    image = {"id": index, "file_name": f"thermal/{image_id}.png", "temperature_file": f"temperature/{image_id}.npy",
             "width": int(width), "height": int(height), "scene_kind": spec.kind,
             "ambient_c": recorded(spec.ambient_c), "people": len(scene.people)}
    if spec.outdoor is not None:
        image["outdoor"] = recorded({"horizon": spec.outdoor.horizon, "sky_zenith_c": spec.outdoor.sky_zenith_c,
                                     "cloudy": spec.outdoor.cloudy, "road_c": spec.outdoor.road_c,
                                     "trees": len(spec.outdoor.trees)})
    annotations = []
    for person in scene.people:
        points = recorded(np.asarray(person["landmarks"], dtype=float))
        keypoints = [float(v) for xy_v in zip(points[:, 0], points[:, 1], person["visibility"]) for v in xy_v]
        annotations.append({
            "image_id": index, "person": person["person"], "category_id": 1, "keypoints": keypoints,
            "num_keypoints": int(np.count_nonzero(person["visibility"])),
            "head_bbox": recorded(person["head_bbox"]), "face_width_px": recorded(person["face_width_px"]),
            "cut_by_frame_edge": person["cut_by_frame_edge"], "hidden_share": recorded(person["hidden_share"]),
            "occluders": person["occluders"], "head_pose": recorded(person["head_pose"]),
            "occlusion_cause": person["occlusion_cause"],
            "canthus_skin_max_c": recorded(person["canthus_skin_max_c"]),
            "skin_temperature_c": recorded(np.asarray(person["skin_temperature_c"], dtype=float)).tolist(),
        })
    return image, annotations


def generate_scenes(out_dir, *, count: int, seed: int, workers: int = 1, priors: dict[str, Any] | None = None,
                    progress: bool = False):
    """Render `count` scenes into `out_dir`: thermal/scene_NNNNN.png (8-bit white-hot view),
    temperature/scene_NNNNN.npy (float32 deg C), annotations.json (COCO keypoints with several people per
    image, each annotation with its head box and the truth of `render_scene`). Built in a sibling folder
    and swapped in whole (an interrupted run leaves the previous set as it was). Returns the annotations path."""
    import json
    import multiprocessing
    from pathlib import Path

    from m3mstl.core import MAX_SEED
    from m3mstl.core.fileio import atomic_folder, write_json_atomic
    from m3mstl.data.synth.priors import SynthConfigError, load_priors
    from m3mstl.data.synth.renderer import GENERATOR_VERSION

    root = Path(out_dir)
    if not 1 <= count <= MAX_SCENES:
        raise SynthConfigError(root, f"--scenes must be 1 .. {MAX_SCENES:,}, got {count}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise SynthConfigError(root, f"--seed must be a whole number in 0 .. {MAX_SEED}, got {seed!r}")
    if root.exists() and not root.is_dir():
        raise SynthConfigError(root, "output path exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        existing = root / "annotations.json"
        try:
            writer = json.loads(existing.read_text()).get("info", {}).get("generator")
        except (OSError, ValueError, AttributeError):
            writer = None
        if writer != SCENE_GENERATOR:
            raise SynthConfigError(root, "folder is not empty and holds no scene set of m3mstl synth --scenes; "
                                         "choose a new or empty folder")
    priors = load_priors(None) if priors is None else priors
    with atomic_folder(root) as build:
        (build / "thermal").mkdir()
        (build / "temperature").mkdir()
        state = {"root": build, "seed": int(seed), "priors": priors}
        _init_scene_worker(state)
        indices = list(range(count))
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=count, unit="scene", desc="scenes")
        if workers == 1:
            results = []
            for index in indices:
                results.append(_scene_worker(index))
                if bar is not None:
                    bar.update(1)
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            # The state goes to each worker through the initializer: under "spawn" nothing is inherited.
            with multiprocessing.get_context(method).Pool(workers, initializer=_init_scene_worker,
                                                          initargs=(state,)) as pool:
                results = []
                for result in pool.imap(_scene_worker, indices, chunksize=1):
                    results.append(result)
                    if bar is not None:
                        bar.update(1)
        if bar is not None:
            bar.close()
        images = [image for image, _ in results]
        annotations = [dict(annotation, id=k) for k, annotation in
                       enumerate(a for _, group in results for a in group)]
        info = {"generator": SCENE_GENERATOR, "version": GENERATOR_VERSION, "seed": int(seed), "scenes": count,
                "description": "Whole LWIR camera scenes, several people per frame (m3mstl.data.synth.scenes): "
                               "COCO keypoints, one annotation per person; v = 0 outside the frame, 1 occluded "
                               "(an occluder, the head itself or a nearer person), 2 visible.",
                "conventions": {"head_bbox": "what is visible of the head in the frame (skin, hair, ears), x, y, w, h; "
                                             "null when a nearer person hides it all",
                                "face_width_px": "landmark-extent width of the face in sensor pixels",
                                "cut_by_frame_edge": "the head is partly outside the frame",
                                "hidden_share": "share of the head hidden by nearer people or the frame edge"}}
        categories = [{"id": 1, "name": "face", "keypoints": [str(i) for i in range(68)]}]
        write_json_atomic(build / "annotations.json", {"info": info, "images": images, "annotations": annotations,
                                                        "categories": categories})
    return root / "annotations.json"


def read_scenes(folder) -> list[Scene]:
    """A scene set written by `generate_scenes`, with each file checked; DatasetError names what is wrong."""
    import json
    from pathlib import Path

    from m3mstl.data.errors import DatasetError

    folder = Path(folder)
    path = folder / "annotations.json"
    if not path.is_file():
        raise DatasetError(path, "no annotations.json: not a scene set (m3mstl synth OUT --scenes N)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(path, f"cannot read: {error}") from None
    if not isinstance(data, dict) or data.get("info", {}).get("generator") != SCENE_GENERATOR:
        raise DatasetError(path, "not a scene set of m3mstl synth --scenes (info.generator)")
    people: dict[int, list[dict[str, Any]]] = {}
    for annotation in data.get("annotations", []):
        keypoints = np.asarray(annotation["keypoints"], dtype=float).reshape(-1, 3)
        if keypoints.shape != (68, 3):
            raise DatasetError(path, f"annotation {annotation.get('id')}: {len(keypoints)} keypoints, expected 68")
        people.setdefault(int(annotation["image_id"]), []).append(
            {**annotation, "landmarks": keypoints[:, :2], "visibility": keypoints[:, 2].astype(np.int8)})
    scenes = []
    for image in data.get("images", []):
        image_path, temperature_path = folder / image["file_name"], folder / image["temperature_file"]
        for file in (image_path, temperature_path):
            if not file.is_file():
                raise DatasetError(file, "file of the scene set missing")
        scenes.append(Scene(Path(image["file_name"]).stem, image_path, temperature_path, image["scene_kind"],
                            int(image["width"]), int(image["height"]),
                            sorted(people.get(int(image["id"]), []), key=lambda p: p["person"])))
    return scenes
