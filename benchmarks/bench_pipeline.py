"""End-to-end landmark error on whole frames: the detector's box against the true box, same model.

    python -m benchmarks.bench_pipeline --run RUN_DIR [--frames 160] [--seed 216] [--fit-faces 300]

A run trained on head boxes (`data.face_box = "head"`) is scored with the true head box and with the
detector's box as it is (no mapping, no refinement); the rest below is for landmark-extent runs.

Generates `--frames` full frames (`m3mstl synth --full-frame`, 10 per subject, a seed the default
data does not use) under build/pipeline unless they exist, then runs the finished run RUN_DIR on each
frame three ways (m3mstl.studies.camera_frames.pipeline_nme): with the true landmark-extent box (as in training),
with the detector's head box as it is, and with that box mapped to a landmark-extent box by
m3mstl.detection.head_box.fit_head_box_mapping, fitted on `--fit-faces` faces of the default data's TRAINING
split re-rendered as whole frames (m3mstl.studies.camera_frames.training_frame_boxes), from the detector's boxes
on them. Prints median and mean NME (outer-eye-corner normalised) of each and the ratio of medians
to the true-box median, and the same for the mapped box followed by 1, 2 and 3 passes of the model on
the extent of its own landmarks (m3mstl.infer.predict.predict_refined; `m3mstl predict` makes
frames.REFINE_PASSES of them); writes the per-frame table as CSV next to the frames. Issue 16 asks
the ratio to be at most 1.10. Model inference only, no training. The fitted mapping is what
m3mstl.detection.head_box.SYNTH_HEAD_TO_LANDMARK_BOX records.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def mapping_residuals(head_boxes: np.ndarray, landmark_boxes: np.ndarray, mapping) -> pd.DataFrame:
    """Quantiles of the mapped head box's error against the landmark extent: centre offsets in units
    of the extent's geometric-mean side, and log ratios of width and height."""
    mapped = np.array([mapping.apply(tuple(box)) for box in head_boxes])
    land = np.asarray(landmark_boxes, dtype=float)
    side = np.sqrt(land[:, 2] * land[:, 3])
    errors = pd.DataFrame({
        "centre_x": (mapped[:, 0] + mapped[:, 2] / 2 - land[:, 0] - land[:, 2] / 2) / side,
        "centre_y": (mapped[:, 1] + mapped[:, 3] / 2 - land[:, 1] - land[:, 3] / 2) / side,
        "log_width": np.log(mapped[:, 2] / land[:, 2]), "log_height": np.log(mapped[:, 3] / land[:, 3])})
    return errors.abs().quantile([0.5, 0.75, 0.9])


def main(argv: list[str] | None = None) -> int:
    from m3mstl import paths
    from m3mstl.config import make_config
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.splits import run_split_indices
    from m3mstl.data.synth.generate import generate_dataset
    from m3mstl.detection.head_box import fit_head_box_mapping
    from m3mstl.studies.camera_frames import pipeline_nme, training_frame_boxes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished run folder (default: none, skip)")
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--seed", type=int, default=216)
    parser.add_argument("--fit-faces", type=int, default=300)
    parser.add_argument("--limit", type=int, default=None, help="score only the first LIMIT frames")
    parser.add_argument("--coarse", type=Path, default=None,
                        help="a run trained on head boxes: also score the two-stage reading (m3mstl predict --coarse)")
    parser.add_argument("--data", type=Path, default=paths.default_synth_dir("default"))
    parser.add_argument("--out", type=Path, default=paths.BUILD_DIR / "pipeline")
    args = parser.parse_args(argv)
    if args.run is None or not (args.run / "complete.json").is_file() or not (args.data / "annotations.json").is_file():
        print("bench_pipeline needs --run, a finished run folder, and the default data (--data): skipped")
        return 0
    root = args.out / f"frames-{args.frames}-seed{args.seed}"
    if not (root / "annotations.json").is_file():
        generate_dataset(root, subjects=max(args.frames // 10, 1), per_subject=min(10, args.frames), size=128,
                         seed=args.seed, full_frame=True, progress=True)
    from m3mstl.infer.frames import trained_on_head_boxes
    from m3mstl.runs import load_config

    if trained_on_head_boxes(load_config(args.run)):
        # Trained on head boxes: the detector's box goes in as it is (no mapping, no refinement), and
        # the true box is the visible head.
        report(pipeline_nme(args.run, root, limit=args.limit, progress=True), root)
        return 0
    dataset = read_dataset(args.data)
    train = run_split_indices(dataset, make_config("m3mstl", "default").data, args.data)["train"]
    chosen = np.random.default_rng(0).choice(train, size=min(args.fit_faces, len(train)), replace=False)
    boxes = training_frame_boxes(args.data, [dataset.records[i].image_id for i in chosen], progress=True)
    found = boxes["detected_box"].notna()
    detected = np.stack(boxes["detected_box"][found].tolist())
    landmark_boxes = np.stack(boxes["landmark_box"][found].tolist())
    mapping = fit_head_box_mapping(detected, landmark_boxes)
    print(f"mapping from {int(found.sum())} training faces rendered whole: {mapping}")
    print("how far the mapped box stays from the landmark extent on those faces (|offset| / face size, |log ratio|):")
    print(mapping_residuals(detected, landmark_boxes, mapping).round(3).to_string())
    report(pipeline_nme(args.run, root, mapping=mapping, refine_passes=(1, 2, 3), limit=args.limit, progress=True,
                        coarse_run=args.coarse), root)
    return 0


def report(table: pd.DataFrame, root: Path) -> None:
    """Print median and mean NME of each box and the ratio of medians to the true box's; save the table."""
    table.to_csv(root / "pipeline_nme.csv", index=False)
    columns = [c for c in table.columns if c.startswith("nme_")]
    summary = pd.DataFrame({"median": table[columns].median(), "mean": table[columns].mean()})
    summary["median_ratio_to_true_box"] = summary["median"] / summary.loc["nme_true_box", "median"]
    print(f"{len(table)} frames, {int(table['nme_detector_box'].isna().sum())} without a matched detection")
    print(summary.round(4).to_string())


if __name__ == "__main__":
    raise SystemExit(main())
