"""Which training recipe reaches a converged model at the least compute (issue 28): validation curves.

Trains the default profile's model (`--model`, ResNet-18 at 64 px, the default data) with each recipe
of `m3mstl.studies.recipes` (complete overrides of the joint stage and the optimiser, so a name always
names the same runs; the other stages as the profile sets them), seed `--seed`, and writes one JSON line per run: the validation NME after every epoch against
the training compute spent so far (floating-point operations counted by torch's FlopCounterMode,
`m3mstl.studies.scaling.training_flops`, independent of the CPU and of whatever ran beside it), the
seconds it took, and the finished run's validation metrics (median NME; ROC-AUC for occlusion).
VALIDATION only: the test split is not read, so a recipe can be chosen from this table.

Runs are ordinary run records: a finished one is reused (its config names it), an interrupted one
resumes, so the benchmark can be stopped and started again at any point; each finished run's
evaluation record is archived (archive/<model>/<run-id>/, committed), so the curves outlive the
machine session.

    .venv/bin/python -m benchmarks.bench_recipe --model baseline --recipes old adamw-ema-1e-3 adamw-ema-1e-3-2x
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from m3mstl.data.embedded import ensure_synthetic_data
from m3mstl.runs.archive import archive_run
from m3mstl.studies import recipes as recipes_study

PROFILE = recipes_study.PROFILE
RECIPE_NAMES = recipes_study.RECIPE_NAMES


def recipe_overrides(model: str, recipe: str) -> dict[str, Any]:
    return recipes_study.recipes(model)[recipe]


def validation_curve(run_dir: Path, data_dir: Path) -> list[dict[str, float]]:
    """Per epoch: stage, epoch, cumulative training GFLOPs, cumulative seconds, validation NME."""
    from m3mstl.studies.scaling import training_flops

    training_flops(run_dir, data_dir)  # counts and caches the per-image cost of each stage (needs the weights)
    return recipes_study.validation_curve(run_dir)


def summarise(model: str, recipe: str, run_dir: Path, data_dir: Path, seed: int = 0) -> dict[str, Any]:
    metrics = json.loads((run_dir / "metrics_val.json").read_text())
    row = {"model": model, "recipe": recipe, "seed": seed, "run_id": run_dir.name,
           "overrides": recipe_overrides(model, recipe),
           "val_median_nme": round(metrics["landmarks"]["inter_ocular"]["nme_median"], 4),
           "val_mean_nme": round(metrics["landmarks"]["inter_ocular"]["nme_mean"], 4)}
    if metrics.get("occlusion"):
        row["val_roc_auc"] = round(metrics["occlusion"]["roc_auc"], 4)
        row["val_average_precision"] = round(metrics["occlusion"]["average_precision"], 4)
    return {**row, "curve": validation_curve(run_dir, data_dir)}


def main(argv: list[str] | None = None) -> int:
    from m3mstl import train_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="baseline", choices=["baseline", "m3mstl", "hourglass"])
    parser.add_argument("--recipes", nargs="+", default=None,
                        help=f"recipe names (default: all of the model's); baseline and M3MSTL: {', '.join(RECIPE_NAMES)}; "
                             f"hourglass: {', '.join(recipes_study.recipes('hourglass'))}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="append each run's JSON line to this file too")
    args = parser.parse_args(argv)
    known = recipes_study.recipes(args.model)
    args.recipes = args.recipes or list(known)
    unknown = [name for name in args.recipes if name not in known]
    if unknown:
        parser.error(f"no recipe {unknown} for {args.model}; its recipes: {', '.join(known)}")
    data_dir = ensure_synthetic_data(PROFILE)
    print(f"# {args.model}, seed {args.seed}, data {data_dir.name}; validation split only", flush=True)
    for recipe in args.recipes:
        started = time.perf_counter()
        run_dir = train_model(args.model, PROFILE, data_dir, seed=args.seed,
                              overrides=recipe_overrides(args.model, recipe), progress=False)
        line = json.dumps({**summarise(args.model, recipe, run_dir, data_dir, args.seed),
                           "wall_seconds_this_call": round(time.perf_counter() - started, 1)})
        # Its evaluation record (history, metrics, predictions, FLOPs; no weights) into archive/, to be
        # committed: a session ends, the record of a finished recipe run stays (m3mstl.runs.archive).
        archive_run(run_dir)
        print(line, flush=True)
        if args.out is not None:
            with open(args.out, "a") as handle:
                handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
