"""Shared test fixtures. The dataset maker itself lives in the package (`m3mstl.data.toy`)
so benchmarks and examples use it too; tests import it from here or from there."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def outputs_redirected_to(root: Path) -> Iterator[Path]:
    """Everything the package writes in this process (runs, caches, data, figures, tables, the
    manifest) goes under `root` while the block runs; torch uses one thread, and M3MSTL_DEBUG is
    unset so the commands print their one-line errors rather than tracebacks."""
    import torch

    from m3mstl import paths

    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "OUTPUT_ROOT", root)
        patch.setattr(paths, "PUBLISH_ROOT", root)
        for name, sub in (("DATA_DIR", "data"), ("RUNS_DIR", "runs"), ("BUILD_DIR", "build"),
                          ("FIGURES_DIR", "figures"), ("TABLES_DIR", "tables")):
            patch.setattr(paths, name, root / sub)
        patch.setattr(paths, "MANIFEST_PATH", root / "reproduction.json")
        patch.delenv("M3MSTL_DEBUG", raising=False)
        yield root


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
