"""Prediction on camera frames: find the faces, then landmarks and occlusion for each.

`m3mstl predict RUN PATH...` (several paths, a folder, or a multi-page TIFF sequence) lands here.
For every frame the faces are found by `m3mstl.detection.rule_based`'s rules, or by a trained detector run with
`--detector` (`m3mstl.detection.trained`), on the temperature map when one is found, else on the 8-bit
view, unless a box is given, and each face gives one output row:
landmarks, occlusion probabilities, the detector's box and score, and the crop the landmarks came
from (the detector's head box mapped to a landmark-extent box by `detect.SYNTH_HEAD_TO_LANDMARK_BOX`,
then `--refine-passes` passes on the extent of the predicted landmarks). Rows go to a JSON (list of
objects) or CSV file, written atomically; `--overlays DIR` draws each frame's boxes and
landmarks (visible green, occluded red) to DIR/<frame>.png. A frame that cannot be read becomes
an error row naming the file and the problem; the batch goes on.

Temperature maps are found beside each image in the TFD68 layout (DATA/thermal/<stem>.png ->
DATA/temperature/<stem>.npy|.png|.tif|.tiff), in `--temperature-dir`, given for one image by
`--temperature`, or are the images themselves (`--radiometric`: 16-bit centi-Kelvin frames). With a map,
each face row carries its inner-canthus reading (`m3mstl.infer.canthus.read_face`, the run's reading
settings): the temperature, the canthi read, and why it abstains when it does. Without one, the
temperatures are null and a warning says which frames had no map: grey levels are never read as
degrees (the rule-based detector still finds faces on them, by their relative warmth).

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

from m3mstl.detection.head_box import SYNTH_HEAD_TO_LANDMARK_BOX, HeadBoxMapping
from m3mstl.detection.base import Detection, FaceFinder
from m3mstl.detection.rule_based import DetectorConfig, detect_faces_view, face_finder
from m3mstl.core.fileio import atomic_path, json_safe
from m3mstl.infer.canthus import ReadingSettings, load_reading_settings, read_face

#: Passes of the model on the extent of its own landmarks after the first, on the mapped detector box
#: (benchmarks/bench_pipeline.py --limit 80, 80 generated frames: one pass lowers the default baseline's
#: median NME from the mapped box's 0.531 to 0.472; a model trained with box jitter gains more from
#: further passes: benchmarks/results/2026-12-02-pipeline-mapping-refinement-box-jitter.txt).
REFINE_PASSES = 1
#: The most `--refine-passes` accepted: past a few passes the crop no longer moves (each pass is one
#: more run of the model per face), and an unbounded count would run for ever.
MAX_REFINE_PASSES = 20
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
    """Files, folders (their image files, sorted; hidden files and anything but regular files
    skipped) and multi-page images (one frame per page). A path given that is not a regular file
    (missing, a named pipe) stays one frame, reported as an error row when it is read; it is never
    opened, as reading a named pipe would block."""
    from m3mstl.core.fileio import regular_file_problem

    frames: list[Frame] = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                           and not p.name.startswith(".") and regular_file_problem(p) is None)
        else:
            files = [path]
        for file in files:
            pages = _page_count(file)
            frames.extend(Frame(file, page, pages) for page in range(pages))
    return frames


def _page_count(path: Path) -> int:
    """Pages of a multi-frame image (TIFF stack); 1 for ordinary or unreadable files (read later)."""
    import warnings

    from PIL import Image

    from m3mstl.core.fileio import regular_file_problem

    if regular_file_problem(path) is not None:
        return 1  # reported when the frame is read, without opening it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # reported when the frame is read
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
    from m3mstl.infer.predict import _read_image

    if frame.pages == 1:
        return _read_image(frame.path)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(frame.path) as image:
                image.seek(frame.page)
                image.load()
                return image_to_unit_range(decode_pil_image(image))
    except (UnidentifiedImageError, OSError, EOFError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
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


@dataclass(frozen=True)
class TemperatureSource:
    """Where each frame's radiometric map comes from: `file` (one map for a single image,
    `--temperature`), `folder` (maps named like the frames, `--temperature-dir`), the frame itself
    (`radiometric`: a 16-bit centi-Kelvin image), or, with none of these, the TFD68 sibling folder."""

    file: Path | None = None
    folder: Path | None = None
    radiometric: bool = False

    def map_for(self, frame: Frame) -> tuple[np.ndarray | None, Path | None, str | None]:
        """(map in deg C, its file, why there is none). Raises DatasetError for a map that exists
        but cannot be read or does not fit."""
        from m3mstl.data.coco import read_temperature_file

        if self.radiometric:
            return read_temperature_file(frame.path), frame.path, None
        path = self.file if self.file is not None else find_temperature(frame, self.folder)
        if path is None:
            where = self.folder if self.folder is not None else frame.path.parent.parent / "temperature"
            return None, None, (f"no temperature map {frame.path.stem}{{{','.join(TEMPERATURE_SUFFIXES)}}} in {where}"
                                if frame.pages == 1 else "a page of a multi-page image has no temperature map")
        return read_temperature_file(path), path, None


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


def load_coarse_run(coarse_run: Path, config, device: str = "cpu") -> tuple[Any, Any]:
    """(model, config) of a `--coarse` run; UsageError unless it was trained on head boxes and the
    fine run on landmark-extent boxes (the two-stage reading needs exactly that pair)."""
    from m3mstl.errors import UsageError
    from m3mstl.runs import load_config, load_model

    coarse_config = load_config(coarse_run)
    if not trained_on_head_boxes(coarse_config):
        raise UsageError("--coarse", f"{coarse_run} was trained on landmark-extent boxes (data.face_box "
                                     f"{getattr(coarse_config.data, 'face_box', 'annotation')!r}); the coarse run must "
                                     "be trained on head boxes (data.face_box head or detector)")
    if trained_on_head_boxes(config):
        raise UsageError("--coarse", "the run itself was trained on head boxes and reads the detector's box "
                                     "directly; --coarse is for a run trained on landmark-extent boxes")
    return load_model(coarse_run, device=device), coarse_config


def predict_frames(run_dir: Path, paths: Sequence[Path], *, temperature_dir: Path | None = None,
                   box: tuple[float, float, float, float] | None = None, overlays: Path | None = None,
                   detector: DetectorConfig | FaceFinder | None = None, device: str = "cpu",
                   progress: bool = True, mapping: HeadBoxMapping = SYNTH_HEAD_TO_LANDMARK_BOX,
                   refine_passes: int = REFINE_PASSES, source: TemperatureSource | None = None,
                   reading: ReadingSettings | None = None, coarse_run: Path | None = None) -> Iterator[dict[str, Any]]:
    """One row per face found (or per frame in error / without a face), frame by frame.

    The first crop comes from `first_crop_box`: a run trained on head boxes (`data.face_box =
    "head"`) takes the detector's box as it is; for a run trained on landmark-extent boxes the
    detector's head box goes through `mapping`, then the model runs `refine_passes` more times on
    the extent of its own landmarks (`predict.predict_refined`). A box given by hand is taken to be
    of the run's own kind. With `coarse_run` (a run trained on head boxes) a landmark-extent run reads
    each detected face in two stages instead of through the mapping (`predict.predict_coarse_to_fine`):
    the coarse run places the face from the detector's box, the run reads it from the extent of
    those landmarks and then `refine_passes` times from its own.

    Each face's canthus reading uses `reading` (default: the run's own, `load_reading_settings`) on the
    frame's map from `source` (default: `temperature_dir`, else the TFD68 sibling folder); frames
    without a map get null temperatures and one DatasetWarning names them."""
    import warnings

    from tqdm.auto import tqdm

    from m3mstl.data.errors import DatasetError, DatasetWarning
    from m3mstl.infer.predict import predict_coarse_to_fine, predict_refined
    from m3mstl.runs import load_config, load_model

    model, config = load_model(Path(run_dir), device=device), load_config(Path(run_dir))
    coarse = None if coarse_run is None else load_coarse_run(Path(coarse_run), config, device)
    source = source if source is not None else TemperatureSource(folder=temperature_dir)
    reading = reading if reading is not None else load_reading_settings(Path(run_dir))
    frames = expand_inputs(paths)
    without_map: list[str] = []
    for frame in tqdm(frames, desc="predict", unit="frame", disable=not progress or len(frames) < 2):
        base = {"frame": frame.label, "file": str(frame.path), "page": frame.page}
        try:
            image = read_frame(frame)
            temperature, temperature_path, no_map = source.map_for(frame)
            if temperature is not None and temperature.shape != image.shape:
                raise DatasetError(temperature_path, f"temperature map is {temperature.shape[1]}x"
                                   f"{temperature.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}")
        except (DatasetError, OSError, ValueError) as error:
            yield {**base, "error": str(error)}
            continue
        if no_map is not None:
            without_map.append(str(frame.path) if frame.pages == 1 else frame.label)
        if box is not None:  # the same box on every frame: checked (or clipped) against each one
            from m3mstl.infer.predict import check_box

            faces = [Detection(*check_box(box, image.shape[1], image.shape[0]), 1.0)]
        else:
            faces = faces_in_frame(image, temperature, detector)
        rows = []
        for number, face in enumerate(faces):
            if coarse is not None and box is None:
                out = predict_coarse_to_fine(coarse, model, config, image, temperature, face.box, device,
                                             refine_passes)
            else:
                first_box, passes = first_crop_box(config, face.box, given=box is not None, mapping=mapping,
                                                   refine_passes=refine_passes)
                out = predict_refined(model, config, image, temperature, first_box, device, passes)
            rows.append({**base, "face": number, "box": [round(float(v), 2) for v in face.box],
                         "score": round(float(face.score), 4),
                         "crop_box": [round(float(v), 2) for v in out["crop_box"]],
                         "landmarks": np.round(out["landmarks"], 3).tolist(),
                         "occlusion_prob": np.round(out["occlusion_prob"], 4).tolist(),
                         "temperature": temperature_path is not None,
                         "temperature_map": None if temperature_path is None else str(temperature_path),
                         **read_face(temperature, out["landmarks"], out["occlusion_prob"], reading,
                                     no_map_reason=no_map or "no radiometric temperature map")})
        if overlays is not None:
            draw_overlay(image, rows, Path(overlays) / f"{frame.label}.png")
        if not rows:
            yield {**base, "face": None, "error": None, "faces": 0}
        yield from rows
    if without_map:
        warnings.warn(f"{len(without_map)} of {len(frames)} frames have no radiometric temperature map "
                      f"(first: {without_map[0]}): their faces were found on grey levels and their temperatures "
                      "are null; give maps with --temperature-dir or --temperature, or 16-bit centi-Kelvin frames "
                      "with --radiometric", DatasetWarning, stacklevel=2)


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


#: The canthus-reading columns of a CSV row (`read_face`; README "Predicting on your own frames").
CSV_READING_FIELDS = ("canthus_temperature_c", "canthus_right_c", "canthus_left_c", "canthi_used", "calibrated",
                      "abstention", "temperature_map")


def write_rows(rows: list[dict[str, Any]], out_path: Path | None, fmt: str) -> str:
    """Rows as JSON (a list) or CSV (landmarks flattened to x0,y0,...,p0,...): to a file or returned."""
    if fmt == "json":
        text = json.dumps(rows, indent=1)
    elif fmt == "csv":
        buffer = io.StringIO()
        fields = ["frame", "file", "page", "face", "error", "score", "box_x", "box_y", "box_w", "box_h",
                  *CSV_READING_FIELDS]
        fields += [f"x{i}" for i in range(68)] + [f"y{i}" for i in range(68)] + [f"p{i}" for i in range(68)]
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            flat = {k: row.get(k) for k in ("frame", "file", "page", "face", "error", "score", *CSV_READING_FIELDS)}
            if "canthus_raw_c" in row:
                flat["canthus_right_c"], flat["canthus_left_c"] = row["canthus_raw_c"]
                flat["canthi_used"] = "+".join(row["canthi_used"])
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


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a finished run folder runs/<model>/<run-id>")
    parser.add_argument("image", type=Path, nargs="+",
                        help="thermal images (8- or 16-bit), folders of them, or multi-page TIFF sequences")
    parser.add_argument("--temperature", type=Path, default=None,
                        help="its temperature map: float deg C .npy or 16-bit centi-Kelvin PNG/TIFF")
    parser.add_argument("--box", default=None,
                        help="face box X,Y,W,H in image pixels (default: detect faces; with --whole-image the "
                             "whole image); a box reaching past the image is clipped to it, so X and Y may be "
                             "negative: --box -10,-10,50,50 or --box=-10,-10,50,50")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--whole-image", action="store_true",
                        help="one image, taken whole as a ready face crop (no detection): the single-image JSON")
    parser.add_argument("--out", type=Path, default=None, help="write the rows here (default: standard output)")
    parser.add_argument("--format", choices=("json", "csv"), default="json", help="rows as JSON or CSV")
    parser.add_argument("--overlays", type=Path, default=None, help="folder for overlay PNGs (boxes, landmarks)")
    parser.add_argument("--temperature-dir", type=Path, default=None,
                        help="folder of temperature maps named like the frames (default: DATA/temperature)")
    parser.add_argument("--refine-passes", type=int, default=REFINE_PASSES,
                        help="passes on the extent of the predicted landmarks after the first, 0 .. "
                             f"{MAX_REFINE_PASSES} (default {REFINE_PASSES}; 0: the detector's mapped box only)")
    parser.add_argument("--detector", type=Path, default=None,
                        help="a trained face-detector run folder runs/detector/<run-id> (m3mstl detector DATA; "
                             "default: the rule-based detector, which needs no training)")
    parser.add_argument("--coarse", type=Path, default=None,
                        help="a run trained on head boxes that places each detected face first; RUN_DIR (trained on "
                             "landmark-extent boxes) then reads it from the extent of those landmarks")
    parser.add_argument("--radiometric", action="store_true",
                        help="the images are themselves radiometric: 16-bit centi-Kelvin frames, read as temperatures")
    parser.add_argument("--calibration-c", type=float, default=None,
                        help="the site calibration added to every canthus reading, deg C (what the camera's canthus "
                             "readings missed against a reference thermometer; default: the run's own, chosen on its "
                             "training split, when it has one)")
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
    source = temperature_source(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        if args.whole_image:
            if len(args.image) != 1:
                raise UsageError("--whole-image", "takes exactly one image")
            if args.coarse is not None:
                raise UsageError("--coarse", "places faces found in frames; --whole-image takes the image as the face")
            from m3mstl.infer.predict import predict_image

            if box is None:
                refuse_whole_frame(Path(args.image[0]), source)
            temperature_path = source.file
            if temperature_path is None and not source.radiometric:  # a named folder, else the TFD68 sibling
                temperature_path = find_temperature(Frame(Path(args.image[0])), source.folder)
                if temperature_path is None and source.folder is not None:
                    raise UsageError("--temperature-dir", f"no temperature map named {Path(args.image[0]).stem}"
                                                          f"{{{','.join(TEMPERATURE_SUFFIXES)}}} in {source.folder}")
            result = predict_image(args.run_dir, args.image[0], temperature_path=temperature_path, box=box,
                                   device=args.device, radiometric=source.radiometric,
                                   reading=reading_settings(args))
            code, text = 0, json.dumps(json_safe(result), indent=2, allow_nan=False)
        else:
            code, text = _run_frames(args, box, source)
    for warning in caught:
        if issubclass(warning.category, DatasetWarning):  # a fault in the user's input: one plain line
            print(f"warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    if text:
        print(text)
    return code


def temperature_source(args: argparse.Namespace) -> TemperatureSource:
    """Where the temperature maps come from, as the options say; a map or folder that was named but
    is not there, or options that contradict each other, are usage errors (a named map is never
    silently dropped)."""
    from m3mstl.core.fileio import regular_file_problem
    from m3mstl.errors import UsageError

    given = [name for name, value in (("--temperature", args.temperature), ("--temperature-dir", args.temperature_dir),
                                      ("--radiometric", args.radiometric or None)) if value is not None]
    if len(given) > 1:
        raise UsageError(given[1], f"cannot be combined with {given[0]}: give each frame's map one way")
    if args.temperature is not None:
        if len(args.image) != 1 or Path(args.image[0]).is_dir():
            raise UsageError("--temperature", "is the map of one image; for several images name a folder of maps "
                                              "with --temperature-dir (maps named like the images)")
        problem = regular_file_problem(Path(args.temperature))
        if problem is not None:
            raise UsageError("--temperature", f"{args.temperature}: {problem}")
        return TemperatureSource(file=Path(args.temperature))
    if args.temperature_dir is not None and not Path(args.temperature_dir).is_dir():
        raise UsageError("--temperature-dir", f"{args.temperature_dir}: not a folder")
    return TemperatureSource(folder=args.temperature_dir, radiometric=bool(args.radiometric))


def reading_settings(args: argparse.Namespace) -> ReadingSettings:
    """The run's canthus-reading settings, with the site calibration of `--calibration-c` if given."""
    import dataclasses
    import math

    from m3mstl.errors import UsageError

    settings = load_reading_settings(Path(args.run_dir))
    if args.calibration_c is None:
        return settings
    if not math.isfinite(args.calibration_c) or abs(args.calibration_c) > MAX_CALIBRATION_C:
        raise UsageError("--calibration-c", f"must be a finite correction within +-{MAX_CALIBRATION_C:g} deg C, "
                                            f"got {args.calibration_c}")
    return dataclasses.replace(settings, calibration_c=float(args.calibration_c))


#: The largest site calibration accepted: a screening camera's offset is a few tenths of a degree to a
#: degree or two (docs/thermometry.md); ten degrees is a unit mistake (Kelvin, Fahrenheit), not a calibration.
MAX_CALIBRATION_C = 10.0
#: `--whole-image` refuses an image on which the detector finds a face whose box covers less than this
#: share of it: that is a camera frame, not a face crop, and the model would read the whole scene as a face.
WHOLE_IMAGE_MIN_FACE_SHARE = 0.25


def refuse_whole_frame(path: Path, source: TemperatureSource) -> None:
    """UsageError when `--whole-image` is given a camera frame rather than a face crop: the detector
    finds a face covering less than WHOLE_IMAGE_MIN_FACE_SHARE of it."""
    from m3mstl.errors import UsageError

    frame = Frame(path)
    try:
        image = read_frame(frame)
        temperature = source.map_for(frame)[0]
    except Exception:  # noqa: BLE001  (the reading error is reported, with its file, by the prediction itself)
        return
    if temperature is not None and temperature.shape != image.shape:
        return  # predict_image names the mismatch
    faces = faces_in_frame(image, temperature)
    if not faces:
        return
    height, width = image.shape
    largest = max(faces, key=lambda face: face.box[2] * face.box[3])
    share = largest.box[2] * largest.box[3] / float(width * height)
    if share < WHOLE_IMAGE_MIN_FACE_SHARE:
        x, y, w, h = (round(v) for v in largest.box)
        raise UsageError("--whole-image", f"{path} looks like a camera frame, not a face crop: the face detector "
                                          f"finds a {w}x{h} face at {x},{y} in the {width}x{height} image "
                                          f"({share:.0%} of it); drop --whole-image to detect the faces, or give --box")


def _run_frames(args: argparse.Namespace, box: tuple[float, float, float, float] | None,
                source: TemperatureSource) -> tuple[int, str]:
    """Batch prediction on frames; exit code 1 when some frame failed."""
    if not 0 <= args.refine_passes <= MAX_REFINE_PASSES:
        from m3mstl.errors import UsageError

        raise UsageError("--refine-passes", f"must be 0 .. {MAX_REFINE_PASSES}, got {args.refine_passes}")
    detector = None
    if args.detector is not None:
        from m3mstl.detection.trained import TrainedFaceDetector

        detector = TrainedFaceDetector.load(args.detector, device=args.device)
    rows = list(predict_frames(args.run_dir, args.image, box=box, source=source, reading=reading_settings(args),
                               coarse_run=args.coarse,
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
