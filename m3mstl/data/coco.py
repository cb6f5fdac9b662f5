"""Read and write the TFD68 layout: COCO keypoints JSON plus thermal, temperature and occluder files.

The layout (see `m3mstl.data.records`):

    ROOT/annotations.json                  COCO keypoints, v = 0 unlabelled, 1 occluded, 2 visible
    ROOT/thermal/<image_id>.png            8-bit (or 16-bit) thermal view
    ROOT/temperature/<image_id>.npy|.png   float32 degrees C, or uint16 centi-Kelvin (round(100 * T_K))
    ROOT/occluders/<image_id>.png          optional uint8 bitmask, bit k = occluder k of the image's list

Two keypoint layouts are read and written:

* ``"ibug68"``: one category whose 68 keypoints are in iBUG-300W order; one annotation per image.
* ``"parts"``: the form of the real TFD68 annotation file. One category per facial part (jaw,
  right_eyebrow, left_eyebrow, nose, right_eye, left_eye, mouth) listing keypoint names with a
  trailing number, one annotation per part and image, plus a keypoint-less "face" annotation that
  carries the face box. Parts are regrouped in that order, each sorted by its trailing number,
  which gives iBUG order. "Right" is the subject's right (iBUG 17-21 and 36-41); where brows or
  eyes come as one group, the first 5 (brows) or 6 (eyes) are the right ones.

In a `FaceRecord`, unlabelled landmarks (v = 0) hold NaN coordinates so that nothing can use them
by accident; COCO stores them as (0, 0, 0).
"""
from __future__ import annotations

import json
import math
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from m3mstl.data.errors import DatasetError, DatasetWarning
from m3mstl.data.records import (
    VIS_OCCLUDED,
    VIS_UNLABELLED,
    VIS_VISIBLE,
    FaceDataset,
    FaceRecord,
)
from m3mstl.core.fileio import (DATASET_ENTRIES, DATASET_MARKER, atomic_path, regular_file_problem,
                                write_bytes_atomic, write_json_atomic)
from m3mstl.core.landmarks import NAMES, NUM_LANDMARKS

ANNOTATIONS_FILE = "annotations.json"
THERMAL_DIR, TEMPERATURE_DIR, OCCLUDERS_DIR = "thermal", "temperature", "occluders"

# Margin the TFD68 baseline adds around the landmark extent when an image has no face box.
BBOX_MARGIN_PX = 5.0

# Skin and room temperatures of a face image lie far inside this band; values outside it mean the
# map is in another unit (e.g. Kelvin stored as "Celsius") or holds sentinel values.
PLAUSIBLE_TEMPERATURE_C = (-50.0, 200.0)
KELVIN_OFFSET = 273.15

KEYPOINT_LAYOUTS = ("ibug68", "parts")
IBUG68_CATEGORY_ID = 1

# The facial parts of the "parts" layout in regrouping order, with their iBUG-68 index ranges.
PARTS: tuple[tuple[str, range], ...] = (
    ("jaw", range(0, 17)),
    ("right_eyebrow", range(17, 22)),
    ("left_eyebrow", range(22, 27)),
    ("nose", range(27, 36)),
    ("right_eye", range(36, 42)),
    ("left_eye", range(42, 48)),
    ("mouth", range(48, 68)),
)
# Category ids written for the parts layout: parts 0..6 in the order above and the face box as 7,
# the id the TFD68 baseline's loader requires (REQUIRED_CAT = 7), so it also accepts our files.
PART_CATEGORY_IDS = {name: i for i, (name, _) in enumerate(PARTS)}
FACE_CATEGORY_ID = 7

# thermal_<subject>_<a>_<b>: the TFD68 file-name scheme, subject id first.
FILE_NAME_PATTERN = re.compile(r"^thermal_(?P<subject>[A-Za-z0-9]+)_(?P<a>-?\d+)_(?P<b>-?\d+)$", re.IGNORECASE)

TEMPERATURE_SUFFIXES = {
    ".npy": "celsius_npy",
    ".png": "centikelvin_png",
    ".tif": "centikelvin_tiff",
    ".tiff": "centikelvin_tiff",
}

# Fields the reader interprets itself; every other image or annotation field goes to FaceRecord.extras.
_KNOWN_IMAGE_FIELDS = frozenset(
    {"id", "file_name", "width", "height", "subject_id", "temperature_file", "occluder_mask_file"}
)
_KNOWN_ANNOTATION_FIELDS = frozenset(
    {"id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "area", "iscrowd", "segmentation"}
)
_JSON_DECIMALS = 6


# --------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------


def _save_png(path: Path, array: np.ndarray) -> None:
    image = Image.fromarray(np.ascontiguousarray(array))
    with atomic_path(path) as tmp:  # readers never see half a file; parallel writers never collide
        image.save(tmp, format="PNG")


def json_ready(value: Any) -> Any:
    """A JSON-serialisable copy of ``value`` with stable float formatting.

    Floats are rounded to 6 decimals (1e-6 px is far below any annotation precision) so that the
    same input always gives the same bytes; non-finite floats become null because JSON has none.
    """
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            return None
        rounded = round(number, _JSON_DECIMALS)
        return 0.0 if rounded == 0 else rounded  # no "-0.0" in the file
    if isinstance(value, Path):
        return value.as_posix()
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in the annotation JSON: {value!r}")


def encode_centikelvin(temperature_c: np.ndarray) -> np.ndarray:
    """Degrees C -> uint16 centi-Kelvin, round(100 * (T + 273.15)), the FLIR "TLinear 10 mK" form."""
    scaled = np.rint(100.0 * (np.asarray(temperature_c, dtype=np.float64) + KELVIN_OFFSET))
    if scaled.min() < 0 or scaled.max() > np.iinfo(np.uint16).max:
        raise ValueError("temperature outside the uint16 centi-Kelvin range (-273.15 .. 382.2 deg C)")
    return scaled.astype(np.uint16)


def decode_centikelvin(values: np.ndarray) -> np.ndarray:
    """uint16 centi-Kelvin -> float32 degrees C."""
    return (np.asarray(values, dtype=np.float64) / 100.0 - KELVIN_OFFSET).astype(np.float32)


def landmark_extent_bbox(
    landmarks: np.ndarray,
    visibility: np.ndarray,
    width: float,
    height: float,
    margin: float = 0.0,
) -> tuple[float, float, float, float] | None:
    """Box (x, y, w, h) around the labelled landmarks plus ``margin`` px, clipped to the image.

    Returns None when no landmark is labelled or the clipped box is empty.
    """
    points = np.asarray(landmarks, dtype=float)[np.asarray(visibility) > VIS_UNLABELLED]
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        return None
    x0, y0 = np.clip(points.min(axis=0) - margin, 0.0, [width, height])
    x1, y1 = np.clip(points.max(axis=0) + margin, 0.0, [width, height])
    if x1 <= x0 or y1 <= y0:
        return None
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def subject_from_file_name(file_name: str) -> str | None:
    """The subject id of a ``thermal_<subject>_<a>_<b>.<ext>`` file name, else None."""
    match = FILE_NAME_PATTERN.match(Path(file_name).stem)
    return match.group("subject") if match else None


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _flat_keypoints(coordinates: np.ndarray, visibility: np.ndarray) -> list[float | int]:
    """COCO's flat [x1, y1, v1, x2, ...] with integer visibility flags."""
    flat: list[float | int] = []
    for (x, y), v in zip(np.asarray(coordinates, dtype=float).tolist(), np.asarray(visibility).tolist()):
        flat += [x, y, int(v)]
    return flat


def _check_sample(image_id: str, image: np.ndarray, temperature_c: np.ndarray | None,
                  landmarks: np.ndarray, visibility: np.ndarray, occluder_mask: np.ndarray | None) -> None:
    if not image_id or Path(image_id).name != image_id or image_id.startswith("."):
        raise ValueError(f"image_id must be a plain file stem, got {image_id!r}")
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{image_id}: image must be (H, W) uint8 or uint16, got {image.shape} {image.dtype}")
    if landmarks.shape != (NUM_LANDMARKS, 2) or visibility.shape != (NUM_LANDMARKS,):
        raise ValueError(f"{image_id}: landmarks must be (68, 2) and visibility (68,), "
                         f"got {landmarks.shape} and {visibility.shape}")
    if not np.isin(visibility, (VIS_UNLABELLED, VIS_OCCLUDED, VIS_VISIBLE)).all():
        raise ValueError(f"{image_id}: visibility values must be 0, 1 or 2, got {sorted(set(visibility.tolist()))}")
    if not np.isfinite(landmarks[visibility > VIS_UNLABELLED]).all():
        raise ValueError(f"{image_id}: a labelled landmark has a non-finite coordinate")
    for name, array in (("temperature map", temperature_c), ("occluder mask", occluder_mask)):
        if array is not None and array.shape != image.shape:
            raise ValueError(f"{image_id}: {name} shape {array.shape} differs from the image's {image.shape}")
    if temperature_c is not None and not np.isfinite(temperature_c).all():
        raise ValueError(f"{image_id}: the temperature map holds NaN or inf")
    if occluder_mask is not None and occluder_mask.dtype != np.uint8:
        raise ValueError(f"{image_id}: occluder mask must be uint8, got {occluder_mask.dtype}")


def _write_temperature(path: Path, encoded: np.ndarray) -> None:
    """Write a map already in its file dtype: float32 -> .npy (deg C), uint16 -> .png (centi-Kelvin)."""
    if encoded.dtype == np.float32:
        # np.save given a name appends ".npy" to the temporary name; a handle keeps the name as is.
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, encoded, allow_pickle=False)
    else:
        _save_png(path, encoded)


def _merge_fields(base: dict[str, Any], extra: Mapping[str, Any] | None, reserved: frozenset[str],
                  what: str) -> dict[str, Any]:
    for key, value in (extra or {}).items():
        if key in reserved:
            raise ValueError(f"{what} may not override the reserved field {key!r}")
        base[key] = value
    return base


def write_sample(
    root: str | Path,
    image_id: str,
    subject: str,
    image: np.ndarray,
    temperature_c: np.ndarray | None,
    landmarks: np.ndarray,
    visibility: np.ndarray,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    occluder_mask: np.ndarray | None = None,
    temperature_format: str = "npy",
    image_fields: Mapping[str, Any] | None = None,
    annotation_fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one image's files into the layout and return its JSON entry (without ids).

    Writes ROOT/thermal/<image_id>.png, ROOT/temperature/<image_id>.npy (float32 deg C) or .png
    (uint16 centi-Kelvin), and ROOT/occluders/<image_id>.png, each atomically. Only this image's
    files are touched, so worker processes may call it in parallel; collect the returned entries
    and pass them to `write_annotations` once.

    ``bbox`` (x, y, w, h) is the face box; when None the tight extent of the labelled landmarks is
    stored (the crop adds its margin later). Unlabelled landmarks are stored as (0, 0, 0), the
    COCO convention. ``image_fields`` / ``annotation_fields`` are extra JSON fields (head_pose,
    occlusion_cause, ...); the reader returns them in `FaceRecord.extras`.
    """
    root = Path(root)
    image = np.asarray(image)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    visibility = np.asarray(visibility).astype(np.int64)
    temperature_c = None if temperature_c is None else np.asarray(temperature_c)
    occluder_mask = None if occluder_mask is None else np.asarray(occluder_mask)
    _check_sample(image_id, image, temperature_c, landmarks, visibility, occluder_mask)
    if temperature_format not in ("npy", "png"):
        raise ValueError(f"temperature_format must be 'npy' or 'png', got {temperature_format!r}")
    height, width = image.shape
    if bbox is None:
        bbox = landmark_extent_bbox(landmarks, visibility, width, height) or (0.0, 0.0, 0.0, 0.0)
    bbox = tuple(float(v) for v in bbox)
    if len(bbox) != 4:
        raise ValueError(f"{image_id}: bbox must be (x, y, w, h), got {bbox}")

    # Build (and so validate) the entry before touching the disk: a rejected sample writes nothing.
    file_name = f"{THERMAL_DIR}/{image_id}.png"
    temperature_file = None if temperature_c is None else f"{TEMPERATURE_DIR}/{image_id}.{temperature_format}"
    occluder_file = None if occluder_mask is None else f"{OCCLUDERS_DIR}/{image_id}.png"
    labelled = visibility > VIS_UNLABELLED
    coordinates = np.where(labelled[:, None], landmarks, 0.0)
    image_entry = _merge_fields(
        {"file_name": file_name, "width": int(width), "height": int(height), "subject_id": str(subject),
         "temperature_file": temperature_file, "occluder_mask_file": occluder_file},
        image_fields, _KNOWN_IMAGE_FIELDS, "image_fields")
    annotation_entry = _merge_fields(
        {"category_id": IBUG68_CATEGORY_ID, "keypoints": _flat_keypoints(coordinates, visibility),
         "num_keypoints": int(labelled.sum()), "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0},
        annotation_fields, _KNOWN_ANNOTATION_FIELDS, "annotation_fields")
    entry = json_ready({"image": image_entry, "annotation": annotation_entry})
    encoded_temperature = None
    if temperature_c is not None:
        encoded_temperature = (np.ascontiguousarray(temperature_c, dtype=np.float32) if temperature_format == "npy"
                               else encode_centikelvin(temperature_c))

    _save_png(root / file_name, image)
    if encoded_temperature is not None:
        _write_temperature(root / temperature_file, encoded_temperature)
    if occluder_mask is not None:
        _save_png(root / occluder_file, occluder_mask)
    return entry


def _categories(layout: str) -> list[dict[str, Any]]:
    if layout == "ibug68":
        return [{"id": IBUG68_CATEGORY_ID, "name": "face", "supercategory": "face",
                 "keypoints": list(NAMES), "skeleton": []}]
    categories = [
        {"id": PART_CATEGORY_IDS[name], "name": name, "supercategory": "face",
         "keypoints": [f"{name}_{k + 1}" for k in range(len(indices))], "skeleton": []}
        for name, indices in PARTS
    ]
    categories.append({"id": FACE_CATEGORY_ID, "name": "face", "supercategory": "face",
                       "keypoints": [], "skeleton": []})
    return categories


def _part_annotations(annotation: dict[str, Any], image_id: int, first_id: int) -> list[dict[str, Any]]:
    """Split one 68-point annotation into the per-part annotations plus the face-box annotation."""
    triples = np.asarray(annotation["keypoints"], dtype=float).reshape(NUM_LANDMARKS, 3)
    common = {"image_id": image_id, "bbox": annotation["bbox"], "area": annotation["area"], "iscrowd": 0}
    out = []
    for offset, (name, indices) in enumerate(PARTS):
        part = triples[list(indices)]
        out.append({**common, "id": first_id + offset, "category_id": PART_CATEGORY_IDS[name],
                    "keypoints": _flat_keypoints(part[:, :2], part[:, 2].astype(int)),
                    "num_keypoints": int((part[:, 2] > 0).sum())})
    # The face annotation carries the face box and every per-image annotation field (occlusion
    # causes, 3D landmarks, ...) in iBUG order, so nothing is lost in the parts form.
    face = {key: value for key, value in annotation.items() if key not in ("keypoints", "num_keypoints")}
    face.update(common, id=first_id + len(PARTS), category_id=FACE_CATEGORY_ID, keypoints=[], num_keypoints=0)
    out.append(face)
    return out


def write_annotations(
    root: str | Path,
    entries: list[dict[str, Any]],
    *,
    info: Mapping[str, Any] | None = None,
    layout: str = "ibug68",
) -> Path:
    """Assign ids in the given order and write ROOT/annotations.json atomically.

    ``entries`` are the dicts returned by `write_sample`. Keys are sorted and floats rounded the
    same way every time, so the same entries give byte-identical files.
    """
    if layout not in KEYPOINT_LAYOUTS:
        raise ValueError(f"layout must be one of {KEYPOINT_LAYOUTS}, got {layout!r}")
    root = Path(root)
    images, annotations, seen = [], [], set()
    for index, entry in enumerate(entries, start=1):
        image = dict(entry["image"])
        annotation = dict(entry["annotation"])
        if image["file_name"] in seen:
            raise ValueError(f"two entries write the same image file {image['file_name']!r}")
        seen.add(image["file_name"])
        if len(annotation["keypoints"]) != 3 * NUM_LANDMARKS:
            raise ValueError(f"{image['file_name']}: annotation has {len(annotation['keypoints']) // 3} "
                             f"keypoints, expected {NUM_LANDMARKS}")
        image["id"] = index
        images.append(image)
        if layout == "ibug68":
            annotations.append({**annotation, "id": index, "image_id": index, "category_id": IBUG68_CATEGORY_ID})
        else:
            annotations.extend(_part_annotations(annotation, index, first_id=len(annotations) + 1))
    coco = {"info": dict(info or {}), "images": images, "annotations": annotations,
            "categories": _categories(layout)}
    text = json.dumps(json_ready(coco), sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
    return write_bytes_atomic(root / ANNOTATIONS_FILE, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# What a build wrote: the dataset marker (m3mstl convert) or the generator's own annotations
# --------------------------------------------------------------------------------------------

#: Who may have written a dataset folder that a later build replaces.
DATASET_WRITERS = ("m3mstl convert", "m3mstl synth")
# Leftovers of an interrupted atomic write (`m3mstl.core.fileio.atomic_path`): ours, whatever the marker says.
_ATOMIC_LEFTOVER = re.compile(r"^\..+\.tmp$")


def _files_under(root: Path, entries: Iterable[str]) -> list[str]:
    """Relative POSIX paths of every non-folder entry (files, links, pipes) under `entries` of `root`."""
    import os

    found = []
    for name in entries:
        top = root / name
        if top.is_symlink() or (top.exists() and not top.is_dir()):
            found.append(name)
        elif top.is_dir():
            for folder, subfolders, files in os.walk(top):
                base = Path(folder).relative_to(root)
                found.extend((base / f).as_posix() for f in files)
                found.extend((base / d).as_posix() for d in subfolders if (Path(folder) / d).is_symlink())
    return sorted(found)


def write_dataset_marker(root: str | Path, written_by: str) -> Path:
    """Record in ROOT/.m3mstl-dataset.json that `written_by` wrote the dataset files under ROOT (every
    file of `DATASET_ENTRIES`): a later `convert --overwrite` or `synth` into the folder replaces
    exactly these and refuses to delete anything else."""
    root = Path(root)
    files = [f for f in _files_under(root, DATASET_ENTRIES) if f != DATASET_MARKER]
    return write_json_atomic(root / DATASET_MARKER, {"written_by": written_by, "format": 1, "files": files},
                             indent=None)


def dataset_writer(root: str | Path) -> tuple[str | None, set[str]]:
    """(who wrote the dataset in `root`, the relative paths of the files it wrote): from the marker
    `m3mstl convert` writes, else from annotations.json, when its "info" names the SynthTFD68
    generator (which keeps its datasets to their annotations and image files, and so writes no
    marker) or m3mstl convert (a dataset converted before markers were): the files are then the
    annotations and the files its images list. (None, empty set) for a folder no m3mstl command wrote."""
    root = Path(root)
    marker = root / DATASET_MARKER
    if regular_file_problem(marker) is None:
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
            writer, files = recorded["written_by"], recorded["files"]
            if writer in DATASET_WRITERS and isinstance(files, list) and all(isinstance(f, str) for f in files):
                return writer, {*files, DATASET_MARKER}
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            pass
        return None, set()
    annotations = root / ANNOTATIONS_FILE
    if regular_file_problem(annotations) is not None:
        return None, set()
    try:
        coco = json.loads(annotations.read_text(encoding="utf-8"))
        info = coco.get("info") or {}
        writer = ("m3mstl synth" if info.get("generator") == "SynthTFD68"
                  else "m3mstl convert" if info.get("converted_by") == "m3mstl convert" else None)
        if writer is None:
            return None, set()
        files = {ANNOTATIONS_FILE}
        for image in coco.get("images") or []:
            for key in ("file_name", "temperature_file", "occluder_mask_file"):
                if isinstance(image.get(key), str):
                    files.add(Path(image[key]).as_posix())
        return writer, files
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return None, set()


def foreign_dataset_files(root: str | Path, written: set[str]) -> list[str]:
    """Files under ROOT's dataset entries (annotations.json, thermal/, temperature/, occluders/, the
    marker) that are not among `written`: what replacing the dataset would destroy of someone else's."""
    root = Path(root)
    return [f for f in _files_under(root, DATASET_ENTRIES)
            if f not in written and not _ATOMIC_LEFTOVER.match(Path(f).name)]


def describe_files(files: list[str], limit: int = 3) -> str:
    """'a, b, c and 4 more': a few of `files` for a message."""
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


# --------------------------------------------------------------------------------------------
# Reading: keypoint layouts
# --------------------------------------------------------------------------------------------

_TRAILING_NUMBER = re.compile(r"(\d+)$")
_EXPECTED_PART_SIZES = {name: len(indices) for name, indices in PARTS}


def _canonical_part(name: str) -> str | None:
    """Facial part of a keypoint or category name: 'R_Eye_3' -> 'right_eye', 'eyebrows' -> 'eyebrows'."""
    text = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    text = re.sub(r"_?\d+$", "", text)
    tokens = set(text.split("_"))
    side = "left" if ("left" in text or "l" in tokens) else "right" if ("right" in text or "r" in tokens) else None
    if "jaw" in text or "contour" in text or "chin" in text:
        return "jaw"
    if "brow" in text:  # before "eye": "eyebrow" contains "eye"
        return f"{side}_eyebrow" if side else "eyebrows"
    if "nose" in text or "nostril" in text:
        return "nose"
    if "eye" in text:
        return f"{side}_eye" if side else "eyes"
    if "mouth" in text or "lip" in text:
        return "mouth"
    return None


def part_keypoint_order(categories: list[dict[str, Any]], json_path: Path) -> dict[Any, np.ndarray]:
    """For every part category, the iBUG-68 index of each of its keypoints (in the category's order).

    Raises DatasetError when the part names do not add up to the 68 iBUG points.
    """
    # group -> list of (base-name rank, trailing number, category id, position in category)
    groups: dict[str, list[tuple[int, int, Any, int]]] = defaultdict(list)
    base_rank: dict[str, dict[str, int]] = defaultdict(dict)
    for category in categories:
        names = category.get("keypoints") or []
        if not names or len(names) == NUM_LANDMARKS:
            continue
        for position, name in enumerate(names):
            match = _TRAILING_NUMBER.search(str(name))
            base = str(name)[: match.start()] if match else str(name)
            group = _canonical_part(base) or _canonical_part(str(category.get("name", "")))
            if group is None:
                raise DatasetError(json_path, f"category {category.get('name')!r}: cannot tell which facial "
                                              f"part keypoint {name!r} belongs to")
            rank = base_rank[group].setdefault(base, len(base_rank[group]))
            number = int(match.group(1)) if match else position
            groups[group].append((rank, number, category.get("id"), position))

    for combined, (right, left), size in (("eyebrows", ("right_eyebrow", "left_eyebrow"), 5),
                                          ("eyes", ("right_eye", "left_eye"), 6)):
        if combined in groups and right not in groups and left not in groups:
            items = sorted(groups.pop(combined))
            groups[right], groups[left] = items[:size], items[size:]

    order: dict[Any, np.ndarray] = {}
    if not groups:
        return order  # no part categories: the single-category 68-point layout
    unexpected = sorted(set(groups) - set(_EXPECTED_PART_SIZES))
    if unexpected:
        raise DatasetError(json_path, f"keypoint groups {unexpected} are not facial parts of the iBUG-68 scheme")
    for name, indices in PARTS:
        items = sorted(groups.get(name, []))
        if len(items) != len(indices):
            raise DatasetError(json_path, f"part {name!r} lists {len(items)} keypoints, expected {len(indices)}")
        for ibug_index, (_, _, category_id, position) in zip(indices, items):
            size = len(next(c for c in categories if c.get("id") == category_id)["keypoints"])
            order.setdefault(category_id, np.full(size, -1, dtype=np.int64))[position] = ibug_index
    return order


def _ibug68_category_ids(categories: list[dict[str, Any]]) -> set[Any]:
    return {c.get("id") for c in categories if len(c.get("keypoints") or []) == NUM_LANDMARKS}


# --------------------------------------------------------------------------------------------
# Reading: annotations -> records
# --------------------------------------------------------------------------------------------


@dataclass
class ParsedAnnotations:
    """What `parse_annotations` found: usable records, and every problem with the rest."""

    root: Path
    json_path: Path
    records: list[FaceRecord]
    keypoint_layout: str
    info: dict[str, Any]
    problems: list[tuple[Path, str]] = field(default_factory=list)
    dropped_unlabelled: list[str] = field(default_factory=list)  # image ids with no labelled landmark
    images_listed: int = 0  # image entries in the JSON, usable or not


def resolve_annotations_path(root_or_json: str | Path) -> tuple[Path, Path]:
    """(dataset root, annotations JSON path) for a dataset folder or a path to its JSON file."""
    path = Path(root_or_json).expanduser().resolve()
    if path.is_dir() or path.suffix.lower() != ".json":  # a folder, existing or not
        return path, path / ANNOTATIONS_FILE
    return path.parent, path


def load_annotations_json(json_path: Path) -> dict[str, Any]:
    """The COCO dict of ``json_path``; DatasetError if missing, not JSON, or not COCO-shaped."""
    if not json_path.is_file():
        raise DatasetError(json_path, "annotations file not found")
    problem = regular_file_problem(json_path)
    if problem is not None:
        raise DatasetError(json_path, f"annotations file {problem}")
    try:
        with open(json_path, encoding="utf-8") as handle:
            coco = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(json_path, f"cannot read the annotations as JSON: {error}") from None
    except RecursionError:
        raise DatasetError(json_path, "cannot read the annotations as JSON: nested too deeply (thousands of "
                                      "brackets inside one another); not a COCO file") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("annotations"), list):
        raise DatasetError(json_path, "not a COCO file: expected an object with 'images' and 'annotations' lists")
    return coco


def _resolve_file(root: Path, relative: str, default_dir: str) -> Path:
    """The file an entry names: ROOT/<relative>, else ROOT/<default_dir>/<basename> (the authors' form)."""
    candidate = root / relative
    if candidate.exists():
        return candidate
    fallback = root / default_dir / Path(relative).name
    return fallback if fallback.exists() else candidate


def _index_folder(folder: Path, suffixes: Iterable[str]) -> dict[str, Path]:
    """stem -> path of the files in ``folder`` with one of ``suffixes`` (one listing, not a stat per image)."""
    if not folder.is_dir():
        return {}
    allowed = set(suffixes)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in allowed and not path.name.startswith("."):
            found.setdefault(path.stem, path)
    return found


def _keypoint_triples(values: Any, count: int) -> np.ndarray | None:
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        return None  # text, null or nested values: numpy would quietly parse "12.5"
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or array.size != 3 * count:
        return None
    return array.reshape(count, 3)


def _keypoints_fault(values: Any, count: int) -> str:
    """Why `values` is not `count` keypoint triples, in words."""
    if isinstance(values, list) and len(values) == 3 * count:
        bad = next(v for v in values if not isinstance(v, (int, float)) or isinstance(v, bool))
        return f"keypoints must be numbers, found {bad!r}"
    size = len(values) if isinstance(values, list) else 0
    return f"has {size / 3:g} keypoints, expected {count} ({size} values, not {3 * count})"


def _valid_bbox(value: Any) -> tuple[float, float, float, float] | None:
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        return None
    return box  # type: ignore[return-value]


class _RecordBuilder:
    """Turns one image entry and its annotations into a FaceRecord, collecting problems."""

    def __init__(self, root: Path, json_path: Path, categories: list[dict[str, Any]]) -> None:
        self.root, self.json_path = root, json_path
        self.ibug_ids = _ibug68_category_ids(categories)
        self.part_order = part_keypoint_order(categories, json_path)
        self.temperature_files = _index_folder(root / TEMPERATURE_DIR, TEMPERATURE_SUFFIXES)
        self.occluder_files = _index_folder(root / OCCLUDERS_DIR, (".png",))
        self.problems: list[tuple[Path, str]] = []

    def problem(self, path: Path, message: str) -> None:
        self.problems.append((path, message))

    def _keypoints(self, label: str, annotations: list[dict[str, Any]]) -> tuple[np.ndarray, tuple | None, dict]:
        """Merge the image's annotations into (68, 3) triples, the face box, and extra fields."""
        triples = np.zeros((NUM_LANDMARKS, 3))
        face_box, extras, full_seen = None, {}, 0
        for annotation in annotations:
            values = annotation.get("keypoints") or []
            if not isinstance(values, list):
                self.problem(self.json_path, f"{label}: annotation {annotation.get('id')}: keypoints must be a "
                                             f"list of numbers, got {type(values).__name__}")
                continue
            category_id = annotation.get("category_id")
            if len(values) == 3 * NUM_LANDMARKS or category_id in self.ibug_ids:
                full_seen += 1
                parsed = _keypoint_triples(values, NUM_LANDMARKS)
                if parsed is None:
                    self.problem(self.json_path, f"{label}: annotation {annotation.get('id')}: "
                                                 f"{_keypoints_fault(values, NUM_LANDMARKS)}")
                    continue
                triples = parsed
                face_box = _valid_bbox(annotation.get("bbox")) or face_box
            elif category_id in self.part_order:
                order = self.part_order[category_id]
                parsed = _keypoint_triples(values, len(order))
                if parsed is None:
                    self.problem(self.json_path, f"{label}: part annotation {annotation.get('id')}: "
                                                 f"{_keypoints_fault(values, len(order))}")
                    continue
                triples[order] = parsed
            elif not values:
                face_box = _valid_bbox(annotation.get("bbox")) or face_box  # the keypoint-less face box
            else:
                self.problem(self.json_path, f"{label}: annotation {annotation.get('id')} has {len(values) / 3:g} "
                                             f"keypoints in category {category_id!r}, which is neither a "
                                             f"68-point nor a facial-part category")
                continue
            for key, value in annotation.items():
                if key not in _KNOWN_ANNOTATION_FIELDS:
                    extras.setdefault(key, value)
        if full_seen > 1:
            self.problem(self.json_path, f"{label}: {full_seen} annotations with 68 keypoints, expected one")
        return triples, face_box, extras

    def _valid_triples(self, label: str, triples: np.ndarray) -> bool:
        """COCO visibility flags only, and finite coordinates for every labelled point."""
        visibility = triples[:, 2]
        if not np.isin(visibility, (VIS_UNLABELLED, VIS_OCCLUDED, VIS_VISIBLE)).all():
            found = ", ".join(f"{v:g}" for v in np.unique(visibility))
            self.problem(self.json_path, f"{label}: visibility values {found} are not all COCO 0/1/2")
            return False
        bad = np.flatnonzero((visibility > VIS_UNLABELLED) & ~np.isfinite(triples[:, :2]).all(axis=1))
        if len(bad):
            self.problem(self.json_path, f"{label}: keypoints {bad.tolist()} are labelled but NaN/inf")
            return False
        return True

    def _size(self, image: dict[str, Any], image_path: Path, label: str) -> tuple[int, int] | None:
        try:
            width, height = int(image["width"]), int(image["height"])
            if width > 0 and height > 0:
                return width, height
        except (KeyError, TypeError, ValueError, OverflowError):
            pass
        try:
            if regular_file_problem(image_path) is not None:
                raise OSError("not a regular file")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(image_path) as opened:
                    return opened.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            self.problem(self.json_path, f"{label}: no valid width/height and the image cannot be opened")
            return None

    def _inside(self, name: str, key: str, label: str) -> bool:
        """Whether a file name from the JSON stays inside the dataset folder (no ../, no absolute path)."""
        resolved = (self.root / name).resolve()
        if resolved == self.root or self.root not in resolved.parents:
            self.problem(self.json_path, f"{label}: {key} {name!r} points outside the dataset folder {self.root}")
            return False
        return True

    def _optional_file(self, image: dict[str, Any], key: str, stem: str, index: dict[str, Path],
                       label: str) -> Path | None | bool:
        """The side file an entry names (False when the name is unusable, after reporting it)."""
        if key in image:  # an explicit null means "none", an explicit name is used as given
            value = image[key]
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                self.problem(self.json_path, f"{label}: {key} must be a file name or null, got {value!r}")
                return False
            return self.root / value if self._inside(value, key, label) else False
        return index.get(stem)

    def build(self, image: dict[str, Any], annotations: list[dict[str, Any]]) -> FaceRecord | None:
        file_name = image.get("file_name")
        label = f"image {file_name or '?'} (id {image.get('id')})"
        if not isinstance(file_name, str) or not file_name:
            self.problem(self.json_path, f"image id {image.get('id')}: file_name must be a non-empty string, "
                                         f"got {file_name!r}")
            return None
        if not self._inside(file_name, "file_name", label):
            return None
        stem = Path(file_name).stem
        image_path = _resolve_file(self.root, file_name, THERMAL_DIR)
        triples, face_box, annotation_extras = self._keypoints(label, annotations)
        if not self._valid_triples(label, triples):
            return None
        visibility = triples[:, 2]
        labelled = visibility > VIS_UNLABELLED
        subject = image.get("subject_id", annotation_extras.pop("subject_id", None))
        subject = str(subject) if subject is not None else subject_from_file_name(file_name)
        if subject is None:
            self.problem(self.json_path, f"{label}: no subject_id field and the file name does not follow "
                                         "thermal_<subject>_<a>_<b>")
            return None
        problem = regular_file_problem(image_path)
        if problem is not None:  # a named pipe is reported here and never opened
            self.problem(image_path, "image file missing" if problem == "not found" else f"image {problem}")
            return None
        size = self._size(image, image_path, label)
        if size is None:
            return None
        width, height = size
        landmarks = np.where(labelled[:, None], triples[:, :2], np.nan)
        extras = {k: v for k, v in image.items() if k not in _KNOWN_IMAGE_FIELDS}
        extras.update(annotation_extras)
        fault = _metadata_fault(extras)
        if fault is not None:
            self.problem(self.json_path, f"{label}: {fault}")
            return None
        bbox = face_box
        extras["bbox_source"] = "annotation"
        if bbox is None:
            bbox = landmark_extent_bbox(landmarks, visibility, width, height, margin=BBOX_MARGIN_PX)
            extras["bbox_source"] = "landmarks"
        temperature_path = self._optional_file(image, "temperature_file", stem, self.temperature_files, label)
        occluder_mask_path = self._optional_file(image, "occluder_mask_file", stem, self.occluder_files, label)
        if temperature_path is False or occluder_mask_path is False:
            return None
        return FaceRecord(
            image_id=stem, subject=subject, image_path=image_path, width=width, height=height,
            landmarks=landmarks, visibility=visibility.astype(np.int8), bbox=bbox,
            temperature_path=temperature_path, occluder_mask_path=occluder_mask_path, extras=extras,
        )


def _finite_numbers(value: Any, count: int) -> bool:
    if not isinstance(value, list) or len(value) != count:
        return False
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)


def _metadata_fault(extras: dict[str, Any]) -> str | None:
    """What is wrong with the optional per-image fields the project reads (occluders, head_pose,
    skin_temperature_c), or None. Other extra fields are kept as they are."""
    occluders = extras.get("occluders")
    if occluders is not None and (not isinstance(occluders, list) or not all(
            isinstance(o, dict) and isinstance(o.get("type", ""), str) for o in occluders)):
        return f"'occluders' must be a list of objects with a text 'type', got {occluders!r}"[:300]
    pose = extras.get("head_pose")
    if pose is not None:
        if not isinstance(pose, dict):
            return f"'head_pose' must be an object (yaw, pitch, roll, rotation), got {pose!r}"[:300]
        for key in ("yaw", "pitch", "roll"):
            if pose.get(key) is not None and not _finite_numbers([pose[key]], 1):
                return f"'head_pose.{key}' must be a finite number of degrees, got {pose[key]!r}"[:300]
        rotation = pose.get("rotation")
        if rotation is not None and not (isinstance(rotation, list) and len(rotation) == 3
                                         and all(_finite_numbers(row, 3) for row in rotation)):
            return f"'head_pose.rotation' must be a 3x3 matrix of numbers, got {rotation!r}"[:300]
    skin = extras.get("skin_temperature_c")
    if skin is not None and not (isinstance(skin, list) and len(skin) == NUM_LANDMARKS and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in skin)):
        return f"'skin_temperature_c' must list {NUM_LANDMARKS} numbers (or null), got {skin!r}"[:300]
    return None


def _id_key(value: Any) -> Any:
    """A JSON id as a dict key (lists and objects are not hashable; they match nothing)."""
    return value if isinstance(value, (str, int, float, type(None))) else repr(value)


def parse_annotations(root_or_json: str | Path) -> ParsedAnnotations:
    """Read the annotation JSON into records, collecting (path, problem) pairs instead of stopping.

    Raises DatasetError only when nothing can be read at all (missing or malformed JSON, part
    names that cannot be regrouped into the 68 points).
    """
    root, json_path = resolve_annotations_path(root_or_json)
    coco = load_annotations_json(json_path)
    raw_categories = coco.get("categories")
    if raw_categories is not None and not isinstance(raw_categories, list):
        raise DatasetError(json_path, f"'categories' must be a list, got {raw_categories!r}"[:300])
    categories = [c for c in raw_categories or [] if isinstance(c, dict)]
    builder = _RecordBuilder(root, json_path, categories)
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for annotation in coco["annotations"]:
        if isinstance(annotation, dict):
            by_image[_id_key(annotation.get("image_id"))].append(annotation)
        else:
            builder.problem(json_path, f"annotation entry {annotation!r} is not an object")
    id_counts = Counter(_id_key(image.get("id")) for image in coco["images"] if isinstance(image, dict))
    for image_id, count in sorted(id_counts.items(), key=str):
        if count > 1:  # annotations name images by id: they could not tell these images apart
            builder.problem(json_path, f"image id {image_id!r} is used by {count} image entries; ids must be unique")
    for image_id in sorted(set(by_image) - set(id_counts), key=str):
        builder.problem(json_path, f"{len(by_image[image_id])} annotation(s) name image id {image_id!r}, "
                                   f"which no image entry has")

    records, dropped, seen = [], [], set()
    for image in coco["images"]:
        if not isinstance(image, dict):
            builder.problem(json_path, f"image entry {image!r} is not an object")
            continue
        if id_counts[_id_key(image.get("id"))] > 1:
            continue  # reported above: which annotations belong to which of them is unknowable
        record = builder.build(image, by_image.get(_id_key(image.get("id")), []))
        if record is None:
            continue
        if record.image_id in seen:  # ids are file stems: two entries would share every file
            builder.problem(json_path, f"image {record.image_id!r} is listed more than once")
            continue
        seen.add(record.image_id)
        if not record.labelled.any():
            dropped.append(record.image_id)  # the TFD68 loader skips these too
            continue
        records.append(record)

    if not coco["images"]:
        builder.problem(json_path, "the dataset lists no images")
    elif not records and dropped and len(dropped) == len(coco["images"]):
        builder.problem(json_path, f"none of the {len(dropped)} images has a labelled landmark (all v = 0)")
    elif not records and not builder.problems:
        builder.problem(json_path, "no usable image")
    layout = "parts" if builder.part_order and not builder.ibug_ids else "ibug68"
    info = coco.get("info") if isinstance(coco.get("info"), dict) else {}
    return ParsedAnnotations(root=root, json_path=json_path, records=records, keypoint_layout=layout,
                             info=dict(info), problems=builder.problems, dropped_unlabelled=dropped,
                             images_listed=len(coco["images"]))


# --------------------------------------------------------------------------------------------
# Reading: temperature encoding
# --------------------------------------------------------------------------------------------


def temperature_encoding_of(path: Path) -> str:
    """Encoding a temperature file's suffix implies; DatasetError for an unknown suffix."""
    encoding = TEMPERATURE_SUFFIXES.get(Path(path).suffix.lower())
    if encoding is None:
        raise DatasetError(path, f"unknown temperature map format {Path(path).suffix!r}; expected "
                                 ".npy (deg C) or 16-bit .png/.tif (centi-Kelvin)")
    return encoding


def detect_temperature_encoding(records: list[FaceRecord]) -> tuple[str, list[tuple[Path, str]]]:
    """The dataset's temperature encoding and problems (mixed or unknown encodings).

    With mixed encodings the most common one is returned, with a problem naming a file of
    every other encoding.
    """
    examples: dict[str, Path] = {}
    counts: dict[str, int] = defaultdict(int)
    problems: list[tuple[Path, str]] = []
    for record in records:
        if record.temperature_path is None:
            continue
        try:
            encoding = temperature_encoding_of(record.temperature_path)
        except DatasetError as error:
            problems.append((error.path, error.problem))
            continue
        counts[encoding] += 1
        examples.setdefault(encoding, record.temperature_path)
    if not counts:
        return "none", problems
    main = max(sorted(counts), key=counts.__getitem__)
    for encoding in sorted(counts):
        if encoding != main:
            problems.append((examples[encoding],
                             f"mixed temperature encodings: {counts[encoding]} maps are {encoding}, "
                             f"{counts[main]} are {main} (e.g. {examples[main]})"))
    return main, problems


def _check_temperature_range(path: Path, temperature_c: np.ndarray, encoding: str) -> None:
    finite = temperature_c[np.isfinite(temperature_c)]
    if finite.size == 0:
        return
    low, high = float(finite.min()), float(finite.max())
    lowest, highest = PLAUSIBLE_TEMPERATURE_C
    if low >= lowest and high <= highest:
        return
    hint = ""
    if encoding == "celsius_npy" and low > 150:
        hint = "; this looks like Kelvin, but .npy maps must hold degrees Celsius"
    elif encoding != "celsius_npy":
        hint = "; 16-bit maps must hold centi-Kelvin, round(100 * (T + 273.15))"
    raise DatasetError(path, f"implausible temperatures {low:.2f} .. {high:.2f} deg C (expected within "
                             f"{lowest:g} .. {highest:g}){hint}")


# --------------------------------------------------------------------------------------------
# Loaders of one record's arrays
# --------------------------------------------------------------------------------------------


def _open_image(path: Path, what: str) -> Image.Image:
    problem = regular_file_problem(path)
    if problem == "not found":
        raise DatasetError(path, f"{what} file missing")
    if problem is not None:  # a named pipe would block the read: never opened
        raise DatasetError(path, f"{what} {problem}")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its two size limits; no thermal frame comes near either.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DatasetError(path, f"cannot read the {what}: too many pixels for a thermal image ({error})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise DatasetError(path, f"cannot read the {what}: {error}") from None
    return image


def open_image(path: Path, what: str = "image") -> Image.Image:
    """An image file opened and decoded (Pillow), or a DatasetError naming it: missing, not a regular
    file (never opened), a decompression bomb, truncated or not an image."""
    return _open_image(path, what)


def _check_shape(path: Path, array: np.ndarray, record: FaceRecord, what: str) -> None:
    if array.shape != (record.height, record.width):
        raise DatasetError(path, f"{what} is {array.shape[1]}x{array.shape[0]} but its image is "
                                 f"{record.width}x{record.height}")


def read_image_file(path: Path) -> np.ndarray:
    """A thermal image file as (H, W): uint8 for 8-bit files, float32 in [0, 1] for 16-bit or float
    ones. The one decoder of thermal images: training, evaluation and `m3mstl predict` all read
    through it, so a file means the same to all of them.

    Colour files (a colour-mapped thermal view) are converted to luminance.
    """
    return decode_pil_image(_open_image(path, "image"))


def decode_pil_image(image: Image.Image) -> np.ndarray:
    """An opened (and loaded) image or TIFF page as `read_image_file` returns it: the one place
    that decides what a pixel value means, for single files and multi-page sequences alike."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image).astype(np.float32)
        array /= 65535.0 if array.max(initial=0) <= 65535 else array.max()
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
    else:
        array = np.asarray(image if image.mode == "L" else image.convert("L"), dtype=np.uint8)
    return array


SINGLE_CHANNEL_MODES = ("1", "L", "P", "I;16", "I;16B", "I;16L", "I", "F")


def is_colour_image(path: Path) -> bool:
    """True when the file holds colour rather than one channel: `read_image_file` turns it into
    luminance, which callers should say out loud. A three-channel file whose channels are all equal
    (a grey image saved as RGB, as many tools do) is not colour: its luminance is the image itself."""
    with _open_image(path, "image") as image:
        if image.mode in SINGLE_CHANNEL_MODES:
            return False
        if image.mode == "LA":
            return False
        pixels = np.asarray(image.convert("RGB"))
    return not (np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2]))


def image_to_unit_range(image: np.ndarray) -> np.ndarray:
    """A decoded image (`read_image_file`) as float32 in [0, 1]: 8-bit values / 255."""
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def load_image(record: FaceRecord) -> np.ndarray:
    """The record's thermal image (see `read_image_file`), checked against the annotated size."""
    array = read_image_file(record.image_path)
    _check_shape(record.image_path, array, record, "image")
    return array


def read_temperature_file(path: Path) -> np.ndarray:
    """A temperature map file as float32 degrees C, whatever its encoding (checked for plausibility)."""
    path = Path(path)
    encoding = temperature_encoding_of(path)
    if encoding == "celsius_npy":
        problem = regular_file_problem(path)
        if problem is not None:
            raise DatasetError(path, "temperature map file missing" if problem == "not found"
                               else f"temperature map {problem}")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise DatasetError(path, f"cannot read the temperature map: {error}") from None
        if not np.issubdtype(array.dtype, np.floating):
            raise DatasetError(path, f".npy temperature maps must be float degrees Celsius, found {array.dtype}")
        temperature = array.astype(np.float32)
    else:
        image = _open_image(path, "temperature map")
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise DatasetError(path, f"{image.mode!r} image cannot hold centi-Kelvin; expected 16-bit grayscale")
        temperature = decode_centikelvin(np.asarray(image))
    if temperature.ndim != 2:
        raise DatasetError(path, f"temperature map must be 2-D (H, W), found shape {temperature.shape}")
    _check_temperature_range(path, temperature, encoding)
    return temperature


def load_temperature(record: FaceRecord) -> np.ndarray:
    """The record's temperature map as float32 (H, W) degrees C; DatasetError if it has none."""
    if record.temperature_path is None:
        raise DatasetError(record.image_path, "this image has no temperature map")
    temperature = read_temperature_file(record.temperature_path)
    _check_shape(record.temperature_path, temperature, record, "temperature map")
    return temperature


def load_occluder_mask(record: FaceRecord) -> np.ndarray | None:
    """The record's occluder bitmask as uint8 (H, W), or None when it has none."""
    if record.occluder_mask_path is None:
        return None
    image = _open_image(record.occluder_mask_path, "occluder mask")
    array = np.asarray(image)
    if array.ndim != 2 or (array.dtype != np.uint8 and array.dtype != bool and array.max(initial=0) > 255):
        raise DatasetError(record.occluder_mask_path, f"occluder mask must be a single-channel 8-bit bitmask, "
                                                      f"found mode {image.mode!r}")
    array = array.astype(np.uint8)
    _check_shape(record.occluder_mask_path, array, record, "occluder mask")
    return array


# --------------------------------------------------------------------------------------------
# read_dataset
# --------------------------------------------------------------------------------------------


def _report(problems: list[tuple[Path, str]], strict: bool, root: Path) -> None:
    if not problems:
        return
    if strict:
        path, message = problems[0]
        more = f" (and {len(problems) - 1} more problems; run `m3mstl validate {root}`)" if len(problems) > 1 else ""
        raise DatasetError(path, message + more)
    for path, message in problems:
        warnings.warn(f"{path}: {message} (skipped)", DatasetWarning, stacklevel=3)


def _drop_missing_side_files(records: list[FaceRecord]) -> list[tuple[Path, str]]:
    """Problems for named temperature maps / occluder masks that do not exist; their paths become None."""
    problems = []
    for record in records:
        if record.temperature_path is not None and not record.temperature_path.is_file():
            problems.append((record.temperature_path, "temperature map missing"))
            record.temperature_path = None
        if record.occluder_mask_path is not None and not record.occluder_mask_path.is_file():
            problems.append((record.occluder_mask_path, "occluder mask missing"))
            record.occluder_mask_path = None
    return problems


def read_dataset(root: str | Path, *, strict: bool = True) -> FaceDataset:
    """Load a TFD68-layout folder (or its annotations JSON) into a FaceDataset.

    strict=True raises DatasetError naming the first bad file; strict=False skips bad images with
    a DatasetWarning each (a missing temperature map or occluder mask only removes that file).
    Images with no labelled landmark are always dropped (as the TFD68 baseline does) and counted
    in a warning and in ``info["loader_report"]``. The temperature encoding is detected from the
    files and one map is read to check its values are plausible; `m3mstl validate` reads them all.
    """
    parsed = parse_annotations(root)
    _report(parsed.problems, strict, parsed.root)
    _report(_drop_missing_side_files(parsed.records), strict, parsed.root)
    encoding, encoding_problems = detect_temperature_encoding(parsed.records)
    _report(encoding_problems, strict, parsed.root)
    probe = next((r for r in parsed.records if r.temperature_path is not None), None)
    if probe is not None:
        try:
            load_temperature(probe)
        except DatasetError as error:
            _report([(error.path, error.problem)], strict, parsed.root)
    if parsed.dropped_unlabelled:
        warnings.warn(f"{parsed.json_path}: dropped {len(parsed.dropped_unlabelled)} images with no labelled "
                      f"landmark (e.g. {parsed.dropped_unlabelled[0]})", DatasetWarning, stacklevel=2)
    info = dict(parsed.info)
    info["loader_report"] = {"annotations_file": parsed.json_path.as_posix(),
                             "dropped_unlabelled": len(parsed.dropped_unlabelled),
                             "skipped_with_problems": len(parsed.problems)}
    return FaceDataset(root=parsed.root, records=parsed.records, temperature_encoding=encoding,
                       keypoint_layout=parsed.keypoint_layout, info=info)
