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

from m3mstl import paths, reproduce, scaling
from m3mstl.config import make_config
from m3mstl.models import create_model

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
        configs = {model: make_config(model, profile, overrides=point.overrides(model)) for model in ("m3mstl", "baseline")}
        for model, config in configs.items():
            assert config.data.input_size == point.input_size
            assert config.model_options["backbone"] == point.backbone
            create_model(model, **config.model_options)  # options the family accepts
        # the same training samples for both models at every point
        epochs = {model: sum(s.epochs for s in c.stages) for model, c in configs.items()}
        assert epochs["m3mstl"] == epochs["baseline"]
        assert configs["m3mstl"].data.max_train_images == configs["baseline"].data.max_train_images
        assert not (set(point.m3mstl_overrides) & set(point.overrides("baseline")) - {"data.input_size",
                                                                                     "model_options.backbone"})


def _resolved_hash(config):
    from m3mstl.train.trainer import resolve_model_options

    config.model_options = resolve_model_options(config.model, config.model_options)
    return config.config_hash()


def test_extended_grid_reuses_the_default_profiles_runs():
    """The 64 px ResNet-18 point with floored stage-1 disks is the default profile's model: the
    same resolved config (so the same run id) for M3MSTL and the baseline."""
    point = next(p for p in scaling.scaling_grid("extended")
                 if (p.input_size, p.backbone, p.variant) == (64, "resnet18", "stage-1 disks >= 2 px"))
    for model in ("m3mstl", "baseline"):
        study = make_config(model, "extended", overrides=point.overrides(model))
        assert _resolved_hash(study) == _resolved_hash(make_config(model, "default"))


def test_paper_radius_points_really_use_the_paper_radius():
    """The default profile floors the disks; the ladder's paper-radius points must undo that."""
    from m3mstl.train.trainer import resolve_model_options

    for point in scaling.scaling_grid("extended"):
        options = resolve_model_options("m3mstl", make_config("m3mstl", "extended",
                                                              overrides=point.overrides("m3mstl")).model_options)
        expected = 2.0 if point.variant == "stage-1 disks >= 2 px" else None
        assert options.get("disk_min_radius_px") == expected, point.label


def test_the_study_runs_only_in_the_extended_profile():
    assert reproduce.notebook_profiles(NOTEBOOK) == ("extended",)
    assert NOTEBOOK not in reproduce.notebooks_for_profile("default")
    assert NOTEBOOK in reproduce.notebooks_for_profile("extended")


def test_the_extended_profile_runs_the_studies_the_default_budget_leaves_out():
    hourglass_ablations = paths.NOTEBOOKS_DIR / "13_hourglass_ablations.ipynb"
    camera_frames = paths.NOTEBOOKS_DIR / "14_camera_frames.ipynb"
    assert [nb.name for nb in reproduce.notebooks_for_profile("extended")] == [NOTEBOOK.name, hourglass_ablations.name,
                                                                               camera_frames.name]
    for study in (hourglass_ablations, camera_frames):
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
