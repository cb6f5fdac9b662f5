"""What the notebooks compare, in one place: the main models, the ablation variants,
the paper's reported numbers, and the tables built from finished runs.

Notebooks stay thin: they call these functions, show what they return, and explain it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m3mstl.evaluation import stats
from m3mstl.data.embedded import resolve_data_dir  # noqa: F401  (notebooks call experiments.resolve_data_dir)
from m3mstl.evaluation.metrics import PAPER_NORMALISER, occlusion_correct
from m3mstl.runs.predictions import load_predictions
from m3mstl.runs.result import RunResult, load_run
from m3mstl.runs.lifecycle import allow_training  # noqa: F401  (called by every notebook's setup cell)
from m3mstl.errors import UnknownOptionError
from m3mstl.models.hourglass import HOURGLASS_ABLATIONS
from m3mstl.models.m3mstl import ABLATIONS, EPOCHS_MOVED_TO
from m3mstl.profiles import (  # noqa: F401  (re-exported: notebooks and tests read them here)
    ABLATION_ROWS, ABLATION_SCHEDULES, HOURGLASS_ABLATION_ROWS, SEED_COUNTS,
)

# Reported in the M3MSTL paper's abstract (TFD68 test split); NME as a fraction, inter-ocular.
PAPER_RESULTS = {
    "m3mstl": {"occlusion_accuracy": 0.918, "nme_mean": 0.246, "roc_auc": 0.974, "average_precision": 0.966},
    "baseline": {"occlusion_accuracy": 0.897, "nme_mean": 0.382},
}

# The ablation variants are their families' (`m3mstl.models.m3mstl.ABLATIONS`,
# `m3mstl.models.hourglass.HOURGLASS_ABLATIONS`; re-exported above); which rows each profile trains and
# on which schedule are `m3mstl.profiles` tables (ABLATION_ROWS, HOURGLASS_ABLATION_ROWS,
# ABLATION_SCHEDULES), with the reasons for their choices.


def archive_policy(profile: str, force: bool = False) -> str:
    """How a record-only notebook takes a run that is not on this machine (`allow_training(archived=...)`):
    the extended profile's studies from the archive first (they continue across sessions; FORCE
    retrains), every other profile from the archive only where training is refused."""
    from m3mstl.profiles import ARCHIVE_FIRST_PROFILES

    return "first" if profile in ARCHIVE_FIRST_PROFILES and not force else "when-refused"


def ablation_variants(profile: str) -> dict[str, dict[str, Any]]:
    """The M3MSTL ablation rows `profile` trains (ABLATION_ROWS; every row when it names none)."""
    rows = ABLATION_ROWS.get(profile)
    return dict(ABLATIONS) if rows is None else {name: ABLATIONS[name] for name in rows}


def ablation_overrides(profile: str, model: str, variant: dict[str, Any]) -> dict[str, Any]:
    """The variant's overrides plus the profile's ablation schedule for the stages it keeps."""
    from m3mstl.config import make_config

    schedule_spec = ABLATION_SCHEDULES[profile].get(model, {})
    variant = dict(variant)
    receiver = variant.pop(EPOCHS_MOVED_TO, None)
    all_epochs = {s.name: s.epochs for s in make_config(model, profile).stages}
    all_epochs.update(schedule_spec.get("epochs", {}))
    stages = variant.get("stages") or list(all_epochs)
    schedule = {f"stages.{name}.epochs": epochs for name, epochs in schedule_spec.get("epochs", {}).items()
                if name in stages}
    if receiver is not None:
        if receiver not in stages:
            raise UnknownOptionError(EPOCHS_MOVED_TO, f"{receiver!r} names a stage the variant drops or the "
                                                      f"model lacks ({stages})")
        dropped = sum(epochs for name, epochs in all_epochs.items() if name not in stages)
        schedule[f"stages.{receiver}.epochs"] = all_epochs[receiver] + dropped
    limit = schedule_spec.get("max_train_images")
    if limit is not None:
        schedule["data.max_train_images"] = limit
    return {**schedule, **variant}


def hourglass_ablation_variants(profile: str) -> dict[str, dict[str, Any]]:
    """The hourglass ablation rows `profile` trains (HOURGLASS_ABLATION_ROWS; every row when it names none)."""
    rows = HOURGLASS_ABLATION_ROWS.get(profile)
    return dict(HOURGLASS_ABLATIONS) if rows is None else {name: HOURGLASS_ABLATIONS[name] for name in rows}


def summary_row(result: RunResult, normaliser: str = PAPER_NORMALISER) -> dict[str, Any]:
    """One table row of a run's test metrics. A landmarks-only model (the classical peer) has no
    occlusion metrics: those cells are None, which every table prints as missing ("-")."""
    lm = result.metrics["landmarks"][normaliser]
    box = result.metrics["landmarks"]["box"]
    occ = result.metrics.get("occlusion") or {}
    return {
        "model": result.name,
        "occlusion_accuracy": occ.get("accuracy"),
        "class_prior_occluded": occ.get("class_prior_occluded"),
        "balanced_accuracy": occ.get("balanced_accuracy"),
        "roc_auc": occ.get("roc_auc"),
        "average_precision": occ.get("average_precision"),
        "nme_mean": lm["nme_mean"],
        "nme_median": lm["nme_median"],
        "nme_visible": lm["nme_visible"],
        "nme_occluded": lm["nme_occluded"],
        "nme_box_median": box["nme_median"],
        "failure_rate@0.10": lm["failure_rate@0.10"],
        "n_images": lm["n_images"],
    }


def main_results_table(results: list[RunResult]) -> pd.DataFrame:
    """Ours beside the paper's reported numbers (TFD68), one row per model and source."""
    rows = []
    for result in results:
        rows.append({"source": "ours (SynthTFD68 test)", **summary_row(result)})
        paper = PAPER_RESULTS.get(result.name)
        if paper:
            rows.append({"source": "paper (TFD68 test)", "model": result.name, **paper})
    return pd.DataFrame(rows)


BREAKDOWN_OCCLUSION_COLUMNS = ("class_prior_occluded", "accuracy", "roc_auc", "average_precision")


def breakdown_table(results: list[RunResult], key: str) -> pd.DataFrame:
    """Test metrics per image group (`key` "occluder" or "yaw_bin") for several runs, one row
    per (group, model). Landmarks-only runs (the classical peer) get empty occlusion columns."""
    frames = []
    for result in results:
        part = result.metrics.get(f"by_{key}")
        if part is None:
            continue
        frame = pd.DataFrame(part["landmarks"])[[key, "n_images", "nme_mean", "nme_median"]]
        if part.get("occlusion") is not None:
            occlusion = pd.DataFrame(part["occlusion"])[[key, *BREAKDOWN_OCCLUSION_COLUMNS]]
            frame = frame.merge(occlusion, on=key)
        else:
            frame = frame.assign(**{column: np.nan for column in BREAKDOWN_OCCLUSION_COLUMNS})
        frames.append(frame.assign(model=result.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def breakdown_over_seeds(results_by_name: dict[str, list[RunResult]], key: str) -> pd.DataFrame:
    """As `breakdown_table`, each model's metrics averaged over its training seeds per group, with
    n_seeds and the sd over seeds of median NME and ROC-AUC (empty for a single seed)."""
    frames = []
    for name, runs in results_by_name.items():
        per_seed = breakdown_table(runs, key)
        if per_seed.empty:
            continue
        numeric = [c for c in per_seed.columns if c not in (key, "model")]
        grouped = per_seed.groupby(key, sort=False)
        frame = grouped[numeric].mean().reset_index()
        frame["n_images"] = grouped["n_images"].first().to_numpy().astype(int)
        for metric in ("nme_median", "roc_auc"):
            frame[f"{metric}_sd"] = grouped[metric].std(ddof=1).to_numpy() if len(runs) > 1 else np.nan
        frame.insert(1, "model", name)
        frame.insert(2, "n_seeds", len(runs))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def has_occlusion(result: RunResult) -> bool:
    """Whether a run predicts occlusion (the classical peer predicts landmarks only)."""
    return "occlusion_prob" in result.predictions


def _aligned(a: RunResult, b: RunResult) -> None:
    if not np.array_equal(a.predictions["image_id"], b.predictions["image_id"]):
        raise ValueError(f"{a.run_id} and {b.run_id} were evaluated on different images: cannot pair them")


def paired_tests(a: RunResult, b: RunResult, normaliser: str = PAPER_NORMALISER) -> list[stats.TestResult]:
    """a versus b on the same test images: t-test and Wilcoxon on per-image NME, exact McNemar
    on per-landmark occlusion correctness."""
    _aligned(a, b)
    label = f"{a.name} vs {b.name}"
    col = f"nme_{normaliser}"
    correct_a = occlusion_correct(a.predictions["occlusion_prob"], a.occluded, a.labelled)
    correct_b = occlusion_correct(b.predictions["occlusion_prob"], b.occluded, b.labelled)
    return [
        stats.paired_t_test(a.per_image[col], b.per_image[col], comparison=f"{label}: NME ({normaliser})"),
        stats.wilcoxon_signed_rank(a.per_image[col], b.per_image[col], comparison=f"{label}: NME ({normaliser})"),
        stats.mcnemar_exact(correct_a, correct_b, a.labelled, comparison=f"{label}: occlusion correctness"),
    ]


def bootstrap_differences(a: RunResult, b: RunResult, *, n_resamples: int = 2000, seed: int = 0,
                          normaliser: str = PAPER_NORMALISER) -> list[stats.BootstrapInterval]:
    """Subject-level paired bootstrap intervals for a - b (NME, accuracy, ROC-AUC, AP)."""
    _aligned(a, b)
    subjects = a.predictions["subject"]
    col = f"nme_{normaliser}"
    correct_a = occlusion_correct(a.predictions["occlusion_prob"], a.occluded, a.labelled)
    correct_b = occlusion_correct(b.predictions["occlusion_prob"], b.occluded, b.labelled)
    common = dict(n_resamples=n_resamples, seed=seed)
    return [
        stats.bootstrap_mean_difference(a.per_image[col].to_numpy(), b.per_image[col].to_numpy(), subjects,
                                        metric=f"mean NME ({normaliser})", **common),
        stats.bootstrap_accuracy_difference(correct_a, correct_b, a.labelled, subjects, **common),
        stats.bootstrap_ranking_difference(a.predictions["occlusion_prob"], b.predictions["occlusion_prob"],
                                           a.occluded, a.labelled, subjects, metric="roc_auc", **common),
        stats.bootstrap_ranking_difference(a.predictions["occlusion_prob"], b.predictions["occlusion_prob"],
                                           a.occluded, a.labelled, subjects, metric="average_precision",
                                           **common),
    ]


def differences_from_reference(results: list[RunResult], reference: RunResult, *, n_resamples: int = 2000,
                               seed: int = 0, normaliser: str = PAPER_NORMALISER) -> pd.DataFrame:
    """Each result minus `reference` on the same test images, for ablation tables: ROC-AUC and
    mean NME with their subject-level bootstrap 95 % intervals (`bootstrap_differences`). An
    interval that contains 0 means this split cannot tell the variant from the reference."""
    rows = []
    for result in results:
        if result.run_dir == reference.run_dir:
            continue
        intervals = {interval.metric: interval for interval in bootstrap_differences(
            result, reference, n_resamples=n_resamples, seed=seed, normaliser=normaliser)}
        row = {"variant": result.name}
        for column, metric in (("roc_auc", "roc_auc"), ("nme_mean", f"mean NME ({normaliser})")):
            interval = intervals[metric]
            row.update({f"{column}_diff": interval.estimate, f"{column}_low": interval.low,
                        f"{column}_high": interval.high})
        rows.append(row)
    return pd.DataFrame(rows)


# --- several training seeds ---------------------------------------------------------------
# How many training seeds a claim rests on, per profile and purpose, and why: `m3mstl.profiles.SEED_COUNTS`
# (also under its earlier name here).
PROFILE_SEED_COUNTS = SEED_COUNTS


def profile_seeds(profile: str, seed: int = 0, purpose: str = "main") -> list[int]:
    """The training seeds of a profile: seed, seed + 1, ... (`m3mstl.profiles.SEED_COUNTS`)."""
    if profile not in SEED_COUNTS:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(SEED_COUNTS)}")
    counts = SEED_COUNTS[profile]
    if purpose not in counts:
        raise ValueError(f"unknown seed purpose {purpose!r}; choose from {sorted(counts)}")
    return [seed + i for i in range(counts[purpose])]


SEED_METRICS = ("occlusion_accuracy", "roc_auc", "average_precision", "nme_mean", "nme_median",
                "nme_box_median", "failure_rate@0.10")


def summary_over_seeds(results_by_name: dict[str, list[RunResult]], *, label: str = "model") -> pd.DataFrame:
    """One row per name, with n_seeds. With one seed each, the `summary_row`s; with several, each
    metric is the mean over seeds followed by `<metric>_sd` (sample sd over seeds)."""
    if all(len(runs) == 1 for runs in results_by_name.values()):
        table = pd.DataFrame([summary_row(runs[0]) for runs in results_by_name.values()]).rename(
            columns={"model": label})
        table.insert(1, "n_seeds", 1)  # the same columns whatever the profile's seed count
        return table
    per_seed = pd.DataFrame([{**summary_row(run), label: name} for name, runs in results_by_name.items()
                             for run in runs])
    table = stats.summarise_over_seeds(per_seed, label, SEED_METRICS, constant=["n_images"])
    return table[[c for c in table.columns if c != "n_images"] + ["n_images"]]


def main_results_over_seeds(results_by_name: dict[str, list[RunResult]]) -> pd.DataFrame:
    """The main table: ours (mean and sd over seeds when there are several) beside the paper's."""
    if all(len(runs) == 1 for runs in results_by_name.values()):
        table = main_results_table([runs[0] for runs in results_by_name.values()])
        table.insert(2, "n_seeds", np.where(table["source"].str.startswith("ours"), 1, np.nan))
        return table
    rows = []
    for row in summary_over_seeds(results_by_name).to_dict("records"):
        rows.append({"source": "ours (SynthTFD68 test, mean and sd over seeds)", **row})
        paper = PAPER_RESULTS.get(row["model"])
        if paper:
            rows.append({"source": "paper (TFD68 test)", "model": row["model"], **paper})
    return pd.DataFrame(rows)


def seed_aware_differences(a_runs: list[RunResult], b_runs: list[RunResult], *, n_resamples: int = 2000,
                           seed: int = 0, normaliser: str = PAPER_NORMALISER) -> list[stats.SeedAwareInterval]:
    """a - b over training seeds and test subjects: mean and median NME, and, when both predict
    occlusion, accuracy, ROC-AUC and AP. Each model's seeds are an independent sample (the two models'
    trainings are not paired, so neither is the interval: any order of either list gives the same),
    and each interval includes the seed and the subject variance (stats.seed_subject_interval)."""
    if len(a_runs) < 2 or len(b_runs) < 2:
        raise ValueError(f"seed-aware differences need at least 2 seeds per model, got "
                         f"{len(a_runs)} and {len(b_runs)}")
    for run in [*a_runs[1:], *b_runs]:
        _aligned(a_runs[0], run)
    first = a_runs[0]
    subjects = first.predictions["subject"]
    column = f"nme_{normaliser}"
    nme_a = np.stack([r.per_image[column].to_numpy(float) for r in a_runs])
    nme_b = np.stack([r.per_image[column].to_numpy(float) for r in b_runs])
    common = dict(n_resamples=n_resamples, seed=seed)
    intervals = [
        stats.seed_subject_mean_difference(nme_a, nme_b, subjects, metric=f"mean NME ({normaliser})", **common),
        stats.seed_subject_median_difference(nme_a, nme_b, subjects, metric=f"median NME ({normaliser})", **common),
    ]
    if all(has_occlusion(r) for r in [*a_runs, *b_runs]):
        prob_a = np.stack([r.predictions["occlusion_prob"] for r in a_runs])
        prob_b = np.stack([r.predictions["occlusion_prob"] for r in b_runs])
        correct_a = np.stack([occlusion_correct(p, first.occluded, first.labelled) for p in prob_a])
        correct_b = np.stack([occlusion_correct(p, first.occluded, first.labelled) for p in prob_b])
        intervals += [
            stats.seed_subject_accuracy_difference(correct_a, correct_b, first.labelled, subjects, **common),
            stats.seed_subject_ranking_difference(prob_a, prob_b, first.occluded, first.labelled, subjects,
                                                  metric="roc_auc", **common),
            stats.seed_subject_ranking_difference(prob_a, prob_b, first.occluded, first.labelled, subjects,
                                                  metric="average_precision", **common),
        ]
    return intervals


def differences_over_seeds(results_by_name: dict[str, list[RunResult]], reference: str, *,
                           n_resamples: int = 2000, seed: int = 0,
                           normaliser: str = PAPER_NORMALISER) -> pd.DataFrame:
    """Each entry minus `reference` (ROC-AUC and mean NME, 95 % intervals), for ablation tables.
    With one seed per entry: the subject bootstrap of `differences_from_reference`; with several:
    the seed-aware interval. The `variance` column says which variance each interval includes."""
    reference_runs = results_by_name[reference]
    if all(len(runs) == 1 for runs in results_by_name.values()):
        table = differences_from_reference([runs[0] for runs in results_by_name.values()], reference_runs[0],
                                           n_resamples=n_resamples, seed=seed, normaliser=normaliser)
        return table.assign(n_seeds=1, variance=stats.SUBJECTS_ONLY)
    rows = []
    for name, runs in results_by_name.items():
        if name == reference:
            continue
        by_metric = {i.metric: i for i in seed_aware_differences(runs, reference_runs, n_resamples=n_resamples,
                                                                  seed=seed, normaliser=normaliser)}
        row: dict[str, Any] = {"variant": name}
        for column, metric in (("roc_auc", "roc_auc"), ("nme_mean", f"mean NME ({normaliser})")):
            interval = by_metric[metric]
            row.update({f"{column}_diff": interval.estimate, f"{column}_low": interval.low,
                        f"{column}_high": interval.high})
        row.update(n_seeds=len(runs), variance=stats.SEEDS_AND_SUBJECTS)
        rows.append(row)
    return pd.DataFrame(rows)


def record_metrics(notebook: str, values: dict[str, Any]) -> Path:
    """Metrics a notebook reports, for the tests that read them (build/metrics/<notebook>.json)."""
    from m3mstl import paths
    from m3mstl.core.fileio import write_json_atomic

    return write_json_atomic(paths.BUILD_DIR / "metrics" / f"{notebook}.json", values)
