"""The classical peer: dlib's shape predictor (an ensemble of regression trees, Kazemi and
Sullivan 2014) trained on the same training split and the same face crops the deep models get.

Why it is here: a reader who knows the field compares a deep landmarker with the classical one
that trains in minutes on a CPU. If the deep models lose to it, the tables say so.

What is the same as for the deep models:
- the subject split (`m3mstl.data.splits`, the profile's fractions and seed) and any cap on the
  training images (`data.max_train_images`), taken from the profile's baseline config;
- the face region: `m3mstl.data.dataset.crop_box` (landmark extent or annotated box, plus the
  margin, squared), rounded to whole pixels because dlib's rectangles are integer;
- the scoring: predictions are stored like `m3mstl.infer.predict.predict_split` stores them and scored
  by `m3mstl.evaluation.evaluate` (the same NME functions and breakdowns).

What differs, by the nature of the method: dlib reads the source image itself (at its own
resolution, 128 px in the default profile), not a resized crop, and its landmark coordinates are
whole pixels (a point is an integer pixel index; we map index i to the pixel centre i + 0.5).
It predicts landmarks only: no occlusion probability, so occlusion columns of its table rows are
empty ("-"), never a number.

Options are dlib's defaults (dlib 20: cascade depth 10, tree depth 4, 500 trees per level,
nu 0.1, 400 pool features, 20 test splits, lambda 0.1) with oversampling 20 (10 in the default
profile: `m3mstl.profiles.PEER_OPTIONS`), all recorded in the run config and so in the run id; `random_seed` is set from the run's seed. The run record is
`runs/dlib_shape_predictor/<run-id>/` with the same files as a deep run (config, environment,
predictions, metrics, complete.json), written atomically; a finished run is reused.
"""
from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np

from m3mstl.runs.provenance import code_fingerprint
from m3mstl import paths
from m3mstl.core import progress
from m3mstl.config import RunConfig, apply_override, base_profile, make_config
from m3mstl.errors import UnknownOptionError
from m3mstl.profiles import PEER_OPTIONS
from m3mstl.core.fileio import atomic_path, write_json_atomic
from m3mstl.runs import data_fingerprint, environment_info, lifecycle, load_json, run_dir_for

PEER_MODEL = "dlib_shape_predictor"
#: dlib's point value for a part that is not present (OBJECT_PART_NOT_PRESENT): unlabelled landmarks.
_PART_NOT_PRESENT = 0x7FFFFFFF

#: dlib.shape_predictor_training_options as used (dlib 20's defaults; oversampling 20 stated
#: explicitly because older dlib releases defaulted to 10). num_threads is dlib's worker count.
DEFAULT_OPTIONS: dict[str, Any] = {
    "cascade_depth": 10,
    "tree_depth": 4,
    "num_trees_per_cascade_level": 500,
    "nu": 0.1,
    "oversampling_amount": 20,
    "oversampling_translation_jitter": 0.0,
    "feature_pool_size": 400,
    "feature_pool_region_padding": 0.0,
    "lambda_param": 0.1,
    "num_test_splits": 20,
    "landmark_relative_padding_mode": True,
    "num_threads": 2,
}


#: Per-profile changes to DEFAULT_OPTIONS, and why: `m3mstl.profiles.PEER_OPTIONS`.
PROFILE_OPTIONS: dict[str, dict[str, Any]] = PEER_OPTIONS


def peer_config(profile: str = "default", *, seed: int = 0, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The peer's run config: the profile's baseline data settings (split, margin, squaring,
    training cap) and dlib's options in `model_options`. Override with dotted keys as for
    the deep models, e.g. {"model_options.num_threads": 1, "data.max_train_images": 100}."""
    data = make_config("baseline", profile).data
    profile = base_profile(profile)  # extended reuses the default profile's peer run
    options = {**DEFAULT_OPTIONS, **PEER_OPTIONS[profile]}
    config = RunConfig(model=PEER_MODEL, profile=profile, model_options=options,
                       stages=[], data=data, seed=seed, grad_clip=None, channels_last=False)
    for key, value in (overrides or {}).items():
        if key.startswith("model_options."):  # dlib's options: not a registered deep-model family
            name = key.split(".", 1)[1]
            if name not in DEFAULT_OPTIONS:
                raise UnknownOptionError(key, f"dlib's shape predictor has no option {name!r}; "
                                              f"options: {sorted(DEFAULT_OPTIONS)}")
            config.model_options[name] = value
        elif key == "model_options" and isinstance(value, dict):  # the whole set at once: the same check
            unknown = sorted(set(value) - set(DEFAULT_OPTIONS))
            if unknown:
                raise UnknownOptionError(key, f"dlib's shape predictor has no option(s) {unknown}; "
                                              f"options: {sorted(DEFAULT_OPTIONS)}")
            apply_override(config, key, value)
        else:
            apply_override(config, key, value)
    return config


def _training_options(options: dict[str, Any], seed: int, verbose: bool = False):
    import dlib

    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise UnknownOptionError("model_options", f"unknown dlib shape-predictor option(s) {sorted(unknown)}")
    trainer_options = dlib.shape_predictor_training_options()
    for name, value in options.items():
        setattr(trainer_options, name, value)
    trainer_options.random_seed = str(seed)
    trainer_options.be_verbose = verbose
    return trainer_options


def dlib_rectangle(box: tuple[float, float, float, float]):
    """A continuous crop box (x, y, w, h) as dlib's inclusive integer rectangle."""
    import dlib

    x, y, w, h = box
    left, top = int(round(x)), int(round(y))
    return dlib.rectangle(left, top, int(round(x + w)) - 1, int(round(y + h)) - 1)


def dlib_image(record) -> np.ndarray:
    """The record's thermal image as the 8-bit greyscale array dlib reads."""
    from m3mstl.data.coco import load_image

    image = load_image(record)
    if image.dtype != np.uint8:  # 16-bit or float files are loaded as float in [0, 1]
        image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def _detection(record, box):
    import dlib

    parts = []
    for (x, y), labelled in zip(record.landmarks, record.labelled):
        if labelled and np.isfinite([x, y]).all():
            # Continuous coordinates put pixel i's centre at i + 0.5; dlib's points are pixel indices.
            parts.append(dlib.point(int(round(x - 0.5)), int(round(y - 0.5))))
        else:
            parts.append(dlib.point(_PART_NOT_PRESENT, _PART_NOT_PRESENT))
    return dlib.full_object_detection(dlib_rectangle(box), parts)


def _boxes(config: RunConfig, records) -> list[tuple[float, float, float, float]]:
    from m3mstl.data.dataset import crop_box

    return [crop_box(r, config.data.margin_px, config.data.square_crop, config.data.face_box,
                     config.data.margin_fraction) for r in records]


def train_predictor(config: RunConfig, records):
    """A dlib shape predictor trained on `records` with the config's options and crop boxes."""
    import dlib

    images = [dlib_image(r) for r in records]
    detections = [[_detection(r, box)] for r, box in zip(records, _boxes(config, records))]
    # dlib trains in one C++ call that shows no bar. Inside `m3mstl reproduce` (progress relayed)
    # dlib's own verbose log - each cascade level with its time left - goes to the reproduction's
    # terminal through the kernel's stdout; the relay gets a line before and after.
    relayed = progress.relay_path() is not None
    progress.report(f"[peer] training dlib's shape predictor on {len(records)} faces (oversampling "
                    f"{config.model_options['oversampling_amount']}); dlib's own progress follows")
    started = time.perf_counter()
    predictor = dlib.train_shape_predictor(images, detections,
                                           _training_options(config.model_options, config.seed, verbose=relayed))
    progress.report(f"[peer] trained in {progress.format_duration(time.perf_counter() - started)}")
    return predictor


def predict_landmarks(predictor, config: RunConfig, records) -> np.ndarray:
    """(N, 68, 2) predicted landmarks in continuous source-image coordinates."""
    out = np.empty((len(records), 68, 2), dtype=np.float64)
    for i, (record, box) in enumerate(zip(records, _boxes(config, records))):
        shape = predictor(dlib_image(record), dlib_rectangle(box))
        if shape.num_parts != 68:
            raise ValueError(f"the shape predictor returned {shape.num_parts} points, expected 68")
        out[i] = [(p.x + 0.5, p.y + 0.5) for p in shape.parts()]
    return out


def split_records(config: RunConfig, data_dir: Path):
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.splits import run_split_indices

    dataset = read_dataset(data_dir)
    splits = run_split_indices(dataset, config.data, data_dir)  # the deep models' split and cap
    return {name: [dataset.records[i] for i in idx] for name, idx in splits.items()}


def save_predictions(records, pred_landmarks: np.ndarray, config: RunConfig, out_path: Path) -> Path:
    """The peer's predictions in the deep models' format (`m3mstl.infer.predict.predict_split`), without
    occlusion probabilities: evaluation then reports landmarks only."""
    from m3mstl.runs.predictions import ground_truth_arrays, write_predictions

    arrays = {"pred_landmarks": pred_landmarks,
              "crop_box": np.array(_boxes(config, records), dtype=np.float64),
              **ground_truth_arrays(records)}
    return write_predictions(out_path, arrays)


def train_peer(profile: str, data_dir: str | Path, *, seed: int = 0, overrides: dict[str, Any] | None = None,
               force: bool = False, runs_root: Path | None = None) -> Path:
    """Train (or reuse) the peer on the profile's training split, predict val and test, score them.

    Returns the run folder. The run id hashes the config (options, split, crop, seed) and the
    data fingerprint, as for the deep models, so the same request reuses a finished run. A run
    interrupted after training (model.dat and training.json written) only predicts again; one
    interrupted during training is retrained from the start (dlib cannot resume a training,
    which takes minutes, not hours).

    The lifecycle is every producer's (`m3mstl.runs.lifecycle.produce_run`): `force` empties the
    run folder and trains again, a finished run recorded for other data is refused, the run's lock
    is held while it trains, and in a notebook whose TRAIN and FORCE are False
    (`lifecycle.allow_training`) a missing run raises `RunNotTrained`, naming how to train it.
    """

    data_dir = Path(data_dir)
    if not (data_dir / "annotations.json").is_file():
        raise FileNotFoundError(f"{data_dir}: no annotations.json - not a TFD68-layout dataset")
    config = peer_config(profile, seed=seed, overrides=overrides)
    fingerprint = data_fingerprint(data_dir)
    run_dir = run_dir_for(config, fingerprint, runs_root or paths.RUNS_DIR)
    return lifecycle.produce_run(run_dir, lambda: _train_peer_locked(run_dir, config, data_dir, fingerprint),
                                 fingerprint=fingerprint, force=force,
                                 refusal=lambda: _missing_peer_message(profile, data_dir, run_dir, seed, overrides))


def _missing_peer_message(profile: str, data_dir: Path, run_dir: Path, seed: int,
                          overrides: dict[str, Any] | None) -> str:
    """`RunNotTrained`'s message for a missing peer run (there is no `m3mstl` command for it)."""
    call = (f"from m3mstl.train.peer import train_peer; train_peer({profile!r}, {lifecycle.shown_path(data_dir)!r}, "
            f"seed={seed}" + (f", overrides={overrides!r}" if overrides else "") + ")")
    subject = (f"{PEER_MODEL} (dlib's shape predictor, the classical peer), profile {profile!r}, seed {seed}"
               + (f", overrides {overrides}" if overrides else "") + f", on {lifecycle.shown_path(data_dir)}")
    return lifecycle.not_trained_message(
        subject, run_dir, command=f"python -c {_shell_quoted(call)}", profile=profile,
        notebooks=lifecycle.PRODUCING_NOTEBOOKS.get((PEER_MODEL, bool(overrides)), ()),
        typical_time="the peer trains in seconds in the quick profile and in about 6 min in the default profile "
                     "on 2 CPU cores.")


def _shell_quoted(text: str) -> str:
    """`text` as one shell word, in double quotes when that needs no escape (Python's reprs use single)."""
    return f'"{text}"' if not set(text) & set('"$`\\!') else shlex.quote(text)


def _train_peer_locked(run_dir: Path, config: RunConfig, data_dir: Path, fingerprint: str) -> Path:
    import dlib

    write_json_atomic(run_dir / "config.json", config.to_dict())
    env = environment_info()
    env.update(data_dir=paths.portable_data_path(data_dir), data_fingerprint=fingerprint, dlib=dlib.__version__,
               code_fingerprint=code_fingerprint())
    write_json_atomic(run_dir / "environment.json", env)

    splits = split_records(config, data_dir)
    trained = run_dir / "training.json"  # written after model.dat: both present = training finished
    if trained.is_file() and (run_dir / "model.dat").is_file():
        predictor = load_predictor(run_dir)  # interrupted after training: only predict again
    else:
        started = time.perf_counter()
        predictor = train_predictor(config, splits["train"])
        train_seconds = time.perf_counter() - started
        with atomic_path(run_dir / "model.dat") as tmp:
            predictor.save(str(tmp))
        write_json_atomic(trained, {"train_seconds": round(train_seconds, 2), "n_train": len(splits["train"])})
    timings = dict(load_json(trained))
    from m3mstl.evaluation.evaluate import evaluate_run

    for split in ("val", "test"):
        started = time.perf_counter()
        landmarks = predict_landmarks(predictor, config, splits[split])
        seconds = time.perf_counter() - started
        timings[f"predict_{split}_images_per_second"] = round(len(splits[split]) / max(seconds, 1e-9), 1)
        save_predictions(splits[split], landmarks, config, run_dir / f"predictions_{split}.npz")
    write_json_atomic(run_dir / "timings.json", timings)
    evaluate_run(run_dir)
    write_json_atomic(run_dir / "complete.json", {"run_dir": str(run_dir), **timings})
    return run_dir


def load_predictor(run_dir: Path):
    """A finished peer run's trained shape predictor."""
    import dlib

    return dlib.shape_predictor(str(Path(run_dir) / "model.dat"))

