"""Issue 13's probes, driven through the command line: every fault in the user's input ends in
one line ``error: <file or option>: <what is wrong>`` (exit 1, or 2 for a malformed argument),
never in a traceback or a silently wrong result; an interrupted or failed overwrite leaves the
earlier dataset byte for byte as it was.

Each probe runs `python -m m3mstl.cli` in a subprocess with M3MSTL_OUTPUT_ROOT pointing at a
temporary folder, so nothing here touches the repository's data, runs or published results.
Training probes use the quick profile's baseline for one step of one epoch.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_probes import (ONE_STEP, Result, assert_error, run_cli, run_cli_subprocess, tiny,  # noqa: F401
                        train_one_step, tree_digest)
from conftest import make_tiny_dataset, outputs_redirected_to

pytestmark = pytest.mark.slow



# ---------------------------------------------------------------------------------------- helpers
def m3mstl(output_root: Path, *args, env: dict[str, str] | None = None) -> Result:
    """`m3mstl ARGS` in this process (outputs go to the module's `output_root`, redirected already)."""
    return run_cli(*args, env=env)


def m3mstl_subprocess(output_root: Path, *args, env: dict[str, str] | None = None, timeout: float = 600):
    return run_cli_subprocess(output_root, *args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def output_root(tmp_path_factory) -> Path:
    """Everything the commands write (runs, caches) goes here, in-process and in subprocesses."""
    with outputs_redirected_to(tmp_path_factory.mktemp("output-root")) as root:
        yield root


def leftovers(folder: Path) -> list[str]:
    """Temporary siblings a build left next to `folder`."""
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


def edit_json(root: Path, edit) -> None:
    path = root / "annotations.json"
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))


@pytest.fixture(scope="module")
def trained(output_root, tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, finished run folder) of a one-step baseline run."""
    return train_one_step(tmp_path_factory.mktemp("trained"))


# ------------------------------------------------------------ 1. a stale run reused for changed data
def test_changed_map_values_give_a_new_run_not_the_stale_one(output_root, trained, tmp_path):
    data, run_dir = trained
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    same = m3mstl(output_root, "train", *ONE_STEP, "--data", copy)
    assert same.returncode == 0 and Path(same.stdout.split()[-1]) == run_dir  # same bytes: reused
    map_path = sorted((copy / "temperature").glob("*.npy"))[0]
    values = np.load(map_path)
    np.save(map_path, values + 0.5)  # same size, other values
    assert map_path.stat().st_size == (data / "temperature" / map_path.name).stat().st_size
    changed = m3mstl(output_root, "train", *ONE_STEP, "--data", copy)
    assert changed.returncode == 0, changed.stderr[-2000:]
    new_run = Path(changed.stdout.split()[-1])
    assert new_run != run_dir and (new_run / "complete.json").is_file()
    recorded = json.loads((new_run / "environment.json").read_text())["data_fingerprint"]
    assert recorded != json.loads((run_dir / "environment.json").read_text())["data_fingerprint"]


def test_a_run_recorded_for_other_data_is_refused(output_root, trained, tmp_path):
    data, run_dir = trained
    env_path = run_dir / "environment.json"
    original = env_path.read_bytes()
    try:
        env = json.loads(original)
        env["data_fingerprint"] = "0" * 16
        env_path.write_text(json.dumps(env))
        assert_error(m3mstl(output_root, "train", *ONE_STEP, "--data", data), "environment.json", "fingerprint")
    finally:
        env_path.write_bytes(original)


# ------------------------------------------------------------- 2. convert --overwrite failing part-way
def _pts_source(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        points = np.column_stack([rng.uniform(5, 75, 68), rng.uniform(5, 55, 68)])
        rows = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
        (folder / f"img{k}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{rows}\n}}\n")
        Image.fromarray(rng.integers(0, 256, (60, 80), dtype=np.uint8)).save(folder / f"img{k}.png")
    return folder


def test_convert_overwrite_failing_part_way_leaves_the_old_dataset(output_root, tmp_path):
    out = tmp_path / "out"
    assert m3mstl(output_root, "convert", "pts", _pts_source(tmp_path / "old", 3, 0), out).returncode == 0
    before = tree_digest(out)
    new = _pts_source(tmp_path / "new", 4, 1)
    (new / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # the third image is corrupt
    result = m3mstl(output_root, "convert", "pts", new, out, "--overwrite")
    assert_error(result, "img2.png", "cannot read the image")
    assert tree_digest(out) == before and not leftovers(out)
    assert m3mstl(output_root, "validate", out, "--no-progress").returncode == 0


def test_convert_into_a_foreign_folder_is_refused(output_root, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert_error(m3mstl(output_root, "convert", "pts", _pts_source(tmp_path / "src", 1, 0), foreign),
                 "mine", "holds no dataset")
    assert (foreign / "notes.txt").read_text() == "keep"


# -------------------------------------------------------------------- 3. Ctrl-C during synth regenerate
def test_interrupted_synth_leaves_the_old_dataset_byte_identical(output_root, tmp_path):
    out = tmp_path / "synth"
    first = m3mstl(output_root, "synth", out, "--subjects", "1", "--per-subject", "2", "--size", "48", "--quiet")
    assert first.returncode == 0, first.stderr
    (out / "README.txt").write_text("my notes")
    before = tree_digest(out)
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(output_root), "OMP_NUM_THREADS": "1"}
    env.pop("M3MSTL_DEBUG", None)
    process = subprocess.Popen([sys.executable, "-m", "m3mstl.cli", "synth", str(out), "--subjects", "20",
                                "--per-subject", "20", "--size", "96", "--seed", "1", "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               # A child inherits an ignored SIGINT, and Python then never raises
                               # KeyboardInterrupt: earlier tests in this process may have ignored it.
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            building = [p for p in tmp_path.glob(".synth.building-*/thermal/*.png")]
            if len(building) >= 3:  # several new images written: the old ones would be gone before
                break
            time.sleep(0.05)
        assert process.poll() is None, "synth finished before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert tree_digest(out) == before and not leftovers(out)
    again = m3mstl(output_root, "synth", out, "--subjects", "1", "--per-subject", "3", "--size", "48", "--quiet")
    assert again.returncode == 0 and len(list((out / "thermal").iterdir())) == 3
    assert (out / "README.txt").read_text() == "my notes"  # not a dataset file: carried over


# ------------------------------------------------------------------------- 4. duplicate image ids
def test_duplicate_image_ids_are_refused_by_validate_and_train(output_root, tmp_path):
    data = tiny(tmp_path / "dup")

    def duplicate(coco):
        coco["images"][1]["id"] = coco["images"][0]["id"]
    edit_json(data, duplicate)
    validate = m3mstl(output_root, "validate", data, "--no-progress")
    assert validate.returncode == 1 and "is used by 2 image entries" in validate.stdout
    assert_error(m3mstl(output_root, "train", *ONE_STEP, "--data", data), "annotations.json", "image id")


# ---------------------------------------------------------------------------- 5. predict --box checks
def test_predict_box_outside_overlapping_and_nan(output_root, trained):
    data, run_dir = trained
    image = sorted((data / "thermal").glob("*.png"))[0]
    outside = m3mstl(output_root, "predict", run_dir, image, "--box", "500,500,20,20")
    assert_error(outside, "--box", "outside the 64x48 image", code=2)
    nan = m3mstl(output_root, "predict", run_dir, image, "--box", "nan,1,20,20")
    assert_error(nan, "--box", "finite", code=2)
    overlapping = m3mstl(output_root, "predict", run_dir, image, "--box", "50,10,30,30")
    assert overlapping.returncode == 0, overlapping.stderr
    assert "warning: --box" in overlapping.stderr and "clipped to 50,10,14,30" in overlapping.stderr
    assert json.loads(overlapping.stdout)[0]["box"] == [50, 10, 14, 30]  # one row per face, clipped box
    whole = m3mstl(output_root, "predict", run_dir, image, "--whole-image", "--box", "500,500,20,20")
    assert_error(whole, "--box", "outside the 64x48 image", code=2)


def test_predict_warns_on_a_colour_image(output_root, trained, tmp_path):
    data, run_dir = trained
    grey = Image.open(sorted((data / "thermal").glob("*.png"))[0])
    colour = tmp_path / "colour.png"
    grey.convert("RGB").save(colour)
    result = m3mstl(output_root, "predict", run_dir, colour, "--whole-image")
    assert result.returncode == 0 and "warning:" in result.stderr and "colour" in result.stderr
    assert len(json.loads(result.stdout)["landmarks"]) == 68


# ---------------------------------------------------------------------- 6. smaller silent acceptances
@pytest.mark.parametrize("edit, fragment", [
    (lambda c: (c["images"].clear(), c["annotations"].clear()), "lists no images"),
    (lambda c: [a.__setitem__("keypoints", [0] * 204) for a in c["annotations"]], "has a labelled landmark"),
    (lambda c: c["annotations"].append({**c["annotations"][0], "id": 999, "image_id": 12345}),
     "which no image entry has"),
    (lambda c: c["images"][0].__setitem__("file_name", "../../outside.png"), "points outside the dataset folder"),
    (lambda c: c["images"][0].__setitem__("temperature_file", "/etc/passwd"), "points outside the dataset folder"),
    (lambda c: c["annotations"][0]["keypoints"].__setitem__(4, "12.5"), "keypoints must be numbers, found '12.5'"),
], ids=["empty", "unlabelled", "orphan-annotation", "dotdot-file", "absolute-map", "keypoint-text"])
def test_validate_rejects(output_root, tmp_path, edit, fragment):
    data = tiny(tmp_path / "d")
    edit_json(data, edit)
    result = m3mstl(output_root, "validate", data, "--no-progress")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    problems = [line for line in result.stdout.splitlines() if fragment in line]
    assert problems and "annotations.json" in problems[0], result.stdout


@pytest.mark.parametrize("override, option", [
    ("stages.joint.epochs=0", "stages.joint.epochs"),
    ("stages.joint.epochs=-1", "stages.joint.epochs"),
    ("stages.joint.lr=-1", "stages.joint.lr"),
    ("data.input_size=abc", "data.input_size"),
    ("data.batch_size=0", "data.batch_size"),
    ("data.augment={\"hflip_prob\": 2}", "data.augment.hflip_prob"),
    ("data.nonsense=1", "data.nonsense"),
    ("stages=[\"heads\"]", "stages"),
])
def test_train_rejects_bad_config_before_any_epoch(output_root, trained, override, option):
    data, _ = trained
    args = [a for a in ONE_STEP]
    result = m3mstl(output_root, "train", *args, "--set", override, "--data", data)
    assert_error(result, option)


def test_train_rejects_unknown_stage_and_negative_seed(output_root, trained):
    data, _ = trained
    assert_error(m3mstl(output_root, "train", *ONE_STEP, "--stage", "4", "--data", data), "--stage", "'4'")
    assert_error(m3mstl(output_root, "train", *ONE_STEP, "--seed", "-1", "--data", data), "seed", "-1")
    assert_error(m3mstl(output_root, "train", *ONE_STEP, "--set", "nokeyvalue", "--data", data), "--set",
                 code=2)


@pytest.mark.parametrize("yaml_text, fragment", [
    ("thermal:\n  emissivity: [0.97, 1.2]\n", "emissivity"),
    ("crop:\n  margin: [0, 0]\n", "crop.margin"),
])
def test_synth_rejects_impossible_priors(output_root, tmp_path, yaml_text, fragment):
    priors = tmp_path / "priors.yaml"
    priors.write_text(yaml_text)
    out = tmp_path / "never"
    result = m3mstl(output_root, "synth", out, "--subjects", "1", "--per-subject", "1", "--size", "32",
                    "--config", priors, "--quiet")
    assert_error(result, "priors.yaml", fragment)
    assert not out.exists() and not leftovers(out)


def test_sftl54_label_without_image_is_an_error(output_root, tmp_path):
    src = tmp_path / "sf"
    src.mkdir()
    (src / "thermal_001_0_0.txt").write_text("\n".join(f"{k} 0.5 0.5" for k in range(54)))
    (src / "README.txt").write_text("not a label")
    assert_error(m3mstl(output_root, "convert", "sftl54", src, tmp_path / "out"), "thermal_001_0_0.txt",
                 "no image")


def test_cofw_occlusion_flag_2_is_an_error(output_root, tmp_path):
    import scipy.io

    src = tmp_path / "cofw"
    src.mkdir()
    flags = np.zeros(68)
    flags[5] = 2
    scipy.io.savemat(src / "1_points.mat", {"Points": np.full((68, 2), 20.0), "Occ": flags})
    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(src / "1.png")
    assert_error(m3mstl(output_root, "convert", "cofw68", src, tmp_path / "out"), "1_points.mat", "'Occ' holds 2")


def test_validate_warns_on_colour_images(output_root, tmp_path):
    data = tiny(tmp_path / "rgb")
    first = sorted((data / "thermal").glob("*.png"))[0]
    Image.open(first).convert("RGB").save(first)
    result = m3mstl(output_root, "validate", data, "--no-progress")
    assert result.returncode == 0 and f"warning: {first}: RGB image" in result.stdout


# ------------------------------------------------------------------- 7. checks before compute in train
def _test_split_image(data: Path) -> Path:
    from m3mstl.config import make_config
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.splits import split_indices, subject_split

    config = make_config("baseline", "quick")
    dataset = read_dataset(data)
    subjects = subject_split(dataset.subjects, fractions=config.data.split_fractions, seed=config.data.split_seed)
    return dataset.records[int(split_indices(dataset, subjects)["test"][0])].image_path


def test_corrupt_test_image_and_nan_map_stop_train_before_any_epoch(output_root, tmp_path):
    checkpoints_before = set((output_root / "runs").rglob("checkpoints/*"))
    data = tiny(tmp_path / "corrupt")
    image = _test_split_image(data)
    image.write_bytes(image.read_bytes()[:60])
    result = m3mstl(output_root, "train", *ONE_STEP, "--data", data)
    assert_error(result, image.name, "corrupt")
    assert set((output_root / "runs").rglob("checkpoints/*")) == checkpoints_before  # no epoch ran
    shutil.rmtree(data)
    data = tiny(tmp_path / "nan")
    map_path = sorted((data / "temperature").glob("*.npy"))[-1]
    np.save(map_path, np.full_like(np.load(map_path), np.nan))
    assert_error(m3mstl(output_root, "train", *ONE_STEP, "--data", data), map_path.name, "NaN")


# ------------------------------------------------------------------------ 8. tracebacks -> messages
def _damaged_copy(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_truncated_checkpoint_and_broken_config_are_named(output_root, trained, tmp_path):
    data, run_dir = trained
    image = sorted((data / "thermal").glob("*.png"))[0]
    run = _damaged_copy(run_dir, tmp_path)
    (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:1000])
    assert_error(m3mstl(output_root, "predict", run, image), "model.pt", "truncated")
    (run / "config.json").write_text('{"model": "baseline", ')
    assert_error(m3mstl(output_root, "predict", run, image), "config.json", "JSON")
    assert_error(m3mstl(output_root, "predict", tmp_path / "no-such-run", image), "no-such-run", "not found")


def test_truncated_predictions_are_named_and_json_is_valid(output_root, trained, tmp_path):
    data, run_dir = trained
    run = _damaged_copy(run_dir, tmp_path)
    good = m3mstl(output_root, "evaluate", run)
    assert good.returncode == 0, good.stderr
    json.loads(good.stdout)  # strict JSON: NaN would not parse with parse_constant below
    json.loads(good.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the JSON output"))
    predictions = run / "predictions_test.npz"
    predictions.write_bytes(predictions.read_bytes()[:500])
    assert_error(m3mstl(output_root, "evaluate", run), "predictions_test.npz", "truncated")


def test_undefined_metrics_are_json_null(output_root, trained, tmp_path):
    _, run_dir = trained
    no_occlusion = tiny(tmp_path / "visible", n_subjects=2, with_occluders=False)
    result = m3mstl(output_root, "evaluate", run_dir, "--data", no_occlusion, "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the JSON output"))
    assert summary["roc_auc"] is None  # one class only: undefined, and said so in valid JSON


def test_validate_into_a_closed_pipe_is_quiet(output_root, tmp_path):
    data = tiny(tmp_path / "many", n_subjects=3)
    edit_json(data, lambda c: [a.__setitem__("keypoints", ["x"] * 204) for a in c["annotations"]])
    command = (f"{sys.executable} -m m3mstl.cli validate {data} --no-progress | head -n 1")
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(output_root)}
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.count("\n") == 1
    assert "BrokenPipeError" not in result.stderr and "Traceback" not in result.stderr


def test_a_second_trainer_of_the_same_run_is_refused(output_root, trained):
    data, run_dir = trained
    with open(run_dir / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running trainer holds it
        handle.write(f"pid {os.getpid()} (the test)\n")
        handle.flush()
        result = m3mstl(output_root, "train", *ONE_STEP, "--force", "--data", data)
    assert_error(result, run_dir.name, "another trainer")
    assert (run_dir / "complete.json").is_file()  # --force did not delete the locked run


def test_a_real_shell_sees_one_line_and_debug_shows_the_traceback(output_root, trained, tmp_path):
    """In a fresh process: the one-line error, and the traceback with --debug or M3MSTL_DEBUG=1."""
    data, _ = trained
    plain = m3mstl_subprocess(output_root, "train", *ONE_STEP, "--set", "stages.joint.lr=0", "--data", data)
    assert_error(plain, "stages.joint.lr", "must be a finite number > 0")
    assert plain.stderr.strip().count("\n") == 0  # exactly one line
    missing = tmp_path / "no-run"
    for result in (m3mstl_subprocess(output_root, "evaluate", missing, "--debug"),
                   m3mstl_subprocess(output_root, "evaluate", missing, env={"M3MSTL_DEBUG": "1"})):
        assert result.returncode == 1 and "Traceback" in result.stderr and "RunError" in result.stderr


def test_debug_flag_reraises_in_process(output_root, tmp_path):
    from m3mstl.errors import RunError

    assert_error(m3mstl(output_root, "evaluate", tmp_path / "no-run"), "no-run", "not found")
    with pytest.raises(RunError):
        m3mstl(output_root, "evaluate", tmp_path / "no-run", "--debug")


def test_unknown_faults_keep_their_traceback():
    import argparse

    from m3mstl.cli import _handle_error

    with pytest.raises(ZeroDivisionError):
        _handle_error(ZeroDivisionError("a bug"), False, argparse.ArgumentParser())


def test_every_shipped_config_passes_the_config_checks():
    """The checks refuse bad configs, not the ones the project itself runs (profiles, ablations)."""
    from m3mstl.studies import comparison
    from m3mstl.config import PROFILES, make_config, validate_config
    from m3mstl.models.registry import list_models

    for profile in PROFILES:
        for model in list_models():
            validate_config(make_config(model, profile))
        for model, variants in (("m3mstl", comparison.ABLATIONS), ("hourglass", comparison.HOURGLASS_ABLATIONS)):
            for variant in variants.values():
                validate_config(make_config(model, profile,
                                            overrides=comparison.ablation_overrides(profile, model, variant)))
