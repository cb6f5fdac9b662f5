"""`m3mstl validate DIR`: check a TFD68-layout dataset file by file and summarise it.

Every problem is collected (the check never stops at the first) and printed as
``<path>: <problem>``; the exit code is 1 when there is any problem, else 0.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from m3mstl.data.coco import (
    detect_temperature_encoding,
    load_occluder_mask,
    open_image,
    parse_annotations,
    read_temperature_file,
)
from m3mstl.data.errors import DatasetError
from m3mstl.data.records import VIS_OCCLUDED, FaceRecord
from m3mstl.core.landmarks import REGIONS


# Raised whenever a check is added or made stricter, so a dataset remembered as valid is checked again.
CHECKS_VERSION = 2

# Pillow modes of single-channel images: 8-bit, 16-bit and 32-bit integer, float.
GREY_MODES = ("L", "I;16", "I;16B", "I;16L", "I", "F")


@dataclass
class ValidationReport:
    """Problems found, as (path, message), and a summary of what the dataset holds."""

    root: Path
    problems: list[tuple[Path, str]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[tuple[Path, str]] = field(default_factory=list)  # usable, but changed on reading

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path: Path, message: str) -> None:
        self.problems.append((Path(path), message))

    def format_summary(self) -> str:
        """The summary as aligned human-readable lines."""
        s = self.summary
        lines = [f"dataset            {self.root}"]
        if "images" in s:
            lines += [
                f"keypoint layout    {s['keypoint_layout']}",
                f"images             {s['images']} usable of {s['images_listed']} listed "
                f"({s['dropped_unlabelled']} without any labelled landmark)",
                f"subjects           {s['subjects']}",
                f"occluded landmarks {s['occlusion_rate']:.1%} of labelled",
            ]
            lines += [f"  {region:<16} {rate:.1%}" for region, rate in s["occlusion_rate_per_region"].items()]
            temperature = s["temperature_range_c"]
            span = "n/a" if temperature is None else f"{temperature[0]:.2f} .. {temperature[1]:.2f} deg C"
            lines += [f"temperature        {s['temperature_encoding']}, {s['temperature_maps']} maps, {span}",
                      f"occluder masks     {s['occluder_masks']}"]
        lines.append(f"problems           {len(self.problems)}")
        return "\n".join(lines)


def _check_image(record: FaceRecord, report: ValidationReport) -> None:
    try:
        # Decodes the pixels: catches truncated and corrupt files, decompression bombs, and a named
        # pipe (never opened: reading it would block).
        with open_image(record.image_path) as image:
            size, mode = image.size, image.mode
    except DatasetError as error:
        report.add(record.image_path, f"unreadable or corrupt image: {error.problem}")
        return
    if mode not in GREY_MODES:
        report.warnings.append((record.image_path, f"{mode} image: read as its luminance (thermal images are "
                                                    f"single-channel)"))
    if size != (record.width, record.height):
        report.add(record.image_path, f"image is {size[0]}x{size[1]} but the annotations say "
                                      f"{record.width}x{record.height}")


def _check_landmarks(record: FaceRecord, json_path: Path, report: ValidationReport) -> None:
    points = record.landmarks
    outside = record.labelled & ((points[:, 0] < 0) | (points[:, 0] > record.width)
                                 | (points[:, 1] < 0) | (points[:, 1] > record.height))
    if outside.any():
        report.add(json_path, f"image {record.image_id}: labelled keypoints {np.flatnonzero(outside).tolist()} lie "
                              f"outside the {record.width}x{record.height} image")


def _check_temperature(record: FaceRecord, report: ValidationReport, any_maps: bool) -> tuple[float, float] | None:
    path = record.temperature_path
    if path is None:
        if any_maps:
            report.add(record.image_path, "missing temperature map (other images of the dataset have one)")
        return None
    if not path.is_file():
        report.add(path, "missing temperature map")
        return None
    try:
        temperature = read_temperature_file(path)
    except DatasetError as error:
        report.add(error.path, error.problem)
        return None
    if temperature.shape != (record.height, record.width):
        report.add(path, f"temperature map is {temperature.shape[1]}x{temperature.shape[0]} but its image is "
                         f"{record.width}x{record.height}")
    finite = np.isfinite(temperature)
    if not finite.all():
        report.add(path, f"{int((~finite).sum())} NaN/inf temperatures")
    if not finite.any():
        return None
    return float(temperature[finite].min()), float(temperature[finite].max())


def _check_occluder_mask(record: FaceRecord, report: ValidationReport) -> bool:
    if record.occluder_mask_path is None:
        return False
    try:
        load_occluder_mask(record)  # checks readability, channel count and size
    except DatasetError as error:
        report.add(error.path, error.problem)
        return False
    return True


def _occlusion_summary(records: list[FaceRecord]) -> tuple[float, dict[str, float]]:
    if not records:
        return 0.0, {region: 0.0 for region in REGIONS}
    visibility = np.stack([r.visibility for r in records])
    labelled, occluded = visibility > 0, visibility == VIS_OCCLUDED
    per_region = {}
    for region, indices in REGIONS.items():
        count = labelled[:, list(indices)].sum()
        per_region[region] = float(occluded[:, list(indices)].sum() / count) if count else 0.0
    return float(occluded.sum() / max(labelled.sum(), 1)), per_region


def validate_dataset(root: str | Path, *, progress: bool = False) -> ValidationReport:
    """Check every file of a TFD68-layout dataset; never raises for a problem in the data."""
    report = ValidationReport(root=Path(root))
    try:
        parsed = parse_annotations(root)
    except DatasetError as error:  # the JSON itself is missing or unusable: nothing else can be checked
        report.add(error.path, error.problem)
        return report
    report.root = parsed.root
    for path, message in parsed.problems:
        report.add(path, message)
    encoding, encoding_problems = detect_temperature_encoding(parsed.records)
    for path, message in encoding_problems:
        report.add(path, message)

    any_maps = encoding != "none"
    low, high, maps, masks = np.inf, -np.inf, 0, 0
    for record in tqdm(parsed.records, desc="validating", disable=not progress):
        _check_image(record, report)
        _check_landmarks(record, parsed.json_path, report)
        span = _check_temperature(record, report, any_maps)
        if span is not None:
            low, high, maps = min(low, span[0]), max(high, span[1]), maps + 1
        masks += _check_occluder_mask(record, report)

    rate, per_region = _occlusion_summary(parsed.records)
    report.summary = {
        "keypoint_layout": parsed.keypoint_layout,
        "images": len(parsed.records),
        "images_listed": parsed.images_listed,
        "dropped_unlabelled": len(parsed.dropped_unlabelled),
        "subjects": len({r.subject for r in parsed.records}),
        "occlusion_rate": rate,
        "occlusion_rate_per_region": per_region,
        "temperature_encoding": encoding,
        "temperature_maps": maps,
        "temperature_range_c": None if maps == 0 else (low, high),
        "occluder_masks": masks,
    }
    return report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="dataset folder (holding annotations.json) or the JSON file")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def run(args: argparse.Namespace) -> int:
    report = validate_dataset(args.dir, progress=not args.no_progress)
    print(report.format_summary())
    for path, message in report.problems:
        print(f"{path}: {message}")
    for path, message in report.warnings:
        print(f"warning: {path}: {message}")
    return 0 if report.ok else 1


def check_dataset(root: str | Path, fingerprint: str | None = None) -> None:
    """Run every check of `m3mstl validate` on a dataset before compute is spent on it; raise a
    DatasetError naming the first problem's file (and counting the rest).

    A dataset that passed is remembered by its content fingerprint (`m3mstl.runs.data_fingerprint`)
    in the build cache, so checking the same data again costs one fingerprint.
    """
    from m3mstl import paths
    from m3mstl.core.fileio import write_json_atomic
    from m3mstl.data.fingerprint import data_fingerprint

    fingerprint = fingerprint or data_fingerprint(root)
    marker = paths.BUILD_DIR / "cache" / "validated" / f"{fingerprint}-checks{CHECKS_VERSION}.json"
    if marker.is_file():
        return
    report = validate_dataset(root)
    if not report.ok:
        path, message = report.problems[0]
        more = len(report.problems) - 1
        suffix = f" (and {more} more problem{'s' * (more > 1)}; run `m3mstl validate {report.root}`)" if more else ""
        raise DatasetError(path, message + suffix)
    try:
        write_json_atomic(marker, {"root": str(report.root), "images": report.summary.get("images")})
    except OSError:
        pass  # a read-only build folder only costs the next call a re-check
