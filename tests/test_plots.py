"""Figures that notebooks 01, 02, 07, 09 and 11 draw, as tested functions."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from m3mstl.report import plots


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


def _ablation_table():
    return pd.DataFrame({"variant": ["full M3MSTL", "no stage 1", "MLP tokens"],
                         "roc_auc": [0.91, 0.80, 0.88], "nme_median": [0.041, 0.052, 0.047]})


def test_ablation_bars_draw_auc_and_nme_per_variant_with_names_on_the_left_only():
    table = _ablation_table()
    fig = plots.ablation_bars(table)
    ax_auc, ax_nme = fig.axes
    assert [p.get_width() for p in ax_auc.patches] == pytest.approx(table["roc_auc"].tolist())
    assert [p.get_width() for p in ax_nme.patches] == pytest.approx(table["nme_median"].tolist())
    assert [t.get_text() for t in ax_auc.get_yticklabels()] == table["variant"].tolist()
    assert all(t.get_text() == "" for t in ax_nme.get_yticklabels())
    assert ax_auc.get_xlim() == pytest.approx((0.80 - 0.05, 1.0))  # starts below the weakest variant
    assert (ax_auc.get_xlabel(), ax_nme.get_xlabel()) == ("occlusion ROC-AUC", "median NME (inter-ocular)")
    plt.close(fig)


def test_ablation_bars_whisker_one_sd_over_seeds_and_say_so():
    table = _ablation_table().assign(roc_auc_sd=[0.01, 0.02, 0.03], nme_median_sd=[0.001, 0.002, float("nan")],
                                     n_seeds=[3, 3, 3])
    fig = plots.ablation_bars(table)
    ax_auc, ax_nme = fig.axes
    whiskers = [line for line in ax_auc.collections if line.get_segments()]
    (segments,) = [c.get_segments() for c in whiskers]
    assert [s[1][0] - s[0][0] for s in segments] == pytest.approx([0.02, 0.04, 0.06])  # mean -/+ sd
    assert ax_auc.get_xlim()[0] == pytest.approx(0.80 - 0.02 - 0.05)  # the lowest whisker stays in view
    assert "3 training seeds" in fig._suptitle.get_text()
    plt.close(fig)


def test_ablation_bars_never_start_the_auc_axis_below_zero():
    table = _ablation_table().assign(roc_auc=[0.02, 0.5, 0.6])
    fig = plots.ablation_bars(table)
    assert fig.axes[0].get_xlim()[0] == 0.0
    plt.close(fig)


def test_canthus_error_by_occluder_boxes_each_reading_per_occluder_without_missing_readings():
    per_image = pd.DataFrame({"occluder_type": ["none", "none", "glasses", "glasses", "glasses"],
                              "naive_error_c": [-0.2, -0.4, -1.0, -1.2, -0.8],
                              "skip_occluded_error_c": [-0.1, np.nan, -0.3, np.nan, -0.2],
                              "true_c": [36.0] * 5})  # not an error column: ignored
    fig = plots.canthus_error_by_occluder(per_image)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["naive", "skip_occluded"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none", "glasses"]
    assert ax.get_ylabel() == "error (deg C)" and ax.get_title() == "canthus reading error by occluder"
    assert any(list(line.get_ydata()) == [0, 0] for line in ax.get_lines())  # the zero-error reference
    plt.close(fig)


def test_canthus_error_by_occluder_says_when_there_is_no_ground_truth():
    fig = plots.canthus_error_by_occluder(None)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["no ground truth"]
    assert ax.get_title() == "canthus reading error by occluder"
    plt.close(fig)


def _per_landmark(with_causes: bool) -> pd.DataFrame:
    table = pd.DataFrame({"landmark": range(68), "occlusion_rate": np.linspace(0.0, 0.5, 68)})
    if with_causes:
        table["rate_glasses"] = np.where(np.arange(68) < 34, np.nan, 0.1)  # absent at half the points
        table["rate_mask"] = 0.2
    return table


def test_occlusion_per_landmark_stacks_the_causes_and_treats_an_absent_cause_as_zero():
    fig = plots.occlusion_per_landmark(_per_landmark(with_causes=True))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["glasses", "mask"]
    glasses, mask = ax.containers
    assert [bar.get_y() for bar in mask] == pytest.approx([0.0] * 34 + [0.1] * 34)  # stacked on glasses
    assert [bar.get_height() for bar in mask] == pytest.approx([0.2] * 68)
    assert len(glasses) == 68
    plt.close(fig)


def test_occlusion_per_landmark_draws_the_overall_rate_without_causes():
    table = _per_landmark(with_causes=False)
    fig = plots.occlusion_per_landmark(table)
    (bars,) = fig.axes[0].containers
    assert [bar.get_height() for bar in bars] == pytest.approx(table["occlusion_rate"].tolist())
    plt.close(fig)


def test_pose_coverage_heatmap_shows_the_counts_or_says_there_are_no_poses():
    coverage = pd.DataFrame([[1, 2, 0], [3, 0, 5]], index=["[-10, 0)", "[0, 10)"],
                            columns=["[-15, 0)", "[0, 15)", "[15, 30)"])
    fig = plots.pose_coverage_heatmap(coverage)
    np.testing.assert_array_equal(np.asarray(fig.axes[0].collections[0].get_array()).ravel(),
                                  coverage.to_numpy().ravel())
    assert fig.axes[0].get_title() == "head-pose coverage (degrees)"
    plt.close(fig)
    empty = plots.pose_coverage_heatmap(pd.DataFrame())
    assert [t.get_text() for t in empty.axes[0].texts] == ["no head-pose labels in this dataset"]
    plt.close(empty)
