"""Losses of the M3MSTL family and the stage-1 targets they compare against.

Every loss takes a mask of what it may see: unlabelled landmarks (COCO v = 0) carry no
position and no occlusion label, so they never contribute. All losses compute in
float32 whatever the autocast state (their inputs are cast), so mixed precision on a
GPU cannot underflow them.

Coordinates follow the project convention: landmarks normalised as (x/S, y/S) with the
centre of pixel (r, c) at ((c + 0.5)/S, (r + 0.5)/S).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from m3mstl.models.heatmaps import landmark_heatmap_targets

#: Stage-1 target kinds (option `stage1_target` of the M3MSTL model).
STAGE1_TARGETS = ("disk_mask", "visible_disk_mask", "heatmaps")
#: Units in which the Wing loss measures landmark error (option `wing_units`).
WING_UNITS = ("pixels", "normalised")
#: The input size at which the paper's pixel constants (Wing w/epsilon, disk radius) are given.
REFERENCE_SIZE = 256


def _zero_like_graph(tensor: torch.Tensor) -> torch.Tensor:
    """A zero loss still attached to `tensor`'s graph (backward works, gradients are zero)."""
    return tensor.float().sum() * 0.0


# ----------------------------------------------------------------------------- landmarks
def wing(error: torch.Tensor, w: float = 10.0, epsilon: float = 2.0) -> torch.Tensor:
    """Elementwise Wing function of Feng et al. (CVPR 2018) for signed errors.

    wing(x) = w ln(1 + |x|/epsilon)   if |x| < w
              |x| - C                 otherwise, with C = w - w ln(1 + w/epsilon)
    (C makes the two pieces meet at |x| = w). Small errors get a log-shaped, steep loss
    that keeps pulling nearly-right points in; large ones an L1 loss robust to outliers.
    """
    if w <= 0 or epsilon <= 0:
        raise ValueError(f"wing needs w > 0 and epsilon > 0, got w={w}, epsilon={epsilon}")
    magnitude = error.abs()
    joint = w - w * math.log1p(w / epsilon)
    return torch.where(magnitude < w, w * torch.log1p(magnitude / epsilon), magnitude - joint)


def wing_loss(predicted: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor, image_size: int,
              w: float = 10.0, epsilon: float = 2.0, units: str = "pixels") -> torch.Tensor:
    """Wing loss between (B, L, 2) normalised landmarks, mean over labelled coordinates.

    units="pixels" (default): errors in pixels of the network input, with `w` and `epsilon`
        given at 256x256 and scaled by image_size/256, so the loss's shape relative to the
        face is the same at every input size (Wing as Feng et al. define it).
    units="normalised": `w` and `epsilon` applied to [0, 1] coordinates as the TFD68 authors'
        baseline does; errors there never exceed 1 << w, so the loss is nearly a scaled L1.
    `labelled` (B, L) bool selects the landmarks that count; none labelled gives zero.
    """
    if units not in WING_UNITS:
        raise ValueError(f"wing units must be one of {WING_UNITS}, got {units!r}")
    error = predicted.float() - target.float()
    if units == "pixels":
        scale = image_size / REFERENCE_SIZE
        per_coordinate = wing(error * image_size, w * scale, epsilon * scale)
    else:
        per_coordinate = wing(error, w, epsilon)
    weight = labelled.to(per_coordinate.dtype)[..., None].expand_as(per_coordinate)
    count = weight.sum()
    if count == 0:
        return _zero_like_graph(predicted)
    return (per_coordinate * weight).sum() / count


# ----------------------------------------------------------------------------- occlusion
def occlusion_bce(logits: torch.Tensor, occluded: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of per-landmark occlusion logits (B, L), mean over labelled landmarks.

    Positive class = occluded (COCO v == 1). Computed from logits (numerically stable, autocast-safe).
    """
    per_landmark = F.binary_cross_entropy_with_logits(logits.float(), occluded.float(), reduction="none")
    weight = labelled.to(per_landmark.dtype)
    count = weight.sum()
    if count == 0:
        return _zero_like_graph(logits)
    return (per_landmark * weight).sum() / count


# ----------------------------------------------------------------------------- stage-1 targets
def disk_radius_px(image_size: int, radius_256: float = 3.0, min_radius_px: float | None = None) -> float:
    """Disk radius in pixels at `image_size`: radius_256 scaled by image_size/256.

    Never below sqrt(0.5) px, the smallest radius that always covers a pixel centre
    (a landmark on a pixel corner is sqrt(0.5) from the four nearest centres): at tiny
    inputs (under 61 px for the default 3 px) a disk would otherwise be empty.
    `min_radius_px` (input pixels, None = off, the paper's scaling) raises that floor so
    the disks stay resolvable at small inputs: at 64 px the paper's 3 px shrink to 0.75 px,
    finer than the stage-1 decoder's stride-4 logits can draw (validation IoU 0.000 in the
    default profile); half the decoder's finest stride (2 px) is the smallest disk a stride-4
    map can place.
    """
    radius = max(radius_256 * image_size / REFERENCE_SIZE, math.sqrt(0.5))
    return radius if min_radius_px is None else max(radius, float(min_radius_px))


@torch.no_grad()
def landmark_disk_mask(landmarks: torch.Tensor, include: torch.Tensor, image_size: int,
                       radius_256: float = 3.0, min_radius_px: float | None = None) -> torch.Tensor:
    """One binary mask (B, 1, S, S): a filled disk at every included landmark ([CODE] stage-1 target).

    A pixel is in a disk when its centre lies within `disk_radius_px` of the landmark
    (continuous coordinates). Only a small window around each landmark is examined, so
    the cost does not grow with S^2 x L. Landmarks off the image draw only their on-image part.
    """
    batch, num_landmarks = landmarks.shape[:2]
    size = int(image_size)
    radius = disk_radius_px(size, radius_256, min_radius_px)
    reach = int(math.ceil(radius)) + 1
    offsets = torch.arange(-reach, reach + 1, device=landmarks.device, dtype=torch.float32)
    points = landmarks.float() * size                                       # (B, L, 2) pixels
    base = torch.floor(points)
    cols = base[..., 0, None, None] + offsets[None, None, None, :]         # (B, L, 1, K)
    rows = base[..., 1, None, None] + offsets[None, None, :, None]         # (B, L, K, 1)
    distance_sq = (cols + 0.5 - points[..., 0, None, None]) ** 2 + (rows + 0.5 - points[..., 1, None, None]) ** 2
    # A hair of tolerance: a centre exactly on the circle counts as inside, as on paper.
    inside = distance_sq <= radius * radius * (1.0 + 1e-6)
    inside &= (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    inside &= include.bool()[..., None, None]
    batch_index = torch.arange(batch, device=landmarks.device).view(batch, 1, 1, 1)
    flat = (batch_index * size * size + rows * size + cols).expand_as(inside)
    mask = torch.zeros(batch * size * size, device=landmarks.device)
    mask[flat[inside].long()] = 1.0
    return mask.view(batch, 1, size, size)


@torch.no_grad()
def landmark_heatmaps(landmarks: torch.Tensor, image_size: int, sigma_256: float = 6.0) -> torch.Tensor:
    """One Gaussian channel per landmark (B, L, S, S), peak 1 at the landmark, sigma scaled with S.

    sigma 6 px at 256x256 is the TFD68 baseline code's heatmap setting (the hourglass's targets come
    from the same renderer, `models.heatmaps`).
    """
    size = int(image_size)
    return landmark_heatmap_targets(landmarks, size, size, sigma=sigma_256 * size / REFERENCE_SIZE)


@torch.no_grad()
def stage1_target(kind: str, landmarks: torch.Tensor, visibility: torch.Tensor, image_size: int,
                  radius_256: float = 3.0, sigma_256: float = 6.0,
                  min_radius_px: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The stage-1 target and its per-channel weight.

    kind "disk_mask": one channel, disks at every labelled landmark (v > 0) - the paper's.
    kind "visible_disk_mask": one channel, disks at visible landmarks only (v == 2), so the
        trunk learns to see where a landmark is *visible*, not where it is.
    kind "heatmaps": one Gaussian channel per landmark; channels of unlabelled landmarks get
        weight 0. For the disk kinds the weight is 1 (an unlabelled landmark simply draws no disk:
        its position is unknown, so there is nothing else to exclude).
    Returns (target (B, C, S, S), weight (B, C, 1, 1)).
    """
    labelled = visibility > 0
    if kind == "disk_mask":
        target = landmark_disk_mask(landmarks, labelled, image_size, radius_256, min_radius_px)
    elif kind == "visible_disk_mask":
        target = landmark_disk_mask(landmarks, visibility == 2, image_size, radius_256, min_radius_px)
    elif kind == "heatmaps":
        target = landmark_heatmaps(landmarks, image_size, sigma_256)
        return target, labelled.float()[..., None, None]
    else:
        raise ValueError(f"stage1_target must be one of {STAGE1_TARGETS}, got {kind!r}")
    return target, torch.ones(target.shape[0], 1, 1, 1, device=target.device)


def mask_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Pixelwise binary cross-entropy of stage-1 logits (B, C, S, S) against a (soft) target.

    `weight` (B, C, 1, 1) switches channels off (unlabelled landmarks' heatmaps); the mean is
    over the pixels of the channels that count.
    """
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    if weight is None:
        return per_pixel.mean()
    weight = weight.float().expand_as(per_pixel)
    count = weight.sum()
    if count == 0:
        return _zero_like_graph(logits)
    return (per_pixel * weight).sum() / count


@torch.no_grad()
def mask_iou(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> float:
    """Intersection over union of (sigmoid(logits) > threshold) and (target > threshold); 1.0 if both empty."""
    predicted = torch.sigmoid(logits.float()) > threshold
    truth = target > threshold
    union = (predicted | truth).sum().item()
    if union == 0:
        return 1.0
    return (predicted & truth).sum().item() / union
