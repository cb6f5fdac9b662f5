"""Which run a study's settings name, and where that run is: the lookups the scaling study and the
recipe study share (each imports them from here, so neither study imports the other's internals).

A study names a run by its settings (model, profile, seed, overrides) and the data's content
fingerprint; the trainer's run id hashes the resolved config and that fingerprint, so the same
settings find the same run in runs/ on this machine or, if it is not here, in archive/.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from m3mstl import paths
from m3mstl.config import make_config
from m3mstl.runs import is_complete, load_config, read_history, run_id
from m3mstl.runs.archive import archived_run_dir


def resolved_config(model: str, profile: str, seed: int, overrides: dict[str, Any]):
    """The run config as the trainer records it: every model option resolved (defaults included)."""
    from m3mstl.train.trainer import resolve_model_options

    config = make_config(model, profile, seed=seed, overrides=overrides)
    config.model_options = resolve_model_options(config.model, config.model_options)
    return config


def study_run_id(model: str, profile: str, seed: int, overrides: dict[str, Any], fingerprint: str) -> str:
    """The id the trainer gives this run: it hashes the resolved config and the data fingerprint."""
    return run_id(resolved_config(model, profile, seed, overrides), fingerprint)


def run_state(model: str, profile: str, seed: int, overrides: dict[str, Any], fingerprint: str
              ) -> tuple[str, Path | None]:
    """Where the study finds this run: ("finished", its run folder) on this machine, else
    ("archived", its archived record), else ("missing", None)."""
    identity = study_run_id(model, profile, seed, overrides, fingerprint)
    if is_complete(paths.RUNS_DIR / model / identity):
        return "finished", paths.RUNS_DIR / model / identity
    archived = archived_run_dir(model, identity)
    return ("archived", archived) if archived is not None else ("missing", None)


def epochs_with_images(run_dir: Path, n_train: int) -> list[tuple[dict[str, Any], int]]:
    """Every epoch of the run's history with the training samples it drew: steps_per_epoch x batch,
    or one pass over the `n_train` training images."""
    config = load_config(run_dir)
    stages = {s.name: s for s in config.stages}
    return [(entry, stages[entry["stage"]].steps_per_epoch * config.data.batch_size
             if stages[entry["stage"]].steps_per_epoch else n_train) for entry in read_history(run_dir)]
