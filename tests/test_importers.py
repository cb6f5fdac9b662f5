"""Importers: iBUG .pts, SF-TL54 text labels and COFW-68 .mat files -> the TFD68 layout."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from m3mstl.cli import main
from m3mstl.data.coco import load_image, read_dataset
from m3mstl.data.errors import DatasetError, DatasetWarning
from m3mstl.data.importers import SFTL54_TO_IBUG, convert, read_pts
from m3mstl.data.validate import validate_dataset


def _points(seed: int, width: int = 80, height: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(2, width - 2, 68), rng.uniform(2, height - 2, 68)])


def _write_pts(path: Path, points: np.ndarray) -> None:
    rows = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    path.write_text(f"version: 1\nn_points: {len(points)}\n{{\n{rows}\n}}\n")


def _gray(seed: int, width: int = 80, height: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


# ----------------------------------------------------------------------------------------- pts


def test_pts_import_shifts_one_based_coordinates_and_keeps_ids_unique(tmp_path: Path) -> None:
    src = tmp_path / "300w"
    for folder, seed in (("trainset", 1), ("testset", 2)):
        (src / folder).mkdir(parents=True)
        _write_pts(src / folder / "image_0001.pts", np.round(_points(seed), 3))
        Image.fromarray(_gray(seed)).save(src / folder / "image_0001.png")
    result = convert("pts", src, tmp_path / "out")
    dataset = read_dataset(result.annotations_path)
    assert [r.image_id for r in dataset.records] == ["testset_image_0001", "trainset_image_0001"]
    record = dataset.by_id("trainset_image_0001")
    np.testing.assert_allclose(record.landmarks, np.round(_points(1), 3) - 0.5, atol=1e-6)
    assert (record.visibility == 2).all()
    assert record.subject == "trainset_image_0001"  # no subject information: each image its own
    np.testing.assert_array_equal(load_image(record), _gray(1))
    assert dataset.temperature_encoding == "none"
    assert validate_dataset(tmp_path / "out").ok


def test_pts_colour_images_become_grayscale_with_a_warning(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    colour = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(colour).save(src / "thermal_012_0_3.png")
    _write_pts(src / "thermal_012_0_3.pts", _points(3))
    with pytest.warns(DatasetWarning, match="converted 1 colour images to 8-bit grayscale"):
        convert("pts", src, tmp_path / "out")
    record = read_dataset(tmp_path / "out").records[0]
    assert record.subject == "012"  # from the TFD68 file-name scheme
    np.testing.assert_array_equal(load_image(record), np.asarray(Image.fromarray(colour).convert("L")))


def test_pts_subject_regex(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "person7").mkdir(parents=True)
    _write_pts(src / "person7" / "a.pts", _points(0))
    Image.fromarray(_gray(0)).save(src / "person7" / "a.png")
    convert("pts", src, tmp_path / "out", subject_regex=r"person(?P<subject>\d+)/")
    assert read_dataset(tmp_path / "out").records[0].subject == "7"


def test_pts_errors_name_the_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    bad = src / "a.pts"
    bad.write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(DatasetError, match="n_points says 68 but the block holds 1 points") as caught:
        read_pts(bad)
    assert caught.value.path == bad
    _write_pts(bad, _points(0)[:5])
    Image.fromarray(_gray(0)).save(src / "a.png")
    with pytest.raises(DatasetError, match="5 points; only the 68-point"):
        convert("pts", src, tmp_path / "out")
    _write_pts(bad, _points(0))
    (src / "a.png").unlink()
    with pytest.raises(DatasetError, match="no image a.<png"):
        convert("pts", src, tmp_path / "out")


# -------------------------------------------------------------------------------------- sftl54


def test_sftl54_maps_54_normalised_points_onto_ibug68(tmp_path: Path) -> None:
    src = tmp_path / "sf"
    src.mkdir()
    rng = np.random.default_rng(4)
    normalised = rng.uniform(0.05, 0.95, (54, 2))
    rows = [f"{k} {x:.6f} {y:.6f}" for k, (x, y) in enumerate(normalised)]
    rng.shuffle(rows)  # rows are matched by their index, not their order
    (src / "thermal_003_1_0.txt").write_text("\n".join(rows) + "\n")
    (src / "notes.txt").write_text("a file without an image is not a label\n")
    Image.fromarray(_gray(4, width=100, height=50)).save(src / "thermal_003_1_0.png")
    convert("sftl54", src, tmp_path / "out")
    record = read_dataset(tmp_path / "out").records[0]
    expected = np.round(normalised, 6) * [100, 50]
    np.testing.assert_allclose(record.landmarks[:48], expected[:48], atol=1e-5)
    # The six mouth points: corners 48 / 54, mid upper lip 51, mid lower lip 57, inner lips 62 / 66.
    np.testing.assert_allclose(record.landmarks[[48, 51, 54, 57, 62, 66]], expected[48:], atol=1e-5)
    assert record.labelled.sum() == 54 and not record.labelled[[49, 50, 52, 53, 55, 56, 58, 59, 60, 61, 63, 64,
                                                                 65, 67]].any()
    assert np.isnan(record.landmarks[49]).all()
    assert SFTL54_TO_IBUG.tolist()[48:] == [48, 51, 54, 57, 62, 66]
    assert record.subject == "003"


def test_sftl54_rejects_incomplete_or_pixel_labels(tmp_path: Path) -> None:
    src = tmp_path / "sf"
    src.mkdir()
    Image.fromarray(_gray(0)).save(src / "x.png")
    (src / "x.txt").write_text("\n".join(f"{k} 0.5 0.5" for k in range(53)))
    with pytest.raises(DatasetError, match="53 points, expected 54"):
        convert("sftl54", src, tmp_path / "out")
    (src / "x.txt").write_text("\n".join(f"{k} 40 30" for k in range(54)))
    with pytest.raises(DatasetError, match="normalised to"):
        convert("sftl54", src, tmp_path / "out")


# -------------------------------------------------------------------------------------- cofw68


def test_cofw68_v5_mat_with_occlusion_flags(tmp_path: Path) -> None:
    src = tmp_path / "cofw"
    src.mkdir()
    points = _points(5)
    flags = np.zeros((68, 1))
    flags[[10, 40, 41]] = 1
    scipy.io.savemat(src / "1_points.mat", {"Points": points, "Occ": flags})
    Image.fromarray(_gray(5)).save(src / "1.jpg", quality=100)
    convert("cofw68", src, tmp_path / "out")
    record = read_dataset(tmp_path / "out").records[0]
    np.testing.assert_allclose(record.landmarks, points - 0.5, atol=1e-6)
    assert np.flatnonzero(record.occluded).tolist() == [10, 40, 41]
    assert (record.visibility[record.visibility != 1] == 2).all()
    assert record.image_id == "1"


def test_cofw68_field_overrides(tmp_path: Path) -> None:
    src = tmp_path / "cofw"
    src.mkdir()
    scipy.io.savemat(src / "7_points.mat", {"lm": _points(6), "hidden": np.ones(68)})
    Image.fromarray(_gray(6)).save(src / "7.png")
    with pytest.raises(DatasetError, match="no field 'Points'; the file holds \\['hidden', 'lm'\\]"):
        convert("cofw68", src, tmp_path / "out")
    convert("cofw68", src, tmp_path / "out", points_field="lm", occlusion_field="hidden")
    assert read_dataset(tmp_path / "out").records[0].occluded.all()


def test_cofw68_v73_labels_and_images_in_a_mat_cell_array(tmp_path: Path) -> None:
    src = tmp_path / "cofw"
    src.mkdir()
    gray = _gray(7)
    colour = np.random.default_rng(8).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    points = [_points(7), _points(8)]
    for n, pts in enumerate(points, start=1):
        with h5py.File(src / f"{n}_points.mat", "w") as handle:  # MATLAB v7.3 = HDF5, column-major
            handle["Points"] = pts.T
            handle["Occ"] = (np.arange(68) % 2 == 0).astype(float)[None, :]
    images_mat = tmp_path / "COFW_test_color.mat"
    with h5py.File(images_mat, "w") as handle:
        handle["#refs#/a"] = gray.T                        # MATLAB H x W seen as W x H
        handle["#refs#/b"] = colour.transpose(2, 1, 0)     # H x W x 3 seen as 3 x W x H
        cells = handle.create_dataset("IsT", (2, 1), dtype=h5py.ref_dtype)
        cells[0, 0], cells[1, 0] = handle["#refs#/a"].ref, handle["#refs#/b"].ref
    with pytest.warns(DatasetWarning, match="converted 1 colour"):
        convert("cofw68", src, tmp_path / "out", images_mat=images_mat)
    dataset = read_dataset(tmp_path / "out")
    first, second = dataset.by_id("1"), dataset.by_id("2")
    np.testing.assert_array_equal(load_image(first), gray)
    np.testing.assert_array_equal(load_image(second), np.asarray(Image.fromarray(colour).convert("L")))
    np.testing.assert_allclose(second.landmarks, points[1] - 0.5, atol=1e-6)
    assert first.occluded[::2].all() and not first.occluded[1::2].any()


# ------------------------------------------------------------------------------------------ CLI


def test_convert_cli(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_pts(src / "face.pts", _points(9))
    Image.fromarray(_gray(9)).save(src / "face.png")
    out = tmp_path / "out"
    assert main(["convert", "pts", str(src), str(out)]) == 0
    assert "wrote 1 images" in capsys.readouterr().out
    assert main(["convert", "pts", str(src), str(out)]) == 1  # refuses to overwrite silently
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["convert", "pts", str(src), str(out), "--overwrite"]) == 0
    assert main(["validate", str(out), "--no-progress"]) == 0
