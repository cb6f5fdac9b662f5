"""Training the small thermal face detector (`m3mstl.detection.trained`) on whole frames.

CenterNet's targets ("Objects as Points", Zhou et al. 2019) for one class: a Gaussian bump at each
true visible-head box's centre (`head_bbox` of `m3mstl synth --full-frame` frames) under its
penalty-reduced focal loss, and L1 on the centre's offset and the box's log size at the centre
cell. Augmentation: horizontal flips, two frames side by side (frames with two faces) and the frame
shrunk onto its own room level (small faces anywhere). AdamW with a one-cycle schedule; the last
epoch is kept; each epoch's validation recall, mean IoU and false detections go to the history.

`train_face_detector` trains on the training split of a full-frame dataset (the same subject split
as every model) into runs/detector/<run-id>/ (id: the settings, the seed and the data fingerprint),
resumes an interrupted run after its last finished epoch, and scores the validation split with
`detect.evaluate_detector`. `m3mstl detector DATA` runs it from the command line.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m3mstl.detection.trained import (FACE_DETECTOR_VERSION, OMITTED_AT_DEFAULT, FaceDetectorSettings,
                                     TrainedFaceDetector, build_network, decode, frame_input, grid_shape, settings_for)


# -- targets and loss -----------------------------------------------------------------------------
def encode_targets(boxes_per_frame: list[list[tuple[float, float, float, float]]], grid: tuple[int, int]):
    """CenterNet targets for boxes in frame fractions (x, y, w, h): centre heat (N, 1, gh, gw) with
    1 at each centre cell, regression (N, 4, gh, gw): offset x, y in cells, log w, log h, and the
    mask (N, 1, gh, gw) of cells that carry regression targets."""
    import torch

    gh, gw = grid
    n = len(boxes_per_frame)
    heat = np.zeros((n, 1, gh, gw), np.float32)
    regression = np.zeros((n, 4, gh, gw), np.float32)
    mask = np.zeros((n, 1, gh, gw), np.float32)
    ys, xs = np.mgrid[0:gh, 0:gw]
    for i, boxes in enumerate(boxes_per_frame):
        for x, y, w, h in boxes:
            cx, cy = (x + w / 2) * gw, (y + h / 2) * gh
            sigma = max(0.5, 0.15 * min(w * gw, h * gh))  # the bump grows with the face
            bump = np.exp(-((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2) / (2 * sigma ** 2))
            heat[i, 0] = np.maximum(heat[i, 0], bump)
            col, row = min(max(int(cx), 0), gw - 1), min(max(int(cy), 0), gh - 1)
            heat[i, 0, row, col] = 1.0
            regression[i, :, row, col] = [cx - col, cy - row, math.log(max(w, 1e-4)), math.log(max(h, 1e-4))]
            mask[i, 0, row, col] = 1.0
    return torch.from_numpy(heat), torch.from_numpy(regression), torch.from_numpy(mask)


def focal_loss(logits, heat):
    """CenterNet's penalty-reduced focal loss over the centre map, per true centre."""
    import torch

    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = heat.eq(1).float()
    loss_pos = -(torch.log(p) * (1 - p) ** 2 * positive).sum()
    loss_neg = -(torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * (1 - positive)).sum()
    return (loss_pos + loss_neg) / positive.sum().clamp(min=1)


# -- augmentation ---------------------------------------------------------------------------------
def augmented_batch(inputs, boxes: np.ndarray, indices: np.ndarray, rng: np.random.Generator,
                    settings: FaceDetectorSettings):
    """Training inputs (B, 2, H, W) and their boxes (frame fractions) for `indices`; `boxes[i]` is
    frame i's (k, 4) array of true boxes (one for a portrait frame, several for a scene)."""
    import torch
    import torch.nn.functional as F

    height, width = settings.input_height, settings.input_width
    batch, batch_boxes = [], []
    for index in indices:
        x, frame_boxes = inputs[index].float(), [tuple(box) for box in boxes[index]]
        if rng.random() < 0.5:
            x = x.flip(-1)
            frame_boxes = [(1 - bx - bw, by, bw, bh) for bx, by, bw, bh in frame_boxes]
        draw = rng.random()
        if draw < settings.two_frame_fraction:  # a second frame beside it: two faces
            other = int(rng.integers(len(inputs)))
            halves = [F.interpolate(part.float()[None], size=(height, width // 2), mode="area")[0]
                      for part in (x, inputs[other])]
            x = torch.cat(halves, -1)
            frame_boxes = ([(bx / 2, by, bw / 2, bh) for bx, by, bw, bh in frame_boxes]
                           + [(0.5 + ox / 2, oy, ow / 2, oh) for ox, oy, ow, oh in boxes[other]])
        elif draw < settings.two_frame_fraction + settings.shrink_fraction:  # smaller, anywhere
            scale = rng.uniform(0.5, 0.9)
            h, w = int(height * scale), int(width * scale)
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            small = F.interpolate(x[None], size=(h, w), mode="area")[0]
            canvas = small.flatten(1).median(1).values[:, None, None].expand(2, height, width).clone()
            canvas[:, top:top + h, left:left + w] = small
            x = canvas
            frame_boxes = [((left + bx * w) / width, (top + by * h) / height, bw * w / width, bh * h / height)
                           for bx, by, bw, bh in frame_boxes]
        batch.append(x)
        batch_boxes.append(frame_boxes)
    return torch.stack(batch), batch_boxes


# -- training -------------------------------------------------------------------------------------
def detector_run_id(settings: FaceDetectorSettings, seed: int, fingerprint: str) -> str:
    recorded = {name: value for name, value in asdict(settings).items()
                if not (name in OMITTED_AT_DEFAULT and value == OMITTED_AT_DEFAULT[name])}
    text = json.dumps({"settings": recorded, "seed": seed, "version": FACE_DETECTOR_VERSION}, sort_keys=True)
    return hashlib.sha256(f"{text}:{fingerprint}".encode()).hexdigest()[:12]


@dataclass
class TrainingFrame:
    """One frame the detector learns from or is scored on: how to read its temperature map, and its
    true visible-head boxes in pixels (one in a portrait frame, none to several in a scene)."""

    name: str
    load: Callable[[], np.ndarray]
    boxes: list[tuple[float, float, float, float]]
    width: int
    height: int


def record_frames(records) -> list[TrainingFrame]:
    """Portrait full frames (`m3mstl synth --full-frame` records): one head box each."""
    from m3mstl.data.coco import load_temperature
    from m3mstl.data.errors import DatasetError

    frames = []
    for record in records:
        box = record.extras.get("head_bbox")
        if box is None:
            raise DatasetError(record.image_path, "no head_bbox in its annotation: the detector trains on "
                                                  "full frames from m3mstl synth --full-frame")
        frames.append(TrainingFrame(record.image_id, lambda record=record: load_temperature(record),
                                    [tuple(box)], record.width, record.height))
    return frames


def scene_frames(scenes) -> list[TrainingFrame]:
    """Scenes (`m3mstl synth --scenes`): every visible head of the frame (a wholly hidden one has no box)."""
    from m3mstl.data.coco import read_temperature_file

    return [TrainingFrame(scene.image_id, lambda scene=scene: read_temperature_file(scene.temperature_path),
                          [tuple(p["head_bbox"]) for p in scene.people if p.get("head_bbox")], scene.width,
                          scene.height) for scene in scenes]


#: Scenes have no subjects: scene i goes to the split SCENE_SPLIT[i % 5] (3 : 1 : 1, as the subject split).
SCENE_SPLIT = ("train", "train", "train", "val", "test")


def is_scene_set(frames_dir: Path) -> bool:
    """Whether `frames_dir` holds a scene set of `m3mstl synth --scenes` (not a TFD68-layout dataset)."""
    import json

    from m3mstl.data.synth.scenes import SCENE_GENERATOR

    try:
        info = json.loads((Path(frames_dir) / "annotations.json").read_text()).get("info", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(info, dict) and info.get("generator") == SCENE_GENERATOR


def detector_splits(profile: str, frames_dir: Path) -> dict[str, Any]:
    """{"train", "val", "test"} -> the split's frames (scenes, or portrait-frame records split by
    subject as every model's data is) and {"kind"}: "scenes" or "frames"."""
    if is_scene_set(frames_dir):
        from m3mstl.data.synth.scenes import read_scenes

        scenes = read_scenes(frames_dir)
        split = {name: [s for i, s in enumerate(scenes) if SCENE_SPLIT[i % len(SCENE_SPLIT)] == name]
                 for name in ("train", "val", "test")}
        return {"kind": "scenes", **split}
    from m3mstl.config import make_config
    from m3mstl.train.peer import split_records

    return {"kind": "frames", **split_records(make_config("baseline", profile), frames_dir)}


def to_training_frames(kind: str, items) -> list[TrainingFrame]:
    return scene_frames(items) if kind == "scenes" else record_frames(items)


def encode_frames(frames: list[TrainingFrame], settings: FaceDetectorSettings, progress: bool = False):
    """Inputs (N, 2, H, W) float16 (half the memory; the network sees float32) and each frame's true
    head boxes as a (k, 4) array in frame fractions."""
    import torch
    from tqdm.auto import tqdm

    inputs, boxes = [], []
    for frame in tqdm(frames, desc="frames", unit="frame", disable=not progress):
        temperature = frame.load()
        height, width = temperature.shape
        inputs.append(frame_input(temperature, settings).half())
        boxes.append(np.asarray([[x / width, y / height, w / width, h / height] for x, y, w, h in frame.boxes],
                                dtype=np.float32).reshape(-1, 4))
    return torch.stack(inputs), boxes


def train_face_detector(profile: str, frames_dir: str | Path, *, seed: int = 0,
                        settings: FaceDetectorSettings | None = None, force: bool = False,
                        runs_root: Path | None = None, device: str = "auto", progress: bool = True) -> Path:
    """Train (or reuse, or resume) a detector on the training split of full frames; returns its run
    folder runs/detector/<run-id>/ (config.json, environment.json, history.jsonl, model.pt,
    metrics_val.json, complete.json; checkpoint.pt while it trains). The lifecycle is every producer's
    (`m3mstl.runs.lifecycle.produce_run`): `force` empties the run folder and trains again, the lock is
    held while it trains, and in a notebook whose TRAIN and FORCE are False
    (`lifecycle.allow_training`) a missing run is explained (`RunNotTrained`), not trained."""
    from m3mstl import paths
    from m3mstl.config import MAX_SEED
    from m3mstl.errors import ConfigError
    from m3mstl.runs import data_fingerprint, lifecycle

    frames_dir = Path(frames_dir)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ConfigError("seed", f"must be a whole number in 0 .. {MAX_SEED}, got {seed!r}")
    settings = settings or settings_for(profile)
    check_full_frames(frames_dir)
    fingerprint = data_fingerprint(frames_dir)
    run_dir = (runs_root or paths.RUNS_DIR) / "detector" / detector_run_id(settings, seed, fingerprint)
    return lifecycle.produce_run(
        run_dir, lambda: _train_locked(run_dir, profile, frames_dir, fingerprint, seed, settings, device, progress),
        fingerprint=fingerprint, fingerprint_record="config.json", force=force,
        refusal=lambda: _missing_detector_message(profile, frames_dir, run_dir, seed, settings))


def check_full_frames(frames_dir: Path) -> None:
    """Refuse SynthTFD68 face crops (`m3mstl synth` without --full-frame): every crop holds one face
    filling the image, so a detector trained on them learns nothing about finding a face in a frame
    (full frames carry ``full_frame: true`` in their image entries). Datasets from elsewhere are
    taken as they come."""
    from m3mstl.data.coco import load_annotations_json, resolve_annotations_path
    from m3mstl.data.errors import DatasetError

    _, json_path = resolve_annotations_path(frames_dir)
    coco = load_annotations_json(json_path)
    info = coco.get("info") if isinstance(coco.get("info"), dict) else {}
    if info.get("generator") != "SynthTFD68":
        return
    images = [image for image in coco["images"] if isinstance(image, dict)]
    crops = [image for image in images if image.get("full_frame") is not True]
    if crops:
        raise DatasetError(json_path, f"{len(crops)} of its {len(images)} images are SynthTFD68 face crops "
                                      f"(info.frame: {info.get('frame', 'face crop')!r}), not full frames: the "
                                      f"detector learns to find faces in whole frames; generate them with "
                                      f"`m3mstl synth OUT --full-frame` and train on OUT")


def _missing_detector_message(profile: str, frames_dir: Path, run_dir: Path, seed: int,
                              settings: FaceDetectorSettings) -> str:
    """`RunNotTrained`'s message for a missing detector run, naming the `m3mstl detector` command
    that trains it (with the profile's settings: the command cannot change them)."""
    import shlex

    from m3mstl.runs import lifecycle

    profile_settings = asdict(settings_for(profile))
    changed = {name: value for name, value in asdict(settings).items() if profile_settings.get(name) != value}
    data = lifecycle.shown_path(frames_dir)
    subject = (f"the face detector, profile {profile!r}, seed {seed}, on {data}"
               + (f", with settings changed from the profile's {changed} (the command below trains the "
                  f"profile's own)" if changed else ""))
    command = " ".join(shlex.quote(word) for word in ["m3mstl", "detector", data, "--profile", profile, "--seed",
                                                      str(seed)])
    return lifecycle.not_trained_message(
        subject, run_dir, command=command, profile=profile, typical_time=None,
        notebooks=() if changed else lifecycle.PRODUCING_NOTEBOOKS[("detector", False)])


def _train_locked(run_dir: Path, profile: str, frames_dir: Path, fingerprint: str, seed: int,
                  settings: FaceDetectorSettings, device: str, progress: bool) -> None:
    import torch

    from m3mstl import paths
    from m3mstl.evaluation.detection import evaluate_detector, summarise_detection
    from m3mstl.core.device import resolve_device
    from m3mstl.core.fileio import atomic_path, write_json_atomic
    from m3mstl.runs import environment_info

    torch_device = resolve_device(device)
    split = detector_splits(profile, frames_dir)  # portrait frames: the subject split every model uses
    train_records = split["train"][: settings.max_train_frames]
    write_json_atomic(run_dir / "config.json", {"model": "face_detector", "profile": profile, "seed": seed,
                                                "settings": asdict(settings), "version": FACE_DETECTOR_VERSION,
                                                "data_dir": paths.portable_data_path(frames_dir), "data_fingerprint": fingerprint,
                                                "train_frames": len(train_records)})
    if not (run_dir / "environment.json").exists():
        from m3mstl.runs.provenance import code_fingerprint

        write_json_atomic(run_dir / "environment.json", {**environment_info(str(torch_device)),
                                                         "code_fingerprint": code_fingerprint()})
    inputs, boxes = encode_frames(to_training_frames(split["kind"], train_records), settings, progress)
    val_frames = to_training_frames(split["kind"], split["val"])
    val_inputs, val_boxes = encode_frames(val_frames, settings, progress)
    val_sizes = [(frame.width, frame.height) for frame in val_frames]

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = build_network(settings).to(torch_device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(inputs) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.lr, pct_start=0.1,
                                                   total_steps=settings.epochs * steps_per_epoch)
    history: list[dict[str, Any]] = []
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.is_file():  # an interrupted run: go on after its last finished epoch
        from m3mstl.errors import RunError
        from m3mstl.runs import load_checkpoint

        state = load_checkpoint(checkpoint)  # a truncated file is a RunError naming it
        try:
            network.load_state_dict(state["network"])
            optimiser.load_state_dict(state["optimiser"])
            schedule.load_state_dict(state["schedule"])
            rng.bit_generator.state = state["numpy_rng"]
            torch.set_rng_state(state["torch_rng"])
            history = state["history"]
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RunError(checkpoint, f"cannot resume from this checkpoint ({first[:200]}); train the run again "
                                       f"with --force") from None
    grid = grid_shape(settings)
    for epoch in range(len(history), settings.epochs):
        started, total = time.perf_counter(), 0.0
        network.train()
        order = rng.permutation(len(inputs))
        for start in range(0, len(order), settings.batch_size):
            batch, batch_boxes = augmented_batch(inputs, boxes, order[start:start + settings.batch_size], rng,
                                                 settings)
            heat, regression, mask = (t.to(torch_device) for t in encode_targets(batch_boxes, grid))
            outputs = network(batch.to(torch_device))
            box_loss = (torch.abs(outputs[:, 1:] - regression) * mask).sum() / mask.sum().clamp(min=1)
            loss = focal_loss(outputs[:, :1], heat) + box_loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
        seconds = round(time.perf_counter() - started, 2)
        validation = _validation_scores(network, val_inputs, val_boxes, val_sizes, settings, torch_device)
        history.append({"epoch": epoch + 1, "train_loss": total / len(inputs), **validation, "seconds": seconds})
        if progress:
            print(f"[detector] epoch {epoch + 1}/{settings.epochs}: loss {history[-1]['train_loss']:.4f}, validation "
                  f"recall {validation['val_recall']:.4f}, mean IoU {validation['val_mean_iou']:.3f} ({seconds:.0f} s)",
                  flush=True)
        with atomic_path(checkpoint) as tmp:
            torch.save({"network": network.state_dict(), "optimiser": optimiser.state_dict(),
                        "schedule": schedule.state_dict(), "numpy_rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(), "history": history}, tmp)
        with atomic_path(run_dir / "history.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(entry) + "\n" for entry in history))
    with atomic_path(run_dir / "model.pt") as tmp:
        torch.save({"network": network.state_dict(), "settings": json.dumps(asdict(settings))}, tmp)
    detector = TrainedFaceDetector(network.to("cpu"), settings, run_dir)
    if split["kind"] == "scenes":
        from m3mstl.evaluation.detection import evaluate_scenes, summarise_scenes

        summary = summarise_scenes(*evaluate_scenes(split["val"], detector))
        summary = summary.rename(columns={"false_detections_per_frame": "false_positives_per_frame"})
    else:
        summary = summarise_detection(evaluate_detector(None, detector, records=split["val"]))
    write_json_atomic(run_dir / "metrics_val.json", {"split": "val", "data": split["kind"],
                                                     "detection": summary.to_dict("records")})
    checkpoint.unlink(missing_ok=True)
    write_json_atomic(run_dir / "complete.json", {"epochs": settings.epochs,
                                                  "train_seconds": sum(e["seconds"] for e in history)})


def _validation_scores(network, inputs, boxes: list[np.ndarray], sizes: list[tuple[int, int]],
                       settings: FaceDetectorSettings, device) -> dict[str, float]:
    """Validation recall at IoU >= 0.5 over every true head, mean IoU of each head's one-to-one match
    and false detections per frame of the network as it is (the history's learning curve;
    `evaluate_detector` / `evaluate_scenes` score the finished run)."""
    import torch

    from m3mstl.detection.base import Detection, match_detections

    network.eval()
    found, ious, false, frames = [], [], 0, 0
    with torch.no_grad():
        for start in range(0, len(inputs), 64):
            outputs = network(inputs[start:start + 64].float().to(device)).float().cpu()
            for offset, detections in enumerate(decode(outputs, settings.threshold, settings.max_faces)):
                width, height = sizes[start + offset]
                scale = np.array([width, height, width, height])
                truths = [tuple(box * scale) for box in boxes[start + offset]]
                found_boxes = [Detection(*(np.asarray(box) * scale), score) for score, box in detections]
                matches = match_detections(sorted(truths, key=lambda b: -b[2] * b[3]), found_boxes)
                found += [value >= 0.5 for value, _ in matches]
                ious += [value for value, _ in matches]
                false += len(found_boxes) - sum(value >= 0.5 for value, _ in matches)
                frames += 1
    network.train()
    count = max(len(found), 1)
    return {"val_recall": float(np.sum(found)) / count, "val_mean_iou": float(np.sum(ious)) / count,
            "val_false_per_frame": false / max(frames, 1)}


# -- the `m3mstl detector` command ------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="a full-frame dataset (m3mstl synth --full-frame, or TFD68 layout "
                                                "with head_bbox annotations)")
    parser.add_argument("--profile", default="default", help="settings and subject split of this profile")
    parser.add_argument("--seed", type=int, default=0, help="random seed, 0 .. 2**32 - 1 (default 0)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--force", action="store_true",
                        help="train again even when a finished run exists (refused while another process trains it)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change one of the profile's detector settings (m3mstl.detection.trained."
                             "FaceDetectorSettings), e.g. input_width=320 input_height=256 for whole scenes")


def run(args: argparse.Namespace) -> int:
    from m3mstl.config import parse_value
    from m3mstl.detection.trained import make_settings
    from m3mstl.errors import UsageError

    changes = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError("--set", f"expects KEY=VALUE, got {item!r}")
        changes[key.strip()] = parse_value(value)
    settings = make_settings(changes, settings_for(args.profile), subject="--set") if changes else None
    run_dir = train_face_detector(args.profile, args.data, seed=args.seed, device=args.device, force=args.force,
                                  settings=settings)
    overall = json.loads((run_dir / "metrics_val.json").read_text())["detection"][0]
    print(f"{run_dir}: validation recall {overall['recall']:.4f}, mean IoU {overall['mean_iou']:.3f}, "
          f"false detections per frame {overall['false_positives_per_frame']:.3f}")
    return 0
