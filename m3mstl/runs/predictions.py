"""A run's predictions file, `predictions_<split>.npz`: its one writer and its one reader.

Every producer (the trainer's `infer.predict.predict_split`, the classical peer, the archive) writes
through `write_predictions` and every consumer reads through `load_predictions`. The file holds the
predicted landmarks in source-image pixels (and the crop-frame copy, occlusion probabilities, pose
where the model has them) beside the ground truth of `ground_truth_arrays`, so evaluation never
reopens the dataset. An archived file keeps the ground truth it shares with every run of its split
once, in `archive/ground-truth/<sha256>.npz`, named under `ARCHIVED_GROUND_TRUTH_KEY`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from m3mstl.core.fileio import atomic_path
from m3mstl.data.records import occluder_group

#: Arrays every run of one split repeats (the ground truth): the archive keeps one copy per content,
#: in archive/ground-truth/<sha256>.npz, named by the run's predictions file under this key.
SHARED_PREDICTION_ARRAYS = ("gt_landmarks", "gt_pose", "gt_rotation")
GROUND_TRUTH_FOLDER = "ground-truth"
ARCHIVED_GROUND_TRUTH_KEY = "archived_ground_truth"
#: Not archived: the crop-frame copy of the predicted landmarks (the image-frame ones and the crop
#: transform are kept).
UNARCHIVED_PREDICTION_ARRAYS = ("pred_landmarks_crop",)


def ground_truth_arrays(records) -> dict[str, np.ndarray]:
    """What evaluation needs of the records beside the predictions: ground truth, ids and the
    per-image labels of the breakdowns, kept with the predictions so evaluation does not have
    to reopen the dataset (shared by every model's prediction files)."""
    arrays = {
        "gt_landmarks": np.stack([r.landmarks for r in records]).astype(np.float64),
        "visibility": np.stack([r.visibility for r in records]).astype(np.int8),
        "image_id": np.array([r.image_id for r in records]),
        "subject": np.array([r.subject for r in records]),
        "occluder_group": np.array([occluder_group([o.get("type", "unknown") for o in r.extras.get("occluders", [])])
                                    for r in records]),
    }
    poses = [r.extras.get("head_pose") for r in records]
    if all(p is not None for p in poses):
        arrays["gt_pose"] = np.array([[p["yaw"], p["pitch"], p["roll"]] for p in poses], dtype=np.float64)
        arrays["gt_rotation"] = np.array([p["rotation"] for p in poses], dtype=np.float64)
    return arrays


def write_predictions(out_path: Path, arrays: dict[str, Any]) -> Path:
    """Write `arrays` as a compressed .npz, atomically (a reader never sees half a file)."""
    with atomic_path(out_path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return out_path


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a predictions .npz; a missing, truncated or foreign file is a RunError naming it."""
    import zipfile

    from m3mstl.errors import RunError

    if not Path(path).is_file():
        raise RunError(path, "predictions file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as error:
        raise RunError(path, f"cannot read the predictions (truncated or not an .npz file): {error}") from None
    return _with_archived_ground_truth(arrays, Path(path))


def _with_archived_ground_truth(arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """An archived run (`m3mstl.runs.archive.archive_run`) names the ground-truth file it shares with the other
    runs of its split, relative to the archive's root (archive/<model>/<run-id>/predictions_*.npz)."""
    from m3mstl.errors import RunError

    if ARCHIVED_GROUND_TRUTH_KEY not in arrays:
        return arrays
    shared = path.parents[2] / str(arrays.pop(ARCHIVED_GROUND_TRUTH_KEY))
    if not shared.is_file():
        raise RunError(path, f"its ground truth {shared} is missing from the archive")
    with np.load(shared, allow_pickle=False) as npz:
        return {**arrays, **{k: npz[k] for k in npz.files}}
