"""The one interface of every face detector: a face finder maps a temperature frame to `Detection`s.

A face finder is any callable (H, W) deg C -> list[Detection], best first: the rule-based
detector with its settings (`rule_based.face_finder`) and the trained detector
(`trained.TrainedFaceDetector`) are both. `match_detections` pairs detections with true boxes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from m3mstl.core.boxes import iou


@dataclass(frozen=True)
class Detection:
    x: float
    y: float
    w: float
    h: float
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


#: A face finder: a temperature frame (H, W) deg C -> its faces, best first. `detect_faces` with its
#: settings is one; a trained detector (`m3mstl.detection.trained.TrainedFaceDetector`) is another.
FaceFinder = Callable[[np.ndarray], list[Detection]]


def match_detections(true_boxes: list[tuple[float, float, float, float]], detections: list[Detection]
                     ) -> list[tuple[float, Detection | None]]:
    """Greedy one-to-one matching by IoU (each true box takes the best free detection)."""
    free = list(detections)
    out = []
    for box in true_boxes:
        best, best_iou = None, 0.0
        for detection in free:
            value = iou(box, detection.box)
            if value > best_iou:
                best, best_iou = detection, value
        if best is not None:
            free.remove(best)
        out.append((best_iou, best))
    return out
