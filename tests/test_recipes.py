"""Training recipes (issue 28): a recipe's name always names the same runs, so the archived curves of
`benchmarks/bench_recipe.py` stay readable whatever the default profile's own settings become."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from m3mstl import paths
from m3mstl.report import findings, plots
from m3mstl.runs import run_id
from m3mstl.studies import recipes

BENCH_RECORD = paths.REPO_ROOT / "benchmarks" / "results" / "2026-12-07-recipe.jsonl"


def _benchmarked() -> list[dict]:
    return [json.loads(line) for line in BENCH_RECORD.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("row", _benchmarked(), ids=lambda r: f"{r['model']}-{r['recipe']}-{r['run_id']}")
def test_each_benchmarked_recipe_names_its_archived_run(row):
    """Golden values: the run ids the benchmark recorded. A change to how configs resolve (which would
    orphan the archived curves) fails here."""
    archived = paths.ARCHIVE_DIR / row["model"] / row["run_id"]
    fingerprint = json.loads((archived / "environment.json").read_text())["data_fingerprint"]
    # The training seed: recorded in the row (lines written before it was are seed 0 or name it in the
    # archived config, which the run id hashes).
    seed = row.get("seed", json.loads((archived / "config.json").read_text())["seed"])
    assert run_id(recipes.recipe_config(row["model"], row["recipe"], seed), fingerprint) == row["run_id"]
    assert recipes.recipes(row["model"])[row["recipe"]] == row["overrides"] or row["recipe"] in ("old", "adamw-ema-3e-4")


def test_recipes_are_complete_so_the_profile_cannot_change_them():
    keys = {"optimizer", "weight_decay", "ema_decay", "stages.joint.epochs", "stages.joint.lr",
            "stages.joint.patience", "stages.joint.warmup_fraction"}
    for model in ("baseline", "m3mstl"):
        table = recipes.recipes(model)
        assert set(table) == set(recipes.RECIPE_NAMES)
        assert all(set(overrides) == keys for overrides in table.values())
        # The budgets: 2x and 4x add one and three times the curriculum's epochs to the joint stage.
        joint = {name: table[name]["stages.joint.epochs"] for name in table}
        assert joint["adamw-ema-1e-3-2x"] - joint["adamw-ema-1e-3"] == 10
        assert joint["adamw-ema-1e-3-4x"] - joint["adamw-ema-1e-3"] == 30 == joint["old-4x"] - joint["old"]


def test_curves_are_read_from_the_archive_and_described(tmp_path):
    fingerprint = json.loads((paths.ARCHIVE_DIR / "baseline" / "a6e6570902d9" / "environment.json").read_text())[
        "data_fingerprint"]
    curves = recipes.recipe_curves(("baseline",), fingerprint, ("old", "adamw-ema-1e-3"))
    assert set(curves["recipe"]) == {"old", "adamw-ema-1e-3"}
    assert curves.groupby("recipe")["epoch"].count().to_dict() == {"adamw-ema-1e-3": 10, "old": 10}
    assert (curves.groupby("recipe")["tflop"].diff().dropna() > 0).all()  # compute only grows
    sentence = findings.describe_recipes(curves)[0]
    assert sentence.startswith("The baseline") and sentence.index("adamw-ema-1e-3 ") < sentence.index("old ")
    assert recipes.recipe_curves(("baseline", "hourglass"), "0" * 16).empty
    fig = plots.recipe_curves(curves)
    assert [ax.get_title() for ax in fig.axes] == ["baseline"]
    empty = plots.recipe_curves(pd.DataFrame(columns=curves.columns))
    assert "no finished recipe run" in empty.axes[0].texts[0].get_text()


def test_the_hourglass_keeps_its_own_optimiser_in_the_default_profile():
    """The hourglass trains with Adam and no weight average whatever the profile's recipe (the shared
    recipe measured no better for it on validation), while M3MSTL and the baseline take the profile's;
    an explicit override still wins (the recipe benchmark's "adamw-ema" hourglass)."""
    from m3mstl.config import make_config
    from m3mstl.studies.recipes import recipe_config
    from m3mstl.studies.run_lookup import resolved_config

    hourglass = make_config("hourglass", "default")
    assert (hourglass.optimizer, hourglass.weight_decay, hourglass.ema_decay) == ("adam", 0.0, None)
    for model in ("m3mstl", "baseline"):
        config = make_config(model, "default")
        assert (config.optimizer, config.ema_decay) == ("adamw", 0.995)
    assert make_config("hourglass", "default", overrides={"optimizer": "adamw"}).optimizer == "adamw"
    # the default hourglass is the benchmark's "old" run, so that finished run is the default's seed 0
    default = resolved_config("hourglass", "default", 0, {})
    assert recipe_config("hourglass", "old").config_hash() == default.config_hash()
    assert recipe_config("hourglass", "adamw-ema").config_hash() != default.config_hash()
