"""A small trained thermal face detector: face centres and box sizes from a timm trunk.

Why a trained one beside the rule-based detector (`m3mstl.detection.rule_based`): the rules segment skin-warm
pixels, and a hand or an arm at skin temperature across the face, or a warm object touching the
head, joins the face's blob and stretches its box (the misses left in `docs/thermometry.md`). A
network that has seen such frames learns where a head is from its shape and its surroundings.

The method is CenterNet's ("Objects as Points", Zhou et al. 2019), cut down to one class:

- input: the frame's temperature map resized (area) to `input_width` x `input_height`, as two
  channels: temperature above the frame's room level (its 30th percentile) and temperature
  against skin (34 C), each in units of a few degrees and clipped (`frame_input`);
- network: a timm trunk (`features_only`, cut at `stride`: ResNet-18's second stage at stride 8)
  and a 3x3 + 1x1 head giving, per cell, a face-centre logit, the centre's offset within the cell
  and the box's log width and height as fractions of the frame (`build_network`);
- decoding: 3x3 local maxima of the centre map at or above `threshold`, best first, at most
  `max_faces`: several faces, or none (`decode`).

This module is the detector at inference: `TrainedFaceDetector.load(run_dir)` is a face finder
(`detect.face_finder`): call it on a temperature map (deg C) for a list of `detect.Detection`;
`m3mstl predict RUN FRAMES --detector runs/detector/<run-id>` uses it. Training (targets, loss,
augmentation, the run record) is `m3mstl.train.detector` (`m3mstl detector DATA`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from m3mstl.detection.base import Detection
from m3mstl.errors import UnknownOptionError
from m3mstl.profiles import FACE_DETECTOR

#: Bump when a change here changes what a run with the same settings learns (part of the run id).
FACE_DETECTOR_VERSION = 1
ROOM_PERCENTILE = 30.0   # the room level: background is seen past even a close face (as detect.py)
SKIN_REFERENCE_C = 34.0  # facial skin reads about 30-37 C indoors (docs/thermometry.md)


@dataclass(frozen=True)
class FaceDetectorSettings:
    """What a trained detector run is made of (all of it goes into its run id)."""

    trunk: str = "resnet18"
    input_width: int = 128
    input_height: int = 96
    stride: int = 8                      # the trunk's output stride: one cell per 8x8 input pixels
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    two_frame_fraction: float = 0.25     # batches' frames made of two frames side by side
    shrink_fraction: float = 0.30        # ... shrunk to 0.5-0.9 of the frame onto its room level
    threshold: float = 0.2               # centre score a detection needs
    max_faces: int = 5
    max_train_frames: int | None = None  # a cheaper run on the first frames of the training split
    # "none": the trunk cut at `stride` (its receptive field at stride 8 is about 100 input pixels);
    # "fpn": the whole trunk, its deeper levels (stride 16, 32) added back top-down to `stride`
    # (a feature pyramid, Lin et al. 2017), so a large face and the body below it are seen whole.
    neck: str = "none"


SETTING_NAMES = frozenset(f.name for f in fields(FaceDetectorSettings))
NECKS = ("none", "fpn")
#: Settings added after runs were made, left out of a run's id while they hold these values, so the
#: runs made before them keep their ids (`m3mstl.train.detector.detector_run_id`).
OMITTED_AT_DEFAULT = {"neck": "none"}


def make_settings(values: Mapping[str, Any], base: FaceDetectorSettings | None = None,
                  subject: str = "detector settings") -> FaceDetectorSettings:
    """`base` (the class defaults when None) with `values` (field names) changed; an unknown name is
    an UnknownOptionError, as for every other option."""
    unknown = sorted(set(values) - SETTING_NAMES)
    if unknown:
        raise UnknownOptionError(subject, f"unknown face-detector setting(s) {unknown}; "
                                          f"known: {sorted(SETTING_NAMES)}")
    return replace(base or FaceDetectorSettings(), **values)


#: Per profile, built from `m3mstl.profiles.FACE_DETECTOR` (where the reasons for its numbers are).
PROFILE_SETTINGS: dict[str, FaceDetectorSettings] = {
    profile: make_settings(changes, subject=f"profiles.FACE_DETECTOR[{profile!r}]")
    for profile, changes in FACE_DETECTOR.items()}


def settings_for(profile: str, **changes: Any) -> FaceDetectorSettings:
    """The profile's settings (the default's for a profile without its own), with `changes`."""
    base = PROFILE_SETTINGS.get(profile, PROFILE_SETTINGS["default"])
    return make_settings(changes, base) if changes else base


# -- input and targets ----------------------------------------------------------------------------
def frame_input(temperature_c: np.ndarray, settings: FaceDetectorSettings):
    """The network's (2, H, W) float32 input for one temperature frame in deg C (module docstring).
    Non-finite pixels read as the room."""
    import torch
    import torch.nn.functional as F

    temperature = np.asarray(temperature_c, dtype=np.float32)
    if temperature.ndim != 2:
        raise ValueError(f"a temperature frame must be 2-D, got shape {temperature.shape}")
    finite = np.isfinite(temperature)
    room = float(np.percentile(temperature[finite], ROOM_PERCENTILE)) if finite.any() else SKIN_REFERENCE_C - 10
    temperature = np.where(finite, temperature, room)
    channels = np.stack([np.clip((temperature - room) / 5.0, -3, 3),
                         np.clip((temperature - SKIN_REFERENCE_C) / 3.0, -3, 3)]).astype(np.float32)
    resized = F.interpolate(torch.from_numpy(channels)[None], size=(settings.input_height, settings.input_width),
                            mode="area")
    return resized[0]


def grid_shape(settings: FaceDetectorSettings) -> tuple[int, int]:
    return settings.input_height // settings.stride, settings.input_width // settings.stride


#: A detection overlapping a better-scored one by more than this IoU is the same face found twice
#: (two centre peaks more than a cell apart on one head: a hat above the face, a raised arm) and is
#: dropped. Seen on overlays of 100 test frames (2026-12-03): 2 of 100 frames gave one face two rows.
DUPLICATE_IOU = 0.4


def _drop_duplicates(found, overlap: float):
    from m3mstl.core.boxes import iou

    kept: list = []
    for score, box in found:  # best first
        if all(iou(box, other) <= overlap for _, other in kept):
            kept.append((score, box))
    return kept


def decode(outputs, threshold: float, max_faces: int,
           overlap: float | None = DUPLICATE_IOU) -> list[list[tuple[float, tuple[float, float, float, float]]]]:
    """Detections per frame from the network's (N, 5, gh, gw) outputs: (score, box in frame
    fractions), best first; a cell counts when it is a 3x3 local maximum of the centre score, and a
    box overlapping a better one by more than `overlap` (IoU; None: keep all) is dropped."""
    import torch
    import torch.nn.functional as F

    gh, gw = outputs.shape[-2:]
    heat = torch.sigmoid(outputs[:, :1])
    peaks = (heat == F.max_pool2d(heat, 3, stride=1, padding=1)) & (heat >= threshold)
    frames = []
    for n in range(outputs.shape[0]):
        found = []
        for row, col in torch.nonzero(peaks[n, 0]).tolist():
            dx, dy, log_w, log_h = outputs[n, 1:, row, col].tolist()
            w, h = math.exp(min(log_w, 1.0)), math.exp(min(log_h, 1.0))
            cx, cy = (col + dx) / gw, (row + dy) / gh
            found.append((float(heat[n, 0, row, col]), (cx - w / 2, cy - h / 2, w, h)))
        found = sorted(found, key=lambda d: -d[0])
        if overlap is not None:
            found = _drop_duplicates(found, overlap)
        frames.append(found[:max_faces])
    return frames


# -- the network ----------------------------------------------------------------------------------
def build_network(settings: FaceDetectorSettings):
    """A timm trunk cut at `settings.stride` and the centre/offset/size head (random weights: the
    project downloads none)."""
    import timm
    import torch.nn as nn

    import torch.nn.functional as F

    stage = {4: 1, 8: 2, 16: 3, 32: 4}.get(settings.stride)
    if stage is None:
        raise ValueError(f"stride must be 4, 8, 16 or 32, got {settings.stride}")
    if settings.neck not in NECKS:
        raise ValueError(f"neck must be one of {NECKS}, got {settings.neck!r}")
    levels = (stage,) if settings.neck == "none" else tuple(range(stage, 5))

    class FaceCentreNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = timm.create_model(settings.trunk, pretrained=False, features_only=True, in_chans=2,
                                           out_indices=levels)
            level_channels = self.trunk.feature_info.channels()
            if settings.neck == "fpn":
                width = PYRAMID_WIDTH
                self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in level_channels)
                self.smooth = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))
                channels = width
            else:
                channels = level_channels[-1]
            self.head = nn.Sequential(nn.Conv2d(channels, 64, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(64, 5, 1))
            nn.init.constant_(self.head[-1].bias[:1], -4.0)  # start near "no face anywhere" (CenterNet's prior)

        def forward(self, x):
            features = self.trunk(x)
            if settings.neck == "none":
                return self.head(features[-1])
            merged = self.lateral[-1](features[-1])
            for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
                merged = lateral(feature) + F.interpolate(merged, size=feature.shape[-2:], mode="nearest")
            return self.head(self.smooth(merged))

    return FaceCentreNet()


#: Channels of the feature pyramid's levels (neck "fpn").
PYRAMID_WIDTH = 128


# -- the detector as a face finder ----------------------------------------------------------------
class TrainedFaceDetector:
    """A trained detector run as a face finder: `detector(temperature_c)` -> [Detection], best first."""

    def __init__(self, network, settings: FaceDetectorSettings, run_dir: Path | None = None, device: str = "cpu"):
        self.network, self.settings, self.run_dir, self.device = network.eval(), settings, run_dir, device

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> TrainedFaceDetector:
        import pickle
        import zipfile

        import torch

        from m3mstl.core.fileio import regular_file_problem
        from m3mstl.errors import RunError

        run_dir = Path(run_dir)
        weights = run_dir / "model.pt"
        if not run_dir.is_dir():
            raise RunError(run_dir, "detector run folder not found")
        problem = regular_file_problem(weights)
        if problem == "not found":
            raise RunError(run_dir, "no model.pt: not a finished face-detector run (m3mstl detector DATA trains one)")
        if problem is not None:
            raise RunError(weights, problem)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile, AttributeError,
                KeyError, IndexError, TypeError) as error:  # what a truncated or foreign file raises
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RunError(weights, f"cannot read the checkpoint (truncated or not a torch file): {first[:300]}") from None
        try:
            recorded = json.loads(state["settings"])
            settings = make_settings(recorded, subject=f"{weights}: settings")
            network = build_network(settings)
            network.load_state_dict(state["network"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            if isinstance(error, RunError):
                raise
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RunError(weights, f"not the weights of a face-detector run (m3mstl detector): {first[:300]}") from None
        return cls(network.to(device).eval(), settings, run_dir, device)

    def __call__(self, temperature_c: np.ndarray) -> list[Detection]:
        return self.detect_batch([temperature_c])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        import torch

        if not frames:
            return []
        inputs = torch.stack([frame_input(frame, self.settings) for frame in frames]).to(self.device)
        with torch.no_grad():
            outputs = self.network(inputs).float().cpu()
        out = []
        for frame, found in zip(frames, decode(outputs, self.settings.threshold, self.settings.max_faces)):
            height, width = np.shape(frame)
            out.append([_pixel_detection(box, score, width, height) for score, box in found])
        return out

    @property
    def description(self) -> dict[str, Any]:
        """What the evaluation tables record about this detector."""
        return {"detector": "trained", "run_id": None if self.run_dir is None else self.run_dir.name,
                **asdict(self.settings)}


def _pixel_detection(box: tuple[float, float, float, float], score: float, width: int, height: int) -> Detection:
    """A box in frame fractions as a Detection in pixels, clipped to the frame."""
    x0, y0 = max(0.0, box[0] * width), max(0.0, box[1] * height)
    x1, y1 = min(float(width), (box[0] + box[2]) * width), min(float(height), (box[1] + box[3]) * height)
    return Detection(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0), score)


