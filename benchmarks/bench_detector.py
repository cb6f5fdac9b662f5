"""Detector recall / IoU and the canthus reading's reachable error on generated full frames.

    python -m benchmarks.bench_detector --frames 300 --seed 202 [--out build/detector]

Generates `--frames` full frames (`m3mstl synth --full-frame`, 10 per subject) under --out unless
they exist, then prints (and writes as CSV next to them) the detector's recall at IoU >= 0.5 and mean
IoU by occluder and pose (m3mstl.detection.rule_based), and the canthus reading at the TRUE landmarks moved by
0, 0.02 and 0.05 of the outer-eye-corner distance (m3mstl.studies.thermometry.landmark_error_study), with
the camera's known offset removed (a blackbody reference) and without.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main(argv: list[str] | None = None) -> int:
    from m3mstl import paths
    from m3mstl.data.coco import load_temperature, read_dataset
    from m3mstl.data.synth.generate import generate_dataset
    from m3mstl.evaluation.detection import evaluate_detector, summarise_detection
    from m3mstl.data.records import occluder_group, single_occluder_groups
    from m3mstl.studies.thermometry import landmark_error_study, practice_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=202)
    parser.add_argument("--out", type=Path, default=paths.BUILD_DIR / "detector")
    args = parser.parse_args(argv)
    root = args.out / f"frames-{args.frames}-seed{args.seed}"
    if not (root / "annotations.json").is_file():
        generate_dataset(root, subjects=max(args.frames // 10, 1), per_subject=min(10, args.frames), size=128,
                         seed=args.seed, full_frame=True, progress=True)
    dataset = read_dataset(root)
    pd.set_option("display.width", 200)
    detection = summarise_detection(evaluate_detector(dataset, progress=True))
    detection.to_csv(root / "detector_summary.csv", index=False)
    print(detection.to_string(index=False))
    records = dataset.records
    maps = [load_temperature(r) for r in records]
    practice = practice_options(records)  # the hottest canthus skin as truth, the camera's known offset
    groups = list(single_occluder_groups(np.array([occluder_group([o["type"] for o in r.extras.get("occluders", [])])
                                                   for r in records])))
    common = dict(temperature_maps=maps, true_landmarks=np.stack([r.landmarks for r in records]),
                  occluded_gt=np.stack([r.visibility == 1 for r in records]),
                  canthus_truth_c=practice["canthus_truth_c"], occluder_types=groups)
    offsets = practice["offset_c"]
    blocks = []
    for label, offset in (("blackbody-corrected", offsets), ("uncorrected", None)):
        study = landmark_error_study(**common, offset_c=offset)
        study.insert(0, "camera", label)
        blocks.append(study)
    study = pd.concat(blocks, ignore_index=True)
    study.to_csv(root / "canthus_study.csv", index=False)
    columns = ["camera", "noise_fraction", "method", "occluder_type", "n_images", "abstention_rate", "mae_c", "bias_c"]
    print(study[study["occluder_type"].isin(["all", "none", "glasses", "sunglasses"])][columns].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
