"""`m3mstl ablations`: the runs notebooks 07 and 13 train, in an order that survives a cut-short session."""
from __future__ import annotations

import re

from m3mstl.cli import main
from m3mstl.studies import comparison
from m3mstl.studies.ablation_runs import planned_runs


def test_the_plan_is_the_notebooks_runs_every_rows_first_seed_first():
    plan = planned_runs("extended", "m3mstl")
    rows = list(comparison.ablation_variants("extended"))
    seeds = comparison.profile_seeds("extended", 0, "ablation")
    assert [(name, seed) for name, seed, _ in plan] == [(name, seed) for seed in seeds for name in rows]
    # the overrides notebook 07 trains each row with (so the same run ids)
    by_row = {name: comparison.ablation_overrides("extended", "m3mstl", variant)
              for name, variant in comparison.ablation_variants("extended").items()}
    assert all(overrides == by_row[name] for name, _, overrides in plan)
    # budget-matched: stage 1's epochs moved to stage 3
    moved = by_row["no stage 1, its epochs given to stage 3"]
    assert moved["stages"] == ["heads", "joint"] and moved["stages.joint.epochs"] == 17 + 2
    hourglass = planned_runs("extended", "hourglass", first_seed=5)
    assert {seed for _, seed, _ in hourglass} == {5, 6, 7}
    assert {name for name, _, _ in hourglass} == set(comparison.hourglass_ablation_variants("extended"))


def test_listing_trains_nothing_and_names_each_run(capsys):
    assert main(["ablations", "--profile", "quick", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(planned_runs("quick", "m3mstl"))
    assert all(re.search(r" seed \d+: (finished|archived|missing)", line) for line in lines), lines


def test_a_profile_without_the_ablation_notebook_is_refused_before_any_training(capsys):
    """The default profile runs neither notebook 07 nor 13: its ablation runs would serve no table
    (a session once queued hours of them)."""
    from m3mstl.studies.ablation_runs import ablation_profiles

    assert "default" not in ablation_profiles("m3mstl") and "extended" in ablation_profiles("m3mstl")
    assert "default" not in ablation_profiles("hourglass")
    for family in ("m3mstl", "hourglass"):
        assert main(["ablations", "--profile", "default", "--family", family, "--list"]) == 2
        err = capsys.readouterr().err
        assert "--profile" in err and "serve no table" in err and "extended" in err
