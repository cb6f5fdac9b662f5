"""Figures about a TFD68-layout dataset: the contact sheet of images with their landmarks."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from m3mstl.data.coco import load_image
from m3mstl.data.records import VIS_OCCLUDED, VIS_VISIBLE, FaceDataset, FaceRecord
from m3mstl.report.figures import figure_style

VISIBLE_COLOUR, OCCLUDED_COLOUR = "#2ecc40", "#ff4136"


def _pick(dataset: FaceDataset, n: int, seed: int, image_ids: Sequence[str] | None) -> list[FaceRecord]:
    if image_ids is not None:
        return [dataset.by_id(i) for i in image_ids]
    if n >= len(dataset):
        return list(dataset.records)
    order = np.random.default_rng(seed).choice(len(dataset), size=n, replace=False)
    return [dataset.records[i] for i in sorted(order)]


def _caption(record: FaceRecord) -> str:
    parts = [record.image_id.replace("thermal_", "")]
    pose = record.extras.get("head_pose")
    if isinstance(pose, dict) and "yaw" in pose:
        parts.append(f"y{pose['yaw']:+.0f} p{pose.get('pitch', 0):+.0f}")
    occluders = record.extras.get("occluders")
    if isinstance(occluders, list) and occluders:
        parts.append("+".join(sorted({str(o.get("type", "?")) for o in occluders if isinstance(o, dict)})))
    return "\n".join(parts)


def contact_sheet(
    dataset: FaceDataset,
    n: int = 24,
    *,
    columns: int = 6,
    seed: int = 0,
    image_ids: Sequence[str] | None = None,
    show_landmarks: bool = True,
    captions: bool = True,
    tile_inches: float = 1.5,
    title: str | None = None,
) -> Figure:
    """A grid of images with their landmarks: visible in green, occluded as red crosses.

    Picks `n` images at random (reproducible by `seed`) unless `image_ids` names them.
    """
    records = _pick(dataset, n, seed, image_ids)
    if not records:
        raise ValueError(f"{dataset.root}: no images to show")
    columns = max(1, min(columns, len(records)))
    rows = int(np.ceil(len(records) / columns))
    with figure_style():
        fig = Figure(figsize=(columns * tile_inches, rows * tile_inches * (1.25 if captions else 1.0)),
                     layout="constrained")
        axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
        for ax, record in zip(axes, records):
            image = load_image(record)
            ax.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1.0,
                      extent=(0, record.width, record.height, 0), interpolation="nearest")
            if show_landmarks:
                pts, vis = record.landmarks, record.visibility
                seen, hidden = vis == VIS_VISIBLE, vis == VIS_OCCLUDED
                marker = max(1.5, 6.0 * tile_inches / 1.5 * 96 / max(record.width, 96))
                ax.scatter(pts[seen, 0], pts[seen, 1], s=marker, c=VISIBLE_COLOUR, linewidths=0)
                ax.scatter(pts[hidden, 0], pts[hidden, 1], s=marker * 1.6, c=OCCLUDED_COLOUR, marker="x",
                           linewidths=0.6)
            if captions:
                ax.set_title(_caption(record), fontsize=5.5, pad=1.5)
            ax.set_axis_off()
        for ax in axes[len(records):]:
            ax.set_axis_off()
        if title:
            fig.suptitle(title)
    return fig
