"""Would the main M3MSTL, the more precise model given an exact box, read frames better after the
jitter-trained fine run has placed the face? On the VALIDATION frames of a profile's embedded whole frames.

    python -m benchmarks.bench_three_stages --fine RUN --main RUN --coarse RUN [--profile extended]

For each validation frame in which the rule-based detector finds the face: the coarse run (head boxes)
places it; the fine run (landmark-extent crops with box jitter) reads it from the coarse extent and once
more from its own (what `m3mstl predict --coarse` ships); then the main run (exact landmark-extent crops)
reads it from the fine run's extent after zero or one pass, and once more from its own. Prints each
median NME (outer-eye-corner normalised) against both runs' oracles (their true landmark-extent box).
Model inference only, no training.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

READINGS = ("fine run, oracle", "main run, oracle", "fine run as shipped (1 pass)",
            "main from the fine extent (0 passes)", "main from the fine extent (1 pass)",
            "main, one more pass on its own extent")


def main(argv: list[str] | None = None) -> int:
    from m3mstl.infer.frames import load_coarse_run, true_box
    from m3mstl.infer.predict import landmark_extent, predict_arrays
    from m3mstl.runs import load_config, load_model
    from m3mstl.studies import camera_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fine", type=Path, required=True, help="a run trained on landmark-extent crops with box jitter")
    parser.add_argument("--main", type=Path, required=True, help="a run trained on exact landmark-extent crops")
    parser.add_argument("--coarse", type=Path, required=True, help="a run trained on head boxes")
    parser.add_argument("--profile", default="extended")
    args = parser.parse_args(argv)

    frames = camera_frames.resolve_frames_dir(args.profile)
    records = camera_frames.frame_splits(args.profile, frames)["val"]
    fine = load_model(args.fine), load_config(args.fine)
    main_run = load_model(args.main), load_config(args.main)
    coarse = load_coarse_run(args.coarse, fine[1])
    rows, started = [], time.perf_counter()
    for record, image, temperature, _, match in camera_frames.frames_with_detection(records):
        if match is None:
            continue

        def read(run, box):
            return predict_arrays(*run, image, temperature, box)["landmarks"]

        def nme(points, record=record):
            return camera_frames.record_nme(record, points)

        first = read(fine, landmark_extent(read(coarse, match.box)))
        shipped = read(fine, landmark_extent(first))
        main_once = read(main_run, landmark_extent(shipped))
        rows.append([nme(read(fine, true_box(record, fine[1]))), nme(read(main_run, true_box(record, main_run[1]))),
                     nme(shipped), nme(read(main_run, landmark_extent(first))), nme(main_once),
                     nme(read(main_run, landmark_extent(main_once)))])
    medians = np.median(np.array(rows), axis=0)
    print(f"fine {args.fine}, main {args.main}, coarse {args.coarse}: {len(rows)} validation frames with a detected "
          f"face ({time.perf_counter() - started:.0f} s)")
    for name, value in zip(READINGS, medians):
        print(f"  {name:40s} median NME {value:.4f}  {value / medians[0]:.2f}x the fine oracle, "
              f"{value / medians[1]:.2f}x the main oracle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
