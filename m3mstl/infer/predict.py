"""Inference: predictions for a whole split (stored in run records) and the one obvious
entry point for a single image, `m3mstl predict RUN_DIR IMAGE`.

Predicted landmarks are stored in the source image's own pixel coordinates (the
continuous convention of `m3mstl.data.records`), mapped back through the crop
affine each sample carries, so metrics never depend on the network's input size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from m3mstl.data.dataset import PreparedData
from m3mstl.core.device import to_device
from m3mstl.core.fileio import atomic_path
from m3mstl.models.base import predict_batch
from m3mstl.runs.predictions import ground_truth_arrays, write_predictions


def crop_to_image_coords(normalised: torch.Tensor, crop_to_image: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, 68, 2) landmarks in [0, 1] of the network input -> source-image pixels."""
    crop_px = normalised * input_size
    ones = torch.ones_like(crop_px[..., :1])
    homogeneous = torch.cat([crop_px, ones], dim=-1)             # (B, 68, 3)
    return torch.einsum("bij,bkj->bki", crop_to_image, homogeneous)


def prepare_eval_data(config, data_dir: Path) -> PreparedData:
    """Every image of a dataset as one split "all", prepared as the run's config says."""
    from m3mstl import paths
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.dataset import ThermalFaceDataset
    from m3mstl.runs import data_fingerprint

    dataset = read_dataset(data_dir)
    indices = np.arange(len(dataset))
    torch_set = ThermalFaceDataset(dataset, indices, input_size=config.data.input_size,
                                   margin_px=config.data.margin_px, square_crop=config.data.square_crop,
                                   cache_dir=paths.BUILD_DIR / "cache", augment=None, seed=config.seed,
                                   face_box=config.data.face_box, margin_fraction=config.data.margin_fraction)
    return PreparedData(dataset, {"all": indices}, data_fingerprint(data_dir), {"all": torch_set})


@torch.no_grad()
def predict_split(model, data, split: str, out_path: Path, *, batch_size: int, device: torch.device) -> Path:
    """Run `model.predict` over one split and store everything metrics need in an .npz."""
    from m3mstl.data.dataset import make_loader

    torch_set = data.torch_sets[split]
    loader = make_loader(torch_set, batch_size, shuffle=False, seed=0)
    input_size = torch_set.input_size
    model.eval()
    chunks: dict[str, list[Any]] = {}
    for batch in loader:
        out = predict_batch(model, to_device(batch, device))
        landmarks_img = crop_to_image_coords(out["landmarks"].float().cpu(), batch["crop_to_image"], input_size)
        _append(chunks, "pred_landmarks", landmarks_img.numpy())
        _append(chunks, "pred_landmarks_crop", out["landmarks"].float().cpu().numpy())
        _append(chunks, "occlusion_prob", out["occlusion_prob"].float().cpu().numpy())
        _append(chunks, "record_index", batch["index"].numpy())
        _append(chunks, "crop_to_image", batch["crop_to_image"].numpy())
        if "pose" in out:
            _append(chunks, "pred_pose", out["pose"].float().cpu().numpy())
            _append(chunks, "pred_rotation", out["rotation"].float().cpu().numpy())
    arrays = {k: np.concatenate(v) for k, v in chunks.items()}
    records = [data.dataset.records[i] for i in arrays["record_index"]]
    arrays.update(ground_truth_arrays(records))
    arrays["input_size"] = np.array(input_size)
    return write_predictions(out_path, arrays)


def _append(chunks: dict[str, list[Any]], key: str, value: Any) -> None:
    chunks.setdefault(key, []).append(value)


# -- one image ---------------------------------------------------------------------------------
def _read_image(path: Path) -> np.ndarray:
    """A thermal image file as float32 in [0, 1], decoded exactly as training decodes it
    (`m3mstl.data.coco.read_image_file`); a colour file is read as its luminance with a
    DatasetWarning: a colour-mapped view is not the camera's single channel."""
    import warnings

    from m3mstl.data.coco import image_to_unit_range, is_colour_image, read_image_file
    from m3mstl.data.errors import DatasetWarning

    image = image_to_unit_range(read_image_file(path))
    if is_colour_image(path):
        warnings.warn(f"{path}: colour image read as its luminance; thermal images are single-channel",
                      DatasetWarning, stacklevel=2)
    return image


def check_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    """The face box (x, y, w, h) to use on a width x height image: errors (UsageError naming
    --box) for non-finite numbers, a non-positive size or a box that misses the image; a box
    that overlaps the image's border is clipped to it with a warning."""
    import math
    import warnings

    from m3mstl.data.errors import DatasetWarning
    from m3mstl.errors import UsageError

    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise UsageError("--box", f"expects 4 finite numbers X,Y,W,H, got {box}")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise UsageError("--box", f"a face box needs a positive width and height, got {box}")
    left, top, right, bottom = max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height))
    if right <= left or bottom <= top:
        raise UsageError("--box", f"box {x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} image")
    # Compared edge by edge, not as the rebuilt (x, y, w, h): (x + w) - x need not equal w in floating
    # point, which made a box wholly inside the image "clipped".
    if x >= 0 and y >= 0 and x + w <= width and y + h <= height:
        return (x, y, w, h)
    clipped = (left, top, right - left, bottom - top)
    warnings.warn(f"--box {x:g},{y:g},{w:g},{h:g} reaches past the {width}x{height} image; clipped to "
                  f"{clipped[0]:g},{clipped[1]:g},{clipped[2]:g},{clipped[3]:g}", DatasetWarning, stacklevel=2)
    return clipped


def crop_for_box(config, width: int, height: int,
                 box: tuple[float, float, float, float] | None) -> tuple[float, float, float, float]:
    """The crop region for a face box, with the run's margin and squaring (as in training);
    without a box the whole image is taken to be a ready face crop."""
    from m3mstl.data.dataset import expand_box

    if box is None:
        return (0.0, 0.0, float(width), float(height))
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"a face box needs a positive width and height, got {box}")
    return expand_box(box, config.data.margin_px, config.data.square_crop,
                      getattr(config.data, "margin_fraction", 0.0))


@torch.no_grad()
def predict_arrays(model, config, image: np.ndarray, temperature: np.ndarray | None,
                   box: tuple[float, float, float, float] | None = None, device: str = "cpu") -> dict[str, Any]:
    """Model outputs for one image held in memory: image (H, W) float in [0, 1], temperature
    (H, W) deg C or None. Returns landmarks (68, 2) in the image's pixels, occlusion_prob (68,),
    the crop box, and pose (yaw, pitch, roll) for models that predict it."""
    from m3mstl.data.dataset import crop_affine, resample_region

    size = config.data.input_size
    height, width = image.shape
    crop = crop_for_box(config, width, height, box)
    image_t = torch.from_numpy(np.array(np.clip(resample_region(image, crop, size), 0, 1)))[None, None].float()
    temp_t = None
    if temperature is not None:
        temp_t = torch.from_numpy(np.array(resample_region(temperature, crop, size, pad="edge")))[None, None].float()
        temp_t = temp_t.to(device)
    out = model.predict(image_t.to(device), temp_t)
    affine = torch.from_numpy(crop_affine(crop, size)).float()[None]
    result = {"landmarks": crop_to_image_coords(out["landmarks"].float().cpu(), affine, size)[0].numpy(),
              "occlusion_prob": out["occlusion_prob"][0].float().cpu().numpy(), "crop_box": crop}
    if "pose" in out:
        result["pose"] = out["pose"][0].float().cpu().numpy()
    return result


def landmark_extent(points: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the finite points among (68, 2): the kind of box the models train on (`bbox`)."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        raise ValueError("landmark_extent: no finite landmark")
    low, high = points.min(axis=0), points.max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


def predict_refined(model, config, image: np.ndarray, temperature: np.ndarray | None,
                    box: tuple[float, float, float, float], device: str = "cpu", passes: int = 1) -> dict[str, Any]:
    """`predict_arrays` on a rough face box (a detector's, mapped), then `passes` more times on the
    extent of the landmarks just predicted: the box kind the model was trained on, so each pass
    brings the crop closer to training's. Adds `first_box` (the box given) to the result."""
    result = predict_arrays(model, config, image, temperature, box, device)
    for _ in range(int(passes)):
        result = predict_arrays(model, config, image, temperature, landmark_extent(result["landmarks"]), device)
    result["first_box"] = tuple(float(v) for v in box)
    return result


def predict_coarse_to_fine(coarse: tuple[Any, Any], model, config, image: np.ndarray, temperature: np.ndarray | None,
                           head_box: tuple[float, float, float, float], device: str = "cpu",
                           passes: int = 1) -> dict[str, Any]:
    """Landmarks from a head box in two stages: `coarse` (model, config), a run trained on head boxes,
    places the face from the detector's box; the extent of its landmarks is the box kind the fine
    run (`model`, `config`, trained on landmark-extent crops) learnt from, so the fine run reads the
    face from it, then `passes` more times from the extent of its own landmarks
    (`predict_refined`). Adds `coarse_box` (the head box) and `first_box` (the coarse extent)."""
    coarse_model, coarse_config = coarse
    placed = predict_arrays(coarse_model, coarse_config, image, temperature, head_box, device)
    result = predict_refined(model, config, image, temperature, landmark_extent(placed["landmarks"]), device, passes)
    result["coarse_box"] = tuple(float(v) for v in head_box)
    return result


def predict_image(run_dir: Path, image_path: Path, *, temperature_path: Path | None = None,
                  box: tuple[float, float, float, float] | None = None, device: str = "cpu",
                  radiometric: bool = False, reading=None) -> dict[str, Any]:
    """68 landmarks in the image's own pixel coordinates with their occlusion probability
    and the temperature read there, and the face's inner-canthus reading (`canthus`,
    `m3mstl.infer.canthus.read_face` with `reading`, default the run's own settings).

    `box` (x, y, w, h) is the face box in a whole camera frame; the crop adds the run's
    margin and squaring exactly as in training. Without a box the image is taken to be a
    ready face crop and is used whole. The temperature map is `temperature_path`, or the image
    itself when `radiometric` (a 16-bit centi-Kelvin image); with neither, the temperatures are
    null and a DatasetWarning says so.
    """
    import warnings

    from m3mstl.data.coco import read_temperature_file
    from m3mstl.data.errors import DatasetError, DatasetWarning
    from m3mstl.infer.canthus import load_reading_settings, read_face
    from m3mstl.runs import load_config, load_model

    run_dir, image_path = Path(run_dir), Path(image_path)
    config = load_config(run_dir)  # a broken run folder is reported before the image is read
    reading = reading if reading is not None else load_reading_settings(run_dir)
    image = _read_image(image_path)
    height, width = image.shape
    if box is not None:
        box = check_box(box, width, height)
    temperature = None
    if radiometric:
        temperature_path = image_path
    if temperature_path is None:
        warnings.warn(f"{image_path}: no radiometric temperature map (give --temperature MAP, or --radiometric for a "
                      "16-bit centi-Kelvin image): temperatures are null", DatasetWarning, stacklevel=2)
    else:
        temperature = read_temperature_file(Path(temperature_path))
        if temperature.shape != image.shape:
            raise DatasetError(Path(temperature_path), f"temperature map is {temperature.shape[1]}x{temperature.shape[0]}"
                                                       f" but the image is {width}x{height}")
        if not np.isfinite(temperature).all():
            raise DatasetError(Path(temperature_path), "temperature map holds NaN or infinite values")
    out = predict_arrays(load_model(run_dir, device=device), config, image, temperature, box, device)
    landmarks = []
    for i, ((x, y), p) in enumerate(zip(out["landmarks"], out["occlusion_prob"])):
        entry = {"index": i, "x": round(float(x), 3), "y": round(float(y), 3), "occlusion_prob": round(float(p), 4)}
        if temperature is not None:
            entry["temperature_c"] = round(temperature_at(temperature, x, y), 3)
        landmarks.append(entry)
    result: dict[str, Any] = {"image": str(image_path), "run": str(run_dir), "width": width, "height": height,
                              "crop_box": [round(v, 3) for v in out["crop_box"]], "landmarks": landmarks,
                              "temperature_map": None if temperature_path is None else str(temperature_path),
                              "canthus": {**read_face(temperature, out["landmarks"], out["occlusion_prob"], reading),
                                          "settings": reading.as_dict()}}
    if "pose" in out:
        yaw, pitch, roll = (float(v) for v in out["pose"])
        result["head_pose"] = {"yaw": yaw, "pitch": pitch, "roll": roll}
    return result


def temperature_at(temperature: np.ndarray, x: float, y: float) -> float:
    """The map's value in the pixel containing the continuous point (x, y), clamped to the map."""
    height, width = temperature.shape
    col, row = int(np.clip(np.floor(x), 0, width - 1)), int(np.clip(np.floor(y), 0, height - 1))
    return float(temperature[row, col])
