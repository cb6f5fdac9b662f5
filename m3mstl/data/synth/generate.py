"""`m3mstl synth`: write a SynthTFD68 dataset in the TFD68 layout.

    m3mstl synth OUT_DIR --subjects N --per-subject M --size S --seed K [--config PRIORS.yaml] [--workers W]

Image a of subject s is a pure function of (seed, s, a, priors, size): its identity comes from
SeedSequence(seed, spawn_key=(0, s)) and everything else from SeedSequence(seed, spawn_key=
(1, s, a)). Workers (multiprocessing) render and write their images' files; the parent collects
the JSON entries in sample order and writes annotations.json, so the files are byte-identical
whatever the number of workers.

`--full-frame` writes the whole sensor frame instead of the face crop (same layout, a separate
folder): 160x120 .. 640x512 as the camera priors draw it, the face where the camera put it, its
temperature map, landmarks and labels in frame pixels. Both kinds carry two boxes per face:
"bbox", the extent of the 68 landmarks (what training crops around), and "head_bbox", the visible
head (skin, hair, ears), the kind of box a face detector returns; and "canthus_skin_max_c", the
hottest bare skin around each inner canthus (39, 42), the reference for canthus thermometry.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from m3mstl.data import coco
from m3mstl.data.synth.priors import SynthConfigError, check_physics, load_priors
from m3mstl.data.synth.recording import recorded
from m3mstl.core.fileio import atomic_folder
from m3mstl.data.synth.renderer import GENERATOR_VERSION, RenderedFace, render
from m3mstl.data.synth.spec import FaceSpec, sample_identity, sample_spec

GENERATOR_NAME = "SynthTFD68"
#: Bounds of the generator's arguments: far above any use (the default profile writes 4,000 faces of
#: 128 px), far below what would take a machine's memory or processes.
MAX_IMAGES = 10_000_000
MAX_SIZE = 4096
MAX_WORKERS = 256

# Per-process state of a worker (set once by `_init_worker`, read by `_make_sample`).
_STATE: dict[str, Any] = {}


def subject_id(index: int, subjects: int) -> str:
    """Zero-padded subject id: 3 digits, more when there are more than 1000 subjects."""
    return f"{index:0{max(3, len(str(max(subjects - 1, 0))))}d}"


def spec_for(seed: int, subject_index: int, image_index: int, subjects: int, priors: dict[str, Any]) -> FaceSpec:
    """The spec of image `image_index` of subject `subject_index` (deterministic)."""
    sid = subject_id(subject_index, subjects)
    identity_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, subject_index)))
    identity = sample_identity(identity_rng, priors, sid)
    image_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, subject_index, image_index)))
    return sample_spec(image_rng, priors, identity, image_index)


def write_rendered(root: Path, spec: FaceSpec, face: RenderedFace, temperature_format: str) -> dict[str, Any]:
    """Write one rendered face through the data layer's writer, every number as `recorded`; returns its
    JSON entry."""
    return coco.write_sample(
        root, spec.image_id, spec.subject, face.image_u8, face.temperature_c, recorded(face.landmarks),
        face.visibility, bbox=recorded(face.bbox), occluder_mask=face.occluder_mask,
        temperature_format=temperature_format, image_fields=recorded(face.image_fields),
        annotation_fields=recorded(face.annotation_fields))


def _init_worker(state: dict[str, Any]) -> None:
    _STATE.clear()
    _STATE.update(state)


def _make_sample(task: tuple[int, int]) -> dict[str, Any]:
    subject_index, image_index = task
    st = _STATE
    spec = spec_for(st["seed"], subject_index, image_index, st["subjects"], st["priors"])
    face = render(spec, st["size"], full_frame=st.get("full_frame", False))
    return write_rendered(st["root"], spec, face, st["temperature_format"])


def _check_target_folder(root: Path) -> None:
    """Refuse a target that is a file, or a non-empty folder that is not a SynthTFD68 dataset, so a
    typo cannot replace someone else's data; and a SynthTFD68 dataset whose files include some the
    generator did not write (its annotations.json lists what it wrote: `coco.dataset_writer`). The
    target itself is only ever replaced whole, at the end (`atomic_folder`); a symbolic link to a
    folder is written where it points."""
    if root.is_symlink() and not root.exists():
        raise SynthConfigError(root, f"is a symbolic link to {Path(root).readlink()}, which does not exist; "
                                     f"create that folder or give another output folder")
    if root.exists() and not root.is_dir():
        raise SynthConfigError(root, "output path exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        writer, written = coco.dataset_writer(root)
        if writer != "m3mstl synth":
            raise SynthConfigError(root, "folder is not empty and holds no SynthTFD68 dataset; "
                                         "choose a new or empty folder")
        foreign = coco.foreign_dataset_files(root, written)
        if foreign:
            raise SynthConfigError(root, f"holds files the generator did not write ({coco.describe_files(foreign)}) "
                                         f"beside its SynthTFD68 dataset; nothing was changed: move them out of "
                                         f"the folder or choose another one")


def generate_dataset(
    out_dir: str | Path,
    *,
    subjects: int,
    per_subject: int,
    size: int,
    seed: int,
    workers: int = 1,
    config: str | Path | None = None,
    priors: dict[str, Any] | None = None,
    temperature_format: str = "npy",
    layout: str = "ibug68",
    progress: bool = False,
    full_frame: bool = False,
) -> Path:
    """Render subjects x per_subject faces into `out_dir` (TFD68 layout); returns the annotations path.

    `config` is a priors YAML laid over the defaults (`load_priors`); `priors` a ready dict
    (takes precedence). See the module docstring for the determinism contract.
    """
    from m3mstl.core import MAX_SEED

    root = Path(out_dir)
    if subjects < 1 or per_subject < 1:
        raise SynthConfigError(root, f"need at least one subject and one image per subject, got "
                                     f"subjects={subjects}, per_subject={per_subject}")
    if subjects * per_subject > MAX_IMAGES:
        raise SynthConfigError(root, f"--subjects x --per-subject must be at most {MAX_IMAGES:,} images, got "
                                     f"{subjects * per_subject:,}")
    if size < 16 or size > MAX_SIZE:
        raise SynthConfigError(root, f"--size must be 16 .. {MAX_SIZE} pixels, got {size}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise SynthConfigError(root, f"--seed must be a whole number in 0 .. {MAX_SEED}, got {seed!r}")
    if workers < 1 or workers > MAX_WORKERS:
        raise SynthConfigError(root, f"--workers must be 1 .. {MAX_WORKERS}, got {workers}")
    if temperature_format not in ("npy", "png"):
        raise SynthConfigError(root, f"temperature format must be 'npy' or 'png', got {temperature_format!r}")
    if priors is None:
        priors = load_priors(config)
    check_physics(priors, root)
    _check_target_folder(root)
    # Built in a sibling folder and swapped in at the end: an interrupted or failed run leaves the
    # previous dataset exactly as it was (and never old labels over new pixels).
    with atomic_folder(root) as build:
        return _generate_into(build, root, priors, subjects=subjects, per_subject=per_subject, size=size,
                              seed=seed, workers=workers, temperature_format=temperature_format, layout=layout,
                              progress=progress, full_frame=full_frame)


def _generate_into(build: Path, root: Path, priors: dict[str, Any], *, subjects: int, per_subject: int, size: int,
                   seed: int, workers: int, temperature_format: str, layout: str, progress: bool,
                   full_frame: bool) -> Path:
    state = {"root": build, "seed": int(seed), "subjects": int(subjects), "size": int(size), "priors": priors,
             "temperature_format": temperature_format, "full_frame": bool(full_frame)}
    tasks = [(s, a) for s in range(subjects) for a in range(per_subject)]
    entries = list(_run_tasks(tasks, state, workers, progress))
    info = {
        "generator": GENERATOR_NAME, "version": GENERATOR_VERSION, "seed": int(seed), "subjects": int(subjects),
        "per_subject": int(per_subject), "size": int(size), "temperature_format": temperature_format,
        "frame": "full sensor frame" if full_frame else "face crop",
        "priors": priors,
        "description": "Synthetic LWIR faces with 68 iBUG landmarks; v = 1 occluded (by an occluder or the "
                       "head itself), v = 2 visible; see m3mstl.data.synth.",
        "conventions": {
            "landmarks": "continuous pixel coordinates, pixel (r, c) centre at (c + 0.5, r + 0.5)",
            "landmarks_3d": "camera frame (OpenCV: x right, y down, z forward), mm",
            "head_pose": "m3mstl.core.pose: R = Ry(yaw) Rx(pitch) Rz(roll), degrees",
            "occluder_mask": "bit k = occluder k of the image's 'occluders' list covers the person",
            "skin_temperature_c": "true skin temperature at each landmark before any occluder",
            "bbox": "extent of the 68 landmarks (x, y, w, h), hidden ones included",
            "head_bbox": "visible head: skin, hair and ears of the head (x, y, w, h), as a face detector boxes it",
            "canthus_skin_max_c": "hottest bare skin within 6 mm of inner canthi 39 and 42, before any occluder",
            "file_name": "thermal_<subject>_<image index>_<expression code>",
        },
    }
    # The record of what the generator wrote is annotations.json itself ("info.generator" and the files its
    # images list: `coco.dataset_writer`), so a dataset stays exactly its annotations and image files.
    coco.write_annotations(build, entries, info=info, layout=layout)
    return root / coco.ANNOTATIONS_FILE


def _run_tasks(tasks: list[tuple[int, int]], state: dict[str, Any], workers: int, progress: bool):
    bar = None
    if progress:
        from tqdm.auto import tqdm  # a widget in JupyterLab, text in a terminal

        # In a log rather than a terminal, a line every 10 s instead of a redraw every 0.1 s.
        bar = tqdm(total=len(tasks), unit="face", desc="synth", mininterval=0.1 if sys.stderr.isatty() else 10)
    try:
        if workers == 1:
            _init_worker(state)
            for task in tasks:
                yield _make_sample(task)
                if bar is not None:
                    bar.update(1)
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
            # Chunks of consecutive images keep a worker on one subject for a while.
            chunk = max(1, min(16, len(tasks) // (4 * workers) or 1))
            with context.Pool(workers, initializer=_init_worker, initargs=(state,)) as pool:
                for entry in pool.imap(_make_sample, tasks, chunksize=chunk):
                    yield entry
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, help="output folder (new, empty, or an earlier SynthTFD68 run)")
    parser.add_argument("--subjects", type=int, default=10, help="number of subjects (default 10)")
    parser.add_argument("--per-subject", type=int, default=20, help="images per subject (default 20)")
    parser.add_argument("--size", type=int, default=128, help="side of the square face crops in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--config", type=Path, default=None,
                        help="priors YAML laid over the shipped defaults (m3mstl/data/synth/priors.yaml)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--temperature-format", choices=("npy", "png"), default="npy",
                        help="temperature maps as float32 deg C .npy (default) or uint16 centi-Kelvin .png")
    parser.add_argument("--layout", choices=coco.KEYPOINT_LAYOUTS, default="ibug68",
                        help="COCO keypoint layout: one 68-point category (default) or TFD68's per-part form")
    parser.add_argument("--full-frame", action="store_true",
                        help="write whole sensor frames (160x120 .. 640x512, --size ignored) instead of face crops")
    parser.add_argument("--scenes", type=int, default=None, metavar="N",
                        help="write N whole camera scenes instead (640x512, 1-4 people at different distances, indoor "
                             "and outdoor; m3mstl.data.synth.scenes): what the face detector is measured on")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if getattr(args, "scenes", None) is not None:
        from m3mstl.data.synth.scenes import generate_scenes

        path = generate_scenes(args.out_dir, count=args.scenes, seed=args.seed, workers=args.workers,
                               priors=load_priors(args.config), progress=not args.quiet and sys.stderr.isatty())
        print(f"wrote {args.scenes} scenes to {path.parent} in {time.perf_counter() - start:.1f} s")
        return 0
    # A SynthConfigError reaches the command line's one error path: `error: <file>: <problem>`, exit 1.
    path = generate_dataset(args.out_dir, subjects=args.subjects, per_subject=args.per_subject, size=args.size,
                            seed=args.seed, workers=args.workers, config=args.config,
                            temperature_format=args.temperature_format, layout=args.layout,
                            progress=not args.quiet and sys.stderr.isatty(),
                            full_frame=getattr(args, "full_frame", False))
    count = args.subjects * args.per_subject
    elapsed = time.perf_counter() - start
    what = "full frames" if getattr(args, "full_frame", False) else f"faces at {args.size} px"
    print(f"wrote {count} {what} ({args.subjects} subjects x {args.per_subject}) to "
          f"{path.parent} in {elapsed:.1f} s")
    return 0
