"""A tiny, fully known TFD68-layout dataset for tests, benchmarks and examples.

`make_tiny_dataset(root, ...)` writes a few subjects' worth of small, simple thermal faces
through the project's own writer (`m3mstl.data.coco`), with known landmarks, glasses
occlusions, temperature maps, occluder masks and head poses. It is not the synthetic
generator (`m3mstl.data.synth`): it is drawn so that tests know every answer.

The face is drawn from `FACE_TEMPLATE`, a left-right symmetric 68-point face built from its
geometry (not from landmarks.MIRROR), so tests can check the mirror map against it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------------------------
# A symmetric 68-point face in a unit frame: x to the image right, y down, nose bridge at x = 0.
# Subject's right (iBUG 17-21, 36-41) lies on the image left (negative x).
# --------------------------------------------------------------------------------------------


def _face_template() -> np.ndarray:
    points = np.zeros((68, 2))
    angles = np.pi * np.arange(17) / 16
    points[0:17] = np.stack([-np.cos(angles), -0.1 + np.sin(angles)], axis=1)          # jaw, ear to ear
    brow_x = np.linspace(0.75, 0.15, 5)
    brow_y = -0.45 - 0.08 * np.sin(np.pi * np.arange(5) / 4)
    points[17:22] = np.stack([-brow_x, brow_y], axis=1)                               # right brow, outer->inner
    points[22:27] = np.stack([brow_x[::-1], brow_y[::-1]], axis=1)                    # left brow, inner->outer
    points[27:31] = np.stack([np.zeros(4), np.linspace(-0.3, 0.15, 4)], axis=1)      # nose bridge
    points[31:36] = [[-0.2, 0.3], [-0.1, 0.32], [0.0, 0.33], [0.1, 0.32], [0.2, 0.3]]  # nostrils
    right_eye = [[-0.6, -0.2], [-0.47, -0.27], [-0.33, -0.27], [-0.2, -0.2], [-0.33, -0.13], [-0.47, -0.13]]
    left_eye = [[0.2, -0.2], [0.33, -0.27], [0.47, -0.27], [0.6, -0.2], [0.47, -0.13], [0.33, -0.13]]
    points[36:42], points[42:48] = right_eye, left_eye
    points[48:60] = [[-0.35, 0.55], [-0.22, 0.48], [-0.08, 0.45], [0.0, 0.47], [0.08, 0.45], [0.22, 0.48],
                     [0.35, 0.55], [0.22, 0.63], [0.08, 0.66], [0.0, 0.67], [-0.08, 0.66], [-0.22, 0.63]]
    points[60:68] = [[-0.28, 0.55], [-0.1, 0.52], [0.0, 0.52], [0.1, 0.52], [0.28, 0.55], [0.1, 0.58],
                     [0.0, 0.58], [-0.1, 0.58]]
    return points


FACE_TEMPLATE = _face_template()
FACE_TEMPLATE.setflags(write=False)
EYES = np.arange(36, 48)
T_MIN_VIEW, T_MAX_VIEW = 20.0, 38.0   # temperature span mapped onto the 8-bit view (white-hot)
SKIN_C, CANTHUS_C, NOSE_C = 34.0, 35.6, 31.5


def _place(template: np.ndarray, centre: np.ndarray, scale: float, roll_deg: float) -> np.ndarray:
    """Template -> image pixels; positive roll turns the face counter-clockwise on screen."""
    a = np.deg2rad(roll_deg)
    # Image y points down, so a visual counter-clockwise turn is this (transposed) rotation.
    rotation = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return centre + scale * template @ rotation.T


def draw_thermal_face(width: int, height: int, landmarks: np.ndarray, scale: float, ambient_c: float,
                      glasses: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(temperature deg C, 8-bit white-hot view, occluder bitmask) of a simple thermal face."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5   # pixel centres, continuous convention
    temperature = np.full((height, width), ambient_c, dtype=np.float64)
    centre = landmarks[[0, 16, 8]].mean(axis=0)
    inside = ((xs - centre[0]) / (1.05 * scale)) ** 2 + ((ys - centre[1]) / (0.95 * scale)) ** 2 <= 1
    temperature[inside] = SKIN_C
    for canthus in landmarks[[39, 42]]:
        temperature[np.hypot(xs - canthus[0], ys - canthus[1]) <= 0.08 * scale] = CANTHUS_C
    nose = landmarks[33]
    temperature[np.hypot(xs - nose[0], ys - nose[1]) <= 0.1 * scale] = NOSE_C
    mask = np.zeros((height, width), dtype=np.uint8)
    if glasses:
        eyes = landmarks[EYES]
        low, high = eyes.min(axis=0) - 0.12 * scale, eyes.max(axis=0) + 0.12 * scale
        lens = (xs >= low[0]) & (xs <= high[0]) & (ys >= low[1]) & (ys <= high[1])
        temperature[lens] = ambient_c + 4.0   # glass is opaque in LWIR: the lens shows its own temperature
        mask[lens] = 1                        # bit 0 = occluder 0 of the image's list
    view = np.clip((temperature - T_MIN_VIEW) / (T_MAX_VIEW - T_MIN_VIEW), 0, 1)
    return temperature.astype(np.float32), np.round(255 * view).astype(np.uint8), mask


def make_tiny_dataset(
    root: str | Path,
    *,
    n_subjects: int = 3,
    images_per_subject: int = 2,
    width: int = 64,
    height: int = 48,
    temperature_format: str | None = "npy",
    layout: str = "ibug68",
    with_occluders: bool = True,
    with_pose: bool = True,
    seed: int = 0,
    subject_ids: list[str] | None = None,
) -> Path:
    """Write a small TFD68-layout dataset into ``root`` and return ``root``.

    Each image holds one face of the symmetric template, shifted, scaled and rolled at random;
    odd-numbered images of each subject wear glasses (eyes 36-47 labelled occluded, v = 1, and an
    occluder mask) when ``with_occluders``. ``temperature_format`` is "npy", "png" or None (no
    maps). Subjects are "001", "002", ... unless ``subject_ids`` is given.
    """
    from m3mstl.data.coco import write_annotations, write_sample
    from m3mstl.core.pose import rotation_from_euler

    root = Path(root)
    rng = np.random.default_rng(seed)
    subjects = subject_ids or [f"{i + 1:03d}" for i in range(n_subjects)]
    entries = []
    for subject in subjects:
        for k in range(images_per_subject):
            scale = min(width, height) * rng.uniform(0.3, 0.36)
            centre = np.array([width / 2, height * 0.45]) + rng.uniform(-2, 2, size=2)
            roll = float(rng.uniform(-8, 8))
            landmarks = _place(FACE_TEMPLATE, centre, scale, roll)
            ambient = float(rng.uniform(20, 26))
            glasses = with_occluders and k % 2 == 1
            temperature, view, mask = draw_thermal_face(width, height, landmarks, scale, ambient, glasses)
            visibility = np.full(68, 2, dtype=np.int64)
            cause = ["none"] * 68
            if glasses:
                visibility[EYES] = 1
                for i in EYES:
                    cause[i] = "glasses"
            image_fields = {"ambient_c": ambient, "polarity": "white_hot",
                            "occluders": [{"type": "glasses"}] if glasses else []}
            if with_pose:
                image_fields["head_pose"] = {"yaw": 0.0, "pitch": 0.0, "roll": roll,
                                             "rotation": rotation_from_euler(0.0, 0.0, roll)}
            entries.append(write_sample(
                root, f"thermal_{subject}_{k}_0", subject, view,
                temperature if temperature_format else None, landmarks, visibility,
                occluder_mask=mask if with_occluders else None,
                temperature_format=temperature_format or "npy",
                image_fields=image_fields,
                annotation_fields={"occlusion_cause": cause},
            ))
    write_annotations(root, entries, info={"description": "tiny test dataset", "seed": seed}, layout=layout)
    return root
