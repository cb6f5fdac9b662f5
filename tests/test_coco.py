"""Reader and writer of the TFD68 layout: round trips, both keypoint layouts, encodings, errors."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_dataset
from m3mstl.data.coco import (
    BBOX_MARGIN_PX,
    decode_centikelvin,
    encode_centikelvin,
    load_image,
    load_occluder_mask,
    load_temperature,
    read_dataset,
    write_annotations,
    write_sample,
)
from m3mstl.data.errors import DatasetError, DatasetWarning


def _sample_arrays(seed: int = 0, width: int = 40, height: int = 30):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
    temperature = rng.uniform(22.0, 36.0, size=(height, width)).astype(np.float32)
    landmarks = np.column_stack([rng.uniform(5, width - 5, 68), rng.uniform(5, height - 5, 68)])
    visibility = np.full(68, 2, dtype=np.int64)
    visibility[36:48] = 1
    visibility[0] = 0
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[5:10, 5:20] = 0b11
    return image, temperature, landmarks, visibility, mask


def _write_one(root: Path, layout: str = "ibug68", temperature_format: str = "npy", **kwargs) -> dict:
    image, temperature, landmarks, visibility, mask = _sample_arrays()
    entry = write_sample(root, "thermal_042_3_-7", "042", image, temperature, landmarks, visibility,
                         occluder_mask=mask, temperature_format=temperature_format,
                         image_fields={"head_pose": {"yaw": 10.0, "pitch": -5.0, "roll": 2.0}, "ambient_c": 23.5},
                         annotation_fields={"occlusion_cause": ["glasses"] * 68,
                                            "landmarks_3d": np.ones((68, 3))}, **kwargs)
    write_annotations(root, [entry], info={"seed": 7}, layout=layout)
    return entry


@pytest.mark.parametrize("layout", ["ibug68", "parts"])
def test_round_trip_keeps_every_array_and_field(tmp_path: Path, layout: str) -> None:
    image, temperature, landmarks, visibility, mask = _sample_arrays()
    _write_one(tmp_path, layout=layout)
    dataset = read_dataset(tmp_path)
    assert dataset.keypoint_layout == layout
    assert dataset.temperature_encoding == "celsius_npy"
    assert dataset.info["seed"] == 7
    record = dataset.records[0]
    assert record.image_id == "thermal_042_3_-7" and record.subject == "042"
    assert (record.width, record.height) == (40, 30)
    np.testing.assert_array_equal(record.visibility, visibility)
    np.testing.assert_allclose(record.landmarks[1:], landmarks[1:], atol=1e-6)
    assert np.isnan(record.landmarks[0]).all()  # unlabelled -> NaN, never a silent (0, 0)
    np.testing.assert_array_equal(load_image(record), image)
    np.testing.assert_array_equal(load_temperature(record), temperature)
    np.testing.assert_array_equal(load_occluder_mask(record), mask)
    assert record.extras["head_pose"] == {"yaw": 10.0, "pitch": -5.0, "roll": 2.0}
    assert record.extras["ambient_c"] == 23.5
    assert record.extras["occlusion_cause"] == ["glasses"] * 68
    assert np.asarray(record.extras["landmarks_3d"]).shape == (68, 3)
    # The writer stores the tight extent of the labelled landmarks when no face box is given.
    labelled = landmarks[visibility > 0]
    expected = (*labelled.min(axis=0), *(labelled.max(axis=0) - labelled.min(axis=0)))
    np.testing.assert_allclose(record.bbox, expected, atol=1e-5)
    assert record.extras["bbox_source"] == "annotation"


def test_parts_and_ibug68_files_read_to_the_same_records(tmp_path: Path) -> None:
    one = read_dataset(make_tiny_dataset(tmp_path / "ibug", layout="ibug68"))
    two = read_dataset(make_tiny_dataset(tmp_path / "parts", layout="parts"))
    assert [r.image_id for r in one.records] == [r.image_id for r in two.records]
    for a, b in zip(one.records, two.records):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        np.testing.assert_array_equal(a.visibility, b.visibility)
        assert a.bbox == b.bbox and a.extras == b.extras


def test_same_input_gives_identical_bytes(tmp_path: Path) -> None:
    first = (make_tiny_dataset(tmp_path / "a", seed=3) / "annotations.json").read_bytes()
    second = (make_tiny_dataset(tmp_path / "b", seed=3) / "annotations.json").read_bytes()
    assert first == second
    entry = _write_one(tmp_path / "c")
    path = write_annotations(tmp_path / "c", [entry])
    before = path.read_bytes()
    write_annotations(tmp_path / "c", [json.loads(json.dumps(entry))])  # e.g. after a trip through a worker
    assert path.read_bytes() == before
    assert not [p for p in (tmp_path / "c").rglob("*") if p.name.endswith(".tmp")]  # no temp file left


def test_write_sample_writes_only_its_own_files(tmp_path: Path) -> None:
    entry = _write_one(tmp_path)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["annotations.json", "occluders/thermal_042_3_-7.png", "temperature/thermal_042_3_-7.npy",
                     "thermal/thermal_042_3_-7.png"]
    assert "id" not in entry["image"] and "id" not in entry["annotation"]
    json.dumps(entry)  # JSON-serialisable as returned
    assert entry["annotation"]["keypoints"][:3] == [0.0, 0.0, 0]  # unlabelled: COCO (0, 0, 0)
    assert entry["annotation"]["num_keypoints"] == 67


def test_centikelvin_encoding_golden_values() -> None:
    assert encode_centikelvin(np.array([36.85, 0.0, -273.15])).tolist() == [31000, 27315, 0]
    np.testing.assert_allclose(decode_centikelvin(np.array([31000, 29815], dtype=np.uint16)), [36.85, 25.0],
                               atol=1e-4)


def test_png_temperature_maps_decode_to_celsius(tmp_path: Path) -> None:
    _, temperature, *_ = _sample_arrays()
    _write_one(tmp_path, temperature_format="png")
    dataset = read_dataset(tmp_path)
    assert dataset.temperature_encoding == "centikelvin_png"
    stored = np.asarray(Image.open(tmp_path / "temperature" / "thermal_042_3_-7.png"))
    assert stored.dtype == np.uint16
    # Quantisation to 0.01 K: every value within half a step.
    assert np.abs(load_temperature(dataset.records[0]) - temperature).max() <= 0.005 + 1e-4


def test_tiff_centikelvin_is_detected(tmp_path: Path) -> None:
    make_tiny_dataset(tmp_path, temperature_format=None, n_subjects=1, images_per_subject=1)
    (tmp_path / "temperature").mkdir()
    Image.fromarray(encode_centikelvin(np.full((48, 64), 30.0))).save(
        tmp_path / "temperature" / "thermal_001_0_0.tiff")
    coco = json.loads((tmp_path / "annotations.json").read_text())
    del coco["images"][0]["temperature_file"]  # no explicit name: the loader looks in temperature/
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    dataset = read_dataset(tmp_path)
    assert dataset.temperature_encoding == "centikelvin_tiff"
    np.testing.assert_allclose(load_temperature(dataset.records[0]), 30.0, atol=1e-4)


def _authors_style_coco() -> tuple[dict, np.ndarray]:
    """A per-part COCO file as the TFD68 authors publish it, in a deliberately shuffled order.

    Point i of the iBUG scheme sits at x = i + 0.25 so the regrouped order can be read off x.
    Brows and eyes come as single groups, names are 1-based, categories and names are shuffled.
    """
    groups = [("Jaw", list(range(0, 17))), ("eyebrows", list(range(17, 27))), ("nose", list(range(27, 36))),
              ("eyes", list(range(36, 48))), ("mouth", list(range(48, 68)))]
    rng = np.random.default_rng(5)
    categories, annotations = [], []
    for cid, (name, indices) in enumerate(groups, start=1):
        names = [f"{name}_{k + 1}" for k in range(len(indices))]
        perm = rng.permutation(len(indices))  # names listed out of order
        categories.append({"id": cid, "name": name, "keypoints": [names[p] for p in perm]})
        flat = []
        for p in perm:
            i = indices[p]
            flat += [i + 0.25, 10.0 + (i % 7), 1 if i in (36, 45) else 2]
        annotations.append({"id": cid, "image_id": 9, "category_id": cid, "keypoints": flat,
                            "num_keypoints": len(indices)})
    categories.append({"id": 7, "name": "face", "keypoints": []})
    annotations.append({"id": 99, "image_id": 9, "category_id": 7, "bbox": [1.0, 2.0, 60.0, 30.0],
                        "num_keypoints": 0})
    rng.shuffle(categories)
    coco = {"images": [{"id": 9, "file_name": "thermal_137_0_-3.jpg", "width": 80, "height": 40}],
            "annotations": annotations, "categories": categories}
    return coco, np.arange(68) + 0.25


def test_reads_the_authors_per_part_form(tmp_path: Path) -> None:
    coco, expected_x = _authors_style_coco()
    (tmp_path / "tfd68.json").write_text(json.dumps(coco))
    (tmp_path / "thermal").mkdir()
    Image.fromarray(np.zeros((40, 80), np.uint8)).save(tmp_path / "thermal" / "thermal_137_0_-3.jpg")
    dataset = read_dataset(tmp_path / "tfd68.json")  # a path to the JSON file works too
    record = dataset.records[0]
    assert dataset.keypoint_layout == "parts"
    np.testing.assert_allclose(record.landmarks[:, 0], expected_x)  # iBUG order recovered
    assert record.subject == "137"  # parsed from thermal_<subject>_<a>_<b>
    assert record.image_path == tmp_path / "thermal" / "thermal_137_0_-3.jpg"  # bare name, found in thermal/
    assert record.bbox == (1.0, 2.0, 60.0, 30.0)
    assert record.occluded[[36, 45]].all() and record.occluded.sum() == 2
    assert dataset.temperature_encoding == "none"


def test_part_names_that_do_not_add_up_are_an_error(tmp_path: Path) -> None:
    coco, _ = _authors_style_coco()
    nose = next(c for c in coco["categories"] if c["name"] == "nose")
    nose["keypoints"] = nose["keypoints"][:-1]
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="part 'nose' lists 8 keypoints, expected 9") as caught:
        read_dataset(tmp_path)
    assert caught.value.path == tmp_path / "annotations.json"


def test_missing_face_box_falls_back_to_landmark_extent(tmp_path: Path) -> None:
    coco, _ = _authors_style_coco()
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] != 7]
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    (tmp_path / "thermal").mkdir()
    Image.fromarray(np.zeros((40, 80), np.uint8)).save(tmp_path / "thermal" / "thermal_137_0_-3.jpg")
    record = read_dataset(tmp_path).records[0]
    # x extent 0.25 .. 67.25, y extent 10 .. 16; margin 5, clipped to the 80x40 image.
    x0, y0 = max(0.25 - BBOX_MARGIN_PX, 0), 10 - BBOX_MARGIN_PX
    np.testing.assert_allclose(record.bbox, (x0, y0, 67.25 + BBOX_MARGIN_PX - x0, 16 + BBOX_MARGIN_PX - y0))
    assert record.extras["bbox_source"] == "landmarks"


def test_subject_needs_a_field_or_a_tfd68_file_name(tmp_path: Path) -> None:
    image, _, landmarks, visibility, _ = _sample_arrays()
    entry = write_sample(tmp_path, "frame0001", "s9", image, None, landmarks, visibility)
    write_annotations(tmp_path, [entry])
    assert read_dataset(tmp_path).records[0].subject == "s9"
    coco = json.loads((tmp_path / "annotations.json").read_text())
    del coco["images"][0]["subject_id"]
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r"frame0001\.png.*no subject_id"):
        read_dataset(tmp_path)


def test_images_without_labelled_points_are_dropped_and_counted(tmp_path: Path) -> None:
    image, _, landmarks, visibility, _ = _sample_arrays()
    entries = [write_sample(tmp_path, f"thermal_00{i}_0_0", f"00{i}", image, None, landmarks,
                            visibility if i else np.zeros(68, int)) for i in range(3)]
    write_annotations(tmp_path, entries)
    with pytest.warns(DatasetWarning, match="dropped 1 images with no labelled landmark"):
        dataset = read_dataset(tmp_path)
    assert [r.image_id for r in dataset.records] == ["thermal_001_0_0", "thermal_002_0_0"]
    assert dataset.info["loader_report"]["dropped_unlabelled"] == 1


def test_kelvin_in_a_celsius_npy_is_refused(tmp_path: Path) -> None:
    make_tiny_dataset(tmp_path, n_subjects=1, images_per_subject=1)
    path = tmp_path / "temperature" / "thermal_001_0_0.npy"
    np.save(path, np.load(path) + 273.15)
    with pytest.raises(DatasetError, match="looks like Kelvin") as caught:
        read_dataset(tmp_path)
    assert caught.value.path == path


def test_eight_bit_png_cannot_be_a_temperature_map(tmp_path: Path) -> None:
    make_tiny_dataset(tmp_path, n_subjects=1, images_per_subject=1, temperature_format="png")
    path = tmp_path / "temperature" / "thermal_001_0_0.png"
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(path)
    with pytest.raises(DatasetError, match="cannot hold centi-Kelvin"):
        read_dataset(tmp_path)


def test_mixed_temperature_encodings_are_an_error(tmp_path: Path) -> None:
    make_tiny_dataset(tmp_path / "a", n_subjects=2, images_per_subject=1, temperature_format="npy")
    make_tiny_dataset(tmp_path / "b", n_subjects=2, images_per_subject=1, temperature_format="png")
    png = tmp_path / "b" / "temperature" / "thermal_002_0_0.png"
    (tmp_path / "a" / "temperature" / "thermal_002_0_0.npy").unlink()
    png.replace(tmp_path / "a" / "temperature" / png.name)
    coco = json.loads((tmp_path / "a" / "annotations.json").read_text())
    coco["images"][1]["temperature_file"] = "temperature/thermal_002_0_0.png"
    (tmp_path / "a" / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="mixed temperature encodings"):
        read_dataset(tmp_path / "a")
    with pytest.warns(DatasetWarning, match="mixed"):
        assert read_dataset(tmp_path / "a", strict=False).temperature_encoding in ("celsius_npy", "centikelvin_png")


def test_missing_and_malformed_annotation_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="annotations file not found") as caught:
        read_dataset(tmp_path)
    assert caught.value.path == tmp_path / "annotations.json"
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read the annotations as JSON"):
        read_dataset(tmp_path)
    (tmp_path / "annotations.json").write_text("[]")
    with pytest.raises(DatasetError, match="not a COCO file"):
        read_dataset(tmp_path)


def test_strict_raises_and_lenient_skips_a_missing_image(tmp_path: Path) -> None:
    make_tiny_dataset(tmp_path, n_subjects=2, images_per_subject=1)
    missing = tmp_path / "thermal" / "thermal_001_0_0.png"
    missing.unlink()
    with pytest.raises(DatasetError, match="image file missing") as caught:
        read_dataset(tmp_path)
    assert caught.value.path == missing
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        dataset = read_dataset(tmp_path, strict=False)
    assert [r.image_id for r in dataset.records] == ["thermal_002_0_0"]
    assert any("image file missing" in str(w.message) for w in caught_warnings)


def test_writer_rejects_bad_arrays(tmp_path: Path) -> None:
    image, temperature, landmarks, visibility, _ = _sample_arrays()
    with pytest.raises(ValueError, match="visibility values"):
        write_sample(tmp_path, "a", "1", image, None, landmarks, np.full(68, 3))
    with pytest.raises(ValueError, match="temperature map shape"):
        write_sample(tmp_path, "a", "1", image, temperature[:-1], landmarks, visibility)
    bad = landmarks.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_sample(tmp_path, "a", "1", image, None, bad, visibility)
    with pytest.raises(ValueError, match="reserved field"):
        write_sample(tmp_path, "a", "1", image, None, landmarks, visibility, image_fields={"width": 3})
    assert not (tmp_path / "thermal").exists()  # nothing written for rejected samples


def test_missing_side_files_are_named(tmp_path: Path) -> None:
    make_tiny_dataset(tmp_path, n_subjects=2, images_per_subject=1)
    (tmp_path / "temperature" / "thermal_002_0_0.npy").unlink()
    with pytest.raises(DatasetError, match="temperature map missing") as caught:
        read_dataset(tmp_path)
    assert caught.value.path == tmp_path / "temperature" / "thermal_002_0_0.npy"
    with pytest.warns(DatasetWarning, match="temperature map missing"):
        dataset = read_dataset(tmp_path, strict=False)
    assert len(dataset) == 2 and dataset.records[1].temperature_path is None
    assert dataset.records[0].temperature_path is not None


def _write_in_worker(args: tuple[str, int]) -> dict:
    root, seed = args
    image, temperature, landmarks, visibility, mask = _sample_arrays(seed)
    return write_sample(root, f"thermal_{seed:03d}_0_0", f"{seed:03d}", image, temperature, landmarks, visibility,
                        occluder_mask=mask, temperature_format="png")


def test_parallel_writers_then_one_annotation_file(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=2) as pool:
        entries = list(pool.map(_write_in_worker, [(str(tmp_path), seed) for seed in range(1, 7)]))
    write_annotations(tmp_path, entries, layout="parts")
    dataset = read_dataset(tmp_path)
    assert dataset.subjects == [f"{s:03d}" for s in range(1, 7)]
    for seed, record in zip(range(1, 7), dataset.records):
        np.testing.assert_array_equal(load_image(record), _sample_arrays(seed)[0])
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temporary file left over
