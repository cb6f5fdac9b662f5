"""Training recipes compared on the validation split against counted training compute (issue 28).

A recipe is a complete set of overrides of the default profile's joint stage and optimiser, written
out in full (not relative to the profile), so a recipe names the same runs, with the same run ids,
whatever the profile's own settings are at the time:

- "old": the default profile as published before issue 28: Adam at 3e-4, a half cosine over the
  joint stage, early stopping with patience 3; at 1x, 2x, 4x the default's epochs (the extra epochs
  go to the joint stage).
- "adamw-ema": AdamW (decoupled weight decay 0.05) and an exponential moving average of the weights
  (decay 0.995: a horizon of 200 steps, under 3 epochs of the default's 75 steps), a 5 % linear
  warm-up to the peak rate, the whole cosine, no early stopping (a run ends where it was planned to,
  so its curve can be read at every budget).

Each finished run's curve is read from its own records (history.jsonl: validation NME per epoch;
training_flops.json: counted operations per image and stage, `m3mstl.studies.scaling.training_flops`),
in runs/ or, when the run is not on this machine, in archive/. VALIDATION only: nothing here reads
the test split, so the recipe can be chosen from these curves (`benchmarks/bench_recipe.py` trains
them; notebook 12 draws them).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from m3mstl.profiles import TRAINING
from m3mstl.studies.run_lookup import epochs_with_images, resolved_config, run_state

PROFILE = "default"
OLD_RATE = 3e-4
WEIGHT_DECAY = 0.05
EMA_DECAY = 0.995
WARMUP_FRACTION = 0.05


#: M3MSTL's epochs per stage in the default profile as first published (the budget "1x" of every
#: recipe; the baseline trains their sum), whatever the profile's epochs are now.
FIRST_PUBLISHED_EPOCHS = (2, 1, 7)


def _base_epochs(model: str) -> tuple[int, int]:
    """(joint-stage epochs, all epochs) of `model` at the budget "1x"."""
    total = sum(FIRST_PUBLISHED_EPOCHS)
    return (FIRST_PUBLISHED_EPOCHS[2] if model == "m3mstl" else total), total


def _recipe(model: str, budget: int, *, new: bool, lr: float) -> dict[str, Any]:
    joint, total = _base_epochs(model)
    overrides: dict[str, Any] = {"stages.joint.epochs": joint + (budget - 1) * total, "stages.joint.lr": lr}
    if new:
        return {"optimizer": "adamw", "weight_decay": WEIGHT_DECAY, "ema_decay": EMA_DECAY, **overrides,
                "stages.joint.patience": None, "stages.joint.warmup_fraction": WARMUP_FRACTION}
    return {"optimizer": "adam", "weight_decay": 0.0, "ema_decay": None, **overrides,
            "stages.joint.patience": TRAINING[PROFILE]["patience"] if budget == 1 else None,
            "stages.joint.warmup_fraction": 0.0}


def old_recipe(model: str, budget: int = 1) -> dict[str, Any]:
    """The first published default's recipe at `budget` times its epochs (the extra epochs in the joint
    stage, early stopping off beyond 1x): what the scaling study trains at every point."""
    return _recipe(model, budget, new=False, lr=OLD_RATE)


def _hourglass_recipes() -> dict[str, dict[str, Any]]:
    """The hourglass keeps its own curriculum (12 + 3 epochs, 3x the rate in the multitask stage); what
    is measured is whether the shared optimiser recipe (AdamW, decay, moving average, warm-up) helps it."""
    old = {"optimizer": "adam", "weight_decay": 0.0, "ema_decay": None, "stages.multitask.warmup_fraction": 0.0}
    new = {"optimizer": "adamw", "weight_decay": WEIGHT_DECAY, "ema_decay": EMA_DECAY,
           "stages.multitask.warmup_fraction": WARMUP_FRACTION}
    return {"old": old, "adamw-ema": new}


def recipes(model: str) -> dict[str, dict[str, Any]]:
    """Every recipe's overrides for `model` ("baseline", "m3mstl"; "hourglass": `_hourglass_recipes`), by name."""
    if model == "hourglass":
        return _hourglass_recipes()
    return {
        "old": _recipe(model, 1, new=False, lr=OLD_RATE),
        "old-4x": _recipe(model, 4, new=False, lr=OLD_RATE),
        "adamw-ema-3e-4": _recipe(model, 1, new=True, lr=OLD_RATE) | {"stages.joint.warmup_fraction": 0.0},
        "adamw-ema-1e-3": _recipe(model, 1, new=True, lr=1e-3),
        "adamw-ema-1e-3-2x": _recipe(model, 2, new=True, lr=1e-3),
        "adamw-ema-1e-3-3x": _recipe(model, 3, new=True, lr=1e-3),
        "adamw-ema-1e-3-4x": _recipe(model, 4, new=True, lr=1e-3),
        "adamw-ema-3e-4-2x": _recipe(model, 2, new=True, lr=OLD_RATE),
        "adamw-ema-2e-3-2x": _recipe(model, 2, new=True, lr=2e-3),
    }


RECIPE_NAMES: tuple[str, ...] = tuple(recipes("baseline"))


def recipe_config(model: str, recipe: str, seed: int = 0):
    """The run config `recipe` trains, resolved as the trainer records it (its hash is the run id's)."""
    return resolved_config(model, PROFILE, seed, recipes(model)[recipe])


def finished_recipe_run(model: str, recipe: str, fingerprint: str, seed: int = 0) -> Path | None:
    """The finished run of `recipe` on data `fingerprint`: in runs/, else archived, else None."""
    return run_state(model, PROFILE, seed, recipes(model)[recipe], fingerprint)[1]


def validation_curve(run_dir: Path) -> list[dict[str, Any]]:
    """Per epoch of a finished run: stage, epoch, cumulative training GFLOP, cumulative seconds and
    validation NME, from its history and its counted FLOPs (training_flops.json, measured before)."""
    run_dir = Path(run_dir)
    counted = run_dir / "training_flops.json"
    if not counted.is_file():
        raise FileNotFoundError(f"{counted}: the run's training compute was not counted "
                                "(m3mstl.studies.scaling.training_flops, which needs the weights)")
    per_image = json.loads(counted.read_text())
    flops = seconds = 0.0
    curve = []
    for entry, images in epochs_with_images(run_dir, per_image["images"]):
        flops += images * per_image["flops_per_image_by_stage"][entry["stage"]]
        seconds += entry.get("seconds", 0.0)
        curve.append({"stage": entry["stage"], "epoch": entry["epoch"], "gflops": round(flops / 1e9, 1),
                      "seconds": round(seconds, 1), "val_nme": round(entry["val_nme"], 4)})
    return curve


def recipe_curves(models: tuple[str, ...], fingerprint: str, names: tuple[str, ...] | None = None,
                  seed: int = 0) -> pd.DataFrame:
    """One row per epoch of every finished recipe run (model, recipe, run, epoch, TFLOP so far,
    validation NME) of `names` (default: each model's every recipe); recipes not trained (neither in
    runs/ nor archived) are left out."""
    rows = []
    for model in models:
        for name in (recipes(model) if names is None else [n for n in names if n in recipes(model)]):
            run_dir = finished_recipe_run(model, name, fingerprint, seed)
            if run_dir is None or not (run_dir / "training_flops.json").is_file():
                continue
            for point in validation_curve(run_dir):
                rows.append({"model": model, "recipe": name, "run": f"{model}/{run_dir.name}",
                             "stage": point["stage"], "epoch": point["epoch"], "tflop": point["gflops"] / 1000,
                             "val_nme": point["val_nme"]})
    return pd.DataFrame(rows, columns=["model", "recipe", "run", "stage", "epoch", "tflop", "val_nme"])


def recipe_curves_on(data_dir: Path, models: tuple[str, ...] = ("baseline", "m3mstl", "hourglass")) -> pd.DataFrame:
    """`recipe_curves` for the dataset in `data_dir` (its content fingerprint names the runs)."""
    from m3mstl.data.fingerprint import data_fingerprint

    return recipe_curves(models, data_fingerprint(data_dir))
