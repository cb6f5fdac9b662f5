"""The scaling study (issue 12): at what input size and training budget, if any, does M3MSTL beat
its one-stage baseline on SynthTFD68?

Each grid point is (input size, trunk[, an M3MSTL option]); at each, M3MSTL and the baseline are
trained with several seeds on the same training split for the same epochs, so both see the same
number of training samples at every point (the images are only resized). For each point the
study records the stage-1 validation IoU (does stage 1 learn anything at this size?), the sizes
of the feature maps the occlusion tokens are sampled from, the measured training time and the counted
training compute (`training_flops`), and the
M3MSTL - baseline differences in ROC-AUC, AP, occlusion accuracy and median NME with 95 %
intervals over training seeds and test subjects (`m3mstl.evaluation.stats.seed_subject_interval`). The
classical peer (`m3mstl.train.peer`) gives a reference NME.

Runs are ordinary run records (`runs/<model>/<run-id>/`): the study reuses every finished run
with the same config and data, and an interrupted training resumes, so the study can be stopped
and restarted. Settings derive from a base profile ("default" for the extended profile, "quick"
for tests), so the default profile's own runs are reused where the grid meets them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from m3mstl import paths, profiles
from m3mstl.errors import UnknownOptionError
from m3mstl.profiles import FLOOR_2PX, PAPER_RADIUS  # noqa: F401  (re-exported: benchmarks use them)
from m3mstl.studies import comparison
from m3mstl.config import make_config
from m3mstl.core.fileio import write_json_atomic
from m3mstl.data.fingerprint import data_fingerprint
from m3mstl.runs.archive import archive_run
from m3mstl.runs import load_config, load_json, read_history
from m3mstl.runs.result import RunResult, load_run
from m3mstl.studies.run_lookup import epochs_with_images, run_state


PAPER_VARIANT = "paper stage-1 radius"


@dataclass(frozen=True)
class ScalePoint:
    """One point of the grid: both models at this input size with this trunk."""

    input_size: int
    backbone: str
    variant: str = PAPER_VARIANT
    m3mstl_overrides: dict[str, Any] = field(default_factory=dict)  # M3MSTL only (e.g. a stage-1 option)
    # The training budget: each model's total epochs times this, the added epochs all in its joint
    # stage (so both still see the same number of samples) and early stopping off (the note above
    # `m3mstl.profiles.SCALING_GRIDS`).
    epochs_factor: int = 1

    def overrides(self, model: str, profile: str = "extended") -> dict[str, Any]:
        """The point's run overrides. On the default's data (the extended profile) the study asks its
        question of the first published default's training recipe (Adam 3e-4, 10 epochs;
        `m3mstl.studies.recipes.old_recipe`), written out in full so its runs stay the same whatever the
        default profile trains now (issue 28 changed it); another profile's grid (quick: the tests)
        trains that profile's own schedule."""
        from m3mstl.config import base_profile
        from m3mstl.studies.recipes import old_recipe

        if model not in ("m3mstl", "baseline"):
            raise UnknownOptionError("model", f"the scaling study trains M3MSTL and the baseline, whose joint stage "
                                              f"its budgets extend, not {model!r}")
        common = {"data.input_size": self.input_size, "model_options.backbone": self.backbone}
        if base_profile(profile) == "default":
            common = {**old_recipe(model, self.epochs_factor), **common}
        elif self.epochs_factor != 1:
            stages = make_config(model, profile).stages
            added = (self.epochs_factor - 1) * sum(stage.epochs for stage in stages)
            joint = next(stage for stage in stages if stage.name == "joint")
            common.update({"stages.joint.epochs": joint.epochs + added, "stages.joint.patience": None})
        return {**common, **(self.m3mstl_overrides if model == "m3mstl" else {})}

    @property
    def label(self) -> str:
        return f"{self.input_size} px {self.backbone}" + ("" if self.variant == PAPER_VARIANT else f", {self.variant}")


# The grids and their seeds, per profile, and why these points: `m3mstl.profiles` (SCALING_GRIDS,
# SCALING_SEEDS; PAPER_RADIUS and FLOOR_2PX are the M3MSTL stage-1 overrides its points name).


def scale_point(entry: dict[str, Any]) -> ScalePoint:
    """A grid point from its table entry (`m3mstl.profiles.SCALING_GRIDS`); unknown keys are refused."""
    known = {f.name for f in fields(ScalePoint)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise UnknownOptionError("scaling grid point", f"unknown key(s) {unknown}; known: {sorted(known)}")
    return ScalePoint(**entry)


SCALING_GRIDS: dict[str, list[ScalePoint]] = {profile: [scale_point(entry) for entry in grid]
                                              for profile, grid in profiles.SCALING_GRIDS.items()}
SCALING_SEEDS: dict[str, int] = profiles.SCALING_SEEDS
TOKEN_STRIDE_OPTION = "token_feature_strides"
DIFFERENCE_METRICS = {"roc_auc": "roc_auc", "average_precision": "average_precision",
                      "occlusion_accuracy": "occlusion accuracy", "nme_median": "median NME (inter_ocular)"}


def scaling_grid(profile: str) -> list[ScalePoint]:
    if profile not in SCALING_GRIDS:
        raise ValueError(f"the scaling study has no grid for profile {profile!r}; profiles: {sorted(SCALING_GRIDS)}")
    return SCALING_GRIDS[profile]


def scaling_seeds(profile: str, seed: int = 0) -> list[int]:
    return [seed + i for i in range(SCALING_SEEDS[profile])]


def token_map_sizes(run_dir: Path) -> list[int]:
    """Side of each trunk feature map the occlusion tokens are sampled from (ResNet strides pad, so
    a map is ceil(input / stride))."""
    config = load_config(run_dir)
    strides = config.model_options.get(TOKEN_STRIDE_OPTION, [8, 16, 32])
    return [math.ceil(config.data.input_size / s) for s in strides]


def training_seconds(run_dir: Path) -> float:
    """Measured training time: the sum of the per-epoch `seconds` in the run's history."""
    return float(sum(entry.get("seconds", 0.0) for entry in read_history(run_dir)))


def training_images_seen(run_dir: Path, n_train: int) -> int:
    """Training samples the run drew over all its epochs."""
    return sum(images for _, images in epochs_with_images(run_dir, n_train))


def training_flops(run_dir: Path, data_dir: Path) -> float:
    """Training compute of a run in floating-point operations, independent of the CPU it ran on and
    of whatever else ran beside it (measured seconds depend on both).

    torch's `FlopCounterMode` counts one training step of each stage (forward, loss and backward,
    with the stage's frozen parts frozen, at the run's batch size, on real training samples); the
    step's count per image times the training images of each epoch the history records gives the
    total. It counts the matrix multiplications and convolutions, which are nearly all of a CNN's
    arithmetic, not element-wise operations or the optimiser update; per-epoch validation is not
    training and is left out. Stored in the run (training_flops.json)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from m3mstl.data.dataset import make_loader
    from m3mstl.runs import load_model
    from m3mstl.train.trainer import prepare_data

    run_dir = Path(run_dir)
    cached = run_dir / "training_flops.json"
    if cached.is_file():
        return float(load_json(cached)["flops"])
    config = load_config(run_dir)
    model = load_model(run_dir)
    train_set = prepare_data(config, data_dir).torch_sets["train"]
    batch = next(iter(make_loader(train_set, config.data.batch_size, shuffle=False, seed=0)))
    per_image: dict[str, float] = {}
    for stage in config.stages:
        model.set_stage(stage.name)
        model.train()
        model.zero_grad(set_to_none=True)
        with FlopCounterMode(display=False) as counter:
            loss, _ = model.training_loss(batch, stage.name)
            loss.backward()
        per_image[stage.name] = counter.get_total_flops() / len(batch["image"])
    n_train = len(train_set)
    total = sum(images * per_image[entry["stage"]] for entry, images in epochs_with_images(run_dir, n_train))
    write_json_atomic(cached, {"flops": total, "flops_per_image_by_stage": per_image, "images": n_train})
    return total


def stage1_validation_iou(run_dir: Path, data_dir: Path, max_images: int = 256) -> float | None:
    """IoU at 0.5 of the stage-1 decoder's mask on the first `max_images` validation images, pooled
    over pixels, with the model's own stage-1 target (kind, radius and floor). Stored in the run
    (stage1_val_iou.json) so a rerun of the study does not recompute it. None without a stage 1."""
    import torch

    from m3mstl.data.dataset import make_loader
    from m3mstl.runs import load_model
    from m3mstl.train.trainer import prepare_data

    run_dir = Path(run_dir)
    cached = run_dir / "stage1_val_iou.json"
    if cached.is_file():
        return load_json(cached)["iou"]
    checkpoint = run_dir / "checkpoints" / "best-mask_pretrain.pt"
    if not checkpoint.is_file():
        return None
    config = load_config(run_dir)
    model = load_model(run_dir, "checkpoints/best-mask_pretrain.pt")
    val_set = prepare_data(config, data_dir).torch_sets["val"]
    subset = torch.utils.data.Subset(val_set, range(min(max_images, len(val_set))))
    intersection = union = 0.0
    with torch.no_grad():
        for batch in make_loader(subset, config.data.eval_batch_size, shuffle=False, seed=0):
            logits = model.mask_logits(batch["image"], batch["temperature"], batch["has_temperature"])
            visibility = torch.where(batch["labelled"], batch["visibility"], torch.zeros_like(batch["visibility"]))
            target, _ = model.stage1_targets(batch["landmarks"], visibility, config.data.input_size)
            # As losses.mask_iou, pooled over all images' pixels instead of one batch.
            predicted, truth = torch.sigmoid(logits.float()) > 0.5, target > 0.5
            intersection += float((predicted & truth).sum())
            union += float((predicted | truth).sum())
    iou = intersection / union if union > 0 else 1.0  # both empty: as losses.mask_iou
    write_json_atomic(cached, {"iou": iou, "images": len(subset)})
    return iou


@dataclass
class PointRuns:
    point: ScalePoint
    seeds: list[int]
    m3mstl: list[RunResult]
    baseline: list[RunResult]


def train_point(point: ScalePoint, profile: str, data_dir: Path, seeds: list[int], *,
                train: Callable[..., Path] | None = None, device: str = "auto",
                use_archive: bool = True) -> PointRuns:
    """Train (or reuse) M3MSTL and the baseline at one grid point for every seed.

    A run is taken from, in order: its finished run folder (runs/), its archived record (archive/,
    `use_archive`), or a training (which resumes an interrupted one). Each run trained or found in
    runs/ is measured (stage-1 IoU, FLOPs: they need the weights) and archived at once, so a session
    that ends mid-study keeps every finished run."""
    if train is None:
        from m3mstl.train.trainer import train
    fingerprint = data_fingerprint(data_dir) if use_archive else None
    results: dict[str, list[RunResult]] = {"m3mstl": [], "baseline": []}
    for model in results:
        for seed in seeds:
            overrides = point.overrides(model, profile)
            state, run_dir = run_state(model, profile, seed, overrides, fingerprint) if use_archive else ("missing", None)
            if state != "archived":
                run_dir = train(model, profile, data_dir, seed=seed, overrides=overrides, device=device)
                if use_archive:
                    archive_measured_run(run_dir, data_dir)
            results[model].append(load_run(run_dir, model))
    return PointRuns(point, seeds, results["m3mstl"], results["baseline"])


def archive_measured_run(run_dir: Path, data_dir: Path) -> None:
    """Measure what needs the run's weights (stage-1 IoU, training FLOPs; cached in the run), then
    archive its evaluation record."""
    stage1_validation_iou(run_dir, data_dir)
    training_flops(run_dir, data_dir)
    archive_run(run_dir)


def point_row(runs: PointRuns, data_dir: Path, n_train: int, *, n_resamples: int = 2000,
              seed: int = 0) -> dict[str, Any]:
    """One row of the study's table: the point, its measurements and the M3MSTL - baseline
    differences with their seed-and-subject 95 % intervals."""
    point = runs.point
    m3_dirs = [r.run_dir for r in runs.m3mstl]
    base_dirs = [r.run_dir for r in runs.baseline]
    ious = [stage1_validation_iou(d, data_dir) for d in m3_dirs]
    row: dict[str, Any] = {
        "input_size": point.input_size, "backbone": point.backbone, "variant": point.variant,
        "n_seeds": len(runs.seeds),
        "token_maps": "/".join(f"{s}x{s}" for s in token_map_sizes(m3_dirs[0])),
        "stage1_val_iou": float(np.mean([i for i in ious if i is not None])) if any(i is not None for i in ious)
        else None,
        "images_seen_m3mstl": training_images_seen(m3_dirs[0], n_train),
        "images_seen_baseline": training_images_seen(base_dirs[0], n_train),
        "train_s_m3mstl": float(np.mean([training_seconds(d) for d in m3_dirs])),
        "train_s_baseline": float(np.mean([training_seconds(d) for d in base_dirs])),
        # The same for every seed (same config, same epochs): counted on the first seed's run.
        "train_tflop_m3mstl": training_flops(m3_dirs[0], data_dir) / 1e12,
        "train_tflop_baseline": training_flops(base_dirs[0], data_dir) / 1e12,
        "m3mstl_nme_median": float(np.mean([comparison.summary_row(r)["nme_median"] for r in runs.m3mstl])),
        "baseline_nme_median": float(np.mean([comparison.summary_row(r)["nme_median"] for r in runs.baseline])),
    }
    intervals = {i.metric: i for i in comparison.seed_aware_differences(runs.m3mstl, runs.baseline,
                                                                         n_resamples=n_resamples, seed=seed)}
    for column, metric in DIFFERENCE_METRICS.items():
        interval = intervals[metric]
        row.update({f"diff_{column}": interval.estimate, f"diff_{column}_low": interval.low,
                    f"diff_{column}_high": interval.high})
    row["variance"] = intervals["roc_auc"].variance
    return row


def number_of_training_images(profile: str, data_dir: Path) -> int:
    """Images in the training split the grid's configs use (the same at every point)."""
    from m3mstl.train.peer import split_records

    return len(split_records(make_config("baseline", profile), data_dir)["train"])


def configure_parser(parser) -> None:
    parser.add_argument("--profile", default="extended", choices=sorted(SCALING_GRIDS))
    parser.add_argument("--points", nargs="+", default=None, metavar="LABEL",
                        help="grid points by label (default: all, in grid order); --list shows them")
    parser.add_argument("--list", action="store_true", help="list the grid's points and which runs are finished")
    parser.add_argument("--seed", type=int, default=0, help="first training seed (the study's seeds follow it)")
    parser.add_argument("--device", default="auto")


def run(args) -> int:
    """`m3mstl scaling`: train (or find finished / archived) every run of the chosen points and archive
    each as it finishes, so a session that ends mid-study keeps what it trained; notebook 12 then
    builds the tables from the runs and the archive. Prints one line per run."""
    from m3mstl.data.embedded import ensure_synthetic_data
    from m3mstl.errors import UsageError

    grid = {point.label: point for point in scaling_grid(args.profile)}
    unknown = sorted(set(args.points or []) - set(grid))
    if unknown:
        raise UsageError("--points", f"no grid point {unknown}; the grid: {list(grid)}")
    data_dir = ensure_synthetic_data(args.profile)
    seeds = scaling_seeds(args.profile, args.seed)
    if args.list:
        fingerprint = data_fingerprint(data_dir)
        for label, point in grid.items():
            states = [f"{model} seed {seed} {run_state(model, args.profile, seed, point.overrides(model, args.profile), fingerprint)[0]}"
                      for model in ("m3mstl", "baseline") for seed in seeds]
            print(f"{label}: " + ", ".join(states))
        return 0
    for label in args.points or list(grid):
        runs = train_point(grid[label], args.profile, data_dir, seeds, device=args.device)
        for result in (*runs.m3mstl, *runs.baseline):
            print(f"{label}: {result.run_id} ({result.run_dir})", flush=True)
    return 0

