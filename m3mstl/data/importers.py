"""`m3mstl convert FORMAT SRC OUT`: other landmark formats -> the TFD68 layout.

Formats (SRC is a folder searched recursively; labels are paired with the image of the same stem):

``pts``     iBUG / 300W ``.pts`` files: ``version: 1``, ``n_points: 68``, ``{``, one ``x y`` per line, ``}``.
            300W coordinates are 1-based pixel coordinates (the centre of the top-left pixel is
            (1, 1)); our continuous convention puts that centre at (0.5, 0.5), so
            ``x_ours = x_pts - 0.5`` and ``y_ours = y_pts - 0.5``. All points are visible (v = 2):
            .pts files carry no occlusion.
``sftl54``  SF-TL54 thermal landmark labels: one ``.txt`` per image with rows ``idx x y``, 54 points,
            x and y normalised to [0, 1] by the image width and height (0 = left/top edge, 1 =
            right/bottom edge, so ``x_ours = x * width``). Points 0-47 are iBUG 0-47; the six mouth
            points 48-53 are iBUG 48, 51, 54, 57, 62, 66. The other 14 iBUG points are unlabelled (v = 0).
``cofw68``  COFW-68 annotations: one ``.mat`` per image (``<n>_points.mat`` or ``<stem>.mat``) with
            the fields ``Points`` (68 x 2, x then y, 1-based MATLAB pixel coordinates -> minus 0.5)
            and ``Occ`` (68 flags, 1 = occluded -> v = 1, else v = 2); override the names with
            ``--points-field`` / ``--occlusion-field``. MATLAB v5 files are read with
            scipy.io.loadmat, v7.3 (HDF5) files with h5py. Images are either files next to the
            labels, or a cell array in one .mat file (``--images-mat``, field ``--images-field``,
            e.g. ``IsT`` of ``COFW_test_color.mat``), image n for ``<n>_points.mat``.

Images are copied as PNG into OUT/thermal/; colour images are converted to 8-bit grayscale (with
a warning), 16-bit grayscale stays 16-bit. There are no temperature maps (encoding "none").
Hidden files and folders (``.name``, e.g. macOS's ``._x.pts``) are ignored. A labelled point outside
its image is an error naming the label file (SF-TL54 points within the format's 5 % tolerance of the
border are put on the border). The result is checked as `m3mstl validate` checks a dataset before it
replaces anything in OUT.

OUT is new or empty, or holds a dataset an earlier ``m3mstl convert`` or ``m3mstl synth`` wrote
(recorded in OUT/.m3mstl-dataset.json): ``--overwrite`` replaces exactly that dataset's files and
refuses when OUT's annotations.json, thermal/, temperature/ or occluders/ hold anything else.
Subjects come from ``thermal_<subject>_<a>_<b>`` file names, else from ``--subject-regex``
(its group ``subject``, or its first group, searched in the label's relative path), else each
image is its own subject.
"""
from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from m3mstl.data.coco import (ANNOTATIONS_FILE, dataset_writer, describe_files, foreign_dataset_files, open_image,
                               subject_from_file_name, write_annotations, write_dataset_marker, write_sample)
from m3mstl.data.errors import DatasetError, DatasetWarning
from m3mstl.data.records import VIS_OCCLUDED, VIS_UNLABELLED, VIS_VISIBLE
from m3mstl.core.fileio import atomic_folder, regular_file_problem
from m3mstl.core.landmarks import NUM_LANDMARKS

FORMATS = ("pts", "sftl54", "cofw68")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ONE_BASED_TO_CONTINUOUS = -0.5  # 1-based pixel-centre coordinates -> ours
SFTL54_POINTS = 54
# SF-TL54 point k -> iBUG index: 0-47 are shared, the six mouth points are corners and mid-lips.
SFTL54_TO_IBUG = np.array(list(range(48)) + [48, 51, 54, 57, 62, 66])
COFW_POINTS_FIELD, COFW_OCCLUSION_FIELD = "Points", "Occ"


@dataclass
class LabelledImage:
    """One source image and its landmarks in our convention."""

    label_path: Path
    image_id: str
    landmarks: np.ndarray                  # (68, 2) continuous pixel coordinates
    visibility: np.ndarray                 # (68,) COCO v
    image_path: Path | None = None         # an image file, or ...
    image_array: np.ndarray | None = None  # ... the pixels themselves (images stored in a .mat)


@dataclass
class ConversionResult:
    annotations_path: Path
    images: int
    colour_converted: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Label readers
# --------------------------------------------------------------------------------------------


def read_pts(path: Path) -> np.ndarray:
    """The (n, 2) points of an iBUG .pts file, as written (1-based); DatasetError if malformed."""
    text = _read_label_text(path, errors="replace")
    header = re.search(r"n_points\s*:\s*(\d+)", text)
    body = re.search(r"\{(.*?)\}", text, re.DOTALL)
    if header is None or body is None:
        raise DatasetError(path, "not an iBUG .pts file: expected 'n_points: N' and a { ... } block")
    count = int(header.group(1))
    try:
        values = np.array(body.group(1).split(), dtype=float)
    except ValueError:
        raise DatasetError(path, "the { ... } block holds something other than numbers") from None
    if values.size != 2 * count:
        raise DatasetError(path, f"n_points says {count} but the block holds {values.size / 2:g} points")
    points = values.reshape(count, 2)
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if len(bad):
        raise DatasetError(path, f"points {bad.tolist()[:10]} are not finite numbers (NaN or inf); .pts files "
                                 f"label every point")
    return points


def _read_label_text(path: Path, errors: str = "strict") -> str:
    """A label file's text; DatasetError naming it when it is not a regular file (a named pipe is
    never opened: reading one blocks) or not UTF-8 text."""
    problem = regular_file_problem(path)
    if problem is not None:
        raise DatasetError(path, f"label file {problem}")
    try:
        return Path(path).read_text(encoding="utf-8", errors=errors)
    except UnicodeDecodeError as error:
        raise DatasetError(path, f"not UTF-8 text (byte {error.start}: {error.reason}); save the label file as "
                                 f"UTF-8") from None


def _labels(src: Path, pattern: str) -> list[Path]:
    """Label files under `src` matching `pattern`, sorted; hidden files and folders (``.name``: macOS's
    ``._x.pts`` resource forks, .git, .ipynb_checkpoints) and folders named like labels are skipped."""
    found = []
    for path in sorted(src.rglob(pattern)):
        if any(part.startswith(".") for part in path.relative_to(src).parts):
            continue
        if path.is_dir():
            continue
        found.append(path)
    return found


def read_sftl54(path: Path) -> np.ndarray:
    """The (54, 2) normalised points of an SF-TL54 label file, ordered by their index."""
    points = np.full((SFTL54_POINTS, 2), np.nan)
    seen = set()
    for number, line in enumerate(_read_label_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            index, x, y = int(fields[0]), float(fields[1]), float(fields[2])
        except (ValueError, IndexError):
            raise DatasetError(path, f"line {number}: expected 'idx x y', got {line.strip()!r}") from None
        if not 0 <= index < SFTL54_POINTS or index in seen:
            raise DatasetError(path, f"line {number}: point index {index} is out of 0..53 or repeated")
        seen.add(index)
        points[index] = x, y
    if len(seen) != SFTL54_POINTS:
        raise DatasetError(path, f"{len(seen)} points, expected {SFTL54_POINTS}")
    if not np.isfinite(points).all() or points.min() < -0.05 or points.max() > 1.05:
        raise DatasetError(path, "coordinates must be normalised to [0, 1] by the image width and height")
    # Within the tolerance above a point lies on the border: put it there, inside the image.
    return np.clip(points, 0.0, 1.0)


def sftl54_to_ibug68(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised SF-TL54 points -> (68, 2) pixel landmarks and COCO visibility (v = 0 where unmapped)."""
    landmarks = np.full((NUM_LANDMARKS, 2), np.nan)
    visibility = np.full(NUM_LANDMARKS, VIS_UNLABELLED, dtype=np.int64)
    landmarks[SFTL54_TO_IBUG] = np.asarray(points, dtype=float) * [width, height]
    visibility[SFTL54_TO_IBUG] = VIS_VISIBLE
    return landmarks, visibility


def _load_mat(path: Path) -> tuple[dict[str, np.ndarray], bool]:
    """(variables, is_v73) of a MATLAB file; v7.3 arrays come back in h5py's (transposed) order."""
    import h5py
    import scipy.io

    problem = regular_file_problem(path)
    if problem is not None:
        raise DatasetError(path, f".mat file {problem}")
    if Path(path).stat().st_size == 0:
        raise DatasetError(path, "cannot read the .mat file: it is empty (0 bytes)")
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as handle:
                return {name: np.asarray(handle[name]) for name in handle.keys()
                        if isinstance(handle[name], h5py.Dataset) and handle[name].dtype != h5py.ref_dtype}, True
        variables = scipy.io.loadmat(path)
    except Exception as error:  # noqa: BLE001 - scipy and h5py raise many types for a damaged file
        raise DatasetError(path, f"cannot read the .mat file (truncated or not MATLAB): "
                                 f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    return {k: v for k, v in variables.items() if not k.startswith("__")}, False


def _field(variables: dict[str, np.ndarray], name: str, path: Path) -> np.ndarray:
    if name in variables:
        return variables[name]
    matches = [k for k in variables if k.lower() == name.lower()]
    if len(matches) == 1:
        return variables[matches[0]]
    raise DatasetError(path, f"no field {name!r}; the file holds {sorted(variables)}")


def read_cofw68_mat(path: Path, points_field: str = COFW_POINTS_FIELD,
                    occlusion_field: str = COFW_OCCLUSION_FIELD) -> tuple[np.ndarray, np.ndarray]:
    """(points (68, 2) as stored, 1-based; occluded (68,) bool) of one COFW-68 annotation file."""
    variables, _ = _load_mat(Path(path))
    points = np.asarray(_field(variables, points_field, path), dtype=float)
    if points.shape == (2, NUM_LANDMARKS):  # MATLAB column-major order seen through h5py
        points = points.T
    if points.shape != (NUM_LANDMARKS, 2):
        raise DatasetError(path, f"field {points_field!r} has shape {points.shape}, expected (68, 2)")
    flags = np.asarray(_field(variables, occlusion_field, path), dtype=float).reshape(-1)
    if flags.size != NUM_LANDMARKS:
        raise DatasetError(path, f"field {occlusion_field!r} holds {flags.size} flags, expected 68")
    unknown = sorted(set(flags[np.isfinite(flags)].tolist()) - {0.0, 1.0})
    if unknown or not np.isfinite(flags).all():
        found = ", ".join(f"{v:g}" for v in unknown) or "NaN"
        raise DatasetError(path, f"field {occlusion_field!r} holds {found}; expected 0 (visible) or 1 (occluded)")
    return points, flags == 1


def read_mat_images(path: Path, field_name: str) -> list[np.ndarray]:
    """The images of a cell array in a .mat file (e.g. COFW's IsT), as (H, W) or (H, W, 3) arrays."""
    import h5py
    import scipy.io

    path = Path(path)
    problem = regular_file_problem(path)
    if problem is not None:
        raise DatasetError(path, f"--images-mat {problem}")
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as handle:
                names = {k.lower(): k for k in handle.keys()}
                if field_name not in handle and field_name.lower() not in names:
                    raise DatasetError(path, f"no field {field_name!r}; the file holds {sorted(handle.keys())}")
                references = handle[field_name if field_name in handle else names[field_name.lower()]]
                # h5py shows MATLAB's column-major arrays transposed: (W, H) or (3, W, H).
                return [np.asarray(handle[ref]).T for ref in np.asarray(references).reshape(-1)]
        variables = scipy.io.loadmat(path)
    except DatasetError:
        raise
    except Exception as error:  # noqa: BLE001 - scipy and h5py raise many types for a damaged file
        raise DatasetError(path, f"cannot read the .mat file (truncated or not MATLAB): "
                                 f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    cells = _field({k: v for k, v in variables.items() if not k.startswith("__")}, field_name, path)
    return [np.asarray(cell) for cell in np.asarray(cells, dtype=object).reshape(-1)]


# --------------------------------------------------------------------------------------------
# Discovering samples
# --------------------------------------------------------------------------------------------


def _image_next_to(label: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (label.with_name(stem + suffix), label.with_name(stem + suffix.upper())):
            if candidate.is_file():
                return candidate
    raise DatasetError(label, f"no image {stem}.<{'|'.join(s[1:] for s in IMAGE_SUFFIXES)}> next to this label")


def _image_id(src: Path, label: Path, stem: str) -> str:
    """A unique, file-system-safe id: the label's relative folder and stem joined by '_'.

    300W reuses names across folders (lfpw/trainset/image_0001 and lfpw/testset/image_0001).
    """
    relative = label.relative_to(src).parent.parts + (stem,)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(p for p in relative if p not in ("", ".")))


def _pts_samples(src: Path, **_: object) -> Iterator[LabelledImage]:
    for label in _labels(src, "*.pts"):
        points = read_pts(label)
        if len(points) != NUM_LANDMARKS:
            raise DatasetError(label, f"{len(points)} points; only the 68-point iBUG scheme is supported")
        yield LabelledImage(label, _image_id(src, label, label.stem), points + ONE_BASED_TO_CONTINUOUS,
                            np.full(NUM_LANDMARKS, VIS_VISIBLE), image_path=_image_next_to(label, label.stem))


def _sftl54_samples(src: Path, **_: object) -> Iterator[LabelledImage]:
    for label in _labels(src, "*.txt"):
        try:
            image_path = _image_next_to(label, label.stem)
        except DatasetError:
            try:
                read_sftl54(label)
            except (DatasetError, UnicodeDecodeError):
                continue  # a README or list file, not a label
            raise  # a well-formed label without its image: an error, not a silent skip
        points = read_sftl54(label)
        with open_image(image_path) as image:
            width, height = image.size
        landmarks, visibility = sftl54_to_ibug68(points, width, height)
        yield LabelledImage(label, _image_id(src, label, label.stem), landmarks, visibility, image_path=image_path)


def _cofw68_samples(src: Path, *, points_field: str = COFW_POINTS_FIELD,
                    occlusion_field: str = COFW_OCCLUSION_FIELD, images_mat: Path | None = None,
                    images_field: str = "IsT", **_: object) -> Iterator[LabelledImage]:
    images = read_mat_images(images_mat, images_field) if images_mat is not None else None
    skip = Path(images_mat).resolve() if images_mat is not None else None
    for label in _labels(src, "*.mat"):
        if label.resolve() == skip:
            continue
        stem = re.sub(r"_points$", "", label.stem)
        points, occluded = read_cofw68_mat(label, points_field, occlusion_field)
        visibility = np.where(occluded, VIS_OCCLUDED, VIS_VISIBLE)
        visibility[~np.isfinite(points).all(axis=1)] = VIS_UNLABELLED
        sample = LabelledImage(label, _image_id(src, label, stem), points + ONE_BASED_TO_CONTINUOUS, visibility)
        if images is None:
            sample.image_path = _image_next_to(label, stem)
        else:
            if not stem.isdigit() or not 1 <= int(stem) <= len(images):
                raise DatasetError(label, f"cannot tell which of the {len(images)} images in {images_mat} "
                                          f"this is: expected a name <n>_points.mat with n in 1..{len(images)}")
            sample.image_array = images[int(stem) - 1]
        yield sample


READERS: dict[str, Callable[..., Iterator[LabelledImage]]] = {
    "pts": _pts_samples, "sftl54": _sftl54_samples, "cofw68": _cofw68_samples,
}


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def to_grayscale(image: Image.Image | np.ndarray, source: Path) -> tuple[np.ndarray, bool]:
    """(uint8 or uint16 (H, W) array, was_colour). Colour -> 8-bit luminance; 16-bit gray is kept."""
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3:
            image = Image.fromarray(np.ascontiguousarray(array[..., :3], dtype=np.uint8))
        elif array.dtype in (np.uint8, np.uint16):
            return np.ascontiguousarray(array), False
        else:
            raise DatasetError(source, f"unsupported image array {array.dtype} {array.shape}")
    if image.mode == "L":
        return np.asarray(image, dtype=np.uint8), False
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 65535:
            raise DatasetError(source, "32-bit image values do not fit 16 bits")
        return array.astype(np.uint16), False
    if image.mode in ("1", "F"):
        raise DatasetError(source, f"unsupported image mode {image.mode!r}")
    return np.asarray(image.convert("L"), dtype=np.uint8), True


def _subject(sample: LabelledImage, src: Path, pattern: re.Pattern[str] | None) -> str:
    name = sample.image_path.name if sample.image_path is not None else sample.label_path.name
    subject = subject_from_file_name(name)
    if subject is not None:
        return subject
    if pattern is not None:
        match = pattern.search(sample.label_path.relative_to(src).as_posix())
        if match is None:
            raise DatasetError(sample.label_path, f"--subject-regex {pattern.pattern!r} does not match this path")
        return match.group("subject") if "subject" in pattern.groupindex else match.group(1)
    return sample.image_id


def convert(format_name: str, src: str | Path, out: str | Path, *, subject_regex: str | None = None,
            overwrite: bool = False, **options: object) -> ConversionResult:
    """Convert the labels under ``src`` into a TFD68-layout folder ``out`` (see the module docstring)."""
    if format_name not in READERS:
        raise ValueError(f"unknown format {format_name!r}; choose one of {FORMATS}")
    src, out = Path(src).resolve(), Path(out).resolve()
    if not src.is_dir():
        raise DatasetError(src, "source folder not found")
    _check_output_folder(out, src, overwrite)
    try:
        pattern = re.compile(subject_regex) if subject_regex else None
    except re.error as error:
        raise DatasetError("--subject-regex", f"not a valid regular expression: {error}") from None
    # Built in a sibling folder and swapped in at the end: a conversion failing part-way (or
    # interrupted) leaves the previous dataset in OUT exactly as it was.
    with atomic_folder(out) as build:
        result = _convert_into(build, out, format_name, src, pattern, options)
        _check_converted(build, out)  # nothing in OUT changes unless `m3mstl validate` accepts the result
        write_dataset_marker(build, "m3mstl convert")
        return result


def _check_output_folder(out: Path, src: Path, overwrite: bool) -> None:
    """Refuse an OUT whose replacement would destroy files no m3mstl command wrote (the user's own
    images, labels or maps), and a non-empty OUT without --overwrite."""
    if out.exists() and not out.is_dir():
        raise DatasetError(out, "output path exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    writer, written = dataset_writer(out)
    foreign = foreign_dataset_files(out, written)
    if foreign:
        owner = (f"a dataset {writer} wrote, with files it did not write" if writer is not None
                 else "files no m3mstl command wrote")
        raise DatasetError(out, f"holds {owner} ({describe_files(foreign)}) where the converted dataset goes; "
                                f"--overwrite only replaces a dataset written by m3mstl convert or m3mstl synth, "
                                f"so nothing was changed: choose a new or empty folder")
    if writer is not None and not overwrite:
        raise DatasetError(out / ANNOTATIONS_FILE, "already exists; pass --overwrite to replace it")
    if writer is None and not overwrite:
        raise DatasetError(out, "folder is not empty and holds no dataset; choose a new or empty folder, or pass "
                                "--overwrite to convert into it (its other files are kept)")


def _check_converted(build: Path, out: Path) -> None:
    """Every check of `m3mstl validate` on the converted dataset before it replaces anything; a
    problem names the file as it would be in OUT."""
    from m3mstl.data.validate import validate_dataset

    report = validate_dataset(build)
    if report.ok:
        return
    path, message = report.problems[0]
    try:
        shown = out / Path(path).resolve().relative_to(build.resolve())
    except ValueError:
        shown = Path(path)
    more = len(report.problems) - 1
    raise DatasetError(shown, f"the converted dataset would fail `m3mstl validate`: {message}"
                              + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
                              + "; nothing was written")


def _check_inside(sample: LabelledImage, width: int, height: int) -> None:
    """A labelled point outside its image is an error naming the label file (`m3mstl validate` rejects it)."""
    labelled = np.asarray(sample.visibility) > VIS_UNLABELLED
    points = np.asarray(sample.landmarks, dtype=float)
    outside = labelled & ((points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0) | (points[:, 1] > height))
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise DatasetError(sample.label_path, f"labelled points {np.flatnonzero(outside).tolist()[:10]} lie outside "
                                              f"their {width}x{height} image (e.g. point {first} at "
                                              f"{points[first, 0]:g}, {points[first, 1]:g} in 0-based continuous "
                                              f"pixels)")


def _convert_into(build: Path, out: Path, format_name: str, src: Path, pattern: re.Pattern[str] | None,
                  options: dict[str, object]) -> ConversionResult:
    entries, colour, seen = [], [], set()
    for sample in READERS[format_name](src, **options):
        if sample.image_id in seen:
            raise DatasetError(sample.label_path, f"a second label maps to image id {sample.image_id!r}")
        seen.add(sample.image_id)
        if sample.image_path is not None:
            with open_image(sample.image_path) as opened:
                pixels, was_colour = to_grayscale(opened, sample.image_path)
        else:
            pixels, was_colour = to_grayscale(sample.image_array, sample.label_path)
        _check_inside(sample, pixels.shape[1], pixels.shape[0])
        if was_colour:
            colour.append(sample.image_path or sample.label_path)
        try:
            entries.append(write_sample(build, sample.image_id, _subject(sample, src, pattern), pixels, None,
                                        sample.landmarks, sample.visibility,
                                        image_fields={"source_label": sample.label_path.relative_to(src).as_posix()}))
        except ValueError as error:  # the writer's own checks of one sample's values
            if isinstance(error, DatasetError):
                raise
            raise DatasetError(sample.label_path, f"cannot be converted: {error}") from None
    if not entries:
        raise DatasetError(src, f"no {format_name} labels with images found")
    if colour:
        warnings.warn(f"converted {len(colour)} colour images to 8-bit grayscale (e.g. {colour[0]})",
                      DatasetWarning, stacklevel=3)
    info = {"source_format": format_name, "source": src.as_posix(), "converted_by": "m3mstl convert"}
    write_annotations(build, entries, info=info)
    return ConversionResult(out / ANNOTATIONS_FILE, len(entries), colour)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS, help="label format of SRC")
    parser.add_argument("src", type=Path, help="folder with the labels and images (searched recursively)")
    parser.add_argument("out", type=Path, help="output TFD68-layout folder")
    parser.add_argument("--subject-regex", help="regex whose group 'subject' (or first group) finds the subject "
                                                "id in each label's relative path")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the dataset an earlier m3mstl convert or synth wrote in OUT (never other files)")
    parser.add_argument("--points-field", default=COFW_POINTS_FIELD, help="cofw68: field of the 68x2 points")
    parser.add_argument("--occlusion-field", default=COFW_OCCLUSION_FIELD, help="cofw68: field of the 68 flags")
    parser.add_argument("--images-mat", type=Path, help="cofw68: .mat file holding the images as a cell array")
    parser.add_argument("--images-field", default="IsT", help="cofw68: the cell array's field in --images-mat")


def run(args: argparse.Namespace) -> int:
    options = {}
    if args.format == "cofw68":
        options = {"points_field": args.points_field, "occlusion_field": args.occlusion_field,
                   "images_mat": args.images_mat, "images_field": args.images_field}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        result = convert(args.format, args.src, args.out, subject_regex=args.subject_regex,
                         overwrite=args.overwrite, **options)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"wrote {result.images} images to {result.annotations_path} (no temperature maps)")
    return 0
