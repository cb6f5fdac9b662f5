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
`.lock` is held (flock) by the process training the run. Reuse, force, the lock and the notebook
gate are one lifecycle for every producer: `m3mstl.runs.lifecycle`.
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
    """Whether the run finished (its producer wrote complete.json, last). A run marked finished that
    lacks a file every finished run of its kind has (its weights, its metrics: deleted, or lost with
    a disk) is not silently reused or shown: a RunError names the folder and the missing files."""
    run_dir = Path(run_dir)
    if not (run_dir / "complete.json").is_file():
        return False
    missing = [name for name in finished_run_files(run_dir) if not (run_dir / name).is_file()]
    if missing:
        from m3mstl.errors import RunError

        raise RunError(run_dir, f"the run is marked finished (complete.json) but {', '.join(missing)} "
                                f"{'is' if len(missing) == 1 else 'are'} missing; train it again with --force "
                                f"(or delete the folder)")
    return True


#: What every finished run of a producer holds beside complete.json, by the `model` its config.json
#: records: the detector (`m3mstl detector`), dlib's shape predictor (the classical peer) and the
#: curriculum trainer's models (any other name). An archived record (`m3mstl.runs.archive`; its
#: complete.json names its folder relative to the repository) keeps no weights by design.
FACE_DETECTOR_FILES = ("model.pt", "metrics_val.json")
PEER_FILES = ("model.dat", "metrics_test.json", "predictions_test.npz")
TRAINED_MODEL_FILES = ("model.pt", "metrics_test.json", "predictions_test.npz")
ARCHIVED_FILES = ("metrics_test.json", "predictions_test.npz")


def finished_run_files(run_dir: Path) -> tuple[str, ...]:
    """The files a finished run in `run_dir` must hold (see FACE_DETECTOR_FILES ...); none for a
    folder whose config.json names no model (a record this module does not know)."""
    run_dir = Path(run_dir)
    try:
        model = json.loads((run_dir / "config.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError, RecursionError):
        model = None
    if not isinstance(model, str):
        return ()
    try:
        recorded = json.loads((run_dir / "complete.json").read_text()).get("run_dir")
    except (OSError, ValueError, AttributeError, RecursionError):
        recorded = None
    if isinstance(recorded, str) and recorded and not Path(recorded).is_absolute():
        return ARCHIVED_FILES
    if model == "face_detector":
        return FACE_DETECTOR_FILES
    if model == "dlib_shape_predictor":
        return PEER_FILES
    return TRAINED_MODEL_FILES


# Committed files that `m3mstl reproduce` regenerates (paths relative to the repository root).
GENERATED_PATHS: tuple[str, ...] = ("figures", "tables", "executed", "reproduction.json", "archive")


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

    from m3mstl.core.fileio import regular_file_problem

    path = Path(path)
    problem = regular_file_problem(path)
    if problem is not None:
        raise RunError(path, "file not found" if problem == "not found" else problem)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RunError(path, f"cannot read the JSON: {error}") from None
    except RecursionError:
        raise RunError(path, "cannot read the JSON: nested too deeply") from None


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

    from m3mstl.errors import RunError

    config = load_config(run_dir)
    model = create_model(config.model, **config.model_options)
    path = Path(run_dir) / checkpoint
    state = load_checkpoint(path, model_only=True)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunError(path, f"the weights do not fit the model of this run's config.json (weights of another "
                             f"run or model?): {first[:300]}") from None
    return model.to(device).eval()


def load_checkpoint(path: Path, *, model_only: bool = False) -> dict[str, Any]:
    """A torch checkpoint (the model's state dict, or the trainer's resume state); a missing,
    truncated or foreign file is a RunError naming it."""
    import pickle
    import zipfile

    import torch

    from m3mstl.core.fileio import regular_file_problem
    from m3mstl.errors import RunError

    path = Path(path)
    problem = regular_file_problem(path)
    if problem == "not found":
        raise RunError(path, "checkpoint not found; is the run finished?")
    if problem is not None:
        raise RunError(path, f"checkpoint {problem}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile, AttributeError,
            ImportError, KeyError, IndexError, TypeError) as error:  # what a damaged pickle can raise
        if isinstance(error, OSError) and error.errno is not None and not isinstance(error, FileNotFoundError):
            raise  # a fault of the machine (permission, I/O error): the command line names it
        raise RunError(path, f"cannot read the checkpoint (truncated or not a torch file): "
                             f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    if not isinstance(state, dict):
        raise RunError(path, f"not a checkpoint: holds a {type(state).__name__}")
    if model_only and "optimizer" in state:
        state = state["model"]
    return state


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
