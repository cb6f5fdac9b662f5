"""Run configurations under the three profiles (quick, default, paper).

A `RunConfig` says everything that determines a trained model: the model family and
its options, the data preparation, the curriculum (which stages, for how long, with
which optimiser settings) and the seed. Its hash, together with the data fingerprint,
names the run folder `runs/<model>/<run-id>/`, so an identical request reuses a
finished run instead of retraining.

Profiles (see README; their settings tables: `m3mstl.profiles`):
- quick:   tests and CI; every step runs, numbers are not meaningful.
- default: the README's `make reproduce` on 2 CPU cores (ResNet-18 at 64x64 input, three seeds).
- paper:   the authors' settings (256x256, Adam 1e-4, batch 8, 15/25/25 epochs,
           early stopping 6), for a GPU.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
import math
from typing import Any

from m3mstl.errors import ConfigError, UnknownOptionError
from m3mstl.models.registry import list_models
from m3mstl.profiles import (  # noqa: F401  (re-exported: notebooks and tests read them here)
    PROFILE_BASE, PROFILES, REPRODUCE_PROFILES, SYNTH_SETTINGS, TRAINING, base_profile,
)


@dataclass
class StageConfig:
    name: str                      # a stage name the model family knows (model.STAGES)
    epochs: int
    lr: float = 1e-4
    steps_per_epoch: int | None = None   # None: one pass over the training split
    patience: int | None = None          # early stopping on validation (None: off)
    plateau_scheduler: bool = False      # reduce-on-plateau (factor 0.5, patience 3, min 1e-7)
    # Half-cosine decay of the learning rate over the stage's planned steps, from lr to
    # lr x cosine_final_fraction, set every step as a pure function of the position in the
    # stage (so a resumed run follows the same curve without any scheduler state).
    cosine_decay: bool = False
    cosine_final_fraction: float = 0.01
    # Linear warm-up from 0 to lr over this fraction of the stage's steps, then the stage's own
    # schedule (the cosine, when set, spans the rest). A large rate from the first step can throw a
    # freshly initialised head far off; the warm-up lets the adaptive optimiser's moments settle first.
    warmup_fraction: float = 0.0


@dataclass
class DataConfig:
    input_size: int = 256
    margin_px: float = 5.0           # added around the face box, in source pixels (authors' baseline)
    square_crop: bool = True         # [INFER] keep aspect; False stretches the box like the baseline
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 42
    force_test: tuple[str, ...] = ()  # TFD68: ("1", "5", "137")
    batch_size: int = 8
    eval_batch_size: int = 64
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig fields; {} = data-layer defaults
    max_train_images: int | None = None  # cap for quick runs
    # Per-epoch validation (early stopping, progress) uses at most this many validation
    # images, the first ones of the split; final predictions always cover the whole split.
    val_images_per_epoch: int | None = 512
    # Which box of each face the crop is made around (`m3mstl.data.dataset.FACE_BOXES`): "annotation",
    # the annotation's `bbox` (SynthTFD68: the extent of the 68 landmarks; TFD68: its face box), or
    # "head", the visible head (`head_bbox`, SynthTFD68 full frames), the kind of box a face detector
    # returns; or "detector", the boxes `m3mstl.detection.rule_based` itself finds on the frames (run once at data
    # preparation, cached). A model trained on either takes the detector's boxes as they come
    # (docs/thermometry.md).
    face_box: str = "annotation"
    # Margin added on every side as a fraction of the face box's larger side, on top of margin_px.
    # 0 for landmark-extent boxes (the paper's 5 px); a head box from a detector may cut the chin or
    # a cheek (its bottom edge sits a median 10 % of the face above the true head's, docs/thermometry.md),
    # so a head-box model needs the room to see it.
    margin_fraction: float = 0.0


#: Data options added after run ids were published, with the value every earlier run used: at that
#: value they stay out of the run id (`RunConfig.config_hash`), so earlier ids keep their meaning.
LATER_DATA_DEFAULTS: dict[str, Any] = {"face_box": "annotation", "margin_fraction": 0.0}
#: Likewise for stage and run options (the training recipe of issue 28).
LATER_STAGE_DEFAULTS: dict[str, Any] = {"warmup_fraction": 0.0}
LATER_RUN_DEFAULTS: dict[str, Any] = {"optimizer": "adam", "ema_decay": None}
OPTIMIZERS = ("adam", "adamw")


@dataclass
class LoaderConfig:
    """How training batches are loaded: speed only, never which samples (the sampler tags each
    index with its epoch, and augmentation draws from (seed, epoch, index); tests/test_loader.py
    checks 0 and 2 workers give byte-identical batches). So these settings are not in the run id.

    None means "what fits the device" (`m3mstl.train.trainer.resolve_loader_options`): on CPU,
    in the training process (no workers: nothing to hang in Jupyter, and the cores are busy
    training); on CUDA, worker processes and pinned memory, since one GPU trains at 256 px many
    times faster than one core loads.
    """

    num_workers: int | None = None      # None: 0 on CPU, min(8, cores - 1) on CUDA
    prefetch_factor: int = 2            # batches each worker loads ahead (with workers only)
    pin_memory: bool | None = None      # None: on CUDA only (page-locked batches copy asynchronously)
    persistent_workers: bool = True     # keep workers across epochs and stages (with workers only)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class RunConfig:
    model: str
    profile: str
    model_options: dict[str, Any] = field(default_factory=dict)
    stages: list[StageConfig] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    weight_decay: float = 0.0
    # "adam": weight decay added to the gradient (L2, as every run before issue 28); "adamw": decoupled
    # from the adaptive step (Loshchilov & Hutter), so it shrinks every weight alike.
    optimizer: str = "adam"
    # Exponential moving average of the weights (timm's ModelEmaV3, decay warmed up from 0): validation,
    # early stopping, the best checkpoint of each stage and so the final model use the averaged weights,
    # which vary far less from epoch to epoch than the raw ones at a high learning rate. None: off.
    ema_decay: float | None = None
    grad_clip: float | None = 5.0
    # Keep the model's convolution weights (and so its activations) channels-last: faster
    # training on CPU for every model but M3MSTL's joint stage, which it leaves unchanged
    # (benchmarks.bench_model; figures in the README, "Speed and the training budget").
    # Numerics differ only by rounding, so it is part of the run id.
    channels_last: bool = True
    # Autocast dtype of the training step: "auto" is fp32 on CPU (as every published run) and mixed
    # precision on CUDA: bf16 where the GPU supports it (no loss scaling needed), else fp16 with a
    # GradScaler. The resolved choice is recorded in environment.json. Explicit values also run on
    # CPU (torch's CPU autocast), which is how the tests cover them.
    precision: str = "auto"
    loader: LoaderConfig = field(default_factory=LoaderConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        raw = copy.deepcopy(raw)
        data = DataConfig(**{**raw.pop("data", {})})
        data.split_fractions = tuple(data.split_fractions)
        data.force_test = tuple(str(s) for s in data.force_test)
        stages = [StageConfig(**s) for s in raw.pop("stages", [])]
        loader = LoaderConfig(**raw.pop("loader", {}))
        return cls(data=data, stages=stages, loader=loader, **raw)

    def config_hash(self) -> str:
        hashed = self.to_dict()
        # Loader settings decide how fast samples arrive, not which (see LoaderConfig): a run
        # trained with 8 workers on a GPU host is the same run as one trained in-process.
        hashed.pop("loader")
        # `precision` came after run ids were published: at "auto" (fp32 on CPU, what those runs
        # did) it stays out of the hash, so their ids keep their meaning; set, it is part of it.
        if hashed["precision"] == "auto":
            hashed.pop("precision")
        # Likewise the data options added after them, at the value they all used.
        for section, later in ((hashed["data"], LATER_DATA_DEFAULTS), (hashed, LATER_RUN_DEFAULTS),
                               *((stage, LATER_STAGE_DEFAULTS) for stage in hashed["stages"])):
            for key, used_before in later.items():
                if key in section and section[key] == used_before:
                    section.pop(key)
        if hashed["data"].get("face_box") == "detector":
            # The crops come from the detector's code, not from the data alone: a detector that
            # moves boxes (a new DETECTOR_VERSION) makes these runs new runs.
            from m3mstl.detection.rule_based import DETECTOR_VERSION

            hashed["data"]["detector_version"] = DETECTOR_VERSION
        canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise UnknownOptionError(f"stages.{name}", f"run has no such stage; its stages: {[s.name for s in self.stages]}")


# --- the profiles ---------------------------------------------------------------------
# Every per-profile table is in `m3mstl.profiles` (the settings each family's curriculum reads:
# TRAINING, and why its numbers); each family's own per-profile epochs are in its module.


def make_config(model: str, profile: str = "default", *, seed: int = 0,
                overrides: dict[str, Any] | None = None) -> RunConfig:
    """The resolved config for a registered model ("m3mstl", "baseline", "hourglass", ...) under a
    profile: the family's own curriculum and profile options, then `overrides` (dotted keys)."""
    if profile not in REPRODUCE_PROFILES:
        raise ConfigError("profile", f"unknown profile {profile!r}; choose from {REPRODUCE_PROFILES}")
    profile = base_profile(profile)
    p = TRAINING[profile]
    data = DataConfig(input_size=p["input_size"], batch_size=p["batch"], eval_batch_size=p["eval_batch"],
                      max_train_images=p["max_train"], square_crop=p["square_crop"])
    family = _family(model)
    options, stage_fields = family.curriculum({**p, "profile": profile})
    stages = [StageConfig(**fields) for fields in stage_fields]
    optimiser = {"optimizer": p["optimizer"], "weight_decay": p["weight_decay"], "ema_decay": p["ema_decay"],
                 **family.own_optimiser}  # a family may keep its own (the hourglass: Adam, no average)
    config = RunConfig(model=model, profile=profile, model_options=options, stages=stages, data=data, seed=seed,
                       **optimiser)
    for key, value in (overrides or {}).items():
        apply_override(config, key, value)
    return config


def _family(model: str):
    from m3mstl.models.registry import get_family, list_models

    if model not in list_models():
        raise UnknownOptionError("model", f"no curriculum for model {model!r}; registered models: {list_models()}")
    return get_family(model)


def parse_value(text: str) -> Any:
    """`--set` values: JSON when it parses (numbers, booleans, lists), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_override(config: RunConfig, key: str, value: Any) -> None:
    """Set a dotted key, e.g. `data.input_size=96`, `model_options.occlusion_weight=0.5`,
    `stages.joint.epochs=3`, `stages=["heads","joint"]` (keep only these stages, in order),
    `seed=1`."""
    if isinstance(value, str):
        value = parse_value(value)
    parts = key.split(".")
    if parts == ["stages"]:
        if not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value):
            raise ConfigError(key, f"expects a non-empty list of stage names, e.g. [\"heads\",\"joint\"], got {value!r}")
        names = list(value)
        known = {s.name: s for s in config.stages}
        missing = [n for n in names if n not in known]
        if missing:
            raise UnknownOptionError(key, f"stages {missing} are not in this model's curriculum {list(known)}")
        config.stages = [known[n] for n in names]
        return
    if parts[0] == "stages" and len(parts) == 3:
        if parts[1] not in [s.name for s in config.stages]:
            raise UnknownOptionError(key, f"no stage {parts[1]!r} in this model's curriculum "
                                          f"{[s.name for s in config.stages]}")
        stage = config.stage(parts[1])
        _set_field(stage, parts[2], value, key)
        return
    if parts == ["model_options"] and isinstance(value, dict) and config.model in list_models():
        known = _family(config.model).option_names
        unknown = sorted(set(value) - known)
        if unknown:
            raise UnknownOptionError(key, f"model {config.model!r} has no option(s) {unknown} (options: {sorted(known)})")
    if parts[0] == "model_options" and len(parts) == 2:
        known = _family(config.model).option_names
        if parts[1] not in known:
            raise UnknownOptionError(key, f"model {config.model!r} has no option {parts[1]!r} "
                                          f"(options: {sorted(known)})")
        config.model_options[parts[1]] = value
        return
    if parts[0] == "data" and len(parts) == 2:
        if parts[1] == "augment":
            if not isinstance(value, dict):
                raise ConfigError(key, f"expects a JSON object of augmentation settings, got {value!r}")
            config.data.augment = value
        else:
            _set_field(config.data, parts[1], value, key)
        return
    if parts[0] == "loader" and len(parts) == 2:
        _set_field(config.loader, parts[1], value, key)
        return
    if len(parts) == 1:
        _set_field(config, parts[0], value, key)
        return
    raise UnknownOptionError(key, "unknown key: use data.X, loader.X, model_options.X, stages.NAME.X, stages "
                                  "or a top-level field")


def _set_field(obj: Any, name: str, value: Any, key: str) -> None:
    names = {f.name for f in dataclasses.fields(obj)}
    if name not in names:
        raise UnknownOptionError(key, f"unknown key: {type(obj).__name__} has no field {name!r} "
                                      f"(fields: {sorted(names)})")
    if isinstance(getattr(obj, name), tuple) and isinstance(value, list):
        value = tuple(value)
    setattr(obj, name, value)


# --- checking a resolved config before any compute ------------------------------------------

from m3mstl.core import MAX_SEED  # noqa: E402  (numpy's seed range; re-exported)


def validate_config(config: RunConfig) -> None:
    """Raise ConfigError naming the first option that is of the wrong type, out of range, unknown,
    or not a stage of the model's curriculum; run before any data is read or epoch trained."""
    if config.model not in list_models():
        raise UnknownOptionError("model", f"unknown model {config.model!r}; choose from {list_models()}")
    if config.profile not in PROFILES:
        raise ConfigError("profile", f"unknown profile {config.profile!r}; choose from {PROFILES}")
    _whole(config.seed, "seed", 0, MAX_SEED)
    _number(config.weight_decay, "weight_decay", 0.0)
    if config.optimizer not in OPTIMIZERS:
        raise UnknownOptionError("optimizer", f"unknown optimiser {config.optimizer!r}; choose from {OPTIMIZERS}")
    if config.ema_decay is not None:
        _number(config.ema_decay, "ema_decay", 0.0, 1.0, exclusive_low=True)
        if config.ema_decay >= 1.0:
            raise ConfigError("ema_decay", f"must be below 1 (1 never moves the average), got {config.ema_decay!r}")
    if config.grad_clip is not None:
        _number(config.grad_clip, "grad_clip", 0.0)
    _flag(config.channels_last, "channels_last")
    if config.precision not in PRECISIONS:
        raise UnknownOptionError("precision", f"must be one of {PRECISIONS}, got {config.precision!r}")
    _validate_loader(config.loader)
    if not isinstance(config.model_options, dict):
        raise ConfigError("model_options", f"must be a mapping, got {config.model_options!r}")
    _validate_data(config.data)
    _validate_stages(config)


def _validate_loader(loader: LoaderConfig) -> None:
    """Loader settings decide speed only, but a bad one must still fail before any data is read."""
    if loader.num_workers is not None:
        _whole(loader.num_workers, "loader.num_workers", 0)
    _whole(loader.prefetch_factor, "loader.prefetch_factor", 1)


def _validate_data(data: DataConfig) -> None:
    _whole(data.input_size, "data.input_size", 16)
    _number(data.margin_px, "data.margin_px", 0.0)
    _number(data.margin_fraction, "data.margin_fraction", 0.0, 1.0)
    _flag(data.square_crop, "data.square_crop")
    from m3mstl.data.dataset import FACE_BOXES

    if data.face_box not in FACE_BOXES:
        raise ConfigError("data.face_box", f"unknown face box {data.face_box!r}; choose from {FACE_BOXES}")
    fractions = data.split_fractions
    if (not isinstance(fractions, (list, tuple)) or len(fractions) != 3
            or not all(_is_number(f) and math.isfinite(f) and f >= 0 for f in fractions)
            or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6)):
        raise ConfigError("data.split_fractions", f"must be three fractions >= 0 (train, val, test) summing to 1, "
                                                  f"got {fractions!r}")
    _whole(data.split_seed, "data.split_seed", 0, MAX_SEED)
    if not isinstance(data.force_test, (list, tuple)) or not all(isinstance(s, str) for s in data.force_test):
        raise ConfigError("data.force_test", f"must be a list of subject ids, got {data.force_test!r}")
    _whole(data.batch_size, "data.batch_size", 1)
    _whole(data.eval_batch_size, "data.eval_batch_size", 1)
    for name in ("max_train_images", "val_images_per_epoch"):
        if getattr(data, name) is not None:
            _whole(getattr(data, name), f"data.{name}", 1)
    if not isinstance(data.augment, dict):
        raise ConfigError("data.augment", f"must be a mapping of augmentation settings, got {data.augment!r}")
    from m3mstl.data.dataset import AugmentConfig

    known = {f.name: f.default for f in dataclasses.fields(AugmentConfig)}
    for key, value in data.augment.items():
        if key not in known:
            raise UnknownOptionError(f"data.augment.{key}", f"unknown augmentation setting (known: {sorted(known)})")
        default = known[key]
        if isinstance(default, tuple):
            if (not isinstance(value, (list, tuple)) or len(value) != len(default)
                    or not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in value) or value[0] > value[1]):
                raise ConfigError(f"data.augment.{key}", f"must be a [low, high] range of numbers >= 0, got {value!r}")
        else:
            _number(value, f"data.augment.{key}", 0.0, 1.0 if key.endswith("_prob") else None)


def _validate_stages(config: RunConfig) -> None:
    if not isinstance(config.stages, list) or not config.stages:
        raise ConfigError("stages", "the run has no stages to train")
    curriculum = [s.name for s in make_config(config.model, "quick").stages]
    seen = set()
    for stage in config.stages:
        prefix = f"stages.{stage.name}"
        if stage.name not in curriculum:
            raise UnknownOptionError("stages", f"{stage.name!r} is not a stage of {config.model} (stages: {curriculum})")
        if stage.name in seen:
            raise ConfigError("stages", f"stage {stage.name!r} is listed twice")
        seen.add(stage.name)
        _whole(stage.epochs, f"{prefix}.epochs", 1)
        _number(stage.lr, f"{prefix}.lr", 0.0, exclusive_low=True)
        for name in ("steps_per_epoch", "patience"):
            if getattr(stage, name) is not None:
                _whole(getattr(stage, name), f"{prefix}.{name}", 1)
        _flag(stage.plateau_scheduler, f"{prefix}.plateau_scheduler")
        _flag(stage.cosine_decay, f"{prefix}.cosine_decay")
        _number(stage.cosine_final_fraction, f"{prefix}.cosine_final_fraction", 0.0, 1.0)
        _number(stage.warmup_fraction, f"{prefix}.warmup_fraction", 0.0, 1.0)
        if stage.warmup_fraction >= 1.0:
            raise ConfigError(f"{prefix}.warmup_fraction", "must be below 1 (the stage would never reach its rate)")
        if stage.warmup_fraction > 0 and stage.plateau_scheduler:
            raise ConfigError(prefix, "warm-up sets the rate every step and would undo each plateau cut")
        if stage.plateau_scheduler and stage.cosine_decay:
            # Cosine decay sets the rate every step and would silently undo each plateau cut.
            raise ConfigError(prefix, "choose plateau_scheduler or cosine_decay, not both")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any, key: str, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(key, f"must be a whole number {span}, got {value!r}")


def _number(value: Any, key: str, low: float, high: float | None = None, *, exclusive_low: bool = False) -> None:
    ok = _is_number(value) and math.isfinite(value) and (value > low if exclusive_low else value >= low) \
        and (high is None or value <= high)
    if not ok:
        span = f"{'>' if exclusive_low else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")
        raise ConfigError(key, f"must be a finite number {span}, got {value!r}")


def _flag(value: Any, key: str) -> None:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {value!r}")

