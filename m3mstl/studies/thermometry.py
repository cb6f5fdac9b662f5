"""Temperature measurement under occlusion: the clinical use the occlusion head serves.

Fever screening reads the inner canthi (landmarks.INNER_CANTHI = 39, 42), the hottest and
most core-coupled facial skin. Screening software takes the MAXIMUM of the temperature map
in a small window around each canthus (a located point is never exactly on the hottest
pixel) and combines the two canthi. Under eyeglasses or sunglasses the canthus is hidden
behind a lens that is opaque in LWIR and the coldest thing on the face, so a reading at the
predicted canthus measures the lens, not the skin.

Three readings per image, all at the PREDICTED landmarks:

    naive          both canthi, whatever covers them
    skip_occluded  only canthi the model calls visible (occlusion_prob < threshold); when the
                   model calls both occluded the reading ABSTAINS (counted and reported)
    oracle         (optional) the same with the ground-truth occlusion labels: the best the
                   skip rule can do with a perfect occlusion head

The truth is the generator's skin temperature before any occluder ("skin_temperature_c",
per landmark) at the two canthi, combined the same way as the readings (`combine`, "mean"
by default, or "max" as in the FDA screening variable canthiMax). One truth per image keeps
the methods comparable; a reading from one canthus is judged against both, so left/right
asymmetry counts as part of its error.

Readings as practice takes them (docs/thermometry.md): the window can be sized from the face
(`window_fraction` x the predicted outer-eye-corner distance, so the same region is read at any
resolution), a "single_pixel" reading (the pixel under each predicted canthus, both canthi)
shows what a located point alone gives, `canthus_truth_c` (N, 2) replaces the truth by the
hottest bare skin around each canthus (the generator's "canthus_skin_max_c"), and `offset_c`
(N,) removes a known camera offset from every reading, as the reference blackbody of a
screening set-up does (the generator's camera has a global offset error of up to 1 K).

Settings (threshold, window_px, combine) are stored in the returned frames' `attrs["settings"]`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from m3mstl.core.landmarks import INNER_CANTHI, NUM_LANDMARKS, OUTER_EYE_CORNERS
from m3mstl.data.records import occluder_group
from m3mstl.infer.canthus import (COMBINE_RULES, LENS_OCCLUDERS, PRACTICE_WINDOW_FRACTION, THRESHOLDS,  # noqa: F401
                                  WINDOW_FRACTIONS, ThermometryInputError, bare_canthi, canthus_maxima,
                                  canthus_window_readings, choose_reading, choose_threshold, face_scaled_window,
                                  fit_calibration, lens_faces, window_max)

METHODS: tuple[str, ...] = ("single_pixel", "naive", "skip_occluded", "calibrated", "oracle")


def _combine(values: np.ndarray, use: np.ndarray, combine: str) -> float:
    """Combine the canthus readings selected by `use`; NaN (abstain) when none is usable."""
    chosen = values[use & np.isfinite(values)]
    if chosen.size == 0:
        return float("nan")
    return float(chosen.mean() if combine == "mean" else chosen.max())


def _check_inputs(
    temperature_maps: Sequence[np.ndarray],
    landmarks: np.ndarray,
    occlusion_prob: np.ndarray,
    skin_temperature_c: np.ndarray,
    occluder_types: Sequence[Any],
    image_ids: Sequence[str],
    occluded_gt: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    n = len(temperature_maps)
    landmarks = np.asarray(landmarks, dtype=float)
    occlusion_prob = np.asarray(occlusion_prob, dtype=float)
    skin_temperature_c = np.asarray(skin_temperature_c, dtype=float)
    expected = {
        "landmarks": (landmarks.shape, (n, NUM_LANDMARKS, 2)),
        "occlusion_prob": (occlusion_prob.shape, (n, NUM_LANDMARKS)),
        "skin_temperature_c": (skin_temperature_c.shape, (n, NUM_LANDMARKS)),
    }
    if occluded_gt is not None:
        occluded_gt = np.asarray(occluded_gt, dtype=bool)
        expected["occluded_gt"] = (occluded_gt.shape, (n, NUM_LANDMARKS))
    for name, (got, want) in expected.items():
        if got != want:
            raise ThermometryInputError(f"{name} must have shape {want} for {n} temperature maps, got {got}")
    if len(occluder_types) != n or len(image_ids) != n:
        raise ThermometryInputError(
            f"need {n} occluder types and image ids, got {len(occluder_types)} and {len(image_ids)}"
        )
    canthi = list(INNER_CANTHI)
    for i, temperature_map in enumerate(temperature_maps):
        if np.ndim(temperature_map) != 2:
            raise ThermometryInputError(
                f"temperature map of image {image_ids[i]!r} (index {i}) must be 2-D, got shape {np.shape(temperature_map)}"
            )
        probs = occlusion_prob[i, canthi]
        if not ((probs >= 0) & (probs <= 1)).all():
            raise ThermometryInputError(
                f"image {image_ids[i]!r} (index {i}): canthus occlusion probabilities {probs.tolist()} are not in [0, 1]"
            )
        if not np.isfinite(skin_temperature_c[i, canthi]).all():
            raise ThermometryInputError(
                f"image {image_ids[i]!r} (index {i}): no true skin temperature at the inner canthi"
            )
    return landmarks, occlusion_prob, skin_temperature_c, occluded_gt


def read_canthus_temperatures(
    temperature_maps: Sequence[np.ndarray],
    landmarks: np.ndarray,
    occlusion_prob: np.ndarray,
    skin_temperature_c: np.ndarray,
    occluder_types: Sequence[str | Sequence[str]],
    *,
    image_ids: Sequence[str] | None = None,
    threshold: float = 0.5,
    window_px: int = 5,
    combine: str = "mean",
    occluded_gt: np.ndarray | None = None,
    window_fraction: float | None = None,
    canthus_truth_c: np.ndarray | None = None,
    offset_c: np.ndarray | None = None,
    calibration_c: float | None = None,
) -> pd.DataFrame:
    """Per-image inner-canthus readings, naive and skipping occluded canthi, against the truth.

    temperature_maps: N arrays (H_i, W_i) in deg C; landmarks (N, 68, 2) PREDICTED, in each
    map's continuous pixel coordinates; occlusion_prob (N, 68) predicted; skin_temperature_c
    (N, 68) true skin temperature under any occluder; occluder_types: one label per image
    ("none", "glasses", ...) or one list of occluder types per image (joined by
    data.records.occluder_group); occluded_gt (N, 68) bool adds the "oracle" reading.

    Columns: image_id, occluder_type, true_c, right_c, left_c (window maxima at the predicted
    canthi 39 and 42), right_prob, left_prob, then per method M: M_c, M_error_c (reading -
    truth), M_canthi_used, M_abstained. With `calibration_c` (a site calibration from the training
    split, `fit_calibration`), method "calibrated" is skip_occluded + calibration_c.
    """
    if combine not in COMBINE_RULES:
        raise ThermometryInputError(f"combine must be one of {COMBINE_RULES}, got {combine!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ThermometryInputError(f"threshold must lie in [0, 1], got {threshold}")
    if image_ids is None:
        image_ids = [str(i) for i in range(len(temperature_maps))]
    landmarks, occlusion_prob, skin_temperature_c, occluded_gt = _check_inputs(
        temperature_maps, landmarks, occlusion_prob, skin_temperature_c, occluder_types, image_ids, occluded_gt
    )
    canthi = list(INNER_CANTHI)
    n = len(temperature_maps)
    if canthus_truth_c is not None:
        canthus_truth_c = np.asarray(canthus_truth_c, dtype=float)
        if canthus_truth_c.shape != (n, 2) or not np.isfinite(canthus_truth_c).all():
            raise ThermometryInputError(f"canthus_truth_c must be finite with shape {(n, 2)}, got {canthus_truth_c.shape}")
    offsets = np.zeros(n) if offset_c is None else np.asarray(offset_c, dtype=float).reshape(-1)
    if offsets.shape != (n,):
        raise ThermometryInputError(f"offset_c must hold one offset per image ({n}), got shape {offsets.shape}")
    rows = []
    for i, temperature_map in enumerate(temperature_maps):
        temperature_map = np.asarray(temperature_map, dtype=float) - offsets[i]
        window = window_px if window_fraction is None else face_scaled_window(landmarks[i], window_fraction)
        readings = canthus_maxima(temperature_map, landmarks[i], window)
        pixels = canthus_maxima(temperature_map, landmarks[i], 1)
        true_canthi = skin_temperature_c[i, canthi] if canthus_truth_c is None else canthus_truth_c[i]
        truth = _combine(true_canthi, np.ones(2, dtype=bool), combine)
        label = occluder_types[i]
        row: dict[str, Any] = {
            "image_id": str(image_ids[i]),
            "occluder_type": label if isinstance(label, str) else occluder_group(label),
            "true_c": truth,
            "right_c": readings[0],
            "left_c": readings[1],
            "right_prob": float(occlusion_prob[i, canthi[0]]),
            "left_prob": float(occlusion_prob[i, canthi[1]]),
            "window_px": int(window),
        }
        every = np.ones(2, dtype=bool)
        methods = {  # method: (canthus readings, which canthi it may use)
            "single_pixel": (pixels, every),
            "naive": (readings, every),
            "skip_occluded": (readings, occlusion_prob[i, canthi] < threshold),
        }
        if calibration_c is not None:
            methods["calibrated"] = (readings + float(calibration_c), occlusion_prob[i, canthi] < threshold)
        if occluded_gt is not None:
            methods["oracle"] = (readings, ~occluded_gt[i, canthi])
        for method, (values, use) in methods.items():
            value = _combine(values, use, combine)
            row[f"{method}_c"] = value
            row[f"{method}_error_c"] = value - truth
            row[f"{method}_canthi_used"] = int(np.sum(use & np.isfinite(values)))
            row[f"{method}_abstained"] = bool(np.isnan(value))
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["settings"] = {"threshold": float(threshold), "window_px": int(window_px), "combine": combine,
                               "window_fraction": window_fraction,
                               "truth": "hottest canthus skin" if canthus_truth_c is not None else "skin at landmark",
                               "offset_removed": offset_c is not None,
                               "calibration_c": None if calibration_c is None else float(calibration_c)}
    return table


def perturb_landmarks(landmarks: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Landmarks (N, 68, 2) moved by Gaussian noise of sigma = fraction x each face's
    outer-eye-corner distance per axis: a located point with a realistic error."""
    landmarks = np.asarray(landmarks, dtype=float)
    span = np.linalg.norm(landmarks[:, OUTER_EYE_CORNERS[0]] - landmarks[:, OUTER_EYE_CORNERS[1]], axis=1)
    noise = np.random.default_rng(seed).normal(size=landmarks.shape)
    return landmarks + noise * (fraction * span)[:, None, None]


def _method_summary(errors: pd.Series, abstained: pd.Series, naive_errors: pd.Series) -> dict[str, Any]:
    read = ~abstained.to_numpy(bool)
    err = errors.to_numpy(float)[read]
    naive_same = naive_errors.to_numpy(float)[read]
    naive_same = naive_same[np.isfinite(naive_same)]
    n_images = int(abstained.size)
    nan = float("nan")
    return {
        "n_images": n_images,
        "n_read": int(read.sum()),
        "n_abstained": int(n_images - read.sum()),
        "abstention_rate": float(1.0 - read.mean()) if n_images else nan,
        "mae_c": float(np.abs(err).mean()) if err.size else nan,
        "bias_c": float(err.mean()) if err.size else nan,
        "rmse_c": float(np.sqrt(np.mean(err**2))) if err.size else nan,
        "max_abs_error_c": float(np.abs(err).max()) if err.size else nan,
        # The naive MAE on the images this method did read: abstaining drops the hard cases,
        # so comparing against the naive MAE over all images would flatter the skip rule.
        "naive_mae_same_images_c": float(np.abs(naive_same).mean()) if naive_same.size else nan,
    }


def summarise_readings(per_image: pd.DataFrame, *, overall_label: str = "all") -> pd.DataFrame:
    """One row per (method, occluder type), plus an overall row per method.

    Columns: method, occluder_type, n_images, n_read, n_abstained, abstention_rate, mae_c,
    bias_c (mean signed error: negative = reads cold), rmse_c, max_abs_error_c,
    naive_mae_same_images_c. Errors are over the images the method read.
    """
    methods = [m for m in METHODS if f"{m}_error_c" in per_image.columns]
    if not methods:
        raise ThermometryInputError("summarise_readings: the table holds no reading columns")
    groups = [overall_label] + sorted(set(per_image["occluder_type"]) - {overall_label})
    rows = []
    for method in methods:
        for group in groups:
            part = per_image if group == overall_label else per_image[per_image["occluder_type"] == group]
            summary = _method_summary(part[f"{method}_error_c"], part[f"{method}_abstained"], part["naive_error_c"])
            rows.append({"method": method, "occluder_type": group, **summary})
    table = pd.DataFrame(rows)
    table.attrs["settings"] = dict(per_image.attrs.get("settings", {}))
    return table


def landmark_error_study(
    temperature_maps: Sequence[np.ndarray],
    true_landmarks: np.ndarray,
    occluded_gt: np.ndarray,
    canthus_truth_c: np.ndarray,
    occluder_types: Sequence[str | Sequence[str]],
    *,
    noise_fractions: Sequence[float] = (0.0, 0.02, 0.05),
    window_fraction: float = PRACTICE_WINDOW_FRACTION,
    offset_c: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """How far can a canthus reading get? The summary of `read_canthus_temperatures` at the TRUE
    landmarks moved by Gaussian noise of each of `noise_fractions` x the outer-eye-corner distance,
    with the true occlusion labels as the model's (so skipping is perfect), one block per noise level
    (column noise_fraction). Answers whether a target error is reachable given landmark accuracy."""
    occluded_gt = np.asarray(occluded_gt, dtype=bool)
    skin = np.zeros(occluded_gt.shape)
    skin[:, list(INNER_CANTHI)] = np.asarray(canthus_truth_c, dtype=float)
    blocks = []
    for fraction in noise_fractions:
        points = perturb_landmarks(true_landmarks, fraction, seed) if fraction > 0 else np.asarray(true_landmarks)
        per_image = read_canthus_temperatures(
            temperature_maps, points, occluded_gt.astype(float), skin, occluder_types,
            window_fraction=window_fraction, canthus_truth_c=canthus_truth_c, offset_c=offset_c)
        summary = summarise_readings(per_image)
        summary.insert(0, "noise_fraction", float(fraction))
        blocks.append(summary[summary["method"] != "oracle"])
    return pd.concat(blocks, ignore_index=True)


def practice_options(records: Sequence[Any], window_fraction: float = PRACTICE_WINDOW_FRACTION,
                     settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments of `read_canthus_temperatures` that read as practice does, from dataset
    records: a face-sized window, the hottest canthus skin as truth and the camera's known offset
    removed; with `settings` from `choose_reading`, its window, threshold, combine rule and site
    calibration. Empty (the plain reading) when the records do not carry `canthus_skin_max_c`."""
    if not records or not all("canthus_skin_max_c" in r.extras for r in records):
        return {}
    if settings is not None:
        window_fraction = settings["window_fraction"]
    offsets = [r.extras.get("camera", {}).get("offset_error_c") for r in records]
    options: dict[str, Any] = {"window_fraction": window_fraction,
                               "canthus_truth_c": np.array([r.extras["canthus_skin_max_c"] for r in records])}
    if all(o is not None for o in offsets):
        options["offset_c"] = np.array(offsets, dtype=float)
    if settings is not None:
        options.update(threshold=settings["threshold"], combine=settings["combine"],
                       calibration_c=settings["calibration_c"])
    return options


def run_records(data_dir: Any, test: Any, val: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """The dataset records a reading at run predictions needs (`data_dir`'s records): the run's
    TRAINING split (the site calibration of `choose_reading`), and the validation and test records in
    the order of the predictions of `val` and `test`, its loaded validation and test results
    (`comparison.load_run(run_dir, name, split=...)`). Returns (train, val, test) records."""
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.splits import run_split_indices
    from m3mstl.runs import load_config

    dataset = read_dataset(data_dir)
    by_id = {r.image_id: r for r in dataset.records}
    test_records = [by_id[i] for i in test.predictions["image_id"]]
    val_records = [by_id[i] for i in val.predictions["image_id"]]
    train = run_split_indices(dataset, load_config(test.run_dir).data, data_dir)["train"]
    train_records = [dataset.records[i] for i in train]
    return train_records, val_records, test_records


def read_records(records: Sequence[Any], landmarks: np.ndarray, occlusion_prob: np.ndarray, *,
                 settings: dict[str, Any] | None = None, occluded_gt: np.ndarray | None = None) -> pd.DataFrame:
    """`read_canthus_temperatures` on dataset records at a model's predicted `landmarks` (N, 68, 2) and
    `occlusion_prob` (N, 68): the records' temperature maps and true skin temperatures, one group per
    single occluder type ("several" for combinations, as notebook 06 groups them), read as practice
    reads (`practice_options`: a face-sized window, the hottest canthus skin as truth, the camera
    offset removed; with `settings` from `choose_reading`, its window, threshold and calibration).
    `occluded_gt` (N, 68) adds the oracle reading."""
    from m3mstl.data.coco import load_temperature
    from m3mstl.data.records import single_occluder_groups

    groups = single_occluder_groups([occluder_group([o.get("type", "unknown") for o in r.extras.get("occluders", [])])
                                     for r in records])
    return read_canthus_temperatures(
        [load_temperature(r) for r in records], landmarks, occlusion_prob,
        np.array([r.extras["skin_temperature_c"] for r in records]), list(groups),
        image_ids=[r.image_id for r in records], occluded_gt=occluded_gt,
        **practice_options(records, settings=settings))
