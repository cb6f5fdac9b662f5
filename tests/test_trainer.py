"""The curriculum trainer: resuming, determinism, reuse of finished runs, and the
evaluation written into the run record (recomputed here independently)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from conftest import make_tiny_dataset
from m3mstl import paths
from m3mstl.config import make_config
from m3mstl.evaluation.evaluate import evaluate_run
from m3mstl.core.landmarks import OUTER_EYE_CORNERS
from m3mstl.runs.predictions import load_predictions
from m3mstl.runs import read_history
from m3mstl.train.trainer import Trainer, cosine_learning_rate, scheduled_learning_rate

pytestmark = pytest.mark.slow

# Two epochs in the last stage so an interruption can fall mid-way through the curriculum;
# cosine decay on, so resuming must also land on the same point of the learning-rate curve.
OVERRIDES = {"stages.joint.epochs": 2, "stages.joint.cosine_decay": True}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return make_tiny_dataset(tmp_path_factory.mktemp("data"), n_subjects=6, images_per_subject=4,
                             width=96, height=80)


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory) -> Path:
    config = make_config("m3mstl", "quick", overrides=OVERRIDES)
    return Trainer(config, data_dir, runs_root=tmp_path_factory.mktemp("runs"), progress=False).fit()


class SimulatedCrash(RuntimeError):
    """Raised by the test's step hook: a crash mid-epoch."""


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", map_location="cpu")


def test_interrupted_run_resumes_to_the_same_weights(data_dir, finished_run, tmp_path):
    def crash(stage: str, epoch: int, step: int) -> None:
        if stage == "joint" and epoch == 1 and step == 2:
            raise SimulatedCrash("simulated crash mid-epoch")

    config = make_config("m3mstl", "quick", overrides=OVERRIDES)
    interrupted = Trainer(config, data_dir, runs_root=tmp_path, progress=False, step_hook=crash)
    with pytest.raises(SimulatedCrash):
        interrupted.fit()
    assert not (interrupted.run_dir / "complete.json").exists()
    with pytest.raises(RuntimeError, match="resume"):
        Trainer(config, data_dir, runs_root=tmp_path, progress=False).fit(resume=False)
    resumed_dir = Trainer(config, data_dir, runs_root=tmp_path, progress=False).fit(resume=True)

    reference, resumed = _weights(finished_run), _weights(resumed_dir)
    assert reference.keys() == resumed.keys()
    for name in reference:
        assert torch.equal(reference[name], resumed[name]), name
    # Same seed, same data, same code: identical metrics as well.
    a = json.loads((finished_run / "metrics_test.json").read_text())
    b = json.loads((resumed_dir / "metrics_test.json").read_text())
    assert a["landmarks"] == b["landmarks"] and a["occlusion"] == b["occlusion"]


def test_finished_run_is_reused_not_retrained(data_dir, finished_run):
    config = make_config("m3mstl", "quick", overrides=OVERRIDES)
    before = (finished_run / "model.pt").stat().st_mtime_ns
    again = Trainer(config, data_dir, runs_root=finished_run.parent.parent, progress=False).fit()
    assert again == finished_run
    assert (finished_run / "model.pt").stat().st_mtime_ns == before


def test_a_finished_run_keeps_its_model_and_stage1_decoder_but_not_its_resume_state(data_dir, finished_run):
    assert sorted(p.name for p in (finished_run / "checkpoints").iterdir()) == ["best-mask_pretrain.pt"]
    assert (finished_run / "model.pt").is_file()
    # A run finished before the rule keeps its resume state until it is next reused.
    stale = finished_run / "checkpoints" / "last.pt"
    stale.write_bytes(b"resume state of an older run")
    config = make_config("m3mstl", "quick", overrides=OVERRIDES)
    Trainer(config, data_dir, runs_root=finished_run.parent.parent, progress=False).fit()
    assert not stale.exists()


def test_run_record_holds_config_environment_and_history(finished_run, data_dir):
    config = json.loads((finished_run / "config.json").read_text())
    env = json.loads((finished_run / "environment.json").read_text())
    history = [json.loads(line) for line in (finished_run / "history.jsonl").read_text().splitlines()]
    assert config["model"] == "m3mstl" and config["profile"] == "quick"
    assert env["data_fingerprint"] and env["packages"]["torch"] and "git_commit" in env
    assert env["data_dir"] == paths.portable_data_path(data_dir) and not Path(env["data_dir"]).is_absolute()
    assert [h["stage"] for h in history] == ["mask_pretrain", "heads", "joint", "joint"]


def test_evaluate_metrics_match_an_independent_recomputation(finished_run):
    metrics = evaluate_run(finished_run)
    preds = load_predictions(finished_run / "predictions_test.npz")
    labelled = preds["visibility"] > 0
    gt, pred = preds["gt_landmarks"], preds["pred_landmarks"]
    iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    err = np.linalg.norm(pred - gt, axis=2)
    per_image = np.array([err[i, labelled[i]].mean() / iod[i] for i in range(len(gt))])
    io = metrics["landmarks"]["inter_ocular"]
    assert io["nme_mean"] == pytest.approx(per_image.mean(), rel=1e-9)
    assert io["nme_median"] == pytest.approx(np.median(per_image), rel=1e-9)
    occluded = preds["visibility"][labelled] == 1
    prob = preds["occlusion_prob"][labelled]
    occ = metrics["occlusion"]
    assert occ["class_prior_occluded"] == pytest.approx(occluded.mean())
    assert occ["accuracy"] == pytest.approx(np.mean((prob >= 0.5) == occluded))
    if 0 < occluded.sum() < occluded.size:
        assert occ["roc_auc"] == pytest.approx(roc_auc_score(occluded, prob))
    # Predictions live in source-image pixels: the network's crop output mapped back by each
    # sample's crop affine (recomputed here with plain numpy).
    crop_px = preds["pred_landmarks_crop"] * int(preds["input_size"])
    mapped = np.einsum("nij,nkj->nki", preds["crop_to_image"], np.concatenate([crop_px, np.ones_like(crop_px[..., :1])], -1))
    np.testing.assert_allclose(pred, mapped, atol=1e-4)
    assert (finished_run / "per_image_test.csv").is_file()


def test_unknown_override_is_a_clear_error():
    with pytest.raises(KeyError, match="no field"):
        make_config("m3mstl", "quick", overrides={"data.inputsize": 32})


def test_predict_on_a_camera_frame_matches_the_stored_predictions(finished_run, data_dir):
    """`m3mstl predict` with the face box reproduces what the run stored for that image."""
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.dataset import face_box
    from m3mstl.infer.predict import predict_image

    preds = load_predictions(finished_run / "predictions_test.npz")
    record = read_dataset(data_dir).by_id(str(preds["image_id"][0]))
    result = predict_image(finished_run, record.image_path, temperature_path=record.temperature_path,
                           box=face_box(record))
    points = np.array([[p["x"], p["y"]] for p in result["landmarks"]])
    probs = np.array([p["occlusion_prob"] for p in result["landmarks"]])
    # The training cache stores crops in float16: allow that rounding, nothing more.
    assert np.abs(points - preds["pred_landmarks"][0]).max() < 0.05
    assert np.abs(probs - preds["occlusion_prob"][0]).max() < 2e-3
    assert all(np.isfinite(p["temperature_c"]) for p in result["landmarks"])


def test_predict_names_the_file_on_bad_input(finished_run, data_dir, tmp_path):
    from m3mstl.data.coco import read_dataset
    from m3mstl.data.errors import DatasetError
    from m3mstl.infer.predict import predict_image

    record = read_dataset(data_dir).records[0]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="corrupt.png"):
        predict_image(finished_run, corrupt)
    wrong_size = tmp_path / "small.npy"
    np.save(wrong_size, np.full((5, 5), 34.0, dtype=np.float32))
    with pytest.raises(DatasetError, match="small.npy.*temperature map is 5x5"):
        predict_image(finished_run, record.image_path, temperature_path=wrong_size)


def test_evaluate_on_another_dataset_records_its_fingerprint(finished_run, tmp_path):
    """`m3mstl evaluate RUN --data OTHER`: the trained model on every image of another folder."""
    from m3mstl.evaluation.evaluate import evaluate_on_dataset
    from m3mstl.runs import data_fingerprint

    other = make_tiny_dataset(tmp_path / "other", n_subjects=2, images_per_subject=3, width=96, height=80, seed=5)
    metrics = evaluate_on_dataset(finished_run, other, device="cpu")
    fingerprint = data_fingerprint(other)
    out = finished_run / "external" / fingerprint
    assert metrics["data_fingerprint"] == fingerprint and metrics["n_images"] == 6
    # named by its folder (it lies outside the repository), beside its fingerprint: no machine's absolute path
    assert json.loads((out / "metrics_all.json").read_text())["data_dir"] == "other"
    assert len((out / "per_image_all.csv").read_text().splitlines()) == 7


def test_cosine_decay_runs_from_lr_to_its_floor():
    stage = make_config("m3mstl", "default").stage("joint")
    rates = [cosine_learning_rate(stage, p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert rates[0] == pytest.approx(stage.lr)
    assert rates[2] == pytest.approx(stage.lr * (1 + stage.cosine_final_fraction) / 2)
    assert rates[-1] == pytest.approx(stage.lr * stage.cosine_final_fraction)
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_cosine_stage_records_the_decayed_rate(finished_run):
    history = read_history(finished_run)
    joint = [row for row in history if row["stage"] == "joint"]
    heads = [row for row in history if row["stage"] == "heads"]
    config = make_config("m3mstl", "quick", overrides=OVERRIDES)
    assert heads[-1]["lr"] == pytest.approx(config.stage("heads").lr)  # no decay asked: constant
    assert joint[0]["lr"] < config.stage("joint").lr and joint[-1]["lr"] < joint[0]["lr"]


def test_plateau_and_cosine_together_are_refused(data_dir, tmp_path):
    config = make_config("m3mstl", "quick", overrides={"stages.mask_pretrain.cosine_decay": True,
                                                       "stages.mask_pretrain.plateau_scheduler": True})
    with pytest.raises(ValueError, match="not both"):
        Trainer(config, data_dir, runs_root=tmp_path, progress=False).fit()


@pytest.mark.parametrize("channels_last", [True, False])
def test_trainer_builds_the_model_in_the_configured_memory_format(data_dir, tmp_path, channels_last):
    config = make_config("baseline", "quick", overrides={"channels_last": channels_last})
    model = Trainer(config, data_dir, runs_root=tmp_path, progress=False)._build_model()
    conv_weights = [p for p in model.parameters() if p.dim() == 4]
    assert conv_weights
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert all(w.is_contiguous(memory_format=fmt) for w in conv_weights)


@pytest.fixture
def training_refused():
    """Training not allowed, as in a notebook opened with TRAIN = FORCE = False."""
    from m3mstl.runs import lifecycle

    lifecycle.allow_training(False)
    yield
    lifecycle.allow_training(True)


def test_refused_training_still_reuses_a_finished_run(data_dir, finished_run, training_refused):
    from m3mstl.train.trainer import train

    runs_root = finished_run.parent.parent
    assert train("m3mstl", "quick", data_dir, overrides=OVERRIDES, runs_root=runs_root, progress=False) == finished_run
    assert train("m3mstl", "quick", data_dir, overrides=OVERRIDES, runs_root=runs_root, progress=False,
                 until_stage="heads") == finished_run


def test_refused_training_names_the_command_that_trains_exactly_the_missing_run(data_dir, finished_run,
                                                                                training_refused):
    import argparse
    import shlex

    from m3mstl.train import trainer

    from m3mstl.runs import lifecycle

    runs_root = finished_run.parent.parent
    overrides = {"stages": ["heads", "joint"], "model_options.occlusion_uses_temperature": False}
    with pytest.raises(lifecycle.RunNotTrained) as refused:
        trainer.train("m3mstl", "quick", data_dir, overrides=overrides, runs_root=runs_root, progress=False)
    message = str(refused.value)
    assert "TRAIN = True" in message and "Expected time" in message
    command = next(line for line in message.splitlines() if "m3mstl train" in line)
    words = shlex.split(command.split(".venv/bin/", 1)[1])
    parser = argparse.ArgumentParser()
    trainer.configure_parser(parser)
    args = parser.parse_args(words[2:])
    parsed = dict(item.split("=", 1) for item in args.overrides)
    config = make_config(args.model, args.profile, seed=args.seed, overrides=parsed)
    requested = Trainer(make_config("m3mstl", "quick", overrides=overrides), data_dir, runs_root=runs_root)
    from_command = Trainer(config, data_dir, runs_root=runs_root)
    assert from_command.run_dir == requested.run_dir
    assert not requested.run_dir.exists(), "a refused run must not leave a folder behind"


def test_validation_nme_is_the_old_torch_inter_ocular_nme_within_float_rounding(data_dir, tmp_path):
    """val_nme now comes from m3mstl.evaluation.metrics; it must equal what the trainer's former torch
    formula gave on the same predictions, and leave val_loss (early stopping) alone."""
    trainer = Trainer(make_config("baseline", "quick"), data_dir, runs_root=tmp_path, progress=False)
    model = trainer._build_model()
    seen = []
    validation_step = model.validation_step

    def recording_step(batch, stage):
        loss, pred = validation_step(batch, stage)
        seen.append((batch, pred, float(loss)))
        return loss, pred

    model.validation_step = recording_step
    val = trainer.validate(model, trainer.config.stages[-1].name)
    old_nmes = []
    for batch, pred, _ in seen:  # the former formula, kept here as the reference
        gt = batch["landmarks"]
        iod = (gt[:, OUTER_EYE_CORNERS[0]] - gt[:, OUTER_EYE_CORNERS[1]]).norm(dim=-1).clamp_min(1e-6)
        mask = batch["labelled"].float()
        old_nmes.append(((pred - gt).norm(dim=-1) * mask).sum(1) / mask.sum(1).clamp_min(1) / iod)
    assert len(seen) >= 1 and sum(len(b["image"]) for b, _, _ in seen) >= 2
    assert val["val_nme"] == pytest.approx(float(torch.cat(old_nmes).mean()), rel=1e-6)
    count = sum(len(b["image"]) for b, _, _ in seen)
    assert val["val_loss"] == pytest.approx(sum(loss * len(b["image"]) for b, _, loss in seen) / count, rel=1e-12)


def test_a_trainer_fitted_directly_honours_the_notebook_gate_too(data_dir, finished_run, tmp_path, training_refused):
    from m3mstl.runs.lifecycle import RunNotTrained

    config = make_config("m3mstl", "quick", overrides=OVERRIDES)
    assert Trainer(config, data_dir, runs_root=finished_run.parent.parent, progress=False).fit() == finished_run
    with pytest.raises(RunNotTrained, match="Not trained yet: m3mstl, profile 'quick', seed 0"):
        Trainer(config, data_dir, runs_root=tmp_path, progress=False).fit()
    assert not (tmp_path / "m3mstl").exists()


def test_stage_numbers_name_the_family_s_own_stages():
    from m3mstl.train.trainer import stage_aliases

    assert stage_aliases("m3mstl") == {"1": "mask_pretrain", "2": "heads", "3": "joint"}
    assert stage_aliases("baseline") == stage_aliases("m3mstl")  # the same class: the same order
    assert stage_aliases("hourglass") == {"1": "multitask", "2": "landmark_finetune"}


def test_the_stage_option_passes_the_family_s_nth_stage_to_train(monkeypatch):
    import argparse

    from m3mstl.train import trainer

    asked = []
    monkeypatch.setattr(trainer, "train", lambda model, *args, until_stage, **kwargs: asked.append(until_stage))
    parser = argparse.ArgumentParser()
    trainer.configure_parser(parser)
    for model, stage in (("m3mstl", "1"), ("m3mstl", "3"), ("hourglass", "1"), ("hourglass", "2"),
                         ("hourglass", "3"), ("m3mstl", "heads"), ("m3mstl", "all")):
        trainer.run(parser.parse_args(["--model", model, "--data", "x", "--stage", stage]))
    assert asked == ["mask_pretrain", "joint", "multitask", "landmark_finetune", "3", "heads", None]


# -- the training recipe of issue 28: warm-up, AdamW, a moving average of the weights ---------------
RECIPE = {**OVERRIDES, "optimizer": "adamw", "weight_decay": 0.05, "ema_decay": 0.9,
          "stages.joint.warmup_fraction": 0.25}


def test_warmup_rises_linearly_then_the_cosine_spans_the_rest():
    stage = make_config("m3mstl", "default", overrides={"stages.joint.warmup_fraction": 0.2}).stage("joint")
    assert scheduled_learning_rate(stage, 0.0) == 0.0
    assert scheduled_learning_rate(stage, 0.1) == pytest.approx(stage.lr / 2)
    assert scheduled_learning_rate(stage, 0.2) == pytest.approx(stage.lr)
    assert scheduled_learning_rate(stage, 0.6) == pytest.approx(cosine_learning_rate(stage, 0.5))
    assert scheduled_learning_rate(stage, 1.0) == pytest.approx(stage.lr * stage.cosine_final_fraction)
    constant = make_config("m3mstl", "quick").stage("heads")
    assert scheduled_learning_rate(constant, 0.5) is None  # nothing to set: the optimiser's own rate


def test_recipe_options_left_at_their_defaults_keep_every_earlier_run_id():
    # The quick profile keeps Adam without warm-up or averaging (the default profile's recipe sets them).
    base = make_config("m3mstl", "quick")
    spelled_out = make_config("m3mstl", "quick", overrides={
        "optimizer": "adam", "ema_decay": None, **{f"stages.{s.name}.warmup_fraction": 0.0 for s in base.stages}})
    assert spelled_out.config_hash() == base.config_hash()
    for key, value in (("optimizer", "adamw"), ("ema_decay", 0.99), ("stages.joint.warmup_fraction", 0.1)):
        assert make_config("m3mstl", "quick", overrides={key: value}).config_hash() != base.config_hash(), key


@pytest.mark.parametrize("key, value, match", [
    ("optimizer", "sgd", "optimiser"), ("ema_decay", 1.0, "below 1"), ("ema_decay", 0.0, "ema_decay"),
    ("stages.joint.warmup_fraction", 1.0, "below 1"), ("stages.joint.warmup_fraction", -0.1, "warmup_fraction"),
])
def test_bad_recipe_options_are_named(key, value, match):
    from m3mstl.config import validate_config
    from m3mstl.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        validate_config(make_config("m3mstl", "quick", overrides={key: value}))


def test_a_run_with_the_recipe_resumes_to_the_same_weights_and_keeps_the_averaged_ones(data_dir, tmp_path):
    """The moving average is part of the resume state: a crash mid-stage and a resume give the
    uninterrupted run's weights bit for bit; and what the run keeps is the average, not the raw weights."""
    config = make_config("m3mstl", "quick", overrides=RECIPE)
    reference = Trainer(config, data_dir, runs_root=tmp_path / "a", progress=False).fit()

    def crash(stage: str, epoch: int, step: int) -> None:
        if stage == "joint" and epoch == 1 and step == 1:
            raise SimulatedCrash("simulated crash mid-epoch")

    with pytest.raises(SimulatedCrash):
        Trainer(config, data_dir, runs_root=tmp_path / "b", progress=False, step_hook=crash).fit()
    resumed = Trainer(config, data_dir, runs_root=tmp_path / "b", progress=False).fit(resume=True)
    a, b = _weights(reference), _weights(resumed)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    joint = [row for row in read_history(reference) if row["stage"] == "joint"]
    assert joint[0]["lr"] < config.stage("joint").lr  # still warming up or decaying, never the peak held

    # Without the average (same seed and schedule) the kept weights differ: the average was kept.
    raw = make_config("m3mstl", "quick", overrides={**RECIPE, "ema_decay": None})
    raw_dir = Trainer(raw, data_dir, runs_root=tmp_path / "c", progress=False).fit()
    assert any(not torch.equal(a[name], _weights(raw_dir)[name]) for name in a if a[name].is_floating_point())
