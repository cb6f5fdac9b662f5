"""Data-exploration helpers (m3mstl.studies.dataset_summary) on a small generated dataset and a hand-made one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from m3mstl.data import coco
from m3mstl.data.coco import read_dataset
from m3mstl.report.dataset_figures import contact_sheet
from m3mstl.studies.dataset_summary import (
    dataset_summary,
    landmark_table,
    occlusion_by_occluder,
    occlusion_rate_per_landmark,
    pose_coverage,
    region_temperature_table,
)
from m3mstl.data.synth.generate import generate_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore") / "synth"
    generate_dataset(root, subjects=2, per_subject=4, size=48, seed=9)
    return read_dataset(root)


def _handmade(root: Path) -> coco.FaceDataset:
    """Two 10x10 images with known labels, no synthetic extras (like a real dataset)."""
    entries = []
    rng = np.random.default_rng(0)
    for k in range(2):
        landmarks = rng.uniform(1, 9, size=(68, 2))
        visibility = np.full(68, 2)
        visibility[:10 * (k + 1)] = 1                       # image 0: 10 occluded, image 1: 20
        temperature = np.full((10, 10), 30.0 + k, dtype=np.float32)
        entries.append(coco.write_sample(root, f"thermal_00{k}_0_0", f"00{k}", np.zeros((10, 10), np.uint8),
                                         temperature, landmarks, visibility))
    coco.write_annotations(root, entries)
    return read_dataset(root)


def test_tables_on_a_dataset_with_known_labels(tmp_path):
    ds = _handmade(tmp_path / "hand")
    long = landmark_table(ds)
    assert len(long) == 136
    rates = occlusion_rate_per_landmark(long)
    pd.testing.assert_frame_equal(rates, occlusion_rate_per_landmark(ds))
    assert rates.loc[rates["landmark"] < 10, "occlusion_rate"].eq(1.0).all()
    assert rates.loc[(rates["landmark"] >= 10) & (rates["landmark"] < 20), "occlusion_rate"].eq(0.5).all()
    assert rates.loc[rates["landmark"] >= 20, "occlusion_rate"].eq(0.0).all()
    temps = region_temperature_table(long)
    jaw = temps[(temps["region"] == "jaw") & (temps["state"] == "visible")]
    assert float(jaw["temperature_c_mean"].iloc[0]) == pytest.approx(30.0)   # only image 0 has visible jaw 10-16
    table = occlusion_by_occluder(ds, long)
    assert list(table["occluder"]) == ["none"]
    assert float(table["occluded_share"].iloc[0]) == pytest.approx(30 / 136)
    assert pose_coverage(ds).empty
    summary = dataset_summary(ds, long)
    assert summary["images"] == 2 and summary["occluded_landmark_share"] == pytest.approx(30 / 136)


def test_tables_and_sheet_on_synthetic_data(synth):
    long = landmark_table(synth)
    assert {"cause", "skin_temperature_c", "temperature_c"} <= set(long.columns)
    rates = occlusion_rate_per_landmark(long)
    manual = long[long["landmark"] == 30]["occluded"].mean()
    assert float(rates.loc[30, "occlusion_rate"]) == pytest.approx(manual)
    if "rate_self" in rates:
        self_30 = (long[long["landmark"] == 30]["cause"] == "self").mean()
        assert float(rates.loc[30, "rate_self"]) == pytest.approx(self_30)
    temps = region_temperature_table(long)
    visible_skin = temps[temps["state"] == "visible"]["skin_temperature_c_mean"]
    assert ((visible_skin > 28.0) & (visible_skin < 38.0)).all()
    by_occluder = occlusion_by_occluder(synth, long)
    assert by_occluder["images"].sum() >= len(synth)
    coverage = pose_coverage(synth)
    assert isinstance(coverage, pd.DataFrame) and int(coverage.to_numpy().sum()) == len(synth)
    fig = contact_sheet(synth, n=6, columns=3, seed=1)
    assert isinstance(fig, Figure) and len([a for a in fig.axes if a.images]) == 6
    again = contact_sheet(synth, image_ids=[r.image_id for r in synth.records[:2]], captions=False)
    assert len([a for a in again.axes if a.images]) == 2
