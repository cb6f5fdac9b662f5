"""Kim et al.'s multitask stacked hourglass: landmarks, head pose and occlusion in one network.

Kim, Roh, Kim, "Facial Landmark, Head Pose, and Occlusion Analysis using Multitask
Stacked Hourglass", IEEE Access 11 (2023). The paper's full text is not available to
this project (see docs/paper.md §3); its abstract fixes the parts
built here, and every detail it leaves open is an option of `HourglassOptions` whose
docstring says what was chosen and why:

- a 2-stacked hourglass (Newell et al. 2016) on the single-channel thermal image, with
  a stem that brings the input to S/4 and intermediate supervision on every stack;
- three task heads per stack: 68 landmark heatmaps at S/4 (decoded to sub-pixel
  coordinates, `m3mstl.models.heatmaps`), occlusion (a per-pixel occluder segmentation
  and per-landmark occluded/visible logits from features pooled under each landmark's
  heatmap) and head pose;
- the feature pyramid fusion (FPF) module: decoder features from several hourglass
  levels (several receptive fields) fused for the heads (`use_fpf`);
- the inter-level occlusion-aware fusion module: stack k's occlusion prediction fused
  into stack k+1's input (`use_occlusion_fusion`);
- the gimbal-lock-free pose head: a 6D output mapped to a rotation matrix by
  Gram-Schmidt and trained with the geodesic loss (`pose_head="6d"`), or the ablation
  with three Euler angles and an L1 loss (`pose_head="euler"`);
- landmark heatmap scaling (`heatmap_scale`, the Gaussian target's peak value);
- 2-stage training: STAGES = ("multitask", "landmark_finetune").

The input image is the single-channel thermal view in [0, 1]; the temperature map is
accepted by `predict` for interface compatibility and not used (this is the RGB-era
comparison system, kept free of the temperature modality M3MSTL adds).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from m3mstl.core.landmarks import NUM_LANDMARKS
from m3mstl.models.base import CurriculumModel
from m3mstl.models.heatmaps import DECODE_METHODS, decode_heatmaps_normalised, landmark_heatmap_targets
from m3mstl.models.registry import register_model, reject_unknown_options
from m3mstl.models.rotation import (
    IDENTITY_6D, euler_from_rotation, geodesic_loss, rotation_from_6d, rotation_from_euler, wrap_degrees,
)

POSE_HEADS = ("6d", "euler")
FINETUNE_TRAINABLE = ("landmark_heads", "last_stack", "trunk")

# Number of occlusion cue channels the fusion module reads: occluder probability,
# occluded-landmark map, visible-landmark map (see `_occlusion_cues`).
_OCCLUSION_CUE_CHANNELS = 3


@dataclass
class HourglassOptions:
    """Options of the `hourglass` model; defaults train at 64-96 px on 2 CPU cores in minutes."""

    channels: int = 64
    """Feature width of every hourglass level. Newell et al. use 256; 64 keeps a 2-stack
    network at 64x64 input near 1 GFLOP per image so it trains on a CPU."""

    depth: int = 3
    """Hourglass depth (number of 2x poolings inside one hourglass). 3 takes a 16x16 map
    (64 px input) to 2x2; Newell et al. use 4 at 64x64 maps (256 px input). The input's
    S/4 must be at least 2**depth."""

    num_stacks: int = 2
    """Stacked hourglasses; the paper uses 2. Every stack carries all heads and is supervised."""

    blocks_per_level: int = 1
    """Residual blocks per hourglass level (Newell et al. use 1 per branch)."""

    use_fpf: bool = True
    """Feature pyramid fusion: the heads read a fusion of the decoder features of all
    hourglass levels (upsampled to S/4) instead of the top level only (ablation switch)."""

    use_occlusion_fusion: bool = True
    """Inter-level occlusion-aware fusion: stack k's occluder probability map and its
    per-landmark occlusion probabilities (spread under the landmark heatmaps) gate and
    enrich the features passed to stack k+1 (ablation switch)."""

    pose_head: str = "6d"
    """"6d": 6D output -> Gram-Schmidt rotation matrix, geodesic loss (Zhou et al. 2019);
    "euler": yaw, pitch, roll regressed directly with an L1 loss (the ablation)."""

    heatmap_scale: float = 10.0
    """Peak value of the Gaussian landmark targets (1 = no scaling). At S/4 = 16 px a
    sigma-1 Gaussian covers ~2 % of the map, so predicting zeros everywhere already has
    a tiny MSE; scaling the peak makes that minimum expensive. The paper's value is not
    known; 10 is the low end of the usual 10-100 range and keeps the heatmap loss on the
    scale of the other losses at initialisation."""

    heatmap_sigma: float = 1.0
    """Gaussian sigma in heatmap (S/4) pixels, i.e. 4 input pixels."""

    decode: str = "log_parabola"
    """Heatmap decoding: "log_parabola" (sub-pixel, exact for Gaussians) or "argmax"."""

    visibility_pool_sharpness: float = 5.0
    """Per-landmark features are pooled with a spatial softmax of the predicted heatmap
    divided by heatmap_scale and multiplied by this; 5 weights the peak e^5 ~ 150 times
    the background. The heatmap is detached here so the visibility loss cannot bend the
    landmark heatmaps towards features that suit the occlusion classifier."""

    visibility_hidden: int = 64
    """Width of the shared hidden layer of the per-landmark visibility classifier."""

    pose_hidden: int = 128
    """Width of the pose head's hidden fully connected layer."""

    landmark_weight: float = 1.0
    """Weight of the heatmap MSE (mean over pixels and labelled landmarks)."""

    occluder_weight: float = 1.0
    """Weight of the per-pixel occluder segmentation BCE (images with an occluder mask)."""

    visibility_weight: float = 1.0
    """Weight of the per-landmark occluded/visible BCE (labelled landmarks)."""

    pose_weight: float = 1.0
    """Weight of the pose loss (geodesic angle in radians, or mean L1 of Euler angles in radians)."""

    intermediate_weight: float = 1.0
    """Loss weight of every stack but the last (intermediate supervision; Newell et al. use 1)."""

    finetune_trainable: str = "last_stack"
    """What the landmark_finetune stage trains (the loss there is the landmark loss only):
    "landmark_heads": the heatmap heads only (occlusion and pose outputs stay exactly as
    after multitask training); "last_stack": the last hourglass, its FPF, feature layer
    and heatmap head (the stem and first stack, whose occlusion prediction feeds the
    fusion, stay fixed); "trunk": everything except the occlusion and pose heads. The
    paper fine-tunes "the landmark task"; which layers it unfreezes is not known."""

    def validate(self) -> None:
        if self.pose_head not in POSE_HEADS:
            raise ValueError(f"hourglass option pose_head={self.pose_head!r}; choose from {POSE_HEADS}")
        if self.finetune_trainable not in FINETUNE_TRAINABLE:
            raise ValueError(f"hourglass option finetune_trainable={self.finetune_trainable!r}; "
                             f"choose from {FINETUNE_TRAINABLE}")
        if self.decode not in DECODE_METHODS:
            raise ValueError(f"hourglass option decode={self.decode!r}; choose from {DECODE_METHODS}")
        for name in ("channels", "depth", "num_stacks", "blocks_per_level", "visibility_hidden", "pose_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"hourglass option {name} must be >= 1, got {getattr(self, name)}")
        if self.channels % 2:
            raise ValueError(f"hourglass option channels must be even (bottleneck halves it), got {self.channels}")
        if self.heatmap_scale <= 0 or self.heatmap_sigma <= 0:
            raise ValueError("hourglass options heatmap_scale and heatmap_sigma must be positive")
        if self.use_occlusion_fusion and self.num_stacks < 2:
            raise ValueError("use_occlusion_fusion needs num_stacks >= 2 (it feeds one stack into the next)")


# --- building blocks ------------------------------------------------------------------

class Residual(nn.Module):
    """Pre-activation bottleneck residual block (Newell et al.): BN-ReLU-conv 1x1, 3x3, 1x1."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True), nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _residuals(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[Residual(channels, channels) for _ in range(count)])


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class Stem(nn.Module):
    """1-channel S x S image -> channels x S/4 x S/4 (conv 7x7 stride 2, residual, max-pool, residuals)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            _conv_bn_relu(1, channels // 2, kernel=7, stride=2),
            Residual(channels // 2, channels),
            nn.MaxPool2d(2),
            Residual(channels, channels),
            Residual(channels, channels),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


class Hourglass(nn.Module):
    """One hourglass; returns its output and the decoder features of every level.

    levels[0] is the output (full S/4 resolution), levels[d] the decoder feature at
    1/2**d of it, levels[depth] the bottleneck: the pyramid the FPF module fuses.
    """

    def __init__(self, channels: int, depth: int, blocks: int) -> None:
        super().__init__()
        self.skips = nn.ModuleList([_residuals(channels, blocks) for _ in range(depth)])
        self.downs = nn.ModuleList([_residuals(channels, blocks) for _ in range(depth)])
        self.bottom = _residuals(channels, blocks)
        self.ups = nn.ModuleList([_residuals(channels, blocks) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for skip, down in zip(self.skips, self.downs):
            skips.append(skip(x))
            # ceil_mode and size-matched upsampling let odd map sizes (e.g. 24 -> 12 -> 6 -> 3) work.
            x = down(F.max_pool2d(x, 2, ceil_mode=True))
        x = self.bottom(x)
        levels = [x]
        for level in reversed(range(len(skips))):
            x = self.ups[level](x)
            x = F.interpolate(x, size=skips[level].shape[-2:], mode="nearest") + skips[level]
            levels.append(x)
        levels.reverse()
        return levels[0], levels


class FeaturePyramidFusion(nn.Module):
    """Fuse the hourglass decoder pyramid (several receptive fields) at full resolution.

    Each level gets a 1x1 lateral projection, is upsampled bilinearly to S/4, the
    levels are concatenated and mixed by a 3x3 convolution; the result is added to the
    top level, so the module refines rather than replaces the hourglass output.
    """

    def __init__(self, channels: int, num_levels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList([_conv_bn_relu(channels, channels // 2) for _ in range(num_levels)])
        self.mix = _conv_bn_relu(num_levels * (channels // 2), channels, kernel=3)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        size = levels[0].shape[-2:]
        projected = [F.interpolate(lateral(level), size=size, mode="bilinear", align_corners=False)
                     if level.shape[-2:] != size else lateral(level)
                     for lateral, level in zip(self.laterals, levels)]
        return levels[0] + self.mix(torch.cat(projected, dim=1))


class OcclusionAwareFusion(nn.Module):
    """Inter-level occlusion-aware fusion: stack k's occlusion prediction into stack k+1.

    The cue maps (occluder probability, occluded-landmark map, visible-landmark map)
    are encoded by a 3x3 convolution; a sigmoid gate computed from the features and the
    encoded cues decides how much of each stack-k feature to pass on (features under an
    occluder are unreliable), and the encoded cues themselves are passed on too, so the
    next stack knows where the occluders are. Returns a term added to stack k+1's input.
    """

    def __init__(self, channels: int, cue_channels: int = _OCCLUSION_CUE_CHANNELS) -> None:
        super().__init__()
        self.encode = _conv_bn_relu(cue_channels, channels, kernel=3)
        self.gate = nn.Conv2d(2 * channels, channels, 1)
        self.project = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, features: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
        encoded = self.encode(cues.to(features.dtype))
        gate = torch.sigmoid(self.gate(torch.cat([features, encoded], dim=1)))
        return self.project(torch.cat([gate * features, encoded], dim=1))


class VisibilityHead(nn.Module):
    """Per-landmark occluded-vs-visible logits from features pooled under each heatmap.

    The pooled feature vector (C channels plus the pooled occluder probability) goes
    through a shared hidden layer, then a per-landmark linear classifier (landmark k
    has its own weights: a jaw point and an eye corner are occluded by different things).
    """

    def __init__(self, channels: int, hidden: int, num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(channels + 1, hidden), nn.ReLU(inplace=True))
        self.weight = nn.Parameter(torch.randn(num_landmarks, hidden) / hidden**0.5)
        self.bias = nn.Parameter(torch.zeros(num_landmarks))

    def forward(self, features: torch.Tensor, occluder_prob: torch.Tensor,
                attention: torch.Tensor) -> torch.Tensor:
        """features (B,C,H,W), occluder_prob (B,1,H,W), attention (B,K,H*W) summing to 1 -> (B,K)."""
        attention = attention.to(features.dtype)
        pooled = torch.einsum("bkn,bcn->bkc", attention, features.flatten(2))
        pooled_occluder = torch.einsum("bkn,bcn->bkc", attention, occluder_prob.to(features.dtype).flatten(2))
        hidden = self.shared(torch.cat([pooled, pooled_occluder], dim=-1))
        return (hidden * self.weight).sum(-1) + self.bias


class PoseHead(nn.Module):
    """Head pose from the stack features: stride-2 conv, 4x4 average pool, two FC layers.

    The 4x4 pooled grid (rather than a global pool) keeps where the face parts are,
    which is what pose is. The last layer starts near zero with the bias at the
    identity rotation (6D) or zero angles (Euler): the initial prediction is a frontal
    face, the mode of the pose distribution, instead of a random rotation.
    """

    def __init__(self, channels: int, hidden: int, representation: str) -> None:
        super().__init__()
        outputs = 6 if representation == "6d" else 3
        self.reduce = _conv_bn_relu(channels, channels, kernel=3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, hidden), nn.ReLU(inplace=True))
        self.out = nn.Linear(hidden, outputs)
        nn.init.normal_(self.out.weight, std=1e-3)
        with torch.no_grad():
            self.out.bias.copy_(torch.tensor(IDENTITY_6D if outputs == 6 else (0.0, 0.0, 0.0)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc(self.pool(self.reduce(features))))


# --- the model --------------------------------------------------------------------------

class MultitaskHourglass(CurriculumModel):
    """Kim et al.'s stacked hourglass with landmark, occlusion and head-pose heads."""

    STAGES = ("multitask", "landmark_finetune")

    def __init__(self, options: HourglassOptions) -> None:
        super().__init__()
        options.validate()
        self.options = options
        self.config: dict[str, Any] = dataclasses.asdict(options)
        c, n = options.channels, options.num_stacks
        self.stem = Stem(c)
        self.hourglasses = nn.ModuleList([Hourglass(c, options.depth, options.blocks_per_level) for _ in range(n)])
        if options.use_fpf:
            self.fpf = nn.ModuleList([FeaturePyramidFusion(c, options.depth + 1) for _ in range(n)])
        self.stack_features = nn.ModuleList([nn.Sequential(Residual(c, c), _conv_bn_relu(c, c)) for _ in range(n)])
        self.heatmap_heads = nn.ModuleList([nn.Conv2d(c, NUM_LANDMARKS, 1) for _ in range(n)])
        self.occluder_heads = nn.ModuleList([nn.Conv2d(c, 1, 1) for _ in range(n)])
        self.visibility_heads = nn.ModuleList([VisibilityHead(c, options.visibility_hidden) for _ in range(n)])
        self.pose_heads = nn.ModuleList([PoseHead(c, options.pose_hidden, options.pose_head) for _ in range(n)])
        # Re-injection of stack k's features and heatmaps into stack k+1 (Newell et al.).
        self.merge_features = nn.ModuleList([nn.Conv2d(c, c, 1) for _ in range(n - 1)])
        self.merge_heatmaps = nn.ModuleList([nn.Conv2d(NUM_LANDMARKS, c, 1) for _ in range(n - 1)])
        if options.use_occlusion_fusion:
            self.occlusion_fusion = nn.ModuleList([OcclusionAwareFusion(c) for _ in range(n - 1)])
        self._frozen_modules: list[nn.Module] = []

    # -- forward ----------------------------------------------------------------------

    def forward(self, image: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Per-stack outputs, last stack last. Each dict holds heatmaps (B,68,S/4,S/4),
        occluder_logits (B,1,S/4,S/4), visibility_logits (B,68) (positive = occluded),
        pose_raw (B,6|3), rotation (B,3,3) and pose (B,3) yaw/pitch/roll in degrees."""
        self._check_image(image)
        x = self.stem(image)
        outputs = []
        for k in range(self.options.num_stacks):
            top, levels = self.hourglasses[k](x)
            fused = self.fpf[k](levels) if self.options.use_fpf else top
            features = self.stack_features[k](fused)
            out = self._heads(k, features)
            outputs.append(out)
            if k < self.options.num_stacks - 1:
                passed = self.merge_features[k](features) + self.merge_heatmaps[k](out["heatmaps"])
                if self.options.use_occlusion_fusion:
                    passed = passed + self.occlusion_fusion[k](features, _occlusion_cues(out))
                x = x + passed
        return outputs

    def _heads(self, k: int, features: torch.Tensor) -> dict[str, torch.Tensor]:
        heatmaps = self.heatmap_heads[k](features)
        occluder_logits = self.occluder_heads[k](features)
        scale = self.options.visibility_pool_sharpness / self.options.heatmap_scale
        attention = torch.softmax(heatmaps.detach().float().flatten(2) * scale, dim=-1)
        visibility_logits = self.visibility_heads[k](features, torch.sigmoid(occluder_logits), attention)
        pose_raw = self.pose_heads[k](features)
        if self.options.pose_head == "6d":
            rotation = rotation_from_6d(pose_raw)
            pose = euler_from_rotation(rotation)
        else:
            pose = wrap_degrees(torch.rad2deg(pose_raw.float()))
            rotation = rotation_from_euler(pose)
        return {"heatmaps": heatmaps, "occluder_logits": occluder_logits, "attention": attention,
                "visibility_logits": visibility_logits, "pose_raw": pose_raw, "rotation": rotation, "pose": pose}

    def _check_image(self, image: torch.Tensor) -> None:
        if image.dim() != 4 or image.shape[1] != 1 or image.shape[2] != image.shape[3]:
            raise ValueError(f"hourglass expects a (B, 1, S, S) thermal image, got shape {tuple(image.shape)}")
        size = image.shape[-1]
        if size % 4 or size // 4 < 2**self.options.depth:
            raise ValueError(f"hourglass input size {size} must be a multiple of 4 with S/4 >= 2**depth "
                             f"= {2**self.options.depth} (depth={self.options.depth})")

    # -- training ---------------------------------------------------------------------

    def training_loss(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, dict[str, float]]:
        """Sum over stacks (non-final stacks weighted by intermediate_weight) of the stage's losses.

        multitask: landmark heatmap MSE + occluder BCE + visibility BCE + pose loss;
        landmark_finetune: the landmark heatmap MSE only. The returned parts are the
        last stack's unweighted terms (pose in radians) and the optimised `total`.
        """
        if stage not in self.STAGES:
            raise ValueError(f"{type(self).__name__} has no stage {stage!r}; stages: {self.STAGES}")
        outputs = self(batch["image"])
        total = outputs[-1]["heatmaps"].new_zeros((), dtype=torch.float32)
        parts: dict[str, float] = {}
        for k, out in enumerate(outputs):
            terms = self._task_losses(out, batch, landmark_only=stage == "landmark_finetune")
            stack_weight = 1.0 if k == len(outputs) - 1 else self.options.intermediate_weight
            total = total + stack_weight * sum(self._weight(name) * value for name, value in terms.items())
            if k == len(outputs) - 1:
                parts = {name: float(value.detach()) for name, value in terms.items()}
        parts["total"] = float(total.detach())
        return total, parts

    def _weight(self, name: str) -> float:
        return getattr(self.options, f"{name}_weight")

    def _task_losses(self, out: dict[str, torch.Tensor], batch: dict[str, Any],
                     landmark_only: bool) -> dict[str, torch.Tensor]:
        terms = {"landmark": self._landmark_loss(out["heatmaps"], batch)}
        if not landmark_only:
            terms["occluder"] = _occluder_loss(out["occluder_logits"], batch)
            terms["visibility"] = _visibility_loss(out["visibility_logits"], batch)
            terms["pose"] = self._pose_loss(out, batch)
        return terms

    def landmark_targets(self, landmarks: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Heatmap targets (B,68,H,W) for normalised landmarks: Gaussians of peak `heatmap_scale`."""
        return landmark_heatmap_targets(landmarks, height, width, self.options.heatmap_sigma,
                                        self.options.heatmap_scale)

    def _landmark_loss(self, heatmaps: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """MSE to scaled Gaussian targets, averaged over pixels and labelled landmarks."""
        heatmaps = heatmaps.float()
        target = self.landmark_targets(batch["landmarks"], *heatmaps.shape[-2:])
        per_landmark = ((heatmaps - target) ** 2).mean(dim=(-2, -1))
        return _masked_mean(per_landmark, batch["labelled"])

    def _pose_loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        has_pose = batch["has_pose"]
        if self.options.pose_head == "6d":
            return geodesic_loss(out["rotation"], batch["rotation"], has_pose)
        # Euler ablation: L1 on the angle differences wrapped to [-180, 180), in radians
        # so its scale matches the geodesic loss.
        error = torch.deg2rad(wrap_degrees(torch.rad2deg(out["pose_raw"].float()) - batch["pose"].float()))
        return _masked_mean(error.abs().mean(dim=-1), has_pose)

    # -- stages -----------------------------------------------------------------------

    def set_stage(self, stage: str) -> None:
        """multitask: everything trains. landmark_finetune: only `finetune_trainable` parts train;
        frozen modules' batch-norm layers are kept in eval mode (running statistics fixed)."""
        super().set_stage(stage)
        if stage == "multitask":
            trainable: list[nn.Module] = [self]
        else:
            trainable = self._finetune_modules()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        for module in trainable:
            for parameter in module.parameters():
                parameter.requires_grad_(True)
        self._frozen_modules = [m for m in self.modules()
                                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
                                and not any(p.requires_grad for p in m.parameters())]
        self.train(self.training)

    def _finetune_modules(self) -> list[nn.Module]:
        choice = self.options.finetune_trainable
        if choice == "landmark_heads":
            return list(self.heatmap_heads)
        if choice == "last_stack":
            modules = [self.hourglasses[-1], self.stack_features[-1], self.heatmap_heads[-1]]
            return modules + ([self.fpf[-1]] if self.options.use_fpf else [])
        task_heads = {id(m) for heads in (self.occluder_heads, self.visibility_heads, self.pose_heads)
                      for m in heads.modules()}
        return [m for m in self.modules() if id(m) not in task_heads and not list(m.children())]

    def train(self, mode: bool = True) -> "MultitaskHourglass":
        super().train(mode)
        for module in self._frozen_modules:
            module.eval()
        return self

    # -- inference ----------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, image: torch.Tensor, temperature: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Landmarks (B,68,2) in [0,1], occlusion_prob (B,68), rotation (B,3,3), pose (B,3) degrees.

        Runs in eval mode (batch-norm running statistics) and restores the previous mode.
        `temperature` is ignored: this system sees the thermal image only.
        """
        was_training = self.training
        self.eval()
        try:
            last = self(image)[-1]
        finally:
            self.train(was_training)
        landmarks = decode_heatmaps_normalised(last["heatmaps"], self.options.decode).clamp(0.0, 1.0)
        return {"landmarks": landmarks,
                "occlusion_prob": torch.sigmoid(last["visibility_logits"].float()),
                "rotation": last["rotation"].float(),
                "pose": last["pose"].float()}


def _occlusion_cues(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, 3, H, W): occluder probability, and the landmark heatmap attention (each
    landmark's blob scaled to peak 1) weighted by P(occluded) and by P(visible), max over landmarks."""
    occluder_prob = torch.sigmoid(out["occluder_logits"].float())
    attention = out["attention"]
    blobs = attention / attention.amax(dim=-1, keepdim=True).clamp_min(1e-12)
    p_occluded = torch.sigmoid(out["visibility_logits"].float()).unsqueeze(-1)
    occluded_map = (blobs * p_occluded).amax(dim=1)
    visible_map = (blobs * (1.0 - p_occluded)).amax(dim=1)
    maps = torch.stack([occluded_map, visible_map], dim=1).unflatten(-1, occluder_prob.shape[-2:])
    return torch.cat([occluder_prob, maps], dim=1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask`; a graph-connected zero when nothing is selected."""
    mask = mask.to(values.device, torch.float32)
    while mask.dim() < values.dim():
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(values)
    return (values.float() * mask).sum() / mask.sum().clamp_min(1.0)


def _occluder_loss(logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """Per-pixel BCE to the occluder mask area-downsampled to S/4 (soft targets at the edges)."""
    logits = logits.float()
    target = F.interpolate(batch["occluder_mask"].float(), size=logits.shape[-2:], mode="area")
    per_image = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2, 3))
    return _masked_mean(per_image, batch["has_occluder_mask"])


def _visibility_loss(logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """BCE of occluded (1) vs visible (0) on labelled landmarks."""
    per_landmark = F.binary_cross_entropy_with_logits(logits.float(), batch["occluded"].float(), reduction="none")
    return _masked_mean(per_landmark, batch["labelled"])


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(HourglassOptions))


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Every `HourglassOptions` field, defaults filled in and validated (no network is built)."""
    reject_unknown_options("hourglass", options, OPTION_NAMES)
    resolved = HourglassOptions(**options)
    resolved.validate()
    return dataclasses.asdict(resolved)


#: Epochs per profile: (multitask, landmark_finetune).
EPOCHS: dict[str, tuple[int, int]] = {"quick": (1, 1), "default": (12, 3), "paper": (40, 10)}


def curriculum(settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Multitask training (3x the profile's rate, cosine decay where the profile says so),
    then landmark fine-tuning; epochs from `EPOCHS` (`settings` are `m3mstl.profiles.TRAINING`'s,
    with the profile's name under "profile")."""
    multitask, finetune = EPOCHS[settings["profile"]]
    common = dict(steps_per_epoch=settings["steps"], patience=settings["patience"])
    return {}, [dict(name="multitask", epochs=multitask, lr=settings["lr"] * 3, cosine_decay=settings["cosine"],
                     **common),
                dict(name="landmark_finetune", epochs=finetune, lr=settings["lr"], **common)]


# The hourglass keeps Adam without weight decay or a moving average of the weights, whatever the
# profile's recipe (issue 28). Measured on the validation split of the default data
# (`benchmarks/bench_recipe.py --model hourglass`, benchmarks/results/2026-12-07-recipe.jsonl, seed 0,
# its own 12 + 3 epochs): the shared recipe (AdamW 0.05, average 0.995, 5 % warm-up) gave median NME
# 0.0728 vs 0.0742, mean 0.0977 vs 0.0973, ROC-AUC 0.963 vs 0.963, AP 0.923 vs 0.926: no measure
# clearly better, so the simpler published recipe stays. Its own curve flattens in the multitask
# stage (validation NME 0.1125, 0.1099, 0.1100 over epochs 10-12), unlike M3MSTL's and the baseline's.
OWN_OPTIMISER = {"optimizer": "adam", "weight_decay": 0.0, "ema_decay": None}


@register_model(resolve_options=resolve_options, curriculum=curriculum, option_names=OPTION_NAMES,
                own_optimiser=OWN_OPTIMISER)
def hourglass(**options: Any) -> MultitaskHourglass:
    """Kim et al.'s multitask stacked hourglass; keyword options are `HourglassOptions` fields."""
    reject_unknown_options("hourglass", options, OPTION_NAMES)
    return MultitaskHourglass(HourglassOptions(**options))


# Hourglass ablation (Kim et al.): each auxiliary component switched off in turn, as config
# overrides (see m3mstl.config.apply_override); which of them a profile trains is
# `m3mstl.profiles.HOURGLASS_ABLATION_ROWS`.
HOURGLASS_ABLATIONS: dict[str, dict[str, Any]] = {
    "full hourglass": {},
    "no feature pyramid fusion": {"model_options.use_fpf": False},
    "no inter-level occlusion fusion": {"model_options.use_occlusion_fusion": False},
    "Euler-angle pose head": {"model_options.pose_head": "euler"},
    "no heatmap scaling": {"model_options.heatmap_scale": 1.0},
}
