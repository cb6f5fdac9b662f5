"""Smoke test of the paper profile on CPU: every registered model family through every stage of its
paper curriculum at 256 px, two steps per stage, on a tiny SynthTFD68, to the finished run record.

Nothing is learnt in two steps; what this guards is the path the README promises for GPUs (256 px
crops, batch 8, ResNet-50, every stage's freezing and loss, plateau scheduling, predictions and
evaluation at 256 px), so that it cannot break unseen while every other test runs at 64 px.
Everything but the number of epochs and steps is the paper profile's own setting.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from m3mstl import paths
from m3mstl.config import SYNTH_SETTINGS, make_config
from m3mstl.data.synth.generate import generate_dataset
from m3mstl.models.registry import list_models
from m3mstl.runs import read_history
from m3mstl.train.trainer import Trainer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STEPS_PER_STAGE = 2


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory) -> Path:
    # The paper profile's own synthetic faces (256 px), 5 subjects x 4: a 3/1/1 subject split.
    torch.set_num_threads(1)
    settings = SYNTH_SETTINGS["paper"]
    root = tmp_path_factory.mktemp("synth-paper") / "data"
    generate_dataset(root, subjects=5, per_subject=4, size=settings["size"], seed=settings["seed"])
    return root


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    # Crop caches of this throwaway dataset go to a temporary folder, not the checkout's build/.
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("build")
        patch.setattr(paths, "BUILD_DIR", folder)
        yield folder


def _smoke_config(model: str):
    config = make_config(model, "paper")
    overrides = {}
    for stage in config.stages:
        overrides[f"stages.{stage.name}.epochs"] = 1
        overrides[f"stages.{stage.name}.steps_per_epoch"] = STEPS_PER_STAGE
    return make_config(model, "paper", overrides=overrides)


@pytest.mark.parametrize("model", list_models())
def test_every_family_runs_every_paper_stage_at_256_px(model, paper_dir, build_dir, tmp_path) -> None:
    config = _smoke_config(model)
    assert config.data.input_size == 256 and config.data.batch_size == 8
    stages = [stage.name for stage in config.stages]
    steps = []
    trainer = Trainer(config, paper_dir, device="cpu", runs_root=tmp_path, progress=False,
                      step_hook=lambda stage, epoch, step: steps.append(stage))
    assert len(trainer.data.torch_sets["train"]) >= config.data.batch_size  # full batches of 8
    run_dir = trainer.fit()

    assert (run_dir / "complete.json").is_file()
    assert steps == [name for name in stages for _ in range(STEPS_PER_STAGE)]
    assert [h["stage"] for h in read_history(run_dir)] == stages
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["profile"] == "paper" and recorded["data"]["input_size"] == 256
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["precision"] == "fp32" and environment["loader"]["num_workers"] == 0
    predictions = np.load(run_dir / "predictions_test.npz")
    assert int(predictions["input_size"]) == 256
    assert len(predictions["image_id"]) == len(trainer.data.splits["test"])
    assert np.isfinite(predictions["pred_landmarks"]).all() and np.isfinite(predictions["occlusion_prob"]).all()
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    assert metrics["n_images"] == len(predictions["image_id"])
    assert np.isfinite(metrics["landmarks"]["inter_ocular"]["nme_mean"])
