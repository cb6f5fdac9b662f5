"""The occlusion explorer, driven without a browser: set widget values, check the state."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m3mstl.config import make_config
from m3mstl.core.landmarks import GROUPS
from m3mstl.models import create_model
from m3mstl.report.explorer import LoadedRun, OcclusionExplorer, save_gallery

EYES = list(GROUPS["right_eye"] + GROUPS["left_eye"])


@pytest.fixture(scope="module")
def explorer() -> OcclusionExplorer:
    torch.manual_seed(0)
    config = make_config("m3mstl", "quick")
    model = create_model("m3mstl", backbone="resnet18").eval()
    return OcclusionExplorer([LoadedRun("untrained", model, config)], size=96, seed=0, n_samples=5, live=False)


def _frontal_sample(explorer: OcclusionExplorer) -> None:
    """Pick a face whose eyes are all visible without occluders (pose varies per sample)."""
    for index in range(explorer.sample.max + 1):
        with explorer.hold():
            explorer.sample.value = index
            for toggle in explorer.toggles.values():
                toggle.value = False
        if not explorer.state["gt_occluded"][EYES].any():
            return
    pytest.skip("no sample with both eyes visible")


def test_sunglasses_toggle_re_renders_the_same_face_and_hides_the_eyes(explorer):
    _frontal_sample(explorer)
    before = explorer.state
    explorer.toggles["sunglasses"].value = True
    after = explorer.state
    assert after["occluders"] == ["sunglasses"]
    assert after["gt_occluded"][EYES].all()
    assert not np.array_equal(before["image"], after["image"])
    # Same face: landmarks keep their true projected positions under an occluder.
    np.testing.assert_allclose(before["gt_landmarks"], after["gt_landmarks"])
    # Glass is opaque and cold in LWIR: the temperature read at the eyes drops.
    eyes_before = before["temperature"][tuple(np.floor(before["gt_landmarks"][EYES][:, ::-1]).astype(int).T)]
    eyes_after = after["temperature"][tuple(np.floor(after["gt_landmarks"][EYES][:, ::-1]).astype(int).T)]
    assert eyes_after.mean() < eyes_before.mean() - 2.0
    explorer.toggles["sunglasses"].value = False
    assert explorer.state["occluders"] == []


def test_threshold_slider_changes_what_is_called_occluded(explorer):
    explorer.threshold.value = 0.0
    assert explorer.state["pred_occluded"].all()
    explorer.threshold.value = 1.0
    assert explorer.state["pred_occluded"].sum() == int((explorer.state["occlusion_prob"] >= 1.0).sum())
    explorer.threshold.value = 0.5
    assert explorer.state["threshold"] == 0.5


def test_palette_and_figure(explorer):
    explorer.palette.value = "inferno"
    assert explorer.state["palette"] == "inferno"
    fig = explorer.figure()
    assert fig.axes[0].images[0].get_cmap().name == "inferno"


def test_gallery_saves_one_figure_per_scenario(explorer, tmp_path):
    written = save_gallery(explorer, "explorer", scenarios=[(), ("mask",)], out_dir=tmp_path)
    assert [sorted(w) for w in written] == [["pdf", "png"], ["pdf", "png"]]
    assert (tmp_path / "explorer_mask.png").stat().st_size > 0
    assert explorer.state["occluders"] == ["mask"]


def test_summary_line_counts_what_the_view_shows(explorer):
    explorer.threshold.value = 0.0
    text = explorer.summary.value
    assert "calls occluded: <b class='m3-called'>68</b>/68" in text
    assert f"occluded in truth: <b class='m3-true'>{int(explorer.state['gt_occluded'].sum())}</b>/68" in text
    explorer.threshold.value = 0.5
