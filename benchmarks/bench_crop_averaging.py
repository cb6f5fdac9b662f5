"""Does averaging a run over shifted and scaled crops bring the two-stage frame reading closer to the
oracle? On the VALIDATION frames of a profile's embedded whole frames (a setting is chosen there).

    python -m benchmarks.bench_crop_averaging --fine RUN --coarse RUN [--profile extended] [--limit 300]

For each validation frame in which the rule-based detector finds the face, the fine run (trained on
landmark-extent crops) reads the face six ways; the benchmark prints the median NME (outer-eye-corner
normalised) of each and its ratio to the first:
  oracle: from the true landmark extent (what the issue's 1.10x target compares with);
  as shipped: `m3mstl predict --coarse` (m3mstl.infer.predict.predict_coarse_to_fine, frames.REFINE_PASSES);
  single: the fine run once from the extent of the coarse run's landmarks;
  the fine run averaged over 7 crops around that extent (centre, +-4 % in x and y, x1.08 and x0.93);
  the coarse run averaged over the same 7 moves of the detector box, then the fine run over 7;
  the same with 13 crops for the fine run (adds +-8 % and x1.15, x0.87).
Model inference only, no training.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SMALL_MOVES = [(0, 0, 1), (0.04, 0, 1), (-0.04, 0, 1), (0, 0.04, 1), (0, -0.04, 1), (0, 0, 1.08), (0, 0, 0.93)]
LARGE_MOVES = SMALL_MOVES + [(0.08, 0, 1), (-0.08, 0, 1), (0, 0.08, 1), (0, -0.08, 1), (0, 0, 1.15), (0, 0, 0.87)]
READINGS = ("oracle (true landmark extent)", "as shipped (predict --coarse)", "coarse -> fine, single crop",
            "fine averaged over 7 crops", "coarse over 7, fine over 7", "coarse over 7, fine over 13")


def moved(box, dx: float, dy: float, scale: float):
    """The box shifted by (dx, dy) of its own size and scaled about its centre."""
    x, y, w, h = box
    cx, cy = x + w / 2 + dx * w, y + h / 2 + dy * h
    return cx - w * scale / 2, cy - h * scale / 2, w * scale, h * scale


def main(argv: list[str] | None = None) -> int:
    from m3mstl.infer.frames import REFINE_PASSES, load_coarse_run, true_box
    from m3mstl.infer.predict import landmark_extent, predict_arrays, predict_coarse_to_fine
    from m3mstl.runs import load_config, load_model
    from m3mstl.studies import camera_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fine", type=Path, required=True, help="a run trained on landmark-extent crops")
    parser.add_argument("--coarse", type=Path, required=True, help="a run trained on head boxes")
    parser.add_argument("--profile", default="extended")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args(argv)

    frames = camera_frames.resolve_frames_dir(args.profile)
    records = camera_frames.frame_splits(args.profile, frames)["val"][:args.limit]
    model, config = load_model(args.fine), load_config(args.fine)
    coarse = load_coarse_run(args.coarse, config)
    rows, t0 = [], time.perf_counter()
    for record, image, temperature, _, match in camera_frames.frames_with_detection(records):
        if match is None:
            continue

        def fine(box):
            return predict_arrays(model, config, image, temperature, box)["landmarks"]

        placed = landmark_extent(predict_arrays(*coarse, image, temperature, match.box)["landmarks"])
        placed_avg = landmark_extent(np.mean([predict_arrays(*coarse, image, temperature, moved(match.box, *m))["landmarks"]
                                              for m in SMALL_MOVES], axis=0))
        readings = [fine(true_box(record, config)),
                    predict_coarse_to_fine(coarse, model, config, image, temperature, match.box,
                                           passes=REFINE_PASSES)["landmarks"],
                    fine(placed),
                    np.mean([fine(moved(placed, *m)) for m in SMALL_MOVES], axis=0),
                    np.mean([fine(moved(placed_avg, *m)) for m in SMALL_MOVES], axis=0),
                    np.mean([fine(moved(placed_avg, *m)) for m in LARGE_MOVES], axis=0)]
        rows.append([camera_frames.record_nme(record, points) for points in readings])
    medians = np.median(np.array(rows), axis=0)
    print(f"fine {args.fine}, coarse {args.coarse}, {len(rows)} validation frames with a detected face "
          f"({time.perf_counter() - t0:.0f} s)")
    for name, value in zip(READINGS, medians):
        print(f"  {name:34s} median NME {value:.4f}  {value / medians[0]:.2f}x the oracle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
