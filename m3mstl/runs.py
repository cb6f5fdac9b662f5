"""Run records: `runs/<model>/<run-id>/` holds everything that produced a number.

    config.json        the resolved RunConfig
    environment.json   package versions, device, git commit, data fingerprint, start time
    state.json         curriculum progress (stage, epoch, best validation loss, ...)
    checkpoints/       last.pt (resume point), best-<stage>.pt; once complete only best-mask_pretrain.pt stays
    model.pt           the final weights
    history.jsonl      one line per epoch: stage, epoch, train/val losses, val NME, lr, seconds
    predictions_<split>.npz   landmarks, occlusion probabilities, ground truth, image ids
    metrics_<split>.json      metrics computed from those predictions
    complete.json      written last: the run finished; its presence makes the run reusable

The run id hashes the config and the data fingerprint (a hash of the data's contents), so the
same request on the same data finds the same folder and reuses the finished run; the
fingerprint is also recorded in environment.json and checked when a run is reused or resumed.
`.lock` is held (flock) by the process training the run.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from m3mstl import paths
from m3mstl.config import RunConfig

RECORDED_PACKAGES = ("torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn", "pillow", "m3mstl")


# The data fingerprint lives with the data (`m3mstl.data.fingerprint`); re-exported here.
from m3mstl.data.fingerprint import FINGERPRINT_FOLDERS, data_fingerprint  # noqa: E402,F401


def run_id(config: RunConfig, fingerprint: str) -> str:
    return hashlib.sha256(f"{config.config_hash()}:{fingerprint}".encode()).hexdigest()[:12]


def run_dir_for(config: RunConfig, fingerprint: str, runs_root: Path | None = None) -> Path:
    return (runs_root or paths.RUNS_DIR) / config.model / run_id(config, fingerprint)


def run_ref(run_dir: Path) -> str:
    """How tables ("Runs: ..." lines) and the manifest name a run: "<family>/<run-id>", its folder
    under runs/ (or archive/), so `runs_behind` can find its record."""
    return f"{run_dir.parent.name}/{run_dir.name}"


def is_complete(run_dir: Path) -> bool:
    return (run_dir / "complete.json").is_file()


# Committed files that `m3mstl reproduce` regenerates (paths relative to the repository root).
GENERATED_PATHS: tuple[str, ...] = ("figures", "tables", "executed", "reproduction.json", "archive")


# -- the run archive ----------------------------------------------------------------------
# A finished run's evaluation record without its weights: what the extended study's tables are
# computed from (test predictions and metrics, the training history and timings, the config and the
# environment that trained it, and the measurements that need the weights, made before archiving).
# The extended study takes hours more than one session of the project's machine lasts, and a session
# keeps only what is committed: archiving each run as it finishes lets the study resume there.
ARCHIVED_FILES: tuple[str, ...] = (
    "config.json", "environment.json", "history.jsonl", "metrics_test.json", "per_image_test.csv",
    "predictions_test.npz", "stage1_val_iou.json", "training_flops.json", "complete.json")
#: Archived when the run has it: only M3MSTL has a stage 1.
OPTIONAL_ARCHIVED_FILES: tuple[str, ...] = ("stage1_val_iou.json",)
ARCHIVE_REQUIRED: tuple[str, ...] = tuple(f for f in ARCHIVED_FILES if f not in OPTIONAL_ARCHIVED_FILES)

#: Arrays every run of one split repeats (the ground truth): the archive keeps one copy per content,
#: in archive/ground-truth/<sha256>.npz, named by the run's predictions file under this key.
SHARED_PREDICTION_ARRAYS = ("gt_landmarks", "gt_pose", "gt_rotation")
GROUND_TRUTH_FOLDER = "ground-truth"
ARCHIVED_GROUND_TRUTH_KEY = "archived_ground_truth"
#: Not archived: the crop-frame copy of the predicted landmarks (the image-frame ones and the crop
#: transform are kept).
UNARCHIVED_PREDICTION_ARRAYS = ("pred_landmarks_crop",)


def _archive_predictions(source: Path, target: Path, archive_root: Path) -> None:
    """A run's predictions for the archive: its own arrays in `target`, the ground truth it shares with
    every run of the split in one content-named file beside the runs (losslessly, zip-deflated)."""
    import numpy as np

    from m3mstl.fileio import atomic_path

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
            with atomic_path(archive_root / name) as tmp, open(tmp, "wb") as handle:
                np.savez_compressed(handle, **shared)
        arrays[ARCHIVED_GROUND_TRUTH_KEY] = np.array(name)
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def archived_run_dir(model: str, run_id_: str, archive_root: Path | None = None) -> Path | None:
    """The archived record of run `model/run_id_`, or None when it is not archived (complete.json is
    copied last, so a half-copied record is never found)."""
    folder = (archive_root or paths.ARCHIVE_DIR) / model / run_id_
    return folder if is_complete(folder) else None


def archive_run(run_dir: Path, archive_root: Path | None = None) -> Path:
    """Copy a finished run's evaluation record (ARCHIVED_FILES, no weights) into the archive.
    Every file is written atomically and complete.json last; an archived run is left as it is."""
    from m3mstl.errors import RunError
    from m3mstl.fileio import write_bytes_atomic, write_json_atomic

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
    for name in ARCHIVED_FILES:
        if name == "complete.json" or not (run_dir / name).is_file():
            continue  # complete.json is written last, below
        if name.endswith(".npz"):
            _archive_predictions(run_dir / name, target / name, root)
        else:
            write_bytes_atomic(target / name, (run_dir / name).read_bytes())
    # complete.json names the run folder: the archive's own, relative to the archive's parent (the
    # repository), not this machine's path.
    complete = load_json(run_dir / "complete.json")
    complete["run_dir"] = target.relative_to(root.parent).as_posix()
    write_json_atomic(target / "complete.json", complete)
    return target


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        # The published figures, tables and manifest are the reproduction's own outputs: a run
        # rewriting them must not mark the code it runs as modified.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){p}" for p in GENERATED_PATHS)], cwd=paths.REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_info(device: str | None = None) -> dict[str, Any]:
    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_info(),
        "packages": versions,
        "git_commit": git_commit(),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device is not None:
        info["device"] = device
        import torch

        info["torch_threads"] = torch.get_num_threads()
        # The kernel family torch dispatches to on this CPU (e.g. AVX2, AVX512): float sums are
        # ordered differently per family, so CPU training is byte-reproducible only within one.
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


#: Instruction-set extensions that change which numeric kernels run (and so the last bits of a
#: CPU training): recorded as present/absent in every environment record.
RECORDED_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile",
                      "amx_bf16", "amx_int8")


def cpu_info(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """CPU model name and the instruction-set flags of RECORDED_CPU_FLAGS ({} flags off Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in cpuinfo_path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if flags and model:
                break
    except OSError:
        return {"model": model, "flags": {}}
    return {"model": model, "flags": {flag: flag in flags for flag in RECORDED_CPU_FLAGS}}


def load_config(run_dir: Path) -> RunConfig:
    from m3mstl.errors import RunError

    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise RunError(run_dir, "run folder not found")
    raw = load_json(path)
    try:
        return RunConfig.from_dict(raw)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise RunError(path, f"not a run configuration: {error}") from None


def load_json(path: Path) -> Any:
    from m3mstl.errors import RunError

    path = Path(path)
    if not path.is_file():
        raise RunError(path, "file not found")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RunError(path, f"cannot read the JSON: {error}") from None


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_model(run_dir: Path, checkpoint: str = "model.pt", device: str = "cpu"):
    """Rebuild a run's model from its config and load a checkpoint (`model.pt` when the run
    finished, `checkpoints/best-<stage>.pt` for a stage, or `checkpoints/last.pt`)."""
    import torch

    from m3mstl.models import create_model

    config = load_config(run_dir)
    model = create_model(config.model, **config.model_options)
    model.load_state_dict(load_checkpoint(Path(run_dir) / checkpoint, model_only=True))
    return model.to(device).eval()


def load_checkpoint(path: Path, *, model_only: bool = False) -> dict[str, Any]:
    """A torch checkpoint (the model's state dict, or the trainer's resume state); a missing,
    truncated or foreign file is a RunError naming it."""
    import pickle
    import zipfile

    import torch

    from m3mstl.errors import RunError

    path = Path(path)
    if not path.is_file():
        raise RunError(path, "checkpoint not found; is the run finished?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise RunError(path, f"cannot read the checkpoint (truncated or not a torch file): "
                             f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    if not isinstance(state, dict):
        raise RunError(path, f"not a checkpoint: holds a {type(state).__name__}")
    if model_only and "optimizer" in state:
        state = state["model"]
    return state


def check_recorded_fingerprint(run_dir: Path, fingerprint: str) -> None:
    """Refuse to reuse or resume a run recorded for other data than `fingerprint`."""
    from m3mstl.errors import RunError

    path = Path(run_dir) / "environment.json"
    if not path.is_file():
        return
    recorded = load_json(path).get("data_fingerprint")
    if recorded != fingerprint:
        raise RunError(path, f"this run was trained on data with fingerprint {recorded}, but the data given "
                             f"now has {fingerprint}; retrain with --force")


LOCK_FILE = ".lock"


class RunLock:
    """An exclusive lock on a run folder while a process trains it (flock on `<run>/.lock`).

    A second trainer of the same run is refused with a message naming the holder; the operating
    system releases the lock when the holder exits, even by kill -9, so no stale lock is left.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.handle = None

    def __enter__(self) -> "RunLock":
        from m3mstl.errors import RunError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            import fcntl
        except ImportError:  # no flock on this platform: train unlocked, as before
            self.handle = handle
            return self
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunError(self.path.parent, f"another trainer ({holder}) is training this run now; wait for "
                                             f"it to finish, then run again to reuse its result") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {platform.node()}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()  # closing releases the flock
            self.handle = None
