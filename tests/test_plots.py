"""Figures that notebooks 02 and 11 draw, as tested functions."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from m3mstl.viz import plots


def test_stage1_mask_grid_shows_image_target_and_prediction_per_face():
    rng = np.random.default_rng(0)
    images, targets, probs = (rng.random((2, 16, 16)) for _ in range(3))
    fig = plots.stage1_mask_grid(images, targets, probs, iou=0.1234)
    axes = np.asarray(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["thermal", "target", "predicted"]
    assert all(ax.get_title() == "" for ax in axes[1])
    for row in range(2):
        for ax, expected in zip(axes[row], (images[row], targets[row], probs[row])):
            np.testing.assert_array_equal(ax.get_images()[0].get_array(), expected)
    assert axes[0, 0].get_images()[0].get_cmap().name == "gray"
    assert axes[0, 2].get_images()[0].get_cmap().name == "magma"
    assert fig._suptitle.get_text() == "stage-1 masks, validation IoU at 0.5 = 0.123"
    plt.close(fig)


def test_stage1_mask_grid_draws_a_single_face():
    fig = plots.stage1_mask_grid(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)), np.ones((1, 8, 8)), iou=0.0)
    assert len(fig.axes) == 3
    plt.close(fig)


def test_pose_scatter_plots_each_angle_against_its_truth_with_the_diagonal():
    rng = np.random.default_rng(1)
    gt = rng.uniform(-40, 40, (20, 3))
    pred = gt + rng.normal(0, 3, (20, 3))
    fig = plots.pose_scatter(gt, pred)
    assert len(fig.axes) == 3
    for i, (ax, name) in enumerate(zip(fig.axes, ("yaw", "pitch", "roll"))):
        np.testing.assert_array_equal(ax.collections[0].get_offsets(), np.column_stack([gt[:, i], pred[:, i]]))
        diagonal = ax.lines[0].get_xydata()
        assert diagonal[1, 0] == pytest.approx(np.abs(gt[:, i]).max()) and (diagonal[:, 0] == diagonal[:, 1]).all()
        assert ax.get_xlabel() == f"true {name} (deg)" and ax.get_ylabel() == f"predicted {name} (deg)"
    plt.close(fig)
