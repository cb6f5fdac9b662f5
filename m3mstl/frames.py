"""Prediction on camera frames: find the faces, then landmarks and occlusion for each.

`m3mstl predict RUN PATH...` (several paths, a folder, or a multi-page TIFF sequence) lands here.
For every frame the faces are found by `m3mstl.detect`'s rules, or by a trained detector run with
`--detector` (`m3mstl.face_detector`), on the temperature map when one is found, else on the 8-bit
view, unless a box is given, and each face gives one output row:
landmarks, occlusion probabilities, the detector's box and score, and the crop the landmarks came
from (the detector's head box mapped to a landmark-extent box by `detect.SYNTH_HEAD_TO_LANDMARK_BOX`,
then `--refine-passes` passes on the extent of the predicted landmarks). Rows go to a JSON (list of
objects) or CSV file, written atomically; `--overlays DIR` draws each frame's boxes and
landmarks (visible green, occluded red) to DIR/<frame>.png. A frame that cannot be read becomes
an error row naming the file and the problem; the batch goes on.

Temperature maps are found beside each image in the TFD68 layout (DATA/thermal/<stem>.png ->
DATA/temperature/<stem>.npy|.png|.tif|.tiff) or in `--temperature-dir`.

`pipeline_nme` measures the whole pipeline on generated full frames: the median NME of the
landmarks predicted from detector boxes against the same model given the true boxes.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m3mstl.detect import (SYNTH_HEAD_TO_LANDMARK_BOX, Detection, DetectorConfig, FaceFinder, HeadBoxMapping,
                           detect_faces_view, face_finder)
from m3mstl.fileio import atomic_path, json_safe

#: Passes of the model on the extent of its own landmarks after the first, on the mapped detector box
#: (benchmarks/bench_pipeline.py --limit 80, 80 generated frames: one pass lowers the default baseline's
#: median NME from the mapped box's 0.531 to 0.472; a model trained with box jitter gains more from
#: further passes: benchmarks/results/2026-12-02-pipeline-mapping-refinement-box-jitter.txt).
REFINE_PASSES = 1
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
TEMPERATURE_SUFFIXES = (".npy", ".png", ".tif", ".tiff")


@dataclass
class Frame:
    """One frame to process: its file, its page in a sequence, and a label for outputs."""

    path: Path
    page: int = 0
    pages: int = 1

    @property
    def label(self) -> str:
        return self.path.stem if self.pages == 1 else f"{self.path.stem}_{self.page:05d}"


def expand_inputs(paths: Sequence[Path]) -> list[Frame]:
    """Files, folders (their image files, sorted) and multi-page images (one frame per page)."""
    frames: list[Frame] = []
    for path in map(Path, paths):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
        for file in files:
            pages = _page_count(file)
            frames.extend(Frame(file, page, pages) for page in range(pages))
    return frames


def _page_count(path: Path) -> int:
    """Pages of a multi-frame image (TIFF stack); 1 for ordinary or unreadable files (read later)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return max(int(getattr(image, "n_frames", 1)), 1)
    except Exception:  # the error is reported when the frame is read
        return 1


def read_frame(frame: Frame) -> np.ndarray:
    """A frame (or one page of a multi-page TIFF) as float32 in [0, 1], decoded as training decodes
    its images (`m3mstl.data.coco.decode_pil_image`); DatasetError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    from m3mstl.data.coco import decode_pil_image, image_to_unit_range
    from m3mstl.data.errors import DatasetError
    from m3mstl.predict import _read_image

    if frame.pages == 1:
        return _read_image(frame.path)
    try:
        with Image.open(frame.path) as image:
            image.seek(frame.page)
            image.load()
            return image_to_unit_range(decode_pil_image(image))
    except (UnidentifiedImageError, OSError, EOFError) as err:
        raise DatasetError(frame.path, f"cannot read page {frame.page}: {err}") from None


def find_temperature(frame: Frame, temperature_dir: Path | None = None) -> Path | None:
    """The temperature map of a frame: in temperature_dir, or the TFD68 sibling folder."""
    if frame.pages != 1:
        return None
    folders = [temperature_dir] if temperature_dir is not None else [frame.path.parent.parent / "temperature"]
    for folder in folders:
        for suffix in TEMPERATURE_SUFFIXES:
            candidate = folder / f"{frame.path.stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def faces_in_frame(image: np.ndarray, temperature: np.ndarray | None, detector: DetectorConfig | FaceFinder | None = None
                   ) -> list[Detection]:
    """Detected faces: on the temperature map when there is one, else on the 8-bit view."""
    if temperature is not None:
        return face_finder(detector)(temperature)
    return detect_faces_view(image, detector)


def trained_on_head_boxes(config) -> bool:
    """Whether the run's crops were made around the visible head (`data.face_box` "head", the true
    head box, or "detector", the detector's own boxes), the box kind the detector returns, rather
    than around the landmark extent."""
    return getattr(config.data, "face_box", "annotation") in ("head", "detector")


def true_box(record, config) -> tuple[float, float, float, float]:
    """The true box of the kind the run was trained on: the landmark extent, or the visible head
    (for a run trained on the detector's boxes too: the box the detector estimates)."""
    from m3mstl.data.dataset import face_box

    kind = getattr(config.data, "face_box", "annotation")
    return face_box(record, "head" if kind == "detector" else kind)


def first_crop_box(config, box: tuple[float, float, float, float], *, given: bool, mapping: HeadBoxMapping,
                   refine_passes: int) -> tuple[tuple[float, float, float, float], int]:
    """The box the model first runs on, and how many refinement passes follow, for a face box that is
    a detector's head box (or, `given`, typed by the user).

    A run trained on head boxes takes the detector's box as it is and is not refined: the extent of
    its landmarks is not the box kind it learnt from. A run trained on landmark-extent boxes gets
    the head box mapped to one (`mapping`), then `refine_passes` passes on its own landmarks' extent.
    A box given by hand is taken to be of the run's own kind."""
    if trained_on_head_boxes(config):
        return tuple(box), 0
    return (tuple(box) if given else mapping.apply(box)), int(refine_passes)


def predict_frames(run_dir: Path, paths: Sequence[Path], *, temperature_dir: Path | None = None,
                   box: tuple[float, float, float, float] | None = None, overlays: Path | None = None,
                   detector: DetectorConfig | FaceFinder | None = None, device: str = "cpu",
                   progress: bool = True, mapping: HeadBoxMapping = SYNTH_HEAD_TO_LANDMARK_BOX,
                   refine_passes: int = REFINE_PASSES) -> Iterator[dict[str, Any]]:
    """One row per face found (or per frame in error / without a face), frame by frame.

    The first crop comes from `first_crop_box`: a run trained on head boxes (`data.face_box =
    "head"`) takes the detector's box as it is; for a run trained on landmark-extent boxes the
    detector's head box goes through `mapping`, then the model runs `refine_passes` more times on
    the extent of its own landmarks (`predict.predict_refined`). A box given by hand is taken to be
    of the run's own kind."""
    from tqdm.auto import tqdm

    from m3mstl.data.coco import read_temperature_file
    from m3mstl.data.errors import DatasetError
    from m3mstl.predict import predict_refined
    from m3mstl.runs import load_config, load_model

    model, config = load_model(Path(run_dir), device=device), load_config(Path(run_dir))
    frames = expand_inputs(paths)
    for frame in tqdm(frames, desc="predict", unit="frame", disable=not progress or len(frames) < 2):
        base = {"frame": frame.label, "file": str(frame.path), "page": frame.page}
        try:
            image = read_frame(frame)
            temperature_path = find_temperature(frame, temperature_dir)
            temperature = None if temperature_path is None else read_temperature_file(temperature_path)
            if temperature is not None and temperature.shape != image.shape:
                raise DatasetError(temperature_path, f"temperature map is {temperature.shape[1]}x"
                                   f"{temperature.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}")
        except (DatasetError, OSError, ValueError) as error:
            yield {**base, "error": str(error)}
            continue
        if box is not None:  # the same box on every frame: checked (or clipped) against each one
            from m3mstl.predict import check_box

            faces = [Detection(*check_box(box, image.shape[1], image.shape[0]), 1.0)]
        else:
            faces = faces_in_frame(image, temperature, detector)
        rows = []
        for number, face in enumerate(faces):
            first_box, passes = first_crop_box(config, face.box, given=box is not None, mapping=mapping,
                                               refine_passes=refine_passes)
            out = predict_refined(model, config, image, temperature, first_box, device, passes)
            rows.append({**base, "face": number, "box": [round(float(v), 2) for v in face.box],
                         "score": round(float(face.score), 4),
                         "crop_box": [round(float(v), 2) for v in out["crop_box"]],
                         "landmarks": np.round(out["landmarks"], 3).tolist(),
                         "occlusion_prob": np.round(out["occlusion_prob"], 4).tolist(),
                         "temperature": temperature_path is not None})
        if overlays is not None:
            draw_overlay(image, rows, Path(overlays) / f"{frame.label}.png")
        if not rows:
            yield {**base, "face": None, "error": None, "faces": 0}
        yield from rows


def draw_overlay(image: np.ndarray, rows: list[dict[str, Any]], out_path: Path, threshold: float = 0.5) -> Path:
    """The frame with each face's box (yellow, with its score) and landmarks (green visible,
    red where the model calls them occluded), written atomically."""
    from PIL import Image, ImageDraw

    view = Image.fromarray(np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    scale = max(1, 480 // max(view.size))   # small sensors are enlarged so the marks stay readable
    if scale > 1:
        view = view.resize((view.width * scale, view.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(view)
    radius = max(1.5, 0.006 * max(view.size))
    for row in rows:
        x, y, w, h = (v * scale for v in row["box"])
        draw.rectangle([x, y, x + w, y + h], outline=(255, 220, 0), width=max(1, scale))
        draw.text((x + 2, y + 2), f"{row['score']:.2f}", fill=(255, 220, 0))
        for (px, py), prob in zip(row["landmarks"], row["occlusion_prob"]):
            px, py = px * scale, py * scale
            colour = (255, 40, 40) if prob >= threshold else (40, 255, 40)
            draw.ellipse([px - radius, py - radius, px + radius, py + radius], fill=colour)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        view.save(tmp, format="PNG")
    return out_path


def write_rows(rows: list[dict[str, Any]], out_path: Path | None, fmt: str) -> str:
    """Rows as JSON (a list) or CSV (landmarks flattened to x0,y0,...,p0,...): to a file or returned."""
    if fmt == "json":
        text = json.dumps(rows, indent=1)
    elif fmt == "csv":
        buffer = io.StringIO()
        fields = ["frame", "file", "page", "face", "error", "score", "box_x", "box_y", "box_w", "box_h"]
        fields += [f"x{i}" for i in range(68)] + [f"y{i}" for i in range(68)] + [f"p{i}" for i in range(68)]
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            flat = {k: row.get(k) for k in ("frame", "file", "page", "face", "error", "score")}
            if "box" in row:
                flat.update(zip(("box_x", "box_y", "box_w", "box_h"), row["box"]))
                for i, ((x, y), p) in enumerate(zip(row["landmarks"], row["occlusion_prob"])):
                    flat.update({f"x{i}": x, f"y{i}": y, f"p{i}": p})
            writer.writerow(flat)
        text = buffer.getvalue()
    else:
        raise ValueError(f"format must be 'json' or 'csv', got {fmt!r}")
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_path) as tmp:
            Path(tmp).write_text(text)
    return text


# -- the whole pipeline on generated frames --------------------------------------------------------
def pipeline_nme(run_dir: Path, frames_root: Path, *, detector: DetectorConfig | FaceFinder | None = None,
                 limit: int | None = None, device: str = "cpu", progress: bool = False,
                 mapping: HeadBoxMapping | None = None, refine_passes: tuple[int, ...] = ()):
    """Per-frame NME (outer-eye-corner normalised) of a run on full frames, with the true box of
    the kind the run was trained on (`data.face_box`: the landmark extent, or the visible head) and
    with the detector's best box (IoU-matched to the true head box) as the detector gives it. For a
    run trained on landmark-extent boxes, with `mapping` (`detect.fit_head_box_mapping` on a
    training split), also that box mapped to a landmark-extent box.
    Returns a DataFrame: image_id, occluder_type, yaw, nme_true_box, nme_detector_box (NaN when no
    face was detected), nme_mapped_box (with `mapping`, landmark-extent runs), nme_refined_<k> for each k in
    `refine_passes` (the mapped box, then k passes on the predicted extent: `predict.predict_refined`), iou."""
    import pandas as pd

    from m3mstl.data.coco import read_dataset
    from m3mstl.metrics import occluder_group, per_image_nme
    from m3mstl.predict import predict_arrays
    from m3mstl.runs import load_config, load_model

    model, config = load_model(Path(run_dir), device=device), load_config(Path(run_dir))
    records = read_dataset(frames_root).records[:limit]
    rows = []
    for record, image, temperature, value, match in _frames_with_detection(records, detector, progress, "pipeline"):
        true_points = record.landmarks

        def nme(points):  # the evaluation's own inter-ocular NME over the labelled landmarks
            return float(per_image_nme(points[None], true_points[None], np.asarray(record.labelled)[None],
                                       normaliser="inter_ocular")[0])

        def predicted(box):
            return predict_arrays(model, config, image, temperature, box, device)["landmarks"]

        row = {"image_id": record.image_id,
               "occluder_type": occluder_group([o.get("type", "unknown") for o in record.extras.get("occluders", [])]),
               "yaw": float(record.extras.get("head_pose", {}).get("yaw", float("nan"))),
               # The true box of the kind the run was trained on: the landmark extent or the visible head.
               "nme_true_box": nme(predicted(true_box(record, config))),
               "nme_detector_box": nme(predicted(match.box)) if match is not None else float("nan"), "iou": value}
        if mapping is not None and not trained_on_head_boxes(config):
            row.update(_refinement_nmes(mapping.apply(match.box) if match is not None else None, refine_passes,
                                        predicted, nme))
        rows.append(row)
    return pd.DataFrame(rows)


def frame_predictions(run_dir: Path, records: Sequence[Any], *, detector: DetectorConfig | FaceFinder | None = None,
                      device: str = "cpu", progress: bool = False,
                      mapping: HeadBoxMapping = SYNTH_HEAD_TO_LANDMARK_BOX,
                      refine_passes: int = REFINE_PASSES) -> dict[str, np.ndarray]:
    """A run's landmarks and occlusion probabilities on generated full frames (`records` of a
    `m3mstl synth --full-frame` dataset), twice per face: from the true box of the kind the run was
    trained on (`data.face_box`), and as `m3mstl predict` makes them, from the detection that best
    overlaps the true head box (`detect.match_detections`; `iou` says how well) through `first_crop_box`.

    Returns arrays over the records: true_landmarks (N, 68, 2) and true_occlusion_prob (N, 68) from
    the true box; detector_landmarks and detector_occlusion_prob (NaN where no face was detected);
    detected (N,) bool, iou (N,) of the best detection with the true head box, detector_box (N, 4)."""
    from m3mstl.predict import predict_arrays, predict_refined
    from m3mstl.runs import load_config, load_model

    model, config = load_model(Path(run_dir), device=device), load_config(Path(run_dir))
    n = len(records)
    out = {"true_landmarks": np.full((n, 68, 2), np.nan), "true_occlusion_prob": np.full((n, 68), np.nan),
           "detector_landmarks": np.full((n, 68, 2), np.nan), "detector_occlusion_prob": np.full((n, 68), np.nan),
           "detected": np.zeros(n, dtype=bool), "iou": np.zeros(n), "detector_box": np.full((n, 4), np.nan)}
    for i, (record, image, temperature, value, match) in enumerate(
            _frames_with_detection(records, detector, progress, "frames")):
        true = predict_arrays(model, config, image, temperature, true_box(record, config), device)
        out["true_landmarks"][i], out["true_occlusion_prob"][i] = true["landmarks"], true["occlusion_prob"]
        out["iou"][i] = value
        if match is None:
            continue
        first_box, passes = first_crop_box(config, match.box, given=False, mapping=mapping,
                                           refine_passes=refine_passes)
        found = predict_refined(model, config, image, temperature, first_box, device, passes)
        out["detected"][i], out["detector_box"][i] = True, match.box
        out["detector_landmarks"][i], out["detector_occlusion_prob"][i] = found["landmarks"], found["occlusion_prob"]
    return out


def _frames_with_detection(records: Sequence[Any], detector: DetectorConfig | FaceFinder | None, progress: bool, desc: str):
    """Each generated full frame as (record, image in [0, 1], temperature map, IoU, detection): the
    detection that best overlaps the record's true head box (`detect.match_detections`; None if none)."""
    from tqdm.auto import tqdm

    from m3mstl.data.coco import image_to_unit_range, load_image, load_temperature
    from m3mstl.detect import match_detections

    find = face_finder(detector)
    for record in tqdm(records, desc=desc, disable=not progress):
        temperature = load_temperature(record)
        (value, match), = match_detections([tuple(record.extras["head_bbox"])], find(temperature))
        yield record, image_to_unit_range(load_image(record)), temperature, value, match


def _refinement_nmes(mapped_box, refine_passes, predicted, nme) -> dict[str, float]:
    """nme_mapped_box and nme_refined_<k> along ONE chain of passes (as `predict.predict_refined`
    makes them), so k = 1, 2, 3 cost 4 model runs, not 1 + 2 + 3 + 4."""
    from m3mstl.predict import landmark_extent

    wanted = set(refine_passes)
    if mapped_box is None:
        return {"nme_mapped_box": float("nan"), **{f"nme_refined_{k}": float("nan") for k in sorted(wanted)}}
    points = predicted(mapped_box)
    out = {"nme_mapped_box": nme(points)}
    for passes in range(1, max(wanted, default=0) + 1):
        points = predicted(landmark_extent(points))
        if passes in wanted:
            out[f"nme_refined_{passes}"] = nme(points)
    return out


def training_frame_boxes(data_dir: Path, image_ids: Sequence[str], *, detector: DetectorConfig | FaceFinder | None = None,
                         progress: bool = False):
    """Head, landmark and detector boxes of a SynthTFD68 dataset's faces rendered as WHOLE frames.

    Each image id (thermal_<subject>_<index>_<expression>) is re-rendered from its spec (the
    dataset's seed, subject count and priors, read from its annotations) with `full_frame=True`:
    the same face, pose and camera, uncut. Its crop cannot serve, since the crop cuts the head.
    Returns a DataFrame: image_id, head_box, landmark_box, detected_box (None when the detector
    found nothing matching), iou; feed head_box (or detected_box) and landmark_box to
    `detect.fit_head_box_mapping`."""
    import json

    import pandas as pd
    from tqdm.auto import tqdm

    from m3mstl.data.synth.generate import spec_for
    from m3mstl.data.synth.priors import load_priors
    from m3mstl.data.synth.renderer import render
    from m3mstl.detect import match_detections

    info = json.loads((Path(data_dir) / "annotations.json").read_text())["info"]
    if info.get("generator") != "SynthTFD68":
        raise ValueError(f"{data_dir}: training_frame_boxes needs a SynthTFD68 dataset")
    # The shipped priors when the dataset recorded them: equal after the JSON round trip, yet the
    # recorded copy (lists for tuples) does not draw every face identically (hands differ).
    priors = load_priors(None)
    priors = priors if priors == info["priors"] else info["priors"]
    rows, find = [], face_finder(detector)
    for image_id in tqdm(list(image_ids), desc="frames", disable=not progress):
        _, subject, index, _ = str(image_id).split("_")
        spec = spec_for(int(info["seed"]), int(subject), int(index), int(info["subjects"]), priors)
        face = render(spec, int(info["size"]), full_frame=True)
        if face.head_bbox is None:
            continue
        (value, match), = match_detections([tuple(face.head_bbox)], find(face.temperature_c))
        rows.append({"image_id": str(image_id), "head_box": list(face.head_bbox), "landmark_box": list(face.bbox),
                     "detected_box": None if match is None else list(match.box), "iou": value})
    return pd.DataFrame(rows)


# -- the `m3mstl predict` command ----------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a finished run folder runs/<model>/<run-id>")
    parser.add_argument("image", type=Path, nargs="+",
                        help="thermal images (8- or 16-bit), folders of them, or multi-page TIFF sequences")
    parser.add_argument("--temperature", type=Path, default=None,
                        help="its temperature map: float deg C .npy or 16-bit centi-Kelvin PNG/TIFF")
    parser.add_argument("--box", default=None,
                        help="face box X,Y,W,H in image pixels (default: detect faces; with --whole-image the "
                             "whole image)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--whole-image", action="store_true",
                        help="one image, taken whole as a ready face crop (no detection): the single-image JSON")
    parser.add_argument("--out", type=Path, default=None, help="write the rows here (default: standard output)")
    parser.add_argument("--format", choices=("json", "csv"), default="json", help="rows as JSON or CSV")
    parser.add_argument("--overlays", type=Path, default=None, help="folder for overlay PNGs (boxes, landmarks)")
    parser.add_argument("--temperature-dir", type=Path, default=None,
                        help="folder of temperature maps named like the frames (default: DATA/temperature)")
    parser.add_argument("--refine-passes", type=int, default=REFINE_PASSES,
                        help="passes on the extent of the predicted landmarks after the first (default "
                             f"{REFINE_PASSES}; 0: the detector's mapped box only)")
    parser.add_argument("--detector", type=Path, default=None,
                        help="a trained face-detector run folder runs/detector/<run-id> (m3mstl detector DATA; "
                             "default: the rule-based detector, which needs no training)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """`--box X,Y,W,H` as four numbers (checked against each image by `predict.check_box`)."""
    from m3mstl.errors import UsageError

    if not text:
        return None
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError("--box", f"expects X,Y,W,H numbers, got {text!r}") from None
    if len(box) != 4:
        raise UsageError("--box", f"expects 4 numbers X,Y,W,H, got {text!r}")
    return box


def run(args: argparse.Namespace) -> int:
    import warnings

    from m3mstl.data.errors import DatasetWarning
    from m3mstl.errors import UsageError

    box = parse_box(args.box)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        if args.whole_image:
            if len(args.image) != 1:
                raise UsageError("--whole-image", "takes exactly one image")
            from m3mstl.predict import predict_image

            result = predict_image(args.run_dir, args.image[0], temperature_path=args.temperature, box=box,
                                   device=args.device)
            code, text = 0, json.dumps(json_safe(result), indent=2, allow_nan=False)
        else:
            code, text = _run_frames(args, box)
    for warning in caught:
        if issubclass(warning.category, DatasetWarning):  # a fault in the user's input: one plain line
            print(f"warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    if text:
        print(text)
    return code


def _run_frames(args: argparse.Namespace, box: tuple[float, float, float, float] | None) -> tuple[int, str]:
    """Batch prediction on frames; exit code 1 when some frame failed."""
    temperature_dir = args.temperature_dir
    if args.temperature is not None and temperature_dir is None:
        temperature_dir = Path(args.temperature).parent
    if args.refine_passes < 0:
        from m3mstl.errors import UsageError

        raise UsageError("--refine-passes", f"must be 0 or more, got {args.refine_passes}")
    detector = None
    if args.detector is not None:
        from m3mstl.face_detector import TrainedFaceDetector

        detector = TrainedFaceDetector.load(args.detector, device=args.device)
    rows = list(predict_frames(args.run_dir, args.image, temperature_dir=temperature_dir, box=box,
                               overlays=args.overlays, device=args.device, refine_passes=args.refine_passes,
                               detector=detector,
                               progress=not args.quiet and sys.stderr.isatty()))
    text = write_rows(rows, args.out, args.format)
    failed = [row for row in rows if row.get("error")]
    for row in failed:
        print(f"m3mstl predict: error: {row['error']}", file=sys.stderr)
    faces = sum(1 for row in rows if row.get("box") is not None)
    frames = len({(row["file"], row["page"]) for row in rows})
    print(f"{frames} frames, {faces} faces, {len(failed)} unreadable"
          + (f"; rows in {args.out}" if args.out else ""), file=sys.stderr)
    return (1 if failed else 0), ("" if args.out is not None else text)
