"""Shared test fixtures. The dataset maker itself lives in the package (`m3mstl.data.toy`)
so benchmarks and examples use it too; tests import it from here or from there."""
from __future__ import annotations

from pathlib import Path

import pytest

from m3mstl.data.toy import (  # noqa: F401  (re-exported for the tests)
    CANTHUS_C,
    EYES,
    FACE_TEMPLATE,
    NOSE_C,
    SKIN_C,
    draw_thermal_face,
    make_tiny_dataset,
)


@pytest.fixture
def tiny_dataset_dir(tmp_path: Path) -> Path:
    """A fresh 3-subject, 6-image dataset (64x48, float deg C maps, glasses on half the images)."""
    return make_tiny_dataset(tmp_path / "tiny")


@pytest.fixture
def tiny_dataset(tiny_dataset_dir: Path):
    """The `tiny_dataset_dir` read back as a FaceDataset."""
    from m3mstl.data.coco import read_dataset

    return read_dataset(tiny_dataset_dir)


@pytest.fixture(scope="session")
def quick_reproduction(tmp_path_factory) -> Path:
    """One `m3mstl reproduce --profile quick` for the whole session, into a scratch output root
    (so the committed figures, tables and executed notebooks are untouched); the tests of the
    notebook sequence, of its executed copies and the browser test all read it.
    M3MSTL_QUICK_REPRODUCTION=<output root of an earlier one> reuses that instead (for iterating)."""
    import os
    import subprocess
    import sys

    reuse = os.environ.get("M3MSTL_QUICK_REPRODUCTION")  # a finished quick reproduction to iterate against
    if reuse and (Path(reuse) / "reproduction.json").is_file():
        return Path(reuse)
    root = tmp_path_factory.mktemp("quick-reproduction")
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(root)}
    proc = subprocess.run([sys.executable, "-m", "m3mstl.cli", "reproduce", "--profile", "quick", "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=3500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    (root / "reproduce.stderr").write_text(proc.stderr)
    return root
