"""`m3mstl validate`: every kind of problem is found, named by file, and all are collected."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_dataset
from m3mstl.cli import main
from m3mstl.data.validate import validate_dataset


def _edit_json(root: Path, edit) -> None:
    path = root / "annotations.json"
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))  # json writes NaN/Infinity literals, as a careless exporter would


def _messages(report) -> list[str]:
    return [f"{path.name}: {message}" for path, message in report.problems]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tiny_dataset(tmp_path / "ds", n_subjects=2, images_per_subject=2)


def test_clean_dataset_has_no_problem_and_a_true_summary(root: Path) -> None:
    report = validate_dataset(root)
    assert report.ok, report.problems
    s = report.summary
    assert (s["images"], s["images_listed"], s["subjects"], s["keypoint_layout"]) == (4, 4, 2, "ibug68")
    # Glasses on every second image cover the 12 eye points: half the eye labels are occluded.
    assert s["occlusion_rate_per_region"]["eyes"] == pytest.approx(0.5)
    assert s["occlusion_rate_per_region"]["mouth"] == 0.0
    assert s["occlusion_rate"] == pytest.approx(2 * 12 / (4 * 68))
    assert s["temperature_encoding"] == "celsius_npy" and s["temperature_maps"] == 4
    low, high = s["temperature_range_c"]
    assert 20.0 <= low < 31.0 and high == pytest.approx(35.6, abs=1e-4)  # ambient .. inner canthus
    assert s["occluder_masks"] == 4


def test_missing_and_unreadable_annotations(tmp_path: Path) -> None:
    report = validate_dataset(tmp_path)
    assert _messages(report) == ["annotations.json: annotations file not found"]
    (tmp_path / "annotations.json").write_text('{"images": [')
    report = validate_dataset(tmp_path)
    assert len(report.problems) == 1 and "cannot read the annotations as JSON" in report.problems[0][1]


def test_missing_and_corrupt_images(root: Path) -> None:
    (root / "thermal" / "thermal_001_0_0.png").unlink()
    (root / "thermal" / "thermal_001_1_0.png").write_bytes(b"not a png at all")
    good = (root / "thermal" / "thermal_002_0_0.png").read_bytes()
    (root / "thermal" / "thermal_002_0_0.png").write_bytes(good[: len(good) // 2])  # truncated
    messages = _messages(validate_dataset(root))
    assert "thermal_001_0_0.png: image file missing" in messages
    assert any(m.startswith("thermal_001_1_0.png: unreadable or corrupt image") for m in messages)
    assert any(m.startswith("thermal_002_0_0.png: unreadable or corrupt image") for m in messages)
    assert len(messages) == 3


def test_image_size_disagreeing_with_annotations(root: Path) -> None:
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "thermal" / "thermal_002_1_0.png")
    assert _messages(validate_dataset(root)) == [
        "thermal_002_1_0.png: image is 10x10 but the annotations say 64x48"]


def test_wrong_keypoint_count_and_non_finite_keypoints(root: Path) -> None:
    def edit(coco):
        coco["annotations"][0]["keypoints"] = coco["annotations"][0]["keypoints"][:-3]
        coco["annotations"][1]["keypoints"][3 * 5] = float("nan")
        coco["annotations"][2]["keypoints"][3 * 7 + 1] = float("inf")
    _edit_json(root, edit)
    messages = _messages(validate_dataset(root))
    assert len(messages) == 3
    assert "has 67 keypoints, expected 68" in messages[0] and "thermal_001_0_0" in messages[0]
    assert "keypoints [5] are labelled but NaN/inf" in messages[1]
    assert "keypoints [7] are labelled but NaN/inf" in messages[2]


def test_coordinates_outside_the_image(root: Path) -> None:
    def edit(coco):
        coco["annotations"][3]["keypoints"][0] = 64.5   # x of point 0 beyond the 64 px width
        coco["annotations"][3]["keypoints"][3 * 8 + 1] = -1.0
    _edit_json(root, edit)
    assert _messages(validate_dataset(root)) == [
        "annotations.json: image thermal_002_1_0: labelled keypoints [0, 8] lie outside the 64x48 image"]


def test_temperature_map_problems(root: Path) -> None:
    temperature = root / "temperature"
    (temperature / "thermal_001_0_0.npy").unlink()
    nan_map = np.load(temperature / "thermal_001_1_0.npy")
    nan_map[3, 4] = np.nan
    np.save(temperature / "thermal_001_1_0.npy", nan_map)
    np.save(temperature / "thermal_002_0_0.npy", np.full((40, 64), 30.0, np.float32))
    _edit_json(root, lambda coco: coco["images"][3].update(temperature_file=None))
    messages = _messages(validate_dataset(root))
    assert messages == [
        "thermal_001_0_0.npy: missing temperature map",
        "thermal_001_1_0.npy: 1 NaN/inf temperatures",
        "thermal_002_0_0.npy: temperature map is 64x40 but its image is 64x48",
        "thermal_002_1_0.png: missing temperature map (other images of the dataset have one)",
    ]


def test_implausible_temperatures_are_reported(root: Path) -> None:
    path = root / "temperature" / "thermal_002_1_0.npy"
    np.save(path, np.load(path) + 273.15)
    messages = _messages(validate_dataset(root))
    assert len(messages) == 1 and "looks like Kelvin" in messages[0]


def test_occluder_mask_problems(root: Path) -> None:
    (root / "occluders" / "thermal_001_0_0.png").write_bytes(b"\x89PNG broken")
    Image.fromarray(np.zeros((48, 60), np.uint8)).save(root / "occluders" / "thermal_001_1_0.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(root / "occluders" / "thermal_002_0_0.png")
    messages = _messages(validate_dataset(root))
    assert len(messages) == 3
    assert messages[0].startswith("thermal_001_0_0.png: cannot read the occluder mask")
    assert messages[1] == "thermal_001_1_0.png: occluder mask is 60x48 but its image is 64x48"
    assert messages[2].startswith("thermal_002_0_0.png: occluder mask must be a single-channel 8-bit bitmask")


def test_cli_collects_every_problem_and_exits_1(root: Path, capsys) -> None:
    (root / "thermal" / "thermal_001_0_0.png").unlink()
    (root / "temperature" / "thermal_002_0_0.npy").unlink()
    _edit_json(root, lambda coco: coco["annotations"][3]["keypoints"].__setitem__(1, 99.0))
    assert main(["validate", str(root), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"{root / 'thermal' / 'thermal_001_0_0.png'}: image file missing" in out
    assert f"{root / 'temperature' / 'thermal_002_0_0.npy'}: missing temperature map" in out
    assert "labelled keypoints [0] lie outside" in out
    assert "problems           3" in out and "subjects           2" in out


def test_cli_exits_0_on_a_clean_dataset(root: Path, capsys) -> None:
    assert main(["validate", str(root), "--no-progress"]) == 0
    assert "problems           0" in capsys.readouterr().out


def test_duplicate_entries_and_bad_visibility_flags(root: Path) -> None:
    def edit(coco):
        coco["images"].append(dict(coco["images"][0], id=99))
        coco["annotations"].append(dict(coco["annotations"][0], id=99, image_id=99))
        coco["annotations"][1]["keypoints"][2] = 3
    _edit_json(root, edit)
    messages = _messages(validate_dataset(root))
    assert messages == [
        "annotations.json: image thermal/thermal_001_1_0.png (id 2): visibility values 1, 2, 3 are not all COCO 0/1/2",
        "annotations.json: image 'thermal_001_0_0' is listed more than once",
    ]
