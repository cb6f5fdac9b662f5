"""How a trained scene detector's decoding trades recall for false detections, on its VALIDATION scenes.

    python -m benchmarks.bench_detector_decoding --run RUN_DIR [--scenes build/scenes/scenes-1500-seed31]

The run must have been trained on a scene set (`m3mstl detector SCENES`); its validation scenes are the
ones it scored itself on (`m3mstl.train.detector.SCENE_SPLIT`). The network runs once per scene; its
outputs are then decoded (`m3mstl.detection.trained.decode`) under every combination of the centre-score
threshold, the duplicate IoU (a box overlapping a better one by more is dropped) and, optionally,
dropping a box lying mostly (the given fraction of its area) inside a larger one. Prints, per setting,
recall at IoU >= 0.5 on faces >= 40 px wide and false detections per frame (issue 30 asks >= 0.98 at
<= 0.05), sorted by false detections. Model inference only, no training.
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)
DUPLICATE_IOUS = (0.4, 0.3, 0.2)
CONTAINED_FRACTIONS = (None, 0.7, 0.5)


def without_contained(found, fraction: float):
    """(score, box) pairs without those lying `fraction` of their area inside a larger kept box."""
    from m3mstl.core.boxes import intersection

    kept = []
    for score, box in sorted(found, key=lambda d: -d[1][2] * d[1][3]):
        if not any(intersection(box, other) >= fraction * box[2] * box[3] for _, other in kept):
            kept.append((score, box))
    return sorted(kept, key=lambda d: -d[0])


def score(scenes, decoded_per_scene, shapes) -> tuple[float, float]:
    """(recall on faces >= 40 px at IoU >= 0.5, false detections per frame)."""
    from m3mstl.core.boxes import iou
    from m3mstl.detection.base import match_detections
    from m3mstl.detection.trained import _pixel_detection

    found = large = false = 0
    for scene, decoded, (height, width) in zip(scenes, decoded_per_scene, shapes):
        detections = [_pixel_detection(box, value, width, height) for value, box in decoded]
        people = sorted((p for p in scene.people if p.get("head_bbox")),
                        key=lambda p: -p["head_bbox"][2] * p["head_bbox"][3])
        for person, (value, _) in zip(people, match_detections([tuple(p["head_bbox"]) for p in people], detections)):
            if person["face_width_px"] >= 40:
                large, found = large + 1, found + (value >= 0.5)
        false += sum(all(iou(tuple(p["head_bbox"]), d.box) < 0.5 for p in people) for d in detections)
    return found / max(large, 1), false / len(scenes)


def main(argv: list[str] | None = None) -> int:
    import torch

    from m3mstl.data.coco import read_temperature_file
    from m3mstl.detection import trained
    from m3mstl.train.detector import detector_splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a detector run trained on a scene set")
    parser.add_argument("--scenes", type=Path, default=Path("build/scenes/scenes-1500-seed31"),
                        help="the scene set the run was trained on")
    args = parser.parse_args(argv)

    detector = trained.TrainedFaceDetector.load(args.run)
    split = detector_splits("default", args.scenes)
    if split["kind"] != "scenes":
        parser.error(f"{args.scenes}: not a scene set (m3mstl synth --scenes)")
    scenes, started, outputs, shapes = split["val"], time.perf_counter(), [], []
    with torch.no_grad():
        for scene in scenes:
            temperature = read_temperature_file(scene.temperature_path)
            outputs.append(detector.network(trained.frame_input(temperature, detector.settings)[None]).float())
            shapes.append(temperature.shape)
    print(f"{args.run}: {len(scenes)} validation scenes of {args.scenes} ({time.perf_counter() - started:.0f} s)")
    candidates = [trained.decode(output, min(THRESHOLDS), 50, overlap=None)[0] for output in outputs]
    rows = []
    for threshold, duplicate_iou, contained in itertools.product(THRESHOLDS, DUPLICATE_IOUS, CONTAINED_FRACTIONS):
        decoded = []
        for found in candidates:
            kept = trained._drop_duplicates([d for d in found if d[0] >= threshold], duplicate_iou)
            kept = kept if contained is None else without_contained(kept, contained)
            decoded.append(kept[:detector.settings.max_faces])
        rows.append((threshold, duplicate_iou, contained, *score(scenes, decoded, shapes)))
    for threshold, duplicate_iou, contained, recall, false in sorted(rows, key=lambda r: (r[4], -r[3])):
        print(f"  threshold {threshold:.1f}  duplicate IoU {duplicate_iou:.1f}  contained {str(contained):4s}  "
              f"recall >= 40 px {recall:.3f}  false per frame {false:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
