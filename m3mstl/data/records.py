"""In-memory form of one TFD68-layout dataset: the contract every data path shares.

The synthetic generator, the real TFD68 and the importers all end up as a
`FaceDataset` of `FaceRecord`s, so the training and evaluation code sees one thing.

Coordinate convention (used everywhere in the project): continuous pixel
coordinates with the image's top-left corner at (0, 0); pixel (row r, column c)
covers [c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5). Resizing an image
by a factor s then maps a point x to s * x exactly.

COCO visibility: 0 = unlabelled, 1 = labelled but occluded, 2 = labelled and visible.

On-disk layout (written by `m3mstl.data.coco.write_annotations` and friends):

    ROOT/annotations.json                         COCO keypoints
    ROOT/thermal/thermal_<subject>_<a>_<b>.png    8-bit thermal view
    ROOT/temperature/<same stem>.npy | .png       float32 deg C, or uint16 centi-Kelvin
    ROOT/occluders/<same stem>.png                optional uint8 bitmask: bit k set where
                                                  occluder k of the image's list covers the face
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

from m3mstl.core.landmarks import NUM_LANDMARKS

VIS_UNLABELLED, VIS_OCCLUDED, VIS_VISIBLE = 0, 1, 2

# Temperature encodings a loader may find; `FaceDataset.temperature_encoding` names one.
TEMPERATURE_ENCODINGS = ("celsius_npy", "centikelvin_png", "centikelvin_tiff", "none")


@dataclass
class FaceRecord:
    """One annotated thermal image."""

    image_id: str                 # file stem, e.g. "thermal_007_1_2"
    subject: str                  # subject id, e.g. "007"
    image_path: Path              # absolute path of the 8-bit (or 16-bit) thermal image
    width: int
    height: int
    landmarks: np.ndarray         # (68, 2) float64, continuous pixel coordinates of the image
    visibility: np.ndarray        # (68,) int8 in {0, 1, 2} (COCO v)
    bbox: tuple[float, float, float, float] | None = None  # face box x, y, w, h (pixels)
    temperature_path: Path | None = None
    occluder_mask_path: Path | None = None
    # Optional per-image fields kept from the annotation when present, e.g.
    # "head_pose": {"yaw": deg, "pitch": deg, "roll": deg, "rotation": 3x3 list},
    # "ambient_c": float, "occluders": [{"type": "glasses", ...}, ...],
    # "occlusion_cause": 68 strings ("none" | "self" | occluder type),
    # "landmarks_3d": 68x3 camera coordinates (mm), "expression": str, "polarity": "white_hot".
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64).reshape(NUM_LANDMARKS, 2)
        self.visibility = np.asarray(self.visibility, dtype=np.int8).reshape(NUM_LANDMARKS)

    @property
    def labelled(self) -> np.ndarray:
        return self.visibility > VIS_UNLABELLED

    @property
    def occluded(self) -> np.ndarray:
        return self.visibility == VIS_OCCLUDED


@dataclass
class FaceDataset:
    """All records of one TFD68-layout folder, plus what the loader detected."""

    root: Path
    records: list[FaceRecord]
    temperature_encoding: str = "none"          # one of TEMPERATURE_ENCODINGS
    keypoint_layout: str = "ibug68"             # "ibug68" (one category) or "parts" (per-part categories)
    info: dict[str, Any] = field(default_factory=dict)  # the COCO "info" block (generator priors, seed, ...)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.records})

    def by_id(self, image_id: str) -> FaceRecord:
        for record in self.records:
            if record.image_id == image_id:
                return record
        raise KeyError(f"no image {image_id!r} in {self.root}")


def occluder_group(occluder_types: Sequence[str]) -> str:
    """One label per image from its occluder list: "none", "glasses", "glasses+mask", ..."""
    types = sorted({str(t) for t in occluder_types})
    return "+".join(types) if types else "none"


SEVERAL_OCCLUDERS = "several"


def single_occluder_groups(labels: Sequence[str]) -> np.ndarray:
    """Collapse `occluder_group` labels for a breakdown table: an image with one occluder type
    keeps it ("none", "glasses", ...), one with two or more becomes "several". Exact
    combinations split a test split into dozens of groups of one to five images each, too
    few for a per-group ROC-AUC; the per-image CSV keeps the exact combination."""
    return np.array([SEVERAL_OCCLUDERS if "+" in str(label) else str(label) for label in labels], dtype=object)
