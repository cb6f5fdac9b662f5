"""Seeded fuzzing of what users hand `m3mstl convert`, `m3mstl predict` and `m3mstl detector` (issue 29):
iBUG .pts labels with their images, thermal images and temperature maps, full-frame datasets, mutated at
random.

For every case the command either succeeds (convert: a dataset `m3mstl validate` accepts; predict: one
row per input, an unreadable file as an error row) or exits 1 with one `error:` line naming the file it
could not use; never a traceback, a hang, a change to the user's input or a half-written output folder.
The cases are a pure function of (FUZZ_SEED, case index); `M3MSTL_FUZZ_CASES` sets how many of each
(default 60). Commands run in this process (`m3mstl.cli.main`), like the dataset fuzz test.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from cli_probes import (assert_error, flip_bytes, full_frame_dataset, run_cli, train_one_step, tree_digest,
                        truncate)
from conftest import outputs_redirected_to

pytestmark = pytest.mark.slow

FUZZ_SEED = 29
CASES = int(os.environ.get("M3MSTL_FUZZ_CASES", "60"))
SECONDS_PER_COMMAND = 120


# ------------------------------------------------------------------------------- convert pts
def pts_text(points: list[tuple[object, object]], n_points: object | None = None, braces: bool = True) -> str:
    rows = "\n".join(f"{x} {y}" for x, y in points)
    head = f"version: 1\nn_points: {len(points) if n_points is None else n_points}\n"
    return head + ("{\n" + rows + "\n}\n" if braces else rows + "\n")


def _points(rng: np.random.Generator, n: int = 68, size=(80, 60)) -> list[tuple[float, float]]:
    return [(float(rng.uniform(5, size[0] - 5)), float(rng.uniform(5, size[1] - 5))) for _ in range(n)]


JUNK_VALUES = ["nan", "inf", "-inf", "", "x", "1e400", "-5", "1000", "0x10", "1,5", "None", "½"]


def _pts_junk_value(src: Path, rng) -> None:
    points = _points(rng)
    for _ in range(int(rng.integers(1, 4))):
        k = int(rng.integers(0, len(points)))
        points[k] = (JUNK_VALUES[int(rng.integers(0, len(JUNK_VALUES)))], points[k][1])
    (src / "img0.pts").write_text(pts_text(points))


def _pts_count(src: Path, rng) -> None:
    n = int(rng.choice([0, 1, 67, 69, 98, 136]))
    (src / "img0.pts").write_text(pts_text(_points(rng, n), n_points=rng.choice([n, 68, "x", -1])))


def _pts_structure(src: Path, rng) -> None:
    choice = int(rng.integers(0, 5))
    path = src / "img1.pts"
    if choice == 0:
        path.write_text(pts_text(_points(rng), braces=False))
    elif choice == 1:
        path.write_bytes(rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes())
    elif choice == 2:
        path.write_text("")
    elif choice == 3:
        path.write_bytes(pts_text(_points(rng)).encode("utf-16"))
    else:
        path.write_text(pts_text(_points(rng)).replace("\n", "\r\n").replace("{", "{ {"))


def _pts_image(src: Path, rng) -> None:
    path = src / "img1.png"
    [flip_bytes, truncate][int(rng.integers(0, 2))](path, rng)


def _pts_image_kind(src: Path, rng) -> None:
    path = src / "img0.png"
    kind = int(rng.integers(0, 4))
    if kind == 0:  # colour
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(path)
    elif kind == 1:  # 16-bit
        Image.fromarray(rng.integers(0, 65535, (60, 80), dtype=np.uint16)).save(path)
    elif kind == 2:  # smaller than the labels
        Image.fromarray(rng.integers(0, 256, (10, 12), dtype=np.uint8)).save(path)
    else:  # a label without its image
        path.unlink()


CONVERT_MUTATIONS: dict[str, Callable[[Path, np.random.Generator], None]] = {
    "pts-junk-value": _pts_junk_value, "pts-count": _pts_count, "pts-structure": _pts_structure,
    "image-bytes": _pts_image, "image-kind": _pts_image_kind,
}


def _source(folder: Path, rng) -> Path:
    folder.mkdir(parents=True)
    for k in range(2):
        (folder / f"img{k}.pts").write_text(pts_text(_points(rng)))
        Image.fromarray(rng.integers(0, 256, (60, 80), dtype=np.uint8)).save(folder / f"img{k}.png")
    return folder


@pytest.fixture(scope="module")
def output_root(tmp_path_factory) -> Path:
    with outputs_redirected_to(tmp_path_factory.mktemp("fuzz-inputs-output")) as root:
        yield root


CONVERT_OUTCOMES: dict[int, tuple[str, str]] = {}


@pytest.mark.parametrize("case", range(CASES))
def test_convert_makes_a_valid_dataset_or_refuses_naming_the_file(case, output_root, tmp_path):
    names = sorted(CONVERT_MUTATIONS)
    kind, rng = names[case % len(names)], np.random.default_rng([FUZZ_SEED, case])
    label = f"convert case {case} ({kind})"
    src = _source(tmp_path / "src", rng)
    CONVERT_MUTATIONS[kind](src, rng)
    before = tree_digest(src)
    out = tmp_path / "out"
    result = run_cli("convert", "pts", src, out, seconds=SECONDS_PER_COMMAND)
    assert result.returncode in (0, 1), f"{label}: exit {result.returncode}\n{result.stderr[-3000:]}"
    assert tree_digest(src) == before, f"{label}: the source changed"
    if result.returncode == 0:
        checked = run_cli("validate", out, "--no-progress", seconds=SECONDS_PER_COMMAND)
        assert checked.returncode == 0, f"{label}: convert wrote a dataset validate rejects:\n{checked.stdout[-2000:]}"
        CONVERT_OUTCOMES[case] = (kind, "converted")
    else:
        line = assert_error(result)
        assert str(src) in line, f"{label}: the error names no source file: {line}"
        assert not out.exists(), f"{label}: a refused conversion left {sorted(p.name for p in out.rglob('*'))}"
        CONVERT_OUTCOMES[case] = (kind, "refused")
    assert sorted(p.name for p in tmp_path.iterdir()) in (["out", "src"], ["src"]), f"{label}: wrote beside"


# ------------------------------------------------------------------------------- predict
def _image_bytes(image: Path, temperature: Path, rng) -> None:
    [flip_bytes, truncate][int(rng.integers(0, 2))](image, rng)


def _image_kind(image: Path, temperature: Path, rng) -> None:
    kind = int(rng.integers(0, 5))
    if kind == 0:
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(image)
    elif kind == 1:
        Image.fromarray(np.zeros((48, 64), dtype=np.uint8)).save(image)  # flat: nothing to find
    elif kind == 2:
        Image.fromarray(rng.integers(0, 256, (3, 2), dtype=np.uint8)).save(image)  # tiny
    elif kind == 3:
        image.write_bytes(b"")
    else:
        Image.fromarray(rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)).save(image)  # RGBA


def _temperature_values(image: Path, temperature: Path, rng) -> None:
    values = np.load(temperature)
    choice = int(rng.integers(0, 5))
    if choice == 0:
        values[rng.integers(0, values.shape[0]), :] = np.nan
    elif choice == 1:
        values[:] = np.inf
    elif choice == 2:
        values = values.astype(np.float16)
    elif choice == 3:
        values = values[: values.shape[0] // 2]  # another shape than its image
    else:
        values = np.full(values.shape, -300.0)  # below absolute zero
    np.save(temperature, values)


def _temperature_file(image: Path, temperature: Path, rng) -> None:
    choice = int(rng.integers(0, 4))
    if choice == 0:
        temperature.write_bytes(b"")
    elif choice == 1:
        truncate(temperature, rng)
    elif choice == 2:
        np.save(temperature, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        np.save(temperature, np.zeros((2, 3, 4)))


PREDICT_MUTATIONS = {"image-bytes": _image_bytes, "image-kind": _image_kind,
                     "temperature-values": _temperature_values, "temperature-file": _temperature_file}


@pytest.fixture(scope="module")
def trained(output_root, tmp_path_factory) -> tuple[Path, Path]:
    return train_one_step(tmp_path_factory.mktemp("fuzz-trained"))


PREDICT_OUTCOMES: dict[int, tuple[str, str]] = {}


@pytest.mark.parametrize("case", range(CASES))
def test_predict_answers_or_refuses_naming_the_file(case, trained, tmp_path):
    data, run_dir = trained
    names = sorted(PREDICT_MUTATIONS)
    kind, rng = names[case % len(names)], np.random.default_rng([FUZZ_SEED, 1000 + case])
    label = f"predict case {case} ({kind})"
    source = sorted((data / "thermal").glob("*.png"))[case % 4]
    image = tmp_path / "frame.png"
    image.write_bytes(source.read_bytes())
    temperature = tmp_path / "frame.npy"
    np.save(temperature, np.full(np.asarray(Image.open(image)).shape[:2], 34.0, dtype=np.float32))
    PREDICT_MUTATIONS[kind](image, temperature, rng)
    before = tree_digest(tmp_path)
    whole = run_cli("predict", run_dir, image, "--whole-image", "--temperature", temperature, "--device", "cpu",
                    seconds=SECONDS_PER_COMMAND)
    frames_out = tmp_path.parent / f"{tmp_path.name}-rows.json"
    frames = run_cli("predict", run_dir, image, "--temperature", temperature, "--out", frames_out,
                         "--device", "cpu", "--quiet", seconds=SECONDS_PER_COMMAND)
    assert tree_digest(tmp_path) == before, f"{label}: the input changed"
    # One image taken whole: an answer, or one error line naming the image or its map.
    assert whole.returncode in (0, 1), f"{label} whole-image: exit {whole.returncode}\n{whole.stderr[-3000:]}"
    if whole.returncode == 1:
        line = assert_error(whole)
        assert str(image) in line or str(temperature) in line, f"{label} whole-image: names no input: {line}"
    else:
        assert "Traceback" not in whole.stderr, f"{label} whole-image: {whole.stderr[-3000:]}"
    # Frames: a batch goes on past an unreadable file, which becomes an error row, named on stderr, and
    # makes the exit code 1; the rows file is written either way, one row per frame at least.
    assert frames.returncode in (0, 1), f"{label} frames: exit {frames.returncode}\n{frames.stderr[-3000:]}"
    assert "Traceback" not in frames.stderr, f"{label} frames: {frames.stderr[-3000:]}"
    rows = json.loads(frames_out.read_text())
    assert isinstance(rows, list) and rows and all(row["file"] == str(image) for row in rows), f"{label}: {rows}"
    errors = [row for row in rows if row.get("error")]
    if frames.returncode == 1:
        assert errors, f"{label} frames: exit 1 without an error row: {rows}"
        named = [line for line in frames.stderr.splitlines() if "error: " in line]
        assert named and all(str(image) in line or str(temperature) in line for line in named), frames.stderr
    else:
        assert not errors, f"{label} frames: an error row with exit 0: {rows}"
    outcomes = ["refused" if whole.returncode else "answered", "error row" if frames.returncode else "rows"]
    PREDICT_OUTCOMES[case] = (kind, "+".join(outcomes))


# ------------------------------------------------------------------------------- detector
@pytest.fixture(scope="module")
def frames_dataset(output_root, tmp_path_factory) -> Path:
    return full_frame_dataset(tmp_path_factory.mktemp("fuzz-frames") / "frames")


DETECTOR_OUTCOMES: dict[int, tuple[str, str]] = {}


@pytest.mark.parametrize("case", range(max(1, CASES // 2)))
def test_detector_trains_or_refuses_naming_the_file(case, frames_dataset, output_root, tmp_path):
    """The dataset fuzz test's mutations (test_fuzz_dataset.MUTATIONS) on a full-frame dataset, for
    `m3mstl detector`: it trains, or exits 1 with one error line naming a file of the dataset."""
    import shutil

    from test_fuzz_dataset import MUTATIONS

    kinds = sorted(kind for kind in MUTATIONS
                   if not kind.startswith("mask") or any((frames_dataset / "occluders").glob("*")))
    kind, rng = kinds[case % len(kinds)], np.random.default_rng([FUZZ_SEED, 2000 + case])
    label = f"detector case {case} ({kind})"
    root = tmp_path / "frames"
    shutil.copytree(frames_dataset, root)
    try:
        MUTATIONS[kind](root, rng)
    except (ValueError, IndexError):  # a folder this dataset does not have: nothing to mutate
        pytest.skip(f"{label}: nothing to mutate")
    before = tree_digest(root)
    result = run_cli("detector", root, "--profile", "quick", "--device", "cpu", seconds=SECONDS_PER_COMMAND)
    assert result.returncode in (0, 1), f"{label}: exit {result.returncode}\n{result.stderr[-3000:]}"
    assert tree_digest(root) == before, f"{label}: the dataset changed"
    if result.returncode == 1:
        line = assert_error(result)
        assert str(root) in line, f"{label}: the error names no file of the dataset: {line}"
    else:
        assert "Traceback" not in result.stderr, f"{label}: {result.stderr[-3000:]}"
    DETECTOR_OUTCOMES[case] = (kind, "trained" if result.returncode == 0 else "refused")
    shutil.rmtree(output_root / "runs" / "detector", ignore_errors=True)


def test_fuzzing_reached_both_outcomes():
    """The mutations reach both sides of each command: inputs it refuses and inputs it copes with."""
    if len(CONVERT_OUTCOMES) < CASES or len(PREDICT_OUTCOMES) < CASES or len(DETECTOR_OUTCOMES) < max(1, CASES // 2):
        pytest.skip("only part of the fuzz cases ran")
    print(json.dumps({"convert": sorted(CONVERT_OUTCOMES.values()), "predict": sorted(PREDICT_OUTCOMES.values())}))
    assert {o for _, o in CONVERT_OUTCOMES.values()} == {"converted", "refused"}
    predict = {o for _, o in PREDICT_OUTCOMES.values()}
    assert any("answered" in o for o in predict) and any("refused" in o for o in predict), predict
    assert {o for _, o in DETECTOR_OUTCOMES.values()} == {"trained", "refused"}, DETECTOR_OUTCOMES
