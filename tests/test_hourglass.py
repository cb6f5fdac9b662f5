"""Kim et al.'s multitask stacked hourglass (m3mstl.models.hourglass)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from m3mstl.models import create_model, list_models
from m3mstl.models.hourglass import HourglassOptions, MultitaskHourglass
from m3mstl.models.rotation import euler_from_rotation, rotation_from_euler

torch.set_num_threads(1)

SIZE = 64
# Smallest configuration that still has every part: keeps each test well under a second.
SMALL = dict(channels=16, depth=2, visibility_hidden=8, pose_hidden=16)


def make_model(seed: int = 0, **options) -> MultitaskHourglass:
    torch.manual_seed(seed)
    return create_model("hourglass", **{**SMALL, **options})


def fake_batch(batch_size: int = 2, size: int = SIZE, seed: int = 0) -> dict:
    """A batch as the data layer's ThermalFaceDataset collates it."""
    gen = torch.Generator().manual_seed(seed)
    visibility = torch.randint(0, 3, (batch_size, 68), generator=gen)
    pose = (torch.rand(batch_size, 3, generator=gen) - 0.5) * torch.tensor([120.0, 60.0, 60.0])
    occluder_mask = torch.zeros(batch_size, 1, size, size)
    occluder_mask[:, :, size // 2:, :] = 1.0  # lower half covered (a mask)
    return {
        "image": torch.rand(batch_size, 1, size, size, generator=gen),
        "temperature": 25.0 + 10.0 * torch.rand(batch_size, 1, size, size, generator=gen),
        "landmarks": 0.1 + 0.8 * torch.rand(batch_size, 68, 2, generator=gen),
        "visibility": visibility,
        "occluded": (visibility == 1).float(),
        "labelled": visibility > 0,
        "occluder_mask": occluder_mask,
        "has_occluder_mask": torch.ones(batch_size, dtype=torch.bool),
        "pose": pose,
        "rotation": rotation_from_euler(pose),
        "has_pose": torch.ones(batch_size, dtype=torch.bool),
        "index": torch.arange(batch_size),
        "image_id": [f"thermal_{i:03d}_0_0" for i in range(batch_size)],
        "subject": [f"{i:03d}" for i in range(batch_size)],
    }


def parameter_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


# --- construction and forward --------------------------------------------------------

def test_registered_with_resolved_config():
    assert "hourglass" in list_models()
    model = create_model("hourglass")
    assert isinstance(model, MultitaskHourglass)
    assert model.config == {**HourglassOptions().__dict__}
    assert model.config["num_stacks"] == 2 and model.config["pose_head"] == "6d"
    assert model.STAGES == ("multitask", "landmark_finetune")


@pytest.mark.parametrize("size", [64, 96])
def test_forward_shapes(size):
    model = make_model(depth=3)  # 96 px: 24 -> 12 -> 6 -> 3, odd sizes on the way back up
    outputs = model(fake_batch(size=size)["image"])
    assert len(outputs) == 2
    for out in outputs:
        assert out["heatmaps"].shape == (2, 68, size // 4, size // 4)
        assert out["occluder_logits"].shape == (2, 1, size // 4, size // 4)
        assert out["visibility_logits"].shape == (2, 68)
        assert out["pose_raw"].shape == (2, 6)
        assert out["rotation"].shape == (2, 3, 3) and out["pose"].shape == (2, 3)


def test_predict_outputs_and_ranges():
    model = make_model()
    model.train()
    prediction = model.predict(fake_batch()["image"], temperature=None)
    assert model.training  # mode restored
    assert set(prediction) == {"landmarks", "occlusion_prob", "rotation", "pose"}
    assert prediction["landmarks"].shape == (2, 68, 2)
    assert prediction["landmarks"].min() >= 0 and prediction["landmarks"].max() <= 1
    assert ((prediction["occlusion_prob"] > 0) & (prediction["occlusion_prob"] < 1)).all()
    rot = prediction["rotation"]
    assert torch.allclose(rot @ rot.transpose(-2, -1), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(2), atol=1e-5)
    assert torch.allclose(prediction["pose"], euler_from_rotation(rot), atol=1e-4)
    # The pose head starts at a frontal face (bias = identity rotation).
    assert prediction["pose"].abs().max() < 5.0


def test_predict_decodes_the_last_stack_heatmaps():
    model = make_model()
    head = model.heatmap_heads[-1]
    # Rig the last heatmap head so each landmark's heatmap is a clean Gaussian: zero the
    # conv and add Gaussians through a forward hook. Decoding must find their centres.
    centres = 0.05 + 0.9 * torch.rand(1, 68, 2, generator=torch.Generator().manual_seed(3))
    hook = head.register_forward_hook(lambda m, i, o: model.landmark_targets(centres, *o.shape[-2:]).to(o.dtype))
    try:
        landmarks = model.predict(fake_batch(batch_size=1)["image"])["landmarks"]
    finally:
        hook.remove()
    assert (landmarks - centres).abs().max() < 0.1 / (SIZE // 4)


# --- ablation switches: each removes exactly its component --------------------------

def test_fpf_switch_removes_exactly_the_fusion_module():
    full, ablated = parameter_shapes(make_model()), parameter_shapes(make_model(use_fpf=False))
    removed = set(full) - set(ablated)
    assert removed and all(name.startswith("fpf.") for name in removed)
    assert {k: v for k, v in full.items() if k not in removed} == ablated
    outputs = make_model(use_fpf=False)(fake_batch()["image"])
    assert outputs[-1]["heatmaps"].shape == (2, 68, 16, 16)


def test_occlusion_fusion_switch_removes_exactly_the_fusion_module():
    full, ablated = parameter_shapes(make_model()), parameter_shapes(make_model(use_occlusion_fusion=False))
    removed = set(full) - set(ablated)
    assert removed and all(name.startswith("occlusion_fusion.") for name in removed)
    assert {k: v for k, v in full.items() if k not in removed} == ablated
    assert make_model(use_occlusion_fusion=False)(fake_batch()["image"])[-1]["visibility_logits"].shape == (2, 68)


@pytest.mark.parametrize("fusion", [True, False])
def test_occlusion_fusion_is_the_only_path_from_stack_one_occlusion_to_stack_two(fusion):
    model = make_model(use_occlusion_fusion=fusion).eval()
    image = fake_batch()["image"]
    with torch.no_grad():
        before = model(image)[-1]["heatmaps"]
        model.occluder_heads[0].bias.add_(3.0)     # change stack 1's occluder prediction
        model.visibility_heads[0].bias.add_(-3.0)  # and its landmark occlusion prediction
        after = model(image)[-1]["heatmaps"]
    assert torch.equal(before, after) != fusion


def test_pose_head_switch_changes_only_the_output_layer():
    six, euler = make_model(), make_model(pose_head="euler")
    six_shapes, euler_shapes = parameter_shapes(six), parameter_shapes(euler)
    assert set(six_shapes) == set(euler_shapes)
    differing = {name for name in six_shapes if six_shapes[name] != euler_shapes[name]}
    assert differing == {f"pose_heads.{k}.out.{p}" for k in (0, 1) for p in ("weight", "bias")}
    assert six_shapes["pose_heads.1.out.weight"][0] == 6 and euler_shapes["pose_heads.1.out.weight"][0] == 3
    prediction = euler.predict(fake_batch()["image"])
    rot = prediction["rotation"]
    assert torch.allclose(rot @ rot.transpose(-2, -1), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert torch.allclose(rotation_from_euler(prediction["pose"]), rot, atol=1e-5)


def test_heatmap_scale_sets_the_target_peak_and_nothing_else():
    scaled, plain = make_model(heatmap_scale=25.0), make_model(heatmap_scale=1.0)
    assert parameter_shapes(scaled) == parameter_shapes(plain)
    at_pixel_centre = torch.tensor([[[(5 + 0.5) / 16, (9 + 0.5) / 16]]])  # heatmap pixel (row 9, col 5)
    for model, peak in ((scaled, 25.0), (plain, 1.0)):
        target = model.landmark_targets(at_pixel_centre, 16, 16)
        assert math.isclose(float(target.max()), peak, rel_tol=1e-6)
        assert int(target.flatten().argmax()) == 9 * 16 + 5
    # With an all-zero heatmap output the landmark loss is mean(target^2): it grows with scale^2.
    losses = []
    for scale in (1.0, 10.0):
        model = make_model(heatmap_scale=scale)
        _zero_heatmap_heads(model)
        losses.append(model.training_loss(fake_batch(), "landmark_finetune")[1]["landmark"])
    assert math.isclose(losses[1] / losses[0], 100.0, rel_tol=1e-4)


# --- losses with known answers ----------------------------------------------------------

def _zero_heatmap_heads(model: MultitaskHourglass) -> None:
    with torch.no_grad():
        for head in model.heatmap_heads:
            head.weight.zero_()
            head.bias.zero_()


def test_multitask_loss_parts_have_known_values_for_rigged_heads():
    model = make_model(num_stacks=1, use_occlusion_fusion=False)
    batch = fake_batch(batch_size=3)
    batch["has_occluder_mask"] = torch.tensor([True, False, True])
    batch["pose"] = torch.tensor([[30.0, 0.0, 0.0], [0.0, 45.0, 0.0], [0.0, 0.0, -60.0]])
    batch["rotation"] = rotation_from_euler(batch["pose"])
    batch["has_pose"] = torch.tensor([True, True, False])
    with torch.no_grad():
        model.occluder_heads[0].weight.zero_()
        model.occluder_heads[0].bias.fill_(1.0)
        model.visibility_heads[0].weight.zero_()
        model.visibility_heads[0].bias.fill_(2.0)
        model.pose_heads[0].out.weight.zero_()  # bias = identity: predicts a frontal face
    _, parts = model.training_loss(batch, "multitask")
    # Occluder: logit 1 everywhere, masks cover exactly half of each image.
    expected_occluder = 0.5 * F.softplus(torch.tensor(-1.0)) + 0.5 * F.softplus(torch.tensor(1.0))
    assert math.isclose(parts["occluder"], float(expected_occluder), rel_tol=1e-5)
    # Visibility: logit 2 for every landmark, averaged over labelled ones only.
    occluded, labelled = batch["occluded"][batch["labelled"]], batch["labelled"].sum()
    expected_visibility = (occluded * F.softplus(torch.tensor(-2.0)) + (1 - occluded) * F.softplus(torch.tensor(2.0)))
    assert math.isclose(parts["visibility"], float(expected_visibility.sum() / labelled), rel_tol=1e-5)
    # Pose: identity vs 30 and 45 degree rotations (the third sample has no pose label).
    assert math.isclose(parts["pose"], math.radians(37.5), rel_tol=1e-4)
    # One stack, unit weights: the total is the plain sum.
    assert math.isclose(parts["total"], sum(parts[k] for k in ("landmark", "occluder", "visibility", "pose")),
                        rel_tol=1e-5)


def test_euler_head_loss_is_wrapped_l1_in_radians():
    model = make_model(num_stacks=1, use_occlusion_fusion=False, pose_head="euler")
    batch = fake_batch(batch_size=2)
    batch["pose"] = torch.tensor([[30.0, -15.0, 15.0], [179.0, 0.0, 0.0]])
    with torch.no_grad():
        model.pose_heads[0].out.weight.zero_()
        model.pose_heads[0].out.bias.copy_(torch.deg2rad(torch.tensor([-179.0, 0.0, 0.0])))
    _, parts = model.training_loss(batch, "multitask")
    # Sample 1: |(-179 - 30)| wraps to 151, plus 15 and 15 -> 181/3; sample 2: 2 degrees across the seam -> 2/3.
    assert math.isclose(parts["pose"], math.radians((181.0 / 3 + 2.0 / 3) / 2), rel_tol=1e-4)


def test_unlabelled_landmarks_and_missing_labels_do_not_enter_the_loss():
    model = make_model()
    batch = fake_batch()
    loss, parts = model.training_loss(batch, "multitask")
    moved = dict(batch)
    unlabelled = ~batch["labelled"]
    moved["landmarks"] = torch.where(unlabelled[..., None], torch.rand_like(batch["landmarks"]), batch["landmarks"])
    moved["occluded"] = torch.where(unlabelled, 1.0 - batch["occluded"], batch["occluded"])
    moved["has_pose"] = torch.zeros(2, dtype=torch.bool)
    moved["has_occluder_mask"] = torch.zeros(2, dtype=torch.bool)
    _, moved_parts = model.training_loss(moved, "multitask")
    assert moved_parts["landmark"] == pytest.approx(parts["landmark"], rel=1e-6)
    assert moved_parts["visibility"] == pytest.approx(parts["visibility"], rel=1e-6)
    assert moved_parts["pose"] == 0.0 and moved_parts["occluder"] == 0.0


def test_intermediate_supervision_covers_both_stacks():
    batch = fake_batch()
    totals = {w: make_model(intermediate_weight=w).training_loss(batch, "multitask")[1]["total"] for w in (0.0, 1.0)}
    assert totals[1.0] > totals[0.0] > 0  # stack 1's losses are in the total


# --- stages -------------------------------------------------------------------------------

def test_training_loss_for_both_stages():
    model = make_model()
    batch = fake_batch()
    for stage, keys in (("multitask", {"landmark", "occluder", "visibility", "pose", "total"}),
                        ("landmark_finetune", {"landmark", "total"})):
        model.set_stage(stage)
        model.zero_grad()
        loss, parts = model.training_loss(batch, stage)
        assert set(parts) == keys and torch.isfinite(loss) and loss.dim() == 0
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.trainable_parameters()
                   if p.grad is not None)
    with pytest.raises(ValueError, match="no stage"):
        model.training_loss(batch, "joint")


@pytest.mark.parametrize("trainable, prefixes", [
    ("landmark_heads", ("heatmap_heads.",)),
    ("last_stack", ("hourglasses.1.", "fpf.1.", "stack_features.1.", "heatmap_heads.1.")),
])
def test_finetune_trains_only_the_chosen_parts(trainable, prefixes):
    model = make_model(finetune_trainable=trainable)
    model.set_stage("landmark_finetune")
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    assert names == {name for name, _ in model.named_parameters() if name.startswith(prefixes)}


def test_finetune_trunk_freezes_only_the_occlusion_and_pose_heads():
    model = make_model(finetune_trainable="trunk")
    model.set_stage("landmark_finetune")
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {name for name, _ in model.named_parameters()
                      if name.startswith(("occluder_heads.", "visibility_heads.", "pose_heads."))}


def test_landmark_finetune_leaves_frozen_parts_unchanged():
    model = make_model()  # finetune_trainable="last_stack"
    model.set_stage("landmark_finetune")
    model.train()
    frozen_bn = [m for name, m in model.named_modules()
                 if name.startswith("stem") and isinstance(m, torch.nn.BatchNorm2d)]
    assert frozen_bn and not any(m.training for m in frozen_bn)  # frozen batch norm stays in eval mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    optimiser = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    for step in range(2):
        loss, _ = model.training_loss(fake_batch(seed=step), "landmark_finetune")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    trainable_modules = ("hourglasses.1.", "fpf.1.", "stack_features.1.", "heatmap_heads.1.")
    assert changed and all(k.startswith(trainable_modules) for k in changed)  # incl. BN running stats
    assert trainable <= changed
    # Back to multitask: everything trains again and batch norm follows the model's mode.
    model.set_stage("multitask")
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert all(m.training for m in frozen_bn)


# --- determinism, precision, errors ---------------------------------------------------

def test_same_seed_gives_identical_outputs():
    batch = fake_batch()
    first, second = make_model(seed=11), make_model(seed=11)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key])
    loss_a, _ = first.training_loss(batch, "multitask")
    loss_b, _ = second.training_loss(batch, "multitask")
    assert torch.equal(loss_a, loss_b)
    pa, pb = first.predict(batch["image"]), second.predict(batch["image"])
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    third = make_model(seed=12)
    assert not torch.equal(third.predict(batch["image"])["occlusion_prob"], pa["occlusion_prob"])


def test_runs_under_autocast():
    model = make_model()
    batch = fake_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, parts = model.training_loss(batch, "multitask")
        loss.backward()
        prediction = model.predict(batch["image"])
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in prediction.values())
    rot = prediction["rotation"]
    assert torch.allclose(rot @ rot.transpose(-2, -1), torch.eye(3).expand(2, 3, 3), atol=1e-5)


def test_bad_options_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown hourglass option"):
        create_model("hourglass", stacks=2)
    with pytest.raises(ValueError, match="pose_head"):
        create_model("hourglass", pose_head="quaternion")
    with pytest.raises(ValueError, match="finetune_trainable"):
        create_model("hourglass", finetune_trainable="everything")
    with pytest.raises(ValueError, match="num_stacks >= 2"):
        create_model("hourglass", num_stacks=1)
    model = make_model(depth=3)
    with pytest.raises(ValueError, match="multiple of 4"):
        model(torch.zeros(1, 1, 30, 30))
    with pytest.raises(ValueError, match="2\\*\\*depth"):
        model(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, S, S\)"):
        model(torch.zeros(1, 3, 64, 64))
