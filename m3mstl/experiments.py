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

from m3mstl import stats
from m3mstl.metrics import PAPER_NORMALISER, occlusion_correct
from m3mstl.predict import load_predictions
from m3mstl.train.gating import allow_training  # noqa: F401  (called by every notebook's setup cell)

# Reported in the M3MSTL paper's abstract (TFD68 test split); NME as a fraction, inter-ocular.
PAPER_RESULTS = {
    "m3mstl": {"occlusion_accuracy": 0.918, "nme_mean": 0.246, "roc_auc": 0.974, "average_precision": 0.966},
    "baseline": {"occlusion_accuracy": 0.897, "nme_mean": 0.382},
}

# Ablation variants of M3MSTL: each is a set of config overrides (see m3mstl.config.apply_override).
ABLATIONS: dict[str, dict[str, Any]] = {
    "full M3MSTL": {},
    "no stage 1 (no mask pretraining)": {"stages": ["heads", "joint"]},
    "no frozen stage 2": {"stages": ["mask_pretrain", "joint"]},
    "ViT occlusion head without temperature": {"model_options.occlusion_uses_temperature": False},
    "token MLP occlusion head with temperature": {"model_options.occlusion_head": "token_mlp"},
    "temperature as 2nd input channel": {"model_options.temperature_channel": True},
    "stage-1 target: visible-only disks": {"model_options.stage1_target": "visible_disk_mask"},
    "stage-1 target: per-landmark heatmaps": {"model_options.stage1_target": "heatmaps"},
    # Not in the paper: our test of whether local tokens limit the ViT head (see M3MSTLOptions).
    "ViT tokens + global face context (extension)": {"model_options.token_global_context": True},
}

# Ablations train many models, so outside the paper profile they run on a shorter
# schedule than the main comparison; the full model is retrained on the same schedule
# so every row of an ablation table had the same budget.
ABLATION_EPOCHS: dict[str, dict[str, int]] = {
    "quick": {},
    "default": {"mask_pretrain": 1, "heads": 1, "joint": 2, "multitask": 4, "landmark_finetune": 1},
    "paper": {},
}
# ... and on part of the training split (images), for the same reason.
ABLATION_TRAIN_IMAGES: dict[str, int | None] = {
    "quick": None,
    "default": 1200,
    "paper": None,
}


def ablation_overrides(profile: str, model: str, variant: dict[str, Any]) -> dict[str, Any]:
    """The variant's overrides plus the profile's ablation schedule for the stages it keeps."""
    from m3mstl.config import make_config

    stages = variant.get("stages") or [s.name for s in make_config(model, profile).stages]
    schedule = {f"stages.{name}.epochs": epochs for name, epochs in ABLATION_EPOCHS[profile].items()
                if name in stages}
    limit = ABLATION_TRAIN_IMAGES[profile]
    if limit is not None:
        schedule["data.max_train_images"] = limit
    return {**schedule, **variant}


# Hourglass ablation (Kim et al.): each auxiliary component switched off in turn.
HOURGLASS_ABLATIONS: dict[str, dict[str, Any]] = {
    "full hourglass": {},
    "no feature pyramid fusion": {"model_options.use_fpf": False},
    "no inter-level occlusion fusion": {"model_options.use_occlusion_fusion": False},
    "Euler-angle pose head": {"model_options.pose_head": "euler"},
    "no heatmap scaling": {"model_options.heatmap_scale": 1.0},
}


@dataclass
class RunResult:
    """A finished run's record, loaded for comparison."""

    name: str
    run_dir: Path
    metrics: dict[str, Any]
    per_image: pd.DataFrame
    predictions: dict[str, np.ndarray]

    @property
    def run_id(self) -> str:
        return f"{self.run_dir.parent.name}/{self.run_dir.name}"

    @property
    def labelled(self) -> np.ndarray:
        return self.predictions["visibility"] > 0

    @property
    def occluded(self) -> np.ndarray:
        return self.predictions["visibility"] == 1


def load_run(run_dir: str | Path, name: str | None = None, split: str = "test") -> RunResult:
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / f"metrics_{split}.json").read_text())
    per_image = pd.read_csv(run_dir / f"per_image_{split}.csv", dtype={"subject": str, "image_id": str})
    preds = load_predictions(run_dir / f"predictions_{split}.npz")
    return RunResult(name or run_dir.parent.name, run_dir, metrics, per_image, preds)


def summary_row(result: RunResult, normaliser: str = PAPER_NORMALISER) -> dict[str, Any]:
    lm = result.metrics["landmarks"][normaliser]
    box = result.metrics["landmarks"]["box"]
    occ = result.metrics["occlusion"]
    return {
        "model": result.name,
        "occlusion_accuracy": occ["accuracy"],
        "class_prior_occluded": occ["class_prior_occluded"],
        "balanced_accuracy": occ["balanced_accuracy"],
        "roc_auc": occ["roc_auc"],
        "average_precision": occ["average_precision"],
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


def record_metrics(notebook: str, values: dict[str, Any]) -> Path:
    """Metrics a notebook reports, for the tests that read them (build/metrics/<notebook>.json)."""
    from m3mstl import paths
    from m3mstl.fileio import write_json_atomic

    return write_json_atomic(paths.BUILD_DIR / "metrics" / f"{notebook}.json", values)


def resolve_data_dir(profile: str, data_dir: str | Path | None) -> Path:
    """The dataset a notebook works on: the given folder, or the profile's embedded
    SynthTFD68 (generated on first use)."""
    if data_dir:
        path = Path(data_dir)
        if not (path / "annotations.json").is_file():
            raise FileNotFoundError(f"{path}: no annotations.json - not a TFD68-layout dataset")
        return path
    from m3mstl.reproduce import ensure_synthetic_data

    return ensure_synthetic_data(profile)
