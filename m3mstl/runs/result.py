"""A finished run's record loaded for comparison: metrics, per-image rows and predictions."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m3mstl.runs import run_ref
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
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / f"metrics_{split}.json").read_text())
    per_image = pd.read_csv(run_dir / f"per_image_{split}.csv", dtype={"subject": str, "image_id": str})
    preds = load_predictions(run_dir / f"predictions_{split}.npz")
    return RunResult(name or run_dir.parent.name, run_dir, metrics, per_image, preds)
