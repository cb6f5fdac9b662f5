"""Figures the notebooks draw (m3mstl.report.plots), as tested functions: each is built from small
synthetic inputs, checked on what it plots, and saved through m3mstl.report.savefig."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from m3mstl import paths
from m3mstl.data.toy import FACE_TEMPLATE
from m3mstl.report import plots, savefig
from m3mstl.runs.result import RunResult


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


# -- figures of a run's training and evaluation (notebooks 02-06) ---------------------------------
def _history() -> list[dict]:
    """A run's history.jsonl rows: three stages, one row per epoch."""
    rows = [("mask_pretrain", 0.90, 0.95, 0.30), ("mask_pretrain", 0.70, 0.80, 0.28), ("heads", 0.50, 0.60, 0.20),
            ("joint", 0.40, 0.45, 0.12), ("joint", 0.30, 0.41, 0.10)]
    return [{"stage": stage, "epoch": 1, "train_loss": train, "val_loss": val, "val_nme": nme, "lr": 1e-3}
            for stage, train, val, nme in rows]


@pytest.mark.parametrize("title, shown", [("", "losses"), ("M3MSTL: all stages", "M3MSTL: all stages")])
def test_training_curves_draw_each_stage_on_one_epoch_axis(title, shown):
    history = _history()
    fig = plots.training_curves(history, title)
    ax_loss, ax_nme = fig.axes
    stages = {"mask_pretrain": [1, 2], "heads": [3], "joint": [4, 5]}  # epochs counted across the stages
    assert [t.get_text() for t in ax_loss.get_legend().get_texts()] == [
        f"{stage} {part}" for stage in stages for part in ("train", "val")]
    assert [t.get_text() for t in ax_nme.get_legend().get_texts()] == list(stages)
    for k, (stage, steps) in enumerate(stages.items()):
        rows = [h for h in history if h["stage"] == stage]
        train, val = ax_loss.lines[2 * k], ax_loss.lines[2 * k + 1]
        assert list(train.get_xdata()) == steps and list(val.get_xdata()) == steps
        assert list(train.get_ydata()) == [h["train_loss"] for h in rows]
        assert list(val.get_ydata()) == [h["val_loss"] for h in rows]
        assert list(ax_nme.lines[k].get_ydata()) == [h["val_nme"] for h in rows]
    assert ax_loss.get_title() == shown and ax_nme.get_title() == "validation NME"
    assert ax_loss.get_xlabel() == "epoch (all stages)" and ax_nme.get_ylabel() == "val NME (inter-ocular, crop)"
    plt.close(fig)


def _run_result(name: str, seed: int, *, occlusion: bool = True, per_landmark: bool = True,
                n: int = 8) -> RunResult:
    """A finished run as `runs.result.load_run` gives it, with the arrays of `infer.predict.predict_split`:
    faces of the toy template, glasses (eyes occluded, v = 1) on odd images, two jaw points unlabelled."""
    rng = np.random.default_rng(seed)
    gt = FACE_TEMPLATE[None] * rng.uniform(20, 30, (n, 1, 1)) + rng.uniform(40, 60, (n, 1, 2))
    visibility = np.full((n, 68), 2, dtype=np.int8)
    visibility[1::2, 36:48] = 1
    visibility[0, [3, 4]] = 0
    pred = gt + rng.normal(0, 1.0, gt.shape)
    predictions = {"gt_landmarks": gt, "pred_landmarks": pred, "visibility": visibility,
                   "image_id": np.array([f"img{i}" for i in range(n)])}
    metrics: dict = {"landmarks": {"inter_ocular": {"nme_median": 0.04}}}
    if per_landmark:
        metrics["landmarks"]["inter_ocular"]["per_landmark_nme"] = np.linspace(0.01, 0.2, 68)
    if occlusion:
        occluded = visibility == 1
        predictions["occlusion_prob"] = np.clip(0.7 * occluded + rng.uniform(0, 0.5, (n, 68)), 0, 1)
        metrics["occlusion"] = {"roc_auc": 0.9123, "average_precision": 0.7456,
                                "class_prior_occluded": float(occluded[visibility > 0].mean())}
    per_image = pd.DataFrame({"image_id": predictions["image_id"], "nme_inter_ocular": rng.uniform(0.0, 0.15, n)})
    return RunResult(name, Path(f"runs/{name}/run-{seed}"), metrics, per_image, predictions)


def _legend_number(text: str, key: str) -> float:
    return float(re.search(rf"\({key} ([0-9.]+)\)", text).group(1))


@pytest.mark.parametrize("threshold", [0.10, 0.08])
def test_ced_curves_draw_the_share_of_images_below_each_error_per_run(threshold):
    results = [_run_result("m3mstl", 0), _run_result("baseline", 1)]
    results[0].per_image["nme_inter_ocular"] = [0.02, 0.05, 0.2, 0.02, 0.05, 0.2, 0.02, 0.05]
    fig = plots.ced_curves(results, threshold=threshold)
    (ax,) = fig.axes
    assert len(ax.lines) == 2
    for line, result in zip(ax.lines, results):
        nme = result.per_image["nme_inter_ocular"].to_numpy()
        x, y = line.get_xdata(), line.get_ydata()
        assert x[0] == 0.0 and x[-1] == pytest.approx(threshold)
        np.testing.assert_allclose(y, (nme[None, :] <= x[:, None]).mean(axis=1))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [label.split(" (")[0] for label in labels] == ["m3mstl", "baseline"]
    # AUC = mean over images of (threshold - min(nme, threshold)) / threshold
    nme = results[0].per_image["nme_inter_ocular"].to_numpy()
    expected = np.mean(threshold - np.minimum(nme, threshold)) / threshold
    assert _legend_number(labels[0], "AUC") == pytest.approx(expected, abs=1.5e-3)
    assert ax.get_xlim() == pytest.approx((0, threshold)) and ax.get_ylim() == (0, 1)
    assert ax.get_xlabel() == "NME (inter_ocular)" and ax.get_ylabel() == "fraction of test images"
    plt.close(fig)


def test_roc_pr_curves_draw_each_occlusion_model_and_skip_a_landmarks_only_peer():
    from sklearn.metrics import precision_recall_curve, roc_curve

    results = [_run_result("m3mstl", 0), _run_result("peer", 2, occlusion=False), _run_result("baseline", 1)]
    fig = plots.roc_pr_curves(results)
    ax_roc, ax_pr = fig.axes
    drawn = [results[0], results[2]]
    assert [t.get_text() for t in ax_roc.get_legend().get_texts()] == ["m3mstl (AUC 0.912)", "baseline (AUC 0.912)"]
    prior = results[0].metrics["occlusion"]["class_prior_occluded"]
    assert [t.get_text() for t in ax_pr.get_legend().get_texts()] == [
        "m3mstl (AP 0.746)", "baseline (AP 0.746)", f"class prior {prior:.3f}"]
    for k, result in enumerate(drawn):
        y = result.occluded[result.labelled]
        p = result.predictions["occlusion_prob"][result.labelled]
        fpr, tpr, _ = roc_curve(y, p)
        precision, recall, _ = precision_recall_curve(y, p)
        np.testing.assert_allclose(ax_roc.lines[k].get_xydata(), np.column_stack([fpr, tpr]))
        np.testing.assert_allclose(ax_pr.lines[k].get_xydata(), np.column_stack([recall, precision]))
    assert list(ax_roc.lines[-1].get_xdata()) == [0, 1] == list(ax_roc.lines[-1].get_ydata())  # chance
    assert list(ax_pr.lines[-1].get_ydata()) == [prior, prior]
    assert (ax_roc.get_xlabel(), ax_roc.get_ylabel()) == ("false positive rate", "true positive rate")
    assert (ax_pr.get_xlabel(), ax_pr.get_ylabel()) == ("recall", "precision")
    plt.close(fig)
    with pytest.raises(ValueError, match="no run predicts occlusion among \\['peer'\\]"):
        plots.roc_pr_curves([results[1]])


def _expected_per_landmark(result: RunResult) -> np.ndarray:
    pred, gt = result.predictions["pred_landmarks"], result.predictions["gt_landmarks"]
    inter_ocular = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    errors = np.linalg.norm(pred - gt, axis=-1) / inter_ocular[:, None]
    return np.nanmean(np.where(result.labelled, errors, np.nan), axis=0)


@pytest.mark.parametrize("stored", [True, False], ids=["metrics-per-landmark", "computed-from-predictions"])
def test_per_landmark_error_on_face_colours_each_landmark_by_its_error(stored):
    result = _run_result("m3mstl", 0, per_landmark=stored)
    fig = plots.per_landmark_error_on_face(result)
    ax, colorbar = fig.axes
    (dots,) = ax.collections
    expected = (result.metrics["landmarks"]["inter_ocular"]["per_landmark_nme"] if stored
                else _expected_per_landmark(result))
    np.testing.assert_allclose(np.asarray(dots.get_array()), expected)
    # The default reference is the mean face, made left/right symmetric: a point mirrors its partner.
    from m3mstl.core.landmarks import MIRROR

    shape = dots.get_offsets()
    np.testing.assert_allclose(shape[:, 0], -shape[MIRROR, 0], atol=1e-12)
    np.testing.assert_allclose(shape[:, 1], shape[MIRROR, 1], atol=1e-12)
    assert ax.yaxis_inverted() and not ax.axison
    assert colorbar.get_ylabel() == "mean NME (inter_ocular)"
    assert ax.get_title() == "m3mstl: error per landmark"
    plt.close(fig)


def test_per_landmark_error_on_face_draws_on_a_given_reference_shape():
    result = _run_result("m3mstl", 0)
    fig = plots.per_landmark_error_on_face(result, reference=FACE_TEMPLATE)
    np.testing.assert_array_equal(fig.axes[0].collections[0].get_offsets(), FACE_TEMPLATE)
    plt.close(fig)


@pytest.mark.parametrize("n, grid", [(1, (1, 1)), (3, (1, 3)), (6, (2, 4))])
@pytest.mark.parametrize("threshold", [0.5, 0.9])
def test_qualitative_grid_overlays_truth_and_predictions_coloured_by_occlusion(n, grid, threshold):
    result = _run_result("m3mstl", 0)
    rng = np.random.default_rng(3)
    indices = list(range(7, 7 - n, -1))
    images = [rng.random((16, 16)) for _ in indices]
    titles = [f"image {i}" for i in indices]
    fig = plots.qualitative_grid(result, images, indices, titles, threshold=threshold)
    assert len(fig.axes) == grid[0] * grid[1]
    red, lime = mcolors.to_rgba("red"), mcolors.to_rgba("lime")
    n_called = 0
    for ax, image, i, title in zip(fig.axes, images, indices, titles):
        assert ax.get_title() == title and not ax.axison
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), image)
        truth, predicted = ax.collections
        np.testing.assert_array_equal(truth.get_offsets(), result.predictions["gt_landmarks"][i])
        np.testing.assert_array_equal(predicted.get_offsets(), result.predictions["pred_landmarks"][i])
        called = result.predictions["occlusion_prob"][i] >= threshold
        np.testing.assert_array_equal(predicted.get_facecolors(), np.where(called[:, None], red, lime))
        n_called += called.sum()
    assert 0 < n_called < 68 * n  # both colours are exercised
    for ax in fig.axes[n:]:  # the unused cells of the grid stay blank
        assert not ax.get_images() and not ax.axison
    plt.close(fig)


# -- whole camera frames (notebook 14) --------------------------------------------------------------
def _frame_predictions(records, detected: list[bool]) -> dict[str, np.ndarray]:
    """`studies.camera_frames.frame_predictions`'s detector arrays: landmarks a pixel off the truth,
    the eyes called occluded, NaN where no face was detected."""
    n = len(records)
    out = {"detected": np.array(detected), "detector_box": np.full((n, 4), np.nan),
           "detector_landmarks": np.full((n, 68, 2), np.nan), "detector_occlusion_prob": np.full((n, 68), np.nan)}
    for i, record in enumerate(records):
        if detected[i]:
            out["detector_box"][i] = (2.0 + i, 3.0, 40.0, 30.0 + i)
            out["detector_landmarks"][i] = record.landmarks + 1.0
            out["detector_occlusion_prob"][i] = np.where(np.isin(np.arange(68), range(36, 48)), 0.8, 0.1)
    return out


@pytest.mark.parametrize("per_kind, chosen, n_axes", [(1, [("none", 0), ("glasses", 3)], 2),
                                                      (2, [("none", 0), ("none", 4), ("glasses", 3),
                                                           ("glasses", 5)], 6)])
def test_pipeline_frames_show_detected_frames_per_occluder_with_box_and_called_landmarks(
        tiny_dataset, per_kind, chosen, n_axes):
    from m3mstl.data.coco import image_to_unit_range, load_image

    records = tiny_dataset.records  # glasses on every second image
    assert [bool(r.extras["occluders"]) for r in records] == [False, True] * 3
    predictions = _frame_predictions(records, [True, False, False, True, True, True])
    fig = plots.pipeline_frames(records, predictions, per_kind=per_kind)
    assert len(fig.axes) == n_axes
    for ax, (kind, i) in zip(fig.axes, chosen):
        assert ax.get_title() == kind
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), image_to_unit_range(load_image(records[i])))
        (box,) = ax.patches
        assert (*box.get_xy(), box.get_width(), box.get_height()) == tuple(predictions["detector_box"][i])
        assert box.get_edgecolor() == mcolors.to_rgba("yellow")
        visible, occluded = ax.collections
        eyes = np.isin(np.arange(68), range(36, 48))
        points = predictions["detector_landmarks"][i] - 0.5  # pixel centres as imshow places them
        np.testing.assert_allclose(visible.get_offsets(), points[~eyes])
        np.testing.assert_allclose(occluded.get_offsets(), points[eyes])
        assert tuple(visible.get_facecolors()[0]) == mcolors.to_rgba("lime")
        assert tuple(occluded.get_facecolors()[0]) == mcolors.to_rgba("red")
    for ax in fig.axes[len(chosen):]:
        assert not ax.get_images() and not ax.axison
    assert "detector box (yellow)" in fig._suptitle.get_text()
    plt.close(fig)


def test_pipeline_frames_leave_one_blank_panel_when_no_face_was_detected(tiny_dataset):
    records = tiny_dataset.records
    fig = plots.pipeline_frames(records, _frame_predictions(records, [False] * len(records)))
    (ax,) = fig.axes
    assert not ax.get_images() and not ax.patches and not ax.axison
    plt.close(fig)


# -- the scaling study (notebook 12) --------------------------------------------------------------
def _scaling_table() -> pd.DataFrame:
    """`studies.scaling.point_row` rows: a ResNet-18 ladder over three input sizes and one ResNet-50 point."""
    rows = []
    for k, (size, backbone, variant) in enumerate([(64, "resnet18", "ladder"), (96, "resnet18", "ladder"),
                                                   (128, "resnet18", "ladder"), (96, "resnet50", "wide")]):
        rows.append({"input_size": size, "backbone": backbone, "variant": variant,
                     "train_tflop_m3mstl": 1.0 + k, "train_tflop_baseline": 0.5 + k,
                     "m3mstl_nme_median": 0.05 - 0.005 * k, "baseline_nme_median": 0.06 - 0.004 * k,
                     "diff_roc_auc": 0.02 * k, "diff_roc_auc_low": 0.02 * k - 0.01, "diff_roc_auc_high": 0.02 * k + 0.03,
                     "diff_nme_median": -0.001 * k, "diff_nme_median_low": -0.001 * k - 0.002,
                     "diff_nme_median_high": -0.001 * k + 0.001})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("peer_nme", [0.0712, None], ids=["with-peer", "without-peer"])
def test_scaling_difference_figure_plots_differences_with_intervals_against_size_and_compute(peer_nme):
    table = _scaling_table()
    fig = plots.scaling_difference_figure(table, peer_nme, trunk_note="Trunks: resnet18, resnet50.")
    assert len(fig.axes) == 6
    axes = np.asarray(fig.axes).reshape(3, 2)
    series = [table.iloc[:3], table.iloc[3:]]
    dodge = [-0.75, 0.75]  # the two series sit 1.5 px apart at the same input size
    compute = table["train_tflop_m3mstl"] + table["train_tflop_baseline"]
    for col in range(2):
        for row, column in enumerate(("roc_auc", "nme_median")):
            ax = axes[row, col]
            assert len(ax.containers) == 2
            for container, part, offset, marker in zip(ax.containers, series, dodge, "os"):
                line, _, (bars,) = container.lines
                x = part["input_size"] + offset if col == 0 else compute[part.index]
                np.testing.assert_allclose(np.asarray(line.get_xdata(), float), x)
                np.testing.assert_allclose(np.asarray(line.get_ydata(), float), part[f"diff_{column}"])
                assert line.get_marker() == marker
                spans = np.array([[s[0][1], s[1][1]] for s in bars.get_segments()])
                np.testing.assert_allclose(spans, part[[f"diff_{column}_low", f"diff_{column}_high"]].to_numpy())
            assert any(list(line.get_ydata()) == [0, 0] for line in ax.lines)  # the no-difference line
        bottom = axes[2, col]
        filled = [c.get_offsets() for c in bottom.collections[0::2]]
        open_ = [c.get_offsets() for c in bottom.collections[1::2]]
        for part, m3, base in zip(series, filled, open_):
            np.testing.assert_allclose(m3[:, 1], part["m3mstl_nme_median"])
            np.testing.assert_allclose(base[:, 1], part["baseline_nme_median"])
        peer_lines = [line for line in bottom.lines if line.get_linestyle() == "--"]
        assert [list(line.get_ydata()) for line in peer_lines] == ([[peer_nme, peer_nme]] if peer_nme else [])
        assert bottom.get_ylabel() == "median NME (inter-ocular)"
    assert axes[2, 0].get_xlabel() == "input size (px)"
    assert axes[2, 1].get_xlabel() == "training compute, both models (TFLOP, counted)"
    assert axes[0, 0].get_ylabel().startswith("ROC-AUC: M3MSTL - baseline")
    assert [t.get_text() for t in axes[0, 0].get_legend().get_texts()] == ["resnet18, ladder", "resnet50, wide"]
    key = [t.get_text() for t in axes[2, 0].get_legend().get_texts()]
    assert key == ["M3MSTL (filled)", "baseline (open)"] + (["classical peer (dlib) 0.071"] if peer_nme else [])
    assert fig._suptitle.get_text().endswith("\nTrunks: resnet18, resnet50.")
    plt.close(fig)


# -- every figure saves as PNG and PDF through report.savefig ---------------------------------------
def _tiny_frames(tmp_path):
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.toy import make_tiny_dataset

    records = read_dataset(make_tiny_dataset(tmp_path / "tiny")).records
    return plots.pipeline_frames(records, _frame_predictions(records, [True] * len(records)))


FIGURE_BUILDERS = {
    "training_curves": lambda tmp: plots.training_curves(_history()),
    "ced_curves": lambda tmp: plots.ced_curves([_run_result("m3mstl", 0)]),
    "roc_pr_curves": lambda tmp: plots.roc_pr_curves([_run_result("m3mstl", 0)]),
    "per_landmark_error_on_face": lambda tmp: plots.per_landmark_error_on_face(_run_result("m3mstl", 0)),
    "qualitative_grid": lambda tmp: plots.qualitative_grid(_run_result("m3mstl", 0), [np.zeros((8, 8))] * 2,
                                                           [0, 1], ["a", "b"]),
    "pipeline_frames": _tiny_frames,
    "scaling_difference_figure": lambda tmp: plots.scaling_difference_figure(_scaling_table(), 0.07, trunk_note="t"),
}


@pytest.mark.parametrize("name", FIGURE_BUILDERS)
def test_figure_saves_as_png_and_pdf_into_the_figures_folder(name, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "FIGURES_DIR", tmp_path / "figures")
    fig = FIGURE_BUILDERS[name](tmp_path)
    try:
        written = savefig(fig, f"test_{name}")
    finally:
        plt.close(fig)
    assert written == {"png": tmp_path / "figures" / f"test_{name}.png",
                       "pdf": tmp_path / "figures" / f"test_{name}.pdf"}
    assert written["png"].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert written["pdf"].read_bytes().startswith(b"%PDF")
