"""Landmark, occlusion and head-pose metrics on numpy arrays.

Everything here works on stored predictions of any model (no torch):

    pred           (N, 68, 2)  predicted landmarks, continuous pixel coordinates
    gt             (N, 68, 2)  ground truth in the same coordinates
    labelled       (N, 68)     bool, False where the dataset has no label (COCO v == 0)
    occluded       (N, 68)     bool ground truth, True where COCO v == 1
    occlusion_prob (N, 68)     predicted probability that a landmark is occluded

Unlabelled landmarks are left out of every number computed here: they add no error,
no occlusion decision and no normaliser point.

NME is reported as a fraction (0.05, not 5 %) and always carries the name of its
normaliser, because the same model reads very differently under different ones:

    "inter_ocular"   distance between the outer eye corners 36 and 45 (the TFD68/M3MSTL code)
    "inter_pupil"    distance between the eye centres (mean of each eye's six points)
    "box"            sqrt(w * h) of the ground-truth landmark bounding box (robust to yaw)
    "bbox_diagonal"  diagonal of that box (the TFD68 training-log NME)

Occlusion metrics treat OCCLUDED as the positive class and pool every labelled
(image, landmark) pair.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.integrate import trapezoid
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from m3mstl.core.landmarks import NUM_LANDMARKS, OUTER_EYE_CORNERS, eye_centres
from m3mstl.core.pose import euler_from_rotation

NORMALISERS: tuple[str, ...] = ("inter_ocular", "inter_pupil", "box", "bbox_diagonal")
#: The paper's normaliser; functions that take a default use this one and record it in their output.
PAPER_NORMALISER = "inter_ocular"
#: CED thresholds the field reports (AUC and failure rate), as NME fractions.
CED_THRESHOLDS: tuple[float, ...] = (0.08, 0.10)
#: Absolute-yaw bin edges in degrees; the last bin is open ("60+").
DEFAULT_YAW_EDGES: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0)


class MetricsInputError(ValueError):
    """Inputs a metric cannot be computed from (shape, NaN, zero normaliser, ...)."""


# --------------------------------------------------------------------------- input checks


def _image_name(index: int, image_ids: Sequence[str] | None) -> str:
    if image_ids is None:
        return f"image index {index}"
    return f"image index {index} ({image_ids[index]})"


def _check_landmark_inputs(
    pred: np.ndarray | None, gt: np.ndarray, labelled: np.ndarray, occluded: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate shapes and finiteness; return float / bool arrays."""
    gt = np.asarray(gt, dtype=float)
    if gt.ndim != 3 or gt.shape[1:] != (NUM_LANDMARKS, 2):
        raise MetricsInputError(f"gt must have shape (N, {NUM_LANDMARKS}, 2), got {gt.shape}")
    n = gt.shape[0]
    labelled = _as_bool_mask(labelled, n, "labelled")
    if pred is not None:
        pred = np.asarray(pred, dtype=float)
        if pred.shape != gt.shape:
            raise MetricsInputError(f"pred has shape {pred.shape} but gt has shape {gt.shape}")
        _check_finite_where_labelled(pred, labelled, "pred")
    _check_finite_where_labelled(gt, labelled, "gt")
    if occluded is not None:
        occluded = _as_bool_mask(occluded, n, "occluded")
    return pred, gt, labelled, occluded


def _as_bool_mask(mask: np.ndarray, n: int, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (n, NUM_LANDMARKS):
        raise MetricsInputError(f"{name} must have shape ({n}, {NUM_LANDMARKS}), got {mask.shape}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise MetricsInputError(f"{name} must be boolean (or 0/1), got values outside {{0, 1}}")
        mask = mask.astype(bool)
    return mask


def _check_finite_where_labelled(points: np.ndarray, labelled: np.ndarray, name: str) -> None:
    bad = labelled & ~np.isfinite(points).all(axis=-1)
    if bad.any():
        image, landmark = np.argwhere(bad)[0]
        raise MetricsInputError(
            f"{name} has a non-finite coordinate at a labelled point: image index {image}, landmark {landmark}"
            f" ({int(bad.sum())} such points in total)"
        )


# --------------------------------------------------------------------------- NME


def normaliser_distance(
    gt: np.ndarray, labelled: np.ndarray, normaliser: str, image_ids: Sequence[str] | None = None
) -> np.ndarray:
    """Per-image ground-truth normalising distance (N,) for a named normaliser.

    Only labelled points enter it. A distance that is zero or undefined (e.g. an eye corner
    unlabelled for "inter_ocular") raises MetricsInputError naming the image.
    """
    _, gt, labelled, _ = _check_landmark_inputs(None, gt, labelled)
    distance = _unchecked_normaliser_distance(gt, labelled, normaliser)
    bad = ~np.isfinite(distance) | (distance <= 0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        problem = "undefined (NaN: its points are unlabelled)" if np.isnan(distance[index]) else "zero"
        raise MetricsInputError(
            f"{_image_name(index, image_ids)}: the {normaliser} normaliser distance is {problem}"
            f" ({int(bad.sum())} image(s) affected)"
        )
    return distance


def _unchecked_normaliser_distance(gt: np.ndarray, labelled: np.ndarray, normaliser: str) -> np.ndarray:
    """`normaliser_distance` of checked inputs, NaN or zero where it is undefined instead of an error."""
    if normaliser not in NORMALISERS:
        raise MetricsInputError(f"unknown normaliser {normaliser!r}; choose one of {NORMALISERS}")
    masked = np.where(labelled[..., None], gt, np.nan)  # unlabelled points become NaN
    if normaliser == "inter_ocular":
        a, b = OUTER_EYE_CORNERS
        distance = np.linalg.norm(masked[:, a] - masked[:, b], axis=-1)
    elif normaliser == "inter_pupil":
        # An eye centre is the mean of all six eye points, so one unlabelled point makes it NaN.
        centres = eye_centres(masked)
        distance = np.linalg.norm(centres[:, 0] - centres[:, 1], axis=-1)
    else:
        with warnings.catch_warnings():  # an all-NaN row warns; its NaN is reported below
            warnings.simplefilter("ignore", RuntimeWarning)
            width = np.nanmax(masked[..., 0], axis=1) - np.nanmin(masked[..., 0], axis=1)
            height = np.nanmax(masked[..., 1], axis=1) - np.nanmin(masked[..., 1], axis=1)
        distance = np.sqrt(width * height) if normaliser == "box" else np.hypot(width, height)
    return distance


def normalised_point_errors(
    pred: np.ndarray,
    gt: np.ndarray,
    labelled: np.ndarray,
    normaliser: str,
    image_ids: Sequence[str] | None = None,
) -> np.ndarray:
    """Euclidean error of each point divided by its image's normaliser: (N, 68), NaN where unlabelled."""
    pred, gt, labelled, _ = _check_landmark_inputs(pred, gt, labelled)
    distance = normaliser_distance(gt, labelled, normaliser, image_ids)
    with np.errstate(invalid="ignore"):
        errors = np.linalg.norm(pred - gt, axis=-1) / distance[:, None]
    return np.where(labelled, errors, np.nan)


def _masked_row_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over axis 1 of values where mask is True; NaN for rows with no True entry."""
    counts = mask.sum(axis=1)
    totals = np.where(mask, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def per_image_nme(
    pred: np.ndarray,
    gt: np.ndarray,
    labelled: np.ndarray,
    normaliser: str,
    *,
    subset: np.ndarray | None = None,
    image_ids: Sequence[str] | None = None,
) -> np.ndarray:
    """Per-image NME (N,): mean normalised error over labelled points (and `subset`, if given).

    An image with no point in the selection gets NaN (e.g. occluded-point NME of an
    unoccluded face).
    """
    errors = normalised_point_errors(pred, gt, labelled, normaliser, image_ids)
    mask = np.asarray(labelled, dtype=bool)
    if subset is not None:
        mask = mask & np.asarray(subset, dtype=bool)
    return _masked_row_mean(np.nan_to_num(errors), mask)


def progress_nme(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray,
                 normaliser: str = PAPER_NORMALISER) -> float:
    """Mean of `per_image_nme` for watching training (the trainer's validation NME).

    A progress figure must not stop a run, so where `per_image_nme` raises it is lenient: images
    whose normaliser is undefined or zero (e.g. an unlabelled eye corner) are left out, a
    non-finite prediction at a labelled point gives NaN, and NaN when no image is left.
    """
    pred = np.asarray(pred, dtype=float)
    _, gt, labelled, _ = _check_landmark_inputs(None, gt, labelled)
    if pred.shape != gt.shape:
        raise MetricsInputError(f"pred has shape {pred.shape} but gt has shape {gt.shape}")
    if not np.isfinite(pred[labelled]).all():
        return float("nan")
    distance = _unchecked_normaliser_distance(gt, labelled, normaliser)
    defined = np.isfinite(distance) & (distance > 0)
    if not defined.any():
        return float("nan")
    return float(per_image_nme(pred[defined], gt[defined], labelled[defined], normaliser).mean())


# --------------------------------------------------------------------------- CED


@dataclass(frozen=True)
class CEDCurve:
    """Cumulative error distribution of per-image NME up to `threshold`."""

    thresholds: np.ndarray   # grid from 0 to threshold
    fraction: np.ndarray     # share of images with NME <= grid value
    threshold: float
    auc: float               # area under the curve / threshold, in [0, 1]
    failure_rate: float      # share of images with NME > threshold


def ced_curve(nme: np.ndarray, threshold: float, *, step: float = 1e-4) -> CEDCurve:
    """CED of per-image errors on a grid of `step`, AUC by the trapezoid rule normalised to [0, 1].

    The grid is fine (1001 points at threshold 0.1) so the trapezoid rule is within a few
    `step`s of the exact area under the empirical step function.
    """
    nme = np.asarray(nme, dtype=float).ravel()
    if nme.size == 0:
        raise MetricsInputError("ced_curve needs at least one error value")
    if not np.isfinite(nme).all():
        raise MetricsInputError(f"ced_curve got {int((~np.isfinite(nme)).sum())} non-finite error(s)")
    if threshold <= 0 or step <= 0:
        raise MetricsInputError(f"threshold and step must be positive, got {threshold} and {step}")
    num = int(round(threshold / step)) + 1
    grid = np.linspace(0.0, threshold, num)
    ordered = np.sort(nme)
    fraction = np.searchsorted(ordered, grid, side="right") / nme.size
    auc = float(trapezoid(fraction, grid) / threshold)
    failure_rate = float(np.mean(nme > threshold))
    return CEDCurve(grid, fraction, float(threshold), auc, failure_rate)


# --------------------------------------------------------------------------- landmark summary


def landmark_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    labelled: np.ndarray,
    occluded: np.ndarray,
    *,
    normaliser: str,
    thresholds: Sequence[float] = CED_THRESHOLDS,
    image_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Landmark accuracy under one named normaliser (required: there is no hidden default).

    Returns scalars
        normaliser, n_images, n_points, nme_mean, nme_median, nme_std,
        nme_visible, nme_occluded, n_visible_points, n_occluded_points,
        auc@T, failure_rate@T for each CED threshold T (keys like "auc@0.08"),
    and arrays
        per_image_nme (N,), per_landmark_nme (68,) (NaN for a landmark never labelled),
        ced: {T: CEDCurve}.

    nme_visible / nme_occluded pool every labelled visible / occluded (image, landmark) pair
    (each error divided by its own image's normaliser), so images without occluded points
    do not drop out or weigh in as NaN.
    """
    pred, gt, labelled, occluded = _check_landmark_inputs(pred, gt, labelled, occluded)
    errors = normalised_point_errors(pred, gt, labelled, normaliser, image_ids)
    image_nme = _masked_row_mean(np.nan_to_num(errors), labelled)
    visible_mask = labelled & ~occluded
    occluded_mask = labelled & occluded
    with np.errstate(invalid="ignore"):
        per_landmark = np.where(
            labelled.any(axis=0), np.nansum(errors, axis=0) / np.maximum(labelled.sum(axis=0), 1), np.nan
        )
    result: dict[str, Any] = {
        "normaliser": normaliser,
        "n_images": int(gt.shape[0]),
        "n_points": int(labelled.sum()),
        "nme_mean": float(image_nme.mean()),
        "nme_median": float(np.median(image_nme)),
        "nme_std": float(image_nme.std(ddof=1)) if image_nme.size > 1 else float("nan"),
        "nme_visible": _pooled_mean(errors, visible_mask),
        "nme_occluded": _pooled_mean(errors, occluded_mask),
        "n_visible_points": int(visible_mask.sum()),
        "n_occluded_points": int(occluded_mask.sum()),
    }
    curves = {}
    for threshold in thresholds:
        curve = ced_curve(image_nme, threshold)
        curves[threshold] = curve
        result[f"auc@{threshold:.2f}"] = curve.auc
        result[f"failure_rate@{threshold:.2f}"] = curve.failure_rate
    result["per_image_nme"] = image_nme
    result["per_landmark_nme"] = per_landmark
    result["ced"] = curves
    return result


def _pooled_mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def scalar_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar entries of a metrics dict (drops arrays, curves and tables): one table row."""
    return {k: v for k, v in metrics.items() if isinstance(v, (str, int, float, np.integer, np.floating))}


# --------------------------------------------------------------------------- occlusion


def _check_occlusion_inputs(
    prob: np.ndarray, occluded: np.ndarray, labelled: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prob = np.asarray(prob, dtype=float)
    if prob.ndim != 2 or prob.shape[1] != NUM_LANDMARKS:
        raise MetricsInputError(f"occlusion_prob must have shape (N, {NUM_LANDMARKS}), got {prob.shape}")
    n = prob.shape[0]
    occluded = _as_bool_mask(occluded, n, "occluded")
    labelled = _as_bool_mask(labelled, n, "labelled")
    bad = labelled & ~((prob >= 0) & (prob <= 1))  # also catches NaN
    if bad.any():
        image, landmark = np.argwhere(bad)[0]
        raise MetricsInputError(
            f"occlusion_prob must lie in [0, 1] at labelled points; image index {image}, landmark {landmark}"
            f" has {prob[image, landmark]!r}"
        )
    return prob, occluded, labelled


def occlusion_correct(
    prob: np.ndarray, occluded: np.ndarray, labelled: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """(N, 68) bool: the decision prob >= threshold matches the ground truth (False where unlabelled).

    This is the per-pair correctness that McNemar's test compares between two models.
    """
    prob, occluded, labelled = _check_occlusion_inputs(prob, occluded, labelled)
    return labelled & ((prob >= threshold) == occluded)


def reliability_table(prob: np.ndarray, positive: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Reliability-diagram data for the positive class on equal-width probability bins.

    One row per bin: bin_lower, bin_upper, count, mean_prob (mean predicted probability of
    "occluded"), frac_positive (observed share occluded). Bin edges as in
    sklearn.calibration.calibration_curve(strategy="uniform"); empty bins have NaN means.
    """
    prob = np.asarray(prob, dtype=float).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_of = np.searchsorted(edges[1:-1], prob, side="right")
    count = np.bincount(bin_of, minlength=n_bins)
    prob_sum = np.bincount(bin_of, weights=prob, minlength=n_bins)
    pos_sum = np.bincount(bin_of, weights=positive.astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.where(count > 0, prob_sum / count, np.nan)
        frac_positive = np.where(count > 0, pos_sum / count, np.nan)
    return pd.DataFrame(
        {"bin_lower": edges[:-1], "bin_upper": edges[1:], "count": count,
         "mean_prob": mean_prob, "frac_positive": frac_positive}
    )


def expected_calibration_error(prob: np.ndarray, positive: np.ndarray, n_bins: int = 10) -> float:
    """ECE = sum over bins of (bin share) * |observed positive share - mean predicted probability|."""
    table = reliability_table(prob, positive, n_bins)
    filled = table[table["count"] > 0]
    weights = filled["count"] / filled["count"].sum()
    return float((weights * (filled["frac_positive"] - filled["mean_prob"]).abs()).sum())


def occlusion_metrics(
    prob: np.ndarray,
    occluded: np.ndarray,
    labelled: np.ndarray,
    threshold: float = 0.5,
    *,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Occlusion classification over all labelled (image, landmark) pairs, positive = occluded.

    Accuracy is reported beside the class prior and the accuracy of always predicting the
    majority class, because a model that calls everything visible already scores 1 - prior.
    ROC-AUC and AP are NaN when only one class is present (they are undefined then).
    Keys: threshold, n_images, n_points, n_occluded, class_prior_occluded,
    majority_class_accuracy, accuracy, balanced_accuracy, precision, recall, f1, roc_auc,
    average_precision, ece, n_bins, tp, fp, tn, fn; and "reliability" (DataFrame).
    """
    prob, occluded, labelled = _check_occlusion_inputs(prob, occluded, labelled)
    y_true = occluded[labelled]
    y_prob = prob[labelled]
    if y_true.size == 0:
        raise MetricsInputError("occlusion_metrics: no labelled landmark in the input")
    y_pred = y_prob >= threshold
    prior = float(y_true.mean())
    both_classes = 0 < y_true.sum() < y_true.size
    result: dict[str, Any] = {
        "threshold": float(threshold),
        "n_images": int(prob.shape[0]),
        "n_points": int(y_true.size),
        "n_occluded": int(y_true.sum()),
        "class_prior_occluded": prior,
        "majority_class_accuracy": max(prior, 1.0 - prior),
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if both_classes else float("nan"),
        "precision": float(precision_score(y_true, y_pred, zero_division=0.0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0.0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(y_true, y_prob)) if both_classes else float("nan"),
        "average_precision": float(average_precision_score(y_true, y_prob)) if both_classes else float("nan"),
        "ece": expected_calibration_error(y_prob, y_true, n_bins),
        "n_bins": int(n_bins),
        "tp": int(np.sum(y_pred & y_true)),
        "fp": int(np.sum(y_pred & ~y_true)),
        "tn": int(np.sum(~y_pred & ~y_true)),
        "fn": int(np.sum(~y_pred & y_true)),
        "reliability": reliability_table(y_prob, y_true, n_bins),
    }
    return result


# --------------------------------------------------------------------------- breakdowns


def yaw_bins(yaw_deg: np.ndarray, edges: Sequence[float] = DEFAULT_YAW_EDGES) -> pd.Categorical:
    """Ordered categorical of |yaw| bins, e.g. "0-15", ..., "60+" (the last bin is open)."""
    yaw = np.abs(np.asarray(yaw_deg, dtype=float))
    if not np.isfinite(yaw).all():
        raise MetricsInputError("yaw_bins got a non-finite yaw angle")
    edges = [float(e) for e in edges]
    if edges[0] != 0.0 or np.any(np.diff(edges) <= 0):
        raise MetricsInputError(f"yaw bin edges must start at 0 and increase, got {edges}")
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])] + [f"{edges[-1]:g}+"]
    index = np.searchsorted(edges, yaw, side="right") - 1
    return pd.Categorical.from_codes(index, categories=labels, ordered=True)


def _group_order(groups: Sequence[Any] | pd.Categorical) -> tuple[np.ndarray, list[Any]]:
    if isinstance(groups, pd.Categorical):
        present = set(groups[~pd.isna(groups)])
        return np.asarray(groups, dtype=object), [c for c in groups.categories if c in present]
    values = np.asarray(groups, dtype=object)
    return values, sorted(set(values.tolist()), key=str)


def metrics_by_group(
    groups: Sequence[Any] | pd.Categorical,
    compute: Callable[[np.ndarray], dict[str, Any]],
    *,
    group_name: str = "group",
) -> pd.DataFrame:
    """Apply `compute(image_mask)` to each group of images; one row of scalar results per group."""
    values, order = _group_order(groups)
    rows = []
    for group in order:
        mask = values == group
        row = {group_name: group, "n_images": int(mask.sum())}
        row.update({k: v for k, v in scalar_summary(compute(mask)).items() if k != "n_images"})
        rows.append(row)
    return pd.DataFrame(rows)


def landmark_metrics_by_group(
    pred: np.ndarray,
    gt: np.ndarray,
    labelled: np.ndarray,
    occluded: np.ndarray,
    groups: Sequence[Any] | pd.Categorical,
    *,
    normaliser: str,
    group_name: str = "group",
) -> pd.DataFrame:
    """`landmark_metrics` per image group (occluder type, yaw bin, ...): one row per group."""
    pred, gt, labelled, occluded = _check_landmark_inputs(pred, gt, labelled, occluded)
    _check_group_length(groups, gt.shape[0])
    return metrics_by_group(
        groups,
        lambda m: landmark_metrics(pred[m], gt[m], labelled[m], occluded[m], normaliser=normaliser),
        group_name=group_name,
    )


def occlusion_metrics_by_group(
    prob: np.ndarray,
    occluded: np.ndarray,
    labelled: np.ndarray,
    groups: Sequence[Any] | pd.Categorical,
    threshold: float = 0.5,
    *,
    group_name: str = "group",
) -> pd.DataFrame:
    """`occlusion_metrics` per image group: one row per group."""
    prob, occluded, labelled = _check_occlusion_inputs(prob, occluded, labelled)
    _check_group_length(groups, prob.shape[0])
    return metrics_by_group(
        groups,
        lambda m: occlusion_metrics(prob[m], occluded[m], labelled[m], threshold),
        group_name=group_name,
    )


def _check_group_length(groups: Sequence[Any], n: int) -> None:
    if len(groups) != n:
        raise MetricsInputError(f"got {len(groups)} group labels for {n} images")


# --------------------------------------------------------------------------- per-image table


def per_image_table(
    pred: np.ndarray,
    gt: np.ndarray,
    labelled: np.ndarray,
    occluded: np.ndarray,
    occlusion_prob: np.ndarray | None,
    *,
    image_ids: Sequence[str],
    subjects: Sequence[str],
    normalisers: Sequence[str] = NORMALISERS,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """One row per image, the unit the paired tests and the subject bootstrap consume.

    Columns: image_id, subject, n_labelled, n_occluded, then for each normaliser X:
    nme_X, nme_visible_X, nme_occluded_X (NaN when the image has no such point); and,
    when occlusion_prob is given, occ_correct, occ_total, occ_accuracy at `threshold`.
    """
    pred, gt, labelled, occluded = _check_landmark_inputs(pred, gt, labelled, occluded)
    n = gt.shape[0]
    if len(image_ids) != n or len(subjects) != n:
        raise MetricsInputError(f"need {n} image_ids and subjects, got {len(image_ids)} and {len(subjects)}")
    table: dict[str, Any] = {
        "image_id": [str(i) for i in image_ids],
        "subject": [str(s) for s in subjects],
        "n_labelled": labelled.sum(axis=1),
        "n_occluded": (labelled & occluded).sum(axis=1),
    }
    for normaliser in normalisers:
        errors = np.nan_to_num(normalised_point_errors(pred, gt, labelled, normaliser, image_ids))
        table[f"nme_{normaliser}"] = _masked_row_mean(errors, labelled)
        table[f"nme_visible_{normaliser}"] = _masked_row_mean(errors, labelled & ~occluded)
        table[f"nme_occluded_{normaliser}"] = _masked_row_mean(errors, labelled & occluded)
    if occlusion_prob is not None:
        correct = occlusion_correct(occlusion_prob, occluded, labelled, threshold)
        table["occ_correct"] = correct.sum(axis=1)
        table["occ_total"] = labelled.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            table["occ_accuracy"] = table["occ_correct"] / table["occ_total"]
    return pd.DataFrame(table)


# --------------------------------------------------------------------------- head pose


def _check_rotations(rotation: np.ndarray, name: str, tol: float = 1e-3) -> np.ndarray:
    rotation = np.asarray(rotation, dtype=float)
    if rotation.ndim != 3 or rotation.shape[1:] != (3, 3):
        raise MetricsInputError(f"{name} must have shape (N, 3, 3), got {rotation.shape}")
    gram = rotation @ np.swapaxes(rotation, 1, 2)
    bad = ~np.isfinite(rotation).all(axis=(1, 2)) | (np.abs(gram - np.eye(3)).max(axis=(1, 2)) > tol)
    bad |= np.linalg.det(rotation) < 0
    if bad.any():
        raise MetricsInputError(f"{name}: image index {int(np.flatnonzero(bad)[0])} is not a rotation matrix")
    return rotation


def geodesic_error_deg(pred_rotation: np.ndarray, gt_rotation: np.ndarray) -> np.ndarray:
    """Angle (degrees) of the rotation taking gt to pred, per image (N,).

    Uses atan2(|sin|, cos) of the relative rotation instead of arccos((trace - 1) / 2), which
    loses precision for small angles.
    """
    pred_rotation = _check_rotations(pred_rotation, "pred_rotation")
    gt_rotation = _check_rotations(gt_rotation, "gt_rotation")
    if pred_rotation.shape != gt_rotation.shape:
        raise MetricsInputError(f"pred_rotation {pred_rotation.shape} and gt_rotation {gt_rotation.shape} differ")
    relative = pred_rotation @ np.swapaxes(gt_rotation, 1, 2)
    cos = (np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0
    axis = np.stack([relative[:, 2, 1] - relative[:, 1, 2],
                     relative[:, 0, 2] - relative[:, 2, 0],
                     relative[:, 1, 0] - relative[:, 0, 1]], axis=-1)
    sin = np.linalg.norm(axis, axis=-1) / 2.0
    return np.rad2deg(np.arctan2(sin, cos))


def _wrap_degrees(angle: np.ndarray) -> np.ndarray:
    """Map angle differences into [-180, 180)."""
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0


def pose_metrics(pred_rotation: np.ndarray, gt_rotation: np.ndarray) -> dict[str, Any]:
    """Head-pose errors: MAE of yaw, pitch, roll (m3mstl.core.pose convention) and geodesic error, degrees.

    Keys: n_images, mae_yaw, mae_pitch, mae_roll, mae_mean (mean of the three),
    geodesic_mean, geodesic_median; arrays per_image_geodesic (N,), per_image_abs_euler (N, 3).
    """
    geodesic = geodesic_error_deg(pred_rotation, gt_rotation)
    abs_euler = np.abs(_wrap_degrees(euler_from_rotation(pred_rotation) - euler_from_rotation(gt_rotation)))
    mae = abs_euler.mean(axis=0)
    return {
        "n_images": int(geodesic.size),
        "mae_yaw": float(mae[0]),
        "mae_pitch": float(mae[1]),
        "mae_roll": float(mae[2]),
        "mae_mean": float(mae.mean()),
        "geodesic_mean": float(geodesic.mean()),
        "geodesic_median": float(np.median(geodesic)),
        "per_image_geodesic": geodesic,
        "per_image_abs_euler": abs_euler,
    }
