"""`m3mstl synth`: the written dataset, its determinism, and the priors file."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from m3mstl.cli import main as cli_main
from m3mstl.data.coco import FILE_NAME_PATTERN, load_occluder_mask, load_temperature, read_dataset
from m3mstl.data.synth import SynthConfigError, load_priors
from m3mstl.data.synth.generate import generate_dataset
from m3mstl.data.validate import validate_dataset

SMALL = dict(subjects=2, per_subject=3, size=48, seed=5)
OCCLUDED_PRIORS = "occluders:\n  mask:\n    probability: 1.0\n  hand:\n    probability: 0.5\n"


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_is_valid_and_carries_every_field(tmp_path):
    root = tmp_path / "synth"
    generate_dataset(root, **SMALL)
    report = validate_dataset(root)
    assert report.ok, report.problems
    ds = read_dataset(root)
    assert len(ds) == 6 and ds.subjects == ["000", "001"]
    assert ds.temperature_encoding == "celsius_npy"
    assert ds.info["generator"] == "SynthTFD68" and ds.info["seed"] == 5
    assert ds.info["priors"] == load_priors()
    for record in ds.records:
        match = FILE_NAME_PATTERN.match(record.image_id)
        assert match and match.group("subject") == record.subject
        assert (record.width, record.height) == (48, 48)
        assert set(record.visibility.tolist()) <= {1, 2}
        extras = record.extras
        for key in ("head_pose", "ambient_c", "occluders", "polarity", "camera", "subject",
                    "occlusion_cause", "landmarks_3d", "skin_temperature_c"):
            assert key in extras, key
        assert extras["polarity"] == "white_hot"
        assert 20.0 <= extras["ambient_c"] <= 26.0
        assert len(extras["occlusion_cause"]) == 68 and len(extras["skin_temperature_c"]) == 68
        assert np.asarray(extras["landmarks_3d"]).shape == (68, 3)
        assert np.asarray(extras["head_pose"]["rotation"]).shape == (3, 3)
        occluded = [c != "none" for c in extras["occlusion_cause"]]
        np.testing.assert_array_equal(record.visibility == 1, occluded)
        temperature = load_temperature(record)
        assert 15.0 < float(np.median(temperature)) < 40.0
        mask = load_occluder_mask(record)
        assert mask is not None and int(mask.max()) < (1 << len(extras["occluders"]))   # bits only for listed occluders
        # The stored labels agree with the stored mask: a landmark under an occluder is occluded.
        col = np.floor(record.landmarks[:, 0]).astype(int)
        row = np.floor(record.landmarks[:, 1]).astype(int)
        under = mask[row, col] > 0
        assert np.all(record.visibility[under] == 1)
    # A subject keeps its identity in every image.
    for subject in ds.subjects:
        infos = {json.dumps(r.extras["subject"], sort_keys=True) for r in ds.records if r.subject == subject}
        assert len(infos) == 1


def test_stored_labels_agree_with_the_stored_occluder_masks(tmp_path):
    config = tmp_path / "masked.yaml"
    config.write_text(OCCLUDED_PRIORS)
    root = tmp_path / "masked"
    generate_dataset(root, subjects=2, per_subject=2, size=64, seed=4, config=config)
    for record in read_dataset(root).records:
        mask = load_occluder_mask(record)
        col = np.floor(record.landmarks[:, 0]).astype(int)
        row = np.floor(record.landmarks[:, 1]).astype(int)
        bits = mask[row, col]
        kinds = [o["type"] for o in record.extras["occluders"]]
        assert "mask" in kinds and (bits > 0).sum() >= 10          # a mask covers many landmarks
        for i in np.nonzero(bits)[0]:
            assert record.visibility[i] == 1
            covering = {kinds[k] for k in range(len(kinds)) if bits[i] >> k & 1}
            assert record.extras["occlusion_cause"][i] in covering
        assert np.all(bits[record.visibility == 2] == 0)


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(a, **SMALL, workers=1)
    generate_dataset(b, **SMALL, workers=1)
    generate_dataset(c, **SMALL, workers=2)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert da == dc
    assert len(da) == 1 + 3 * 6     # annotations + image, temperature map, occluder mask per face
    other = tmp_path / "d"
    generate_dataset(other, **dict(SMALL, seed=6))
    assert _digest(other) != da


def test_png_temperature_maps_and_parts_layout(tmp_path):
    root = tmp_path / "png"
    generate_dataset(root, subjects=1, per_subject=2, size=40, seed=1, temperature_format="png", layout="parts")
    ds = read_dataset(root)
    assert ds.temperature_encoding == "centikelvin_png" and ds.keypoint_layout == "parts"
    npy_root = tmp_path / "npy"
    generate_dataset(npy_root, subjects=1, per_subject=2, size=40, seed=1)
    npy = read_dataset(npy_root)
    for r_png, r_npy in zip(ds.records, npy.records):
        # centi-Kelvin keeps the temperature to 0.005 K.
        assert np.abs(load_temperature(r_png) - load_temperature(r_npy)).max() <= 0.0051
        np.testing.assert_allclose(r_png.landmarks, r_npy.landmarks, atol=1e-6)


def test_priors_file_shifts_distributions_and_bad_files_are_reported(tmp_path):
    good = tmp_path / "warm.yaml"
    good.write_text("ambient_c: [25.5, 26.0]\noccluders:\n  mask:\n    probability: 1.0\n")
    root = tmp_path / "warm"
    generate_dataset(root, subjects=1, per_subject=3, size=40, seed=2, config=good)
    ds = read_dataset(root)
    assert all(25.5 <= r.extras["ambient_c"] <= 26.0 for r in ds.records)
    assert all("mask" in [o["type"] for o in r.extras["occluders"]] for r in ds.records)
    assert ds.info["priors"]["ambient_c"] == [25.5, 26.0]

    typo = tmp_path / "typo.yaml"
    typo.write_text("occluders:\n  glases:\n    probability: 0.5\n")
    with pytest.raises(SynthConfigError, match=r"typo\.yaml.*occluders\.glases"):
        load_priors(typo)
    reversed_range = tmp_path / "reversed.yaml"
    reversed_range.write_text("camera:\n  distance_m: [1.5, 0.6]\n")
    with pytest.raises(SynthConfigError, match=r"reversed\.yaml.*camera\.distance_m"):
        load_priors(reversed_range)
    bad_probability = tmp_path / "prob.yaml"
    bad_probability.write_text("fever:\n  probability: 1.5\n")
    with pytest.raises(SynthConfigError, match=r"fever\.probability"):
        load_priors(bad_probability)
    with pytest.raises(SynthConfigError, match="not found"):
        load_priors(tmp_path / "missing.yaml")


def test_cli_writes_a_dataset_and_refuses_foreign_folders(tmp_path, capsys):
    root = tmp_path / "cli"
    code = cli_main(["synth", str(root), "--subjects", "1", "--per-subject", "2", "--size", "40", "--seed", "3",
                     "--quiet"])
    assert code == 0 and (root / "annotations.json").is_file()
    # Re-running into the same SynthTFD68 folder replaces it.
    assert cli_main(["synth", str(root), "--subjects", "1", "--per-subject", "1", "--size", "40", "--quiet"]) == 0
    assert len(read_dataset(root)) == 1
    assert len(list((root / "thermal").iterdir())) == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code = cli_main(["synth", str(foreign), "--subjects", "1", "--per-subject", "1", "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "foreign" in err and "no SynthTFD68 dataset" in err
    assert (foreign / "notes.txt").read_text() == "mine"
