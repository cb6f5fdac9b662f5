"""From a detector's head box to the crop a landmark model was trained on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class HeadBoxMapping:
    """Landmark-extent box from a head box: x = hx + dx * hw, y = hy + dy * hh, w = sw * hw, h = sh * hh.

    A detector boxes the visible head (forehead, hair, ears); the landmark models were trained on
    crops around the extent of the 68 landmarks (`bbox`). Fitted on a training split by
    `fit_head_box_mapping`; the identity (0, 0, 1, 1) passes a head box through unchanged."""

    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0

    def apply(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x, y, w, h = (float(v) for v in box)
        return (x + self.dx * w, y + self.dy * h, self.sw * w, self.sh * h)


#: The mapping `m3mstl predict` applies to detector boxes: fitted by `fit_head_box_mapping` on 298 faces
#: of the default SynthTFD68 TRAINING split rendered as whole frames, from this detector's boxes
#: (benchmarks/bench_pipeline.py, 2026-12-02; docs/thermometry.md). On real frames whose heads differ
#: from the generator's (hair volume, framing), refit it on frames of your own with landmarks.
SYNTH_HEAD_TO_LANDMARK_BOX = HeadBoxMapping(dx=0.0862, dy=0.3486, sw=0.6430, sh=0.7107)


def fit_head_box_mapping(head_boxes: Any, landmark_boxes: Any) -> HeadBoxMapping:
    """Median offsets and scales from head boxes to landmark-extent boxes, (N, 4) each (x, y, w, h).

    Fit it on whole frames (`m3mstl synth --full-frame`, or the training split's faces rendered
    as full frames): in face crops the crop cuts the head, so a crop's head box is not the one a
    detector gives on a frame. Medians, so a few odd faces (a hand over the head, an extreme
    turn) do not move the fit. Rows with a non-finite value or a non-positive head size are
    skipped; ValueError when none is left."""
    head = np.asarray(head_boxes, dtype=float).reshape(-1, 4)
    land = np.asarray(landmark_boxes, dtype=float).reshape(-1, 4)
    if head.shape != land.shape:
        raise ValueError(f"fit_head_box_mapping: {len(head)} head boxes but {len(land)} landmark boxes")
    keep = np.isfinite(head).all(axis=1) & np.isfinite(land).all(axis=1) & (head[:, 2] > 0) & (head[:, 3] > 0)
    if not keep.any():
        raise ValueError("fit_head_box_mapping: no pair of finite boxes with a positive head size")
    head, land = head[keep], land[keep]
    ratios = np.column_stack([(land[:, 0] - head[:, 0]) / head[:, 2], (land[:, 1] - head[:, 1]) / head[:, 3],
                              land[:, 2] / head[:, 2], land[:, 3] / head[:, 3]])
    dx, dy, sw, sh = np.median(ratios, axis=0)
    return HeadBoxMapping(float(dx), float(dy), float(sw), float(sh))
