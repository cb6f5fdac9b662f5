"""`m3mstl evaluate`: metrics of a finished run, computed from its stored predictions.

Writes into the run record:
    metrics_<split>.json     every scalar metric (landmarks under each named normaliser,
                             occlusion with the class prior beside accuracy, pose when predicted,
                             breakdowns by occluder and by yaw bin)
    per_image_<split>.csv    one row per image: the unit of the paired tests

With ``--data OTHER_DIR`` the trained model is applied to another TFD68-layout dataset
(all its images) and the results go to ``external/<fingerprint>/`` with that
dataset's fingerprint and path recorded.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m3mstl import paths
from m3mstl.errors import ConfigError, RunError
from m3mstl.core.fileio import atomic_path, json_safe, write_json_atomic
from m3mstl.evaluation.metrics import NORMALISERS, PAPER_NORMALISER, landmark_metrics, landmark_metrics_by_group, occlusion_metrics, occlusion_metrics_by_group, per_image_table, pose_metrics, scalar_summary, yaw_bins
from m3mstl.data.records import single_occluder_groups
from m3mstl.runs.predictions import load_predictions


def metrics_from_predictions(preds: dict[str, np.ndarray]) -> tuple[dict[str, Any], pd.DataFrame]:
    """All metrics of one prediction file; unlabelled landmarks (v = 0) are left out everywhere."""
    visibility = preds["visibility"]
    labelled = visibility > 0
    occluded = visibility == 1
    # A landmarks-only model (the classical peer) stores no occlusion_prob: its occlusion
    # metrics are absent (None), never a number.
    pred, gt, prob = preds["pred_landmarks"], preds["gt_landmarks"], preds.get("occlusion_prob")
    ids, subjects = preds["image_id"], preds["subject"]
    out: dict[str, Any] = {"n_images": int(len(ids)), "paper_normaliser": PAPER_NORMALISER, "landmarks": {}}
    for normaliser in NORMALISERS:
        out["landmarks"][normaliser] = scalar_summary(
            landmark_metrics(pred, gt, labelled, occluded, normaliser=normaliser, image_ids=ids))
    out["occlusion"] = None
    if prob is not None:
        occ = occlusion_metrics(prob, occluded, labelled)
        out["occlusion"] = scalar_summary(occ)
        out["occlusion"]["reliability"] = occ["reliability"].to_dict(orient="list")
    table = per_image_table(pred, gt, labelled, occluded, prob, image_ids=ids, subjects=subjects)
    exact_occluders = preds.get("occluder_group")
    groups = {"occluder": None if exact_occluders is None else single_occluder_groups(exact_occluders)}
    if exact_occluders is not None:
        table["occluders"] = np.asarray(exact_occluders, dtype=object)  # the exact combination
    if "gt_pose" in preds:
        groups["yaw_bin"] = yaw_bins(preds["gt_pose"][:, 0])
        table["yaw"] = preds["gt_pose"][:, 0]
    for name, labels in groups.items():
        if labels is None:
            continue
        table[name] = np.asarray(labels, dtype=object)
        lm = landmark_metrics_by_group(pred, gt, labelled, occluded, labels, normaliser=PAPER_NORMALISER,
                                       group_name=name)
        oc = None if prob is None else occlusion_metrics_by_group(prob, occluded, labelled, labels, group_name=name)
        out[f"by_{name}"] = {"landmarks": lm.to_dict(orient="records"),
                             "occlusion": None if oc is None else oc.to_dict(orient="records")}
    if "pred_rotation" in preds and "gt_rotation" in preds:
        pose = pose_metrics(preds["pred_rotation"], preds["gt_rotation"])
        out["pose"] = scalar_summary(pose)
        table["pose_geodesic_deg"] = pose["per_image_geodesic"]
        for i, angle in enumerate(("yaw", "pitch", "roll")):
            table[f"pose_abs_err_{angle}"] = pose["per_image_abs_euler"][:, i]
    return out, table


#: Arrays every predictions file has (`m3mstl.runs.predictions`), one row per image.
REQUIRED_PREDICTION_ARRAYS = ("pred_landmarks", "gt_landmarks", "visibility", "image_id", "subject")


def check_predictions(preds: dict[str, np.ndarray], pred_path: Path) -> None:
    """A RunError naming the file when its arrays cannot be scored: one missing, none holding an
    image, or arrays of different image counts or shapes."""
    missing = [name for name in REQUIRED_PREDICTION_ARRAYS if name not in preds]
    if missing:
        raise RunError(pred_path, f"not a predictions file of this project: no array {', '.join(missing)}")
    count = len(preds["image_id"]) if np.ndim(preds["image_id"]) else 0
    if count == 0:
        raise RunError(pred_path, "holds no images: nothing to evaluate")
    shapes = {"pred_landmarks": (count, 68, 2), "gt_landmarks": (count, 68, 2), "visibility": (count, 68),
              "subject": (count,), "occlusion_prob": (count, 68)}
    for name, shape in shapes.items():
        if name in preds and tuple(np.shape(preds[name])) != shape:
            raise RunError(pred_path, f"array {name!r} has shape {tuple(np.shape(preds[name]))}, expected {shape} "
                                      f"for its {count} images: the arrays do not belong together")


def evaluate_predictions(pred_path: Path, out_dir: Path, split: str, extra: dict[str, Any] | None = None) -> dict:
    from m3mstl.evaluation.metrics import MetricsInputError

    preds = load_predictions(pred_path)
    check_predictions(preds, pred_path)
    try:
        metrics, table = metrics_from_predictions(preds)
    except KeyError as error:
        raise RunError(pred_path, f"not a predictions file of this project: no array {error}") from None
    except MetricsInputError as error:  # NaN predictions, mismatched arrays: the file cannot be scored
        raise RunError(pred_path, f"cannot be scored: {error}") from None
    metrics["split"] = split
    metrics.update(extra or {})
    write_json_atomic(out_dir / f"metrics_{split}.json", metrics)
    with atomic_path(out_dir / f"per_image_{split}.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return metrics


def evaluate_run(run_dir: Path, split: str = "test") -> dict[str, Any]:
    """Metrics of a run's stored predictions on `split` (also done for val when present)."""
    run_dir = Path(run_dir)
    results = {}
    for name in dict.fromkeys([split, "val"]):
        path = run_dir / f"predictions_{name}.npz"
        if not path.is_file():
            if name == split:
                if not run_dir.is_dir():
                    raise RunError(run_dir, "run folder not found")
                raise RunError(path, f"no predictions for split {name!r}; is the run finished?")
            continue
        results[name] = evaluate_predictions(path, run_dir, name)
    return results[split]


def evaluate_on_dataset(run_dir: Path, data_dir: Path, device: str = "auto") -> dict[str, Any]:
    """Apply a finished run's model to every image of another TFD68-layout dataset."""
    from m3mstl.config import validate_config
    from m3mstl.data.validate import check_dataset
    from m3mstl.core.device import resolve_device
    from m3mstl.infer.predict import predict_split, prepare_eval_data
    from m3mstl.runs import data_fingerprint, load_config, load_model

    run_dir, data_dir = Path(run_dir), Path(data_dir)
    config = load_config(run_dir)
    try:
        validate_config(config)
    except ConfigError as error:  # the run's own record is at fault, not an option given now
        raise RunError(run_dir / "config.json", str(error)) from None
    dev = resolve_device(device)
    fingerprint = data_fingerprint(data_dir)
    check_dataset(data_dir, fingerprint)  # every check of `m3mstl validate`, before any compute
    model = load_model(run_dir, device=str(dev))
    data = prepare_eval_data(config, data_dir)
    out_dir = run_dir / "external" / fingerprint
    pred_path = predict_split(model, data, "all", out_dir / "predictions_all.npz",
                              batch_size=config.data.eval_batch_size, device=dev)
    return evaluate_predictions(pred_path, out_dir, "all",
                                {"data_dir": paths.portable_data_path(data_dir), "data_fingerprint": fingerprint})


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a run folder runs/<model>/<run-id>")
    parser.add_argument("--split", default="test", choices=["test", "val"])
    parser.add_argument("--data", type=Path, default=None, help="evaluate on another TFD68-layout dataset")
    parser.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    if args.data is not None:
        metrics = evaluate_on_dataset(args.run_dir, args.data, args.device)
    else:
        metrics = evaluate_run(args.run_dir, args.split)
    inter_ocular = metrics["landmarks"][PAPER_NORMALISER]
    occ = metrics["occlusion"] or {}  # None for a landmarks-only model
    summary = {"n_images": metrics["n_images"],
               "nme_inter_ocular_mean": inter_ocular["nme_mean"],
               "nme_inter_ocular_median": inter_ocular["nme_median"],
               "occlusion_accuracy": occ.get("accuracy"), "class_prior_occluded": occ.get("class_prior_occluded"),
               "roc_auc": occ.get("roc_auc"), "average_precision": occ.get("average_precision")}
    # Undefined numbers (ROC-AUC with one class present) are JSON null, not the invalid NaN.
    print(json.dumps(json_safe(summary), indent=2, allow_nan=False))
    return 0
