"""The trained face detector against the rule-based one on the default data's whole frames.

    python -m benchmarks.bench_face_detector [--seeds 0] [--epochs 12] [--test] [--other DIR ...]

Trains `m3mstl.detection.trained` (the default settings, or --epochs/--width/--height changed) on the
training frames of `data/synth-default-frames` (generated on first use, about 6 min) for each seed,
prints its validation learning curve (recall at IoU >= 0.5, mean IoU, false detections per frame per
epoch: what the default epochs were chosen from) and, for the finished runs and the rule-based
detector (`m3mstl.detection.rule_based`): validation recall, mean IoU and false detections by occluder and pose.
With --test the same on the test frames (report, never choose, from these); --other adds any other
full-frame folders (for example `build/detector/dev-1000-seed303`, the set detector version 4 was
tuned on, or the frames of `bench_detector --frames 300 --seed 202`). Ends with the trained
detector's frames per second on one thread. Run it alone on the cores: its training seconds are
printed as measured.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    import torch

    from m3mstl.detection import trained
    from m3mstl.train.detector import train_face_detector
    from m3mstl.config import make_config
    from m3mstl.data.coco import load_temperature, read_dataset
    from m3mstl.data.embedded import ensure_synthetic_frames
    from m3mstl.studies.camera_frames import detector_comparison
    from m3mstl.train.peer import split_records

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--test", action="store_true", help="also score the test frames (report only)")
    parser.add_argument("--other", type=Path, nargs="*", default=[], help="more full-frame folders to score")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 200)

    frames_dir = ensure_synthetic_frames("default")
    changes = {k: v for k, v in {"epochs": args.epochs, "input_width": args.width,
                                 "input_height": args.height}.items() if v is not None}
    settings = replace(trained.settings_for("default"), **changes)
    print("settings:", settings)
    run_dirs = []
    for seed in args.seeds:
        started = time.perf_counter()
        run_dir = train_face_detector("default", frames_dir, seed=seed, settings=settings)
        run_dirs.append(run_dir)
        print(f"seed {seed}: {run_dir} ({time.perf_counter() - started:.0f} s in this call)")
        history = pd.DataFrame([json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()])
        print(history.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    finders = {"rules (no training)": [None],
               "trained": [trained.TrainedFaceDetector.load(run_dir) for run_dir in run_dirs]}
    split = split_records(make_config("baseline", "default"), frames_dir)
    sets = {"validation": split["val"], **({"test": split["test"]} if args.test else {})}
    sets.update({str(folder): read_dataset(folder).records for folder in args.other})
    for name, records in sets.items():
        table = detector_comparison(finders, records)
        print(f"\n== {name}: {len(records)} frames (trained: mean and sd over seeds {args.seeds})")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    torch.set_num_threads(1)
    detector, frames = finders["trained"][0], [load_temperature(r) for r in split["val"][:200]]
    started = time.perf_counter()
    for frame in frames:
        detector(frame)
    print(f"\ntrained detector, one thread: {len(frames) / (time.perf_counter() - started):.0f} frames/s "
          f"(one frame per call, {settings.input_width}x{settings.input_height} input)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
