"""Golden tests of m3mstl.evaluation.metrics: hand-worked NME cases, CED closed forms, occlusion metrics
against scikit-learn, ECE by hand, breakdowns, and head pose on known rotations."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from m3mstl.data import records
from m3mstl.evaluation import metrics
from m3mstl.evaluation.metrics import MetricsInputError
from m3mstl.core.pose import rotation_from_euler


def hand_face() -> np.ndarray:
    """A 68-point face whose normalisers are easy to work out by hand.

    Outer eye corners 36 = (10, 20), 45 = (50, 20): inter-ocular 40.
    Right eye points average (20, 20), left eye (40, 20): inter-pupil 20.
    Landmark 0 = (0, 0) and 16 = (60, 80) span the box: w 60, h 80, sqrt(w h) = sqrt(4800),
    diagonal 100. Every other point sits at (30, 40), inside the box.
    """
    face = np.full((68, 2), [30.0, 40.0])
    right_eye = np.array([[10, 20], [20, 18], [26, 18], [30, 20], [26, 22], [8, 22]], dtype=float)
    face[36:42] = right_eye
    face[42:48] = np.column_stack([60.0 - right_eye[:, 0], right_eye[:, 1]])[[3, 2, 1, 0, 5, 4]]
    face[0] = [0.0, 0.0]
    face[16] = [60.0, 80.0]
    return face


def test_hand_face_normalisers() -> None:
    gt = hand_face()[None]
    labelled = np.ones((1, 68), bool)
    assert gt[0, 45].tolist() == [50.0, 20.0]
    expected = {"inter_ocular": 40.0, "inter_pupil": 20.0, "box": np.sqrt(4800.0), "bbox_diagonal": 100.0}
    for name, value in expected.items():
        assert metrics.normaliser_distance(gt, labelled, name) == pytest.approx([value])


@pytest.mark.parametrize(
    "normaliser, distance",
    [("inter_ocular", 40.0), ("inter_pupil", 20.0), ("box", np.sqrt(4800.0)), ("bbox_diagonal", 100.0)],
)
def test_nme_uniform_shift_each_normaliser(normaliser: str, distance: float) -> None:
    gt = np.stack([hand_face(), hand_face() * 2.0])  # the second face is twice as large
    pred = gt + np.array([3.0, 4.0])                  # error 5 px at every point
    labelled = np.ones((2, 68), bool)
    occluded = np.zeros((2, 68), bool)
    result = metrics.landmark_metrics(pred, gt, labelled, occluded, normaliser=normaliser)
    expected = np.array([5.0 / distance, 5.0 / (2.0 * distance)])
    np.testing.assert_allclose(result["per_image_nme"], expected)
    assert result["nme_mean"] == pytest.approx(expected.mean())
    assert result["nme_median"] == pytest.approx(np.median(expected))
    assert result["normaliser"] == normaliser
    np.testing.assert_allclose(result["per_landmark_nme"], np.full(68, expected.mean()))


def test_nme_unlabelled_points_are_left_out_everywhere() -> None:
    gt = hand_face()[None]
    pred = gt.copy()
    pred[0, 30] += [6.0, 8.0]      # error 10 at a labelled point
    pred[0, 0] += [600.0, 800.0]   # huge error at landmark 0, which is unlabelled
    labelled = np.ones((1, 68), bool)
    labelled[0, 0] = False
    occluded = np.zeros((1, 68), bool)
    # Without landmark 0 the box is x in [8, 60], y in [18, 80]: w 52, h 62.
    assert metrics.normaliser_distance(gt, labelled, "box")[0] == pytest.approx(np.sqrt(52 * 62))
    result = metrics.landmark_metrics(pred, gt, labelled, occluded, normaliser="box")
    assert result["nme_mean"] == pytest.approx(10.0 / 67 / np.sqrt(52 * 62))
    assert result["n_points"] == 67
    assert np.isnan(result["per_landmark_nme"][0])
    # NaN ground truth at an unlabelled point is fine too.
    gt_nan = gt.copy()
    gt_nan[0, 0] = np.nan
    again = metrics.landmark_metrics(pred, gt_nan, labelled, occluded, normaliser="box")
    assert again["nme_mean"] == pytest.approx(result["nme_mean"])


def test_visible_and_occluded_nme_pool_points() -> None:
    gt = np.stack([hand_face(), hand_face()])
    pred = gt.copy()
    occluded = np.zeros((2, 68), bool)
    occluded[0, 50:54] = True         # image 0: four occluded points with error 8 each
    pred[0, 50:54, 0] += 8.0
    pred[1, 20, 1] += 4.0             # image 1: one visible point with error 4, nothing occluded
    labelled = np.ones((2, 68), bool)
    result = metrics.landmark_metrics(pred, gt, labelled, occluded, normaliser="inter_ocular")
    assert result["nme_occluded"] == pytest.approx(8.0 / 40.0)
    assert result["nme_visible"] == pytest.approx((4.0 / 40.0) / (64 + 68))
    assert result["n_occluded_points"] == 4 and result["n_visible_points"] == 132
    table = metrics.per_image_table(
        pred, gt, labelled, occluded, None, image_ids=["a", "b"], subjects=["s1", "s2"], normalisers=["inter_ocular"]
    )
    assert table.loc[0, "nme_occluded_inter_ocular"] == pytest.approx(0.2)
    assert np.isnan(table.loc[1, "nme_occluded_inter_ocular"])  # no occluded point in image 1
    assert table.loc[1, "nme_visible_inter_ocular"] == pytest.approx(0.1 / 68)


def test_zero_or_undefined_normaliser_names_the_image() -> None:
    gt = np.stack([hand_face(), hand_face()])
    gt[1, 45] = gt[1, 36]  # eye corners on top of each other in image 1
    labelled = np.ones((2, 68), bool)
    with pytest.raises(MetricsInputError, match=r"image index 1 \(b\).*inter_ocular.*zero"):
        metrics.normaliser_distance(gt, labelled, "inter_ocular", image_ids=["a", "b"])
    gt = np.stack([hand_face(), hand_face()])
    labelled[0, 45] = False
    with pytest.raises(MetricsInputError, match=r"image index 0.*undefined"):
        metrics.landmark_metrics(gt, gt, labelled, np.zeros_like(labelled), normaliser="inter_ocular")
    labelled[0, 45] = True
    labelled[0, 40] = False
    with pytest.raises(MetricsInputError, match=r"image index 0.*inter_pupil"):
        metrics.normaliser_distance(gt, labelled, "inter_pupil")
    with pytest.raises(MetricsInputError, match="unknown normaliser"):
        metrics.normaliser_distance(gt, labelled, "interocular")


def test_landmark_metrics_require_a_named_normaliser_and_clean_inputs() -> None:
    gt = hand_face()[None]
    labelled = np.ones((1, 68), bool)
    with pytest.raises(TypeError):
        metrics.landmark_metrics(gt, gt, labelled, ~labelled)  # type: ignore[call-arg]
    pred = gt.copy()
    pred[0, 7, 0] = np.nan
    with pytest.raises(MetricsInputError, match="pred.*image index 0, landmark 7"):
        metrics.landmark_metrics(pred, gt, labelled, ~labelled, normaliser="box")
    with pytest.raises(MetricsInputError, match="shape"):
        metrics.landmark_metrics(gt[:, :60], gt[:, :60], labelled, ~labelled, normaliser="box")


def test_ced_closed_forms() -> None:
    threshold = 0.08
    uniform = (np.arange(2000) + 0.5) / 2000 * threshold  # errors uniform on [0, T]
    curve = metrics.ced_curve(uniform, threshold)
    assert curve.auc == pytest.approx(0.5, abs=2e-3)
    assert curve.failure_rate == 0.0
    assert metrics.ced_curve(np.zeros(10), threshold).auc == pytest.approx(1.0)
    all_fail = metrics.ced_curve(np.full(10, 0.5), threshold)
    assert all_fail.auc == 0.0 and all_fail.failure_rate == 1.0
    # Errors uniform on [0, 2T]: half fail, CED(x) = x / 2T, AUC = 1/4.
    wide = (np.arange(2000) + 0.5) / 2000 * 2 * threshold
    curve = metrics.ced_curve(wide, threshold)
    assert curve.auc == pytest.approx(0.25, abs=2e-3)
    assert curve.failure_rate == pytest.approx(0.5)


def test_ced_auc_matches_exact_area_of_the_step_function() -> None:
    errors = np.random.default_rng(3).gamma(2.0, 0.03, size=300)
    for threshold in (0.08, 0.10):
        exact = np.mean(np.maximum(threshold - errors, 0.0)) / threshold
        assert metrics.ced_curve(errors, threshold).auc == pytest.approx(exact, abs=2e-3)


def random_occlusion_data(seed: int = 0, n: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    occluded = rng.random((n, 68)) < 0.25
    prob = np.clip(0.35 * occluded + rng.random((n, 68)) * 0.65, 0, 1)
    labelled = rng.random((n, 68)) > 0.1
    return prob, occluded, labelled


def test_occlusion_metrics_equal_sklearn_on_labelled_pairs_only() -> None:
    prob, occluded, labelled = random_occlusion_data()
    corrupted = prob.copy()
    corrupted[~labelled] = np.nan  # unlabelled entries must never be read
    result = metrics.occlusion_metrics(corrupted, occluded, labelled, threshold=0.5)
    y, p = occluded[labelled], prob[labelled]
    assert result["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert result["average_precision"] == pytest.approx(average_precision_score(y, p))
    assert result["f1"] == pytest.approx(f1_score(y, p >= 0.5))
    assert result["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))
    assert result["n_points"] == labelled.sum()
    assert result["class_prior_occluded"] == pytest.approx(y.mean())
    assert result["tp"] + result["fp"] + result["tn"] + result["fn"] == labelled.sum()
    # The labelled mask matters: using every pair gives a different AUC.
    assert roc_auc_score(occluded.ravel(), prob.ravel()) != pytest.approx(result["roc_auc"], abs=1e-12)


def test_class_prior_and_majority_baseline_hand_case() -> None:
    occluded = np.zeros((1, 68), bool)
    occluded[0, :17] = True                       # 17 of 68 occluded: prior 0.25
    prob = np.zeros((1, 68))                      # "everything visible"
    result = metrics.occlusion_metrics(prob, occluded, np.ones((1, 68), bool))
    assert result["class_prior_occluded"] == pytest.approx(0.25)
    assert result["majority_class_accuracy"] == pytest.approx(0.75)
    assert result["accuracy"] == pytest.approx(0.75)  # the trivial model scores the majority rate
    assert result["balanced_accuracy"] == pytest.approx(0.5)
    assert result["recall"] == 0.0 and result["f1"] == 0.0
    assert result["roc_auc"] == pytest.approx(0.5)    # constant scores rank nothing


def test_single_class_gives_nan_auc_not_a_crash() -> None:
    result = metrics.occlusion_metrics(np.full((2, 68), 0.2), np.zeros((2, 68), bool), np.ones((2, 68), bool))
    assert np.isnan(result["roc_auc"]) and np.isnan(result["average_precision"])
    assert result["accuracy"] == 1.0


def test_occlusion_probability_out_of_range_is_an_error() -> None:
    prob = np.full((2, 68), 0.3)
    prob[1, 4] = 1.2
    with pytest.raises(MetricsInputError, match="image index 1, landmark 4"):
        metrics.occlusion_metrics(prob, np.zeros((2, 68), bool), np.ones((2, 68), bool))


def test_ece_and_reliability_hand_case() -> None:
    prob = np.array([0.05, 0.05, 0.95, 0.95, 0.65, 0.65])
    positive = np.array([0, 0, 1, 1, 1, 0], bool)
    # Bins: 0.05 -> |0 - 0.05|, 0.95 -> |1 - 0.95|, 0.65 -> |0.5 - 0.65|; each holds 2 of 6.
    assert metrics.expected_calibration_error(prob, positive, 10) == pytest.approx((0.05 + 0.05 + 0.15) / 3)
    table = metrics.reliability_table(prob, positive, 10)
    assert table["count"].tolist() == [2, 0, 0, 0, 0, 0, 2, 0, 0, 2]
    assert table.loc[6, "frac_positive"] == pytest.approx(0.5)
    assert table.loc[9, "mean_prob"] == pytest.approx(0.95)
    assert np.isnan(table.loc[3, "mean_prob"])
    # Probability exactly 1.0 falls in the last bin; perfectly calibrated 0/1 gives ECE 0.
    assert metrics.expected_calibration_error(np.array([0.0, 1.0]), np.array([False, True])) == 0.0


def test_breakdown_by_group_matches_direct_subsets() -> None:
    rng = np.random.default_rng(1)
    gt = np.stack([hand_face() + rng.normal(0, 1, (68, 2)) for _ in range(6)])
    pred = gt + rng.normal(0, 2, gt.shape)
    labelled = np.ones((6, 68), bool)
    occluded = rng.random((6, 68)) < 0.3
    prob = rng.random((6, 68))
    groups = ["none", "glasses", "none", "mask", "glasses", "none"]
    by_group = metrics.landmark_metrics_by_group(
        pred, gt, labelled, occluded, groups, normaliser="inter_ocular", group_name="occluder"
    )
    assert by_group["occluder"].tolist() == ["glasses", "mask", "none"]
    none = np.array(groups) == "none"
    direct = metrics.landmark_metrics(pred[none], gt[none], labelled[none], occluded[none], normaliser="inter_ocular")
    row = by_group.set_index("occluder").loc["none"]
    assert row["n_images"] == 3
    assert row["nme_mean"] == pytest.approx(direct["nme_mean"])
    assert row["normaliser"] == "inter_ocular"
    occ = metrics.occlusion_metrics_by_group(prob, occluded, labelled, groups)
    glasses = np.array(groups) == "glasses"
    expected_auc = roc_auc_score(occluded[glasses].ravel(), prob[glasses].ravel())
    assert occ.set_index("group").loc["glasses", "roc_auc"] == pytest.approx(expected_auc)


def test_yaw_bins_and_occluder_group_labels() -> None:
    bins = metrics.yaw_bins(np.array([-5.0, 20.0, 44.9, 45.0, -80.0, 15.0]))
    assert list(bins) == ["0-15", "15-30", "30-45", "45-60", "60+", "15-30"]
    assert list(bins.categories) == ["0-15", "15-30", "30-45", "45-60", "60+"]
    assert records.occluder_group([]) == "none"
    assert records.occluder_group(["mask", "glasses", "mask"]) == "glasses+mask"
    collapsed = records.single_occluder_groups(["none", "glasses", "glasses+mask", "hand+hat+scarf"])
    assert collapsed.tolist() == ["none", "glasses", "several", "several"]
    # Categorical groups keep their bin order in breakdown tables.
    gt = np.stack([hand_face()] * 6)
    table = metrics.landmark_metrics_by_group(
        gt, gt, np.ones((6, 68), bool), np.zeros((6, 68), bool), bins, normaliser="box"
    )
    assert table["group"].tolist() == ["0-15", "15-30", "30-45", "45-60", "60+"]
    assert table["n_images"].tolist() == [1, 2, 1, 1, 1]


def test_per_image_table_feeds_paired_tests() -> None:
    rng = np.random.default_rng(2)
    gt = np.stack([hand_face() + rng.normal(0, 1, (68, 2)) for _ in range(4)])
    pred = gt + rng.normal(0, 1.5, gt.shape)
    labelled = np.ones((4, 68), bool)
    occluded = rng.random((4, 68)) < 0.3
    prob = rng.random((4, 68))
    table = metrics.per_image_table(
        pred, gt, labelled, occluded, prob, image_ids=list("abcd"), subjects=["1", "1", "2", "2"]
    )
    for name in metrics.NORMALISERS:
        expected = metrics.landmark_metrics(pred, gt, labelled, occluded, normaliser=name)["per_image_nme"]
        np.testing.assert_allclose(table[f"nme_{name}"], expected)
    correct = (prob >= 0.5) == occluded
    assert table["occ_correct"].tolist() == correct.sum(axis=1).tolist()
    assert table["occ_accuracy"].tolist() == pytest.approx((correct.sum(axis=1) / 68).tolist())
    assert list(table["subject"]) == ["1", "1", "2", "2"]


def test_pose_mae_on_known_euler_angles() -> None:
    gt = np.stack([rotation_from_euler(10, 20, 5), rotation_from_euler(-30, 0, 10)])
    pred = np.stack([rotation_from_euler(15, 18, 5), rotation_from_euler(-30, 0, 4)])
    result = metrics.pose_metrics(pred, gt)
    np.testing.assert_allclose(result["per_image_abs_euler"], [[5, 2, 0], [0, 0, 6]], atol=1e-9)
    assert result["mae_yaw"] == pytest.approx(2.5)
    assert result["mae_pitch"] == pytest.approx(1.0)
    assert result["mae_roll"] == pytest.approx(3.0)
    # Image 2 differs only in roll, the innermost rotation: geodesic = 6 degrees exactly.
    assert result["per_image_geodesic"][1] == pytest.approx(6.0)


def test_yaw_error_wraps_around_180() -> None:
    result = metrics.pose_metrics(rotation_from_euler(179, 0, 0)[None], rotation_from_euler(-179, 0, 0)[None])
    assert result["mae_yaw"] == pytest.approx(2.0)
    assert result["geodesic_mean"] == pytest.approx(2.0)


@pytest.mark.parametrize("angle", [1e-4, 0.5, 30.0, 90.0, 179.0])
def test_geodesic_error_of_a_known_extra_rotation(angle: float) -> None:
    base = rotation_from_euler(25, -15, 8)
    axis = np.array([1.0, 2.0, 2.0]) / 3.0  # unit axis
    theta = np.deg2rad(angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    extra = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k  # Rodrigues
    error = metrics.geodesic_error_deg((extra @ base)[None], base[None])
    assert error[0] == pytest.approx(angle, rel=1e-9, abs=1e-9)


def test_pose_rejects_non_rotations() -> None:
    bad = np.stack([np.eye(3), np.diag([1.0, 1.0, -1.0])])  # a reflection
    with pytest.raises(MetricsInputError, match="index 1 is not a rotation"):
        metrics.pose_metrics(bad, np.stack([np.eye(3)] * 2))


def test_scalar_summary_is_a_table_row() -> None:
    gt = np.stack([hand_face()] * 2)
    result = metrics.landmark_metrics(gt + 1.0, gt, np.ones((2, 68), bool), np.zeros((2, 68), bool), normaliser="box")
    row = metrics.scalar_summary(result)
    assert "per_image_nme" not in row and "ced" not in row
    assert set(row) >= {"normaliser", "nme_mean", "auc@0.08", "failure_rate@0.10"}
    assert isinstance(pd.DataFrame([row]), pd.DataFrame)


def test_progress_nme_is_the_mean_per_image_nme_and_lenient_where_that_raises():
    rng = np.random.default_rng(3)
    gt = rng.uniform(10, 90, (5, 68, 2))
    pred = gt + rng.normal(0, 2, gt.shape)
    labelled = rng.random((5, 68)) > 0.1
    labelled[:, list(metrics.OUTER_EYE_CORNERS)] = True
    assert metrics.progress_nme(pred, gt, labelled) == pytest.approx(metrics.per_image_nme(pred, gt, labelled, "inter_ocular").mean())
    # An unlabelled eye corner makes per_image_nme raise; the progress figure leaves that image out.
    labelled[0, metrics.OUTER_EYE_CORNERS[0]] = False
    with pytest.raises(MetricsInputError):
        metrics.per_image_nme(pred, gt, labelled, "inter_ocular")
    assert metrics.progress_nme(pred, gt, labelled) == pytest.approx(
        metrics.per_image_nme(pred[1:], gt[1:], labelled[1:], "inter_ocular").mean())
    # A diverged prediction is reported as NaN, not as an error; nothing usable gives NaN.
    pred[2, 5] = np.nan
    labelled[2, 5] = True
    assert np.isnan(metrics.progress_nme(pred, gt, labelled))
    assert np.isnan(metrics.progress_nme(gt, gt, np.zeros((5, 68), dtype=bool)))
