"""Look at a TFD68-layout dataset: summary tables for ANY `FaceDataset` (its contact sheet is
`m3mstl.report.dataset_figures.contact_sheet`).

Everything here works from what the layout stores, so it serves the real TFD68, converted
datasets and SynthTFD68 alike. Fields only some datasets carry (head pose, occluder lists,
occlusion causes, true skin temperatures) add columns when present and are skipped otherwise.

    ds = read_dataset("data/synth-default")
    long = landmark_table(ds)                           # one row per (image, landmark)
    region_temperature_table(long), occlusion_rate_per_landmark(long),
    occlusion_by_occluder(ds, long), pose_coverage(ds)  # pandas DataFrames
    (the table helpers also take the dataset itself and build the long table on the way)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from m3mstl.data.coco import load_image, load_temperature
from m3mstl.data.records import VIS_OCCLUDED, VIS_UNLABELLED, VIS_VISIBLE, FaceDataset, FaceRecord
from m3mstl.core.landmarks import NAMES, NUM_LANDMARKS, REGION_OF

def landmark_table(dataset: FaceDataset, *, sample_temperature: bool = True) -> pd.DataFrame:
    """One row per (image, landmark): visibility, occlusion cause and temperatures when known.

    `temperature_c` is the temperature map at the landmark's pixel (floor of its continuous
    coordinates); `skin_temperature_c` the dataset's own true skin value when it stores one.
    """
    frames = []
    has_maps = sample_temperature and dataset.temperature_encoding != "none"
    for record in dataset.records:
        vis = record.visibility.astype(int)
        frame = {
            "image_id": record.image_id, "subject": record.subject, "landmark": np.arange(NUM_LANDMARKS),
            "name": NAMES, "region": REGION_OF, "visibility": vis,
            "labelled": vis > VIS_UNLABELLED, "occluded": vis == VIS_OCCLUDED,
            "x": record.landmarks[:, 0], "y": record.landmarks[:, 1],
        }
        cause = record.extras.get("occlusion_cause")
        if isinstance(cause, list) and len(cause) == NUM_LANDMARKS:
            frame["cause"] = [str(c) for c in cause]
        skin = record.extras.get("skin_temperature_c")
        if isinstance(skin, list) and len(skin) == NUM_LANDMARKS:
            frame["skin_temperature_c"] = np.array([np.nan if v is None else v for v in skin], dtype=float)
        if has_maps and record.temperature_path is not None:
            temperature = load_temperature(record)
            col = np.floor(record.landmarks[:, 0])
            row = np.floor(record.landmarks[:, 1])
            inside = (np.isfinite(col) & np.isfinite(row) & (col >= 0) & (row >= 0)
                      & (col < record.width) & (row < record.height))
            values = np.full(NUM_LANDMARKS, np.nan)
            values[inside] = temperature[row[inside].astype(int), col[inside].astype(int)]
            frame["temperature_c"] = values
        frames.append(pd.DataFrame(frame))
    if not frames:
        return pd.DataFrame(columns=["image_id", "subject", "landmark", "name", "region", "visibility"])
    return pd.concat(frames, ignore_index=True)


def _long(data: FaceDataset | pd.DataFrame, *, sample_temperature: bool = True) -> pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else landmark_table(data, sample_temperature=sample_temperature)


def region_temperature_table(data: FaceDataset | pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and count of the temperature at landmarks per region, visible vs occluded.

    `data` is a dataset or its `landmark_table`. Includes the true skin temperature beside the
    map reading when the dataset stores it, so the gap between them shows what occluders do to
    a temperature read at a landmark.
    """
    long = _long(data)
    if "temperature_c" not in long and "skin_temperature_c" not in long:
        raise ValueError("the table has no temperature columns (dataset without temperature maps?)")
    rows = long[long["labelled"]].copy()
    rows["state"] = np.where(rows["occluded"], "occluded", "visible")
    values = [c for c in ("temperature_c", "skin_temperature_c") if c in rows]
    table = rows.groupby(["region", "state"])[values].agg(["mean", "std", "count"])
    table.columns = [f"{value}_{stat}" for value, stat in table.columns]
    return table.reset_index()


def occlusion_rate_per_landmark(data: FaceDataset | pd.DataFrame) -> pd.DataFrame:
    """Per landmark: labelled count, occluded count and rate; with causes, the rate per cause.

    `data` is a dataset or its `landmark_table`.
    """
    long = _long(data, sample_temperature=False)
    labelled = long[long["labelled"]]
    grouped = labelled.groupby("landmark")
    table = pd.DataFrame({
        "name": grouped["name"].first(),
        "region": grouped["region"].first(),
        "labelled": grouped.size(),
        "occluded": grouped["occluded"].sum().astype(int),
    })
    table["occlusion_rate"] = table["occluded"] / table["labelled"]
    if "cause" in labelled:
        causes = pd.crosstab(labelled["landmark"], labelled["cause"], normalize="index")
        causes = causes.drop(columns=["none"], errors="ignore").add_prefix("rate_")
        table = table.join(causes)
    return table.reindex(range(NUM_LANDMARKS)).reset_index()


def _occluder_types(record: FaceRecord) -> list[str]:
    occluders = record.extras.get("occluders")
    if not isinstance(occluders, list):
        return []
    return sorted({str(o.get("type")) for o in occluders if isinstance(o, dict) and o.get("type")})


def occlusion_by_occluder(dataset: FaceDataset, long: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per occluder type (and "none"): images wearing it, their share and how much they hide.

    `occluded_share` is the share of labelled landmarks occluded in those images; with causes,
    `hidden_by_it` counts only the landmarks this occluder type hides, per image.
    """
    long = _long(dataset, sample_temperature=False) if long is None else long
    images = len(dataset.records)
    per_image = long[long["labelled"]].groupby("image_id").agg(labelled=("labelled", "sum"),
                                                                  occluded=("occluded", "sum"))
    rows = []
    types_of = {r.image_id: _occluder_types(r) for r in dataset.records}
    kinds = sorted({t for ts in types_of.values() for t in ts})
    for kind in kinds + ["none"]:
        ids = [i for i, ts in types_of.items() if (kind in ts) or (kind == "none" and not ts)]
        if not ids:
            continue
        sub = per_image.reindex(ids).dropna()
        row = {"occluder": kind, "images": len(ids), "image_share": len(ids) / max(images, 1),
               "occluded_share": float(sub["occluded"].sum() / max(sub["labelled"].sum(), 1))}
        if "cause" in long and kind != "none":
            hidden = long[(long["image_id"].isin(ids)) & (long["cause"] == kind)]
            row["hidden_by_it_per_image"] = len(hidden) / len(ids)
            by_region = hidden.groupby("region").size() / len(ids)
            for region, value in by_region.items():
                row[f"hidden_{region}_per_image"] = float(value)
        rows.append(row)
    return pd.DataFrame(rows).fillna(0.0)


def pose_coverage(dataset: FaceDataset, *, yaw_step: float = 15.0, pitch_step: float = 10.0) -> pd.DataFrame:
    """Image counts per (pitch bin, yaw bin) from the stored head poses; empty without poses."""
    yaw, pitch = [], []
    for record in dataset.records:
        pose = record.extras.get("head_pose")
        if isinstance(pose, dict) and "yaw" in pose and "pitch" in pose:
            yaw.append(float(pose["yaw"]))
            pitch.append(float(pose["pitch"]))
    if not yaw:
        return pd.DataFrame()
    yaw_a, pitch_a = np.asarray(yaw), np.asarray(pitch)

    def bins(values: np.ndarray, step: float) -> pd.Categorical:
        lo = step * np.floor(values.min() / step)
        hi = step * (np.floor(values.max() / step) + 1)
        edges = np.arange(lo, hi + step / 2, step)
        return pd.cut(values, edges, right=False)

    table = pd.crosstab(bins(pitch_a, pitch_step), bins(yaw_a, yaw_step), rownames=["pitch"], colnames=["yaw"],
                        dropna=False)
    return table


def dataset_summary(dataset: FaceDataset, long: pd.DataFrame | None = None) -> pd.Series:
    """Headline numbers: images, subjects, images per subject, occlusion prior, encodings."""
    long = _long(dataset, sample_temperature=False) if long is None else long
    labelled = long[long["labelled"]]
    counts = pd.Series([r.subject for r in dataset.records]).value_counts()
    with_occluders = sum(1 for r in dataset.records if _occluder_types(r))
    return pd.Series({
        "images": len(dataset.records),
        "subjects": len(counts),
        "images_per_subject_min": int(counts.min()) if len(counts) else 0,
        "images_per_subject_max": int(counts.max()) if len(counts) else 0,
        "occluded_landmark_share": float(labelled["occluded"].mean()) if len(labelled) else float("nan"),
        "images_with_occluders": with_occluders,
        "temperature_encoding": dataset.temperature_encoding,
        "keypoint_layout": dataset.keypoint_layout,
    })
