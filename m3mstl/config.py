"""Run configurations and the three profiles (quick, default, paper).

A `RunConfig` says everything that determines a trained model: the model family and
its options, the data preparation, the curriculum (which stages, for how long, with
which optimiser settings) and the seed. Its hash, together with the data fingerprint,
names the run folder `runs/<model>/<run-id>/`, so an identical request reuses a
finished run instead of retraining.

Profiles (see README):
- quick:   tests and CI; every step runs, numbers are not meaningful.
- default: the README's `make reproduce` on 2 CPU cores (ResNet-50 at 64x64 input).
- paper:   the authors' settings (256x256, Adam 1e-4, batch 8, 15/25/25 epochs,
           early stopping 6), for a GPU.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("quick", "default", "paper")
# The extended profile trains the default profile's models (same configs, so the same run ids:
# finished default runs are reused) in longer studies over seeds, input sizes and trunks
# (the scaling study, notebooks that run only in that profile).
PROFILE_BASE: dict[str, str] = {"extended": "default"}
#: Every profile `m3mstl reproduce` accepts.
REPRODUCE_PROFILES = (*PROFILES, *PROFILE_BASE)


def base_profile(profile: str) -> str:
    """The profile whose model settings and data `profile` uses (itself for all but extended)."""
    return PROFILE_BASE.get(profile, profile)


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


@dataclass
class RunConfig:
    model: str
    profile: str
    model_options: dict[str, Any] = field(default_factory=dict)
    stages: list[StageConfig] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0
    # Keep the model's convolution weights (and so its activations) channels-last: faster
    # training on CPU for every model but M3MSTL's joint stage, which it leaves unchanged
    # (benchmarks.bench_model; figures in the README, "Speed and the training budget").
    # Numerics differ only by rounding, so it is part of the run id.
    channels_last: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        raw = copy.deepcopy(raw)
        data = DataConfig(**{**raw.pop("data", {})})
        data.split_fractions = tuple(data.split_fractions)
        data.force_test = tuple(str(s) for s in data.force_test)
        stages = [StageConfig(**s) for s in raw.pop("stages", [])]
        return cls(data=data, stages=stages, **raw)

    def config_hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"run has no stage {name!r}")


# --- the curricula -----------------------------------------------------------------
# M3MSTL: paper section "three-stage curriculum". The baseline gets the same total
# number of epochs in its single joint stage ("same total budget").

def _m3mstl_stages(epochs: tuple[int, int, int], steps: int | None, patience: int | None,
                   lr: float) -> list[StageConfig]:
    pretrain, heads, joint = epochs
    return [
        StageConfig("mask_pretrain", pretrain, lr, steps, patience, plateau_scheduler=True),
        StageConfig("heads", heads, lr, steps, patience),
        StageConfig("joint", joint, lr, steps, patience),
    ]


# `cosine`: the long stage of each model (M3MSTL's and the baseline's joint stage, the
# hourglass's multitask stage) decays its learning rate along a half cosine. In the default
# profile's short runs both models were still improving at a constant rate when they stopped,
# with a validation NME jumping by 0.02 from epoch to epoch; ending on a small rate settles
# them. It applies to M3MSTL and the baseline alike. The paper profile keeps the authors'
# constant rate (with reduce-on-plateau in stage 1).
#
# Default epochs: 2/1/7 for M3MSTL, 10 for the baseline (the same total). A first default run
# with 3/2/5 showed the frozen-trunk stage gaining little in its second epoch and the joint
# stage still improving at its end; the paper's own split (15/25/25) also puts most epochs
# after stage 1.
_PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "quick": dict(input_size=64, batch=8, epochs=(1, 1, 1), steps=4, patience=None, lr=1e-4, cosine=False,
                  backbone="resnet18", eval_batch=32, max_train=64, hourglass_epochs=(1, 1)),
    "default": dict(input_size=64, batch=32, epochs=(2, 1, 7), steps=None, patience=3, lr=3e-4, cosine=True,
                    backbone="resnet50", eval_batch=64, max_train=None, hourglass_epochs=(12, 3)),
    "paper": dict(input_size=256, batch=8, epochs=(15, 25, 25), steps=1000, patience=6, lr=1e-4, cosine=False,
                  backbone="resnet50", eval_batch=32, max_train=None, hourglass_epochs=(40, 10)),
}


def make_config(model: str, profile: str = "default", *, seed: int = 0,
                overrides: dict[str, Any] | None = None) -> RunConfig:
    """The resolved config for `model` ("m3mstl", "baseline", "hourglass") under a profile."""
    if profile not in REPRODUCE_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {REPRODUCE_PROFILES}")
    profile = base_profile(profile)
    p = _PROFILE_SETTINGS[profile]
    data = DataConfig(input_size=p["input_size"], batch_size=p["batch"], eval_batch_size=p["eval_batch"],
                      max_train_images=p["max_train"])
    if profile == "paper":
        data.square_crop = False  # the authors' baseline stretches the face box to the input square
    options: dict[str, Any] = {}
    if model in ("m3mstl", "baseline"):
        options["backbone"] = p["backbone"]
        stages = _m3mstl_stages(p["epochs"], p["steps"], p["patience"], p["lr"])
        if model == "baseline":
            stages = [StageConfig("joint", sum(p["epochs"]), p["lr"], p["steps"], p["patience"])]
    elif model == "hourglass":
        multitask, finetune = p["hourglass_epochs"]
        stages = [StageConfig("multitask", multitask, p["lr"] * 3, p["steps"], p["patience"]),
                  StageConfig("landmark_finetune", finetune, p["lr"], p["steps"], p["patience"])]
    else:
        raise ValueError(f"no curriculum for model {model!r}")
    long_stage = "multitask" if model == "hourglass" else "joint"
    next(s for s in stages if s.name == long_stage).cosine_decay = p["cosine"]
    config = RunConfig(model=model, profile=profile, model_options=options, stages=stages, data=data, seed=seed)
    for key, value in (overrides or {}).items():
        apply_override(config, key, value)
    return config


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
        names = list(value)
        known = {s.name: s for s in config.stages}
        missing = [n for n in names if n not in known]
        if missing:
            raise KeyError(f"stages {missing} are not in this model's curriculum {list(known)}")
        config.stages = [known[n] for n in names]
        return
    if parts[0] == "stages" and len(parts) == 3:
        stage = config.stage(parts[1])
        _set_field(stage, parts[2], value, key)
        return
    if parts[0] == "model_options" and len(parts) == 2:
        config.model_options[parts[1]] = value
        return
    if parts[0] == "data" and len(parts) == 2:
        if parts[1] == "augment" and isinstance(value, dict):
            config.data.augment = value
        else:
            _set_field(config.data, parts[1], value, key)
        return
    if len(parts) == 1:
        _set_field(config, parts[0], value, key)
        return
    raise KeyError(f"cannot set {key!r}: use data.X, model_options.X, stages.NAME.X, stages or a top-level field")


def _set_field(obj: Any, name: str, value: Any, key: str) -> None:
    names = {f.name for f in dataclasses.fields(obj)}
    if name not in names:
        raise KeyError(f"cannot set {key!r}: {type(obj).__name__} has no field {name!r} (fields: {sorted(names)})")
    if isinstance(getattr(obj, name), tuple) and isinstance(value, list):
        value = tuple(value)
    setattr(obj, name, value)


# --- the embedded synthetic data of each profile -----------------------------------------
# quick: enough subjects for a 60/20/20 subject split; default: 4,000 faces at 128 px, as many
# as the 25-minute training budget of the two main models can use on 2 CPU cores; paper:
# TFD68's scale (137 subjects, 28,496 images).
SYNTH_SETTINGS: dict[str, dict[str, int]] = {
    "quick": dict(subjects=10, per_subject=6, size=96, seed=7),
    "default": dict(subjects=100, per_subject=40, size=128, seed=7),
    "paper": dict(subjects=137, per_subject=208, size=256, seed=7),
}
SYNTH_SETTINGS["extended"] = SYNTH_SETTINGS["default"]
