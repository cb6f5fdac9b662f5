"""Temperatures out of `m3mstl predict` (issue 30): each face's inner-canthus reading, the run's reading
settings, and the inputs that used to pass in silence (a named map that is not there, a frame with no
radiometric data, a whole camera frame taken as a face crop, a box inside the image called clipped,
a grey image saved as RGB called colour)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m3mstl.core.landmarks import INNER_CANTHI, OUTER_EYE_CORNERS
from m3mstl.infer.canthus import READING_FILE, ReadingSettings, load_reading_settings, read_face, write_run_reading
from cli_probes import ONE_STEP, assert_error, full_frame_dataset, run_cli
from conftest import outputs_redirected_to


def _face(width: int = 60) -> np.ndarray:
    """(68, 2) points of a face whose outer eye corners are 20 px apart and inner canthi at
    (25, 20) and (35, 20)."""
    points = np.full((68, 2), 30.0)
    points[OUTER_EYE_CORNERS[0]], points[OUTER_EYE_CORNERS[1]] = (20.0, 20.0), (40.0, 20.0)
    points[INNER_CANTHI[0]], points[INNER_CANTHI[1]] = (25.0, 20.0), (35.0, 20.0)
    return points


def _map_with_canthi(right: float, left: float) -> np.ndarray:
    temperature = np.full((60, 60), 30.0)
    temperature[20, 25], temperature[20, 35] = right, left
    return temperature


def _probs(right: float, left: float) -> np.ndarray:
    probs = np.zeros(68)
    probs[INNER_CANTHI[0]], probs[INNER_CANTHI[1]] = right, left
    return probs


# ----------------------------------------------------------------------------------- read_face
def test_a_face_reads_the_hotter_visible_canthus_plus_the_site_calibration():
    settings = ReadingSettings(window_fraction=0.15, threshold=0.5, combine="max", calibration_c=0.25)
    reading = read_face(_map_with_canthi(36.0, 35.5), _face(), _probs(0.1, 0.2), settings)
    assert reading["canthus_raw_c"] == [36.0, 35.5]
    assert reading["canthus_temperature_c"] == pytest.approx(36.25)
    assert reading["canthi_used"] == ["right", "left"] and reading["calibrated"] and reading["abstention"] is None


def test_a_canthus_called_occluded_is_left_out_and_both_occluded_abstains():
    settings = ReadingSettings(threshold=0.5, combine="max")
    one = read_face(_map_with_canthi(36.0, 35.5), _face(), _probs(0.9, 0.2), settings)
    assert one["canthi_used"] == ["left"] and one["canthus_temperature_c"] == pytest.approx(35.5)
    assert not one["calibrated"]  # no site calibration known: the camera's own degrees
    both = read_face(_map_with_canthi(36.0, 35.5), _face(), _probs(0.9, 0.8), settings)
    assert both["canthus_temperature_c"] is None and both["canthi_used"] == []
    assert "both inner canthi called occluded" in both["abstention"] and "0.90" in both["abstention"]


def test_no_map_means_no_temperature_and_says_why():
    reading = read_face(None, _face(), _probs(0.1, 0.1), ReadingSettings(), no_map_reason="no map for x.png")
    assert reading["canthus_temperature_c"] is None and reading["abstention"] == "no map for x.png"


def test_canthi_off_the_map_abstain_with_their_reason():
    points = _face() + 200.0
    reading = read_face(_map_with_canthi(36.0, 35.5), points, _probs(0.1, 0.1), ReadingSettings())
    assert reading["canthus_temperature_c"] is None and "outside the temperature map" in reading["abstention"]


# ----------------------------------------------------------------------------------- settings
def test_a_run_without_its_reading_record_reads_with_the_documented_defaults(tmp_path):
    assert load_reading_settings(tmp_path) == ReadingSettings()
    assert load_reading_settings(tmp_path).source == "defaults"
    (tmp_path / READING_FILE).write_text(json.dumps({"window_fraction": 0.2, "threshold": 0.3, "combine": "max",
                                                     "calibration_c": 0.4}))
    stored = load_reading_settings(tmp_path)
    assert (stored.window_fraction, stored.threshold, stored.calibration_c, stored.source) == (0.2, 0.3, 0.4, "run")
    (tmp_path / READING_FILE).write_text("{}")
    with pytest.raises(ValueError, match=READING_FILE):
        load_reading_settings(tmp_path)


def test_no_reading_record_for_data_without_the_true_canthus_temperature(tmp_path, tiny_dataset):
    records = [r for r in tiny_dataset.records]
    for record in records:
        record.extras.pop("canthus_skin_max_c", None)
    points = np.stack([r.landmarks for r in records])
    assert write_run_reading(tmp_path, records, records, points, np.zeros((len(records), 68))) is None
    assert not (tmp_path / READING_FILE).exists()


# ----------------------------------------------------------------------------------- small fixes
def test_a_box_inside_the_image_is_not_called_clipped():
    from m3mstl.infer.predict import check_box

    box = (0.1, 0.7, 0.2, 10.3)  # (0.1 + 0.2) - 0.1 != 0.2 in floating point
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_box(box, 40, 40) == box
    with pytest.warns(UserWarning, match="clipped"):
        check_box((-1.0, 0.0, 10.0, 10.0), 40, 40)


def test_a_grey_image_saved_as_rgb_is_not_colour(tmp_path):
    from m3mstl.data.coco import is_colour_image

    grey = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "grey_rgb.png")
    Image.fromarray(grey).convert("RGBA").save(tmp_path / "grey_rgba.png")
    coloured = np.dstack([grey, grey, 255 - grey])
    Image.fromarray(coloured).save(tmp_path / "colour.png")
    assert not is_colour_image(tmp_path / "grey_rgb.png")
    assert not is_colour_image(tmp_path / "grey_rgba.png")
    assert is_colour_image(tmp_path / "colour.png")


# ----------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def output_root(tmp_path_factory) -> Path:
    with outputs_redirected_to(tmp_path_factory.mktemp("output-root")) as root:
        yield root


@pytest.fixture(scope="module")
def trained(output_root, tmp_path_factory) -> tuple[Path, Path]:
    """(generated dataset, one-step baseline run on it): generated faces carry the true canthus skin
    temperature, so the trainer chooses the run's reading."""
    data = tmp_path_factory.mktemp("trained") / "synth"
    made = run_cli("synth", data, "--subjects", "8", "--per-subject", "4", "--size", "64", "--seed", "3", "--quiet")
    assert made.returncode == 0, made.stderr
    result = run_cli("train", *ONE_STEP, "--data", data)
    assert result.returncode == 0, result.stderr[-3000:]
    return data, Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def frames(output_root, tmp_path_factory) -> Path:
    return full_frame_dataset(tmp_path_factory.mktemp("frames") / "frames")


def _rows(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_finished_run_carries_the_reading_chosen_on_its_own_splits(trained):
    _, run_dir = trained
    stored = json.loads((run_dir / READING_FILE).read_text())
    assert set(stored) >= {"window_fraction", "threshold", "combine", "calibration_c", "chosen_on"}
    assert load_reading_settings(run_dir).source == "run"


@pytest.mark.slow
def test_frames_with_their_maps_give_a_canthus_reading_per_face(trained, frames):
    _, run_dir = trained
    rows = [row for row in _rows(run_cli("predict", run_dir, frames / "thermal", "--quiet")) if row.get("box")]
    assert rows and all(row["temperature_map"] for row in rows)
    for row in rows:
        assert (row["canthus_temperature_c"] is None) == (row["abstention"] is not None)
    read = [row for row in rows if row["canthus_temperature_c"] is not None]
    assert read and all(25.0 < row["canthus_temperature_c"] < 42.0 for row in read)
    shifted = _rows(run_cli("predict", run_dir, frames / "thermal", "--quiet", "--calibration-c", "1.5"))
    by_face = {(r["frame"], r["face"]): r for r in shifted if r.get("box")}
    for row in read:
        twin = by_face[(row["frame"], row["face"])]
        raw = [v for v, side in zip(row["canthus_raw_c"], ("right", "left")) if side in row["canthi_used"]]
        assert twin["canthus_temperature_c"] == pytest.approx(max(raw) + 1.5, abs=2e-3)
    csv_text = run_cli("predict", run_dir, frames / "thermal", "--quiet", "--format", "csv").stdout
    header = csv_text.splitlines()[0].split(",")
    assert {"canthus_temperature_c", "canthus_right_c", "abstention", "temperature_map"} <= set(header)


@pytest.mark.slow
def test_a_frame_without_radiometric_data_warns_and_gives_null_temperatures(trained, frames, tmp_path):
    _, run_dir = trained
    grey = tmp_path / "grey.jpg"
    Image.open(sorted((frames / "thermal").glob("*.png"))[0]).convert("L").save(grey)
    result = run_cli("predict", run_dir, grey, "--quiet")
    rows = _rows(result)
    assert "grey.jpg" in result.stderr and "no radiometric temperature map" in result.stderr
    assert all(row.get("canthus_temperature_c") is None for row in rows)
    assert all("no temperature map" in row["abstention"] for row in rows if row.get("box"))


@pytest.mark.slow
def test_a_named_map_that_is_not_there_or_does_not_fit_is_an_error(trained, frames, tmp_path):
    _, run_dir = trained
    images = sorted((frames / "thermal").glob("*.png"))
    assert_error(run_cli("predict", run_dir, images[0], "--temperature", tmp_path / "nope.npy"),
                 "--temperature", "nope.npy", code=2)
    assert_error(run_cli("predict", run_dir, images[0], images[1], "--temperature", images[0]),
                 "--temperature", "--temperature-dir", code=2)
    assert_error(run_cli("predict", run_dir, images[0], "--temperature-dir", tmp_path / "no-folder"),
                 "--temperature-dir", "no-folder", code=2)
    small = tmp_path / "small.npy"
    np.save(small, np.full((8, 8), 30.0, dtype=np.float32))
    result = run_cli("predict", run_dir, images[0], "--temperature", small, "--quiet")
    assert result.returncode == 1 and "small.npy" in result.stderr and "8x8" in result.stderr
    # A map named differently from its image, given explicitly, is used (it was dropped before).
    renamed = tmp_path / "renamed.npy"
    np.save(renamed, np.load(sorted((frames / "temperature").glob("*.npy"))[0]))
    rows = _rows(run_cli("predict", run_dir, images[0], "--temperature", renamed, "--quiet"))
    assert all(row["temperature_map"] == str(renamed) for row in rows if row.get("box"))


@pytest.mark.slow
def test_radiometric_frames_are_read_as_temperatures_and_grey_ones_refused(trained, frames, tmp_path):
    from m3mstl.data.coco import encode_centikelvin

    _, run_dir = trained
    temperature = np.load(sorted((frames / "temperature").glob("*.npy"))[0])
    Image.fromarray(encode_centikelvin(temperature)).save(tmp_path / "radiometric.png")
    rows = _rows(run_cli("predict", run_dir, tmp_path / "radiometric.png", "--radiometric", "--quiet"))
    assert rows and all(row["temperature_map"] == str(tmp_path / "radiometric.png") for row in rows if row.get("box"))
    eight_bit = sorted((frames / "thermal").glob("*.png"))[0]
    result = run_cli("predict", run_dir, eight_bit, "--radiometric", "--quiet")
    assert result.returncode == 1 and eight_bit.name in result.stderr and "centi-Kelvin" in result.stderr


@pytest.mark.slow
def test_whole_image_refuses_a_camera_frame_and_takes_a_face_crop(trained, frames, tmp_path):
    data, run_dir = trained
    # A generated frame is a close-up (the head fills a third of it); set into a 640x512 sensor frame at
    # its background's level it is the scene a real camera gives, the face a few percent of it.
    source = sorted((frames / "thermal").glob("*.png"))[0]
    image = np.asarray(Image.open(source))
    temperature = np.load(frames / "temperature" / f"{source.stem}.npy")
    scene = tmp_path / "scene"
    (scene / "thermal").mkdir(parents=True)
    (scene / "temperature").mkdir()
    wide_image = np.full((512, 640), image.min(), dtype=image.dtype)
    wide_temperature = np.full((512, 640), temperature.min(), dtype=temperature.dtype)
    wide_image[200:200 + image.shape[0], 300:300 + image.shape[1]] = image
    wide_temperature[200:200 + image.shape[0], 300:300 + image.shape[1]] = temperature
    frame = scene / "thermal" / "wide.png"
    Image.fromarray(wide_image).save(frame)
    np.save(scene / "temperature" / "wide.npy", wide_temperature)
    assert_error(run_cli("predict", run_dir, frame, "--whole-image"), "--whole-image", "wide.png", "camera frame",
                 code=2)
    crop = sorted((data / "thermal").glob("*.png"))[0]
    temperature = sorted((data / "temperature").glob(f"{crop.stem}.*"))[0]
    result = run_cli("predict", run_dir, crop, "--whole-image", "--temperature", temperature)
    assert result.returncode == 0, result.stderr
    canthus = json.loads(result.stdout)["canthus"]
    assert canthus["settings"]["source"] == "run"
    assert (canthus["canthus_temperature_c"] is None) == (canthus["abstention"] is not None)
