"""The heads that sit on the trunk: landmark regressor, occlusion classifiers, stage-1 decoder.

All occlusion heads share one call, ``head(features, positions, cues) -> logits (B, 68)``,
so the model swaps them by a config switch:

- `ViTOcclusionHead` (the paper's): one token per landmark, timm transformer blocks.
- `TokenMLPOcclusionHead` (ablation): the same tokens, the same depth of residual MLPs,
  no attention: each landmark decides alone.
- `PooledMLPOcclusionHead` (the baseline's): an MLP on globally pooled features; it sees
  neither landmark positions nor temperature.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp, trunc_normal_
from timm.models.vision_transformer import Block

from m3mstl.core.landmarks import NUM_LANDMARKS
from m3mstl.models.temperature_cues import sample_at_points


def _init_linear_trunc_normal(module: nn.Module) -> None:
    """ViT-style initialisation (as timm's VisionTransformer): truncated normal std 0.02, zero bias."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            trunc_normal_(layer.weight, std=0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class LandmarkHead(nn.Module):
    """Compact fully connected regressor ([CODE] TFD68 baseline).

    global average pool -> FC hidden[0] -> ReLU -> dropout -> FC hidden[1] -> ReLU -> dropout
    -> FC 2*num_landmarks -> sigmoid. Output (B, num_landmarks, 2): (x/S, y/S) in [0, 1].
    The last layer starts near zero (std 1e-3), so every landmark starts close to the crop
    centre while all layers still receive gradient from the first step.
    """

    def __init__(self, in_channels: int, hidden: Sequence[int] = (2048, 512), dropout: float = 0.3,
                 num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        layers: list[nn.Module] = []
        width = in_channels
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(width, 2 * num_landmarks)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        hidden = self.mlp(feature.mean(dim=(2, 3)))
        # The output layer runs in float32 even under autocast: half precision would round
        # coordinates near 0.5 to steps of 1/2048, a visible fraction of a pixel at 256 px.
        with torch.autocast(device_type=feature.device.type, enabled=False):
            coords = torch.sigmoid(self.out(hidden.float()))
        return coords.view(-1, self.num_landmarks, 2)


class MaskDecoder(nn.Module):
    """Light top-down decoder for stage 1 (mask-based pretraining), used in that stage only.

    FPN-style: the coarsest level is projected to `width` channels; at each finer level the
    running map is upsampled, a 1x1 projection of the level is added (sum, not concatenation,
    to keep it light), and a 3x3 conv-BN-ReLU refines it. The finest level's map goes through
    a 1x1 conv to `out_channels` logits, bilinearly resized to the input size.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, kernel_size=1) for c in in_channels)
        self.refine = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
            for _ in in_channels
        )
        self.classifier = nn.Conv2d(width, out_channels, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor], output_size: tuple[int, int]) -> torch.Tensor:
        running = None
        for level in reversed(range(len(features))):
            lateral = self.laterals[level](features[level])
            if running is not None:
                lateral = lateral + F.interpolate(running, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            running = self.refine[level](lateral)
        logits = self.classifier(running)
        return F.interpolate(logits, size=output_size, mode="bilinear", align_corners=False)


class LandmarkTokens(nn.Module):
    """One token per landmark = projected trunk features at the landmark + projected temperature
    cues + a learned landmark embedding (summed, as a ViT adds its position embedding).

    Trunk features are sampled bilinearly at the landmark on each selected pyramid level,
    concatenated, layer-normalised (levels differ in scale) and projected to `dim`.
    With `num_cues` 0 the token has no temperature term at all (the "no temperature" ablation).
    With `global_context`, every token also gets a projection of the trunk's globally pooled
    last level - the face as a whole: head pose, which side turns away, which occluder is
    worn - the same vector the baseline's pooled MLP decides from. Without it a token sees
    only its neighbourhood, at the few cells of a coarse pyramid at small inputs.
    With `positions`, every token also gets a projection of where its landmark lies in the crop
    (x, y): the predicted shape as a whole tells the transformer the head pose, so which side
    of the face turns away - what the learned landmark embedding alone cannot say.
    """

    def __init__(self, feature_channels: Sequence[int], levels: Sequence[int], dim: int, num_cues: int,
                 num_landmarks: int = NUM_LANDMARKS, global_context: bool = False,
                 positions: bool = False) -> None:
        super().__init__()
        self.levels = tuple(levels)
        sampled_channels = sum(feature_channels[level] for level in self.levels)
        self.feature_proj = nn.Sequential(nn.LayerNorm(sampled_channels), nn.Linear(sampled_channels, dim))
        self.context_proj = (nn.Sequential(nn.LayerNorm(feature_channels[-1]), nn.Linear(feature_channels[-1], dim))
                             if global_context else None)
        self.cue_proj = (nn.Sequential(nn.Linear(num_cues, dim), nn.GELU(), nn.Linear(dim, dim))
                         if num_cues > 0 else None)
        self.position_proj = nn.Sequential(nn.Linear(2, dim), nn.GELU(), nn.Linear(dim, dim)) if positions else None
        self.landmark_embedding = nn.Parameter(torch.zeros(1, num_landmarks, dim))
        trunc_normal_(self.landmark_embedding, std=0.02)

    def forward(self, features: Sequence[torch.Tensor], positions: torch.Tensor,
                cues: torch.Tensor | None) -> torch.Tensor:
        sampled = torch.cat([sample_at_points(features[level], positions) for level in self.levels], dim=-1)
        tokens = self.feature_proj(sampled) + self.landmark_embedding
        if self.context_proj is not None:
            tokens = tokens + self.context_proj(features[-1].mean(dim=(2, 3)))[:, None, :]
        if self.position_proj is not None:
            tokens = tokens + self.position_proj(positions.float() * 2.0 - 1.0)  # crop centre at 0
        if self.cue_proj is not None:
            if cues is None:
                raise ValueError("this occlusion head uses temperature cues but none were given")
            tokens = tokens + self.cue_proj(cues)
        return tokens


class _TokenOcclusionHead(nn.Module):
    """68 landmark tokens -> a stack of token blocks -> LayerNorm -> one logit per landmark."""

    def __init__(self, feature_channels: Sequence[int], levels: Sequence[int], dim: int, num_cues: int,
                 blocks: Sequence[nn.Module], global_context: bool = False, positions: bool = False) -> None:
        super().__init__()
        self.tokens = LandmarkTokens(feature_channels, levels, dim, num_cues, global_context=global_context,
                                     positions=positions)
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.LayerNorm(dim)
        self.logit = nn.Linear(dim, 1)
        _init_linear_trunc_normal(self)

    def forward(self, features: Sequence[torch.Tensor], positions: torch.Tensor,
                cues: torch.Tensor | None) -> torch.Tensor:
        tokens = self.blocks(self.tokens(features, positions, cues))
        return self.logit(self.norm(tokens)).squeeze(-1)


class ViTOcclusionHead(_TokenOcclusionHead):
    """The paper's occlusion classifier: a Vision Transformer over the 68 landmark tokens.

    Attention lets a landmark's decision use its neighbours (glasses hide all six points
    of an eye together, a mask the whole lower face). Output: one logit per landmark,
    positive = occluded.
    """

    def __init__(self, feature_channels: Sequence[int], levels: Sequence[int], dim: int = 128, depth: int = 3,
                 num_heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.1, num_cues: int = 0,
                 global_context: bool = False, positions: bool = False) -> None:
        blocks = [Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, proj_drop=dropout) for _ in range(depth)]
        super().__init__(feature_channels, levels, dim, num_cues, blocks, global_context, positions)


class _ResidualMlp(nn.Module):
    """Pre-norm residual MLP: a transformer block with its attention removed."""

    def __init__(self, dim: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), drop=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class TokenMLPOcclusionHead(_TokenOcclusionHead):
    """Ablation: the ViT head's tokens (temperature cues included) through residual MLPs, no attention."""

    def __init__(self, feature_channels: Sequence[int], levels: Sequence[int], dim: int = 128, depth: int = 3,
                 mlp_ratio: float = 4.0, dropout: float = 0.1, num_cues: int = 0,
                 global_context: bool = False, positions: bool = False) -> None:
        blocks = [_ResidualMlp(dim, mlp_ratio, dropout) for _ in range(depth)]
        super().__init__(feature_channels, levels, dim, num_cues, blocks, global_context, positions)


class PooledMLPOcclusionHead(nn.Module):
    """Baseline occlusion head: global average pool of the last level -> FC -> ReLU -> dropout -> FC 68.

    It ignores `positions` and `cues`: the baseline has no temperature and no landmark tokens.
    """

    def __init__(self, in_channels: int, hidden: int = 512, dropout: float = 0.3,
                 num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_landmarks))

    def forward(self, features: Sequence[torch.Tensor], positions: torch.Tensor | None = None,
                cues: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(features[-1].mean(dim=(2, 3)))
