"""Result plots used by the notebooks. Each returns a matplotlib Figure; saving is the
caller's (`m3mstl.report.savefig`), so notebooks decide names and tests need no files."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.metrics import precision_recall_curve, roc_curve

from m3mstl.runs.result import RunResult
from m3mstl.core.landmarks import MIRROR, OUTER_EYE_CORNERS
from m3mstl.evaluation.metrics import PAPER_NORMALISER, ced_curve, normalised_point_errors
from m3mstl.report import subplots


def training_curves(history: list[dict], title: str = "") -> plt.Figure:
    """Train/validation loss per epoch, stages separated, and validation NME."""
    frame = pd.DataFrame(history)
    frame["step"] = np.arange(1, len(frame) + 1)
    fig, (ax_loss, ax_nme) = subplots(1, 2, width="double", aspect=0.35)
    for stage, part in frame.groupby("stage", sort=False):
        ax_loss.plot(part["step"], part["train_loss"], "o-", label=f"{stage} train")
        ax_loss.plot(part["step"], part["val_loss"], "s--", label=f"{stage} val")
        ax_nme.plot(part["step"], part["val_nme"], "o-", label=stage)
    ax_loss.set(xlabel="epoch (all stages)", ylabel="loss", title=title or "losses")
    ax_nme.set(xlabel="epoch (all stages)", ylabel="val NME (inter-ocular, crop)", title="validation NME")
    ax_loss.legend(fontsize=6)
    ax_nme.legend(fontsize=6)
    return fig


def ced_curves(results: Sequence[RunResult], threshold: float = 0.10) -> plt.Figure:
    fig, ax = subplots()
    for result in results:
        nme = result.per_image[f"nme_{PAPER_NORMALISER}"].to_numpy()
        curve = ced_curve(nme, threshold)
        ax.plot(curve.thresholds, curve.fraction, label=f"{result.name} (AUC {curve.auc:.3f})")
    ax.set(xlabel=f"NME ({PAPER_NORMALISER})", ylabel="fraction of test images", xlim=(0, threshold),
           ylim=(0, 1), title="Cumulative error distribution")
    ax.legend()
    return fig


def roc_pr_curves(results: Sequence[RunResult]) -> plt.Figure:
    """Occlusion ROC and precision-recall curves of the runs that predict occlusion."""
    # Landmarks-only runs (the classical peer) have no occlusion curve to draw.
    names = [r.name for r in results]
    results = [r for r in results if "occlusion_prob" in r.predictions]
    if not results:
        raise ValueError(f"roc_pr_curves: no run predicts occlusion among {names}")
    fig, (ax_roc, ax_pr) = subplots(1, 2, width="double", aspect=0.4)
    for result in results:
        y = result.occluded[result.labelled]
        p = result.predictions["occlusion_prob"][result.labelled]
        fpr, tpr, _ = roc_curve(y, p)
        precision, recall, _ = precision_recall_curve(y, p)
        occ = result.metrics["occlusion"]
        ax_roc.plot(fpr, tpr, label=f"{result.name} (AUC {occ['roc_auc']:.3f})")
        ax_pr.plot(recall, precision, label=f"{result.name} (AP {occ['average_precision']:.3f})")
    prior = results[0].metrics["occlusion"]["class_prior_occluded"]
    ax_roc.plot([0, 1], [0, 1], ":", color="grey")
    ax_pr.axhline(prior, ls=":", color="grey", label=f"class prior {prior:.3f}")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="Occlusion ROC (positive = occluded)")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Occlusion precision-recall")
    ax_roc.legend()
    ax_pr.legend()
    return fig


def per_landmark_error_on_face(result: RunResult, reference: np.ndarray | None = None) -> plt.Figure:
    """Per-landmark NME drawn as coloured dots on a mean frontal face shape."""
    gt = result.predictions["gt_landmarks"]
    if reference is None:
        reference = _mean_shape(gt)
    per_landmark = result.metrics["landmarks"][PAPER_NORMALISER].get("per_landmark_nme")
    if per_landmark is None:
        err = normalised_point_errors(result.predictions["pred_landmarks"], gt, result.labelled, PAPER_NORMALISER)
        per_landmark = np.nanmean(err, axis=0)
    fig, ax = subplots(aspect=1.0)
    sc = ax.scatter(reference[:, 0], reference[:, 1], c=per_landmark, cmap="magma", s=40, edgecolor="k", lw=0.3)
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.axis("off")
    fig.colorbar(sc, ax=ax, label=f"mean NME ({PAPER_NORMALISER})")
    ax.set_title(f"{result.name}: error per landmark")
    return fig


def _mean_shape(landmarks: np.ndarray) -> np.ndarray:
    """Mean of shapes normalised for translation and scale (a frontal-ish reference)."""
    centred = landmarks - landmarks.mean(axis=1, keepdims=True)
    scale = np.linalg.norm(centred[:, OUTER_EYE_CORNERS[0]] - centred[:, OUTER_EYE_CORNERS[1]], axis=1)[:, None, None]
    shapes = centred / np.maximum(scale, 1e-6)
    # Average each shape with its mirror image so left/right errors sit on a symmetric face.
    mirrored = shapes[:, MIRROR] * np.array([-1.0, 1.0])
    return np.median(np.concatenate([shapes, mirrored]), axis=0)


def qualitative_grid(result: RunResult, images: Sequence[np.ndarray], indices: Sequence[int],
                     titles: Sequence[str], threshold: float = 0.5) -> plt.Figure:
    """Images with ground truth (white) and predictions (coloured by predicted occlusion)."""
    n = len(indices)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = subplots(rows, cols, width="double", aspect=rows / cols)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, i, title in zip(axes, images, indices, titles):
        gt = result.predictions["gt_landmarks"][i]
        pred = result.predictions["pred_landmarks"][i]
        prob = result.predictions["occlusion_prob"][i]
        ax.imshow(image, cmap="gray")
        ax.scatter(gt[:, 0], gt[:, 1], s=6, c="white", marker="x", lw=0.6)
        ax.scatter(pred[:, 0], pred[:, 1], s=8, c=np.where(prob >= threshold, "red", "lime"), edgecolor="none")
        ax.set_title(title, fontsize=7)
    return fig


def stage1_mask_grid(images: Sequence, targets: Sequence, probabilities: Sequence, iou: float) -> plt.Figure:
    """Stage 1 on a few validation faces: one row per face with its thermal image, the mask
    target and the predicted mask probability, all (S, S) in [0, 1]; `iou` in the title."""
    rows = len(images)
    fig, axes = subplots(rows, 3, width="single", aspect=rows / 3 * 1.05)
    axes = np.asarray(axes).reshape(rows, 3)
    for row, axs in enumerate(axes):
        for ax, img, title in zip(axs, [images[row], targets[row], probabilities[row]],
                                  ["thermal", "target", "predicted"]):
            ax.imshow(img, cmap="gray" if title == "thermal" else "magma", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])  # noqa: E702
            if row == 0:
                ax.set_title(title)
    fig.suptitle(f"stage-1 masks, validation IoU at 0.5 = {iou:.3f}")
    return fig


def pose_scatter(gt_pose: np.ndarray, pred_pose: np.ndarray) -> plt.Figure:
    """Predicted against true yaw, pitch and roll (N, 3 in degrees), one panel each, with the
    diagonal of a perfect prediction."""
    fig, axes = subplots(1, 3, width="double", aspect=0.33)
    for ax, i, name in zip(axes, range(3), ("yaw", "pitch", "roll")):
        ax.scatter(gt_pose[:, i], pred_pose[:, i], s=4, alpha=0.5)
        lim = max(abs(gt_pose[:, i]).max(), 1.0)
        ax.plot([-lim, lim], [-lim, lim], ":", color="grey")
        ax.set(xlabel=f"true {name} (deg)", ylabel=f"predicted {name} (deg)")
    return fig


def ablation_bars(table: pd.DataFrame) -> plt.Figure:
    """Notebook 07's ablation table (one row per variant: variant, roc_auc, nme_median; with
    several training seeds also their `*_sd` over seeds and `n_seeds`) as two bar panels sharing
    the variant order: bars are means over seeds, whiskers one sd over seeds (no whisker: one
    seed). The ROC-AUC axis starts just below the weakest variant so small differences stay
    visible."""
    fig, (ax_auc, ax_nme) = subplots(1, 2, width="double", aspect=0.45)
    rows = np.arange(len(table))
    for ax, column, colour, label in ((ax_auc, "roc_auc", "C0", "occlusion ROC-AUC"),
                                      (ax_nme, "nme_median", "C1", "median NME (inter-ocular)")):
        spread = table.get(f"{column}_sd")
        whiskers = None if spread is None else spread.fillna(0.0).to_numpy()
        ax.barh(rows, table[column], xerr=whiskers, color=colour, capsize=3, error_kw={"lw": 1})
        ax.set(xlabel=label, ylabel="", yticks=rows)
        ax.invert_yaxis()  # the table's first row on top
    low = table["roc_auc"] - (table["roc_auc_sd"].fillna(0.0) if "roc_auc_sd" in table else 0.0)
    ax_auc.set_xlim(max(0.0, float(low.min()) - 0.05), 1.0)
    ax_auc.set_yticklabels(table["variant"])
    ax_nme.set_yticklabels([])  # the left panel names the variants
    if "n_seeds" in table:
        seeds = sorted({int(n) for n in table["n_seeds"]})
        fig.suptitle(f"mean over {'/'.join(map(str, seeds))} training seeds; whiskers: sd over seeds", fontsize="small")
    return fig


def canthus_error_by_occluder(per_image: pd.DataFrame | None) -> plt.Figure:
    """Notebook 09's canthus reading errors (deg C) by occluder type, one box per reading method
    (the `<method>_error_c` columns of `thermometry.read_canthus_temperatures`); None, for a
    dataset without ground-truth skin temperature, draws a panel that says so."""
    fig, ax = subplots(width="double", aspect=0.4)
    if per_image is not None:
        error_columns = [c for c in per_image.columns if c.endswith("_error_c")]
        long = per_image.melt(id_vars=["occluder_type"], value_vars=error_columns,
                              var_name="reading", value_name="error (deg C)").dropna()
        long["reading"] = long["reading"].str.replace("_error_c", "")
        sns.boxplot(data=long, x="occluder_type", y="error (deg C)", hue="reading", ax=ax, fliersize=1)
        ax.axhline(0, color="grey", lw=0.8)
        ax.tick_params(axis="x", rotation=30)
    else:
        ax.text(0.5, 0.5, "no ground truth", ha="center")
    ax.set_title("canthus reading error by occluder")
    return fig


def occlusion_per_landmark(per_landmark: pd.DataFrame) -> plt.Figure:
    """Notebook 01's occluded share of each landmark (`explore.occlusion_rate_per_landmark`),
    stacked by cause (its `rate_<cause>` columns) when the dataset records causes, else one bar."""
    fig, ax = subplots(width="double", aspect=0.3)
    cause_columns = [c for c in per_landmark.columns if c.startswith("rate_")]
    bottom = 0
    for column in cause_columns or ["occlusion_rate"]:
        ax.bar(per_landmark["landmark"], per_landmark[column], bottom=bottom, label=column.replace("rate_", ""))
        bottom = bottom + per_landmark[column].fillna(0)  # a cause absent at a landmark stacks as 0
    ax.set(xlabel="landmark (iBUG index)", ylabel="occluded share", title="occlusion rate per landmark, by cause")
    ax.legend(fontsize=6, ncol=4)
    return fig


def pose_coverage_heatmap(coverage: pd.DataFrame) -> plt.Figure:
    """Notebook 01's image counts per (pitch, yaw) bin (`explore.pose_coverage`) as a heat map;
    an empty table (a dataset without head-pose labels) draws a panel that says so."""
    fig, ax = subplots(aspect=0.8)
    if not coverage.empty:
        sns.heatmap(coverage, cmap="viridis", ax=ax, cbar_kws={"label": "images"})
        ax.set(title="head-pose coverage (degrees)")
    else:
        ax.text(0.5, 0.5, "no head-pose labels in this dataset", ha="center")
    return fig


PIPELINE_OCCLUDERS = ("none", "glasses", "sunglasses", "mask", "hand", "scarf")


def pipeline_frames(records: Sequence, predictions: dict[str, np.ndarray], *, per_kind: int = 1,
                    threshold: float = 0.5) -> plt.Figure:
    """Whole frames as `m3mstl predict` sees them: the detector's box (yellow) and the landmarks the
    model predicted from it (green called visible, red called occluded), one frame per occluder kind
    in PIPELINE_OCCLUDERS where `records` hold one (`frames.frame_predictions` on those records)."""
    from matplotlib.patches import Rectangle

    from m3mstl.data.coco import image_to_unit_range, load_image
    from m3mstl.data.records import occluder_group

    kinds = [occluder_group([o.get("type", "unknown") for o in r.extras.get("occluders", [])]) for r in records]
    chosen = []
    for kind in PIPELINE_OCCLUDERS:
        found = [i for i, k in enumerate(kinds) if k == kind and predictions["detected"][i]][:per_kind]
        chosen += [(kind, i) for i in found]
    columns = min(3, max(1, len(chosen)))
    rows = max(1, -(-len(chosen) // columns))
    fig, axes = subplots(rows, columns, width="double", aspect=0.27 * rows * 3 / columns)
    axes = np.atleast_1d(axes).ravel()
    for ax, (kind, i) in zip(axes, chosen):
        ax.imshow(image_to_unit_range(load_image(records[i])), cmap="gray", vmin=0, vmax=1)
        x, y, w, h = predictions["detector_box"][i]
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="yellow", lw=1.0))
        points, prob = predictions["detector_landmarks"][i], predictions["detector_occlusion_prob"][i]
        occluded = prob >= threshold
        # Continuous coordinates put pixel (r, c)'s centre at (c + 0.5, r + 0.5); imshow puts it at (c, r).
        ax.scatter(points[~occluded, 0] - 0.5, points[~occluded, 1] - 0.5, s=2, c="lime", linewidths=0)
        ax.scatter(points[occluded, 0] - 0.5, points[occluded, 1] - 0.5, s=2, c="red", linewidths=0)
        ax.set_title(kind, fontsize=7)
        ax.set_axis_off()
    for ax in axes[len(chosen):]:
        ax.set_axis_off()
    fig.suptitle("detector box (yellow), landmarks called visible (green) / occluded (red)", fontsize=7)
    return fig


def scaling_difference_figure(table: pd.DataFrame, peer_nme: float | None, *, trunk_note: str):
    """M3MSTL - baseline (ROC-AUC, median NME) with 95 % intervals against input size and against
    training compute (counted floating-point operations, `studies.scaling.training_flops`: measured seconds depend on
    the CPU and on what ran beside the training), and both models' median NME beside the classical
    peer's line."""
    fig, axes = subplots(3, 2, width="double", aspect=0.9, sharex="col")
    markers = {backbone: marker for backbone, marker in zip(sorted(table["backbone"].unique()), "osD^v")}
    compute = table["train_tflop_m3mstl"] + table["train_tflop_baseline"]
    for col, (x_values, x_label) in enumerate(((table["input_size"], "input size (px)"),
                                               (compute, "training compute, both models (TFLOP, counted)"))):
        series = table.assign(x=x_values).groupby(["backbone", "variant"], sort=False)
        for k, ((backbone, variant), part) in enumerate(series):
            # Series at the same input size are dodged sideways so their marks do not hide each other;
            # one colour per series in every panel, so the bottom row reads with the top legend.
            x = part["x"] + (1.5 * (k - (series.ngroups - 1) / 2) if col == 0 else 0.0)
            style = dict(marker=markers[backbone], color=f"C{k}")
            for row, column in ((0, "roc_auc"), (1, "nme_median")):
                estimate = part[f"diff_{column}"]
                error = [estimate - part[f"diff_{column}_low"], part[f"diff_{column}_high"] - estimate]
                axes[row, col].errorbar(x, estimate, yerr=error, capsize=2, ls="-", label=f"{backbone}, {variant}",
                                        **style)
            # Both models' own median NME: M3MSTL filled, the baseline open.
            axes[2, col].scatter(x, part["m3mstl_nme_median"], s=16, **style)
            axes[2, col].scatter(x, part["baseline_nme_median"], s=22, facecolors="none",
                                 edgecolors=style["color"], marker=style["marker"])
        for row, label in ((0, "ROC-AUC: M3MSTL - baseline\n(> 0: M3MSTL better)"),
                           (1, "median NME: M3MSTL - baseline\n(< 0: M3MSTL better)")):
            axes[row, col].axhline(0.0, color="grey", lw=0.8, ls=":")
            axes[row, col].set(ylabel=label)
        if peer_nme is not None:
            axes[2, col].axhline(peer_nme, color="black", ls="--", lw=1.0)
        axes[2, col].set(ylabel="median NME (inter-ocular)", xlabel=x_label)
    axes[0, 0].legend(fontsize=6)
    from matplotlib.lines import Line2D
    key = [Line2D([], [], ls="", marker="o", color="grey", label="M3MSTL (filled)"),
           Line2D([], [], ls="", marker="o", markerfacecolor="none", color="grey", label="baseline (open)")]
    if peer_nme is not None:
        key.append(Line2D([], [], color="black", ls="--", label=f"classical peer (dlib) {peer_nme:.3f}"))
    axes[2, 0].legend(handles=key, fontsize=6)
    fig.suptitle("M3MSTL vs baseline across input sizes; bars: 95 % intervals over training seeds and test "
                 f"subjects.\n{trunk_note}", fontsize=7)
    return fig


# -- command line: the study's training without the notebook ------------------------------------


def recipe_curves(curves: pd.DataFrame) -> plt.Figure:
    """Validation NME against counted training compute, one line per recipe run (`m3mstl.studies.recipes
    .recipe_curves`), a panel per model: how far each recipe gets for the compute it spends."""
    models = list(dict.fromkeys(curves["model"])) if len(curves) else []
    fig, axes = subplots(1, max(1, len(models)), width="double", aspect=0.38, squeeze=False)
    if not models:
        axes[0][0].text(0.5, 0.5, "no finished recipe run on this data\n(benchmarks/bench_recipe.py trains them)",
                        ha="center", va="center", transform=axes[0][0].transAxes)
        axes[0][0].set_axis_off()
        return fig
    for ax, model in zip(axes[0], models):
        # Stage 1 trains no landmark head: its epochs count towards the compute, its NME is not drawn.
        part = curves[(curves["model"] == model) & (curves["stage"] != "mask_pretrain")]
        sns.lineplot(data=part, x="tflop", y="val_nme", hue="recipe", marker="o", markersize=3, ax=ax,
                     hue_order=list(dict.fromkeys(part["recipe"])))
        ax.set(xlabel="training compute so far (TFLOP, counted)", ylabel="validation NME (inter-ocular, crop)",
               title={"m3mstl": "M3MSTL", "baseline": "baseline"}.get(model, model))
        ax.legend(fontsize=6, title="recipe", title_fontsize=6)
    return fig
