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
