"""The iBUG-300W 68-point landmark schema used by TFD68 and by this project.

"Right" and "left" are the *subject's* sides (iBUG convention): the right eye is
36-41, which appears on the image's left in a frontal face.
"""
from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68

# Fine-grained index groups (contiguous ranges of the iBUG-68 scheme).
GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nose_lower": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lip": tuple(range(48, 60)),
    "inner_lip": tuple(range(60, 68)),
}

# Coarse regions used in summaries (occlusion rate per region, error per region).
REGIONS: dict[str, tuple[int, ...]] = {
    "jaw": GROUPS["jaw"],
    "brows": GROUPS["right_brow"] + GROUPS["left_brow"],
    "nose": GROUPS["nose_bridge"] + GROUPS["nose_lower"],
    "eyes": GROUPS["right_eye"] + GROUPS["left_eye"],
    "mouth": GROUPS["outer_lip"] + GROUPS["inner_lip"],
}

RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 36, 39
LEFT_EYE_INNER, LEFT_EYE_OUTER = 42, 45
OUTER_EYE_CORNERS = (RIGHT_EYE_OUTER, LEFT_EYE_OUTER)  # the paper's inter-ocular normaliser
INNER_CANTHI = (RIGHT_EYE_INNER, LEFT_EYE_INNER)       # hottest facial skin: the fever site


def _mirror_pairs() -> list[tuple[int, int]]:
    pairs = [(i, 16 - i) for i in range(8)]                          # jaw contour
    pairs += [(17 + i, 26 - i) for i in range(5)]                    # brows
    pairs += [(31, 35), (32, 34)]                                    # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]      # outer lip
    pairs += [(60, 64), (61, 63), (65, 67)]                          # inner lip
    return pairs


def _build_mirror() -> np.ndarray:
    perm = np.arange(NUM_LANDMARKS)
    for a, b in _mirror_pairs():
        perm[a], perm[b] = b, a
    return perm


# MIRROR[i] is the index that landmark i becomes after a horizontal flip.
# Use it as `flipped_landmarks = landmarks[MIRROR]` after negating x.
MIRROR: np.ndarray = _build_mirror()
MIRROR.setflags(write=False)


def _build_names() -> tuple[str, ...]:
    names = [f"jaw_{i}" for i in range(17)]
    names += [f"right_brow_{i}" for i in range(5)] + [f"left_brow_{i}" for i in range(5)]
    names += [f"nose_bridge_{i}" for i in range(4)] + [f"nose_lower_{i}" for i in range(5)]
    names += [f"right_eye_{i}" for i in range(6)] + [f"left_eye_{i}" for i in range(6)]
    names += [f"outer_lip_{i}" for i in range(12)] + [f"inner_lip_{i}" for i in range(8)]
    return tuple(names)


NAMES: tuple[str, ...] = _build_names()

# Per-landmark coarse region name, e.g. REGION_OF[40] == "eyes".
REGION_OF: tuple[str, ...] = tuple(
    next(region for region, idx in REGIONS.items() if i in idx) for i in range(NUM_LANDMARKS)
)


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Pupil estimates as the mean of each eye's six contour points.

    Accepts (..., 68, 2) and returns (..., 2, 2): [right_eye_centre, left_eye_centre].
    """
    landmarks = np.asarray(landmarks)
    right = landmarks[..., list(GROUPS["right_eye"]), :].mean(axis=-2)
    left = landmarks[..., list(GROUPS["left_eye"]), :].mean(axis=-2)
    return np.stack([right, left], axis=-2)


def flip_horizontal(landmarks: np.ndarray, width: float) -> np.ndarray:
    """Mirror (..., 68, 2) landmarks in an image of the given width and relabel them.

    Coordinates are continuous pixel coordinates (the image spans [0, width)), so a
    point at x maps to width - x; the mirror permutation then renames left as right.
    """
    flipped = np.array(landmarks, dtype=float, copy=True)
    flipped[..., 0] = width - flipped[..., 0]
    return flipped[..., MIRROR, :]
