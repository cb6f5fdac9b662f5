"""A thermal face detector that needs no training: skin-temperature segmentation with shape checks.

In a radiometric LWIR frame a face is the largest region at skin temperature (about 30-37 deg C,
docs/thermometry.md) standing out from a room at 20-26 deg C. The detector

1. estimates the room temperature as a low percentile of the frame (`room_percentile`: some
   background is seen even past a close face; clothing and hair are warmer than the room),
2. marks skin-warm pixels (at least `skin_above_room_c` above the room and at least
   `skin_floor_c`), opens them (noise, thin warm edges) and fills holes (a cold nose, glasses,
   a mask inside the face outline),
3. joins what the cold band of glasses or sunglasses cuts apart (a blob right above another, sharing
   most of its columns, and each column's gaps shorter than `lens_gap_fraction` of the face width
   filled) and removes what is narrower than `limb_fraction` of the face width and reaches into
   it (an arm: an opening by a disk of that diameter, the largest part kept),
4. splits every warm blob into head and neck: the neck is the first row, at least
   `min_head_height_ratio` head widths below the blob's top, where the blob is narrower than
   `neck_width_ratio` of the head's width above that row,
5. grows the head upward over cooler hair and downward over a mask or scarf hiding the lower
   face (pixels `hair_above_room_c` above the room that join the head, down to where that warm
   region narrows to a neck), so the box covers the visible head as a detector's box would,
   and trims what sticks out sideways over a few rows only (a warm hand or arm against the cheek
   joins the face's blob): the box's sides are the `side_quantile` and 1 - `side_quantile`
   quantiles of the skin rows' left and right edges, plus 5 % of that width,
6. cuts a box taller than `max_box_aspect` widths at that height when what it cuts off is a
   neck (narrower than the head) or no skin (a neck as wide as the jaw, or an arm beside it, hides
   the neck from step 4, and step 5 then follows neck and clothing to the frame's edge),
7. scores each candidate by shape checks (head proportions, fill of its box, a hot spot above
   the blob's median as the canthi give, a size floor), keeps those scoring >= `min_score`, and
   drops a box lying mostly (`contained_fraction` of its area) inside a larger one (a warm patch
   in the hair, a mask grown into a box of its own inside the face's).

It returns (x, y, w, h, score) boxes in continuous pixel coordinates, best first: several for
several faces, none for a frame without one. Input is a temperature map in deg C; an 8-bit view
has no absolute scale, so `detect_faces_view` maps it to a nominal range first (weaker).

`m3mstl.evaluation.detection.evaluate_detector` measures recall at IoU >= 0.5 and mean IoU against
true boxes, by occluder and pose, on generated full frames (`m3mstl synth --full-frame`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
from scipy import ndimage

from m3mstl.core.boxes import intersection
from m3mstl.detection.base import Detection, FaceFinder


#: Bump when a change to this module can move a box: boxes cached for training on the detector's own
#: boxes (`data.dataset.attach_detector_boxes`) carry it in their file name, so they are found again.
# 2: a hand joined to the head's side trimmed; neck cut at 0.65 of the head's width.
# 3: a face cut by the cold band of glasses joined again; an arm reaching into the face removed.
# 4: a box taller than 1.5 widths cut there when a neck or nothing hangs below; boxes inside a larger one dropped.
DETECTOR_VERSION = 4


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds of `detect_faces` (deg C and ratios; see the module docstring)."""

    skin_above_room_c: float = 4.0
    skin_floor_c: float = 29.0
    hair_above_room_c: float = 2.5
    neck_width_ratio: float = 0.65
    side_quantile: float = 0.2
    min_head_height_ratio: float = 0.8
    room_percentile: float = 10.0
    bridge_fraction: float = 0.008
    min_face_px: int = 12
    min_score: float = 0.3
    open_px: int = 1
    join_split_faces: bool = True
    lens_gap_fraction: float = 0.8
    limb_fraction: float = 0.6
    max_box_aspect: float | None = 1.5
    neck_like_ratio: float = 0.85
    contained_fraction: float | None = 0.7


def detect_faces(temperature_c: np.ndarray, config: DetectorConfig | None = None) -> list[Detection]:
    """Faces in one radiometric frame (H, W) deg C, best first (module docstring)."""
    config = config or DetectorConfig()
    temperature = np.asarray(temperature_c, dtype=np.float64)
    if temperature.ndim != 2:
        raise ValueError(f"a temperature frame must be 2-D, got shape {temperature.shape}")
    finite = np.isfinite(temperature)
    if not finite.any():
        return []
    temperature = np.where(finite, temperature, -np.inf)
    room = float(np.percentile(temperature[finite], config.room_percentile))
    skin = temperature >= max(room + config.skin_above_room_c, config.skin_floor_c)
    if config.open_px > 0:
        skin = ndimage.binary_opening(skin, iterations=config.open_px)
    # Bridge thin cold lines across the face (a glasses arm, a mask string) before splitting
    # blobs: a closing scaled to the frame (1 px at 160x120, ~4 px at 640x512).
    bridge = max(1, round(min(temperature.shape) * config.bridge_fraction))
    skin = ndimage.binary_closing(np.pad(skin, bridge), iterations=bridge)[bridge:-bridge, bridge:-bridge]
    skin = ndimage.binary_fill_holes(skin)
    warm = ndimage.binary_fill_holes(temperature >= room + config.hair_above_room_c)
    labels, count = ndimage.label(skin)
    if config.join_split_faces:
        labels = _join_split_faces(labels)
    warm_labels, _ = ndimage.label(warm)
    detections = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        blob = labels[region] == index
        if blob.shape[0] < config.min_face_px or blob.shape[1] < config.min_face_px:
            continue
        if config.join_split_faces:
            blob = _closed_vertically(blob, config.lens_gap_fraction)
        if config.limb_fraction > 0:
            blob, region = _without_limbs(blob, region, config.limb_fraction)
        candidate = _head_of_blob(blob, region, warm_labels, config)
        if candidate is None:
            continue
        x0, y0, x1, y1, head_mask = candidate
        score = _shape_score(head_mask, temperature[y0:y1, x0:x1], config)
        if score >= config.min_score:
            detections.append(Detection(float(x0), float(y0), float(x1 - x0), float(y1 - y0), score))
    if config.contained_fraction is not None:
        detections = _without_contained(detections, config.contained_fraction)
    return sorted(detections, key=lambda d: -d.score)


def _without_contained(detections: list[Detection], fraction: float) -> list[Detection]:
    """Drop a detection lying mostly (`fraction` of its area) inside a larger one: a warm patch in
    the hair or a mask grown into a head-sized box inside the face's box."""
    kept: list[Detection] = []
    for detection in sorted(detections, key=lambda d: -d.w * d.h):
        area = detection.w * detection.h
        if not any(intersection(detection.box, big.box) >= fraction * area for big in kept):
            kept.append(detection)
    return kept


def _join_split_faces(labels: np.ndarray) -> np.ndarray:
    """Join a blob to the one below it when together they make one face cut by a cold band: glasses
    or sunglasses near room temperature can span the whole face width, so the forehead and the face
    below the lenses come apart. Joined when the lower blob starts below the upper one's top and
    within half the narrower blob's width of the upper one's bottom (above or below it), and their
    columns overlap over at least half of that width; the rows between them, in the shared
    columns, are filled."""
    boxes = {i: r for i, r in enumerate(ndimage.find_objects(labels), start=1) if r is not None}
    joined = labels.copy()
    for upper, ru in boxes.items():
        for lower, rl in boxes.items():
            narrow = min(ru[1].stop - ru[1].start, rl[1].stop - rl[1].start)
            gap = rl[0].start - ru[0].stop
            overlap = min(ru[1].stop, rl[1].stop) - max(ru[1].start, rl[1].start)
            if upper == lower or rl[0].start <= ru[0].start or abs(gap) >= 0.5 * narrow or overlap < 0.5 * narrow:
                continue
            # Labels as joined so far: either blob may already be part of a bigger one.
            keep = int(joined[ru][labels[ru] == upper][0])
            joined[joined == int(joined[rl][labels[rl] == lower][0])] = keep
            x0, x1 = max(ru[1].start, rl[1].start), min(ru[1].stop, rl[1].stop)
            band = joined[ru[0].stop:rl[0].start, x0:x1]
            band[band == 0] = keep
    return joined


def _typical_width(blob: np.ndarray) -> float:
    """Median width of the blob's non-empty rows (a face's width, little moved by a neck or an arm)."""
    widths = blob.sum(axis=1)
    return float(np.median(widths[widths > 0])) if widths.any() else 0.0


def _closed_vertically(blob: np.ndarray, fraction: float) -> np.ndarray:
    """Fill each column's gaps between skin above and skin below when shorter than `fraction` of the
    blob's typical row width: the lenses and rims of glasses cross the face, and the rows there
    look as narrow as a neck to the head and neck split. Only vertical: nothing beside the head is added."""
    length = int(fraction * _typical_width(blob))
    if length < 2:
        return blob
    closed = ndimage.binary_closing(np.pad(blob, ((length, length), (0, 0))), structure=np.ones((length, 1), bool))
    return closed[length:-length] | blob


def _without_limbs(blob: np.ndarray, region: tuple[slice, slice], fraction: float
                   ) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The blob without the arm or hand reaching into it from outside the face: an opening with a
    disk `fraction` of the blob's typical row width removes whatever is narrower (an arm, a wrist;
    not a head), and the largest remaining part is kept. Unchanged when the opening would keep less
    than half of the blob (no basis to tell a face from a limb then)."""
    radius = int(fraction * _typical_width(blob) / 2)
    if radius < 2:
        return blob, region
    # Opening by a disk through distance transforms (linear time; a large structuring element is
    # slow): erode to the pixels farther than the radius from the background, dilate back.
    padded = np.pad(blob, 1)
    eroded = ndimage.distance_transform_edt(padded) > radius
    if not eroded.any():
        return blob, region
    opened = (ndimage.distance_transform_edt(~eroded) <= radius)[1:-1, 1:-1] & blob
    parts, count = ndimage.label(opened)
    if count == 0:
        return blob, region
    sizes = ndimage.sum(opened, parts, index=range(1, count + 1))
    largest = parts == (int(np.argmax(sizes)) + 1)
    if largest.sum() < 0.5 * blob.sum():
        return blob, region
    # Back to the blob's own pixels near what survived (the opening rounds the corners off).
    kept = blob & (ndimage.distance_transform_edt(~largest) <= max(1, radius // 2))
    rows, cols = np.nonzero(kept.any(axis=1))[0], np.nonzero(kept.any(axis=0))[0]
    sub = (slice(region[0].start + rows[0], region[0].start + rows[-1] + 1),
           slice(region[1].start + cols[0], region[1].start + cols[-1] + 1))
    return kept[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], sub


def _head_of_blob(blob: np.ndarray, region: tuple[slice, slice], warm_labels: np.ndarray,
                  config: DetectorConfig) -> tuple[int, int, int, int, np.ndarray] | None:
    """Head box (x0, y0, x1, y1) of one skin blob, cut at the neck and grown over the hair."""
    widths = blob.sum(axis=1)
    top = int(np.nonzero(widths)[0][0])
    # A head is at least ~0.8 of its width tall: glasses, a mask or a hand narrow the warm
    # outline at the eyes or mouth, so the neck is only looked for below that.
    head_width = int(widths[top:top + max(2 * blob.shape[1], 1)].max())
    start = min(top + int(config.min_head_height_ratio * head_width), blob.shape[0] - 1)
    widest = start if start > top else top
    reference = max(int(widths[top:start + 1].max()), 1)
    below = np.nonzero(widths[widest:] < config.neck_width_ratio * reference)[0]
    bottom = widest + int(below[0]) if below.size else blob.shape[0]
    head = blob[:bottom]
    if head.sum() == 0:
        return None
    cols = np.nonzero(head.any(axis=0))[0]
    rows = np.nonzero(head.any(axis=1))[0]
    y0, y1 = region[0].start + int(rows[0]), region[0].start + int(rows[-1]) + 1
    x0, x1 = region[1].start + int(cols[0]), region[1].start + int(cols[-1]) + 1
    # Hair: warm pixels connected to the head, above its skin top, within its columns widened a little.
    top_label = warm_labels[y0, region[1].start + int(np.argmax(head[rows[0]]))]
    if top_label > 0:
        pad = (x1 - x0) // 8
        lx0, lx1 = max(x0 - pad, 0), min(x1 + pad, warm_labels.shape[1])
        above = warm_labels[:y0, lx0:lx1] == top_label
        hair_rows = np.nonzero(above.any(axis=1))[0]
        if hair_rows.size:
            # Only a run of hair rows that reaches down to the skin top counts (not a warm lamp above).
            gaps = np.nonzero(np.diff(hair_rows) > 1)[0]
            start = hair_rows[gaps[-1] + 1] if gaps.size else hair_rows[0]
            if hair_rows[-1] >= y0 - 2:
                y0 = int(start)
    # A mask or a scarf (cooler than skin, warmer than the room) can hide the whole lower face:
    # below the skin, follow the warm region in the head's columns down to its own neck.
    if top_label > 0:
        lower = warm_labels[y1:, x0:x1] == top_label
        lower_widths = lower.sum(axis=1)
        narrow = np.nonzero(lower_widths < config.neck_width_ratio * (x1 - x0))[0]
        extra = int(narrow[0]) if narrow.size else lower.shape[0]
        y1 = min(y1 + extra, warm_labels.shape[0])
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    skin_top = region[0].start + int(rows[0])
    skin_rows = head[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    mask[skin_top - y0:skin_top - y0 + skin_rows.shape[0], :] = skin_rows
    left, right = _trimmed_sides(skin_rows, config.side_quantile)
    y1 = y0 + _capped_height(mask[:, left:right], config)
    return x0 + left, y0, x0 + right, y1, mask[:y1 - y0, left:right]


def _capped_height(mask: np.ndarray, config: DetectorConfig) -> int:
    """The box's height, cut at `max_box_aspect` times its width when what lies below that is
    neck-like (its skin rows narrower than `neck_like_ratio` of the widest row above) or no skin
    at all: a neck as wide as the jaw, or an arm or a hand beside it, keeps the rows wide enough
    that the head and neck split finds no neck, and the mask step then follows the warm neck and
    clothing to the frame's edge. The visible-head box is at most 1.55 widths tall in 95 % of the
    default data's training frames (docs/thermometry.md). A tall warm object of even width (a
    bottle, a radiator) keeps its height and fails the proportion check as before."""
    height, width = mask.shape
    if config.max_box_aspect is None or width == 0:
        return height
    cut = int(np.ceil(config.max_box_aspect * width))
    if cut >= height:
        return height
    widths = mask.sum(axis=1)
    removed = widths[cut:][widths[cut:] > 0]
    if removed.size and np.median(removed) >= config.neck_like_ratio * widths[:cut].max():
        return height
    return cut


def _trimmed_sides(skin_rows: np.ndarray, quantile: float) -> tuple[int, int]:
    """Columns [left, right) of a head's box without a side protrusion over a few rows: the quantiles
    of the rows' edges (the widest rows of a bare head are its cheeks and ears, over many rows; a
    hand or arm widens fewer), plus 5 % of that width. The whole width when trimming would keep
    less than half of it (a hand over most rows: no basis to tell it from the head)."""
    width = skin_rows.shape[1]
    filled = skin_rows.any(axis=1)
    if quantile <= 0 or filled.sum() < 4:
        return 0, width
    lefts = np.argmax(skin_rows[filled], axis=1)
    rights = width - np.argmax(skin_rows[filled][:, ::-1], axis=1)
    low, high = int(np.quantile(lefts, quantile)), int(np.ceil(np.quantile(rights, 1.0 - quantile)))
    slack = int(round(0.05 * (high - low)))
    left, right = max(0, low - slack), min(width, high + slack)
    return (left, right) if right - left >= 0.5 * width else (0, width)


def _shape_score(mask: np.ndarray, temperature: np.ndarray, config: DetectorConfig) -> float:
    """0..1 from soft checks: head proportions, fill of the box, a hot spot, a size floor."""
    h, w = mask.shape
    aspect = h / max(w, 1)
    # Heads (with hair) are 0.9-1.8 times as tall as wide; profiles and cut frames stretch that.
    aspect_score = float(np.clip(1.0 - max(0.0, 0.7 - aspect, aspect - 2.2) / 0.5, 0.0, 1.0))
    fill = mask.mean() if mask.size else 0.0
    fill_score = float(np.clip((fill - 0.25) / 0.25, 0.0, 1.0)) * float(np.clip((0.98 - fill) / 0.08, 0.0, 1.0))
    values = temperature[mask & np.isfinite(temperature)]
    hot_spot = float(np.percentile(values, 99.5) - np.median(values)) if values.size else 0.0
    hot_score = float(np.clip(hot_spot / 0.6, 0.0, 1.0))   # canthi stand ~1 K above the face median
    size_score = float(np.clip(min(h, w) / (2.0 * config.min_face_px), 0.0, 1.0))
    return aspect_score * (0.5 + 0.5 * fill_score) * (0.4 + 0.6 * hot_score) * size_score


def detect_faces_view(image: np.ndarray, config: DetectorConfig | FaceFinder | None = None,
                      low_c: float = 20.0, high_c: float = 37.0) -> list[Detection]:
    """Faces in a white-hot view in [0, 1] without a temperature map, read as if it spanned
    low_c..high_c (an assumption: an 8-bit view has no absolute scale)."""
    image = np.asarray(image, dtype=np.float64)
    return face_finder(config)(low_c + image * (high_c - low_c))


def face_finder(detector: DetectorConfig | FaceFinder | None = None) -> FaceFinder:
    """The rule-based detector with `detector`'s settings (None: the defaults), or `detector`
    itself when it is already a face finder (a trained detector)."""
    if detector is None or isinstance(detector, DetectorConfig):
        return partial(detect_faces, config=detector)
    if callable(detector):
        return detector
    raise TypeError(f"a detector is a DetectorConfig or a face finder, got {type(detector).__name__}")


def detector_description(detector: DetectorConfig | FaceFinder | None = None) -> dict[str, Any]:
    """What evaluation tables record about the detector that made their boxes."""
    if detector is None or isinstance(detector, DetectorConfig):
        return {"detector": f"rules v{DETECTOR_VERSION}", **asdict(detector or DetectorConfig())}
    name = getattr(detector, "__name__", type(detector).__name__)
    return dict(getattr(detector, "description", {"detector": name}))


