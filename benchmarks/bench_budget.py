"""Where the deep models' training budget goes (issue 12): validation curves at longer schedules.

Trains a model of the extended profile (the default's data and schedule, ResNet-18, the paper's
stage-1 radius, as the scaling study's ladder) at each input size with its long joint stage
stretched to each `--epochs` (the cosine decay spans the whole stage; the other stages and early
stopping as the profile sets them), seed `--seed`, and prints for every run the validation NME
per epoch (the trainer's: mean inter-ocular NME over up to 512 validation images) and the final
validation metrics (`metrics_val.json`: median NME, ROC-AUC). VALIDATION only: the test split is
not read, so a schedule can be chosen from this table.

A run whose config is that of a scaling-study point (the profile's own joint epochs) is taken
from `runs/` or, without its validation metrics, from the run archive (`archive/`), never retrained.
Runs are ordinary run records: finished ones are reused, an interrupted one resumes.

    .venv/bin/python -m benchmarks.bench_budget --model baseline --sizes 64 128 --epochs 10 40
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from m3mstl.config import make_config
from m3mstl.data.embedded import ensure_synthetic_data
from m3mstl.data.fingerprint import data_fingerprint
from m3mstl.runs import read_history
from m3mstl.studies.run_lookup import run_state
from m3mstl.studies.scaling import PAPER_RADIUS, ScalePoint

PROFILE = "extended"


def joint_epochs(model: str) -> int:
    return make_config(model, PROFILE).stage("joint").epochs


def budget_overrides(model: str, size: int, backbone: str, epochs: int) -> dict[str, Any]:
    """The scaling ladder's point at this size and trunk, its joint stage stretched to `epochs`."""
    point = ScalePoint(size, backbone, m3mstl_overrides=PAPER_RADIUS)
    return {**point.overrides(model, PROFILE), "stages.joint.epochs": epochs}


def find_or_train(model: str, data_dir: Path, seed: int, overrides: dict[str, Any]) -> Path:
    """The run for this config: finished in runs/ or archived (as the scaling study finds it), or
    trained now."""
    from m3mstl import train_model

    state, run_dir = run_state(model, PROFILE, seed, overrides, data_fingerprint(data_dir))
    if state != "missing":
        return run_dir
    return train_model(model, PROFILE, data_dir, seed=seed, overrides=overrides)


def summarise(run_dir: Path) -> dict[str, Any]:
    history = [h for h in read_history(run_dir) if h["stage"] == "joint"]
    row = {"run_id": run_dir.name, "joint_epochs_run": len(history),
           "val_nme_curve": [round(h["val_nme"], 4) for h in history],
           "joint_seconds": round(sum(h["seconds"] for h in history), 1)}
    metrics_path = run_dir / "metrics_val.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        row["val_median_nme"] = round(metrics["landmarks"]["inter_ocular"]["nme_median"], 4)
        row["val_roc_auc"] = round(metrics["occlusion"]["roc_auc"], 4)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="baseline", choices=["baseline", "m3mstl"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--epochs", type=int, nargs="+", default=None,
                        help="joint-stage epochs (default: the profile's, then 4x)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data_dir = ensure_synthetic_data(PROFILE)
    epochs = args.epochs or [joint_epochs(args.model), 4 * joint_epochs(args.model)]
    print(f"# {args.model}, {args.backbone}, seed {args.seed}, data {data_dir.name}; "
          f"validation split only", flush=True)
    for size in args.sizes:
        for n in epochs:
            run_dir = find_or_train(args.model, data_dir, args.seed, budget_overrides(args.model, size, args.backbone, n))
            print(json.dumps({"size": size, "joint_epochs": n, **summarise(run_dir)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
