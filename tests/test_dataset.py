"""ThermalFaceDataset: crop geometry, the batch contract, augmentation, the crop cache, the loader."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import m3mstl.data.dataset as dataset_module
from conftest import FACE_TEMPLATE, make_tiny_dataset
from m3mstl.data.coco import read_dataset, write_annotations, write_sample
from m3mstl.data.dataset import AugmentConfig, ThermalFaceDataset, crop_box, make_loader
from m3mstl.core.landmarks import MIRROR
from m3mstl.core.pose import rotation_from_euler

torch.set_num_threads(1)

STRONG = AugmentConfig(scale_range=(0.8, 1.2), rotation_deg=30.0, translation_frac=0.1, hflip_prob=0.5,
                       noise_sigma=0.0, blur_sigma_range=(0.0, 0.0), polarity_inversion_prob=0.0)


def _back_to_image(sample: dict) -> np.ndarray:
    """Map a sample's normalised landmarks back to original image pixels with crop_to_image."""
    size = sample["image"].shape[-1]
    affine = sample["crop_to_image"].double().numpy()
    return (sample["landmarks"].double().numpy() * size) @ affine[:, :2].T + affine[:, 2]


@pytest.fixture
def tiny(tmp_path: Path):
    return read_dataset(make_tiny_dataset(tmp_path / "tiny", n_subjects=2, images_per_subject=2))


def test_batch_contract(tiny) -> None:
    ds = ThermalFaceDataset(tiny, np.arange(len(tiny)), 32, augment=AugmentConfig())
    batch = next(iter(make_loader(ds, batch_size=3, shuffle=False, seed=0)))
    expected = {"image": ((3, 1, 32, 32), torch.float32), "temperature": ((3, 1, 32, 32), torch.float32),
                "has_temperature": ((3,), torch.bool), "landmarks": ((3, 68, 2), torch.float32),
                "visibility": ((3, 68), torch.int64), "occluded": ((3, 68), torch.float32),
                "labelled": ((3, 68), torch.bool), "occluder_mask": ((3, 1, 32, 32), torch.float32),
                "has_occluder_mask": ((3,), torch.bool), "pose": ((3, 3), torch.float32),
                "rotation": ((3, 3, 3), torch.float32), "has_pose": ((3,), torch.bool),
                "index": ((3,), torch.int64), "crop_to_image": ((3, 2, 3), torch.float32)}
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape and batch[key].dtype == dtype, key
    assert batch["image_id"] == [r.image_id for r in tiny.records[:3]]
    assert batch["subject"] == ["001", "001", "002"]
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert set(batch["occluder_mask"].unique().tolist()) <= {0.0, 1.0}
    # Skin and ambient temperatures of the fixture, never an encoding artefact.
    assert 15.0 < batch["temperature"].min() and batch["temperature"].max() < 37.0
    np.testing.assert_array_equal(batch["occluded"].numpy(), (batch["visibility"] == 1).numpy())
    assert batch["occluded"][1, 36:48].all() and not batch["occluded"][0].any()  # glasses on image 1
    rotation = batch["rotation"].double()
    np.testing.assert_allclose(rotation @ rotation.transpose(1, 2), np.broadcast_to(np.eye(3), (3, 3, 3)),
                               atol=1e-5)


@pytest.mark.parametrize("square", [True, False])
def test_crop_resize_round_trip_of_landmarks(tiny, square: bool) -> None:
    ds = ThermalFaceDataset(tiny, np.arange(len(tiny)), 40, square_crop=square)
    for position in range(len(ds)):
        sample = ds[position]
        record = tiny.records[position]
        assert np.abs(_back_to_image(sample) - record.landmarks).max() < 0.5
        affine = sample["crop_to_image"].numpy()
        assert (affine[0, 0] == pytest.approx(affine[1, 1])) == square or not square


def test_crop_box_golden_values(tmp_path: Path) -> None:
    image = np.zeros((80, 100), np.uint8)
    landmarks = 30 + 10 * FACE_TEMPLATE
    entry = write_sample(tmp_path, "thermal_001_0_0", "001", image, None, landmarks, np.full(68, 2),
                         bbox=(20.0, 10.0, 40.0, 20.0))
    write_annotations(tmp_path, [entry])
    dataset = read_dataset(tmp_path)
    # bbox + 5 px margin = (15, 5, 50, 30); the square of side 50 about its centre starts at y = -5.
    assert crop_box(dataset.records[0], 5.0, square=True) == (15.0, -5.0, 50.0, 50.0)
    assert crop_box(dataset.records[0], 5.0, square=False) == (15.0, 5.0, 50.0, 30.0)
    sample = ThermalFaceDataset(dataset, [0], 25)[0]
    np.testing.assert_allclose(sample["crop_to_image"].numpy(), [[2.0, 0.0, 15.0], [0.0, 2.0, -5.0]])


def test_area_resize_averages_source_pixels(tmp_path: Path) -> None:
    # A ramp of 4 * column: halving it with area averaging gives (4 * 2j + 4 * (2j + 1)) / 2 = 8j + 2.
    image = np.tile((4 * np.arange(64)).astype(np.uint8), (64, 1))
    landmarks = np.column_stack([np.linspace(0.5, 63.5, 68), np.linspace(0.5, 63.5, 68)])
    entry = write_sample(tmp_path, "thermal_001_0_0", "001", image, None, landmarks, np.full(68, 2),
                         bbox=(0.0, 0.0, 64.0, 64.0))
    write_annotations(tmp_path, [entry])
    sample = ThermalFaceDataset(read_dataset(tmp_path), [0], 32, margin_px=0.0)[0]
    expected = (8 * np.arange(32) + 2) / 255.0
    np.testing.assert_allclose(sample["image"][0].numpy(), np.tile(expected, (32, 1)), atol=1e-5)
    np.testing.assert_allclose(sample["landmarks"].numpy(), landmarks / 64.0, atol=1e-6)


def _dot_dataset(root: Path, feature: int = 36):
    """A black image with a bright Gaussian dot exactly at landmark ``feature``, also in temperature and mask."""
    size = 96
    landmarks = np.array([48.0, 44.0]) + 30.0 * FACE_TEMPLATE
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    blob = np.exp(-((xs - landmarks[feature, 0]) ** 2 + (ys - landmarks[feature, 1]) ** 2) / (2 * 1.5 ** 2))
    mask = (np.hypot(xs - landmarks[feature, 0], ys - landmarks[feature, 1]) < 2.0).astype(np.uint8)
    visibility = np.full(68, 2)
    visibility[36:42] = 1  # only the subject's right eye is occluded: asymmetric on purpose
    entry = write_sample(root, "thermal_001_0_0", "001", np.round(255 * blob).astype(np.uint8),
                         (20.0 + 15.0 * blob).astype(np.float32), landmarks, visibility, occluder_mask=mask,
                         image_fields={"head_pose": {"yaw": 12.0, "pitch": -4.0, "roll": 6.0,
                                                     "rotation": rotation_from_euler(12.0, -4.0, 6.0)}})
    write_annotations(root, [entry])
    return read_dataset(root), landmarks[feature]


def _centroid(weights: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:weights.shape[0], 0:weights.shape[1]] + 0.5
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


def test_augmentation_keeps_landmarks_on_their_image_feature(tmp_path: Path) -> None:
    dataset, dot = _dot_dataset(tmp_path)
    ds = ThermalFaceDataset(dataset, [0], 48, augment=STRONG, seed=3)
    flips = set()
    for epoch in range(10):
        ds.set_epoch(epoch)
        sample = ds[0]
        landmarks = sample["landmarks"].numpy() * 48
        # A flip reverses orientation; relabelling then calls the dot (old point 36) point MIRROR[36] = 45.
        flipped = np.linalg.det(sample["crop_to_image"].numpy()[:, :2]) < 0
        flips.add(bool(flipped))
        feature = MIRROR[36] if flipped else 36
        for channel, weights in (("image", sample["image"][0].numpy()),
                                 ("temperature", sample["temperature"][0].numpy() - 20.0),
                                 ("occluder_mask", sample["occluder_mask"][0].numpy())):
            found = _centroid(weights)
            assert np.linalg.norm(found - landmarks[feature]) < 1.0, (epoch, channel)
        # ... and crop_to_image carries the dot back to where it is in the original image.
        affine = sample["crop_to_image"].double().numpy()
        image_centroid = _centroid(sample["image"][0].numpy())
        assert np.linalg.norm(affine[:, :2] @ image_centroid + affine[:, 2] - dot) < 1.5
        np.testing.assert_allclose(_back_to_image(sample), dataset.records[0].landmarks[MIRROR if flipped else
                                                                                         np.arange(68)], atol=1e-3)
    assert flips == {True, False}  # both branches were exercised


def test_flip_swaps_visibility_and_pose(tmp_path: Path) -> None:
    dataset, _ = _dot_dataset(tmp_path)
    flip_only = AugmentConfig(scale_range=(1.0, 1.0), rotation_deg=0.0, translation_frac=0.0, hflip_prob=1.0,
                              noise_sigma=0.0, blur_sigma_range=(0.0, 0.0))
    plain = ThermalFaceDataset(dataset, [0], 48)[0]
    flipped = ThermalFaceDataset(dataset, [0], 48, augment=flip_only)[0]
    np.testing.assert_array_equal(flipped["visibility"].numpy(), plain["visibility"].numpy()[MIRROR])
    assert flipped["occluded"][42:48].all() and not flipped["occluded"][36:42].any()
    np.testing.assert_allclose(flipped["landmarks"][:, 0].numpy(), 1.0 - plain["landmarks"].numpy()[MIRROR, 0],
                               atol=1e-6)
    np.testing.assert_allclose(flipped["image"][0].numpy(), plain["image"][0].numpy()[:, ::-1], atol=1e-5)
    np.testing.assert_allclose(flipped["pose"].numpy(), [-12.0, -4.0, -6.0], atol=1e-4)


def test_rotation_augmentation_updates_roll_consistently_with_the_landmarks(tiny) -> None:
    # Fixture faces have yaw = pitch = 0, so the roll is the on-screen angle of the eye line.
    ds = ThermalFaceDataset(tiny, np.arange(len(tiny)), 48, augment=STRONG, seed=1)
    for position in range(len(ds)):
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            sample = ds[position]
            eyes = sample["landmarks"].numpy()
            dx, dy = eyes[42:48].mean(axis=0) - eyes[36:42].mean(axis=0)
            # Stretch-free crop: the normalised x and y share one scale.
            assert sample["pose"][2].item() == pytest.approx(np.degrees(np.arctan2(-dy, dx)), abs=0.05)


def test_photometric_augmentation_never_touches_temperature(tiny) -> None:
    invert = dataclasses.replace(AugmentConfig.off(), polarity_inversion_prob=1.0)
    noisy = AugmentConfig(scale_range=(1.0, 1.0), rotation_deg=0.0, translation_frac=0.0, hflip_prob=0.0,
                          noise_sigma=0.05, blur_sigma_range=(0.5, 1.5), polarity_inversion_prob=0.5)
    plain = ThermalFaceDataset(tiny, [1], 32)[0]
    inverted = ThermalFaceDataset(tiny, [1], 32, augment=invert)[0]
    np.testing.assert_allclose(inverted["image"].numpy(), 1.0 - plain["image"].numpy(), atol=1e-6)
    changed = ThermalFaceDataset(tiny, [1], 32, augment=noisy)[0]
    assert (changed["image"] - plain["image"]).abs().mean() > 0.01
    for sample in (inverted, changed):
        np.testing.assert_array_equal(sample["temperature"].numpy(), plain["temperature"].numpy())
        np.testing.assert_array_equal(sample["landmarks"].numpy(), plain["landmarks"].numpy())


def test_augmentation_is_reproducible_per_seed_epoch_and_index(tiny) -> None:
    ds = ThermalFaceDataset(tiny, np.arange(len(tiny)), 32, augment=AugmentConfig(), seed=7)
    first = ds[2]
    _ = ds[0], ds[3]  # access order must not matter
    again = ds[2]
    for key in ("image", "landmarks", "crop_to_image", "pose"):
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], first["image"])
    other_split = ThermalFaceDataset(tiny, [2], 32, augment=AugmentConfig(), seed=7)  # same record, position 0
    torch.testing.assert_close(other_split[0]["landmarks"], first["landmarks"], rtol=0, atol=0)


def test_workers_do_not_change_the_samples(tiny) -> None:
    ds = ThermalFaceDataset(tiny, np.arange(len(tiny)), 24, augment=AugmentConfig(), seed=5)
    ds.set_epoch(2)
    serial = list(make_loader(ds, batch_size=2, shuffle=True, seed=11, num_workers=0))
    parallel = list(make_loader(ds, batch_size=2, shuffle=True, seed=11, num_workers=2))
    assert [b["image_id"] for b in serial] == [b["image_id"] for b in parallel]
    for a, b in zip(serial, parallel):
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
        torch.testing.assert_close(a["landmarks"], b["landmarks"], rtol=0, atol=0)


def test_cache_serves_later_epochs_and_runs_without_reading_files(tiny, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    ds = ThermalFaceDataset(tiny, np.arange(len(tiny)), 32, augment=AugmentConfig(), cache_dir=cache)
    first = [ds[i] for i in range(len(ds))]
    assert ds.cache is not None and ds.cache.filled_count() == len(ds)

    def refuse(*args, **kwargs):
        raise AssertionError("a cached epoch read an original file")

    for name in ("load_image", "load_temperature", "load_occluder_mask"):
        monkeypatch.setattr(dataset_module, name, refuse)
    for i in range(len(ds)):  # the same epoch again: identical samples
        torch.testing.assert_close(ds[i]["image"], first[i]["image"], rtol=0, atol=0)
    ds.set_epoch(1)
    _ = [ds[i] for i in range(len(ds))]
    later_run = ThermalFaceDataset(tiny, np.arange(len(tiny)), 32, augment=AugmentConfig(), cache_dir=cache)
    torch.testing.assert_close(later_run[0]["temperature"], first[0]["temperature"], rtol=0, atol=0)
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1
    # Other crop settings are another cache entry (which must read the files again).
    with pytest.raises(AssertionError, match="read an original file"):
        ThermalFaceDataset(tiny, np.arange(len(tiny)), 32, margin_px=8.0, cache_dir=cache)[0]


def test_cached_and_uncached_samples_agree(tiny, tmp_path: Path) -> None:
    cached = ThermalFaceDataset(tiny, [0, 1], 32, cache_dir=tmp_path / "c")
    direct = ThermalFaceDataset(tiny, [0, 1], 32)
    for i in range(2):
        # The cache stores the view as float16: within half a float16 step of the float32 crop.
        torch.testing.assert_close(cached[i]["image"], direct[i]["image"], rtol=0, atol=5e-4)
        torch.testing.assert_close(cached[i]["temperature"], direct[i]["temperature"], rtol=0, atol=0)
        torch.testing.assert_close(cached[i]["occluder_mask"], direct[i]["occluder_mask"], rtol=0, atol=0)


def test_missing_modalities_give_zeros_and_flags(tmp_path: Path) -> None:
    dataset = read_dataset(make_tiny_dataset(tmp_path, n_subjects=1, images_per_subject=1,
                                             temperature_format=None, with_occluders=False, with_pose=False))
    sample = ThermalFaceDataset(dataset, [0], 16, cache_dir=tmp_path / "cache")[0]
    assert not sample["has_temperature"] and not sample["has_occluder_mask"] and not sample["has_pose"]
    assert not sample["temperature"].any() and not sample["occluder_mask"].any()
    torch.testing.assert_close(sample["rotation"], torch.eye(3))
