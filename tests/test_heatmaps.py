"""Gaussian heatmap targets and sub-pixel decoding (m3mstl.models.heatmaps)."""
from __future__ import annotations

import math

import pytest
import torch

from m3mstl.models.heatmaps import (
    decode_heatmaps, decode_heatmaps_normalised, heatmap_to_normalised, landmark_heatmap_targets,
    normalised_to_heatmap, render_gaussian_heatmaps,
)

torch.set_num_threads(1)


def test_gaussian_is_evaluated_at_pixel_centres():
    # Centre (2.5, 1.5) is the centre of pixel (row 1, col 2).
    hm = render_gaussian_heatmaps(torch.tensor([[[2.5, 1.5]]]), height=4, width=5, sigma=1.0, peak=10.0)[0, 0]
    assert hm.shape == (4, 5)
    assert math.isclose(float(hm[1, 2]), 10.0, rel_tol=1e-6)
    assert math.isclose(float(hm[1, 3]), 10.0 * math.exp(-0.5), rel_tol=1e-6)
    assert math.isclose(float(hm[3, 0]), 10.0 * math.exp(-(4 + 4) / 2), rel_tol=1e-5)
    # Centre on the corner shared by four pixels: the four values are equal.
    hm = render_gaussian_heatmaps(torch.tensor([[[2.0, 2.0]]]), 4, 4, sigma=1.0)[0, 0]
    assert torch.allclose(hm[1:3, 1:3], torch.full((2, 2), math.exp(-0.25)), atol=1e-7)


def test_normalised_landmarks_map_to_heatmap_coordinates_exactly():
    # Input 64 px, heatmap 16: input pixel centre (c + .5) / 64 maps to (c + .5) / 4 heatmap px.
    lm = torch.tensor([[[(10 + 0.5) / 64, (33 + 0.5) / 64]]])
    hm_xy = normalised_to_heatmap(lm, 16, 16)
    assert torch.allclose(hm_xy, torch.tensor([[[10.5 / 4, 33.5 / 4]]]))
    assert torch.allclose(heatmap_to_normalised(hm_xy, 16, 16), lm)
    # The image centre (0.5, 0.5) falls on the corner between heatmap pixels 7 and 8.
    target = landmark_heatmap_targets(torch.tensor([[[0.5, 0.5]]]), 16, 16, sigma=1.0)[0, 0]
    assert torch.allclose(target[7, 7], target[8, 8]) and torch.allclose(target[7, 8], target[8, 7])
    assert int(target.flatten().argmax()) in (7 * 16 + 7, 7 * 16 + 8, 8 * 16 + 7, 8 * 16 + 8)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0])
@pytest.mark.parametrize("peak", [1.0, 50.0])
def test_decoding_recovers_sub_pixel_centres_within_a_tenth_of_a_pixel(sigma, peak):
    gen = torch.Generator().manual_seed(int(sigma * 10 + peak))
    height, width = 16, 24  # non-square on purpose
    centres = torch.rand(3, 68, 2, generator=gen) * torch.tensor([width, height])
    # Near the borders and corners: within one pixel of every edge.
    border = torch.rand(3, 20, 2, generator=gen)
    centres[:, :5] = border[:, :5]                                                  # top-left corner
    centres[:, 5:10] = torch.tensor([width, height]) - border[:, 5:10]               # bottom-right corner
    centres[:, 10:15, 0] = border[:, 10:15, 0]                                       # left edge
    centres[:, 15:20, 1] = height - border[:, 15:20, 1]                              # bottom edge
    heatmaps = render_gaussian_heatmaps(centres, height, width, sigma, peak)
    decoded = decode_heatmaps(heatmaps)
    assert (decoded - centres).abs().max() < 0.1
    # The quantised argmax is up to half a pixel off: the refinement is doing the work.
    assert (decode_heatmaps(heatmaps, "argmax") - centres).abs().max() > 0.4


def test_normalised_round_trip_through_targets():
    gen = torch.Generator().manual_seed(7)
    landmarks = torch.rand(2, 68, 2, generator=gen)
    heatmaps = landmark_heatmap_targets(landmarks, 16, 16, sigma=1.0, peak=10.0)
    decoded = decode_heatmaps_normalised(heatmaps)
    assert (decoded - landmarks).abs().max() < 0.1 / 16


def test_argmax_decoding_returns_the_pixel_centre():
    hm = torch.zeros(1, 1, 5, 6)
    hm[0, 0, 3, 4] = 1.0
    assert decode_heatmaps(hm, "argmax").tolist() == [[[4.5, 3.5]]]


def test_noisy_or_empty_heatmaps_stay_finite_and_inside_the_argmax_pixel():
    gen = torch.Generator().manual_seed(8)
    noisy = torch.randn(2, 68, 16, 16, generator=gen)
    decoded = decode_heatmaps(noisy)
    argmax = decode_heatmaps(noisy, "argmax")
    assert torch.isfinite(decoded).all()
    assert (decoded - argmax).abs().max() <= 0.5 + 1e-6
    # An all-zero / all-negative map has no peak: the argmax pixel centre is returned.
    assert decode_heatmaps(torch.zeros(1, 1, 4, 4)).tolist() == [[[0.5, 0.5]]]
    assert decode_heatmaps(-torch.ones(1, 1, 4, 4)).tolist() == [[[0.5, 0.5]]]


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match=r"\(B, K, H, W\)"):
        decode_heatmaps(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="unknown heatmap decoding"):
        decode_heatmaps(torch.zeros(1, 1, 4, 4), method="soft")
    with pytest.raises(ValueError, match="sigma"):
        render_gaussian_heatmaps(torch.zeros(1, 1, 2), 4, 4, sigma=0.0)
