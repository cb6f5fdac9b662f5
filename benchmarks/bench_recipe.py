"""Which training recipe reaches a converged model at the least compute (issue 28): validation curves.

Trains the default profile's model (`--model`, ResNet-18 at 64 px, the default data) with each recipe
of `RECIPES` (overrides of the joint stage and the optimiser; the other stages as the profile sets
them), seed `--seed`, and writes one JSON line per run: the validation NME after every epoch against
the training compute spent so far (floating-point operations counted by torch's FlopCounterMode,
`m3mstl.studies.scaling.training_flops`, independent of the CPU and of whatever ran beside it), the
seconds it took, and the finished run's validation metrics (median NME; ROC-AUC for occlusion).
VALIDATION only: the test split is not read, so a recipe can be chosen from this table.

Runs are ordinary run records: a finished one is reused (its config names it), an interrupted one
resumes, so the benchmark can be stopped and started again at any point; each finished run's
evaluation record is archived (archive/<model>/<run-id>/, committed), so the curves outlive the
machine session.

    .venv/bin/python -m benchmarks.bench_recipe --model baseline --recipes default 4x adamw-ema-1e-3-20
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from m3mstl.config import make_config
from m3mstl.data.embedded import ensure_synthetic_data
from m3mstl.runs import load_config, read_history
from m3mstl.runs.archive import archive_run

PROFILE = "default"

# The moving average and the decoupled weight decay that every new recipe shares. The average's
# horizon, 1 / (1 - 0.995) = 200 steps, is under 3 epochs of the default's 75 steps each.
AVERAGED = {"optimizer": "adamw", "weight_decay": 0.05, "ema_decay": 0.995}


def _joint(epochs: int, lr: float | None = None, warmup: float | None = None) -> dict[str, Any]:
    """The joint stage at `epochs`, its whole cosine, no early stopping (a run ends where it was planned
    to, so its curve can be read at every budget), optionally another peak rate and a warm-up."""
    out: dict[str, Any] = {"stages.joint.epochs": epochs, "stages.joint.patience": None}
    if lr is not None:
        out["stages.joint.lr"] = lr
    if warmup is not None:
        out["stages.joint.warmup_fraction"] = warmup
    return out


def recipes(model: str) -> dict[str, dict[str, Any]]:
    """Every recipe's overrides for `model`, by name; the joint stage's epochs scale with the model's own."""
    stages = make_config(model, PROFILE).stages
    joint = next(stage.epochs for stage in stages if stage.name == "joint")
    total = sum(stage.epochs for stage in stages)
    return {
        # The default profile as published: 10 epochs in all, Adam 3e-4, cosine, early stopping (patience 3).
        "default": {},
        # The scaling study's budget point: 4x the epochs, all added to the joint stage, the whole cosine.
        "4x": _joint(joint + 3 * total),
        # The new ingredients at the old rate and budget, then a higher rate with a warm-up, then budgets.
        "adamw-ema": {**AVERAGED, **_joint(joint)},
        "adamw-ema-1e-3": {**AVERAGED, **_joint(joint, lr=1e-3, warmup=0.05)},
        "adamw-ema-1e-3-2x": {**AVERAGED, **_joint(joint + total, lr=1e-3, warmup=0.05)},
        "adamw-ema-3e-4-2x": {**AVERAGED, **_joint(joint + total, warmup=0.05)},
        "adamw-ema-2e-3-2x": {**AVERAGED, **_joint(joint + total, lr=2e-3, warmup=0.05)},
        "ema-3e-4-2x": {"ema_decay": 0.995, **_joint(joint + total)},
    }


def recipe_overrides(model: str, recipe: str) -> dict[str, Any]:
    return recipes(model)[recipe]


RECIPE_NAMES = tuple(recipes("baseline"))  # the same names for every model


def validation_curve(run_dir: Path, data_dir: Path) -> list[dict[str, float]]:
    """Per epoch: stage, epoch, cumulative training GFLOPs, cumulative seconds, validation NME."""
    from m3mstl.studies.scaling import training_flops

    training_flops(run_dir, data_dir)  # counts and caches the per-image cost of each stage
    per_image = json.loads((run_dir / "training_flops.json").read_text())
    config = load_config(run_dir)
    stages = {s.name: s for s in config.stages}
    flops = seconds = 0.0
    curve = []
    for entry in read_history(run_dir):
        stage = stages[entry["stage"]]
        images = stage.steps_per_epoch * config.data.batch_size if stage.steps_per_epoch else per_image["images"]
        flops += images * per_image["flops_per_image_by_stage"][entry["stage"]]
        seconds += entry.get("seconds", 0.0)
        curve.append({"stage": entry["stage"], "epoch": entry["epoch"], "gflops": round(flops / 1e9, 1),
                      "seconds": round(seconds, 1), "val_nme": round(entry["val_nme"], 4)})
    return curve


def summarise(model: str, recipe: str, run_dir: Path, data_dir: Path) -> dict[str, Any]:
    metrics = json.loads((run_dir / "metrics_val.json").read_text())
    row = {"model": model, "recipe": recipe, "run_id": run_dir.name,
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
    parser.add_argument("--model", default="baseline", choices=["baseline", "m3mstl"])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPE_NAMES), choices=RECIPE_NAMES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="append each run's JSON line to this file too")
    args = parser.parse_args(argv)
    data_dir = ensure_synthetic_data(PROFILE)
    print(f"# {args.model}, seed {args.seed}, data {data_dir.name}; validation split only", flush=True)
    for recipe in args.recipes:
        started = time.perf_counter()
        run_dir = train_model(args.model, PROFILE, data_dir, seed=args.seed,
                              overrides=recipe_overrides(args.model, recipe), progress=False)
        line = json.dumps({**summarise(args.model, recipe, run_dir, data_dir),
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
