"""Where tensors live: the device a run asks for, and moving a batch there.

Kept below every other layer (it needs torch only), so the trainer, inference and the
benchmarks share one definition without importing each other.
"""
from __future__ import annotations

from typing import Any

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """`"auto"`: CUDA when available, else CPU; any other string is taken as a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A collated batch with every tensor moved to `device` (other entries untouched)."""
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
