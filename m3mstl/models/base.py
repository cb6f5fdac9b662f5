"""The interface every trainable model offers the generic trainer.

The trainer knows nothing about a family's losses or what a stage freezes: it asks the
model. A batch is the dict produced by `m3mstl.data.dataset.ThermalFaceDataset`
(image, temperature, landmarks normalised to [0, 1], visibility, occluded, labelled,
occluder_mask, pose, rotation, ...), already moved to the model's device.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn as nn


def predict_batch(model, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """model.predict with the batch's explicit has_temperature flags where the family takes them."""
    if "has_temperature" in batch and "has_temperature" in inspect.signature(model.predict).parameters:
        return model.predict(batch["image"], batch["temperature"], has_temperature=batch["has_temperature"])
    return model.predict(batch["image"], batch["temperature"])


class CurriculumModel(nn.Module):
    """Base class: a model trained by a sequence of named stages."""

    #: Stage names this family understands, in curriculum order.
    STAGES: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.stage: str | None = None
        self.progress: float = 0.0  # fraction of the current stage done, for schedules

    def set_stage(self, stage: str) -> None:
        """Freeze and unfreeze parameters for `stage` (frozen batch-norm layers stay in eval mode)."""
        if stage not in self.STAGES:
            raise ValueError(f"{type(self).__name__} has no stage {stage!r}; stages: {self.STAGES}")
        self.stage = stage

    def set_progress(self, fraction: float) -> None:
        """Called by the trainer each step with the fraction of the stage completed."""
        self.progress = float(fraction)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def training_loss(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, dict[str, float]]:
        """Run the forward pass for `stage` and return (loss, named loss parts for logging)."""
        raise NotImplementedError

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(stage loss, predicted landmarks (B, 68, 2)) on a batch, in eval mode, for the
        trainer's per-epoch validation. This default runs two passes; a family whose loss
        pass already predicts the landmarks returns them from that one pass."""
        loss, _ = self.training_loss(batch, stage)
        return loss, predict_batch(self, batch)["landmarks"]

    @torch.no_grad()
    def predict(self, image: torch.Tensor, temperature: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Inference: landmarks (B, 68, 2) normalised to [0, 1] of the input, occlusion_prob (B, 68);
        pose models add rotation (B, 3, 3) and pose (B, 3) yaw/pitch/roll in degrees."""
        raise NotImplementedError
