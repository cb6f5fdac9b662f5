"""Issue 29's bad-input and fault probes, driven through the command line as a new user would.

Every probe asserts what the user sees: a non-zero exit code and one line ``error: <file or
option>: <what is wrong>`` (no traceback) for a fault in the input or the machine; no user file
changed (byte for byte) when a command refuses; no hang (probes that could block run in a
subprocess with a timeout). Faults of the machine (disk full, read-only file system, out of
memory) are simulated in-process by making the writer fail as the operating system would.

In-process probes go through `m3mstl.cli.main`, the command's entry point, with every output under a
temporary output root; the few that need a trained run share one one-step baseline run.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_probes import (ONE_STEP, Result, assert_error, full_frame_dataset, run_cli, run_cli_subprocess,  # noqa: F401
                        tiny, train_one_step, tree_digest)
from conftest import make_tiny_dataset, outputs_redirected_to

SMALL_SYNTH = ["--subjects", "1", "--per-subject", "2", "--size", "32", "--quiet"]


# ---------------------------------------------------------------------------------------- helpers
m3mstl = run_cli  # `m3mstl ARGS` in this process


def m3mstl_subprocess(output_root: Path, *args, timeout: float = 300):
    return run_cli_subprocess(output_root, *args, timeout=timeout)


@pytest.fixture(scope="module")
def output_root(tmp_path_factory) -> Path:
    with outputs_redirected_to(tmp_path_factory.mktemp("output-root")) as root:
        yield root


def pts_source(folder: Path, count: int = 2, seed: int = 0, size: tuple[int, int] = (80, 60)) -> Path:
    """iBUG .pts labels with their PNG images, every point inside its image."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    for k in range(count):
        points = np.column_stack([rng.uniform(5, width - 5, 68), rng.uniform(5, height - 5, 68)])
        write_pts(folder / f"img{k}.pts", points)
        Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)).save(folder / f"img{k}.png")
    return folder


def write_pts(path: Path, points) -> None:
    rows = "\n".join(f"{x} {y}" for x, y in points)
    path.write_text(f"version: 1\nn_points: {len(points)}\n{{\n{rows}\n}}\n")


def bomb_png(path: Path, width: int = 20000, height: int = 13000) -> Path:
    """A PNG whose header claims width x height pixels (260 Mpx: over Pillow's bomb limit), 100 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def trained(output_root, tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, finished run folder) of a one-step baseline run."""
    return train_one_step(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def full_frames(output_root, tmp_path_factory) -> Path:
    return full_frame_dataset(tmp_path_factory.mktemp("frames") / "frames")


def copied_run(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run" / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


# ======================================================================= data loss: convert --overwrite
def _foreign_folder(folder: Path) -> Path:
    """A folder of the user's own: images, maps and labels where a dataset's files would go."""
    (folder / "thermal").mkdir(parents=True)
    (folder / "temperature").mkdir()
    (folder / "thermal" / "my_frame.png").write_bytes(b"my original image")
    (folder / "temperature" / "my_frame.npy").write_bytes(b"my camera map")
    (folder / "notes.txt").write_text("keep")
    return folder


def test_convert_overwrite_never_deletes_a_folder_it_did_not_write(output_root, tmp_path):
    mine = _foreign_folder(tmp_path / "mine")
    before = tree_digest(mine)
    src = pts_source(tmp_path / "src")
    refused = assert_error(m3mstl("convert", "pts", src, mine), str(mine), "no m3mstl command wrote")
    assert "pass --overwrite" not in refused  # it does not invite the data loss
    assert_error(m3mstl("convert", "pts", src, mine, "--overwrite"), str(mine), "thermal/my_frame.png",
                 "nothing was changed")
    assert tree_digest(mine) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine.")]  # no build left behind


def test_convert_overwrite_replaces_its_own_dataset_but_not_files_added_to_it(output_root, tmp_path):
    out = tmp_path / "out"
    assert m3mstl("convert", "pts", pts_source(tmp_path / "a", 3), out).returncode == 0
    assert json.loads((out / ".m3mstl-dataset.json").read_text())["written_by"] == "m3mstl convert"
    assert_error(m3mstl("convert", "pts", pts_source(tmp_path / "b", 2, seed=1), out), "annotations.json",
                 "--overwrite")
    replaced = m3mstl("convert", "pts", tmp_path / "b", out, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(p.name for p in (out / "thermal").iterdir()) == ["img0.png", "img1.png"]
    (out / "thermal" / "added_by_hand.png").write_bytes(b"mine")
    before = tree_digest(out)
    assert_error(m3mstl("convert", "pts", tmp_path / "a", out, "--overwrite"), "thermal/added_by_hand.png")
    assert tree_digest(out) == before


def test_convert_overwrite_into_a_synth_dataset_and_synth_refuses_added_files(output_root, tmp_path):
    out = tmp_path / "synth"
    assert m3mstl("synth", out, *SMALL_SYNTH).returncode == 0
    extra = out / "temperature" / "calibration.npy"
    extra.write_bytes(b"not the generator's")
    before = tree_digest(out)
    assert_error(m3mstl("synth", out, *SMALL_SYNTH), "temperature/calibration.npy", "did not write")
    assert_error(m3mstl("convert", "pts", pts_source(tmp_path / "src"), out, "--overwrite"), "calibration.npy")
    assert tree_digest(out) == before
    extra.unlink()
    assert m3mstl("convert", "pts", tmp_path / "src", out, "--overwrite").returncode == 0


def test_datasets_converted_before_markers_are_recognised_by_their_annotations(output_root, tmp_path):
    out = tmp_path / "old"
    assert m3mstl("convert", "pts", pts_source(tmp_path / "src", 2), out).returncode == 0
    (out / ".m3mstl-dataset.json").unlink()  # as every dataset converted before this change
    again = m3mstl("convert", "pts", pts_source(tmp_path / "src3", 3, seed=2), out, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert len(list((out / "thermal").iterdir())) == 3 and (out / ".m3mstl-dataset.json").is_file()
    synth = tmp_path / "synth"  # the generator's record is its annotations.json: its datasets hold nothing else
    assert m3mstl("synth", synth, *SMALL_SYNTH).returncode == 0
    assert sorted(p.name for p in synth.iterdir()) == ["annotations.json", "occluders", "temperature", "thermal"]


# ================================================================================ hangs
def test_predict_on_a_named_pipe_does_not_block(output_root, trained, tmp_path):
    _, run_dir = trained
    fifo = tmp_path / "frame.png"
    os.mkfifo(fifo)
    result = m3mstl_subprocess(output_root, "predict", run_dir, fifo, "--quiet", timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{fifo}: image is a named pipe (FIFO)" in result.stderr
    whole = m3mstl("predict", run_dir, fifo, "--whole-image")  # would block here if it opened the pipe
    assert_error(whole, str(fifo), "named pipe")


def test_validate_and_convert_never_open_a_named_pipe(output_root, tmp_path):
    data = tiny(tmp_path / "data", n_subjects=2, images_per_subject=1)
    image = sorted((data / "thermal").glob("*.png"))[0]
    image.unlink()
    os.mkfifo(image)
    validate = m3mstl_subprocess(output_root, "validate", data, "--no-progress", timeout=120)
    assert validate.returncode == 1 and f"{image}: image is a named pipe (FIFO)" in validate.stdout, \
        validate.stdout + validate.stderr
    src = pts_source(tmp_path / "src", 1)
    os.mkfifo(src / "pipe.pts")
    convert = m3mstl_subprocess(output_root, "convert", "pts", src, tmp_path / "out", timeout=120)
    assert_error(convert, "pipe.pts", "named pipe")


def test_refine_passes_are_bounded(output_root, tmp_path):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(image)
    result = m3mstl("predict", tmp_path / "no-run", image, "--refine-passes", "1000000000")
    assert_error(result, "--refine-passes", "0 .. 20", code=2)


# ================================================================================ silent acceptances
def _old_fingerprint(root: Path) -> str:
    """The fingerprint as it was computed before subfolders counted (top-level files only)."""
    digest = hashlib.sha256()
    digest.update(b"annotations.json:" + hashlib.sha256((root / "annotations.json").read_bytes()).hexdigest().encode()
                  + b"\n")
    for sub in ("thermal", "temperature", "occluders"):
        for path in sorted((root / sub).iterdir(), key=lambda p: p.name):
            if path.is_file():
                digest.update(f"{sub}/{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()[:16]


def _into_subfolder(data: Path, count: int = 1) -> list[Path]:
    """Move the first `count` images to thermal/session1/ (annotations updated): a layout validate accepts."""
    coco = json.loads((data / "annotations.json").read_text())
    moved = []
    (data / "thermal" / "session1").mkdir()
    for image in coco["images"][:count]:
        old = data / image["file_name"]
        image["file_name"] = f"thermal/session1/{old.name}"
        old.rename(data / image["file_name"])
        moved.append(data / image["file_name"])
    (data / "annotations.json").write_text(json.dumps(coco))
    return moved


def test_fingerprint_counts_images_in_subfolders_and_keeps_old_ids(output_root, tmp_path):
    from m3mstl.runs import data_fingerprint

    flat = tiny(tmp_path / "flat", n_subjects=2, images_per_subject=1)
    assert data_fingerprint(flat) == _old_fingerprint(flat)  # run ids of existing datasets keep their meaning
    data = tiny(tmp_path / "nested", n_subjects=2, images_per_subject=1)
    image = _into_subfolder(data)[0]
    assert m3mstl("validate", data, "--no-progress").returncode == 0
    before = data_fingerprint(data)
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(image)
    assert data_fingerprint(data) != before
    # ... and an image kept outside the scanned folders, named by annotations.json
    coco = json.loads((data / "annotations.json").read_text())
    (data / "images").mkdir()
    shutil.move(data / coco["images"][0]["file_name"], data / "images" / "a.png")
    coco["images"][0]["file_name"] = "images/a.png"
    (data / "annotations.json").write_text(json.dumps(coco))
    named = data_fingerprint(data)
    (data / "images" / "a.png").write_bytes((data / "images" / "a.png").read_bytes()[:40])
    assert data_fingerprint(data) != named


@pytest.mark.slow
def test_a_run_is_not_reused_after_an_image_in_a_subfolder_was_truncated(output_root, tmp_path):
    data = tiny(tmp_path / "sub")
    image = _into_subfolder(data, 3)[-1]
    first = m3mstl("train", *ONE_STEP, "--data", data)
    assert first.returncode == 0, first.stderr[-2000:]
    image.write_bytes(image.read_bytes()[:60])  # truncated: the data changed
    assert_error(m3mstl("train", *ONE_STEP, "--data", data), image.name)


@pytest.mark.slow
def test_a_finished_run_without_its_weights_is_reported_not_reused(output_root, trained, tmp_path):
    data, run_dir = trained
    weights = run_dir / "model.pt"
    saved = tmp_path / "model.pt"
    shutil.move(weights, saved)
    try:
        assert_error(m3mstl("train", *ONE_STEP, "--data", data), run_dir.name, "model.pt is missing", "--force")
        assert_error(m3mstl("predict", run_dir, sorted((data / "thermal").glob("*.png"))[0]), "model.pt")
    finally:
        shutil.move(saved, weights)
    metrics = run_dir / "metrics_test.json"
    kept = metrics.read_bytes()
    metrics.unlink()
    try:
        assert_error(m3mstl("train", *ONE_STEP, "--data", data), "metrics_test.json is missing")
    finally:
        metrics.write_bytes(kept)
    assert m3mstl("train", *ONE_STEP, "--data", data).returncode == 0  # whole again: reused


@pytest.mark.slow
def test_run_records_are_strict_json(output_root, trained):
    _, run_dir = trained
    for path in run_dir.glob("*.json"):
        json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in {path.name}"))


def test_json_writer_writes_null_for_nan(tmp_path):
    from m3mstl.core.fileio import write_json_atomic

    write_json_atomic(tmp_path / "m.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.nan})
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail) == {"a": None, "b": [None, 1.5],
                                                                                        "c": None}


@pytest.mark.parametrize("yaml_text, key", [
    ("thermal:\n  emissivity: [0.97, .inf]\n", "thermal.emissivity"),
    ("crop:\n  margin: [1.2, .inf]\n", "crop.margin"),
    ("expression:\n  probabilities: {neutral: .nan}\n", "expression.probabilities.neutral"),
], ids=["inf-emissivity", "inf-margin", "nan-weight"])
def test_synth_refuses_an_infinite_prior(output_root, tmp_path, yaml_text, key):
    priors = tmp_path / "priors.yaml"
    priors.write_text(yaml_text)
    out = tmp_path / "never"
    assert_error(m3mstl("synth", out, *SMALL_SYNTH, "--config", priors), "priors.yaml", key, "finite")
    assert not out.exists()


def test_synth_into_a_symlink_writes_where_it_points(output_root, tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    assert m3mstl("synth", real, *SMALL_SYNTH).returncode == 0
    link.symlink_to(real)
    again = m3mstl("synth", link, "--subjects", "1", "--per-subject", "3", "--size", "32", "--quiet")
    assert again.returncode == 0, again.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert len(list((real / "thermal").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # nothing left beside them
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert_error(m3mstl("synth", dangling, *SMALL_SYNTH), "dangling", "does not exist")


def test_builds_of_a_killed_synth_do_not_accumulate(output_root, tmp_path):
    out = tmp_path / "synth"
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(output_root), "OMP_NUM_THREADS": "1"}
    for _ in range(2):
        process = subprocess.Popen([sys.executable, "-m", "m3mstl.cli", "synth", str(out), "--subjects", "20",
                                    "--per-subject", "20", "--size", "96", "--quiet"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not list(tmp_path.glob(".synth.building-*/thermal/*.png")):
                assert process.poll() is None, "synth finished before it could be killed"
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert len(list(tmp_path.glob(".synth.building-*"))) >= 1  # kill -9 leaves its build behind ...
    assert m3mstl("synth", out, *SMALL_SYNTH).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]  # ... and the next run removes them


def test_convert_never_writes_a_dataset_validate_rejects(output_root, tmp_path):
    src = pts_source(tmp_path / "src", 2)
    points = np.full((68, 2), 10.0)
    points[7] = (500.0, 10.0)  # far outside the 80x60 image
    write_pts(src / "img1.pts", points)
    out = tmp_path / "out"
    assert_error(m3mstl("convert", "pts", src, out), "img1.pts", "outside", "80x60")
    assert not out.exists()
    # SF-TL54 allows 5 % past the border: such a point is put on the border, and validate accepts it
    sf = tmp_path / "sf"
    sf.mkdir()
    (sf / "thermal_001_0_0.txt").write_text("\n".join(f"{k} {1.03 if k == 0 else 0.5} 0.5" for k in range(54)))
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(sf / "thermal_001_0_0.png")
    assert m3mstl("convert", "sftl54", sf, tmp_path / "sf-out").returncode == 0
    assert m3mstl("validate", tmp_path / "sf-out", "--no-progress").returncode == 0


def test_detector_refuses_face_crops(output_root, tmp_path):
    crops = tmp_path / "crops"
    assert m3mstl("synth", crops, "--subjects", "5", "--per-subject", "2", "--size", "32", "--quiet").returncode == 0
    before = {p for p in (output_root / "runs").rglob("*")} if (output_root / "runs").exists() else set()
    result = m3mstl("detector", crops, "--profile", "quick", "--device", "cpu")
    assert_error(result, "annotations.json", "face crops", "--full-frame")
    after = {p for p in (output_root / "runs").rglob("*")} if (output_root / "runs").exists() else set()
    assert after == before  # nothing trained, no run folder


def test_detector_force_is_refused_while_another_process_trains_the_run(output_root, full_frames):
    from m3mstl import paths
    from m3mstl.detection.trained import settings_for
    from m3mstl.runs import data_fingerprint
    from m3mstl.train.detector import detector_run_id

    run_dir = paths.RUNS_DIR / "detector" / detector_run_id(settings_for("quick"), 0, data_fingerprint(full_frames))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoint.pt").write_bytes(b"the other trainer's")
    with open(run_dir / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running trainer holds it
        handle.write(f"pid {os.getpid()} (the test)\n")
        handle.flush()
        result = m3mstl("detector", full_frames, "--profile", "quick", "--device", "cpu", "--force")
    assert_error(result, run_dir.name, "another trainer")
    assert (run_dir / "checkpoint.pt").read_bytes() == b"the other trainer's"  # --force deleted nothing
    shutil.rmtree(run_dir)


# ==================================================================== tracebacks -> one-line errors
@pytest.mark.parametrize("command", [
    lambda d, t: ["evaluate", t / "no-run", "--data", d],
    lambda d, t: ["train", *ONE_STEP[:4], "--data", d],
    lambda d, t: ["predict", t / "no-run", t / "x.png"],
    lambda d, t: ["detector", d],
], ids=["evaluate", "train", "predict", "detector"])
def test_unknown_or_missing_device(output_root, tmp_path, command):
    import torch

    data = tmp_path / "data"
    bogus = m3mstl(*command(data, tmp_path), "--device", "bogus")
    assert_error(bogus, "--device", "'bogus'", code=2)
    if not torch.cuda.is_available():
        assert_error(m3mstl(*command(data, tmp_path), "--device", "cuda"), "--device", "no usable CUDA GPU")


@pytest.mark.parametrize("override, option", [
    ("precision=fp8", "precision"),
    ("loader.num_workers=-1", "loader.num_workers"),
    ('model_options.backbone="no_such_net"', "backbone"),
])
def test_train_options_checked_elsewhere(output_root, tmp_path, override, option):
    data = tiny(tmp_path / "d", n_subjects=3, images_per_subject=1)
    assert_error(m3mstl("train", *ONE_STEP, "--set", override, "--data", data), option)


def test_synth_and_detector_refuse_a_negative_seed(output_root, tmp_path, full_frames):
    assert_error(m3mstl("synth", tmp_path / "s", *SMALL_SYNTH, "--seed", "-1"), "--seed", "-1")
    assert not (tmp_path / "s").exists()
    assert_error(m3mstl("detector", full_frames, "--profile", "quick", "--seed", "-1"), "seed", "-1")


def test_reproduce_only_a_notebook_that_does_not_exist(output_root):
    assert_error(m3mstl("reproduce", "--profile", "quick", "--only", "99"), "--only", "99", code=2)  # a usage error
    assert not (output_root / "data").exists()  # refused before any data was generated


def test_a_notebook_that_is_not_json_is_named(tmp_path):
    from m3mstl import reproduce
    from m3mstl.errors import M3mstlError

    broken = tmp_path / "01_broken.ipynb"
    broken.write_text("{ this is not JSON")
    with pytest.raises(M3mstlError, match="01_broken.ipynb.*not a notebook"):
        reproduce.notebook_profiles(broken)


def test_convert_label_faults_are_named(output_root, tmp_path):
    image = np.zeros((40, 40), np.uint8)
    nan = tmp_path / "nan"
    nan.mkdir()
    points = np.full((68, 2), 10.0)
    points[3] = np.nan
    write_pts(nan / "a.pts", points)
    Image.fromarray(image).save(nan / "a.png")
    assert_error(m3mstl("convert", "pts", nan, tmp_path / "o1"), "a.pts", "not finite")

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    write_pts(hidden / "a.pts", np.full((68, 2), 10.0))
    Image.fromarray(image).save(hidden / "a.png")
    (hidden / "._a.pts").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # ignored, as a hidden file
    (hidden / ".ipynb_checkpoints").mkdir()
    (hidden / ".ipynb_checkpoints" / "b.pts").write_text("junk")
    result = m3mstl("convert", "pts", hidden, tmp_path / "o2")
    assert result.returncode == 0 and "wrote 1 images" in result.stdout, result.stderr

    latin = tmp_path / "latin"
    latin.mkdir()
    rows = "\n".join(f"{k} 0.5 0.5" for k in range(54)) + "\n# caf\xe9"
    (latin / "thermal_001_0_0.txt").write_bytes(rows.encode("latin-1"))
    Image.fromarray(image).save(latin / "thermal_001_0_0.png")
    assert_error(m3mstl("convert", "sftl54", latin, tmp_path / "o3"), "thermal_001_0_0.txt", "UTF-8")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "1_points.mat").write_bytes(b"")
    Image.fromarray(image).save(empty / "1.png")
    assert_error(m3mstl("convert", "cofw68", empty, tmp_path / "o4"), "1_points.mat", "empty")
    (empty / "1_points.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    assert_error(m3mstl("convert", "cofw68", empty, tmp_path / "o4"), "1_points.mat", "cannot read the .mat file")
    assert not any((tmp_path / name).exists() for name in ("o1", "o3", "o4"))


def test_a_decompression_bomb_is_named_everywhere(output_root, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_pts(src / "bomb.pts", np.full((68, 2), 10.0))
    bomb = bomb_png(src / "bomb.png")
    assert_error(m3mstl("convert", "pts", src, tmp_path / "out"), "bomb.png", "too many pixels")
    data = tiny(tmp_path / "data", n_subjects=2, images_per_subject=1)
    shutil.copy(bomb, sorted((data / "thermal").glob("*.png"))[0])
    validate = m3mstl("validate", data, "--no-progress")
    assert validate.returncode == 1 and "too many pixels" in validate.stdout and "Traceback" not in validate.stderr


@pytest.mark.slow
def test_predict_a_decompression_bomb(output_root, trained, tmp_path):
    _, run_dir = trained
    bomb = bomb_png(tmp_path / "bomb.png")
    assert_error(m3mstl("predict", run_dir, bomb, "--whole-image"), "bomb.png", "too many pixels")
    frames = m3mstl("predict", run_dir, bomb, "--quiet")
    assert frames.returncode == 1 and "too many pixels" in frames.stderr and "Traceback" not in frames.stderr


@pytest.mark.slow
@pytest.mark.parametrize("damage, fragment", [
    ("mismatched", "do not belong together"),
    ("empty", "holds no images"),
    ("nan", "non-finite"),
])
def test_unusable_predictions_files_are_named(output_root, trained, tmp_path, damage, fragment):
    _, run_dir = trained
    run = copied_run(run_dir, tmp_path)
    path = run / "predictions_test.npz"
    arrays = dict(np.load(path))
    if damage == "mismatched":
        arrays["pred_landmarks"] = arrays["pred_landmarks"][:1]
    elif damage == "empty":
        arrays = {key: value[:0] if value.ndim else value for key, value in arrays.items()}
    else:
        arrays["pred_landmarks"] = np.full_like(arrays["pred_landmarks"], np.nan)
    np.savez(path, **arrays)
    assert_error(m3mstl("evaluate", run), "predictions_test.npz", fragment)


@pytest.mark.slow
def test_weights_of_another_config_are_named(output_root, trained, tmp_path):
    import torch

    data, run_dir = trained
    run = copied_run(run_dir, tmp_path)
    torch.save({"some.other.layer": torch.zeros(3)}, run / "model.pt")
    image = sorted((data / "thermal").glob("*.png"))[0]
    assert_error(m3mstl("predict", run, image, "--whole-image"), "model.pt", "do not fit")


@pytest.mark.slow
def test_a_corrupt_detector_checkpoint_is_named(output_root, trained, tmp_path):
    data, run_dir = trained
    detector = tmp_path / "detector-run"
    detector.mkdir()
    (detector / "model.pt").write_bytes(b"PK\x03\x04 truncated")
    image = sorted((data / "thermal").glob("*.png"))[0]
    assert_error(m3mstl("predict", run_dir, image, "--detector", detector), "model.pt", "cannot read the checkpoint")
    import torch

    torch.save({"network": {}, "settings": json.dumps({"no_such_setting": 1})}, detector / "model.pt")
    assert_error(m3mstl("predict", run_dir, image, "--detector", detector), "model.pt", "no_such_setting")


def test_deeply_nested_annotations(output_root, tmp_path):
    data = tmp_path / "nested"
    data.mkdir()
    (data / "annotations.json").write_text("[" * 100_000 + "]" * 100_000)
    result = m3mstl("validate", data, "--no-progress")
    assert result.returncode == 1 and "nested too deeply" in result.stdout and "Traceback" not in result.stderr
    assert_error(m3mstl("train", *ONE_STEP, "--data", data), "annotations.json", "nested too deeply")


def test_ctrl_c_during_start_up_is_an_interruption(output_root, monkeypatch):
    import importlib

    real_import = importlib.import_module

    def interrupted(name, *args, **kwargs):
        if name.startswith("m3mstl.train"):
            raise KeyboardInterrupt  # as if Ctrl-C came while torch was being imported
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", interrupted)
    result = m3mstl("train", "--model", "baseline", "--data", "x")
    assert result.returncode == 130 and "interrupted" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_in_a_real_shell_during_start_up(output_root):
    """SIGINT about when the command imports its module: interrupted (130), or finished, never a traceback."""
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(output_root)}
    env.pop("M3MSTL_DEBUG", None)
    process = subprocess.Popen([sys.executable, "-m", "m3mstl.cli", "evaluate", "/no/such/run"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.6)  # Python is up; the command is importing torch
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    assert process.returncode in (130, 1), (process.returncode, stderr)


# ==================================================================== faults of the machine
def test_disk_full_is_one_line_naming_the_file(output_root, tmp_path, monkeypatch):
    from m3mstl.core import fileio

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "synth"
    line = assert_error(m3mstl("synth", out, *SMALL_SYNTH), str(out), "no space left")
    assert ".building-" not in line and not out.exists()
    monkeypatch.undo()
    # numpy reports a short write without an errno: on a full disk that is a full disk too
    monkeypatch.setattr(fileio, "disk_nearly_full", lambda folder: True)
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("9216 requested and 992 written")))
    line = assert_error(m3mstl("synth", out, *SMALL_SYNTH), "temperature", ".npy", "no space left")
    assert not out.exists() and not list(tmp_path.glob(".synth.*"))


def test_torch_save_on_a_full_disk_is_enospc(tmp_path, monkeypatch):
    from m3mstl.core import fileio

    monkeypatch.setattr(fileio, "disk_nearly_full", lambda folder: True)
    with pytest.raises(OSError) as caught:
        with fileio.atomic_path(tmp_path / "model.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 2742848 vs 2742744")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(fileio, "disk_nearly_full", lambda folder: False)
    with pytest.raises(RuntimeError):  # on a disk with room it is what it is
        with fileio.atomic_path(tmp_path / "model.pt"):
            raise RuntimeError("a bug")


def test_read_only_file_system(output_root, tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(kwargs.get("dir", "."), ".x.building-1-abc"))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    out = tmp_path / "synth"
    line = assert_error(m3mstl("synth", out, *SMALL_SYNTH), str(out), "read-only file system")
    assert ".building-" not in line


def test_output_root_that_is_a_file(tmp_path):
    data = tiny(tmp_path / "data", n_subjects=3, images_per_subject=1)
    root = tmp_path / "outputs"
    root.write_text("a file, not a folder")
    with outputs_redirected_to(root):
        assert_error(m3mstl("train", *ONE_STEP, "--data", data), str(root), "is a file, but a folder is needed")
    assert root.read_text() == "a file, not a folder"


def test_out_of_memory_is_one_line(output_root, tmp_path, monkeypatch):
    from m3mstl.data import validate

    monkeypatch.setattr(validate, "validate_dataset", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    assert_error(m3mstl("validate", tmp_path / "data", "--no-progress"), "m3mstl validate", str(tmp_path / "data"),
                 "out of memory")


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    from m3mstl.data import validate

    monkeypatch.setattr(validate, "validate_dataset", lambda *a, **k: (_ for _ in ()).throw(ZeroDivisionError()))
    with pytest.raises(ZeroDivisionError):
        m3mstl("validate", tmp_path, "--no-progress")
    monkeypatch.setattr(validate, "validate_dataset",
                        lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError(errno.ENOENT, "gone", "x")))
    with pytest.raises(FileNotFoundError):  # not a fault of the machine: a missing file is the code's to name
        m3mstl("validate", tmp_path, "--no-progress")


# ==================================================================== --box with negative numbers
def test_negative_option_values_are_values(output_root, tmp_path):
    from m3mstl.cli import values_with_leading_minus
    from m3mstl.infer.frames import configure_parser
    import argparse

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    assert values_with_leading_minus(parser, ["run", "x.png", "--box", "-10,-10,50,50", "--quiet"]) == \
        ["run", "x.png", "--box=-10,-10,50,50", "--quiet"]
    assert values_with_leading_minus(parser, ["--", "--box", "-1"]) == ["--", "--box", "-1"]


@pytest.mark.slow
def test_predict_box_with_negative_numbers(output_root, trained):
    data, run_dir = trained
    image = sorted((data / "thermal").glob("*.png"))[0]
    for box in (["--box", "-10,-10,50,50"], ["--box=-10,-10,50,50"]):
        result = m3mstl("predict", run_dir, image, *box, "--quiet")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)[0]["box"] == [0, 0, 40, 40]  # clipped to the image, with a warning
        assert "warning: --box -10,-10,50,50 reaches past" in result.stderr
