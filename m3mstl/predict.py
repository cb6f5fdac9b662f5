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

from m3mstl.fileio import atomic_path
from m3mstl.metrics import occluder_group


def crop_to_image_coords(normalised: torch.Tensor, crop_to_image: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, 68, 2) landmarks in [0, 1] of the network input -> source-image pixels."""
    crop_px = normalised * input_size
    ones = torch.ones_like(crop_px[..., :1])
    homogeneous = torch.cat([crop_px, ones], dim=-1)             # (B, 68, 3)
    return torch.einsum("bij,bkj->bki", crop_to_image, homogeneous)


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
        image = batch["image"].to(device)
        temperature = batch["temperature"].to(device)
        out = model.predict(image, temperature)
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
    arrays["gt_landmarks"] = np.stack([r.landmarks for r in records]).astype(np.float64)
    arrays["visibility"] = np.stack([r.visibility for r in records]).astype(np.int8)
    arrays["image_id"] = np.array([r.image_id for r in records])
    arrays["subject"] = np.array([r.subject for r in records])
    arrays["input_size"] = np.array(input_size)
    # Per-image labels the breakdowns need, kept with the predictions so evaluation
    # does not have to reopen the dataset.
    arrays["occluder_group"] = np.array([occluder_group([o.get("type", "unknown") for o in
                                                         r.extras.get("occluders", [])]) for r in records])
    poses = [r.extras.get("head_pose") for r in records]
    if all(p is not None for p in poses):
        arrays["gt_pose"] = np.array([[p["yaw"], p["pitch"], p["roll"]] for p in poses], dtype=np.float64)
        arrays["gt_rotation"] = np.array([p["rotation"] for p in poses], dtype=np.float64)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return out_path


def _append(chunks: dict[str, list[Any]], key: str, value: Any) -> None:
    chunks.setdefault(key, []).append(value)


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
