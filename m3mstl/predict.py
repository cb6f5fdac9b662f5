"""Inference: predictions for a whole split (stored in run records) and the one obvious
entry point for a single image, `m3mstl predict RUN_DIR IMAGE`.

Predicted landmarks are stored in the source image's own pixel coordinates (the
continuous convention of `m3mstl.data.records`), mapped back through the crop
affine each sample carries, so metrics never depend on the network's input size.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m3mstl.data.dataset import PreparedData
from m3mstl.device import to_device  # noqa: F401  (re-exported: the old import path)
from m3mstl.fileio import atomic_path
from m3mstl.metrics import occluder_group
from m3mstl.models.base import predict_batch


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
                                   cache_dir=paths.BUILD_DIR / "cache", augment=None, seed=config.seed)
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
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return out_path


def ground_truth_arrays(records) -> dict[str, np.ndarray]:
    """What evaluation needs of the records beside the predictions: ground truth, ids and the
    per-image labels of the breakdowns, kept with the predictions so evaluation does not have
    to reopen the dataset (shared by every model's prediction files)."""
    arrays = {
        "gt_landmarks": np.stack([r.landmarks for r in records]).astype(np.float64),
        "visibility": np.stack([r.visibility for r in records]).astype(np.int8),
        "image_id": np.array([r.image_id for r in records]),
        "subject": np.array([r.subject for r in records]),
        "occluder_group": np.array([occluder_group([o.get("type", "unknown") for o in r.extras.get("occluders", [])])
                                    for r in records]),
    }
    poses = [r.extras.get("head_pose") for r in records]
    if all(p is not None for p in poses):
        arrays["gt_pose"] = np.array([[p["yaw"], p["pitch"], p["roll"]] for p in poses], dtype=np.float64)
        arrays["gt_rotation"] = np.array([p["rotation"] for p in poses], dtype=np.float64)
    return arrays


def _append(chunks: dict[str, list[Any]], key: str, value: Any) -> None:
    chunks.setdefault(key, []).append(value)


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# -- one image ---------------------------------------------------------------------------------
def _read_image(path: Path) -> np.ndarray:
    """A thermal image file as float32 in [0, 1], decoded exactly as training decodes it."""
    from m3mstl.data.coco import image_to_unit_range, read_image_file

    return image_to_unit_range(read_image_file(path))


def crop_for_box(config, width: int, height: int,
                 box: tuple[float, float, float, float] | None) -> tuple[float, float, float, float]:
    """The crop region for a face box, with the run's margin and squaring (as in training);
    without a box the whole image is taken to be a ready face crop."""
    from m3mstl.data.dataset import expand_box

    if box is None:
        return (0.0, 0.0, float(width), float(height))
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"a face box needs a positive width and height, got {box}")
    return expand_box(box, config.data.margin_px, config.data.square_crop)


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


def predict_image(run_dir: Path, image_path: Path, *, temperature_path: Path | None = None,
                  box: tuple[float, float, float, float] | None = None, device: str = "cpu") -> dict[str, Any]:
    """68 landmarks in the image's own pixel coordinates with their occlusion probability
    and the temperature read there.

    `box` (x, y, w, h) is the face box in a whole camera frame; the crop adds the run's
    margin and squaring exactly as in training. Without a box the image is taken to be a
    ready face crop and is used whole.
    """
    from m3mstl.data.coco import read_temperature_file
    from m3mstl.data.errors import DatasetError
    from m3mstl.runs import load_config, load_model

    run_dir, image_path = Path(run_dir), Path(image_path)
    image = _read_image(image_path)
    height, width = image.shape
    temperature = None
    if temperature_path is not None:
        temperature = read_temperature_file(Path(temperature_path))
        if temperature.shape != image.shape:
            raise DatasetError(Path(temperature_path), f"temperature map is {temperature.shape[1]}x{temperature.shape[0]}"
                                                       f" but the image is {width}x{height}")
        if not np.isfinite(temperature).all():
            raise DatasetError(Path(temperature_path), "temperature map holds NaN or infinite values")
    out = predict_arrays(load_model(run_dir, device=device), load_config(run_dir), image, temperature, box, device)
    landmarks = []
    for i, ((x, y), p) in enumerate(zip(out["landmarks"], out["occlusion_prob"])):
        entry = {"index": i, "x": round(float(x), 3), "y": round(float(y), 3), "occlusion_prob": round(float(p), 4)}
        if temperature is not None:
            entry["temperature_c"] = round(temperature_at(temperature, x, y), 3)
        landmarks.append(entry)
    result: dict[str, Any] = {"image": str(image_path), "run": str(run_dir), "width": width, "height": height,
                              "crop_box": [round(v, 3) for v in out["crop_box"]], "landmarks": landmarks}
    if "pose" in out:
        yaw, pitch, roll = (float(v) for v in out["pose"])
        result["head_pose"] = {"yaw": yaw, "pitch": pitch, "roll": roll}
    return result


def temperature_at(temperature: np.ndarray, x: float, y: float) -> float:
    """The map's value in the pixel containing the continuous point (x, y), clamped to the map."""
    height, width = temperature.shape
    col, row = int(np.clip(np.floor(x), 0, width - 1)), int(np.clip(np.floor(y), 0, height - 1))
    return float(temperature[row, col])


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a finished run folder runs/<model>/<run-id>")
    parser.add_argument("image", type=Path, nargs="+",
                        help="thermal images (8- or 16-bit), folders of them, or multi-page TIFF sequences")
    parser.add_argument("--temperature", type=Path, default=None,
                        help="its temperature map: float deg C .npy or 16-bit centi-Kelvin PNG/TIFF")
    parser.add_argument("--box", default=None, help="face box X,Y,W,H in image pixels (default: whole image)")
    parser.add_argument("--device", default="cpu")
    # Frames (m3mstl.frames): faces are detected when no --box is given.
    parser.add_argument("--whole-image", action="store_true",
                        help="one image, taken whole as a ready face crop (no detection): the single-image JSON")
    parser.add_argument("--out", type=Path, default=None, help="write the rows here (default: standard output)")
    parser.add_argument("--format", choices=("json", "csv"), default="json", help="rows as JSON or CSV")
    parser.add_argument("--overlays", type=Path, default=None, help="folder for overlay PNGs (boxes, landmarks)")
    parser.add_argument("--temperature-dir", type=Path, default=None,
                        help="folder of temperature maps named like the frames (default: DATA/temperature)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    box = None
    if args.box:
        try:
            box = tuple(float(v) for v in args.box.split(","))
        except ValueError:
            raise SystemExit(f"--box expects X,Y,W,H numbers, got {args.box!r}") from None
        if len(box) != 4:
            raise SystemExit(f"--box expects 4 numbers X,Y,W,H, got {args.box!r}")
    if args.whole_image:
        if len(args.image) != 1:
            raise SystemExit("--whole-image takes exactly one image")
        result = predict_image(args.run_dir, args.image[0], temperature_path=args.temperature, box=box,
                               device=args.device)
        print(json.dumps(result, indent=2))
        return 0
    return _run_frames(args, box)


def _run_frames(args: argparse.Namespace, box: tuple[float, float, float, float] | None) -> int:
    """Batch prediction on frames (m3mstl.frames); exit code 1 when some frame failed."""
    import sys

    from m3mstl.frames import predict_frames, write_rows

    temperature_dir = args.temperature_dir
    if args.temperature is not None and temperature_dir is None:
        temperature_dir = Path(args.temperature).parent
    rows = list(predict_frames(args.run_dir, args.image, temperature_dir=temperature_dir, box=box,
                               overlays=args.overlays, device=args.device,
                               progress=not args.quiet and sys.stderr.isatty()))
    text = write_rows(rows, args.out, args.format)
    if args.out is None:
        print(text)
    failed = [row for row in rows if row.get("error")]
    for row in failed:
        print(f"m3mstl predict: error: {row['error']}", file=sys.stderr)
    faces = sum(1 for row in rows if row.get("box") is not None)
    frames = len({(row["file"], row["page"]) for row in rows})
    print(f"{frames} frames, {faces} faces, {len(failed)} unreadable"
          + (f"; rows in {args.out}" if args.out else ""), file=sys.stderr)
    return 1 if failed else 0
