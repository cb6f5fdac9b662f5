"""m3mstl.studies.thermometry on constructed temperature maps where the right reading is known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from m3mstl.studies import thermometry
from m3mstl.core.landmarks import INNER_CANTHI
from m3mstl.studies.thermometry import ThermometryInputError

SKIN_C = 30.0        # background face skin
CANTHUS_C = 35.5     # true inner-canthus temperature, both sides
LENS_C = 27.0        # apparent temperature of an LWIR-opaque lens
RIGHT_PIXEL = (15, 12)   # (row, col) of the hottest pixel at canthus 39
LEFT_PIXEL = (15, 27)    # ... and at canthus 42


def face_map(lens_over: tuple[tuple[int, int], ...] = (), radius: float = 6.0) -> np.ndarray:
    """A 40 x 40 map: skin at 30 C, one hot pixel per canthus, cold lens discs where asked."""
    temperature = np.full((40, 40), SKIN_C)
    temperature[RIGHT_PIXEL] = CANTHUS_C
    temperature[LEFT_PIXEL] = CANTHUS_C
    rows, cols = np.mgrid[0:40, 0:40]
    for row, col in lens_over:
        temperature[(rows - row) ** 2 + (cols - col) ** 2 <= radius**2] = LENS_C
    return temperature


def predicted_landmarks(offset_px: float = 1.0) -> np.ndarray:
    """Predicted canthi a pixel off the hottest pixel (a located point is never exact)."""
    landmarks = np.full((68, 2), 20.0)
    landmarks[INNER_CANTHI[0]] = [RIGHT_PIXEL[1] + 0.5 + offset_px, RIGHT_PIXEL[0] + 0.5]
    landmarks[INNER_CANTHI[1]] = [LEFT_PIXEL[1] + 0.5 - offset_px, LEFT_PIXEL[0] + 0.5 + offset_px]
    return landmarks


def canthus_prob(right: float, left: float) -> np.ndarray:
    prob = np.full(68, 0.05)
    prob[INNER_CANTHI[0]], prob[INNER_CANTHI[1]] = right, left
    return prob


def scenario() -> dict:
    """Three faces: bare; a lens over the right canthus only; sunglasses over both."""
    maps = [face_map(), face_map((RIGHT_PIXEL,)), face_map((RIGHT_PIXEL, LEFT_PIXEL))]
    occluded = np.zeros((3, 68), bool)
    occluded[1, INNER_CANTHI[0]] = True
    occluded[2, list(INNER_CANTHI)] = True
    return {
        "temperature_maps": maps,
        "landmarks": np.stack([predicted_landmarks()] * 3),
        "occlusion_prob": np.stack([canthus_prob(0.1, 0.2), canthus_prob(0.9, 0.1), canthus_prob(0.8, 0.7)]),
        "skin_temperature_c": np.full((3, 68), CANTHUS_C),
        "occluder_types": ["none", "glasses", ["sunglasses"]],
        "image_ids": ["bare", "one_lens", "sunglasses"],
        "occluded": occluded,
    }


def test_window_max_follows_the_continuous_pixel_convention() -> None:
    values = np.arange(100.0).reshape(10, 10)  # value = 10 * row + col
    assert thermometry.window_max(values, (3.99, 7.0), 1) == 73.0   # pixel (row 7, col 3)
    assert thermometry.window_max(values, (4.0, 7.0), 1) == 74.0    # x = 4.0 is already column 4
    assert thermometry.window_max(values, (3.5, 7.5), 3) == 84.0    # rows 6-8, cols 2-4
    assert thermometry.window_max(values, (0.2, 0.2), 5) == 22.0    # clipped at the corner
    assert thermometry.window_max(values, (9.9, 9.9), 3) == 99.0
    assert np.isnan(thermometry.window_max(values, (-5.0, 4.0), 3))  # window entirely off the map
    assert np.isnan(thermometry.window_max(values, (np.nan, 4.0), 3))
    with_nan = values.copy()
    with_nan[7, 3] = np.nan
    assert thermometry.window_max(with_nan, (3.5, 7.5), 1) != thermometry.window_max(with_nan, (3.5, 7.5), 1)
    with pytest.raises(ThermometryInputError, match="odd"):
        thermometry.window_max(values, (3.0, 3.0), 4)


def test_cold_lens_biases_naive_low_and_skip_reads_correctly() -> None:
    case = scenario()
    table = thermometry.read_canthus_temperatures(
        case["temperature_maps"], case["landmarks"], case["occlusion_prob"], case["skin_temperature_c"],
        case["occluder_types"], image_ids=case["image_ids"], window_px=5,
    ).set_index("image_id")
    # Bare face: the window finds the hot pixel one pixel away; both readings are right.
    assert table.loc["bare", "naive_c"] == pytest.approx(CANTHUS_C)
    assert table.loc["bare", "skip_occluded_error_c"] == pytest.approx(0.0)
    # One lens: naive averages the lens into the reading; skipping the occluded canthus does not.
    assert table.loc["one_lens", "right_c"] == pytest.approx(LENS_C)
    assert table.loc["one_lens", "naive_error_c"] == pytest.approx((LENS_C - CANTHUS_C) / 2)
    assert table.loc["one_lens", "skip_occluded_c"] == pytest.approx(CANTHUS_C)
    assert table.loc["one_lens", "skip_occluded_canthi_used"] == 1
    # Sunglasses: naive reads the lenses, 8.5 C cold; the skip rule abstains.
    assert table.loc["sunglasses", "naive_error_c"] == pytest.approx(LENS_C - CANTHUS_C)
    assert bool(table.loc["sunglasses", "skip_occluded_abstained"])
    assert np.isnan(table.loc["sunglasses", "skip_occluded_c"])
    assert table.loc["sunglasses", "occluder_type"] == "sunglasses"
    assert {"threshold": 0.5, "window_px": 5, "combine": "mean"}.items() <= table.attrs["settings"].items()


def test_summary_reports_mae_bias_and_abstentions() -> None:
    case = scenario()
    per_image = thermometry.read_canthus_temperatures(
        case["temperature_maps"], case["landmarks"], case["occlusion_prob"], case["skin_temperature_c"],
        case["occluder_types"], image_ids=case["image_ids"], occluded_gt=case["occluded"],
    )
    summary = thermometry.summarise_readings(per_image).set_index(["method", "occluder_type"])
    naive = summary.loc[("naive", "all")]
    assert naive["mae_c"] == pytest.approx((0.0 + 4.25 + 8.5) / 3)
    assert naive["bias_c"] == pytest.approx(-(4.25 + 8.5) / 3)
    assert naive["n_abstained"] == 0
    skip = summary.loc[("skip_occluded", "all")]
    assert skip["n_read"] == 2 and skip["n_abstained"] == 1
    assert skip["abstention_rate"] == pytest.approx(1 / 3)
    assert skip["mae_c"] == pytest.approx(0.0)
    assert skip["naive_mae_same_images_c"] == pytest.approx(4.25 / 2)  # fair comparison set
    assert summary.loc[("skip_occluded", "glasses"), "mae_c"] == pytest.approx(0.0)
    assert summary.loc[("naive", "glasses"), "bias_c"] == pytest.approx(-4.25)
    assert summary.loc[("skip_occluded", "sunglasses"), "abstention_rate"] == 1.0
    assert np.isnan(summary.loc[("skip_occluded", "sunglasses"), "mae_c"])
    # The oracle uses the true occlusion labels; here the model's calls agree with them.
    assert summary.loc[("oracle", "all"), "n_abstained"] == 1
    assert list(summary.index.get_level_values("occluder_type")[:4]) == ["all", "glasses", "none", "sunglasses"]
    assert summary.attrs["settings"]["window_px"] == 5


def test_missed_occlusion_shows_up_as_error() -> None:
    """A model that calls the lens-covered canthus visible gets the naive error back."""
    case = scenario()
    prob = case["occlusion_prob"].copy()
    prob[1] = canthus_prob(0.3, 0.1)  # misses the lens on image 1
    table = thermometry.read_canthus_temperatures(
        case["temperature_maps"], case["landmarks"], prob, case["skin_temperature_c"],
        case["occluder_types"], occluded_gt=case["occluded"],
    )
    assert table.loc[1, "skip_occluded_error_c"] == pytest.approx(table.loc[1, "naive_error_c"])
    assert table.loc[1, "oracle_error_c"] == pytest.approx(0.0)


def test_max_rule_and_asymmetric_truth() -> None:
    case = scenario()
    skin = np.full((3, 68), 33.0)
    skin[:, INNER_CANTHI[0]] = 35.5
    skin[:, INNER_CANTHI[1]] = 35.1
    maps = [face_map((RIGHT_PIXEL,))]
    maps[0][LEFT_PIXEL] = 35.1
    table = thermometry.read_canthus_temperatures(
        maps, case["landmarks"][:1], case["occlusion_prob"][1:2], skin[:1], ["glasses"], combine="max"
    )
    # Truth is canthiMax = 35.5; the lens hides the right canthus, so both rules read the left one.
    assert table.loc[0, "true_c"] == pytest.approx(35.5)
    assert table.loc[0, "naive_c"] == pytest.approx(35.1)
    assert table.loc[0, "skip_occluded_error_c"] == pytest.approx(-0.4)
    mean_rule = thermometry.read_canthus_temperatures(
        maps, case["landmarks"][:1], case["occlusion_prob"][1:2], skin[:1], ["glasses"]
    )
    assert mean_rule.loc[0, "true_c"] == pytest.approx(35.3)
    assert mean_rule.loc[0, "skip_occluded_error_c"] == pytest.approx(-0.2)


def test_prediction_off_the_map_is_unreadable_not_a_crash() -> None:
    case = scenario()
    landmarks = case["landmarks"][:1].copy()
    landmarks[0, INNER_CANTHI[0]] = [-50.0, -50.0]
    table = thermometry.read_canthus_temperatures(
        case["temperature_maps"][:1], landmarks, case["occlusion_prob"][:1], case["skin_temperature_c"][:1], ["none"]
    )
    assert np.isnan(table.loc[0, "right_c"])
    assert table.loc[0, "naive_c"] == pytest.approx(CANTHUS_C)  # falls back to the readable canthus
    assert table.loc[0, "naive_canthi_used"] == 1


def test_bad_inputs_name_the_image() -> None:
    case = scenario()
    prob = case["occlusion_prob"].copy()
    prob[2, INNER_CANTHI[1]] = 1.5
    with pytest.raises(ThermometryInputError, match="'sunglasses' \\(index 2\\)"):
        thermometry.read_canthus_temperatures(
            case["temperature_maps"], case["landmarks"], prob, case["skin_temperature_c"],
            case["occluder_types"], image_ids=case["image_ids"],
        )
    with pytest.raises(ThermometryInputError, match="landmarks must have shape"):
        thermometry.read_canthus_temperatures(
            case["temperature_maps"], case["landmarks"][:2], case["occlusion_prob"], case["skin_temperature_c"],
            case["occluder_types"],
        )
    maps = list(case["temperature_maps"])
    maps[1] = maps[1][None]
    with pytest.raises(ThermometryInputError, match="index 1.*2-D"):
        thermometry.read_canthus_temperatures(
            maps, case["landmarks"], case["occlusion_prob"], case["skin_temperature_c"], case["occluder_types"]
        )
    with pytest.raises(ThermometryInputError, match="combine"):
        thermometry.read_canthus_temperatures(
            case["temperature_maps"], case["landmarks"], case["occlusion_prob"], case["skin_temperature_c"],
            case["occluder_types"], combine="median",
        )


def test_summary_needs_reading_columns() -> None:
    with pytest.raises(ThermometryInputError):
        thermometry.summarise_readings(pd.DataFrame({"occluder_type": ["none"]}))


def test_end_to_end_on_a_dataset_read_from_disk(tiny_dataset) -> None:
    """Maps written and read back by the data layer (tests/conftest.py: canthus discs at 35.6 C,
    opaque lenses at ambient + 4 C over the eyes of every second image), read at the true landmarks."""
    from conftest import CANTHUS_C
    from m3mstl.data.coco import load_temperature

    records = tiny_dataset.records
    occluded = np.stack([r.occluded for r in records])
    table = thermometry.read_canthus_temperatures(
        [load_temperature(r) for r in records],
        np.stack([r.landmarks for r in records]),
        np.where(occluded, 0.95, 0.05),                      # a model that gets occlusion right
        np.full((len(records), 68), CANTHUS_C),
        [[o["type"] for o in r.extras.get("occluders", [])] for r in records],
        image_ids=[r.image_id for r in records],
        window_px=3,
    )
    bare = table[table["occluder_type"] == "none"]
    glasses = table[table["occluder_type"] == "glasses"]
    assert len(bare) == 3 and len(glasses) == 3
    np.testing.assert_allclose(bare["naive_error_c"], 0.0, atol=1e-4)     # float32 maps
    np.testing.assert_allclose(bare["skip_occluded_error_c"], 0.0, atol=1e-4)
    ambient = np.array([r.extras["ambient_c"] for r in records if r.extras.get("occluders")])
    np.testing.assert_allclose(glasses["naive_c"], ambient + 4.0, atol=1e-4)  # the lens, not the skin
    assert (glasses["naive_error_c"] < -5.0).all()
    assert glasses["skip_occluded_abstained"].all()
    summary = thermometry.summarise_readings(table).set_index(["method", "occluder_type"])
    assert summary.loc[("skip_occluded", "all"), "abstention_rate"] == pytest.approx(0.5)


def test_face_scaled_window_single_pixel_truth_override_and_offset():
    from m3mstl.studies.thermometry import face_scaled_window, landmark_error_study, read_canthus_temperatures

    landmarks = np.zeros((1, 68, 2))
    landmarks[0, 36], landmarks[0, 45] = (10.0, 20.0), (50.0, 20.0)      # outer eye corners 40 px apart
    landmarks[0, 39], landmarks[0, 42] = (20.5, 20.5), (40.5, 20.5)
    assert face_scaled_window(landmarks[0], 0.1) == 5 and face_scaled_window(landmarks[0], 0.2) % 2 == 1
    temperature = np.full((40, 60), 30.0)
    temperature[21, 21] = 36.0          # a hot pixel one pixel off the right canthus
    temperature[20, 40] = 35.0          # the left canthus pixel itself
    skin = np.zeros((1, 68))
    table = read_canthus_temperatures([temperature + 0.5], landmarks, np.zeros((1, 68)), skin, ["none"],
                                      window_fraction=0.1, canthus_truth_c=np.array([[36.0, 35.0]]),
                                      offset_c=np.array([0.5]), combine="max")
    row = table.iloc[0]
    assert row["true_c"] == 36.0 and row["window_px"] == 5
    assert row["naive_c"] == pytest.approx(36.0) and row["naive_error_c"] == pytest.approx(0.0)
    assert row["single_pixel_c"] == pytest.approx(35.0)    # the pixels under the points miss the hot one
    study = landmark_error_study([temperature], landmarks, np.zeros((1, 68), bool), np.array([[36.0, 35.0]]),
                                 ["none"], noise_fractions=(0.0, 0.05), window_fraction=0.1)
    assert set(study["noise_fraction"]) == {0.0, 0.05} and "oracle" not in set(study["method"])


def test_practice_options_need_the_canthus_reference():
    from types import SimpleNamespace

    from m3mstl.studies.thermometry import practice_options

    plain = SimpleNamespace(extras={"skin_temperature_c": [0.0] * 68})
    assert practice_options([plain]) == {}
    full = SimpleNamespace(extras={"canthus_skin_max_c": [35.0, 35.2], "camera": {"offset_error_c": -0.4}})
    options = practice_options([full, full])
    assert options["canthus_truth_c"].shape == (2, 2) and options["offset_c"].tolist() == [-0.4, -0.4]
    assert options["window_fraction"] > 0


def test_site_calibration_removes_a_known_cold_bias_and_is_what_the_calibrated_method_adds():
    # Readings 0.4 C cold on one canthus, 0.2 C cold on the other: combined by max the reading is
    # the warmer canthus, and the calibration is the mean gap to the (max) truth.
    truth = np.array([[35.0, 35.5], [36.0, 35.0], [34.0, 34.2]])
    readings = truth - np.array([0.4, 0.2])
    assert thermometry.fit_calibration(readings, truth, "max") == pytest.approx(
        np.mean(truth.max(1) - readings.max(1)))
    assert thermometry.fit_calibration(readings, truth, "mean") == pytest.approx(0.3)
    with_nan = np.vstack([readings, [np.nan, np.nan]])
    assert thermometry.fit_calibration(with_nan, np.vstack([truth, [35.0, 35.0]]), "mean") == pytest.approx(0.3)
    with pytest.raises(ThermometryInputError):
        thermometry.fit_calibration(readings[:, :1], truth[:, :1])
    with pytest.raises(ThermometryInputError, match="no face"):
        thermometry.fit_calibration(np.full((2, 2), np.nan), np.ones((2, 2)))

    # A map that reads 0.6 C cold everywhere: the calibrated reading is right, skip_occluded is not,
    # and an abstaining face stays abstained (no calibration turns no reading into one).
    case = scenario()
    maps = [m - 0.6 for m in case["temperature_maps"]]
    table = thermometry.read_canthus_temperatures(
        maps, case["landmarks"], case["occlusion_prob"], case["skin_temperature_c"], case["occluder_types"],
        image_ids=case["image_ids"], window_px=5, calibration_c=0.6).set_index("image_id")
    assert table.loc["bare", "skip_occluded_error_c"] == pytest.approx(-0.6)
    assert table.loc["bare", "calibrated_error_c"] == pytest.approx(0.0)
    assert table.loc["one_lens", "calibrated_c"] == pytest.approx(CANTHUS_C)
    assert bool(table.loc["sunglasses", "calibrated_abstained"])
    assert table.attrs["settings"]["calibration_c"] == 0.6
    summary = thermometry.summarise_readings(table.reset_index())
    assert "calibrated" in set(summary["method"])
    plain = thermometry.read_canthus_temperatures(
        maps, case["landmarks"], case["occlusion_prob"], case["skin_temperature_c"], case["occluder_types"])
    assert "calibrated_c" not in plain.columns


def test_threshold_choice_trades_lens_abstention_against_bare_faces():
    # Lens faces: both canthi at 0.9 and 0.35; bare faces: 0.02 and one at 0.4 on both canthi.
    prob = np.array([[0.9, 0.95], [0.35, 0.4], [0.02, 0.03], [0.4, 0.45], [0.01, 0.02], [0.02, 0.01]])
    lens = np.array([True, True, False, False, False, False])
    bare = ~lens
    threshold, table = thermometry.choose_threshold(prob, lens, bare, thresholds=(0.2, 0.3, 0.35, 0.5, 0.8))
    # Up to 0.35 every lens face abstains and one bare face of four (1.0 - 0.25 = 0.75); at 0.5 and
    # 0.8 only the first lens face does (0.5 - 0): the highest threshold scoring 0.75 wins.
    by = table.set_index("threshold")
    assert by.loc[0.3, "lens_abstention"] == 1.0 and by.loc[0.3, "bare_abstention"] == 0.25
    assert by.loc[0.5, "lens_abstention"] == 0.5 and by.loc[0.5, "bare_abstention"] == 0.0
    assert threshold == 0.35
    threshold, _ = thermometry.choose_threshold(prob, lens, bare, thresholds=(0.5, 0.8))
    assert threshold == 0.8   # a tie (0.5 each) goes to the higher threshold: fewer bare faces lost
    with pytest.raises(ThermometryInputError):
        thermometry.choose_threshold(prob, np.zeros(6, bool), bare)


def test_choose_reading_calibrates_on_train_and_applies_the_settings(tiny_dataset, monkeypatch):
    # Records whose maps read 0.5 C under the truth at every pixel near the canthi: the calibration
    # found on "train" is 0.5 whatever the window, and the calibrated validation error is zero.
    from types import SimpleNamespace

    def record(hot: float, lens: bool) -> SimpleNamespace:
        landmarks = predicted_landmarks(0.0)
        landmarks[36], landmarks[45] = [5.0, 15.0], [35.0, 15.0]   # outer eye corners 30 px apart
        occluders = [{"type": "glasses"}] if lens else []
        visibility = np.full(68, 2)
        if lens:
            visibility[list(INNER_CANTHI)] = 1
        return SimpleNamespace(landmarks=landmarks, visibility=visibility, map=np.full((40, 40), hot - 0.5),
                               extras={"canthus_skin_max_c": [hot, hot], "camera": {"offset_error_c": 0.0},
                                       "occluders": occluders})

    monkeypatch.setattr("m3mstl.data.coco.load_temperature", lambda r: r.map)
    train = [record(35.0 + 0.1 * k, False) for k in range(4)]
    val = [record(35.5, False), record(36.0, False), record(35.0, True)]
    prob = np.full((3, 68), 0.02)
    prob[2, list(INNER_CANTHI)] = 0.7
    settings, table = thermometry.choose_reading(train, val, np.stack([r.landmarks for r in val]), prob,
                                                 fractions=(0.1, 0.3))
    assert settings["calibration_c"] == pytest.approx(0.5)
    assert settings["combine"] == "max" and 0.05 <= settings["threshold"] <= 0.7
    windows = table[table["choice"] == "window_fraction"]
    assert windows["val_mae_c"].tolist() == pytest.approx([0.0, 0.0])
    assert windows["val_uncalibrated_mae_c"].tolist() == pytest.approx([0.5, 0.5])
    options = thermometry.practice_options(val, settings=settings)
    assert options["calibration_c"] == settings["calibration_c"] and options["threshold"] == settings["threshold"]
    assert options["window_fraction"] == settings["window_fraction"]
