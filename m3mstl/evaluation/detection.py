"""How well a face detector finds the faces of generated whole frames (`m3mstl synth --full-frame`):
recall at an IoU threshold, mean IoU and false detections per frame, by occluder and pose."""
from __future__ import annotations

import pandas as pd

from m3mstl.detection.base import FaceFinder, match_detections
from m3mstl.detection.rule_based import DetectorConfig, detector_description, face_finder


def pose_bin(yaw: float, pitch: float) -> str:
    """Coarse pose group by the larger of |yaw| and |pitch|."""
    turn = max(abs(yaw), abs(pitch))
    return "frontal (<15 deg)" if turn < 15 else "turned (15-45 deg)" if turn < 45 else "profile (>=45 deg)"


def evaluate_detector(dataset, config: DetectorConfig | FaceFinder | None = None, *, iou_threshold: float = 0.5,
                      box: str = "head_bbox", progress: bool = False, records=None) -> pd.DataFrame:
    """Per-face detection results on a full-frame dataset (a `FaceDataset` of `synth --full-frame`),
    on all its records or on `records` (for example one split's).

    The faces are found by the rule-based detector with settings `config` (None: the defaults), or
    by `config` itself when it is a face finder (`face_finder`: a trained detector).
    Columns: image_id, occluder_type, pose, iou (best matched detection, 0 if none), found
    (iou >= iou_threshold), score, n_detections (in the frame), true box. `box` names the
    annotation field holding the true box ("head_bbox", or "bbox" for the landmark extent).
    """
    from m3mstl.data.coco import load_temperature
    from m3mstl.data.records import occluder_group

    rows = []
    find = face_finder(config)
    records = dataset.records if records is None else list(records)
    if progress:
        from tqdm.auto import tqdm
        records = tqdm(records, desc="detect", unit="frame")
    for record in records:
        truth = record.bbox if box == "bbox" else record.extras.get(box)
        if truth is None:
            raise ValueError(f"{record.image_id}: no {box!r} in its annotation (generate with m3mstl synth)")
        temperature = load_temperature(record)
        detections = find(temperature)
        (value, match), = match_detections([tuple(truth)], detections)
        pose = record.extras.get("head_pose", {"yaw": 0.0, "pitch": 0.0})
        rows.append({
            "image_id": record.image_id,
            "occluder_type": occluder_group([o.get("type", "unknown") for o in record.extras.get("occluders", [])]),
            "pose": pose_bin(pose["yaw"], pose["pitch"]),
            "iou": value, "found": value >= iou_threshold,
            "score": None if match is None else match.score, "n_detections": len(detections),
            "true_box": list(truth), "detected_box": None if match is None else list(match.box),
        })
    table = pd.DataFrame(rows)
    table.attrs["settings"] = {"iou_threshold": iou_threshold, "box": box, **detector_description(config)}
    return table


def summarise_detection(per_face: pd.DataFrame) -> pd.DataFrame:
    """Recall at the IoU threshold, mean IoU and faces per group: all, by occluder (single types and
    "several"), by pose."""
    rows = []

    def add(kind: str, group: str, part: pd.DataFrame) -> None:
        rows.append({"breakdown": kind, "group": group, "faces": len(part), "recall": float(part["found"].mean()),
                     "mean_iou": float(part["iou"].mean()),
                     "false_positives_per_frame": float((part["n_detections"] - part["found"]).mean())})

    add("all", "all", per_face)
    # One row per single occluder type and "several" for combinations (as the model tables group
    # them): exact combinations split a test split into groups of one or two faces.
    from m3mstl.data.records import single_occluder_groups

    grouped = per_face.assign(occluder_type=single_occluder_groups(per_face["occluder_type"]))
    for column in ("occluder_type", "pose"):
        for group, part in grouped.groupby(column, sort=True):
            add(column, str(group), part)
    table = pd.DataFrame(rows)
    table.attrs["settings"] = dict(per_face.attrs.get("settings", {}))
    return table
