"""The run archive, `archive/<model>/<run-id>/`: finished runs' evaluation records without weights.

What the published tables are computed from (test predictions and metrics, the training history and
timings, the config and the environment that trained it, and the measurements that need the weights,
made before archiving). A study takes hours more than one session of the project's machine lasts, and
a session keeps only what is committed: archiving each run as it finishes lets a study resume there
(archive/README.md).
"""
from __future__ import annotations

import hashlib
from pathlib import Path, PurePath

import numpy as np

from m3mstl import paths
from m3mstl.core.fileio import write_bytes_atomic, write_json_atomic
from m3mstl.errors import RunError
from m3mstl.runs import is_complete, load_json
from m3mstl.runs.predictions import (ARCHIVED_GROUND_TRUTH_KEY, GROUND_TRUTH_FOLDER, SHARED_PREDICTION_ARRAYS,
                                     UNARCHIVED_PREDICTION_ARRAYS, write_predictions)

# A finished run's evaluation record without its weights: what a published table is computed from
# (test predictions and metrics, the config and the environment that trained it) and, when the run has
# them, its training history and timings and the measurements that need the weights, made before
# archiving. Every producer's run with test predictions is archivable: the curriculum trainer's models,
# the hourglass and the classical peer (the face detector keeps no test predictions: its tables need
# its weights). The extended study takes hours more than one session of the project's machine lasts, and
# a session keeps only what is committed: archiving each run as it finishes lets a study resume there.
ARCHIVE_REQUIRED: tuple[str, ...] = (
    "config.json", "environment.json", "metrics_test.json", "predictions_test.npz", "complete.json")
#: Archived when the run has them: the trainer's history and per-image rows, the peer's timings,
#: the validation metrics, the measurements of the scaling study (stage-1 IoU: M3MSTL only; FLOPs).
OPTIONAL_ARCHIVED_FILES: tuple[str, ...] = (
    "history.jsonl", "per_image_test.csv", "metrics_val.json", "timings.json", "stage1_val_iou.json",
    "training_flops.json")
#: In the order they are copied: complete.json last, so a half-copied record is never taken for a whole one.
ARCHIVED_FILES: tuple[str, ...] = (*(f for f in ARCHIVE_REQUIRED if f != "complete.json"), *OPTIONAL_ARCHIVED_FILES,
                                   "complete.json")
#: Records that name the run's dataset ("data_dir"): archived with that name portable (`_portable_data_dir`).
RECORDS_NAMING_DATA: tuple[str, ...] = ("config.json", "environment.json")


def _portable_data_dir(recorded: str, trained_under: PurePath | None) -> str:
    """A recorded dataset path as the archive keeps it. A relative name is kept. An absolute one (a run
    recorded before runs named their data portably, or on another machine) becomes relative to the
    folder the run was trained under (the one holding its runs/) when the data lay inside it, else the
    name this machine gives it (`paths.portable_data_path`): never a machine's absolute path."""
    path = PurePath(recorded)
    if not path.is_absolute():
        return recorded
    if trained_under is not None and path.is_relative_to(trained_under):
        return path.relative_to(trained_under).as_posix()
    return paths.portable_data_path(path)


def _trained_under(complete: dict) -> PurePath | None:
    """The folder holding the runs/ a run was trained in (runs/<model>/<run-id>), from the absolute run
    folder its complete.json names; None when it names none."""
    recorded = complete.get("run_dir")
    if not isinstance(recorded, str) or not PurePath(recorded).is_absolute():
        return None
    parents = PurePath(recorded).parents
    return parents[2] if len(parents) > 2 else None


def _archive_predictions(source: Path, target: Path, archive_root: Path) -> None:
    """A run's predictions for the archive: its own arrays in `target`, the ground truth it shares with
    every run of the split in one content-named file beside the runs (losslessly, zip-deflated)."""
    with np.load(source, allow_pickle=False) as npz:  # the run's own, complete file (archive_run checked it)
        arrays = {k: npz[k] for k in npz.files}
    shared = {k: arrays.pop(k) for k in SHARED_PREDICTION_ARRAYS if k in arrays}
    for name in UNARCHIVED_PREDICTION_ARRAYS:
        arrays.pop(name, None)
    if shared:
        digest = hashlib.sha256()
        for key in sorted(shared):
            digest.update(key.encode() + str(shared[key].dtype).encode() + str(shared[key].shape).encode())
            digest.update(np.ascontiguousarray(shared[key]).tobytes())
        name = f"{GROUND_TRUTH_FOLDER}/{digest.hexdigest()[:16]}.npz"
        if not (archive_root / name).is_file():
            write_predictions(archive_root / name, shared)
        arrays[ARCHIVED_GROUND_TRUTH_KEY] = np.array(name)
    write_predictions(target, arrays)


def is_archivable(run_dir: Path) -> bool:
    """Whether `run_dir` is a finished run with the evaluation record the archive keeps (ARCHIVE_REQUIRED)."""
    run_dir = Path(run_dir)
    return is_complete(run_dir) and all((run_dir / name).is_file() for name in ARCHIVE_REQUIRED)


def archived_run_dir(model: str, run_id_: str, archive_root: Path | None = None) -> Path | None:
    """The archived record of run `model/run_id_`, or None when it is not archived (complete.json is
    copied last, so a half-copied record is never found)."""
    folder = (archive_root or paths.ARCHIVE_DIR) / model / run_id_
    return folder if is_complete(folder) else None


def archive_run(run_dir: Path, archive_root: Path | None = None) -> Path:
    """Copy a finished run's evaluation record (ARCHIVED_FILES, no weights) into the archive.
    Every file is written atomically and complete.json last; an archived run is left as it is."""
    run_dir = Path(run_dir)
    root = archive_root or paths.ARCHIVE_DIR
    target = root / run_dir.parent.name / run_dir.name
    if is_complete(target):
        return target
    if not is_complete(run_dir):
        raise RunError(run_dir, "the run has not finished (no complete.json): only finished runs are archived")
    missing = [name for name in ARCHIVE_REQUIRED if not (run_dir / name).is_file()]
    if missing:
        raise RunError(run_dir, f"cannot archive: missing {', '.join(missing)}")
    complete = load_json(run_dir / "complete.json")
    for name in ARCHIVED_FILES:
        if name == "complete.json" or not (run_dir / name).is_file():
            continue  # complete.json is written last, below
        if name.endswith(".npz"):
            _archive_predictions(run_dir / name, target / name, root)
            continue
        if name in RECORDS_NAMING_DATA:
            record = load_json(run_dir / name)
            recorded = record.get("data_dir") if isinstance(record, dict) else None
            if isinstance(recorded, str) and PurePath(recorded).is_absolute():
                record["data_dir"] = _portable_data_dir(recorded, _trained_under(complete))
                write_json_atomic(target / name, record)
                continue
        write_bytes_atomic(target / name, (run_dir / name).read_bytes())
    # complete.json names the run folder: the archive's own, relative to the archive's parent (the
    # repository), not this machine's path.
    complete["run_dir"] = target.relative_to(root.parent).as_posix()
    write_json_atomic(target / "complete.json", complete)
    return target
