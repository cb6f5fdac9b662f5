"""Is the coarse run's landmark extent off by a systematic amount that a fitted mapping removes? Fitted
on TRAINING frames, scored on VALIDATION frames of a profile's embedded whole frames.

    python -m benchmarks.bench_extent_correction --fine RUN --coarse RUN [--profile extended] [--every 3]

On every `--every`-th training frame in which the rule-based detector finds the face, the coarse run
(head boxes) places it; `m3mstl.detection.head_box.fit_head_box_mapping` fits the median offsets and
scales from those coarse extents to the true landmark extents. On every validation frame with a detected
face the fine run then reads the face as `m3mstl predict --coarse` does (the coarse extent, one more pass
on its own), once from the coarse extent as it is and once from the mapped one. Prints the mapping, and
the median NME (outer-eye-corner normalised) of both against the fine run's oracle (the true extent).
Model inference only, no training.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from m3mstl.detection.head_box import fit_head_box_mapping
    from m3mstl.infer.frames import REFINE_PASSES, load_coarse_run, true_box
    from m3mstl.infer.predict import landmark_extent, predict_arrays, predict_refined
    from m3mstl.runs import load_config, load_model
    from m3mstl.studies import camera_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fine", type=Path, required=True, help="a run trained on landmark-extent crops")
    parser.add_argument("--coarse", type=Path, required=True, help="a run trained on head boxes")
    parser.add_argument("--profile", default="extended")
    parser.add_argument("--every", type=int, default=3, help="fit on every EVERY-th training frame")
    args = parser.parse_args(argv)

    split = camera_frames.frame_splits(args.profile, camera_frames.resolve_frames_dir(args.profile))
    fine = load_model(args.fine), load_config(args.fine)
    coarse = load_coarse_run(args.coarse, fine[1])
    started = time.perf_counter()

    def placed(records):
        """(record, image, temperature, coarse extent) of each frame with a detected face."""
        for record, image, temperature, _, match in camera_frames.frames_with_detection(records):
            if match is not None:
                yield record, image, temperature, landmark_extent(
                    predict_arrays(*coarse, image, temperature, match.box)["landmarks"])

    fitted = [(extent, true_box(record, fine[1])) for record, _, _, extent in placed(split["train"][::args.every])]
    mapping = fit_head_box_mapping([e for e, _ in fitted], [t for _, t in fitted])
    rows = []
    for record, image, temperature, extent in placed(split["val"]):
        def nme(points, record=record):
            return camera_frames.record_nme(record, points)

        def shipped(box, image=image, temperature=temperature):
            return predict_refined(*fine, image, temperature, box, "cpu", REFINE_PASSES)["landmarks"]

        rows.append([nme(predict_arrays(*fine, image, temperature, true_box(record, fine[1]))["landmarks"]),
                     nme(shipped(extent)), nme(shipped(mapping.apply(extent)))])
    medians = np.median(np.array(rows), axis=0)
    print(f"mapping fitted on {len(fitted)} training frames: dx {mapping.dx:+.4f} dy {mapping.dy:+.4f} "
          f"sw {mapping.sw:.4f} sh {mapping.sh:.4f}; {len(rows)} validation frames ({time.perf_counter() - started:.0f} s)")
    for name, value in zip(("oracle (true landmark extent)", "as shipped (coarse extent)", "coarse extent, mapped"),
                           medians):
        print(f"  {name:30s} median NME {value:.4f}  {value / medians[0]:.2f}x the oracle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
