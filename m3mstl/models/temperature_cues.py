"""Per-landmark temperature cues: the "multi-modal" input of the M3MSTL occlusion head.

The rendered 8-bit thermal image loses the absolute temperature; the per-pixel
temperature map (degrees C, aligned with the crop) keeps it. Occluders are read
directly in it: eyeglass lenses are opaque in LWIR and show near ambient temperature
(the coldest object on the face), a face mask is several degrees below skin, and
skin itself sits in a narrow band (inner canthus about 35 C, forehead about 34 C).
What matters for an occlusion decision is therefore how a landmark's surroundings
compare with the face's own skin temperature, not the raw value.

For each landmark the module samples the map on a small square window of points
around it (bilinear, continuous pixel coordinates) and returns, all divided by
``scale_c`` (5 C) so they are of order one:

    0  point_minus_typical          T(landmark) - T_typical
    1  window_mean_minus_typical    mean over the window - T_typical
    2  window_std                   standard deviation over the window
    3  window_min_minus_typical     min over the window - T_typical
    4  window_max_minus_typical     max over the window - T_typical
    5  typical_minus_reference      T_typical - reference_skin_c (the face's overall level,
                                    which follows ambient temperature and fever)
    6  has_temperature              1 if the image has a temperature map, else 0 (not scaled)

"Typical" face temperature (our definition, the paper gives none): the median of the
temperature map over the crop's central region (the middle ``central_fraction`` of
its height and width). The crop is the face box plus a small margin, so its centre is
mostly skin; the median ignores the minority of pixels covered by glasses or a mask
and the hot spots of the canthi. Images without a temperature map get all-zero cues,
the flag included, so "no map" is distinguishable from "everything at skin level".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CUE_NAMES: tuple[str, ...] = (
    "point_minus_typical",
    "window_mean_minus_typical",
    "window_std",
    "window_min_minus_typical",
    "window_max_minus_typical",
    "typical_minus_reference",
    "has_temperature",
)
NUM_CUES = len(CUE_NAMES)


@dataclass(frozen=True)
class CueSettings:
    """How cues are sampled. Lengths are given at a 256x256 input and scale with the input size.

    Attributes:
        window_radius_256: half-width of the square sampling window, pixels at 256x256
            (6 px ~ 2.3 % of the crop: about a quarter of an eye's width).
        window_points: samples per side of the window (odd, so the centre sample is the landmark).
        central_fraction: side of the central region whose median is the typical face temperature,
            as a fraction of the crop's side.
        scale_c: degrees C that map to one unit of a cue.
        reference_skin_c: skin temperature the face's overall level is compared with.
    """

    window_radius_256: float = 6.0
    window_points: int = 5
    central_fraction: float = 0.5
    scale_c: float = 5.0
    reference_skin_c: float = 34.0

    def __post_init__(self) -> None:
        if self.window_points < 1 or self.window_points % 2 == 0:
            raise ValueError(f"window_points must be a positive odd number, got {self.window_points}")
        if not 0.0 < self.central_fraction <= 1.0:
            raise ValueError(f"central_fraction must lie in (0, 1], got {self.central_fraction}")
        if self.scale_c <= 0 or self.window_radius_256 < 0:
            raise ValueError("scale_c must be positive and window_radius_256 non-negative")


def sample_at_points(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of `maps` (B, C, H, W) at `points` (B, N, 2) normalised (x/W, y/H).

    The project's coordinate convention (pixel (r, c) centre at ((c+.5)/W, (r+.5)/H))
    is exactly grid_sample's with align_corners=False once mapped to [-1, 1]. Points off
    the map read its border. Sampling is done in float32, whatever the autocast state:
    a half-precision grid would misplace points by up to a pixel at 256x256.
    Returns (B, N, C) float32.
    """
    grid = (points.float() * 2.0 - 1.0).unsqueeze(2)  # (B, N, 1, 2)
    with torch.autocast(device_type=maps.device.type, enabled=False):
        sampled = F.grid_sample(maps.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.squeeze(3).transpose(1, 2)


def infer_has_temperature(temperature: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which images carry a real temperature map.

    Used when the caller does not say (e.g. `predict`). Loaders fill a missing map with
    zeros; a real map is never exactly 0 C everywhere, and one holding NaN is unusable.
    """
    flat = temperature.reshape(temperature.shape[0], -1)
    return torch.isfinite(flat).all(dim=1) & (flat != 0).any(dim=1)


def typical_face_temperature(temperature: torch.Tensor, central_fraction: float = 0.5) -> torch.Tensor:
    """(B,) median temperature over the central region of each crop (see the module docstring)."""
    height, width = temperature.shape[-2:]
    row0 = int(round(height * (1.0 - central_fraction) / 2.0))
    col0 = int(round(width * (1.0 - central_fraction) / 2.0))
    centre = temperature[:, 0, row0:height - row0, col0:width - col0]
    return torch.quantile(centre.reshape(centre.shape[0], -1).float(), 0.5, dim=1)


def normalised_temperature_channel(temperature: torch.Tensor | None, has_temperature: torch.Tensor,
                                   like: torch.Tensor, central_fraction: float = 0.5,
                                   scale_c: float = 5.0) -> torch.Tensor:
    """The second input channel of the 2-channel variant: (T - T_typical) / scale_c, zero without a map.

    `like` is the image (B, 1, H, W) whose shape, device and dtype the channel takes.
    """
    if temperature is None:
        return torch.zeros_like(like)
    typical = typical_face_temperature(temperature, central_fraction)
    channel = (temperature.float() - typical[:, None, None, None]) / scale_c
    channel = torch.where(has_temperature[:, None, None, None], channel, torch.zeros_like(channel))
    return channel.to(like.dtype)


def _window_offsets(settings: CueSettings, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(P*P, 2) offsets in normalised coordinates of a square window, the centre point included."""
    radius_px = settings.window_radius_256 * min(height, width) / 256.0
    steps = torch.linspace(-radius_px, radius_px, settings.window_points, device=device)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([dx.reshape(-1) / width, dy.reshape(-1) / height], dim=1)


def temperature_cues(temperature: torch.Tensor | None, landmarks: torch.Tensor,
                     has_temperature: torch.Tensor | None = None,
                     settings: CueSettings = CueSettings()) -> torch.Tensor:
    """Cues (B, N, NUM_CUES) float32 for `landmarks` (B, N, 2) normalised, from `temperature` (B, 1, H, W) C.

    `temperature` None, or `has_temperature` False for an image, gives all-zero cues.
    The result carries no gradient to the landmarks: positions are inputs, not outputs, here.
    """
    batch, num_points = landmarks.shape[:2]
    if temperature is None:
        return torch.zeros(batch, num_points, NUM_CUES, device=landmarks.device)
    if has_temperature is None:
        has_temperature = infer_has_temperature(temperature)
    height, width = temperature.shape[-2:]
    with torch.no_grad():
        # Zero the maps of images without temperature first: NaN there would survive the final mask.
        maps = temperature.float().masked_fill(~has_temperature[:, None, None, None], 0.0)
        typical = typical_face_temperature(maps, settings.central_fraction)              # (B,)
        offsets = _window_offsets(settings, height, width, landmarks.device)             # (P*P, 2)
        window_points = landmarks.detach().float()[:, :, None, :] + offsets[None, None]  # (B, N, P*P, 2)
        samples = sample_at_points(maps, window_points.reshape(batch, -1, 2))
        samples = samples.reshape(batch, num_points, -1)                                 # (B, N, P*P)
        centre = samples[..., offsets.shape[0] // 2]
        rel = samples - typical[:, None, None]
        scale = settings.scale_c
        cues = torch.stack([
            (centre - typical[:, None]) / scale,
            rel.mean(dim=-1) / scale,
            samples.std(dim=-1, unbiased=False) / scale,
            rel.amin(dim=-1) / scale,
            rel.amax(dim=-1) / scale,
            ((typical - settings.reference_skin_c) / scale)[:, None].expand(batch, num_points),
            torch.ones(batch, num_points, device=landmarks.device),
        ], dim=-1)
        return cues * has_temperature[:, None, None].to(cues.dtype)
