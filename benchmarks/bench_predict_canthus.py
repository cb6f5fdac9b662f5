"""The canthus temperature as `m3mstl predict` reports it on generated whole frames (issue 30's criterion).

    python -m benchmarks.bench_predict_canthus --run FINE_RUN [--coarse HEAD_RUN] [--detector DET_RUN]
                                               [--frames 160] [--seed 216] [--out FILE.jsonl]

Generates `--frames` full frames (`m3mstl synth --full-frame`, 10 per subject, a seed the default data
does not use; shared with benchmarks/bench_pipeline.py under build/pipeline) unless they exist, runs the
command line exactly as a user would (`m3mstl predict RUN FRAMES/thermal --temperature-dir
FRAMES/temperature --out rows.json`, with `--coarse` and `--detector` when given), and scores each
frame's face row (the detection that best overlaps the true head box) against the generator's truth,
the hottest bare skin at the two inner canthi (`canthus_skin_max_c`):

- faces with both canthi visible in the truth: mean absolute error of `canthus_temperature_c` as
  `predict` reports it, and with each frame's known camera offset removed (`camera.offset_error_c`,
  up to 1 K: what a reference blackbody in the scene removes; `predict` cannot know it), and the
  share of those faces on which it abstains;
- faces behind glasses or sunglasses: the share on which it abstains (a lens is opaque in LWIR).

The criterion of issue 30: MAE <= 0.3 C on unoccluded faces, abstention >= 90 % behind lenses.
Model inference only, no training. One JSON line per call is appended to `--out`.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def _mean(values: np.ndarray) -> float:
    """The mean, or NaN for no values (every face abstained) without numpy's warning."""
    return float(np.mean(values)) if len(values) else float("nan")


def score_rows(rows: list[dict], records: list) -> dict[str, float]:
    """The criterion's numbers from `m3mstl predict` rows on generated frames and their records."""
    from m3mstl.core.boxes import iou
    from m3mstl.infer.canthus import bare_canthi, lens_faces

    by_frame: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("box") is not None:
            by_frame.setdefault(Path(row["file"]).stem, []).append(row)
    readings, found = np.full(len(records), np.nan), np.zeros(len(records), dtype=bool)
    for i, record in enumerate(records):
        faces = by_frame.get(Path(record.image_path).stem, [])
        head = tuple(record.extras["head_bbox"])
        overlap, best = max(((iou(tuple(row["box"]), head), row) for row in faces), key=lambda pair: pair[0],
                            default=(0.0, None))
        if overlap >= 0.5:
            found[i] = True
            value = best.get("canthus_temperature_c")
            readings[i] = np.nan if value is None else float(value)
    truth = np.array([max(r.extras["canthus_skin_max_c"]) for r in records])
    offsets = np.array([r.extras.get("camera", {}).get("offset_error_c", 0.0) for r in records])
    bare, lens = bare_canthi(records) & found, lens_faces(records) & found
    read = np.isfinite(readings)
    return {"frames": len(records), "faces_found": int(found.sum()),
            "bare_faces": int(bare.sum()), "bare_read": int((bare & read).sum()),
            "bare_mae_c": _mean(np.abs(readings - truth)[bare & read]),
            "bare_mae_offset_removed_c": _mean(np.abs(readings - offsets - truth)[bare & read]),
            "bare_abstention": _mean(~read[bare]),
            "lens_faces": int(lens.sum()), "lens_abstention": _mean(~read[lens])}


def main(argv: list[str] | None = None) -> int:
    from m3mstl import paths
    from m3mstl.cli import main as cli
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.synth.generate import generate_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the run that reads the landmarks (the fine run)")
    parser.add_argument("--coarse", type=Path, default=None, help="a run trained on head boxes: two-stage reading")
    parser.add_argument("--detector", type=Path, default=None, help="a trained detector run (default: the rules)")
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--seed", type=int, default=216)
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line with the numbers to this file")
    args = parser.parse_args(argv)

    root = paths.BUILD_DIR / "pipeline" / f"frames-{args.frames}-seed{args.seed}"
    if not (root / "annotations.json").is_file():
        generate_dataset(root, subjects=max(args.frames // 10, 1), per_subject=min(10, args.frames), size=128,
                         seed=args.seed, full_frame=True, progress=True)
    records = read_dataset(root).records
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "rows.json"
        command = ["predict", str(args.run), str(root / "thermal"), "--temperature-dir", str(root / "temperature"),
                   "--out", str(out)]
        command += ["--coarse", str(args.coarse)] if args.coarse else []
        command += ["--detector", str(args.detector)] if args.detector else []
        status = cli(command)
        if status != 0:
            return status
        rows = json.loads(out.read_text())
    numbers = {"run": args.run.name, "coarse": args.coarse.name if args.coarse else None,
               "detector": args.detector.name if args.detector else "rules", **score_rows(rows, records)}
    print(json.dumps(numbers, indent=1))
    if args.out is not None:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(numbers) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
