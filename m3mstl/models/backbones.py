"""The convolutional trunk shared by M3MSTL and its baseline: a timm backbone as a feature pyramid.

The paper's trunk is a ResNet-50 fed a single thermal channel. timm builds it with
``in_chans=1`` (it sums the RGB stem filters when weights are loaded; here nothing is
loaded: ``pretrained=False`` always, so nothing is downloaded at run time) and
``features_only=True``, which returns every stage's output: for a ResNet the strides
2, 4, 8, 16 and 32 with 64, 256, 512, 1024 and 2048 channels (ResNet-50). The
landmark head reads the last level, the stage-1 decoder all of them, and the
occlusion head samples the levels it is configured for.
"""
from __future__ import annotations

from collections.abc import Iterator

import timm
import torch
import torch.nn as nn

from m3mstl.errors import UnknownOptionError


class Trunk(nn.Module):
    """A timm backbone returning its feature pyramid (finest level first).

    Attributes:
        channels: channels of each pyramid level.
        reductions: stride of each level relative to the input.
    """

    def __init__(self, name: str = "resnet50", in_chans: int = 1) -> None:
        super().__init__()
        try:
            self.body = timm.create_model(name, pretrained=False, in_chans=in_chans, features_only=True)
        except RuntimeError as err:  # timm reports an unknown name as RuntimeError("Unknown model ...")
            raise UnknownOptionError("model_options.backbone",
                                     f"{name!r} cannot be built by timm with features_only=True: {err}") from err
        self.name = name
        self.in_chans = in_chans
        self.channels: tuple[int, ...] = tuple(self.body.feature_info.channels())
        self.reductions: tuple[int, ...] = tuple(self.body.feature_info.reduction())

    def level_of_stride(self, stride: int) -> int:
        """Index of the pyramid level with this stride; a clear error if the backbone has none."""
        if stride not in self.reductions:
            raise ValueError(f"backbone {self.name!r} has no feature level with stride {stride}; "
                             f"its strides are {self.reductions}")
        return self.reductions.index(stride)

    def levels_from_stride(self, finest_stride: int) -> list[int]:
        """Indices of the levels with stride >= `finest_stride`, which must be one of the strides."""
        first = self.level_of_stride(finest_stride)
        return list(range(first, len(self.reductions)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


def create_trunk(name: str = "resnet50", in_chans: int = 1) -> Trunk:
    """Build the trunk: `name` is any timm model supporting ``features_only`` (paper: resnet50)."""
    return Trunk(name, in_chans)


def batchnorm_modules(module: nn.Module) -> Iterator[nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer inside `module` (BatchNorm1d/2d/3d and SyncBatchNorm)."""
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            yield child


def set_batchnorm_eval(module: nn.Module) -> None:
    """Put every batch-norm layer of `module` in eval mode: running statistics stop updating.

    A frozen trunk must keep its statistics too: in train mode a BatchNorm layer updates
    running_mean/var on every forward pass even when no parameter has a gradient.
    """
    for bn in batchnorm_modules(module):
        bn.eval()
