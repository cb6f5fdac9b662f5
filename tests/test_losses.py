"""Losses and stage-1 targets: golden values worked by hand, and masks of unlabelled landmarks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m3mstl.models.losses import (disk_radius_px, landmark_disk_mask, landmark_heatmaps, mask_bce, mask_iou,
                           occlusion_bce, stage1_target, wing, wing_loss)

torch.set_num_threads(1)

# Wing with w = 10, epsilon = 2: C = 10 - 10 ln 6 = -7.917595; worked by hand.
WING_GOLDEN = [
    (0.0, 0.0),
    (1.0, 4.054651),     # 10 ln(1.5)
    (-1.0, 4.054651),    # symmetric in the sign of the error
    (5.0, 12.527630),    # 10 ln(3.5)
    (9.0, 17.047481),    # 10 ln(5.5)
    (10.0, 17.917595),   # |x| - C = 10 + 7.917595 (= 10 ln 6: the pieces meet)
    (20.0, 27.917595),   # linear regime
    (-35.0, 42.917595),
]


@pytest.mark.parametrize("error, expected", WING_GOLDEN)
def test_wing_golden_values(error: float, expected: float) -> None:
    assert wing(torch.tensor(error), 10.0, 2.0).item() == pytest.approx(expected, abs=1e-5)


def test_wing_is_continuous_and_steeper_than_l1_near_zero() -> None:
    below, above = wing(torch.tensor([10.0 - 1e-4, 10.0 + 1e-4]), 10.0, 2.0)
    assert above - below == pytest.approx(2e-4 * 1.0, abs=1e-3)  # slope 1 in the linear part
    assert wing(torch.tensor(0.1), 10.0, 2.0).item() == pytest.approx(10 * math.log(1.05), abs=1e-6)
    with pytest.raises(ValueError):
        wing(torch.tensor(1.0), 0.0, 2.0)


def _one_landmark(error_x_px: float, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    target = torch.full((1, 68, 2), 0.5)
    predicted = target.clone()
    predicted[0, 0, 0] += error_x_px / size
    labelled = torch.zeros(1, 68, dtype=torch.bool)
    labelled[0, 0] = True
    return predicted, target, labelled


def test_wing_loss_in_pixels_at_256() -> None:
    # One labelled landmark, 1 px error in x, 0 in y: mean over its 2 coordinates = 10 ln(1.5) / 2.
    predicted, target, labelled = _one_landmark(1.0, 256)
    loss = wing_loss(predicted, target, labelled, image_size=256)
    assert loss.item() == pytest.approx(4.054651 / 2, abs=1e-4)


def test_wing_loss_scales_with_input_size() -> None:
    # 0.5 px at 128 is the same share of the face as 1 px at 256; w and epsilon halve, so does the loss.
    predicted, target, labelled = _one_landmark(0.5, 128)
    loss = wing_loss(predicted, target, labelled, image_size=128)
    assert loss.item() == pytest.approx(5 * math.log(1.5) / 2, abs=1e-4)
    # 40 px at 256 is in the linear regime: 40 - C.
    predicted, target, labelled = _one_landmark(40.0, 256)
    assert wing_loss(predicted, target, labelled, 256).item() == pytest.approx((40 + 7.917595) / 2, abs=1e-3)


def test_wing_loss_normalised_units_is_the_baselines_near_l1() -> None:
    predicted, target, labelled = _one_landmark(2.56, 256)  # 0.01 in [0, 1] coordinates
    loss = wing_loss(predicted, target, labelled, 256, units="normalised")
    assert loss.item() == pytest.approx(10 * math.log(1 + 0.01 / 2) / 2, rel=1e-4)
    with pytest.raises(ValueError):
        wing_loss(predicted, target, labelled, 256, units="inches")


def test_wing_loss_ignores_unlabelled_landmarks() -> None:
    predicted, target, labelled = _one_landmark(1.0, 256)
    reference = wing_loss(predicted, target, labelled, 256)
    predicted_bad = predicted.clone()
    predicted_bad[0, 5] = torch.tensor([50.0, -50.0])  # landmark 5 is unlabelled: any error is ignored
    assert wing_loss(predicted_bad, target, labelled, 256).item() == pytest.approx(reference.item())
    none = torch.zeros_like(labelled)
    predicted.requires_grad_(True)
    zero = wing_loss(predicted, target, none, 256)
    zero.backward()
    assert zero.item() == 0.0 and torch.count_nonzero(predicted.grad) == 0


def test_occlusion_bce_golden_and_masking() -> None:
    logits = torch.zeros(1, 68)
    occluded = torch.zeros(1, 68)
    labelled = torch.zeros(1, 68, dtype=torch.bool)
    labelled[0, :2] = True
    logits[0, 1] = 2.0
    occluded[0, 1] = 1.0
    # mean of ln 2 (logit 0) and ln(1 + e^-2) (logit 2, occluded) = (0.693147 + 0.126928) / 2
    assert occlusion_bce(logits, occluded, labelled).item() == pytest.approx(0.410038, abs=1e-5)
    logits[0, 10] = -30.0
    occluded[0, 10] = 1.0  # a confident mistake on an unlabelled landmark changes nothing
    assert occlusion_bce(logits, occluded, labelled).item() == pytest.approx(0.410038, abs=1e-5)
    assert occlusion_bce(logits, occluded, torch.zeros_like(labelled)).item() == 0.0


def _single_landmark(x_px: float, y_px: float, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, 0] = torch.tensor([x_px / size, y_px / size])
    include = torch.zeros(1, 68, dtype=torch.bool)
    include[0, 0] = True
    return landmarks, include


@pytest.mark.parametrize("size, radius, pixels", [
    (256, 3.0, 29),    # integer points with dx^2 + dy^2 <= 9 (Gauss circle problem, N(3) = 29)
    (512, 6.0, 113),   # the same disk at twice the input size: N(6) = 113
    (128, 1.5, 9),     # half the size: the 3 x 3 block (corners at sqrt(2) <= 1.5)
])
def test_disk_mask_radius_scales_with_input_size(size: int, radius: float, pixels: int) -> None:
    assert disk_radius_px(size) == pytest.approx(radius)
    # The same place of the face at every size (pixel (50, 100) at 256), exactly on a pixel centre.
    col, row = int(100 * size / 256), int(50 * size / 256)
    x, y = col + 0.5, row + 0.5
    landmarks, include = _single_landmark(x, y, size)
    mask = landmark_disk_mask(landmarks, include, size)[0, 0]
    assert mask.shape == (size, size)
    assert int(mask.sum().item()) == pixels
    assert mask[row, col] == 1
    r = int(radius)
    assert mask[row, col + r] == 1 and mask[row, col + r + 1] == 0   # the disk ends at the radius
    assert mask[row - r, col] == 1 and mask[row - r - 1, col] == 0
    rows, cols = torch.nonzero(mask, as_tuple=True)
    assert rows.float().mean().item() == pytest.approx(row) and cols.float().mean().item() == pytest.approx(col)


def _brute_force_disks(points_px: np.ndarray, size: int, radius: float) -> np.ndarray:
    centres = np.arange(size) + 0.5
    xx, yy = np.meshgrid(centres, centres)
    mask = np.zeros((size, size), dtype=bool)
    for x, y in points_px:
        mask |= (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2
    return mask


def test_disk_mask_matches_brute_force_for_random_landmarks() -> None:
    generator = torch.Generator().manual_seed(3)
    size = 96
    landmarks = torch.rand(2, 68, 2, generator=generator) * 1.1 - 0.05  # some slightly off the image
    include = torch.rand(2, 68, generator=generator) > 0.3
    mask = landmark_disk_mask(landmarks, include, size).numpy()
    radius = disk_radius_px(size)
    for b in range(2):
        expected = _brute_force_disks(landmarks[b][include[b]].double().numpy() * size, size, radius)
        np.testing.assert_array_equal(mask[b, 0].astype(bool), expected)


def test_disk_never_empty_at_tiny_sizes() -> None:
    # At 32 px the scaled radius (0.375 px) is raised to sqrt(0.5): a landmark on a pixel corner
    # touches the four pixels around it.
    assert disk_radius_px(32) == pytest.approx(math.sqrt(0.5))
    landmarks, include = _single_landmark(10.0, 12.0, 32)
    mask = landmark_disk_mask(landmarks, include, 32)[0, 0]
    assert int(mask.sum()) == 4 and mask[11:13, 9:11].all()


def test_stage1_targets_follow_visibility() -> None:
    size = 64
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, :3] = torch.tensor([[10.5, 10.5], [30.5, 30.5], [50.5, 50.5]]) / size
    visibility = torch.zeros(1, 68, dtype=torch.long)
    visibility[0, :3] = torch.tensor([2, 1, 0])  # visible, occluded, unlabelled
    disks, weight = stage1_target("disk_mask", landmarks, visibility, size)
    assert disks[0, 0, 10, 10] == 1 and disks[0, 0, 30, 30] == 1 and disks[0, 0, 50, 50] == 0
    assert weight.shape == (1, 1, 1, 1) and weight.item() == 1.0
    visible, _ = stage1_target("visible_disk_mask", landmarks, visibility, size)
    assert visible[0, 0, 10, 10] == 1 and visible[0, 0, 30, 30] == 0
    heat, heat_weight = stage1_target("heatmaps", landmarks, visibility, size)
    assert heat.shape == (1, 68, size, size)
    assert heat_weight[0, :3, 0, 0].tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError):
        stage1_target("contours", landmarks, visibility, size)


def test_heatmap_peak_and_sigma_scale_with_size() -> None:
    size = 128  # sigma 6 px at 256 -> 3 px here
    landmarks, _ = _single_landmark(40.5, 20.5, size)
    heat = landmark_heatmaps(landmarks, size)[0, 0]
    assert heat[20, 40].item() == pytest.approx(1.0)
    assert heat[20, 43].item() == pytest.approx(math.exp(-0.5), abs=1e-6)   # one sigma away
    assert heat[26, 40].item() == pytest.approx(math.exp(-2.0), abs=1e-6)   # two sigma away
    assert torch.argmax(heat).item() == 20 * size + 40


def test_mask_bce_weight_switches_channels_off() -> None:
    target = torch.zeros(1, 2, 4, 4)
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 1] = 25.0  # a terribly wrong channel...
    weight = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)  # ...that does not count
    assert mask_bce(logits, target, weight).item() == pytest.approx(math.log(2), abs=1e-6)
    assert mask_bce(logits, target).item() == pytest.approx((math.log(2) + 25.0) / 2, abs=1e-4)


def test_mask_iou_golden() -> None:
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, :2, :2] = 1            # 4 true pixels
    logits = torch.full((1, 1, 4, 4), -5.0)
    logits[0, 0, :2, :3] = 5.0          # 6 predicted, 4 of them right
    assert mask_iou(logits, target) == pytest.approx(4 / 6)
    assert mask_iou(torch.full((1, 1, 4, 4), -5.0), torch.zeros(1, 1, 4, 4)) == 1.0


def test_min_disk_radius_keeps_small_input_disks_resolvable() -> None:
    from m3mstl.models.losses import disk_radius_px

    assert disk_radius_px(64) == pytest.approx(0.75)  # the paper's 3 px at 256, scaled
    assert disk_radius_px(64, min_radius_px=2.0) == pytest.approx(2.0)
    assert disk_radius_px(256, min_radius_px=2.0) == pytest.approx(3.0)  # a floor, never a cap
    landmarks = torch.tensor([[[0.5, 0.5]]])  # centre of a 64 px crop, on a pixel corner
    include = torch.ones(1, 1, dtype=torch.bool)
    faithful = landmark_disk_mask(landmarks, include, 64)
    floored = landmark_disk_mask(landmarks, include, 64, min_radius_px=2.0)
    assert int(faithful.sum()) == 4          # the 4 centres at sqrt(0.5) px
    assert int(floored.sum()) == 12          # centres within 2 px of a corner: 4 + 8
    assert torch.all(floored >= faithful)
    target, _ = stage1_target("disk_mask", landmarks, torch.full((1, 1), 2), 64, min_radius_px=2.0)
    assert torch.equal(target, floored)


def test_min_disk_radius_option_leaves_default_run_ids_unchanged() -> None:
    from m3mstl.config import make_config
    from m3mstl.models import create_model
    from m3mstl.train.trainer import resolve_model_options

    default = resolve_model_options("m3mstl", make_config("m3mstl", "quick").model_options)
    assert "disk_min_radius_px" not in default  # absent at its default: the resolved config is as before
    floored = resolve_model_options("m3mstl", {**make_config("m3mstl", "quick").model_options,
                                               "disk_min_radius_px": 2.0})
    assert floored["disk_min_radius_px"] == 2.0 and {**floored, "disk_min_radius_px": None} != default
    model = create_model("m3mstl", **floored)
    assert model.options.disk_min_radius_px == 2.0
    with pytest.raises(ValueError, match="disk_min_radius_px"):
        create_model("m3mstl", backbone="resnet18", disk_min_radius_px=0)
