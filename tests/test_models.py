"""M3MSTL family: heads, variants, stages, temperature cues, freezing and determinism.

Small inputs (64x64, batch 2) and resnet18 keep it fast; the paper's resnet50 is built once.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from m3mstl.models import create_model, list_models
from m3mstl.models.backbones import batchnorm_modules, create_trunk
from m3mstl.models.heads import (LandmarkHead, MaskDecoder, PooledMLPOcclusionHead, TokenMLPOcclusionHead,
                                 ViTOcclusionHead)
from m3mstl.studies.comparison import ABLATIONS
from m3mstl.models.m3mstl import M3MSTL
from m3mstl.models.temperature_cues import (NUM_CUES, CueSettings, infer_has_temperature,
                                            normalised_temperature_channel, temperature_cues,
                                            typical_face_temperature)

torch.set_num_threads(1)

SIZE = 64
SMALL = {"backbone": "resnet18", "token_dim": 64, "occlusion_depth": 2, "occlusion_heads": 4,
         "landmark_hidden": (256, 128), "decoder_width": 16}


def fake_batch(batch_size: int = 2, size: int = SIZE, seed: int = 0) -> dict[str, Any]:
    """A collated batch as ThermalFaceDataset produces it (see the batch contract)."""
    generator = torch.Generator().manual_seed(seed)
    landmarks = torch.rand(batch_size, 68, 2, generator=generator) * 0.6 + 0.2
    visibility = torch.randint(0, 3, (batch_size, 68), generator=generator)
    temperature = 33.0 + torch.rand(batch_size, 1, size, size, generator=generator)
    return {
        "image": torch.rand(batch_size, 1, size, size, generator=generator),
        "temperature": temperature,
        "has_temperature": torch.ones(batch_size, dtype=torch.bool),
        "landmarks": landmarks,
        "visibility": visibility,
        "occluded": (visibility == 1).float(),
        "labelled": visibility > 0,
        "occluder_mask": torch.zeros(batch_size, 1, size, size),
        "pose": torch.zeros(batch_size, 3),
        "rotation": torch.eye(3).expand(batch_size, 3, 3).clone(),
        "has_pose": torch.zeros(batch_size, dtype=torch.bool),
        "index": torch.arange(batch_size),
        "image_id": [f"thermal_{i:03d}_0_0" for i in range(batch_size)],
        "subject": [f"{i:03d}" for i in range(batch_size)],
    }


def small_model(name: str = "m3mstl", seed: int = 0, **options: Any) -> M3MSTL:
    torch.manual_seed(seed)
    return create_model(name, **{**SMALL, **options})


# ----------------------------------------------------------------------------- registry and config
def test_factories_are_registered_and_defaults_follow_the_paper() -> None:
    assert {"m3mstl", "baseline"} <= set(list_models())
    model = create_model("m3mstl", occlusion_depth=1)  # the paper's resnet50 trunk, built once
    assert model.config["backbone"] == "resnet50"
    assert model.trunk.channels[-1] == 2048 and model.trunk.reductions == (2, 4, 8, 16, 32)
    assert model.STAGES == ("mask_pretrain", "heads", "joint")
    assert model.config["landmark_hidden"] == [2048, 512] and model.config["landmark_dropout"] == 0.3
    assert (model.config["wing_w"], model.config["wing_epsilon"]) == (10.0, 2.0)
    assert model.config["occlusion_head"] == "vit" and model.config["occlusion_uses_temperature"]
    torch.manual_seed(0)
    batch = fake_batch(batch_size=2)
    model.set_stage("joint")
    loss, parts = model.training_loss(batch, "joint")
    assert torch.isfinite(loss) and parts["wing"] > 0
    output = model.predict(batch["image"], batch["temperature"])
    assert output["landmarks"].shape == (2, 68, 2) and output["occlusion_prob"].shape == (2, 68)


def test_baseline_is_the_same_class_with_one_joint_stage() -> None:
    model = small_model("baseline")
    assert isinstance(model, M3MSTL) and model.STAGES == ("joint",)
    assert model.config["occlusion_head"] == "pooled_mlp" and not model.config["occlusion_uses_temperature"]
    assert model.mask_decoder is None
    with pytest.raises(ValueError):
        model.set_stage("heads")


def test_config_round_trips_through_json() -> None:
    model = small_model("baseline", wing_units="normalised")
    config = json.loads(json.dumps(model.config))
    rebuilt = create_model("baseline", **config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_bad_options_give_clear_errors() -> None:
    with pytest.raises(TypeError, match="unknown M3MSTL option"):
        create_model("m3mstl", backbone="resnet18", dropuot=0.3)
    with pytest.raises(ValueError, match="pooled_mlp"):
        create_model("m3mstl", backbone="resnet18", occlusion_head="pooled_mlp")
    with pytest.raises(ValueError, match="stage1_target"):
        create_model("m3mstl", backbone="resnet18", stage1_target="edges")
    with pytest.raises(ValueError, match="stride 64"):
        create_model("m3mstl", backbone="resnet18", token_feature_strides=(64,))
    with pytest.raises(ValueError, match="stride 3"):
        create_model("m3mstl", backbone="resnet18", decoder_finest_stride=3)
    with pytest.raises(ValueError, match="cannot be built by timm"):
        create_trunk("no_such_backbone")


# ----------------------------------------------------------------------------- heads alone
def _pyramid(batch: int = 2) -> tuple[list[torch.Tensor], tuple[int, ...]]:
    channels = (8, 16, 24, 32, 40)
    sizes = (32, 16, 8, 4, 2)
    return [torch.randn(batch, c, s, s) for c, s in zip(channels, sizes)], channels


@pytest.mark.parametrize("head_name", ["landmark", "decoder_1", "decoder_68", "vit", "vit_temp", "token_mlp",
                                       "token_mlp_temp", "pooled_mlp"])
def test_head_output_shapes(head_name: str) -> None:
    torch.manual_seed(0)
    features, channels = _pyramid()
    positions = torch.rand(2, 68, 2)
    cues = torch.randn(2, 68, NUM_CUES)
    if head_name == "landmark":
        output = LandmarkHead(channels[-1], (32, 16))(features[-1])
        assert output.shape == (2, 68, 2) and output.min() >= 0 and output.max() <= 1
        return
    if head_name.startswith("decoder"):
        out_channels = int(head_name.split("_")[1])
        output = MaskDecoder(channels, out_channels, width=8)(features, (SIZE, SIZE))
        assert output.shape == (2, out_channels, SIZE, SIZE)
        return
    num_cues = NUM_CUES if head_name.endswith("_temp") else 0
    if head_name.startswith("vit"):
        head = ViTOcclusionHead(channels, levels=(2, 3), dim=32, depth=2, num_heads=4, num_cues=num_cues)
    elif head_name.startswith("token_mlp"):
        head = TokenMLPOcclusionHead(channels, levels=(2, 3), dim=32, depth=2, num_cues=num_cues)
    else:
        head = PooledMLPOcclusionHead(channels[-1], hidden=16)
    output = head(features, positions, cues if num_cues else None)
    assert output.shape == (2, 68) and torch.isfinite(output).all()


@pytest.mark.parametrize("global_context", [False, True])
def test_global_context_reaches_every_token_only_when_asked(global_context: bool) -> None:
    torch.manual_seed(0)
    features, channels = _pyramid(batch=1)
    head = TokenMLPOcclusionHead(channels, levels=(2,), dim=32, depth=1, global_context=global_context).eval()
    positions = torch.rand(1, 68, 2)
    before = head(features, positions, None)
    features[-1] = features[-1] + torch.randn_like(features[-1])  # the last level is never sampled (levels=(2,)): only the context reads it
    after = head(features, positions, None)
    changed = (after - before).abs() > 1e-6
    assert changed.all() if global_context else not changed.any()


@pytest.mark.parametrize("positions", [False, True])
def test_token_positions_reach_the_tokens_only_when_asked(positions: bool) -> None:
    torch.manual_seed(0)
    features, channels = _pyramid(batch=1)
    # Maps constant over space: sampling anywhere reads the same features, so a moved landmark
    # can change a logit only through its position term.
    features = [torch.randn(1, f.shape[1], 1, 1).expand_as(f).contiguous() for f in features]
    head = TokenMLPOcclusionHead(channels, levels=(2,), dim=32, depth=1, positions=positions).eval()
    where = torch.rand(1, 68, 2)
    before = head(features, where, None)
    moved = where.clone()
    moved[0, 30] = 1.0 - moved[0, 30]
    after = head(features, moved, None)
    changed = (after - before).abs() > 1e-6
    # Token MLPs decide per landmark: only the moved one changes.
    assert changed[0, 30] if positions else not changed.any()
    assert changed.sum() == (1 if positions else 0)


def test_token_head_with_temperature_refuses_missing_cues() -> None:
    features, channels = _pyramid()
    head = ViTOcclusionHead(channels, levels=(3,), dim=32, depth=1, num_heads=4, num_cues=NUM_CUES)
    with pytest.raises(ValueError, match="temperature cues"):
        head(features, torch.rand(2, 68, 2), None)


# ----------------------------------------------------------------------------- every variant, every stage
def _model_switches(overrides: dict[str, Any]) -> dict[str, Any]:
    """The model options of an ablation (which stages run is the trainer's business)."""
    prefix = "model_options."
    return {key[len(prefix):]: value for key, value in overrides.items() if key.startswith(prefix)}


# The ablations the notebooks run, not a second list of them: a new ablation is tested here too.
MODEL_VARIANTS = [("m3mstl", name, _model_switches(overrides)) for name, overrides in ABLATIONS.items()] + \
    [("baseline", "baseline", {})]


@pytest.mark.parametrize("factory, variant, options", MODEL_VARIANTS, ids=[v for _, v, _ in MODEL_VARIANTS])
def test_variant_forward_and_every_stage_loss(factory: str, variant: str, options: dict[str, Any]) -> None:
    model = small_model(factory, **options)
    batch = fake_batch()
    output = model(batch["image"], batch["temperature"], batch["has_temperature"])
    assert output["landmarks"].shape == (2, 68, 2) and output["occlusion_logits"].shape == (2, 68)
    if model.mask_decoder is not None:
        channels = 68 if options.get("stage1_target") == "heatmaps" else 1
        assert model.mask_logits(batch["image"], batch["temperature"]).shape == (2, channels, SIZE, SIZE)
    for stage in model.STAGES:
        model.set_stage(stage)
        model.train()
        model.zero_grad(set_to_none=True)
        loss, parts = model.training_loss(batch, stage)
        assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() == pytest.approx(parts["loss"], rel=1e-6)
        assert all(isinstance(v, float) for v in parts.values())
        loss.backward()
        trainable = {id(p) for p in model.trainable_parameters()}
        assert trainable, "every stage trains something"
        for name, parameter in model.named_parameters():
            if id(parameter) not in trainable:
                assert parameter.grad is None, f"{name} is frozen in {stage} but got a gradient"
        trunk_trains = stage != "heads"
        assert any(p.grad is not None for p in model.trunk.parameters()) == trunk_trains
    prediction = model.predict(batch["image"], batch["temperature"])
    assert prediction["landmarks"].shape == (2, 68, 2) and prediction["occlusion_prob"].shape == (2, 68)
    assert 0 <= prediction["occlusion_prob"].min() and prediction["occlusion_prob"].max() <= 1


def test_decoder_can_read_the_stride_2_stem() -> None:
    model = small_model(decoder_finest_stride=2)
    assert len(model.mask_decoder.laterals) == 5
    assert model.mask_logits(fake_batch()["image"]).shape == (2, 1, SIZE, SIZE)
    assert len(small_model().mask_decoder.laterals) == 4  # default: strides 4 to 32


def test_model_starts_at_any_stage() -> None:
    """Skipping stage 1 (or 1 and 2) leaves a model whose stage loss trains the stage's parts."""
    for stage in ("heads", "joint"):
        model = small_model()
        model.set_stage(stage)
        loss, _ = model.training_loss(fake_batch(), stage)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        trained = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None}
        assert {"landmark_head", "occlusion_head"} <= trained
        assert ("trunk" in trained) == (stage == "joint")  # the heads stage keeps the trunk frozen


def test_training_loss_refuses_a_stage_other_than_the_set_one() -> None:
    model = small_model()
    model.set_stage("heads")
    with pytest.raises(ValueError, match="set_stage"):
        model.training_loss(fake_batch(), "joint")


# ----------------------------------------------------------------------------- the frozen stage
def _steps(model: M3MSTL, stage: str, steps: int = 3) -> None:
    model.set_stage(stage)
    model.train()
    optimiser = torch.optim.Adam(model.trainable_parameters(), lr=1e-3)
    for step in range(steps):
        loss, _ = model.training_loss(fake_batch(seed=step), stage)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def test_heads_stage_changes_no_trunk_weight_nor_batchnorm_statistic() -> None:
    model = small_model()
    trunk_before = {k: v.clone() for k, v in model.trunk.state_dict().items()}
    heads_before = {k: v.clone() for k, v in model.occlusion_head.state_dict().items()}
    _steps(model, "heads")
    assert all(not bn.training for bn in batchnorm_modules(model.trunk)), "frozen trunk BN must stay in eval"
    assert model.landmark_head.training and model.occlusion_head.training
    for key, value in model.trunk.state_dict().items():
        assert torch.equal(value, trunk_before[key]), f"trunk {key} changed in the frozen stage"
    assert any(not torch.equal(v, heads_before[k]) for k, v in model.occlusion_head.state_dict().items())
    # The same steps in "joint" do move the trunk and its statistics: the check above can fail.
    _steps(model, "joint", steps=1)
    assert all(bn.training for bn in batchnorm_modules(model.trunk))
    changed = [k for k, v in model.trunk.state_dict().items() if not torch.equal(v, trunk_before[k])]
    assert any(k.endswith("running_mean") for k in changed) and any(k.endswith("weight") for k in changed)


# ----------------------------------------------------------------------------- temperature
def _uniform_map(value: float = 34.0, size: int = SIZE) -> torch.Tensor:
    return torch.full((1, 1, size, size), value)


def test_typical_temperature_is_the_median_of_the_central_region() -> None:
    temperature = _uniform_map(20.0)  # cold background...
    temperature[..., 16:48, 16:48] = 34.0  # ...around a skin-temperature centre (the central half)
    temperature[..., 20:26, 18:46] = 24.0  # glasses covering part of the centre do not move the median
    assert typical_face_temperature(temperature).item() == pytest.approx(34.0)
    assert typical_face_temperature(temperature, central_fraction=1.0).item() == pytest.approx(20.0)


def test_temperature_cues_golden_on_a_linear_ramp() -> None:
    # T = 30 + 0.1 x (x in pixels, continuous): bilinear sampling is exact on a linear map.
    columns = torch.arange(SIZE, dtype=torch.float32) + 0.5
    temperature = (30.0 + 0.1 * columns).expand(1, 1, SIZE, SIZE).clone()
    landmarks = torch.full((1, 1, 2), 40.0 / SIZE)  # x = 40 px -> 34.0 C
    cues = temperature_cues(temperature, landmarks, torch.tensor([True]), CueSettings())[0, 0]
    # typical = median over columns 16..47 = 30 + 0.1 * 32 = 33.2; window +-1.5 px in 5 steps.
    expected = [
        (34.0 - 33.2) / 5,                 # point
        (34.0 - 33.2) / 5,                 # window mean
        (0.05625 / 5) ** 0.5 / 5,          # std: deviations +-0.15, +-0.075, 0 C -> sum of squares 0.05625
        (33.85 - 33.2) / 5,                # window min
        (34.15 - 33.2) / 5,                # window max
        (33.2 - 34.0) / 5,                 # typical - reference skin 34 C
        1.0,                               # has temperature
    ]
    torch.testing.assert_close(cues, torch.tensor(expected), atol=1e-4, rtol=0)


def test_cues_are_zero_without_temperature_even_for_nan_maps() -> None:
    landmarks = torch.rand(2, 68, 2)
    temperature = torch.cat([_uniform_map(34.0), torch.full((1, 1, SIZE, SIZE), float("nan"))])
    assert infer_has_temperature(temperature).tolist() == [True, False]
    assert infer_has_temperature(torch.zeros(1, 1, SIZE, SIZE)).tolist() == [False]
    cues = temperature_cues(temperature, landmarks)
    assert torch.isfinite(cues).all() and cues[1].abs().sum() == 0 and cues[0, :, -1].eq(1).all()
    assert temperature_cues(None, landmarks).abs().sum() == 0
    channel = normalised_temperature_channel(temperature, infer_has_temperature(temperature), temperature[:, :1])
    assert torch.isfinite(channel).all() and channel.abs().sum() == 0  # uniform map: T - median = 0


def _logits_with_cold_patch(model: M3MSTL, landmark: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Occlusion logits at fixed positions, before and after cooling the map around one landmark."""
    model.eval()
    torch.manual_seed(1)
    image = torch.rand(1, 1, SIZE, SIZE)
    positions = torch.rand(1, 68, 2) * 0.5 + 0.25
    positions[0, landmark] = torch.tensor([6.5, 6.5]) / SIZE  # off the central region: the median stays
    warm = _uniform_map(34.0)
    cold = warm.clone()
    cold[..., 3:10, 3:10] = 24.0  # a lens-like cold patch over the landmark
    has = torch.tensor([True])
    with torch.no_grad():
        before = model(image, warm, has, positions=positions)["occlusion_logits"][0]
        after = model(image, cold, has, positions=positions)["occlusion_logits"][0]
    return before, after


def test_occlusion_head_reads_temperature_at_the_landmark() -> None:
    before, after = _logits_with_cold_patch(small_model(), landmark=37)
    assert (after[37] - before[37]).abs() > 1e-4


def test_mlp_head_with_temperature_reads_only_its_own_landmark() -> None:
    before, after = _logits_with_cold_patch(small_model(occlusion_head="token_mlp"), landmark=37)
    assert (after[37] - before[37]).abs() > 1e-4
    others = torch.arange(68) != 37
    torch.testing.assert_close(after[others], before[others], rtol=0, atol=0)  # no attention: no leak


@pytest.mark.parametrize("factory, options", [("m3mstl", {"occlusion_uses_temperature": False}), ("baseline", {})])
def test_no_temperature_variants_ignore_the_map(factory: str, options: dict[str, Any]) -> None:
    before, after = _logits_with_cold_patch(small_model(factory, **options), landmark=37)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_temperature_channel_variant_feeds_the_map_to_the_trunk() -> None:
    model = small_model(temperature_channel=True, occlusion_uses_temperature=False)
    assert model.trunk.in_chans == 2
    before, after = _logits_with_cold_patch(model, landmark=37)
    assert not torch.equal(before, after)


# ----------------------------------------------------------------------------- positions, masks, determinism
def test_position_schedule_follows_progress() -> None:
    model = small_model()
    model.set_stage("heads")
    model.set_progress(0.0)
    assert model.training_loss(fake_batch(), "heads")[1]["pred_position_fraction"] == 0.0
    model.set_progress(1.0)
    assert model.training_loss(fake_batch(), "heads")[1]["pred_position_fraction"] == 1.0
    model_gt = small_model(occlusion_positions="gt")
    model_gt.set_stage("heads")
    model_gt.set_progress(1.0)
    assert model_gt.training_loss(fake_batch(), "heads")[1]["pred_position_fraction"] == 0.0
    # A validation loss (eval mode) samples where predict does: at the predictions, whatever the option.
    model_gt.eval()
    assert model_gt.training_loss(fake_batch(), "heads")[1]["pred_position_fraction"] == 1.0


@pytest.mark.parametrize("stage", ["mask_pretrain", "joint"])
def test_training_loss_ignores_unlabelled_landmarks(stage: str) -> None:
    model = small_model(occlusion_positions="gt", landmark_dropout=0.0, occlusion_dropout=0.0)
    model.set_stage(stage)
    model.train()
    # Batch-norm in train mode normalises with batch statistics: nothing here depends on the labels.
    batch = fake_batch()
    reference, _ = model.training_loss(batch, stage)
    corrupted = dict(batch)
    unlabelled = ~batch["labelled"]
    corrupted["landmarks"] = torch.where(unlabelled[..., None], torch.full_like(batch["landmarks"], 0.9),
                                         batch["landmarks"])
    corrupted["occluded"] = torch.where(unlabelled, 1.0 - batch["occluded"], batch["occluded"])
    corrupted["visibility"] = torch.where(unlabelled, torch.full_like(batch["visibility"], 2), batch["visibility"])
    loss, _ = model.training_loss(corrupted, stage)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    # Labelled landmarks do count: moving one changes the loss.
    moved = dict(batch)
    moved["landmarks"] = batch["landmarks"].clone()
    first = torch.nonzero(batch["labelled"][0])[0, 0]
    moved["landmarks"][0, first] = 0.05
    assert model.training_loss(moved, stage)[0].item() != pytest.approx(reference.item(), rel=1e-6)


def test_same_seed_gives_identical_outputs() -> None:
    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        model = small_model(seed=seed)
        model.set_stage("joint")
        model.set_progress(0.5)
        torch.manual_seed(seed)
        loss, _ = model.training_loss(fake_batch(), "joint")
        prediction = model.predict(fake_batch()["image"], fake_batch()["temperature"])
        return prediction["landmarks"], prediction["occlusion_prob"], loss.item()

    first, second, other = run(0), run(0), run(1)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[2] == second[2]
    assert not torch.equal(first[1], other[1])


@pytest.mark.parametrize("stage", ["mask_pretrain", "heads", "joint"])
def test_validation_step_equals_loss_and_predict(stage: str) -> None:
    model = small_model()
    model.set_stage(stage)
    model.eval()
    batch = fake_batch()
    loss, landmarks = model.validation_step(batch, stage)
    expected_loss, _ = model.training_loss(batch, stage)
    expected = model.predict(batch["image"], batch["temperature"], batch["has_temperature"])["landmarks"]
    torch.testing.assert_close(loss, expected_loss)
    torch.testing.assert_close(landmarks, expected)


def test_predict_restores_mode_and_handles_missing_temperature() -> None:
    model = small_model()
    model.train()
    output = model.predict(torch.rand(2, 1, SIZE, SIZE))
    assert model.training and output["landmarks"].min() >= 0 and output["landmarks"].max() <= 1
    # Without a map, the prediction equals the one with an explicit "no temperature" flag.
    with_flag = model.predict(torch.rand(2, 1, SIZE, SIZE), _uniform_map().expand(2, 1, SIZE, SIZE),
                              torch.tensor([False, False]))
    assert torch.isfinite(with_flag["occlusion_prob"]).all()


def test_autocast_and_channels_last() -> None:
    model = small_model()
    model.set_stage("joint")
    batch = fake_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model.training_loss(batch, "joint")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    model.eval()
    reference = model.predict(batch["image"], batch["temperature"])
    model = model.to(memory_format=torch.channels_last)
    output = model.predict(batch["image"].contiguous(memory_format=torch.channels_last), batch["temperature"])
    torch.testing.assert_close(output["occlusion_prob"], reference["occlusion_prob"], atol=1e-4, rtol=1e-4)
