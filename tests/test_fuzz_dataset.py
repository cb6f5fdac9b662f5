"""Seeded fuzzing of a small generated dataset (issue 13): bytes of images, maps and masks, the
annotation JSON's fields and structure. For every mutated copy `m3mstl validate` and a one-step
`m3mstl train` must either pass or exit 1 with a one-line message naming a file of the dataset:
no traceback, no hang, no change to the dataset, nothing written outside the output folder.

The cases are a pure function of (FUZZ_SEED, case index); `M3MSTL_FUZZ_CASES` changes how many
run (default 200). Commands run in this process through `m3mstl.cli.main` (a subprocess per case
would spend most of its time importing torch).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from cli_probes import ONE_STEP, flip_bytes, run_cli, tree_digest, truncate
from conftest import make_tiny_dataset, outputs_redirected_to

pytestmark = pytest.mark.slow

FUZZ_SEED = 13
CASES = int(os.environ.get("M3MSTL_FUZZ_CASES", "200"))
SECONDS_PER_COMMAND = 120  # a hang fails the case instead of the whole run

JUNK = [None, "", "abc", "../escape.png", "/etc/passwd", -1, 0, 1, 1.5, -1e9, 1e12, True, False, [], {},
        [1, 2], {"a": 1}, float("nan"), float("inf"), "thermal/thermal_001_0_0.png", "12", 3, 2]


# ---------------------------------------------------------------------------------- mutations
def _files(root: Path, folder: str) -> list[Path]:
    return sorted((root / folder).glob("*"))


def _replace(path: Path, rng: np.random.Generator) -> None:
    choice = int(rng.integers(0, 3))
    path.write_bytes([b"", b"hello, not an image\n", rng.bytes(int(rng.integers(1, 400)))][choice])


def _other_image(path: Path, rng: np.random.Generator) -> None:
    with Image.open(path) as opened:
        image = opened.copy()
    variant = int(rng.integers(0, 4))
    if variant == 0:
        image = image.convert("RGB")
    elif variant == 1:
        image = image.resize((image.width + 7, image.height))
    elif variant == 2:
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) * 257))
    else:
        image = image.convert("1")
    image.save(path, format="PNG")


def _map_values(path: Path, rng: np.random.Generator) -> None:
    values = np.load(path)
    variant = int(rng.integers(0, 7))
    if variant == 0:
        values[tuple(rng.integers(0, s) for s in values.shape)] = np.nan
    elif variant == 1:
        values[:] = np.nan
    elif variant == 2:
        values[0, 0] = np.inf
    elif variant == 3:
        values = values + 273.15  # Kelvin
    elif variant == 4:
        values = values.astype(np.int32)
    elif variant == 5:
        values = values[:, :-3]
    else:
        values = np.stack([values, values])
    np.save(path, values)


def _edit_json(root: Path, edit: Callable[[dict], None]) -> None:
    path = root / "annotations.json"
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))


def _json_field(root: Path, rng: np.random.Generator) -> None:
    def edit(coco):
        section = ["images", "annotations"][int(rng.integers(0, 2))]
        entry = coco[section][int(rng.integers(0, len(coco[section])))]
        keys = sorted(entry) + ["id", "image_id", "file_name", "width", "height", "bbox", "temperature_file"]
        key = keys[int(rng.integers(0, len(keys)))]
        if rng.random() < 0.2:
            entry.pop(key, None)
        else:
            entry[key] = JUNK[int(rng.integers(0, len(JUNK)))]
    _edit_json(root, edit)


def _json_keypoint(root: Path, rng: np.random.Generator) -> None:
    def edit(coco):
        annotation = coco["annotations"][int(rng.integers(0, len(coco["annotations"])))]
        index = int(rng.integers(0, len(annotation["keypoints"])))
        annotation["keypoints"][index] = JUNK[int(rng.integers(0, len(JUNK)))]
    _edit_json(root, edit)


def _json_structure(root: Path, rng: np.random.Generator) -> None:
    variant = int(rng.integers(0, 8))
    path = root / "annotations.json"
    if variant == 0:
        truncate(path, rng)
        return
    if variant == 1:
        flip_bytes(path, rng)
        return

    def edit(coco):
        images, annotations = coco["images"], coco["annotations"]
        k = int(rng.integers(0, len(images)))
        if variant == 2:
            images.append(dict(images[k]))  # the same entry twice
        elif variant == 3:
            images.pop(k)
        elif variant == 4:
            annotations.pop(int(rng.integers(0, len(annotations))))
        elif variant == 5:
            images[k]["id"], images[(k + 1) % len(images)]["id"] = images[(k + 1) % len(images)]["id"], images[k]["id"]
        elif variant == 6:
            coco["categories"] = JUNK[int(rng.integers(0, len(JUNK)))]
        else:
            coco[["images", "annotations"][int(rng.integers(0, 2))]] = JUNK[int(rng.integers(0, len(JUNK)))]
    _edit_json(root, edit)


def _on(folder: str, action: Callable[[Path, np.random.Generator], None]):
    def mutate(root: Path, rng: np.random.Generator) -> None:
        files = _files(root, folder)
        action(files[int(rng.integers(0, len(files)))], rng)
    return mutate


def _delete(root: Path, rng: np.random.Generator) -> None:
    folder = ["thermal", "temperature", "occluders"][int(rng.integers(0, 3))]
    files = _files(root, folder)
    files[int(rng.integers(0, len(files)))].unlink()


MUTATIONS: dict[str, Callable[[Path, np.random.Generator], None]] = {
    "image-flip-bytes": _on("thermal", flip_bytes),
    "image-truncate": _on("thermal", truncate),
    "image-replace": _on("thermal", _replace),
    "image-other-format": _on("thermal", _other_image),
    "map-flip-bytes": _on("temperature", flip_bytes),
    "map-truncate": _on("temperature", truncate),
    "map-values": _on("temperature", _map_values),
    "mask-flip-bytes": _on("occluders", flip_bytes),
    "mask-other-format": _on("occluders", _other_image),
    "delete-file": _delete,
    "json-field": _json_field,
    "json-keypoint": _json_keypoint,
    "json-structure": _json_structure,
}


def mutation_for(case: int) -> tuple[str, np.random.Generator]:
    rng = np.random.default_rng([FUZZ_SEED, case])
    names = sorted(MUTATIONS)
    return names[case % len(names)], rng  # every kind equally often, details random


# ---------------------------------------------------------------------------------- harness
@pytest.fixture(scope="module")
def output_root(tmp_path_factory) -> Path:
    with outputs_redirected_to(tmp_path_factory.mktemp("fuzz-output")) as root:
        yield root


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("fuzz-base") / "base", n_subjects=6, images_per_subject=1,
                             width=48, height=40)


def _names_a_dataset_file(line: str, root: Path) -> bool:
    return str(root) in line


def check_case(case: int, base: Path, work: Path, output_root: Path) -> str:
    """Run one case; returns its outcome ("pass", "validate-only" or "refused"), or fails."""
    kind, rng = mutation_for(case)
    root = work / f"case{case:03d}"
    shutil.copytree(base, root)
    MUTATIONS[kind](root, rng)
    label = f"case {case} ({kind})"
    before = tree_digest(root)
    work_entries = set(work.iterdir())

    result = run_cli("validate", root, "--no-progress", seconds=SECONDS_PER_COMMAND)
    code, out, err = result.returncode, result.stdout, result.stderr
    assert code in (0, 1) and "Traceback" not in err, f"{label}: validate exit {code}\n{err[-2000:]}"
    validated = code == 0
    if code == 1:
        problems = out.split("\nproblems ", 1)[1].splitlines()[1:]
        assert problems and all(_names_a_dataset_file(p, root) for p in problems), f"{label}: {out[-2000:]}"

    result = run_cli("train", *ONE_STEP, "--data", root, seconds=SECONDS_PER_COMMAND)
    code, out, err = result.returncode, result.stdout, result.stderr
    assert code in (0, 1), f"{label}: train exit {code}\n{err[-2000:]}"
    assert validated or code == 1, f"{label}: train accepted data that validate rejects"
    if code == 1:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and _names_a_dataset_file(errors[0], root), f"{label}: {err[-2000:]}"
    assert tree_digest(root) == before, f"{label}: the dataset changed"
    assert set(work.iterdir()) == work_entries, f"{label}: something was written beside the dataset"
    assert {p.name for p in output_root.iterdir()} <= {"runs", "build"}, f"{label}: wrote {list(output_root.iterdir())}"
    shutil.rmtree(root)
    shutil.rmtree(output_root / "runs", ignore_errors=True)  # one run per passing case adds up to GBs
    return "pass" if code == 0 else "refused"


OUTCOMES: dict[int, tuple[str, str]] = {}  # case -> (mutation kind, outcome)


@pytest.mark.parametrize("case", range(CASES))
def test_mutated_dataset_passes_or_fails_with_one_line_naming_a_file(case, base_dataset, output_root, tmp_path):
    OUTCOMES[case] = (mutation_for(case)[0], check_case(case, base_dataset, tmp_path, output_root))


def test_fuzzing_reached_both_outcomes():
    """The mutations must reach both sides: data the checks refuse, and data training copes with."""
    if len(OUTCOMES) < CASES:
        pytest.skip("only part of the fuzz cases ran")
    table: dict[str, dict[str, int]] = {}
    for kind, outcome in OUTCOMES.values():
        table.setdefault(kind, {}).setdefault(outcome, 0)
        table[kind][outcome] += 1
    print(json.dumps(table, indent=1, sort_keys=True))
    totals = {o: sum(k.get(o, 0) for k in table.values()) for o in ("pass", "refused")}
    assert totals["pass"] > 0 and totals["refused"] > 0, totals
