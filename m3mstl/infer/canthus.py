"""Reading a body temperature at the inner canthi from a radiometric map and 68 landmarks.

Fever screening reads the inner canthi (core.landmarks.INNER_CANTHI = 39, 42), the hottest and
most core-coupled facial skin, as the MAXIMUM of the temperature map in a small window around
each canthus: a located point is never exactly on the hottest pixel. The window can be sized
from the face (a fraction of the outer-eye-corner distance), so the same region is read at any
resolution. The study of these readings under occlusion is `m3mstl.studies.thermometry`
(docs/thermometry.md).

Here too: how a run's reading is chosen on its own training and validation splits (`choose_reading`:
site calibration, window, abstention threshold; stored in the run by the trainer, READING_FILE) and
the reading of one face that `m3mstl predict` reports (`read_face`).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m3mstl.core.landmarks import INNER_CANTHI, OUTER_EYE_CORNERS

COMBINE_RULES: tuple[str, ...] = ("mean", "max")


class ThermometryInputError(ValueError):
    """Inputs a temperature reading cannot be taken from."""


def window_max(temperature_map: np.ndarray, point_xy: Sequence[float], window_px: int) -> float:
    """Maximum of a (H, W) map in a window_px x window_px window centred on a point's pixel.

    The point is in continuous pixel coordinates (pixel (r, c) covers [c, c+1) x [r, r+1)),
    so it lies in pixel (floor(y), floor(x)). The window is clipped to the map; NaN pixels
    are ignored; NaN is returned when no pixel of the window lies on the map (or the point
    itself is not finite).
    """
    if window_px < 1 or window_px % 2 == 0:
        raise ThermometryInputError(f"window_px must be a positive odd number of pixels, got {window_px}")
    x, y = float(point_xy[0]), float(point_xy[1])
    if not (np.isfinite(x) and np.isfinite(y)):
        return float("nan")
    height, width = temperature_map.shape
    half = window_px // 2
    row, col = int(np.floor(y)), int(np.floor(x))
    top, bottom = max(row - half, 0), min(row + half + 1, height)
    left, right = max(col - half, 0), min(col + half + 1, width)
    if top >= bottom or left >= right:
        return float("nan")
    window = temperature_map[top:bottom, left:right]
    if np.isnan(window).all():
        return float("nan")
    return float(np.nanmax(window))


def canthus_maxima(temperature_map: np.ndarray, points: np.ndarray, window_px: int) -> np.ndarray:
    """(2,) window maxima of one map at the inner canthi (39, 42) of its (68, 2) points."""
    return np.array([window_max(temperature_map, points[k], window_px) for k in INNER_CANTHI])


def face_scaled_window(landmarks: np.ndarray, fraction: float) -> int:
    """An odd window side in pixels: `fraction` of the outer-eye-corner distance of (68, 2) landmarks."""
    if fraction <= 0:
        raise ThermometryInputError(f"window_fraction must be positive, got {fraction}")
    span = float(np.linalg.norm(np.asarray(landmarks)[OUTER_EYE_CORNERS[0]] - np.asarray(landmarks)[OUTER_EYE_CORNERS[1]]))
    side = int(round(fraction * span)) if np.isfinite(span) else 1
    return max(1, side + (1 - side % 2))


# -- choosing the reading on a run's own splits (never its test split) --------------------------
PRACTICE_WINDOW_FRACTION = 0.15   # window side / outer-eye-corner distance (docs/thermometry.md)
WINDOW_FRACTIONS: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3)   # the choices `choose_reading` weighs
THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
LENS_OCCLUDERS: tuple[str, ...] = ("glasses", "sunglasses")


def canthus_window_readings(temperature_maps: Sequence[np.ndarray], landmarks: np.ndarray, window_fraction: float,
                            offset_c: np.ndarray | None = None) -> np.ndarray:
    """(N, 2) window maxima at canthi 39 and 42 of (N, 68, 2) landmarks, window sized from each face,
    each map's known camera offset (N,) removed when given."""
    landmarks = np.asarray(landmarks, dtype=float)
    offsets = np.zeros(len(temperature_maps)) if offset_c is None else np.asarray(offset_c, dtype=float)
    return np.stack([canthus_maxima(np.asarray(temperature_map, dtype=float) - offsets[i], landmarks[i],
                                    face_scaled_window(landmarks[i], window_fraction))
                     for i, temperature_map in enumerate(temperature_maps)]).reshape(-1, 2)


def fit_calibration(readings: np.ndarray, canthus_truth_c: np.ndarray, combine: str = "max") -> float:
    """The site calibration: mean of (truth - reading) over faces, both (N, 2) per canthus combined
    by `combine`; rows with a non-finite value are skipped. What a screening site does with a
    reference thermometer on a calibration group: here the TRAINING split at its true landmarks,
    bare canthi only (the caller selects them). ThermometryInputError when no row is usable."""
    if combine not in COMBINE_RULES:
        raise ThermometryInputError(f"combine must be one of {COMBINE_RULES}, got {combine!r}")
    readings, truth = np.asarray(readings, dtype=float), np.asarray(canthus_truth_c, dtype=float)
    if readings.shape != truth.shape or readings.ndim != 2 or readings.shape[1] != 2:
        raise ThermometryInputError(f"readings and truth must both be (N, 2), got {readings.shape} and {truth.shape}")
    reduce = np.mean if combine == "mean" else np.max
    difference = reduce(truth, axis=1) - reduce(readings, axis=1)
    difference = difference[np.isfinite(difference)]
    if difference.size == 0:
        raise ThermometryInputError("fit_calibration: no face with finite readings and truth")
    return float(difference.mean())


def choose_threshold(canthus_prob: np.ndarray, lens: np.ndarray, bare: np.ndarray,
                     thresholds: Sequence[float] = THRESHOLDS) -> tuple[float, pd.DataFrame]:
    """The abstention threshold, chosen on VALIDATION: a face abstains when the model calls both
    canthi occluded (probability >= threshold); the choice maximises (abstention on faces behind
    glasses or sunglasses, `lens`) - (abstention on faces whose canthi are both bare, `bare`),
    ties to the higher threshold. canthus_prob (N, 2); lens, bare (N,) bool. Returns the threshold
    and the table it was chosen from (threshold, lens_abstention, bare_abstention)."""
    prob = np.asarray(canthus_prob, dtype=float)
    lens, bare = np.asarray(lens, dtype=bool), np.asarray(bare, dtype=bool)
    if not lens.any() or not bare.any():
        raise ThermometryInputError("choose_threshold needs faces behind lenses and faces with bare canthi")
    rows = []
    for threshold in thresholds:
        abstains = (prob >= threshold).all(axis=1)
        rows.append({"threshold": float(threshold), "lens_abstention": float(abstains[lens].mean()),
                     "bare_abstention": float(abstains[bare].mean())})
    table = pd.DataFrame(rows)
    score = (table["lens_abstention"] - table["bare_abstention"]).round(12)
    best = table[score == score.max()]["threshold"].max()
    return float(best), table


def lens_faces(records: Sequence[Any]) -> np.ndarray:
    """(N,) bool: faces behind glasses or sunglasses (alone or with other occluders)."""
    return np.array([any(o.get("type") in LENS_OCCLUDERS for o in r.extras.get("occluders", [])) for r in records],
                    dtype=bool)


def bare_canthi(records: Sequence[Any]) -> np.ndarray:
    """(N,) bool: faces whose two inner canthi are both visible in the ground truth."""
    return np.array([not (np.asarray(r.visibility)[list(INNER_CANTHI)] == 1).any() for r in records], dtype=bool)


def _records_truth(records: Sequence[Any]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    from m3mstl.data.coco import load_temperature

    maps = [load_temperature(r) for r in records]
    truth = np.array([r.extras["canthus_skin_max_c"] for r in records], dtype=float)
    offsets = np.array([r.extras.get("camera", {}).get("offset_error_c", 0.0) for r in records], dtype=float)
    bare = bare_canthi(records)
    return maps, truth, offsets, bare


def choose_reading(train_records: Sequence[Any], val_records: Sequence[Any], val_landmarks: np.ndarray,
                   val_occlusion_prob: np.ndarray, *, combine: str = "max",
                   fractions: Sequence[float] = WINDOW_FRACTIONS) -> tuple[dict[str, Any], pd.DataFrame]:
    """Settings of the practice reading, never from the test split (docs/thermometry.md):

    - for each window fraction, the site calibration `fit_calibration` on the TRAINING split at its
      true landmarks (faces with both canthi bare, camera offset removed);
    - the window fraction with the lowest calibrated MAE on VALIDATION faces with bare canthi, read
      at the model's predicted landmarks;
    - the abstention threshold by `choose_threshold` on validation.

    Records carry `canthus_skin_max_c` (SynthTFD68). Returns (settings, validation table: one row
    per fraction with calibration_c, val_mae_c, val_bias_c, and the threshold table's rows)."""
    train_maps, train_truth, train_offsets, train_bare = _records_truth(train_records)
    val_maps, val_truth, val_offsets, val_bare = _records_truth(val_records)
    train_points = np.stack([r.landmarks for r in train_records])
    reduce = np.mean if combine == "mean" else np.max
    rows = []
    for fraction in fractions:
        train_read = canthus_window_readings(train_maps, train_points, fraction, train_offsets)
        calibration = fit_calibration(train_read[train_bare], train_truth[train_bare], combine)
        val_read = canthus_window_readings(val_maps, val_landmarks, fraction, val_offsets)
        error = reduce(val_read[val_bare], axis=1) + calibration - reduce(val_truth[val_bare], axis=1)
        rows.append({"choice": "window_fraction", "window_fraction": float(fraction), "calibration_c": calibration,
                     "val_mae_c": float(np.nanmean(np.abs(error))), "val_bias_c": float(np.nanmean(error)),
                     "val_uncalibrated_mae_c": float(np.nanmean(np.abs(error - calibration)))})
    windows = pd.DataFrame(rows)
    best = windows.loc[windows["val_mae_c"].idxmin()]
    lens = lens_faces(val_records)
    prob = np.asarray(val_occlusion_prob, dtype=float)[:, list(INNER_CANTHI)]
    try:
        threshold, thresholds = choose_threshold(prob, lens, val_bare)
    except ThermometryInputError:   # a small validation split without lens (or bare) faces: keep 0.5
        threshold, thresholds = 0.5, pd.DataFrame([{"threshold": 0.5, "lens_abstention": float("nan"),
                                                     "bare_abstention": float("nan")}])
    settings = {"window_fraction": float(best["window_fraction"]), "calibration_c": float(best["calibration_c"]),
                "threshold": threshold, "combine": combine}
    thresholds.insert(0, "choice", "threshold")
    return settings, pd.concat([windows, thresholds], ignore_index=True)


# -- the reading `m3mstl predict` reports for each face ------------------------------------------
#: Where a finished run keeps the reading settings chosen on its own splits (written by the trainer).
READING_FILE = "canthus_reading.json"


@dataclass(frozen=True)
class ReadingSettings:
    """How a face's inner-canthus temperature is read (docs/thermometry.md): the maximum of a window
    of `window_fraction` x the outer-eye-corner distance around each canthus the model calls visible
    (occlusion probability below `threshold`), the canthi combined by `combine`, plus the site
    calibration `calibration_c` (None: no calibration known, the reading is the camera's own).
    `source` says where the numbers came from: "run" (chosen on the run's training and validation
    splits by `choose_reading`) or "defaults" (the documented practice values, for a run without
    that record)."""

    window_fraction: float = PRACTICE_WINDOW_FRACTION
    threshold: float = 0.5
    combine: str = "max"
    calibration_c: float | None = None
    source: str = "defaults"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_reading_settings(run_dir: Path) -> ReadingSettings:
    """The run's chosen reading (READING_FILE) or, for a run without one, the documented defaults."""
    path = Path(run_dir) / READING_FILE
    if not path.is_file():
        return ReadingSettings()
    try:
        stored = json.loads(path.read_text())
        return ReadingSettings(window_fraction=float(stored["window_fraction"]), threshold=float(stored["threshold"]),
                               combine=str(stored["combine"]),
                               calibration_c=None if stored.get("calibration_c") is None else float(stored["calibration_c"]),
                               source="run")
    except (ValueError, KeyError, TypeError) as error:
        raise ThermometryInputError(f"{path}: not a reading-settings record ({error})") from None


def write_run_reading(run_dir: Path, train_records: Sequence[Any], val_records: Sequence[Any],
                      val_landmarks: np.ndarray, val_occlusion_prob: np.ndarray) -> Path | None:
    """Choose the run's reading on its training split (calibration) and validation split (window,
    threshold) with `choose_reading` and store it as READING_FILE. Written only when the records
    carry the true canthus skin temperature (generated data does; a dataset without it has nothing
    to calibrate against, and `m3mstl predict` then reads with the defaults, saying so). Returns
    the file, or None when nothing was written."""
    from m3mstl.core.fileio import write_json_atomic

    if not train_records or not val_records or not all(
            "canthus_skin_max_c" in r.extras and r.temperature_path is not None for r in [*train_records, *val_records]):
        return None
    settings, _ = choose_reading(train_records, val_records, val_landmarks, val_occlusion_prob)
    path = Path(run_dir) / READING_FILE
    write_json_atomic(path, {**settings, "chosen_on": "training split (calibration), validation split (window, threshold)"})
    return path


def read_face(temperature_map: np.ndarray | None, landmarks: np.ndarray, occlusion_prob: np.ndarray,
              settings: ReadingSettings, *, no_map_reason: str = "no radiometric temperature map") -> dict[str, Any]:
    """One face's inner-canthus reading, as `m3mstl predict` reports it.

    Returns canthus_temperature_c (the calibrated reading, None when it abstains), canthus_raw_c
    (the window maxima at canthi 39 and 42 in the map's own degrees, None where not read),
    canthi_used (which of "right" (39) and "left" (42) entered the reading), calibrated (whether a
    site calibration was added) and abstention (None, or why there is no reading)."""
    probs = np.asarray(occlusion_prob, dtype=float)[list(INNER_CANTHI)]
    result: dict[str, Any] = {"canthus_temperature_c": None, "canthus_raw_c": [None, None], "canthi_used": [],
                              "calibrated": settings.calibration_c is not None, "abstention": None}
    if temperature_map is None:
        result["abstention"] = no_map_reason
        return result
    points = np.asarray(landmarks, dtype=float)
    window = face_scaled_window(points, settings.window_fraction)
    raw = canthus_maxima(np.asarray(temperature_map, dtype=float), points, window)
    result["canthus_raw_c"] = [None if not np.isfinite(v) else round(float(v), 3) for v in raw]
    visible = probs < settings.threshold
    usable = visible & np.isfinite(raw)
    result["canthi_used"] = [name for name, use in zip(("right", "left"), usable) if use]
    if not visible.any():
        result["abstention"] = (f"both inner canthi called occluded (occlusion probability {probs[0]:.2f} and "
                                f"{probs[1]:.2f}, threshold {settings.threshold:.2f})")
    elif not usable.any():
        result["abstention"] = "the visible inner canthi lie outside the temperature map"
    else:
        chosen = raw[usable]
        value = float(chosen.mean() if settings.combine == "mean" else chosen.max())
        result["canthus_temperature_c"] = round(value + (settings.calibration_c or 0.0), 3)
    return result
