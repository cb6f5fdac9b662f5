"""The sentences of the notebooks' "What this shows" cells (m3mstl.report.findings) and the table
display (m3mstl.report.tables.display_table): fixed inputs, exact sentences. What is checked above
all is the honesty of the wording: an interval including zero resolves nothing, one excluding it
names the model ahead in the metric's own direction, and numbers without an interval claim nothing."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from m3mstl import paths
from m3mstl.evaluation import stats
from m3mstl.report import column_label, display_table, findings, markdown_table

SEEDS_AND_SUBJECTS = {"confidence": 0.95, "variance": "training seeds and test subjects"}


def interval(estimate, low, high, **extra):
    return {"estimate": estimate, "low": low, "high": high, **SEEDS_AND_SUBJECTS, **extra}


# --------------------------------------------------------------------------- numbers


def test_numbers_print_as_the_tables_print_them():
    assert findings.number(0.95999) == "0.960"
    assert findings.number(800) == "800"
    assert findings.number(-0.0001) == "0.000"  # no sign that suggests a difference rounding removed
    assert findings.number(0.0071, signed=True) == "+0.007"
    assert findings.number(-0.0104, signed=True) == "-0.010"
    assert findings.number(0.0, signed=True) == "0.000"
    assert findings.number(None) == findings.number(float("nan")) == "–"
    assert findings.share(0.3284) == "32.8 %"
    assert findings.p_text(1.7e-25) == "p < 0.001" and findings.p_text(0.0321) == "p = 0.032"


def test_metric_names_and_directions():
    assert findings.metric_key("mean NME (inter_ocular)") == "nme_mean"
    assert findings.metric_key("median NME (inter_ocular)") == "nme_median"
    assert findings.metric_key("occlusion accuracy") == "occlusion_accuracy"
    assert findings.metric_label("roc_auc") == "ROC-AUC"
    assert findings.higher_is_better("roc_auc") and findings.higher_is_better("average_precision")
    assert not findings.higher_is_better("mean NME (inter_ocular)")
    assert not findings.higher_is_better("failure_rate@0.10") and not findings.higher_is_better("val_loss")


def test_an_interval_excluding_zero_prints_its_near_bound_with_enough_decimals():
    assert findings.interval_text(0.0081, 0.0002, 0.0229) == "+0.0081 [+0.0002, +0.0229]"
    # A bound that rounds to zero shows which side of zero it lies on (issue 31: "[+0.000, +0.008]" hid -0.0001).
    assert findings.interval_text(0.0037, -0.0001, 0.0076) == "+0.0037 [-0.0001, +0.0076]"
    assert findings.interval_text(0.004, 0.0, 0.008) == "+0.004 [0.000, +0.008]"  # a true zero stays
    assert findings.interval_text(0.0003, -0.0004, 0.0004) == "+0.0003 [-0.0004, +0.0004]"  # not "[0.000, 0.000]"


# --------------------------------------------------------------------------- differences


def test_comparison_with_an_interval_that_includes_zero_resolves_nothing():
    sentence = findings.describe_comparison("roc_auc", "M3MSTL", 0.958, "the baseline", 0.960,
                                            interval=interval(-0.002, -0.0104, 0.0071), n_seeds=3)
    assert sentence == ("M3MSTL's ROC-AUC is 0.958 against the baseline's 0.960 (mean of 3 seeds); the difference, "
                        "-0.002 [-0.010, +0.007] (95 %, training seeds and test subjects), includes zero: "
                        "no difference resolved.")


def test_comparison_names_the_model_ahead_in_the_metrics_direction():
    higher_auc = findings.describe_comparison("roc_auc", "M3MSTL", 0.985, "the baseline", 0.960,
                                              interval=interval(0.025, 0.015, 0.036), n_seeds=3)
    assert higher_auc.endswith("excludes zero: M3MSTL is ahead (higher ROC-AUC).")
    lower_auc = findings.describe_comparison("roc_auc", "M3MSTL", 0.950, "the baseline", 0.960,
                                             interval=interval(-0.010, -0.018, -0.002), n_seeds=3)
    assert lower_auc.endswith("excludes zero: the baseline is ahead (higher ROC-AUC).")
    # NME: a positive difference (M3MSTL's error larger) puts the baseline ahead
    higher_nme = findings.describe_difference(
        "mean NME (inter_ocular)",
        {"estimate": 0.0148, "low": 0.0124, "high": 0.0173, "confidence": 0.95,
         "variance": "test subjects only (one training seed: seed variance not included)"})
    assert higher_nme == ("The difference in mean NME (M3MSTL minus the baseline), +0.015 [+0.012, +0.017] (95 %, "
                          "test subjects only; one training seed: seed variance not included), excludes zero: "
                          "the baseline is ahead (lower mean NME).")
    lower_nme = findings.describe_difference("nme_median", interval(-0.004, -0.007, -0.001))
    assert lower_nme.endswith("excludes zero: M3MSTL is ahead (lower median NME).")
    # resolved but smaller than the printed precision: said so, not a plain win
    tiny = findings.describe_difference("nme_mean", interval(-0.000005, -0.0000052, -0.0000048), a="heatmaps",
                                        b="full M3MSTL")
    assert tiny == ("The difference in mean NME (heatmaps minus full M3MSTL), -0.000005 [-0.000005, -0.000005] (95 %, "
                    "training seeds and test subjects), excludes zero: heatmaps is ahead (lower mean NME), by less "
                    "than 0.001.")


def test_the_stats_interval_objects_are_read_as_they_are():
    seed_aware = stats.SeedAwareInterval(
        metric="roc_auc", estimate=-0.0016, low=-0.0098, high=0.0066, standard_error=0.0039, df=21.0,
        confidence=0.95, n_seeds=3, n_subjects=20, seed_sd=0.002, subject_se=0.0037,
        variance=stats.SEEDS_AND_SUBJECTS, method="t")
    assert findings.describe_difference(seed_aware.metric, seed_aware) == (
        "The difference in ROC-AUC (M3MSTL minus the baseline), -0.002 [-0.010, +0.007] (95 %, training seeds and "
        "test subjects), includes zero: no difference resolved.")


def test_a_comparison_without_an_interval_claims_nothing():
    sentence = findings.describe_comparison("nme_median", "M3MSTL", 0.087, "the baseline", 0.083, n_seeds=3,
                                            a_sd=0.0021, b_sd=0.0012, see="notebook 08 gives its interval")
    assert sentence == ("M3MSTL's median NME is 0.087 ± 0.002 against the baseline's 0.083 ± 0.001 (mean ± sd over "
                        "3 seeds): a gap of +0.004 with no interval here, so it does not say which is ahead "
                        "(notebook 08 gives its interval).")
    same = findings.describe_comparison("roc_auc", "the hourglass", 0.9601, "M3MSTL", 0.9598, n_seeds=(1, 3))
    assert same == ("The hourglass's ROC-AUC is 0.960 against M3MSTL's 0.960 (the hourglass: one training seed; "
                    "M3MSTL: mean of 3 seeds): the same to 3 decimals.")


def test_several_metrics_of_one_variant_in_one_sentence():
    sentence = findings.describe_differences(
        "no stage 1", "full M3MSTL",
        [("roc_auc", {"estimate": -0.0069, "low": -0.0156, "high": 0.0018}),
         ("nme_mean", {"estimate": 0.0251, "low": 0.0177, "high": 0.0325}),
         ("nme_median", {"estimate": None, "low": None, "high": None})],
        variance="training seeds and test subjects", n_seeds=3)
    assert sentence == ("No stage 1 minus full M3MSTL (95 %, training seeds and test subjects; 3 seeds): ROC-AUC "
                        "-0.007 [-0.016, +0.002], includes zero: no difference resolved; mean NME +0.025 "
                        "[+0.018, +0.033], excludes zero: full M3MSTL is ahead (lower mean NME); median NME has "
                        "no interval.")


def test_ablation_table_sentences_count_resolved_variants_and_warn_about_one_seed():
    table = pd.DataFrame([
        {"variant": "no temperature", "roc_auc_diff": -0.03, "roc_auc_low": -0.05, "roc_auc_high": -0.01,
         "nme_mean_diff": 0.001, "nme_mean_low": -0.004, "nme_mean_high": 0.006, "n_seeds": 1,
         "variance": stats.SUBJECTS_ONLY},
        {"variant": "no stage 2", "roc_auc_diff": 0.002, "roc_auc_low": -0.004, "roc_auc_high": 0.008,
         "nme_mean_diff": -0.001, "nme_mean_low": -0.005, "nme_mean_high": 0.003, "n_seeds": 1,
         "variance": stats.SUBJECTS_ONLY},
    ])
    sentences = findings.describe_ablations(table, "full M3MSTL")
    assert sentences == [
        '"no temperature" minus full M3MSTL (95 %, test subjects only; one training seed: seed variance not included; '
        "1 seed): ROC-AUC -0.030 [-0.050, -0.010], excludes zero: full M3MSTL is ahead (higher ROC-AUC); mean NME "
        "+0.001 [-0.004, +0.006], includes zero: no difference resolved.",
        '"no stage 2" minus full M3MSTL (95 %, test subjects only; one training seed: seed variance not included; '
        "1 seed): ROC-AUC +0.002 [-0.004, +0.008], includes zero: no difference resolved; mean NME -0.001 "
        "[-0.005, +0.003], includes zero: no difference resolved.",
        "1 of 2 variants differ from full M3MSTL by an interval that excludes zero in at least one of ROC-AUC and "
        "mean NME; the others are not resolved from it on this test split.",
        "With one training seed per row these intervals leave out seed variance, which can exceed them: read them "
        "as where to look, not as findings.",
    ]
    assert findings.describe_ablations(table.iloc[:0], "full hourglass") == [
        "No variant besides full hourglass was trained in this profile: nothing to compare."]


def test_tally_counts_points_in_the_metrics_direction():
    # a - b directions: +1 above zero, -1 below, 0 includes zero; for NME above zero puts b ahead
    assert findings.tally([1, 0, 0, -1], metric="nme_median", a="M3MSTL", b="the baseline", what="points") == (
        "Median NME: M3MSTL is ahead in 1 of 4 points, the baseline in 1 of 4 points; 2 of 4 resolve no difference.")
    assert findings.tally([1, 1, 0], metric="roc_auc", a="M3MSTL", b="the baseline", what="points") == (
        "ROC-AUC: M3MSTL is ahead in 2 of 3 points, the baseline in none; 1 of 3 resolve no difference.")


def test_seed_effect_sentence():
    one = [interval(0.015, 0.012, 0.017), interval(-0.005, -0.017, 0.014)]
    over = [interval(0.008, -0.007, 0.023), interval(-0.007, -0.020, 0.007), interval(-0.002, -0.010, 0.007)]
    assert findings.describe_seed_effect(one, over, 3) == (
        "With one training seed, 1 of 2 subject-bootstrap intervals exclude zero; over 3 training seeds and the test "
        "subjects, 0 of 3 do: what one seed resolves here, retraining does not confirm.")


# --------------------------------------------------------------------------- tests


def _test(name, estimate, p, p_holm, n, comparison):
    return stats.TestResult(test=name, statistic=1.0, p_value=p, n=n, estimate=estimate, effect_size=0.1,
                            effect_size_name="x", comparison=comparison, p_holm=p_holm)


def test_paired_tests_name_the_model_ahead_only_below_alpha():
    names = {"m3mstl": "M3MSTL", "baseline": "the baseline"}
    context = "one training seed (0): seed variance not included"
    t = _test("paired t-test", 0.0148, 1.8e-25, 3.6e-25, 800, "m3mstl vs baseline: NME (inter_ocular)")
    assert findings.describe_test(t, names=names, context=context) == (
        "Paired t-test (M3MSTL minus the baseline, 800 images): mean per-image NME difference +0.015, "
        "Holm-corrected p < 0.001, below 0.05: the baseline is ahead on these images (one training seed (0): seed "
        "variance not included).")
    mcnemar = _test("exact McNemar", 0.012, 0.004, 0.008, 54400, "m3mstl vs baseline: occlusion correctness")
    assert findings.describe_test(mcnemar, names=names).endswith("below 0.05: M3MSTL is ahead on these landmarks.")
    wilcoxon = _test("Wilcoxon signed-rank", -0.002, 0.2, 0.4, 12, "hourglass vs m3mstl: NME (inter_ocular)")
    assert findings.describe_test(wilcoxon, names={"hourglass": "the hourglass", **names}) == (
        "Wilcoxon signed-rank (the hourglass minus M3MSTL, 12 images): median per-image NME difference -0.002, "
        "Holm-corrected p = 0.400, not below 0.05: no difference resolved.")


# --------------------------------------------------------------------------- curves and runs


def test_curves_say_where_the_best_epoch_is():
    assert findings.describe_curve("validation loss", [8.23, 7.69, 6.84, 6.12, 5.93, 5.91, 5.66]) == (
        "Validation loss fell from 8.230 (epoch 1) to 5.660 (epoch 7) over 7 epochs; its best is the last epoch: "
        "it was still improving when training stopped.")
    assert findings.describe_curve("validation NME", [0.2, 0.15, 0.16, 0.17], epochs=[3, 4, 5, 6]) == (
        "Validation NME fell from 0.200 (epoch 3) to 0.170 (epoch 6) over 4 epochs; its best, 0.150, came at "
        "epoch 4, and the last 2 epochs did not improve on it.")
    assert findings.describe_curve("validation loss", [0.5, 0.6]) == (
        "Validation loss rose from 0.500 (epoch 1) to 0.600 (epoch 2) over 2 epochs; its best, 0.500, is the "
        "first epoch: it never improved on it.")
    assert findings.describe_curve("stage 2's validation loss", [14.133]) == (
        "Stage 2's validation loss after its single epoch (1) is 14.133: one epoch draws no curve.")
    history = [{"stage": "heads", "epoch": 1, "val_loss": 9.0},
               {"stage": "joint", "epoch": 1, "val_loss": 8.2}, {"stage": "joint", "epoch": 2, "val_loss": 7.7}]
    assert findings.describe_history(history).startswith("Validation loss in stage 'joint' fell from 8.200")


ROW = {"model": "m3mstl", "occlusion_accuracy": 0.9019, "class_prior_occluded": 0.3342, "balanced_accuracy": 0.888,
       "roc_auc": 0.9603, "average_precision": 0.9331, "nme_mean": 0.1201, "nme_median": 0.0893, "nme_visible": 0.098,
       "nme_occluded": 0.165, "nme_box_median": 0.056, "failure_rate@0.10": 0.411, "n_images": 800}


def test_a_run_is_described_beside_the_trivial_rule_and_a_landmarks_only_run_says_so():
    assert findings.describe_run("M3MSTL", ROW) == [
        "On the test split (800 images), M3MSTL's occlusion accuracy is 0.902, above the 0.666 that calling every "
        "landmark visible scores (33.4 % of labelled landmarks are occluded, which is also the AP of a random "
        "ranking); its ROC-AUC is 0.960 and its AP 0.933.",
        "M3MSTL's mean NME is 0.120 and its median 0.089 (inter-ocular); 0.098 at visible and 0.165 at occluded "
        "landmarks; 41.1 % of images have an NME above 0.10 (one training seed; no interval from one run).",
    ]
    peer = {**ROW, **{k: None for k in ("occlusion_accuracy", "class_prior_occluded", "balanced_accuracy", "roc_auc",
                                         "average_precision")}}
    equal = findings.describe_run("M3MSTL", {**ROW, "occlusion_accuracy": 0.7414, "class_prior_occluded": 0.2586})
    assert "occlusion accuracy is 0.741, equal to the 0.741 that calling every landmark visible scores" in equal[0]
    assert findings.describe_run("the dlib shape predictor", peer)[0] == (
        "The dlib shape predictor predicts landmarks only: no occlusion numbers.")


def test_extremes_of_a_breakdown_are_neutral_about_better():
    table = pd.DataFrame([{"occluder": "none", "model": "m3mstl", "nme_median": 0.07, "n_images": 300},
                          {"occluder": "glasses", "model": "m3mstl", "nme_median": 0.09},
                          {"occluder": "several", "model": "m3mstl", "nme_median": 0.13},
                          {"occluder": "several", "model": "baseline", "nme_median": 0.5}])
    assert findings.describe_extremes(table, group="occluder", value="nme_median", where={"model": "m3mstl"}) == (
        "Median NME is lowest for no occluder (0.070, 300 images) and highest for several occluders (0.130) among 3 "
        "groups (lower is "
        "better; no interval per group).")


# --------------------------------------------------------------------------- data, measurement, frames


def test_dataset_and_temperature_sentences():
    summary = pd.Series({"images": 60, "subjects": 10, "images_per_subject_min": 6, "images_per_subject_max": 6,
                         "occluded_landmark_share": 0.2838, "images_with_occluders": 37})
    assert findings.describe_dataset(summary, 0) == (
        "The dataset holds 60 images of 10 subjects (6 images per subject); validation found no problems. 28.4 % of "
        "labelled landmarks are occluded, and 37 of 60 images show at least one occluder.")
    regions = pd.DataFrame([
        {"region": "eyes", "state": "occluded", "temperature_c_mean": 28.59, "skin_temperature_c_mean": 34.79},
        {"region": "eyes", "state": "visible", "temperature_c_mean": 33.77, "skin_temperature_c_mean": 34.69},
        {"region": "jaw", "state": "occluded", "temperature_c_mean": 30.96, "skin_temperature_c_mean": 33.69},
        {"region": "jaw", "state": "visible", "temperature_c_mean": 32.46, "skin_temperature_c_mean": 33.57},
    ])
    assert findings.describe_region_temperatures(regions) == [
        "The temperature map reads colder at occluded than at visible landmarks in 2 of 2 regions; the widest gap is "
        "at the eyes: 28.59 °C occluded against 33.77 °C visible, while the skin beneath the occluded ones is "
        "34.79 °C: a reading there measures the occluder, not the face."]


def test_canthus_reading_sentences():
    rows = []
    for method, mae, n_read, naive_same in (("naive", 0.966, 800, 0.966), ("calibrated", 0.217, 482, 0.347)):
        rows.append({"method": method, "occluder_type": "all", "n_images": 800, "n_read": n_read,
                     "abstention_rate": 1 - n_read / 800, "mae_c": mae, "bias_c": -0.958 if method == "naive" else -0.05,
                     "naive_mae_same_images_c": naive_same})
    rows.append({"method": "naive", "occluder_type": "several", "n_images": 40, "n_read": 40, "abstention_rate": 0.0,
                 "mae_c": 3.18, "bias_c": -3.18, "naive_mae_same_images_c": 3.18})
    rows.append({"method": "calibrated", "occluder_type": "glasses", "n_images": 93, "n_read": 0,
                 "abstention_rate": 1.0, "mae_c": float("nan"), "bias_c": float("nan"),
                 "naive_mae_same_images_c": float("nan")})
    assert findings.describe_canthus_readings(pd.DataFrame(rows), lens_abstention=0.99, bare_abstention=0.05) == [
        "Read at the predicted canthi by the naive window maximum at both predicted canthi, the temperature misses the "
        "true skin by 0.966 °C on average over 800 test faces (mean signed error -0.958 °C; negative reads cold).",
        "Skipping canthi the model calls occluded, with the site calibration, it reads 482 of 800 faces (abstains on "
        "39.8 %) with a mean absolute error of 0.217 °C, against 0.347 °C for the naive reading on those same faces "
        "(one trained model; no interval).",
        "The naive reading is furthest off for faces with several occluders: 3.180 °C over 40 faces.",
        "The occlusion-aware reading abstains on 99.0 % of faces behind glasses or sunglasses and on 5.0 % of faces "
        "whose canthi are both bare.",
    ]
    settings = {"window_fraction": 0.3, "calibration_c": 0.2904267248448854, "threshold": 0.2, "combine": "max"}
    assert findings.describe_settings(settings) == "window_fraction 0.3, calibration_c 0.290, threshold 0.2, combine max"
    assert findings.describe_reading_choice(settings) == (
        "The reading chosen without the test split: a window of 0.3 x the outer-eye-corner distance, a site "
        "calibration of +0.290 °C (from the training split), abstention when P(occluded) reaches 0.2 at both canthi, "
        "and the canthi combined by their max.")
    assert findings.describe_reading_choice(None).startswith("No reading was chosen")


def test_scaling_study_sentences():
    study = pd.DataFrame([
        {"input_size": 64, "backbone": "resnet18", "variant": "paper stage-1 radius", "n_seeds": 3,
         "m3mstl_nme_median": 0.091, "baseline_nme_median": 0.083,
         "diff_roc_auc": -0.006, "diff_roc_auc_low": -0.014, "diff_roc_auc_high": 0.002,
         "diff_nme_median": 0.008, "diff_nme_median_low": 0.005, "diff_nme_median_high": 0.010,
         "variance": "training seeds and test subjects"},
        {"input_size": 128, "backbone": "resnet18", "variant": "paper stage-1 radius", "n_seeds": 3,
         "m3mstl_nme_median": 0.105, "baseline_nme_median": 0.095,
         "diff_roc_auc": 0.025, "diff_roc_auc_low": 0.015, "diff_roc_auc_high": 0.036,
         "diff_nme_median": 0.010, "diff_nme_median_low": 0.002, "diff_nme_median_high": 0.019,
         "variance": "training seeds and test subjects"},
    ])
    assert findings.describe_scaling_study(study, peer_nme=0.036) == [
        "At 64 px, resnet18, paper stage-1 radius, M3MSTL minus the baseline (95 %, training seeds and test subjects; "
        "3 seeds): ROC-AUC -0.006 [-0.014, +0.002], includes zero: no difference resolved; median NME +0.008 "
        "[+0.005, +0.010], excludes zero: the baseline is ahead (lower median NME).",
        "At 128 px, resnet18, paper stage-1 radius, M3MSTL minus the baseline (95 %, training seeds and test subjects; "
        "3 seeds): ROC-AUC +0.025 [+0.015, +0.036], excludes zero: M3MSTL is ahead (higher ROC-AUC); median NME "
        "+0.010 [+0.002, +0.019], excludes zero: the baseline is ahead (lower median NME).",
        "ROC-AUC: M3MSTL is ahead in 1 of 2 points, the baseline in none; 1 of 2 resolve no difference.",
        "Median NME: M3MSTL is ahead in none, the baseline in 2 of 2 points; 0 of 2 resolve no difference.",
        "The classical peer's median NME is 0.036 (one run); the lowest deep-model mean on the grid is 0.083 (the "
        "baseline at 64 px, resnet18, paper stage-1 radius), and 0 of 4 deep-model means are below the peer's "
        "(no interval).",
    ]


def test_camera_frame_sentences():
    choice = pd.DataFrame([{"detector": "rules (no training)", "n_seeds": 1, "faces": 800, "recall": 0.9875},
                           {"detector": "trained", "n_seeds": 3, "faces": 800, "recall": 0.99875}])
    test = pd.DataFrame([
        {"detector": "rules (no training)", "breakdown": "all", "n_seeds": 1, "faces": 800, "recall": 0.9775,
         "mean_iou": 0.8249, "false_positives_per_frame": 0.17},
        {"detector": "rules (no training)", "breakdown": "pose", "n_seeds": 1, "faces": 72, "recall": 0.9861,
         "mean_iou": 0.79, "false_positives_per_frame": 0.08}])
    assert findings.describe_detectors(choice, test, "trained") == [
        "Recall at IoU >= 0.5 on the validation frames: rules (no training) 0.988, trained 0.999 "
        "(mean of 3 seeds); the pipeline uses trained (the higher validation recall, then the higher mean IoU).",
        "On 800 test faces, rules (no training) finds 0.978 of them, with mean IoU 0.825 and "
        "0.170 false detections per frame.",
    ]
    boxes = pd.DataFrame([{"training": "head box", "median_nme": 0.1614}, {"training": "jitter", "median_nme": 0.1666},
                          {"training": "detector box", "median_nme": 0.1952}])
    assert findings.describe_choice(boxes, label="training", value="median_nme", chosen="head box",
                                    what="training for head boxes") == (
        "Of 3 candidates for training for head boxes, head box has the lowest median NME: 0.161 (the other 2 "
        "candidates: 0.167-0.195).")
    pipeline = pd.DataFrame([
        {"model": "baseline, head box", "box": "true box", "n_seeds": 3, "median_nme": 0.157, "median_nme_sd": 0.0037,
         "ratio_to_true_box": 1.0},
        {"model": "baseline, head box", "box": "detector box", "n_seeds": 3, "median_nme": 0.1611,
         "median_nme_sd": 0.0022, "ratio_to_true_box": 1.0261}])
    assert findings.describe_pipeline(pipeline) == [
        "Baseline, head box: median NME 0.161 ± 0.002 from the detector's boxes against 0.157 ± 0.004 from the true "
        "box of its kind, 1.03 times as large (mean ± sd over 3 seeds)."]


def test_explorer_and_pose_and_profile_sentences():
    truth = np.zeros(68, bool)
    truth[36:48] = True
    m3 = {"occluders": ["glasses"], "gt_occluded": truth, "pred_occluded": truth.copy(), "threshold": 0.5}
    base_calls = truth.copy()
    base_calls[36:40] = False
    base = {**m3, "pred_occluded": base_calls}
    assert findings.describe_explorer_views({"M3MSTL": m3, "the baseline": base}) == (
        "With glasses: 12 of 68 landmarks are occluded in truth; M3MSTL calls 12 occluded and agrees with the truth "
        "on 68 of 68, the baseline calls 8 occluded and agrees with the truth on 64 of 68 (threshold 0.5 on "
        "P(occluded)).")
    pose = {"geodesic_mean": 9.1128, "geodesic_median": 8.334, "mae_mean": 4.71, "mae_yaw": 5.586, "mae_pitch": 4.933,
            "mae_roll": 3.613, "n_images": 800}
    assert findings.describe_pose(pose) == (
        "Head pose on 800 test images: mean geodesic error 9.11° (median 8.33°); mean absolute error per axis "
        "yaw 5.59°, pitch 4.93°, roll 3.61°.")
    profile = {"profile": "quick", "synthetic images": 60, "input px": 64, "backbone": "resnet18",
               "stage-1 disk floor (px)": "-", "batch": 8, "M3MSTL epochs (stage 1/2/3)": "1/1/1",
               "baseline epochs": 3, "lr": 0.0001, "training seeds (main / ablation)": "2/1"}
    assert findings.describe_profile(profile) == (
        "Profile quick: 60 synthetic images at 64 px, a resnet18 trunk, batch 8; M3MSTL trains 1/1/1 epochs in "
        "stages 1/2/3, the baseline 3 in one stage, at learning rate 1e-04; 2 training seeds per model in the main "
        "comparison and 1 per ablation row.")
    assert findings.describe_paper_results({"m3mstl": {"roc_auc": 0.974}, "baseline": {"nme_mean": 0.382}}) == (
        "The paper reports on TFD68 (its numbers, typed once in comparison.PAPER_RESULTS, not measured here): "
        "m3mstl: ROC-AUC 0.974; baseline: mean NME 0.382.")


# --------------------------------------------------------------------------- display


def test_display_table_is_the_written_markdown_with_readable_names():
    frame = pd.DataFrame([{"model": "m3mstl", "roc_auc": 0.95999, "nme_median_sd": np.nan, "n_images": 800,
                           "diff_roc_auc_low": -0.0104, "val_mae_c": 0.2, "input px": 64}])
    assert markdown_table(frame, {"n_images": 0, "*": 3}, caption="Test | split") == (
        "*Test \\| split*\n\n"
        "| model | ROC-AUC | median NME sd | images | Δ ROC-AUC low | validation MAE °C | input px |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        "| m3mstl | 0.960 | – | 800 | -0.010 | 0.200 | 64 |\n")
    assert markdown_table({"epoch": 1, "lr": 0.0003}, {"lr": ".1e"}) == (
        "| epoch | lr |\n|---:|---:|\n| 1 | 3.0e-04 |\n")
    assert markdown_table(pd.Series({"images": 60, "occluded_landmark_share": 0.28}, dtype=object), 2) == (
        "| quantity | value |\n|---|---|\n| images | 60 |\n| occluded landmark share | 0.28 |\n")
    assert column_label("failure_rate@0.10") == "failure rate @0.10"
    assert column_label("c_only_b_correct") == "c only b correct" and column_label("mae_c") == "MAE °C"
    shown = display_table(frame)
    assert shown.data == markdown_table(frame)
    assert findings.show(["a", "b"]).data == "- a\n- b\n"


# --------------------------------------------------------------------------- the notebooks


NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_ends_with_what_it_shows_written_by_code(path):
    cells = json.loads(path.read_text())["cells"]
    heading, code = cells[-2], cells[-1]
    assert heading["cell_type"] == "markdown" and "".join(heading["source"]).startswith("## What this shows")
    assert code["cell_type"] == "code" and "findings.show(" in "".join(code["source"])


# A result as the text would type it: three or more decimals ("0.246", "0.0002"), a percentage with
# decimals ("91.8 %"), a measured ratio ("2.4-3.7x", "about 6x") or an approximate measurement ("about 0.4 C",
# "about 40 min"). Settings ("lambda = 1.0", "0.75 px") and
# citations (a DOI's "10.3390/") stay.
TYPED_RESULT = re.compile(r"(?<![\w.])\d+\.\d{3,}\b(?!/)|\d+\.\d+\s?%|\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?x as\b"
                          r"|\d\.\d+x\b|about \d+(?:\.\d+)?\s?(?:x|C|°C|K|min|h|s)\b")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_result_number_is_typed_into_a_notebooks_text(path):
    typed = [match for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "markdown"
             for match in TYPED_RESULT.findall("".join(cell["source"]))]
    assert not typed, f"{path.name}: markdown cells type result numbers {typed}; let the findings cell write them"


def test_the_typed_result_pattern_catches_what_the_notebooks_used_to_type():
    for typed in ("occlusion accuracy 91.8 % (baseline 89.7 %)", "mean NME 0.246", "validation IoU 0.0002",
                  "trains 2.4-3.7x as many images", "about 6x their median", "runs about 0.4 C under",
                  "6 more runs, about 40 min"):
        assert TYPED_RESULT.search(typed), typed
    for setting in ("lambda = 1.0", "radius is 0.75 px", "dropout 0.3", "IoU >= 0.5", "4x its epochs", "95 %"):
        assert not TYPED_RESULT.search(setting), setting
