"""The scaling study (notebook 12, extended profile): its grid is valid and what the issue asks
for, and (marker `notebooks`) the notebook runs end to end on the quick profile's tiny grid."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from m3mstl import paths, reproduce
from m3mstl.studies import scaling
from m3mstl.config import make_config
from m3mstl.models import create_model
from m3mstl.runs.result import RunResult

NOTEBOOK = paths.NOTEBOOKS_DIR / "12_scaling_study.ipynb"


def test_extended_grid_answers_the_issue():
    grid = scaling.scaling_grid("extended")
    sizes = {p.input_size for p in grid if p.variant == "paper stage-1 radius" and p.backbone == "resnet18"}
    assert {64, 96, 128} <= sizes                            # the ladder: three sizes on one trunk
    assert any(p.backbone == "resnet50" and p.input_size == 128 for p in grid)
    assert len(scaling.scaling_seeds("extended")) >= 3
    with pytest.raises(ValueError, match="no grid"):
        scaling.scaling_grid("default")


@pytest.mark.parametrize("profile", ["quick", "extended"])
def test_every_grid_point_makes_valid_configs_with_equal_schedules(profile):
    for point in scaling.scaling_grid(profile):
        configs = {model: make_config(model, profile, overrides=point.overrides(model, profile))
                   for model in ("m3mstl", "baseline")}
        for model, config in configs.items():
            assert config.data.input_size == point.input_size
            assert config.model_options["backbone"] == point.backbone
            create_model(model, **config.model_options)  # options the family accepts
        # the same training samples for both models at every point
        epochs = {model: sum(s.epochs for s in c.stages) for model, c in configs.items()}
        assert epochs["m3mstl"] == epochs["baseline"]
        assert configs["m3mstl"].data.max_train_images == configs["baseline"].data.max_train_images
        assert not (set(point.m3mstl_overrides) & set(point.overrides("baseline", profile)) - {
            "data.input_size", "model_options.backbone"})


def _resolved_hash(config):
    from m3mstl.train.trainer import resolve_model_options

    config.model_options = resolve_model_options(config.model, config.model_options)
    return config.config_hash()


def test_extended_grid_reuses_the_first_published_defaults_runs():
    """The 64 px ResNet-18 point with floored stage-1 disks is the first published default's model (the
    recipe "old" of `m3mstl.studies.recipes`): the same resolved config, so the same run id, for M3MSTL
    and the baseline, whatever the default profile trains now."""
    from m3mstl.studies import recipes

    point = next(p for p in scaling.scaling_grid("extended")
                 if (p.input_size, p.backbone, p.variant) == (64, "resnet18", "stage-1 disks >= 2 px"))
    for model in ("m3mstl", "baseline"):
        study = make_config(model, "extended", overrides=point.overrides(model))
        assert _resolved_hash(study) == _resolved_hash(recipes.recipe_config(model, "old"))


def test_the_budget_point_is_the_first_default_model_trained_four_times_as_long():
    """Every epoch added goes to the joint stage, both models still see the same samples, early
    stopping is off, and nothing else differs from the first published default's model."""
    from m3mstl.studies import recipes

    point = next(p for p in scaling.scaling_grid("extended") if p.epochs_factor == 4)
    for model in ("m3mstl", "baseline"):
        first = recipes.recipe_config(model, "old")
        study = make_config(model, "extended", overrides=point.overrides(model))
        assert sum(s.epochs for s in study.stages) == 4 * sum(s.epochs for s in first.stages) == 40
        for long, short in zip(study.stages, first.stages):
            if long.name == "joint":
                assert long.patience is None and long.epochs == short.epochs + 30
            else:
                assert long == short
        assert _resolved_hash(study) == _resolved_hash(recipes.recipe_config(model, "old-4x"))


def test_paper_radius_points_really_use_the_paper_radius():
    """The default profile floors the disks; the ladder's paper-radius points must undo that."""
    from m3mstl.train.trainer import resolve_model_options

    for point in scaling.scaling_grid("extended"):
        options = resolve_model_options("m3mstl", make_config("m3mstl", "extended",
                                                              overrides=point.overrides("m3mstl")).model_options)
        expected = 2.0 if "disks >= 2 px" in point.variant else None
        assert options.get("disk_min_radius_px") == expected, point.label


def test_the_study_runs_only_in_the_extended_profile():
    assert reproduce.notebook_profiles(NOTEBOOK) == ("extended",)
    assert NOTEBOOK not in reproduce.notebooks_for_profile("default")
    assert NOTEBOOK in reproduce.notebooks_for_profile("extended")


def test_the_extended_profile_runs_the_studies_the_default_budget_leaves_out():
    ablations = paths.NOTEBOOKS_DIR / "07_ablations.ipynb"
    hourglass_ablations = paths.NOTEBOOKS_DIR / "13_hourglass_ablations.ipynb"
    camera_frames = paths.NOTEBOOKS_DIR / "14_camera_frames.ipynb"
    assert [nb.name for nb in reproduce.notebooks_for_profile("extended")] == [
        ablations.name, NOTEBOOK.name, hourglass_ablations.name, camera_frames.name]
    for study in (ablations, hourglass_ablations, camera_frames):
        assert study not in reproduce.notebooks_for_profile("default")
        assert study in reproduce.notebooks_for_profile("quick")  # the quick reproduction keeps testing it


@pytest.mark.notebooks
@pytest.mark.timeout(1800)
def test_scaling_notebook_runs_on_the_quick_grid(tmp_path):
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(tmp_path)}
    code = ("from pathlib import Path; from m3mstl import reproduce, paths; "
            "reproduce.run_notebook(paths.NOTEBOOKS_DIR / '12_scaling_study.ipynb', "
            "dict(PROFILE='quick', SEED=0, DEVICE='cpu', INTERACTIVE=False, TRAIN=True), Path(paths.BUILD_DIR) / 'notebooks')")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1700)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for rel in reproduce.promised_outputs(NOTEBOOK):
        assert (tmp_path / rel).stat().st_size > 0, rel
    study = pd.read_csv(tmp_path / "tables" / "12_scaling_study.csv")
    assert list(study["input_size"]) == [48, 64] and (study["n_seeds"] == 2).all()
    assert list(study["token_maps"]) == ["6x6/3x3/2x2", "8x8/4x4/2x2"]
    assert study["stage1_val_iou"].between(0, 1).all()
    for metric in ("roc_auc", "average_precision", "occlusion_accuracy", "nme_median"):
        assert (study[f"diff_{metric}_low"] <= study[f"diff_{metric}"]).all()
        assert (study[f"diff_{metric}"] <= study[f"diff_{metric}_high"]).all()
    assert (study["variance"] == "training seeds and test subjects").all()
    assert study["peer_nme_median"].notna().all()
    # Counted compute grows with the pixels, whatever the CPU did: the convolutions by (64/48)^2 = 1.78,
    # the fully connected heads not at all, so the whole step by something in between.
    for model in ("m3mstl", "baseline"):
        small, large = study[f"train_tflop_{model}"]
        assert 0 < small and 1.1 < large / small < 1.8, (model, small, large)
    recorded = json.loads((tmp_path / "build" / "metrics" / "12_scaling_study.json").read_text())
    assert recorded
    # Every run of the study is archived (2 points x 2 models x 2 seeds). In a session that has only the
    # archive (the deep models' run folders gone) the study rebuilds the same table without training.
    assert len(list((tmp_path / "archive").glob("*/*/complete.json"))) == 8
    import shutil
    for model in ("m3mstl", "baseline"):
        shutil.rmtree(tmp_path / "runs" / model)
    first_table = (tmp_path / "tables" / "12_scaling_study.csv").read_bytes()
    proc = subprocess.run([sys.executable, "-c", code.replace("TRAIN=True", "TRAIN=False")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (tmp_path / "tables" / "12_scaling_study.csv").read_bytes() == first_table
    assert not (tmp_path / "runs" / "m3mstl").exists()


# -- the run archive: the study resumes across machine sessions from committed run records ----------
def _fake_finished_run(run_dir: Path) -> Path:
    from m3mstl.runs.archive import ARCHIVE_REQUIRED

    import numpy as np

    for name in (*ARCHIVE_REQUIRED, "history.jsonl", "per_image_test.csv", "training_flops.json"):
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(json.dumps({"run_dir": str(run_dir)}) if name == "complete.json"
                                    else json.dumps({"file": name}) if name.endswith(".json") else name)
    rng = np.random.default_rng(len(str(run_dir)))
    np.savez_compressed(run_dir / "predictions_test.npz", pred_landmarks=rng.random((3, 68, 2), dtype=np.float32),
                        pred_landmarks_crop=rng.random((3, 68, 2), dtype=np.float32),
                        occlusion_prob=rng.random((3, 68), dtype=np.float32), subject=np.array(["a", "a", "b"]),
                        gt_landmarks=np.arange(3 * 68 * 2, dtype=float).reshape(3, 68, 2), gt_pose=np.zeros((3, 3)))
    (run_dir / "model.pt").write_bytes(b"weights")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "best-mask_pretrain.pt").write_bytes(b"weights")
    return run_dir


def test_archive_run_keeps_the_evaluation_record_without_weights(tmp_path):
    from m3mstl.errors import RunError
    from m3mstl.runs.archive import ARCHIVE_REQUIRED, archive_run, archived_run_dir

    run_dir = _fake_finished_run(tmp_path / "runs" / "m3mstl" / "abc123")
    archive = tmp_path / "archive"
    assert archived_run_dir("m3mstl", "abc123", archive) is None
    target = archive_run(run_dir, archive)
    assert target == archive / "m3mstl" / "abc123" == archived_run_dir("m3mstl", "abc123", archive)
    assert sorted(p.name for p in target.iterdir()) == sorted(  # no weights, no temp files
        (*ARCHIVE_REQUIRED, "history.jsonl", "per_image_test.csv", "training_flops.json"))
    # The predictions come back whole but for the crop-frame copy; the ground truth, the same for every run
    # of the split, is stored once beside the runs.
    import numpy as np
    from m3mstl.runs.predictions import load_predictions

    original, archived = load_predictions(run_dir / "predictions_test.npz"), load_predictions(target / "predictions_test.npz")
    assert set(original) - set(archived) == {"pred_landmarks_crop"}
    assert all(np.array_equal(archived[k], original[k]) and archived[k].dtype == original[k].dtype for k in archived)
    other = archive_run(_fake_finished_run(tmp_path / "runs" / "baseline" / "xyz000"), archive)
    assert len(list((archive / "ground-truth").glob("*.npz"))) == 1
    assert np.array_equal(load_predictions(other / "predictions_test.npz")["gt_landmarks"], original["gt_landmarks"])
    for shared in (archive / "ground-truth").glob("*.npz"):
        shared.unlink()
    from m3mstl.errors import RunError as _RunError
    with pytest.raises(_RunError, match="ground truth .* missing"):
        load_predictions(other / "predictions_test.npz")
    # complete.json names the archived folder, repository-relative: no machine's absolute path
    assert json.loads((target / "complete.json").read_text())["run_dir"] == "archive/m3mstl/abc123"
    assert (target / "history.jsonl").read_text() == "history.jsonl"

    unfinished = _fake_finished_run(tmp_path / "runs" / "m3mstl" / "def456")
    (unfinished / "complete.json").unlink()
    with pytest.raises(RunError, match="def456.*has not finished"):
        archive_run(unfinished, archive)
    incomplete = _fake_finished_run(tmp_path / "runs" / "baseline" / "ghi789")
    (incomplete / "predictions_test.npz").unlink()
    with pytest.raises(RunError, match="ghi789.*missing predictions_test.npz"):
        archive_run(incomplete, archive)
    assert archived_run_dir("baseline", "ghi789", archive) is None


def test_an_archived_record_holds_no_absolute_path(tmp_path):
    """A run archived from another machine's runs/ folder: its environment names the data relative to
    the folder that machine trained under (or by folder name when the data lay elsewhere), beside the
    fingerprint; every other field is copied as it is."""
    import re

    from m3mstl.runs.archive import archive_run

    archive = tmp_path / "archive"
    for run_id_, recorded, portable in (("abc123", "/home/someone/repo/data/synth-extended", "data/synth-extended"),
                                        ("def456", "/mnt/datasets/TFD68", "TFD68")):
        run_dir = _fake_finished_run(tmp_path / "copied" / "runs" / "m3mstl" / run_id_)
        environment = {"data_dir": recorded, "data_fingerprint": "f2c00735de59fbe5", "cpu_count": 2}
        (run_dir / "environment.json").write_text(json.dumps(environment))
        (run_dir / "complete.json").write_text(json.dumps({"run_dir": f"/home/someone/repo/runs/m3mstl/{run_id_}"}))
        target = archive_run(run_dir, archive)
        assert json.loads((target / "environment.json").read_text()) == {**environment, "data_dir": portable}
        assert (target / "config.json").read_bytes() == (run_dir / "config.json").read_bytes()
        for path in target.iterdir():
            if path.suffix in (".json", ".jsonl", ".csv"):
                assert not re.search(r'"/|/home/|/mnt/', path.read_text()), path


def test_the_committed_archive_names_its_data_without_a_machine_path():
    from pathlib import PurePath

    records = sorted((paths.REPO_ROOT / "archive").glob("*/*/environment.json"))
    assert records
    for path in records:
        record = json.loads(path.read_text())
        assert record["data_fingerprint"] and not PurePath(record["data_dir"]).is_absolute(), path


def test_train_point_archives_each_run_and_resumes_from_the_archive(tmp_path, monkeypatch, tiny_dataset_dir):
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(paths, "ARCHIVE_DIR", tmp_path / "archive")
    measured = []
    monkeypatch.setattr(scaling, "stage1_validation_iou", lambda run_dir, data_dir: measured.append(run_dir))
    monkeypatch.setattr(scaling, "training_flops", lambda run_dir, data_dir: 0.0)
    monkeypatch.setattr(scaling, "load_run", lambda run_dir, name: RunResult(name, Path(run_dir), {}, None, None))
    trained = []

    def fake_train(model, profile, data_dir, *, seed, overrides, device):
        from m3mstl.train.trainer import Trainer

        # the folder the real trainer would train in (its run id resolves every model option)
        trained.append((model, seed))
        return _fake_finished_run(Trainer(make_config(model, profile, seed=seed, overrides=overrides), data_dir).run_dir)

    point = scaling.scaling_grid("quick")[0]
    first = scaling.train_point(point, "quick", tiny_dataset_dir, [0, 1], train=fake_train)
    assert trained == [("m3mstl", 0), ("m3mstl", 1), ("baseline", 0), ("baseline", 1)]
    assert len(measured) == 4  # measured while the weights exist
    archived = sorted((tmp_path / "archive").glob("*/*/complete.json"))
    assert len(archived) == 4
    # A new session: no run folders, only the committed archive. Nothing is trained again.
    import shutil
    shutil.rmtree(tmp_path / "runs")

    def must_not_train(*args, **kwargs):
        raise AssertionError("an archived run was trained again")

    again = scaling.train_point(point, "quick", tiny_dataset_dir, [0, 1], train=must_not_train)
    assert [r.run_dir.name for r in again.m3mstl + again.baseline] == [r.run_dir.name for r in first.m3mstl + first.baseline]
    assert all(r.run_dir.is_relative_to(tmp_path / "archive") for r in again.m3mstl + again.baseline)
    # use_archive=False (the notebook's FORCE) trains them again
    trained.clear()
    scaling.train_point(point, "quick", tiny_dataset_dir, [0], train=fake_train, use_archive=False)
    assert trained == [("m3mstl", 0), ("baseline", 0)]


def test_scaling_command_lists_the_grid_and_refuses_an_unknown_point(tmp_path):
    env = {**os.environ, "M3MSTL_OUTPUT_ROOT": str(tmp_path)}
    listed = subprocess.run([sys.executable, "-m", "m3mstl.cli", "scaling", "--profile", "quick", "--list"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    lines = [l for l in listed.stdout.splitlines() if l.startswith(("48 px", "64 px"))]
    assert len(lines) == 2 and all(l.count("missing") == 4 for l in lines)  # 2 models x 2 seeds, none trained
    wrong = subprocess.run([sys.executable, "-m", "m3mstl.cli", "scaling", "--profile", "quick", "--points", "99 px"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "99 px" in wrong.stderr and "48 px resnet18" in wrong.stderr
