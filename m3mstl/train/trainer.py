"""The curriculum trainer: one loop for every model family and stage.

What a stage trains and freezes, and what its loss is, belongs to the model
(`m3mstl.models.base.CurriculumModel`); the trainer owns the rest: seeding, data
order, optimiser, early stopping, checkpoints, resuming, predictions and the run record.

Reproducibility: the data order and augmentation of an epoch depend only on
(seed, stage, epoch), and each epoch's checkpoint stores the model, optimiser,
scheduler and RNG states, so an interrupted run resumed from its last checkpoint
ends with the same weights as one that was never interrupted (on CPU).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from m3mstl import paths
from m3mstl.config import PROFILES, RunConfig, StageConfig, make_config, validate_config
from m3mstl.data.dataset import PreparedData
from m3mstl.data.errors import DatasetError
from m3mstl.core.device import resolve_device, to_device
from m3mstl.errors import ConfigError, RunError, UnknownOptionError, UsageError
from m3mstl.core.fileio import atomic_path, write_bytes_atomic, write_json_atomic
from m3mstl.evaluation.metrics import progress_nme
from m3mstl.models import create_model, list_models
from m3mstl.models.registry import get_family
from m3mstl.runs.provenance import code_fingerprint
from m3mstl.runs import (
    data_fingerprint,
    environment_info,
    is_complete,
    load_checkpoint,
    run_dir_for,
)
from m3mstl.core.progress import format_duration, relay_path, report as relay_progress
from m3mstl.runs import lifecycle

RELAY_SECONDS = 10.0  # how often a relayed progress line is written during an epoch


def resolve_model_options(model: str, options: dict[str, Any]) -> dict[str, Any]:
    """The full, JSON-ready option dict a model family resolves `options` to (without building it)."""
    resolved = get_family(model).resolve_options(options)
    return json.loads(json.dumps(resolved, default=list))


def seed_everything(seed: int, deterministic: bool = True) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def prepare_data(config: RunConfig, data_dir: Path) -> PreparedData:
    """Read the dataset, split it by subject, and build the cached torch datasets."""
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.dataset import AugmentConfig, ThermalFaceDataset
    from m3mstl.data.splits import run_split_indices

    dataset = read_dataset(data_dir)
    fingerprint = data_fingerprint(data_dir)
    splits = run_split_indices(dataset, config.data, data_dir)
    cache_dir = paths.BUILD_DIR / "cache"
    common = dict(input_size=config.data.input_size, margin_px=config.data.margin_px,
                  square_crop=config.data.square_crop, cache_dir=cache_dir, seed=config.seed,
                  face_box=config.data.face_box, margin_fraction=config.data.margin_fraction)
    augment = AugmentConfig(**config.data.augment)
    torch_sets = {
        "train": ThermalFaceDataset(dataset, splits["train"], augment=augment, **common),
        "val": ThermalFaceDataset(dataset, splits["val"], augment=None, **common),
        "test": ThermalFaceDataset(dataset, splits["test"], augment=None, **common),
    }
    return PreparedData(dataset, splits, fingerprint, torch_sets)


def resolve_loader_options(config: RunConfig, device: torch.device) -> dict[str, Any]:
    """The DataLoader settings a run uses on `device`: the config's loader section with its
    None entries ("what fits the device") filled in. See `m3mstl.config.LoaderConfig`."""
    settings = config.loader
    workers = settings.num_workers
    if workers is None:
        # CPU: in-process. The cores are busy training, and no worker can hang a notebook.
        # CUDA: one GPU outruns one loading core many times over (README, "The paper profile
        # on a GPU"), so load on every core but the one driving the GPU, up to 8.
        workers = 0 if device.type != "cuda" else min(8, max(1, _usable_cores() - 1))
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ConfigError("loader.num_workers", f"must be a whole number >= 0 or null, got {workers!r}")
    if not isinstance(settings.prefetch_factor, int) or settings.prefetch_factor < 1:
        raise ConfigError("loader.prefetch_factor", f"must be a whole number >= 1, got {settings.prefetch_factor!r}")
    pin = device.type == "cuda" if settings.pin_memory is None else bool(settings.pin_memory)
    return {"num_workers": workers, "prefetch_factor": settings.prefetch_factor if workers else None,
            "pin_memory": pin, "persistent_workers": bool(settings.persistent_workers) and workers > 0}


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_precision(config: RunConfig, device: torch.device) -> str:
    """The autocast dtype of the training step: "fp32", "bf16" or "fp16" (see RunConfig.precision)."""
    from m3mstl.config import PRECISIONS

    if config.precision not in PRECISIONS:
        raise UnknownOptionError("precision", f"must be one of {PRECISIONS}, got {config.precision!r}")
    if config.precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if config.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision bf16: {torch.cuda.get_device_name(device)} does not support bfloat16; "
                         f"use precision=fp16 (with loss scaling) or auto")
    return config.precision


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_train_loader(train_set, config: RunConfig, options: dict[str, Any]):
    """One training loader for the whole run; `start_epoch` points it at each epoch in turn."""
    from m3mstl.data.dataset import EpochSampler, make_loader

    return make_loader(train_set, config.data.batch_size, shuffle=True, seed=config.seed,
                       sampler=EpochSampler(len(train_set)), **options)


def start_epoch(loader, config: RunConfig, stage_index: int, epoch: int) -> None:
    """Select an epoch's order and augmentation: both depend only on (seed, stage, epoch), so a
    resumed run sees what an uninterrupted one saw, whatever the number of workers."""
    loader.sampler.set_epoch(stage_index * 10_000 + epoch,
                             order_seed=config.seed * 1_000_003 + stage_index * 10_000 + epoch)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def cosine_learning_rate(stage_cfg: StageConfig, progress: float) -> float:
    """Learning rate at `progress` (0..1) through a stage with cosine decay: a half cosine from
    ``lr`` down to ``lr * cosine_final_fraction``. Ending at a small rate lets the last epochs
    average out the gradient noise instead of jumping around the minimum."""
    floor = stage_cfg.lr * stage_cfg.cosine_final_fraction
    return floor + (stage_cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def scheduled_learning_rate(stage_cfg: StageConfig, progress: float) -> float | None:
    """The rate a stage sets at `progress` (0..1) of its steps, or None when it sets none (a constant
    rate, or reduce-on-plateau). A warm-up rises linearly from 0 to ``lr`` over its fraction of the
    steps; the cosine, when set, spans the remaining steps."""
    warmup = stage_cfg.warmup_fraction
    if warmup > 0 and progress < warmup:
        return stage_cfg.lr * progress / warmup
    if stage_cfg.cosine_decay:
        return cosine_learning_rate(stage_cfg, (progress - warmup) / (1.0 - warmup))
    return stage_cfg.lr if warmup > 0 else None


def _set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _save_torch_atomic(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class Trainer:
    """Trains one run (one config on one dataset) through its curriculum."""

    def __init__(self, config: RunConfig, data_dir: str | os.PathLike, *, device: str = "auto",
                 runs_root: Path | None = None, progress: bool = True,
                 step_hook: Callable[[str, int, int], None] | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.device = resolve_device(device)
        self.progress = progress
        self.step_hook = step_hook  # test hook: called (stage, epoch, step) after each step
        validate_config(config)  # before any data is read or any epoch trained
        if not (self.data_dir / "annotations.json").is_file() and not self.data_dir.is_file():
            raise DatasetError(self.data_dir / "annotations.json", "not found: not a TFD68-layout dataset")
        # Record every model option, defaults included, so the run id changes when a default
        # does and an old run is never reused for a model that would now be built differently.
        config.model_options = resolve_model_options(config.model, config.model_options)
        self.fingerprint = data_fingerprint(self.data_dir)
        self.run_dir = run_dir_for(config, self.fingerprint, runs_root)
        self.loader_options = resolve_loader_options(config, self.device)
        self.precision = resolve_precision(config, self.device)
        self._data: PreparedData | None = None
        self._train_loader = None  # built on first use, kept across epochs and stages

    # -- public --------------------------------------------------------------------------
    @property
    def data(self) -> PreparedData:
        if self._data is None:
            self._data = prepare_data(self.config, self.data_dir)
        return self._data

    def fit(self, *, until_stage: str | None = None, resume: bool = True, force: bool = False,
            refusal: Callable[[], str] | None = None) -> Path:
        """Train through the curriculum (up to and including `until_stage`), then predict and
        record metrics when the last stage is done. Returns the run folder.

        The run's lifecycle is `m3mstl.runs.lifecycle.produce_run`'s: a finished run is reused
        (unless `force`), training the notebook gate forbids raises `RunNotTrained` (message:
        `refusal()`, by default one naming the run), and the run's lock is held while it trains.
        Checks the data (every check of `m3mstl validate`, cached by fingerprint) and the stage
        before any epoch."""
        stage_names = [s.name for s in self.config.stages]
        if until_stage is not None and until_stage not in stage_names:
            raise ConfigError("--stage", f"{until_stage!r} is not a stage of this run's curriculum {stage_names}")
        if refusal is None:  # `train` passes the message naming the command that trains exactly this run
            def refusal() -> str:
                config = self.config
                subject = (config.model + (f" up to stage {until_stage}" if until_stage else "") + f", profile "
                           f"{config.profile!r}, seed {config.seed}, on {lifecycle.shown_path(self.data_dir)}")
                return lifecycle.not_trained_message(subject, self.run_dir, command=None, profile=config.profile)
        return lifecycle.produce_run(
            self.run_dir, lambda: self._train_locked(until_stage, resume), fingerprint=self.fingerprint,
            force=force, refusal=refusal, needs_training=lambda: self.would_train(until_stage=until_stage),
            on_reuse=lambda: discard_resume_state(self.run_dir))  # runs finished before that rule existed

    def _train_locked(self, until_stage: str | None, resume: bool) -> Path:
        from m3mstl.data.validate import check_dataset

        check_dataset(self.data_dir, self.fingerprint)
        state = self._load_state()
        if state is not None and not resume:
            raise RunError(self.run_dir, "holds an unfinished run; pass resume=True (--resume) to "
                               "continue it or force=True (--force) to start again")
        self._write_run_header()
        stage_names = [s.name for s in self.config.stages]
        last = stage_names.index(until_stage) if until_stage else len(stage_names) - 1

        seed_everything(self.config.seed)
        model = self._build_model()
        try:
            for stage_index in range(last + 1):
                self._run_stage(model, stage_index, state)
                state = self._load_state()
        finally:
            self._train_loader = None  # stops persistent workers now, not whenever the Trainer goes
        if last == len(stage_names) - 1:
            self._finish(model)
        return self.run_dir

    def would_train(self, *, until_stage: str | None = None, force: bool = False) -> bool:
        """Whether `fit` with these arguments would train (rather than return a finished run)."""
        if force or not is_complete(self.run_dir):
            if force or until_stage is None:
                return True
            names = [s.name for s in self.config.stages]
            state = self._load_state()
            if state is None or until_stage not in names:  # fit names an unknown stage itself
                return True
            target = names.index(until_stage)
            return not (state["stage_index"] > target or (state["stage_index"] == target and state["stage_done"]))
        return False

    # -- pieces ------------------------------------------------------------------------
    def _build_model(self) -> torch.nn.Module:
        model = create_model(self.config.model, **self.config.model_options)
        memory_format = torch.channels_last if self.config.channels_last else torch.contiguous_format
        return model.to(self.device, memory_format=memory_format)

    def _write_run_header(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.run_dir / "config.json", self.config.to_dict())
        env = environment_info(str(self.device))
        env["data_dir"] = paths.portable_data_path(self.data_dir)  # no machine's absolute path
        env["data_fingerprint"] = self.fingerprint
        env["code_fingerprint"] = code_fingerprint()  # which code trained it (m3mstl.runs.provenance)
        env["precision"] = self.precision
        env["loader"] = dict(self.loader_options)
        if not (self.run_dir / "environment.json").exists():
            write_json_atomic(self.run_dir / "environment.json", env)

    def _load_state(self) -> dict[str, Any] | None:
        path = self.run_dir / "checkpoints" / "last.pt"
        if not path.is_file():
            return None
        return load_checkpoint(path)

    def _make_optimizer(self, model, stage_cfg):
        if stage_cfg.plateau_scheduler and stage_cfg.cosine_decay:
            # Cosine decay sets the rate every step and would silently undo each plateau cut.
            raise ValueError(f"stage {stage_cfg.name!r}: choose plateau_scheduler or cosine_decay, not both")
        params = model.trainable_parameters()
        optimizer_class = torch.optim.AdamW if self.config.optimizer == "adamw" else torch.optim.Adam
        optimizer = optimizer_class(params, lr=stage_cfg.lr, weight_decay=self.config.weight_decay)
        scheduler = None
        if stage_cfg.plateau_scheduler:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3, min_lr=1e-7)
        return optimizer, scheduler

    def _run_stage(self, model, stage_index: int, state: dict[str, Any] | None) -> None:
        stage_cfg = self.config.stages[stage_index]
        stage_state = {"epoch": 0, "best_val": math.inf, "bad_epochs": 0, "done": False}
        if state is not None:
            if state["stage_index"] > stage_index or (state["stage_index"] == stage_index and state["stage_done"]):
                return  # this stage finished earlier; its weights are in the checkpoint loaded below
        model.set_stage(stage_cfg.name)
        optimizer, scheduler = self._make_optimizer(model, stage_cfg)
        # fp16 needs loss scaling (its small gradients underflow); the scale it has found is kept
        # across the stage's epochs and in the checkpoint. Disabled, the scaler does nothing.
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        history = []
        if state is not None:
            model.load_state_dict(state["model"])
            history = state["history"]
            if state["stage_index"] == stage_index:
                optimizer.load_state_dict(state["optimizer"])
                if scheduler is not None and state.get("scheduler"):
                    scheduler.load_state_dict(state["scheduler"])
                if state.get("scaler"):
                    scaler.load_state_dict(state["scaler"])
                stage_state = state["stage_state"]
            # Always continue the random stream where the checkpoint left it, also when the
            # checkpoint closed the previous stage: that is what an uninterrupted run sees.
            _set_rng_state(state["rng"])
            model.set_stage(stage_cfg.name)
        ema = self._make_ema(model)  # each stage averages from its own starting weights
        if ema is not None and state is not None and state["stage_index"] == stage_index and state.get("ema"):
            ema.module.load_state_dict(state["ema"])
        judged = ema.module if ema is not None else model  # the weights validation sees and keeps
        if self.progress:  # relayed only: says what trains before the first in-epoch line
            relay_progress(f"[{self.config.model}] stage {stage_index + 1}/{len(self.config.stages)} {stage_cfg.name}: "
                           f"from epoch {stage_state['epoch'] + 1} of {stage_cfg.epochs}, {self.run_dir.name}")
        while stage_state["epoch"] < stage_cfg.epochs and not stage_state["done"]:
            epoch = stage_state["epoch"]
            t0 = time.perf_counter()
            train_loss = self._train_epoch(model, optimizer, scaler, stage_cfg, stage_index, epoch, ema)
            val = self.validate(judged, stage_cfg.name)
            if scheduler is not None:
                scheduler.step(val["val_loss"])
            improved = val["val_loss"] < stage_state["best_val"] - 1e-6
            if improved:
                stage_state["best_val"] = val["val_loss"]
                stage_state["bad_epochs"] = 0
                _save_torch_atomic(judged.state_dict(), self.run_dir / "checkpoints" / f"best-{stage_cfg.name}.pt")
            else:
                stage_state["bad_epochs"] += 1
            stage_state["epoch"] = epoch + 1
            if stage_cfg.patience is not None and stage_state["bad_epochs"] >= stage_cfg.patience:
                stage_state["done"] = True  # early stopping
            history.append({"stage": stage_cfg.name, "epoch": epoch + 1, "train_loss": train_loss, **val,
                            "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 2),
                            "improved": improved})
            finished = stage_state["done"] or stage_state["epoch"] >= stage_cfg.epochs
            if finished:
                # Early stopping keeps the best epoch's weights, not the last ones.
                best = torch.load(self.run_dir / "checkpoints" / f"best-{stage_cfg.name}.pt", map_location="cpu")
                model.load_state_dict(best)
            self._checkpoint(model, optimizer, scheduler, stage_index, stage_state, history, finished, scaler, ema)
            if self.progress:
                summary = (f"[{self.config.model}] {stage_cfg.name} epoch {epoch + 1}/{stage_cfg.epochs}: "
                           f"train {train_loss:.4f} val {val['val_loss']:.4f} val NME {val['val_nme']:.4f} "
                           f"({time.perf_counter() - t0:.0f} s)")
                if not relay_progress(summary):  # relayed to the reproduction's terminal, or shown here
                    tqdm.write(summary)

    def _make_ema(self, model):
        """timm's moving average of `model`'s weights and buffers, or None (config.ema_decay unset). Its
        decay warms up from 0 (timm's use_warmup), so a short stage is not dominated by its first weights."""
        if self.config.ema_decay is None:
            return None
        from timm.utils import ModelEmaV3

        return ModelEmaV3(model, decay=self.config.ema_decay, use_warmup=True)

    def _train_epoch(self, model, optimizer, scaler, stage_cfg, stage_index: int, epoch: int, ema=None) -> float:
        if self._train_loader is None:
            self._train_loader = make_train_loader(self.data.torch_sets["train"], self.config, self.loader_options)
        loader = self._train_loader
        start_epoch(loader, self.config, stage_index, epoch)
        steps = stage_cfg.steps_per_epoch or len(loader)
        model.train()
        autocast_dtype = AUTOCAST_DTYPES.get(self.precision)
        total, count = 0.0, 0
        iterator = iter(loader)
        # A bar in a terminal or JupyterLab (tqdm.auto); under `m3mstl reproduce` progress lines go to
        # its terminal instead, so the executed notebook stores no timings.
        relay = self.progress and relay_path() is not None
        bar = tqdm(total=steps * self.config.data.batch_size, unit="img", leave=False,
                   desc=f"[{self.config.model}] {stage_cfg.name} epoch {epoch + 1}/{stage_cfg.epochs}",
                   disable=not self.progress or relay)
        started = last_report = time.perf_counter()
        for step in range(steps):
            try:
                batch = next(iterator)
            except StopIteration:  # steps_per_epoch longer than one pass: start another pass
                iterator = iter(loader)
                batch = next(iterator)
            progress = (epoch * steps + step) / max(1, stage_cfg.epochs * steps)
            model.set_progress(progress)
            rate = scheduled_learning_rate(stage_cfg, progress)
            if rate is not None:
                _set_learning_rate(optimizer, rate)
            batch = to_device(batch, self.device)
            with torch.autocast(self.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss, parts = model.training_loss(batch, stage_cfg.name)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{self.run_dir}: loss became {loss.item()} in stage {stage_cfg.name} "
                                         f"epoch {epoch + 1} step {step} (parts: {parts})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if self.config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), self.config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model, step=epoch * steps + step)
            total += float(loss.detach()) * len(batch["image"])
            count += len(batch["image"])
            bar.update(len(batch["image"]))
            bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
            if relay and (time.perf_counter() - last_report >= RELAY_SECONDS or step + 1 == steps):
                last_report = time.perf_counter()
                self._report_progress(stage_cfg, epoch, step + 1, steps, count, last_report - started,
                                      total / count)
            if self.step_hook is not None:
                self.step_hook(stage_cfg.name, epoch, step)
        bar.close()
        return total / max(1, count)

    def _report_progress(self, stage_cfg: StageConfig, epoch: int, done: int, steps: int, images: int,
                         seconds: float, loss: float) -> None:
        """One relayed line: what trains, how far, how fast, and the stage's time left (training steps)."""
        rate = images / max(seconds, 1e-9)
        steps_left = steps - done + (stage_cfg.epochs - epoch - 1) * steps
        left = steps_left * seconds / max(done, 1)
        stage_number = [s.name for s in self.config.stages].index(stage_cfg.name) + 1
        relay_progress(f"[{self.config.model}] stage {stage_number}/{len(self.config.stages)} {stage_cfg.name} "
                       f"epoch {epoch + 1}/{stage_cfg.epochs} step {done}/{steps}: {rate:.1f} img/s, "
                       f"loss {loss:.4f}, stage time left ~{format_duration(left)}")

    @torch.no_grad()
    def validate(self, model, stage: str) -> dict[str, float]:
        """Validation loss of the stage (drives early stopping) and mean landmark NME
        normalised by the inter-ocular distance in crop coordinates (progress only).

        The NME is `m3mstl.evaluation.metrics.progress_nme`, the evaluation's `per_image_nme` averaged,
        on the gathered validation predictions (68 points per image: small next to the pass)."""
        from m3mstl.data.dataset import make_loader

        was_training = model.training
        model.eval()
        val_set = self.data.torch_sets["val"]
        limit = self.config.data.val_images_per_epoch
        if limit is not None and limit < len(val_set):
            val_set = torch.utils.data.Subset(val_set, range(limit))
        # The run's workers, not kept alive: validation is a short pass once per epoch.
        options = {**self.loader_options, "persistent_workers": False}
        loader = make_loader(val_set, self.config.data.eval_batch_size, shuffle=False, seed=0, **options)
        losses, count = 0.0, 0
        gathered: dict[str, list[np.ndarray]] = {"pred": [], "gt": [], "labelled": []}
        for batch in loader:
            batch = to_device(batch, self.device)
            loss, pred = model.validation_step(batch, stage)
            losses += float(loss) * len(batch["image"])
            count += len(batch["image"])
            for key, value in (("pred", pred.float()), ("gt", batch["landmarks"]), ("labelled", batch["labelled"])):
                gathered[key].append(value.detach().cpu().numpy())
        model.train(was_training)
        pred, gt, labelled = (np.concatenate(gathered[key]) for key in ("pred", "gt", "labelled"))
        return {"val_loss": losses / max(1, count), "val_nme": progress_nme(pred, gt, labelled)}

    def _checkpoint(self, model, optimizer, scheduler, stage_index, stage_state, history, stage_done,
                    scaler=None, ema=None) -> None:
        state = {
            "ema": ema.module.state_dict() if ema is not None else None,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "stage_index": stage_index,
            "stage_state": dict(stage_state),
            "stage_done": stage_done,
            "history": history,
            "rng": _rng_state(),
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        }
        _save_torch_atomic(state, self.run_dir / "checkpoints" / "last.pt")
        lines = "".join(json.dumps(h, sort_keys=True) + "\n" for h in history)
        write_bytes_atomic(self.run_dir / "history.jsonl", lines.encode())

    def _finish(self, model) -> None:
        from m3mstl.infer.predict import predict_split

        if self.progress:
            relay_progress(f"[{self.config.model}] trained; predicting the validation and test splits")
        final = self._load_state()
        model.load_state_dict(final["model"])
        _save_torch_atomic(model.state_dict(), self.run_dir / "model.pt")
        for split in ("val", "test"):
            predict_split(model, self.data, split, self.run_dir / f"predictions_{split}.npz",
                          batch_size=self.config.data.eval_batch_size, device=self.device)
        from m3mstl.evaluation.evaluate import evaluate_run

        evaluate_run(self.run_dir)
        self._choose_canthus_reading()
        write_json_atomic(self.run_dir / "complete.json", {"run_dir": str(self.run_dir),
                                                           "history_epochs": len(final["history"])})
        discard_resume_state(self.run_dir)


    def _choose_canthus_reading(self) -> None:
        """Store how `m3mstl predict` reads this run's canthus temperatures, chosen on its training and
        validation splits (m3mstl.infer.canthus.write_run_reading; skipped for data without the true
        canthus skin temperature)."""
        from m3mstl.infer.canthus import write_run_reading
        from m3mstl.runs.predictions import load_predictions

        val = load_predictions(self.run_dir / "predictions_val.npz")
        if "occlusion_prob" not in val:   # a landmarks-only model cannot tell which canthi to skip
            return
        records = self.data.dataset.records
        train_pick, val_pick = _evenly(len(self.data.splits["train"])), _evenly(len(val["record_index"]))
        write_run_reading(self.run_dir, [records[i] for i in self.data.splits["train"][train_pick]],
                          [records[i] for i in val["record_index"][val_pick]],
                          val["pred_landmarks"][val_pick], val["occlusion_prob"][val_pick])


#: The most faces of a split the canthus-reading choice reads (evenly spaced): it holds every map it
#: reads in memory, and the paper profile's 17,000 training maps at 256 px would take 4.5 GB.
READING_CHOICE_FACES = 2000


def _evenly(n: int, most: int = READING_CHOICE_FACES) -> np.ndarray:
    """Indices of at most `most` of n items, evenly spaced (all of them when n <= most)."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int)) if n else np.zeros(0, dtype=int)


# Checkpoints a finished run still needs: notebook 02 and the scaling study read the stage-1 mask
# decoder, which the final model.pt keeps but whose best stage-1 weights it does not.
KEPT_AFTER_COMPLETION = frozenset({"best-mask_pretrain.pt"})


def discard_resume_state(run_dir: Path) -> None:
    """Delete what only resuming needed once a run is complete: `last.pt` (weights plus optimiser
    moments, three times the model's size) and the best-of-stage copies that `model.pt` supersedes.
    Without this a ResNet-50 M3MSTL run kept ~840 MB instead of ~240 MB, and the test suite filled
    a CI disk (2026-12-02)."""
    for checkpoint in (run_dir / "checkpoints").glob("*.pt"):
        if checkpoint.name not in KEPT_AFTER_COMPLETION:
            checkpoint.unlink(missing_ok=True)


def train(model: str, profile: str, data_dir: str | os.PathLike, *, seed: int = 0,
          overrides: dict[str, Any] | None = None, until_stage: str | None = None, resume: bool = True,
          force: bool = False, device: str = "auto", progress: bool = True,
          runs_root: Path | None = None) -> Path:
    """Train `model` under `profile` on a TFD68-layout folder; return the run folder.
    A finished run with the same config and data is reused unless `force`."""
    config = make_config(model, profile, seed=seed, overrides=overrides)
    trainer = Trainer(config, data_dir, device=device, progress=progress, runs_root=runs_root)

    def refusal() -> str:
        return lifecycle.missing_run_message(model, profile, Path(data_dir), trainer.run_dir, seed=seed,
                                             overrides=overrides, until_stage=until_stage)

    return trainer.fit(until_stage=until_stage, resume=resume, force=force, refusal=refusal)


def stage_aliases(model: str) -> dict[str, str]:
    """`--stage N` as the name of the family's N-th stage, in the order of the STAGES of the model
    class its registered factory returns (m3mstl, baseline: 1 mask_pretrain, 2 heads, 3 joint;
    hourglass: 1 multitask, 2 landmark_finetune); none for a factory that names no such class."""
    import inspect

    from m3mstl.models.base import CurriculumModel

    try:
        returned = inspect.signature(get_family(model).factory, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):  # an annotation that does not resolve
        return {}
    if not (isinstance(returned, type) and issubclass(returned, CurriculumModel)):
        return {}
    return {str(number): name for number, name in enumerate(returned.STAGES, 1)}


# -- command line ------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=list_models())
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--data", required=True, type=Path, help="TFD68-layout folder")
    parser.add_argument("--stage", default="all",
                        help="train up to this stage: its name, or N for the model family's N-th stage "
                             "(M3MSTL 1-3, hourglass 1-2), or all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry, e.g. data.input_size=96 or stages.joint.epochs=3")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    parser.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    overrides = {}
    for item in args.overrides:
        if "=" not in item:
            raise UsageError("--set", f"expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = value
    until = None if args.stage == "all" else stage_aliases(args.model).get(args.stage, args.stage)
    run_dir = train(args.model, args.profile, args.data, seed=args.seed, overrides=overrides,
                    until_stage=until, resume=args.resume, force=args.force, device=args.device)
    print(run_dir)
    return 0
