"""A model family is one module: registering it here, with nothing edited anywhere else, makes
it configurable, trainable from the command line, predictable and evaluable, and every
registered family meets the same contract. The toy family is registered only while a test
uses it (the `toy_family` fixture), so it never shows up in another test file's registry."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import make_tiny_dataset
from m3mstl.config import make_config
from m3mstl.core.landmarks import NUM_LANDMARKS
from m3mstl.models import create_model, list_models, unregister_model
from m3mstl.models.base import CurriculumModel
from m3mstl.models.registry import UnknownOptionError, get_family, register_model, reject_unknown_options


# ----------------------------------------------------------------------------- the toy family, whole
@dataclasses.dataclass
class ToyOptions:
    width: int = 8
    occlusion_weight: float = 1.0


TOY_OPTIONS = frozenset(f.name for f in dataclasses.fields(ToyOptions))


class ToyRegressor(CurriculumModel):
    """Pooled convolution features -> 68 points and 68 occlusion logits; one stage."""

    STAGES = ("fit",)

    def __init__(self, options: ToyOptions) -> None:
        super().__init__()
        self.options = options
        self.features = nn.Sequential(nn.Conv2d(1, options.width, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.landmarks = nn.Linear(options.width * 16, NUM_LANDMARKS * 2)
        self.occlusion = nn.Linear(options.width * 16, NUM_LANDMARKS)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(image)
        points = torch.sigmoid(self.landmarks(features)).view(-1, NUM_LANDMARKS, 2)
        return points, self.occlusion(features)

    def training_loss(self, batch: dict[str, Any], stage: str):
        points, logits = self(batch["image"])
        mask = batch["labelled"].float()
        landmark = ((points - batch["landmarks"]).abs().sum(-1) * mask).sum() / mask.sum().clamp_min(1)
        occlusion = (F.binary_cross_entropy_with_logits(logits, batch["occluded"], reduction="none") * mask).sum() \
            / mask.sum().clamp_min(1)
        loss = landmark + self.options.occlusion_weight * occlusion
        return loss, {"loss": float(loss.detach()), "landmark": float(landmark.detach()),
                      "occlusion": float(occlusion.detach())}

    @torch.no_grad()
    def predict(self, image: torch.Tensor, temperature: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        points, logits = self(image)
        return {"landmarks": points, "occlusion_prob": torch.sigmoid(logits)}


def _toy_options(options: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown_options("toy", options, TOY_OPTIONS)
    return dataclasses.asdict(ToyOptions(**options))


def _toy_curriculum(settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return {}, [dict(name="fit", epochs=1, lr=settings["lr"] * 10, steps_per_epoch=settings["steps"])]


def toy_regressor(**options: Any) -> ToyRegressor:
    return ToyRegressor(ToyOptions(**_toy_options(options)))


TOY = toy_regressor.__name__


@pytest.fixture
def toy_family():
    """The toy family registered for one test, and unregistered after it."""
    register_model(resolve_options=_toy_options, curriculum=_toy_curriculum, option_names=TOY_OPTIONS)(toy_regressor)
    yield TOY
    if TOY in list_models():  # a test may have unregistered it itself
        unregister_model(TOY)


def test_the_toy_family_is_registered_only_inside_its_fixture():
    assert TOY not in list_models()


def test_unregistering_removes_the_family(toy_family):
    assert toy_family in list_models()
    unregister_model(toy_family)
    assert toy_family not in list_models()
    with pytest.raises(UnknownOptionError, match=toy_family):
        make_config(toy_family, "quick")
    with pytest.raises(UnknownOptionError, match=toy_family):
        unregister_model(toy_family)
    register_model(resolve_options=_toy_options, curriculum=_toy_curriculum, option_names=TOY_OPTIONS)(toy_regressor)


# ----------------------------------------------------------------------------- what registering gives
@pytest.mark.usefixtures("toy_family")
def test_a_registered_family_is_configured_from_its_own_curriculum():
    assert "toy_regressor" in list_models()
    config = make_config("toy_regressor", "quick", overrides={"model_options.width": 4})
    assert [s.name for s in config.stages] == ["fit"] and config.model_options == {"width": 4}
    with pytest.raises(UnknownOptionError, match="depth"):
        make_config("toy_regressor", "quick", overrides={"model_options.depth": 2})
    with pytest.raises(UnknownOptionError, match="depth"):
        create_model("toy_regressor", depth=2)


@pytest.mark.usefixtures("toy_family")
def test_the_toy_family_trains_from_the_command_line_predicts_and_evaluates(tmp_path, capsys, monkeypatch):
    from m3mstl import paths
    from m3mstl.cli import main
    from m3mstl.evaluation.evaluate import evaluate_run
    from m3mstl.infer.predict import predict_image

    data_dir = make_tiny_dataset(tmp_path / "data", n_subjects=5, images_per_subject=2)
    runs_root = tmp_path / "runs"
    monkeypatch.setattr(paths, "RUNS_DIR", runs_root)  # the command writes its run under paths.RUNS_DIR
    monkeypatch.setattr(paths, "BUILD_DIR", tmp_path / "build")
    code = main(["train", "--model", "toy_regressor", "--profile", "quick", "--data", str(data_dir),
                 "--device", "cpu", "--set", "data.input_size=32"])
    assert code == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert run_dir.parent == runs_root / "toy_regressor" and (run_dir / "complete.json").is_file()
    assert json.loads((run_dir / "config.json").read_text())["model_options"] == {"width": 8, "occlusion_weight": 1.0}
    metrics = evaluate_run(run_dir)
    assert metrics["n_images"] > 0 and 0.0 <= metrics["occlusion"]["accuracy"] <= 1.0
    image = sorted((data_dir / "thermal").iterdir())[0]
    result = predict_image(run_dir, image)
    assert len(result["landmarks"]) == NUM_LANDMARKS
    assert all(0.0 <= point["occlusion_prob"] <= 1.0 for point in result["landmarks"])


# ----------------------------------------------------------------------------- every family, one contract
def _fake_batch(size: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    visibility = torch.randint(0, 3, (2, NUM_LANDMARKS), generator=generator)
    return {"image": torch.rand(2, 1, size, size, generator=generator),
            "temperature": 33.0 + torch.rand(2, 1, size, size, generator=generator),
            "has_temperature": torch.ones(2, dtype=torch.bool),
            "landmarks": torch.rand(2, NUM_LANDMARKS, 2, generator=generator) * 0.6 + 0.2,
            "visibility": visibility, "occluded": (visibility == 1).float(), "labelled": visibility > 0,
            "occluder_mask": torch.zeros(2, 1, size, size), "has_occluder_mask": torch.ones(2, dtype=torch.bool),
            "pose": torch.zeros(2, 3), "rotation": torch.eye(3).expand(2, 3, 3).clone(),
            "has_pose": torch.zeros(2, dtype=torch.bool)}


@pytest.mark.parametrize("name", [*list_models(), TOY])
@pytest.mark.usefixtures("toy_family")
def test_every_registered_family_meets_the_trainer_contract(name):
    """Its quick config resolves without building the network, builds, and runs each stage."""
    config = make_config(name, "quick")
    family = get_family(name)
    options = family.resolve_options(config.model_options)
    # Every option recorded, so run ids see defaults; only those declared omitted-at-default may be
    # missing, and only while they hold that default.
    assert set(options) | set(family.omitted_at_default) == set(family.option_names)
    assert all(options.get(key, default) == default for key, default in family.omitted_at_default.items())
    assert family.resolve_options(options) == options  # resolving is idempotent (a run record rebuilds it)
    torch.manual_seed(0)
    model = create_model(name, **options)
    batch = _fake_batch(config.data.input_size)
    assert [s.name for s in config.stages] and all(s.name in model.STAGES for s in config.stages)
    for stage in config.stages:
        model.set_stage(stage.name)
        model.train()
        loss, _ = model.training_loss(batch, stage.name)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
    out = model.eval().predict(batch["image"], batch["temperature"])
    assert out["landmarks"].shape == (2, NUM_LANDMARKS, 2) and out["occlusion_prob"].shape == (2, NUM_LANDMARKS)
