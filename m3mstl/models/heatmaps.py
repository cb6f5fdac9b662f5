"""Landmark heatmaps: Gaussian targets and sub-pixel decoding.

Coordinates follow the project convention (`m3mstl.data.records`): continuous pixel
coordinates, pixel (row r, column c) covers [c, c+1) x [r, r+1) and its centre is
(c + 0.5, r + 0.5). A heatmap of width W over an image of width S therefore maps a
normalised landmark x/S to heatmap coordinate x/S * W exactly, with no half-pixel
shift, and a heatmap value at (r, c) is the target evaluated at the pixel centre.

Targets: an isotropic Gaussian per landmark, peak value `peak`. Kim et al. scale the
landmark heatmaps so that training does not settle in the trivial minimum where the
network outputs zeros everywhere (the Gaussians cover a tiny fraction of the map, so
an all-zero output already has a small mean-squared error); `peak` is that scale.

Decoding ("log_parabola"): the logarithm of a Gaussian is a quadratic, so a parabola
through the log values of three neighbouring samples along x (and along y) has its
vertex exactly at the Gaussian's centre. This is the separable form of the Taylor
refinement of DARK (Zhang et al., CVPR 2020). At the border, the three samples are
shifted inwards (one-sided), which is still exact for a Gaussian. The result is
clamped to the argmax pixel's extent, where the centre of a clean Gaussian lies
anyway, so noisy maps cannot move a point by more than a pixel from the argmax.
"""
from __future__ import annotations

import torch

DECODE_METHODS = ("log_parabola", "argmax")

#: Log values are taken of max-normalised heatmaps clamped to this floor, so that
#: zero or negative predictions (a network output is not a true Gaussian) stay finite.
_LOG_FLOOR = 1e-6


def normalised_to_heatmap(landmarks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 2) landmarks as (x/S, y/S) -> heatmap pixel coordinates (continuous convention)."""
    scale = landmarks.new_tensor([float(width), float(height)])
    return landmarks * scale


def heatmap_to_normalised(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of `normalised_to_heatmap`."""
    scale = points.new_tensor([float(width), float(height)])
    return points / scale


def render_gaussian_heatmaps(centres: torch.Tensor, height: int, width: int, sigma: float,
                             peak: float = 1.0) -> torch.Tensor:
    """Gaussian heatmaps (B, K, H, W) for centres (B, K, 2) given in heatmap pixel coordinates.

    Value at pixel (r, c) = peak * exp(-((c + .5 - x)^2 + (r + .5 - y)^2) / (2 sigma^2)).
    """
    if centres.dim() != 3 or centres.shape[-1] != 2:
        raise ValueError(f"centres must have shape (B, K, 2), got {tuple(centres.shape)}")
    if sigma <= 0:
        raise ValueError(f"heatmap sigma must be positive, got {sigma}")
    centres = centres.float()
    xs = torch.arange(width, device=centres.device, dtype=torch.float32) + 0.5
    ys = torch.arange(height, device=centres.device, dtype=torch.float32) + 0.5
    # Separable: exp(-(dx^2 + dy^2)/2s^2) = exp(-dx^2/2s^2) * exp(-dy^2/2s^2).
    gx = torch.exp(-((xs - centres[..., 0:1]) ** 2) / (2.0 * sigma**2))  # (B, K, W)
    gy = torch.exp(-((ys - centres[..., 1:2]) ** 2) / (2.0 * sigma**2))  # (B, K, H)
    return peak * gy.unsqueeze(-1) * gx.unsqueeze(-2)


def landmark_heatmap_targets(landmarks: torch.Tensor, height: int, width: int, sigma: float,
                             peak: float = 1.0) -> torch.Tensor:
    """Targets (B, K, H, W) for normalised landmarks (B, K, 2) (the batch's `landmarks`)."""
    return render_gaussian_heatmaps(normalised_to_heatmap(landmarks.float(), height, width),
                                    height, width, sigma, peak)


@torch.no_grad()
def decode_heatmaps(heatmaps: torch.Tensor, method: str = "log_parabola") -> torch.Tensor:
    """Sub-pixel peak positions (B, K, 2) in heatmap pixel coordinates (x, y).

    method "argmax": the centre of the maximum pixel (quantised, for comparison);
    "log_parabola": see the module docstring (exact for Gaussian blobs).
    """
    if method not in DECODE_METHODS:
        raise ValueError(f"unknown heatmap decoding {method!r}; choose from {DECODE_METHODS}")
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must have shape (B, K, H, W), got {tuple(heatmaps.shape)}")
    heatmaps = heatmaps.float()
    height, width = heatmaps.shape[-2:]
    flat = heatmaps.flatten(-2)
    peak_value, peak_index = flat.max(dim=-1)
    row = torch.div(peak_index, width, rounding_mode="floor")
    col = peak_index - row * width
    x = col.float() + 0.5
    y = row.float() + 0.5
    if method == "argmax":
        return torch.stack([x, y], dim=-1)
    # Max-normalise so the log floor is relative to the peak (and the heatmap scale drops out).
    relative = heatmaps / peak_value.clamp_min(1e-12)[..., None, None]
    log_map = torch.log(relative.clamp_min(_LOG_FLOOR))
    row_profile = log_map.gather(-2, row[..., None, None].expand(*row.shape, 1, width)).squeeze(-2)
    col_profile = log_map.gather(-1, col[..., None, None].expand(*col.shape, height, 1)).squeeze(-1)
    x = x + _parabola_offset(row_profile, col)
    y = y + _parabola_offset(col_profile, row)
    # A non-positive peak means there is no blob to refine: keep the argmax centre.
    no_peak = peak_value <= 0
    x = torch.where(no_peak, col.float() + 0.5, x.clamp(col.float(), col.float() + 1.0))
    y = torch.where(no_peak, row.float() + 0.5, y.clamp(row.float(), row.float() + 1.0))
    return torch.stack([x, y], dim=-1)


def decode_heatmaps_normalised(heatmaps: torch.Tensor, method: str = "log_parabola") -> torch.Tensor:
    """`decode_heatmaps`, returned as (x/W, y/H) in [0, 1] of the heatmap (= of the input image)."""
    height, width = heatmaps.shape[-2:]
    return heatmap_to_normalised(decode_heatmaps(heatmaps, method), height, width)


def _parabola_offset(profile: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Vertex of the parabola through three log samples around `index`, relative to `index`.

    profile (..., N) are log values along one axis; the three samples are centred on
    `index` except at the ends, where the window is shifted inwards (one-sided fit).
    Returns 0 where the three samples are not concave (no peak to fit).
    """
    length = profile.shape[-1]
    if length < 3:
        return torch.zeros_like(index, dtype=torch.float32)
    middle = index.clamp(1, length - 2)
    left = profile.gather(-1, (middle - 1)[..., None]).squeeze(-1)
    centre = profile.gather(-1, middle[..., None]).squeeze(-1)
    right = profile.gather(-1, (middle + 1)[..., None]).squeeze(-1)
    curvature = left - 2.0 * centre + right
    concave = curvature < -1e-9
    vertex = torch.where(concave, (left - right) / (2.0 * torch.where(concave, curvature, -1.0)),
                         torch.zeros_like(curvature))
    return (middle - index).float() + vertex
