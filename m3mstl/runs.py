"""Run records: `runs/<model>/<run-id>/` holds everything that produced a number.

    config.json        the resolved RunConfig
    environment.json   package versions, device, git commit, data fingerprint, start time
    state.json         curriculum progress (stage, epoch, best validation loss, ...)
    checkpoints/       last.pt (resume point), best-<stage>.pt
    history.jsonl      one line per epoch: stage, epoch, train/val losses, val NME, lr, seconds
    predictions_<split>.npz   landmarks, occlusion probabilities, ground truth, image ids
    metrics_<split>.json      metrics computed from those predictions
    complete.json      written last: the run finished; its presence makes the run reusable

The run id hashes the config and the data fingerprint, so the same request on the
same data finds the same folder and reuses the finished run.
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


def data_fingerprint(data_root: str | os.PathLike) -> str:
    """Hash of the annotation file plus every data file's name and size.

    Cheap enough to compute on each call (no image decoding) yet changes whenever the
    dataset is regenerated with other settings or another file is dropped in.
    """
    root = Path(data_root)
    digest = hashlib.sha256()
    annotations = root / "annotations.json" if root.is_dir() else root
    digest.update(annotations.read_bytes())
    if root.is_dir():
        for sub in ("thermal", "temperature", "occluders"):
            folder = root / sub
            if folder.is_dir():
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    digest.update(f"{sub}/{entry.name}:{entry.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def run_id(config: RunConfig, fingerprint: str) -> str:
    return hashlib.sha256(f"{config.config_hash()}:{fingerprint}".encode()).hexdigest()[:12]


def run_dir_for(config: RunConfig, fingerprint: str, runs_root: Path | None = None) -> Path:
    return (runs_root or paths.RUNS_DIR) / config.model / run_id(config, fingerprint)


def is_complete(run_dir: Path) -> bool:
    return (run_dir / "complete.json").is_file()


# Committed files that `m3mstl reproduce` regenerates (paths relative to the repository root).
GENERATED_PATHS: tuple[str, ...] = ("figures", "tables", "executed", "reproduction.json")


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
        "packages": versions,
        "git_commit": git_commit(),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device is not None:
        info["device"] = device
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_config(run_dir: Path) -> RunConfig:
    return RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))


def load_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


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
    state = torch.load(Path(run_dir) / checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"] if "optimizer" in state else state)
    return model.to(device).eval()
