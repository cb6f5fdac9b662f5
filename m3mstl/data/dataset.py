"""The torch Dataset of face crops: crop/resize, an on-disk crop cache, landmark-aware augmentation.

Every sample is a dict, and after the default collate this is the batch contract the models and
the trainer rely on (S = input_size, B = batch size):

    image             (B, 1, S, S) float32 in [0, 1]
    temperature       (B, 1, S, S) float32 deg C aligned with the crop (zeros when absent)
    has_temperature   (B,) bool
    landmarks         (B, 68, 2) float32, (x / S, y / S) in the continuous convention; 0 where unlabelled
    visibility        (B, 68) int64 COCO v (0 unlabelled, 1 occluded, 2 visible)
    occluded          (B, 68) float32, v == 1
    labelled          (B, 68) bool, v > 0
    occluder_mask     (B, 1, S, S) float32 in {0, 1}: any occluder
    has_occluder_mask (B,) bool
    pose              (B, 3) float32 yaw, pitch, roll in degrees (zeros when absent)
    rotation          (B, 3, 3) float32 head rotation (identity when absent)
    has_pose          (B,) bool
    index             (B,) int64 record index in the FaceDataset
    image_id, subject lists of str
    crop_to_image     (B, 2, 3) float32 A with [x_img, y_img] = A @ [x_crop_px, y_crop_px, 1]

Crop: the face box (the annotation's bbox, else the labelled landmarks' extent) grown by
``margin_px`` original pixels on every side, made square about its centre (``square_crop=True``)
or kept as is and stretched to a square (``square_crop=False``, the TFD68 baseline), then resized
to S x S with area averaging (PIL BOX) when shrinking and bilinear when enlarging. Parts of the
box outside the image read as 0 in the image and as the nearest edge value in the temperature map.

Augmentation draws its random numbers from (seed, epoch, record index), so a sample is the same
whatever the number of workers or the order of the batches. The epoch comes either from
`set_epoch` (call it before each epoch) or with the index itself: ``dataset[(epoch, position)]``,
which is what `EpochSampler` yields, so that persistent workers (whose copy of the dataset never
sees a later `set_epoch`) still draw each epoch's augmentation.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from m3mstl.data.coco import image_to_unit_range, load_image, load_occluder_mask, load_temperature
from m3mstl.data.errors import DatasetError
from m3mstl.data.records import VIS_OCCLUDED, VIS_UNLABELLED, FaceDataset, FaceRecord
from m3mstl.core.landmarks import MIRROR, NUM_LANDMARKS
from m3mstl.core.pose import euler_from_rotation, flip_rotation, rotation_from_euler

CACHE_FORMAT_VERSION = 1  # bump when the cached crops would change for the same inputs


@dataclass(frozen=True)
class AugmentConfig:
    """Random training augmentation. Every entry can be switched off (0, or a range of width 0).

    Geometric (one affine applied to image, temperature and occluder mask alike):
    ``scale_range`` zoom factor range, ``rotation_deg`` maximum in-plane rotation (either way),
    ``translation_frac`` maximum shift as a fraction of the crop side, ``hflip_prob`` horizontal
    flip probability. Photometric (image only, never the temperature): ``noise_sigma`` standard
    deviation of additive Gaussian sensor noise on the [0, 1] image, ``blur_sigma_range`` Gaussian
    blur sigma range in crop pixels (defocus), ``polarity_inversion_prob`` probability of turning
    white-hot into black-hot (1 - x).

    ``box_jitter`` (off by default) makes training independent of which face box the crop came
    from (landmark extent, a detector's head box): the box's side is scaled by a factor in
    [1 / (1 + j), 1 + j] and its centre moved by up to j / 2 of the side either way, on top of
    the zoom and shift above.
    """

    scale_range: tuple[float, float] = (0.9, 1.1)
    rotation_deg: float = 15.0
    translation_frac: float = 0.05
    hflip_prob: float = 0.5
    noise_sigma: float = 0.01
    blur_sigma_range: tuple[float, float] = (0.0, 0.8)
    polarity_inversion_prob: float = 0.0
    box_jitter: float = 0.0

    @classmethod
    def off(cls) -> AugmentConfig:
        """A config that changes nothing (useful as a base for switching one thing on)."""
        return cls(scale_range=(1.0, 1.0), rotation_deg=0.0, translation_frac=0.0, hflip_prob=0.0,
                   noise_sigma=0.0, blur_sigma_range=(0.0, 0.0), polarity_inversion_prob=0.0)


# --------------------------------------------------------------------------------------------
# Crop geometry
# --------------------------------------------------------------------------------------------


#: The face boxes a crop can be made around (`DataConfig.face_box`).
FACE_BOXES = ("annotation", "head", "detector")
#: Where `attach_detector_boxes` puts each record's detector box.
DETECTOR_BOX_KEY = "detector_bbox"


def face_box(record: FaceRecord, kind: str = "annotation") -> tuple[float, float, float, float]:
    """(x, y, w, h) of the face before the margin.

    kind "annotation": the annotated box, else the landmark extent. A box the loader derived from
    landmarks already holds the TFD68 loader's 5 px margin, so it is not used here: the crop adds
    its own margin to the plain extent instead of adding it twice.
    kind "head": the visible head (`head_bbox`, what SynthTFD68 full frames carry), the box a face
    detector returns; a record without one is an error naming its image.
    kind "detector": the box `m3mstl.detection.rule_based` found for this face (`attach_detector_boxes` stores it).
    """
    if kind == "detector":
        box = record.extras.get(DETECTOR_BOX_KEY)
        if box is None:
            raise DatasetError(record.image_path, "data.face_box='detector' needs the detector's box: prepare the "
                                                  "dataset with m3mstl.data.dataset.attach_detector_boxes")
        return tuple(float(v) for v in box)  # type: ignore[return-value]
    if kind == "head":
        head = record.extras.get("head_bbox")
        if head is None or len(head) != 4 or not np.isfinite(np.asarray(head, dtype=float)).all():
            raise DatasetError(record.image_path, "data.face_box='head' needs a head box (head_bbox, x y w h) in "
                                                  f"the annotation, found {head!r}; generate full frames with "
                                                  "`m3mstl synth --full-frame` or train with face_box='annotation'")
        return tuple(float(v) for v in head)  # type: ignore[return-value]
    if kind != "annotation":
        raise ValueError(f"unknown face box {kind!r}; choose from {FACE_BOXES}")
    if record.bbox is not None and record.extras.get("bbox_source", "annotation") == "annotation":
        return tuple(float(v) for v in record.bbox)  # type: ignore[return-value]
    points = record.landmarks[record.labelled]
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        return (0.0, 0.0, float(record.width), float(record.height))
    low, high = points.min(axis=0), points.max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


def attach_detector_boxes(dataset: FaceDataset, cache_dir: Path | None = None, progress: bool = False) -> dict:
    """Run the thermal face detector (`m3mstl.detection.rule_based`) on every record's temperature map and store the
    detection that best overlaps the record's true face box (its `head_bbox`, else its `bbox`) in
    `extras["detector_bbox"]`: the boxes a model with `data.face_box = "detector"` trains on, the same
    kind `m3mstl predict` gives it. A face the detector misses keeps its true box there (counted in
    the returned summary; `extras["detector_bbox_found"]` says which). Boxes are cached in
    `cache_dir` by the dataset's fingerprint and `detect.DETECTOR_VERSION` (which is also in the
    run id of such runs). `ThermalFaceDataset(face_box="detector")` calls it when its records lack
    the boxes. Returns {"faces", "found", "mean_iou"}."""
    from m3mstl.data.coco import load_temperature
    from m3mstl.data.fingerprint import data_fingerprint
    from m3mstl.detection.rule_based import DETECTOR_VERSION, detect_faces
    from m3mstl.detection.base import match_detections
    from m3mstl.core.fileio import write_json_atomic

    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / f"detector-boxes-v{DETECTOR_VERSION}-{data_fingerprint(dataset.root)}.json"
    boxes: dict[str, Any] = json.loads(cached.read_text()) if cached is not None and cached.is_file() else {}
    missing = [r for r in dataset.records if r.image_id not in boxes]
    for record in tqdm(missing, desc="detect", unit="frame", disable=not progress):
        truth = record.extras.get("head_bbox") or face_box(record)
        (value, match), = match_detections([tuple(truth)], detect_faces(load_temperature(record)))
        boxes[record.image_id] = {"box": list(match.box) if match is not None else [float(v) for v in truth],
                                  "found": match is not None, "iou": float(value)}
    if missing and cached is not None:
        write_json_atomic(cached, boxes)
    for record in dataset.records:
        record.extras[DETECTOR_BOX_KEY] = boxes[record.image_id]["box"]
        record.extras["detector_bbox_found"] = boxes[record.image_id]["found"]
    found = [boxes[r.image_id]["found"] for r in dataset.records]
    return {"faces": len(found), "found": int(sum(found)),
            "mean_iou": float(np.mean([boxes[r.image_id]["iou"] for r in dataset.records])) if found else float("nan")}


def crop_box(record: FaceRecord, margin_px: float = 5.0, square: bool = True,
             kind: str = "annotation", margin_fraction: float = 0.0) -> tuple[float, float, float, float]:
    """(x0, y0, w, h) of the region to crop, in original image pixels (may extend past the image)."""
    return expand_box(face_box(record, kind), margin_px, square, margin_fraction)


def expand_box(box: tuple[float, float, float, float], margin_px: float = 5.0,
               square: bool = True, margin_fraction: float = 0.0) -> tuple[float, float, float, float]:
    """A face box (x, y, w, h) grown by the margin (`margin_px` plus `margin_fraction` of its larger
    side, on every side) and, when `square`, squared about its centre: the crop region used in
    training and by `m3mstl predict`."""
    x, y, w, h = box
    margin = margin_px + margin_fraction * max(w, h)
    x, y, w, h = x - margin, y - margin, w + 2 * margin, h + 2 * margin
    if square:
        side = max(w, h)
        x, y, w, h = x + (w - side) / 2, y + (h - side) / 2, side, side
    # A degenerate box (a single labelled point) would divide by zero later.
    return (x, y, max(w, 1.0), max(h, 1.0))


def crop_affine(box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The (2, 3) map from crop pixels (S x S) to original image pixels for a crop box."""
    x0, y0, w, h = box
    return np.array([[w / size, 0.0, x0], [0.0, h / size, y0]])


def resample_region(array: np.ndarray, box: tuple[float, float, float, float], size: int, *,
                    nearest: bool = False, pad: str = "constant") -> np.ndarray:
    """Resample the continuous region ``box`` of a 2-D array onto a size x size grid.

    Output pixel (i, j) covers the source region the affine `crop_affine` maps it onto, exactly:
    PIL's resize accepts a fractional source box. Regions outside the array are padded first
    (``pad`` = "constant" for zeros, "edge" to repeat the border).
    """
    height, width = array.shape
    x0, y0, w, h = box
    left, top = max(0, int(np.ceil(-x0))), max(0, int(np.ceil(-y0)))
    right, bottom = max(0, int(np.ceil(x0 + w - width))), max(0, int(np.ceil(y0 + h - height)))
    if left or top or right or bottom:
        array = np.pad(array, ((top, bottom), (left, right)), mode=pad)
    source_box = (x0 + left, y0 + top, x0 + left + w, y0 + top + h)
    if nearest:
        resample = Image.Resampling.NEAREST
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    else:
        # Area averaging when shrinking (the baseline's INTER_AREA); BOX would be nearest-like when enlarging.
        shrinking = w >= size and h >= size
        resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32))  # mode "F"
    return np.asarray(image.resize((size, size), resample=resample, box=source_box))


@dataclass
class Crop:
    """One record's crop before augmentation."""

    image: np.ndarray               # (S, S) float32 in [0, 1]
    temperature: np.ndarray | None  # (S, S) float32 deg C
    occluder_mask: np.ndarray | None  # (S, S) uint8 bitmask


def make_crop(record: FaceRecord, box: tuple[float, float, float, float], size: int) -> Crop:
    """Read a record's files and resample the crop box to size x size."""
    scaled = image_to_unit_range(load_image(record))
    image_crop = np.clip(resample_region(scaled, box, size), 0.0, 1.0)
    temperature = None
    if record.temperature_path is not None:
        temperature = resample_region(load_temperature(record), box, size, pad="edge")
    mask = load_occluder_mask(record)
    mask_crop = None if mask is None else resample_region(mask, box, size, nearest=True)
    return Crop(image_crop, temperature, mask_crop)


# --------------------------------------------------------------------------------------------
# Pose of a record
# --------------------------------------------------------------------------------------------


def record_pose(record: FaceRecord) -> tuple[np.ndarray, np.ndarray, bool]:
    """(yaw/pitch/roll degrees (3,), rotation (3, 3), present) from extras["head_pose"]."""
    pose = record.extras.get("head_pose")
    if not isinstance(pose, dict):
        return np.zeros(3), np.eye(3), False
    if pose.get("rotation") is not None:
        rotation = np.asarray(pose["rotation"], dtype=float).reshape(3, 3)
        if all(pose.get(k) is not None for k in ("yaw", "pitch", "roll")):
            angles = np.array([pose["yaw"], pose["pitch"], pose["roll"]], dtype=float)
        else:
            angles = euler_from_rotation(rotation)
        return angles, rotation, True
    if all(pose.get(k) is not None for k in ("yaw", "pitch", "roll")):
        angles = np.array([pose["yaw"], pose["pitch"], pose["roll"]], dtype=float)
        return angles, rotation_from_euler(*angles), True
    return np.zeros(3), np.eye(3), False


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


@dataclass
class _Draw:
    """The random numbers of one augmentation, drawn in a fixed order."""

    flip: bool
    scale: float
    angle_deg: float
    shift: np.ndarray
    invert: bool
    blur_sigma: float
    noise_seed: int

    @classmethod
    def sample(cls, config: AugmentConfig, rng: np.random.Generator, size: int) -> _Draw:
        # Every number is drawn even when its augmentation is off, so switching one on or off
        # leaves the others' draws unchanged.
        flip = rng.random() < config.hflip_prob
        scale = rng.uniform(*config.scale_range)
        angle = rng.uniform(-config.rotation_deg, config.rotation_deg)
        shift = rng.uniform(-config.translation_frac, config.translation_frac, size=2) * size
        invert = rng.random() < config.polarity_inversion_prob
        blur = rng.uniform(*config.blur_sigma_range)
        noise_seed = int(rng.integers(2**31))
        # Drawn last, so the draws above are the same with box jitter on or off.
        jitter = float(config.box_jitter)
        box_side = rng.uniform(1.0 / (1.0 + jitter), 1.0 + jitter)
        box_shift = rng.uniform(-0.5 * jitter, 0.5 * jitter, size=2) * size
        # A box `box_side` times larger shows the face that many times smaller.
        return cls(bool(flip), float(scale / box_side), float(angle), shift + box_shift, bool(invert), float(blur),
                   noise_seed)

    def is_geometric_identity(self) -> bool:
        return not self.flip and self.scale == 1.0 and self.angle_deg == 0.0 and not self.shift.any()


def augmentation_matrix(size: int, flip: bool, scale: float, angle_deg: float, shift: np.ndarray) -> np.ndarray:
    """3x3 map from crop pixels to augmented pixels: flip, then zoom and rotate about the centre, then shift.

    Positive angles turn the content counter-clockwise on screen (image y points down).
    """
    centre = size / 2.0
    flip_matrix = np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if flip else np.eye(3)
    a = np.deg2rad(angle_deg)
    turn = scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    about_centre = np.eye(3)
    about_centre[:2, :2] = turn
    about_centre[:2, 2] = centre + np.asarray(shift) - turn @ [centre, centre]
    return about_centre @ flip_matrix


def sampling_grid(inverse: np.ndarray, size: int) -> torch.Tensor:
    """grid_sample grid for which output pixel q reads the source point inverse @ q (continuous coords)."""
    to_unit = np.array([[2.0 / size, 0.0, -1.0], [0.0, 2.0 / size, -1.0], [0.0, 0.0, 1.0]])
    theta = (to_unit @ inverse @ np.linalg.inv(to_unit))[:2]
    return F.affine_grid(torch.from_numpy(theta).float()[None], [1, 1, size, size], align_corners=False)


def warp(array: np.ndarray, grid: torch.Tensor, *, mode: str, padding: str) -> np.ndarray:
    """Resample an (S, S) array along a `sampling_grid` (one grid serves image, temperature and mask)."""
    source = torch.from_numpy(np.array(array, dtype=np.float32))[None, None]  # a writable copy
    return F.grid_sample(source, grid, mode=mode, padding_mode=padding, align_corners=False)[0, 0].numpy()


# --------------------------------------------------------------------------------------------
# The on-disk crop cache
# --------------------------------------------------------------------------------------------


def _file_signature(path: Path | None) -> list[Any]:
    if path is None:
        return [None]
    try:
        stat = os.stat(path)
    except OSError:
        return [str(path), None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def cache_key(dataset: FaceDataset, indices: np.ndarray, input_size: int, margin_px: float,
              square_crop: bool, face_box_kind: str = "annotation", margin_fraction: float = 0.0) -> str:
    """Hash of everything the cached crops depend on: files (path, size, mtime), boxes, settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_FORMAT_VERSION, int(input_size), float(margin_px), bool(square_crop)]).encode())
    for index in indices:
        record = dataset.records[int(index)]
        box = crop_box(record, margin_px, square_crop, face_box_kind, margin_fraction)
        parts = [record.image_id, _file_signature(record.image_path), _file_signature(record.temperature_path),
                 _file_signature(record.occluder_mask_path), [round(v, 6) for v in box]]
        digest.update(json.dumps(parts).encode())
    return digest.hexdigest()[:20]


class CropCache:
    """Crops of one split in a few .npy memmaps: row k holds the k-th sample of the split.

    ``filled.npy`` marks finished rows; a row is marked after its data is written, so a reader (in
    any worker process) either sees a complete row or computes it again.
    """

    def __init__(self, folder: Path, count: int, size: int, with_temperature: bool, with_mask: bool,
                 meta: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.shapes = {"image": ((count, size, size), np.float16), "filled": ((count,), np.uint8)}
        if with_temperature:
            self.shapes["temperature"] = ((count, size, size), np.float32)
        if with_mask:
            self.shapes["occluder"] = ((count, size, size), np.uint8)
        if not (self.folder / "meta.json").is_file():
            self._create(meta)
        self._arrays: dict[str, np.memmap] | None = None

    def _create(self, meta: dict[str, Any]) -> None:
        # Build in a temporary sibling and rename: a concurrent or interrupted creation never
        # leaves a half-made cache under the real name.
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=f".{self.folder.name}."))
        for name, (shape, dtype) in self.shapes.items():
            np.lib.format.open_memmap(staging / f"{name}.npy", mode="w+", dtype=dtype, shape=shape).flush()
        (staging / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        try:
            os.replace(staging, self.folder)
        except OSError:  # another process created it first
            shutil.rmtree(staging, ignore_errors=True)

    @property
    def arrays(self) -> dict[str, np.memmap]:
        if self._arrays is None:
            self._arrays = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r+") for name in self.shapes}
        return self._arrays

    def get(self, row: int) -> Crop | None:
        arrays = self.arrays
        if not arrays["filled"][row]:
            return None
        return Crop(np.asarray(arrays["image"][row], dtype=np.float32),
                    np.array(arrays["temperature"][row]) if "temperature" in arrays else None,
                    np.array(arrays["occluder"][row]) if "occluder" in arrays else None)

    def put(self, row: int, crop: Crop) -> None:
        arrays = self.arrays
        arrays["image"][row] = crop.image
        if "temperature" in arrays and crop.temperature is not None:
            arrays["temperature"][row] = crop.temperature
        if "occluder" in arrays and crop.occluder_mask is not None:
            arrays["occluder"][row] = crop.occluder_mask
        arrays["filled"][row] = 1

    def filled_count(self) -> int:
        return int(np.count_nonzero(self.arrays["filled"]))

    def __getstate__(self) -> dict[str, Any]:
        # Memmaps would be pickled as whole arrays (spawned workers): reopen them in the worker.
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state


# --------------------------------------------------------------------------------------------
# The Dataset
# --------------------------------------------------------------------------------------------


class ThermalFaceDataset(Dataset):
    """Face crops of the records ``indices`` of a FaceDataset, as dicts of tensors (module docstring)."""

    def __init__(self, dataset: FaceDataset, indices: Any, input_size: int, *,
                 augment: AugmentConfig | None = None, margin_px: float = 5.0, square_crop: bool = True,
                 cache_dir: Path | None = None, seed: int = 0, face_box: str = "annotation",
                 margin_fraction: float = 0.0) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(dataset)):
            raise IndexError(f"indices must lie in 0..{len(dataset) - 1}")
        if input_size < 1:
            raise ValueError(f"input_size must be positive, got {input_size}")
        self.input_size = int(input_size)
        self.augment = augment
        self.margin_px = float(margin_px)
        self.square_crop = bool(square_crop)
        self.seed = int(seed)
        self.epoch = 0
        self.face_box = face_box
        self.margin_fraction = float(margin_fraction)
        if face_box == "detector" and any(DETECTOR_BOX_KEY not in dataset.records[i].extras for i in self.indices):
            # Once per dataset (the boxes go on its records), from the cache when it holds them.
            attach_detector_boxes(dataset, cache_dir, progress=True)
        self.boxes = [crop_box(dataset.records[i], self.margin_px, self.square_crop, face_box, self.margin_fraction)
                      for i in self.indices]
        self.cache: CropCache | None = None
        if cache_dir is not None:
            key = cache_key(dataset, self.indices, self.input_size, self.margin_px, self.square_crop, face_box,
                            self.margin_fraction)
            records = [dataset.records[i] for i in self.indices]
            meta = {"version": CACHE_FORMAT_VERSION, "root": str(dataset.root), "input_size": self.input_size,
                    "margin_px": self.margin_px, "square_crop": self.square_crop, "face_box": face_box,
                    "margin_fraction": self.margin_fraction,
                    "image_ids": [r.image_id for r in records]}
            self.cache = CropCache(Path(cache_dir) / key, len(self.indices), self.input_size,
                                   with_temperature=any(r.temperature_path is not None for r in records),
                                   with_mask=any(r.occluder_mask_path is not None for r in records), meta=meta)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of an epoch (call before iterating a loader)."""
        self.epoch = int(epoch)

    def crop(self, position: int) -> Crop:
        """The un-augmented crop of sample ``position``, from the cache when it holds it."""
        if self.cache is not None:
            cached = self.cache.get(position)
            if cached is not None:
                return cached
        record = self.dataset.records[int(self.indices[position])]
        crop = make_crop(record, self.boxes[position], self.input_size)
        if self.cache is not None:
            self.cache.put(position, crop)
            crop = self.cache.get(position)  # return what later epochs will read (float16 image)
        return crop

    def warm_cache(self, progress: bool = True) -> None:
        """Fill the cache now (with a progress bar) instead of during the first epoch."""
        if self.cache is None:
            return
        filled = self.cache.arrays["filled"]
        missing = np.flatnonzero(filled == 0)
        for position in tqdm(missing, desc="caching crops", disable=not progress or len(missing) == 0):
            self.crop(int(position))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        # (epoch, position) from EpochSampler, or a bare position read at the epoch set_epoch chose.
        epoch, position = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (self.epoch, int(key))
        index = int(self.indices[position])
        record = self.dataset.records[index]
        size = self.input_size
        crop = self.crop(position)
        image = crop.image
        # Per record, not per cache: a split's cache holds a temperature array as soon as one record has one.
        has_temperature = record.temperature_path is not None and crop.temperature is not None
        has_mask = record.occluder_mask_path is not None and crop.occluder_mask is not None
        temperature = crop.temperature if has_temperature else np.zeros((size, size), np.float32)
        mask = crop.occluder_mask if has_mask else np.zeros((size, size), np.uint8)

        to_image = np.vstack([crop_affine(self.boxes[position], size), [0.0, 0.0, 1.0]])
        labelled = record.labelled
        points = np.zeros((NUM_LANDMARKS, 2))
        points[labelled] = (record.landmarks[labelled] - to_image[:2, 2]) / np.diag(to_image)[:2]
        visibility = record.visibility.astype(np.int64)
        angles, rotation, has_pose = record_pose(record)

        if self.augment is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            draw = _Draw.sample(self.augment, rng, size)
            if not draw.is_geometric_identity():
                forward = augmentation_matrix(size, draw.flip, draw.scale, draw.angle_deg, draw.shift)
                inverse = np.linalg.inv(forward)
                grid = sampling_grid(inverse, size)
                image = warp(image, grid, mode="bilinear", padding="zeros")
                if has_temperature:
                    temperature = warp(temperature, grid, mode="bilinear", padding="border")
                if has_mask:
                    mask = warp(mask, grid, mode="nearest", padding="zeros")
                points[labelled] = points[labelled] @ forward[:2, :2].T + forward[:2, 2]
                to_image = to_image @ inverse
                if draw.flip:  # the subject's right features are now on the other side: relabel
                    points, visibility, labelled = points[MIRROR], visibility[MIRROR], labelled[MIRROR]
                    rotation = flip_rotation(rotation)
                if draw.angle_deg and has_pose:
                    # An on-screen counter-clockwise turn is a turn about the camera axis: more roll.
                    rotation = rotation_from_euler(0.0, 0.0, draw.angle_deg) @ rotation
                if draw.flip or draw.angle_deg:
                    angles = euler_from_rotation(rotation) if has_pose else angles
            image = self._photometric(image, draw)

        points[~labelled] = 0.0
        return {
            # np.array copies: cached rows are read-only memmap views, and tensors must own their data.
            "image": torch.from_numpy(np.array(image, dtype=np.float32))[None],
            "temperature": torch.from_numpy(np.array(temperature, dtype=np.float32))[None],
            "has_temperature": has_temperature,
            "landmarks": torch.from_numpy((points / size).astype(np.float32)),
            "visibility": torch.from_numpy(visibility),
            "occluded": torch.from_numpy((visibility == VIS_OCCLUDED).astype(np.float32)),
            "labelled": torch.from_numpy(visibility > VIS_UNLABELLED),
            "occluder_mask": torch.from_numpy((np.asarray(mask) > 0).astype(np.float32))[None],
            "has_occluder_mask": has_mask,
            "pose": torch.tensor(angles, dtype=torch.float32),
            "rotation": torch.tensor(rotation, dtype=torch.float32),
            "has_pose": has_pose,
            "index": torch.tensor(index, dtype=torch.int64),
            "image_id": record.image_id,
            "subject": record.subject,
            "crop_to_image": torch.from_numpy(to_image[:2].astype(np.float32)),
        }

    def _photometric(self, image: np.ndarray, draw: _Draw) -> np.ndarray:
        """Thermal-camera effects on the view only: polarity, defocus blur, sensor noise."""
        config = self.augment
        assert config is not None
        if draw.invert:
            image = 1.0 - image
        if draw.blur_sigma > 0:
            image = gaussian_filter(image, sigma=draw.blur_sigma, mode="nearest")
        if config.noise_sigma > 0:
            noise = np.random.default_rng(draw.noise_seed).normal(0.0, config.noise_sigma, image.shape)
            image = image + noise.astype(np.float32)
        return np.clip(image, 0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        """The settings that define the samples (for run records)."""
        return {"input_size": self.input_size, "margin_px": self.margin_px, "square_crop": self.square_crop,
                "seed": self.seed, "augment": None if self.augment is None else asdict(self.augment),
                "samples": len(self)}


def _single_thread_worker(worker_id: int) -> None:
    # Each worker is one process; letting each also spawn one torch thread per core oversubscribes.
    torch.set_num_threads(1)


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffled sample positions, each tagged with its epoch's augmentation key: (epoch, position).

    The epoch travels with the index, so workers kept alive across epochs (persistent workers)
    draw the augmentation of the epoch the main process chose in `set_epoch`, as in-process
    loading does. The order of an epoch is the one a ``DataLoader(shuffle=True)`` with a generator
    seeded ``order_seed`` gives (tests/test_loader.py checks it): the loader first draws one
    number from its generator (its workers' base seed), then a permutation. Keeping that order
    keeps every run trained before this sampler existed reproducible under its run id. A second
    pass within one epoch (more steps than samples) continues the same generator, as a second
    `iter()` of that DataLoader did (RandomSampler's draws, imitated: the test pins them down).
    """

    def __init__(self, length: int) -> None:
        self.length = int(length)
        self.epoch = 0
        self._generator = torch.Generator()
        self._generator.manual_seed(0)

    def set_epoch(self, epoch: int, order_seed: int) -> None:
        """Augment as `epoch` and shuffle by `order_seed` from the next `iter()` on."""
        self.epoch = int(epoch)
        self._generator = torch.Generator()
        self._generator.manual_seed(int(order_seed))

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        torch.empty((), dtype=torch.int64).random_(generator=self._generator)  # the loader's base seed
        epoch = self.epoch
        for position in torch.randperm(self.length, generator=self._generator).tolist():
            yield (epoch, position)
        # RandomSampler ends a finished pass by drawing the permutation it slices its remainder
        # from (empty here): draw it too, so a second pass starts where that loader's did.
        torch.randperm(self.length, generator=self._generator)


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0, *,
                sampler: Sampler | None = None, prefetch_factor: int | None = None, pin_memory: bool = False,
                persistent_workers: bool = False) -> DataLoader:
    """A DataLoader with settings that never hang in Jupyter.

    num_workers=0 loads in the calling process (the safe default in notebooks). With workers, each
    uses one torch thread, and a 300 s timeout turns a stuck worker into an error instead of a
    hang. Persistent workers keep their copy of the dataset: `set_epoch` on the dataset does not
    reach them, so pass an `EpochSampler` (which carries the epoch with each index) with them.
    The shuffle order comes from a generator seeded with ``seed``; the loader draws its workers'
    base seed from a generator too, never from torch's global random stream (which the
    training step's dropout uses), so loading leaves training's random numbers unchanged.
    """
    if persistent_workers and num_workers > 0 and not isinstance(sampler, EpochSampler):
        raise ValueError("persistent workers never see a later set_epoch: pass an EpochSampler")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    options: dict[str, Any] = {}
    if num_workers > 0:
        options = {"timeout": 300, "worker_init_fn": _single_thread_worker,
                   "persistent_workers": persistent_workers}
        if prefetch_factor is not None:
            options["prefetch_factor"] = prefetch_factor
    if sampler is not None:
        options["sampler"] = sampler
        shuffle = False  # the sampler orders the samples
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=False, **options)


@dataclass
class PreparedData:
    """A dataset read and split as a run's config says, with the torch dataset of each split."""

    dataset: Any                 # FaceDataset
    splits: dict[str, np.ndarray]  # record indices per split
    fingerprint: str
    torch_sets: dict[str, Any]   # ThermalFaceDataset per split
