"""Reading a body temperature at the inner canthi from a radiometric map and 68 landmarks.

Fever screening reads the inner canthi (core.landmarks.INNER_CANTHI = 39, 42), the hottest and
most core-coupled facial skin, as the MAXIMUM of the temperature map in a small window around
each canthus: a located point is never exactly on the hottest pixel. The window can be sized
from the face (a fraction of the outer-eye-corner distance), so the same region is read at any
resolution. The study of these readings under occlusion is `m3mstl.studies.thermometry`
(docs/thermometry.md).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from m3mstl.core.landmarks import INNER_CANTHI, OUTER_EYE_CORNERS


class ThermometryInputError(ValueError):
    """Inputs a temperature reading cannot be taken from."""


def window_max(temperature_map: np.ndarray, point_xy: Sequence[float], window_px: int) -> float:
    """Maximum of a (H, W) map in a window_px x window_px window centred on a point's pixel.

    The point is in continuous pixel coordinates (pixel (r, c) covers [c, c+1) x [r, r+1)),
    so it lies in pixel (floor(y), floor(x)). The window is clipped to the map; NaN pixels
    are ignored; NaN is returned when no pixel of the window lies on the map (or the point
    itself is not finite).
    """
    if window_px < 1 or window_px % 2 == 0:
        raise ThermometryInputError(f"window_px must be a positive odd number of pixels, got {window_px}")
    x, y = float(point_xy[0]), float(point_xy[1])
    if not (np.isfinite(x) and np.isfinite(y)):
        return float("nan")
    height, width = temperature_map.shape
    half = window_px // 2
    row, col = int(np.floor(y)), int(np.floor(x))
    top, bottom = max(row - half, 0), min(row + half + 1, height)
    left, right = max(col - half, 0), min(col + half + 1, width)
    if top >= bottom or left >= right:
        return float("nan")
    window = temperature_map[top:bottom, left:right]
    if np.isnan(window).all():
        return float("nan")
    return float(np.nanmax(window))


def canthus_maxima(temperature_map: np.ndarray, points: np.ndarray, window_px: int) -> np.ndarray:
    """(2,) window maxima of one map at the inner canthi (39, 42) of its (68, 2) points."""
    return np.array([window_max(temperature_map, points[k], window_px) for k in INNER_CANTHI])


def face_scaled_window(landmarks: np.ndarray, fraction: float) -> int:
    """An odd window side in pixels: `fraction` of the outer-eye-corner distance of (68, 2) landmarks."""
    if fraction <= 0:
        raise ThermometryInputError(f"window_fraction must be positive, got {fraction}")
    span = float(np.linalg.norm(np.asarray(landmarks)[OUTER_EYE_CORNERS[0]] - np.asarray(landmarks)[OUTER_EYE_CORNERS[1]]))
    side = int(round(fraction * span)) if np.isfinite(span) else 1
    return max(1, side + (1 - side % 2))
