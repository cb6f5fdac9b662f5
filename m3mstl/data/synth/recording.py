"""How the generator writes numbers: rounded so one dataset is the same bytes on every CPU
(`recorded`, used by the face generator `generate` and the scene generator `scenes`)."""
from __future__ import annotations

from typing import Any

import numpy as np


def recorded(value: Any) -> Any:
    """A number (or every number in an array, list or mapping) as the generator records it: 4 decimals
    from magnitude 1 up (1e-4 px, mm, degrees C or degrees), 6 below (rotation-matrix entries).

    The float64 render differs between CPUs in its last bits (~1e-13 at these magnitudes: the
    vectorised exp/sin/cos NumPy picks per CPU), and so would any digit written at that precision.
    Rounded this coarsely, such a difference changes a written number only if it lies within ~1e-13
    of a rounding boundary, about once in 1e9 numbers, so one dataset is the same bytes everywhere."""
    if isinstance(value, dict):
        return {key: recorded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(recorded(item) for item in value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return np.where(np.abs(value) >= 1.0, np.round(value, 4), np.round(value, 6))
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        return float(np.round(value, 4 if abs(value) >= 1.0 else 6))
    return value
