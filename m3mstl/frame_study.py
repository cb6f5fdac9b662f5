"""Notebook 14's measurements: from a whole camera frame to landmarks and a canthus temperature.

A deployed pipeline has no landmark-extent box: `m3mstl.detect` boxes the visible head, and the model
gets that box. The models of the main reproduction were trained on crops around the extent of the 68
landmarks and fail on head boxes (docs/thermometry.md: 6x their true-box error even with a fitted
mapping and refinement). So this study trains the one-stage baseline on crops around the **visible
head** (SynthTFD68 full frames) in the ways of `FRAME_BOX_CANDIDATES`, chooses one on the VALIDATION
split's frames through the detector, trains it with several seeds, and measures on the test frames:

- the detectors' recall and IoU by occluder and pose (`detect.evaluate_detector`): the rule-based one
  and the trained one (`m3mstl.face_detector`, several seeds), one chosen on the VALIDATION frames
  (`detector_comparison`, `choose_detector`) for the rest of the pipeline;
- median NME from the detector's boxes against the same model given the true head boxes, per training
  seed (`pipeline_nme_rows`), beside the landmark-extent model of the main reproduction on the same
  frames (true landmark box, and the detector's box mapped and refined as `m3mstl predict` does);
- the inner-canthus reading from the detector's faces (`m3mstl.thermometry`, settings from the
  training and validation splits).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

#: The ways of training a model for the detector's boxes that notebook 14 compares on VALIDATION frames
#: (each the default baseline otherwise). Crops around the true visible head (`data.face_box = "head"`),
#: with box jitter in augmentation (`AugmentConfig.box_jitter`: side scaled by up to 1 + j, centre
#: moved by up to j / 2 of the crop) to cover the detector's errors (version 1: mean IoU 0.79 with the true head
#: box, benchmarks/bench_detector.py), and with a relative margin (`data.margin_fraction`) since the
#: detector's bottom edge sits a median 10 % of the face above the true head's; or crops around the
#: detector's own boxes (`data.face_box = "detector"`), so training sees exactly what the pipeline gives.
FRAME_BOX_CANDIDATES: dict[str, dict[str, Any]] = {
    "head box": {"data.face_box": "head", "data.augment": {"box_jitter": 0.0}},
    "head box, jitter 0.15": {"data.face_box": "head", "data.augment": {"box_jitter": 0.15}},
    "head box, jitter 0.3": {"data.face_box": "head", "data.augment": {"box_jitter": 0.3}},
    "head box, margin 0.15, jitter 0.15": {"data.face_box": "head", "data.margin_fraction": 0.15,
                                           "data.augment": {"box_jitter": 0.15}},
    "detector box, margin 0.1": {"data.face_box": "detector", "data.margin_fraction": 0.1},
}
#: A face the detector misses has no landmarks: its NME counts as this (a failure at any threshold).
MISSED_FACE_NME = np.inf
FAILURE_THRESHOLD = 0.10


def face_nmes(landmarks: np.ndarray, records: Sequence[Any]) -> np.ndarray:
    """Per-face inter-ocular NME of predicted (N, 68, 2) landmarks; a face with no prediction (NaN
    rows: the detector missed it) gets MISSED_FACE_NME."""
    from m3mstl.metrics import per_image_nme

    landmarks = np.asarray(landmarks, dtype=float)
    missing = ~np.isfinite(landmarks).all(axis=(1, 2))
    out = np.full(len(records), MISSED_FACE_NME)
    if (~missing).any():
        chosen = [r for r, m in zip(records, missing) if not m]
        out[~missing] = per_image_nme(landmarks[~missing], np.stack([r.landmarks for r in chosen]),
                                      np.stack([np.asarray(r.labelled) for r in chosen]), normaliser="inter_ocular")
    return out


def pipeline_nme_rows(predictions: dict[str, np.ndarray], records: Sequence[Any], **labels: Any) -> list[dict]:
    """Two rows for one run's `frames.frame_predictions`: the true box and the detector's box, each
    with median NME, failure rate at 0.10 (a missed face counts as a failure) and the share of faces
    the detector found; the detector row also holds the ratio of its median to the true box's."""
    true_nme = face_nmes(predictions["true_landmarks"], records)
    detector_nme = face_nmes(predictions["detector_landmarks"], records)
    rows = []
    for box, nme in (("true box", true_nme), ("detector box", detector_nme)):
        rows.append({**labels, "box": box, "faces": len(records), "median_nme": float(np.median(nme)),
                     "failure_rate@0.10": float(np.mean(nme > FAILURE_THRESHOLD)),
                     "faces_found": float(np.mean(predictions["detected"])) if box == "detector box" else 1.0})
    rows[1]["ratio_to_true_box"] = rows[1]["median_nme"] / rows[0]["median_nme"]
    rows[0]["ratio_to_true_box"] = 1.0
    return rows


def detector_comparison(finders: dict[str, list[Any]], records: Sequence[Any]) -> pd.DataFrame:
    """Each detector's `detect.summarise_detection` on `records`, mean and sd over its training seeds
    per group. `finders`: name -> one face finder per training seed (`detect.face_finder`; None is
    the rule-based detector with its default settings, which has one "seed")."""
    from m3mstl.detect import evaluate_detector, summarise_detection

    tables = [summarise_detection(evaluate_detector(None, finder, records=records)).assign(detector=name, seed=seed)
              for name, per_seed in finders.items() for seed, finder in enumerate(per_seed)]
    return summarise_over_seeds(pd.concat(tables, ignore_index=True), by=["detector", "breakdown", "group"])


def choose_detector(validation: pd.DataFrame) -> str:
    """The detector with the highest recall over all validation faces (`detector_comparison`'s
    table); on a tie, the higher mean IoU, then the fewer false detections."""
    overall = validation[validation["breakdown"] == "all"].copy()
    overall["fewer_false"] = -overall["false_positives_per_frame"]
    best = overall.sort_values(["recall", "mean_iou", "fewer_false"], ascending=False, kind="stable")
    return str(best["detector"].iloc[0])


def summarise_over_seeds(rows: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean and sample sd over training seeds of each numeric column, per group `by`."""
    constant = ["faces"]  # the same test faces for every seed
    numeric = [c for c in rows.columns
               if c not in (*by, "seed", *constant) and pd.api.types.is_numeric_dtype(rows[c])]
    grouped = rows.groupby(list(by), sort=False)
    mean = grouped[numeric].mean()
    sd = grouped[numeric].std(ddof=1).add_suffix("_sd")
    table = mean.join(sd)
    table.insert(0, "faces", grouped["faces"].first())
    table.insert(0, "n_seeds", grouped.size())
    ordered = ["n_seeds", "faces"] + [c for pair in zip(numeric, [f"{c}_sd" for c in numeric]) for c in pair]
    return table[ordered].reset_index()


def detected_subset(predictions: dict[str, np.ndarray], records: Sequence[Any]):
    """The records the detector found, with the detector-box landmarks and occlusion probabilities."""
    found = np.asarray(predictions["detected"], dtype=bool)
    return ([r for r, f in zip(records, found) if f], predictions["detector_landmarks"][found],
            predictions["detector_occlusion_prob"][found])
