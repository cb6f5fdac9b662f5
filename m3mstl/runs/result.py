"""A finished run's record loaded for comparison: metrics, per-image rows and predictions."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m3mstl.runs import is_complete, load_json, run_ref
from m3mstl.runs.predictions import load_predictions


@dataclass
class RunResult:
    """A finished run's record, loaded for comparison."""

    name: str
    run_dir: Path
    metrics: dict[str, Any]
    per_image: pd.DataFrame
    predictions: dict[str, np.ndarray]

    @property
    def run_id(self) -> str:
        return run_ref(self.run_dir)

    @property
    def labelled(self) -> np.ndarray:
        return self.predictions["visibility"] > 0

    @property
    def occluded(self) -> np.ndarray:
        return self.predictions["visibility"] == 1


def load_run(run_dir: str | Path, name: str | None = None, split: str = "test") -> RunResult:
    """The finished run in `run_dir`, on `split`, named `name` (by default its family's folder name).
    A missing folder, an unfinished run (no complete.json) or a split without its record files is a
    `m3mstl.errors.RunError` naming the folder and what is missing."""
    from m3mstl.errors import RunError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(run_dir, "run folder not found")
    missing = [f"{stem}_{split}.{ext}" for stem, ext in (("metrics", "json"), ("per_image", "csv"),
                                                         ("predictions", "npz"))
               if not (run_dir / f"{stem}_{split}.{ext}").is_file()]
    if not is_complete(run_dir):
        raise RunError(run_dir, "the run has not finished: complete.json is missing"
                                + (f" (and {', '.join(missing)})" if missing else "")
                                + "; train it (again) to finish it")
    if missing:
        raise RunError(run_dir, f"no record of the {split!r} split: {', '.join(missing)} missing")
    metrics = load_json(run_dir / f"metrics_{split}.json")
    if not isinstance(metrics, dict):
        raise RunError(run_dir / f"metrics_{split}.json", f"not a metrics record: holds a {type(metrics).__name__}")
    try:
        per_image = pd.read_csv(run_dir / f"per_image_{split}.csv", dtype={"subject": str, "image_id": str})
    except (OSError, ValueError, UnicodeDecodeError) as error:  # pandas' parser errors are ValueErrors
        raise RunError(run_dir / f"per_image_{split}.csv", f"cannot read the table: {error}") from None
    preds = load_predictions(run_dir / f"predictions_{split}.npz")
    return RunResult(name or run_dir.parent.name, run_dir, metrics, per_image, preds)
