"""What a notebook found, in sentences written from the numbers it has just computed.

Every numbered notebook ends with a "## What this shows" heading and a cell that hands its numbers
to these functions and shows the sentences (`show`): a rerun on other data or in another profile
says what *that* run found, and no result number is typed by hand into a notebook's text.

    from m3mstl.report import findings
    findings.show([findings.describe_comparison("roc_auc", "M3MSTL", 0.958, "the baseline", 0.960,
                                                interval=seed_interval, n_seeds=3)])

The wording is honest by construction:
- a difference comes with its interval, the variance the interval includes and the number of seeds;
- an interval that includes zero says "no difference resolved"; only one that excludes zero names
  the model that is ahead, in the metric's own direction (lower NME is better, higher ROC-AUC);
- two numbers without an interval are compared as numbers only, and the sentence says that they
  resolve nothing;
- a p-value names what it was computed on (one training seed's test images, say) and its threshold.
Numbers are formatted by the table writer's own rules (`m3mstl.report.tables.format_value`), so a
sentence prints a number as the tables do.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from m3mstl.report.tables import format_p_value, format_value

MISSING = "–"

# Metric key -> (label in a sentence, higher is better). Keys are the tables' column names.
METRICS: dict[str, tuple[str, bool]] = {
    "occlusion_accuracy": ("occlusion accuracy", True),
    "balanced_accuracy": ("balanced accuracy", True),
    "roc_auc": ("ROC-AUC", True),
    "average_precision": ("AP", True),
    "nme_mean": ("mean NME", False),
    "nme_median": ("median NME", False),
    "nme_visible": ("NME at visible landmarks", False),
    "nme_occluded": ("NME at occluded landmarks", False),
    "nme_box_median": ("median box-normalised NME", False),
    "failure_rate@0.10": ("failure rate at NME 0.10", False),
    "median_nme": ("median NME", False),
    "recall": ("recall", True),
    "mean_iou": ("mean IoU", True),
    "false_positives_per_frame": ("false detections per frame", False),
    "mae_c": ("mean absolute error", False),
    "pose_mae_mean": ("mean absolute head-pose error", False),
    "pose_geodesic_mean": ("mean geodesic head-pose error", False),
}

# How the intervals of m3mstl.evaluation.stats name their metric (before any " (normaliser)").
_INTERVAL_NAMES = {"mean NME": "nme_mean", "median NME": "nme_median", "occlusion accuracy": "occlusion_accuracy"}


# --------------------------------------------------------------------------- numbers


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def number(value: Any, decimals: int | str = 3, *, signed: bool = False) -> str:
    """A number as the tables print it (`format_value`); "+" before a positive one when `signed`;
    "–" when missing. Integers print without decimals."""
    text = format_value(value, decimals)
    if text is None:
        return MISSING
    if signed and not text.startswith("-") and isinstance(value, numbers.Real) and float(text) != 0:
        text = "+" + text
    return text


def share(value: Any, decimals: int = 1) -> str:
    """A fraction as a percentage: 0.328 -> "32.8 %"."""
    return MISSING if _is_missing(value) else f"{number(100 * float(value), decimals)} %"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 seed", "3 seeds"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def capitalise(text: str) -> str:
    """The first character upper-cased, the rest untouched ("the baseline" -> "The baseline")."""
    return text[:1].upper() + text[1:]


def possessive(name: str) -> str:
    """ "M3MSTL's", "the hourglass's" (every name here is singular)."""
    return f"{name}'s"


def metric_key(metric: str) -> str:
    """The METRICS key of a metric as a table or an interval names it: "roc_auc" -> "roc_auc",
    "mean NME (inter_ocular)" -> "nme_mean"; unknown names come back unchanged."""
    if metric in METRICS:
        return metric
    base = metric.split(" (")[0]
    return _INTERVAL_NAMES.get(base, base)


def metric_label(metric: str) -> str:
    """ "roc_auc" -> "ROC-AUC", "mean NME (inter_ocular)" -> "mean NME"; unknown names unchanged."""
    key = metric_key(metric)
    return METRICS[key][0] if key in METRICS else metric


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is better (NME, errors and failure rates: no)."""
    key = metric_key(metric)
    if key in METRICS:
        return METRICS[key][1]
    lowered = key.lower()
    return not any(word in lowered for word in ("nme", "error", "mae", "loss", "failure", "false", "geodesic"))


def _field(interval: Any, name: str, default: Any = None) -> Any:
    if isinstance(interval, Mapping):
        return interval.get(name, default)
    return getattr(interval, name, default)


def interval_parts(interval: Any) -> tuple[float, float, float]:
    """(estimate, low, high) of an interval object (stats.BootstrapInterval, stats.SeedAwareInterval)
    or a mapping with those keys; NaN where one is missing."""
    values = [_field(interval, k) for k in ("estimate", "low", "high")]
    return tuple(float("nan") if _is_missing(v) else float(v) for v in values)  # type: ignore[return-value]


def direction(low: float, high: float) -> int:
    """+1 when the interval lies above zero, -1 below, 0 when it includes zero (or is missing)."""
    if _is_missing(low) or _is_missing(high):
        return 0
    if low > 0:
        return 1
    if high < 0:
        return -1
    return 0


def _visible_decimals(low: float, high: float, decimals: int, most: int = 6) -> int:
    """More decimals when a bound would print as zero where it is not ("[0.000, +0.008]" for a lower
    bound of -0.0001 hides which side of zero it lies on): every nonzero bound keeps a visible digit."""
    if not isinstance(decimals, int) or _is_missing(low) or _is_missing(high):
        return decimals

    def hidden(bound: float) -> bool:
        return bound != 0 and float(format_value(abs(bound), decimals)) == 0

    while decimals < most and (hidden(low) or hidden(high)):
        decimals += 1
    return decimals


def interval_text(estimate: float, low: float, high: float, decimals: int = 3) -> str:
    """ "-0.002 [-0.010, +0.007]": signed, as many decimals as needed to show an excluded zero."""
    d = _visible_decimals(low, high, decimals)
    return (f"{number(estimate, d, signed=True)} [{number(low, d, signed=True)}, "
            f"{number(high, d, signed=True)}]")


def _plain_variance(variance: str) -> str:
    """ "test subjects only (one training seed: seed variance not included)" ->
    "test subjects only; one training seed: seed variance not included" (no nested brackets)."""
    text = str(variance).strip()
    if text.endswith(")") and " (" in text:
        head, _, tail = text.partition(" (")
        text = f"{head}; {tail[:-1]}"
    return text


def scope(confidence: float | None = 0.95, variance: str | None = None) -> str:
    """ "95 %, training seeds and test subjects": what an interval is."""
    parts = []
    if confidence is not None and not _is_missing(confidence):
        parts.append(f"{100 * float(confidence):g} %")
    if variance:
        parts.append(_plain_variance(variance))
    return ", ".join(parts)


def seeds_phrase(n_seeds: int | None, *, sd: bool = False) -> str:
    """ "one training seed", "mean of 3 seeds", "mean ± sd over 3 seeds"."""
    if n_seeds is None:
        return ""
    if int(n_seeds) == 1:
        return "one training seed"
    return f"mean ± sd over {int(n_seeds)} seeds" if sd else f"mean of {int(n_seeds)} seeds"


def verdict(low: float, high: float, *, a: str, b: str, metric: str, higher_better: bool | None = None,
            estimate: float | None = None, decimals: int = 3) -> str:
    """What an interval for a - b says: "includes zero: no difference resolved", or "excludes zero:
    <a or b> is ahead (higher ROC-AUC)" in the metric's direction; with the `estimate`, a difference
    that rounds to zero at `decimals` is called ahead "by less than 0.001", not a plain win."""
    if _is_missing(low) or _is_missing(high):
        return "could not be estimated: nothing resolved"
    side = direction(low, high)
    if side == 0:
        return "includes zero: no difference resolved"
    better_high = higher_is_better(metric) if higher_better is None else higher_better
    a_ahead = (side > 0) == better_high
    text = f"excludes zero: {a if a_ahead else b} is ahead ({'higher' if better_high else 'lower'} {metric_label(metric)})"
    if isinstance(decimals, int) and not _is_missing(estimate) and round(abs(float(estimate)), decimals) == 0:
        text += f", by less than {format(10.0 ** -decimals, f'.{decimals}f')}"
    return text


# --------------------------------------------------------------------------- differences


def describe_difference(metric: str, interval: Any, *, a: str = "M3MSTL", b: str = "the baseline",
                        higher_better: bool | None = None, decimals: int = 3) -> str:
    """One sentence on an interval for a - b.

    "The difference in ROC-AUC (M3MSTL minus the baseline), -0.002 [-0.010, +0.007] (95 %, training
    seeds and test subjects), includes zero: no difference resolved."
    `interval`: a stats interval or a mapping with estimate, low, high (optional confidence, variance).
    """
    estimate, low, high = interval_parts(interval)
    where = scope(_field(interval, "confidence", 0.95), _field(interval, "variance"))
    return (f"The difference in {metric_label(metric)} ({a} minus {b}), {interval_text(estimate, low, high, decimals)}"
            f"{f' ({where})' if where else ''}, "
            f"{verdict(low, high, a=a, b=b, metric=metric, higher_better=higher_better, estimate=estimate, decimals=decimals)}.")


def _value_with_sd(value: Any, sd: Any, decimals: int) -> str:
    return number(value, decimals) if _is_missing(sd) else f"{number(value, decimals)} ± {number(sd, decimals)}"


def _seed_note(n_seeds: int | Sequence[int] | None, a: str, b: str, sd: bool) -> str:
    if n_seeds is None:
        return ""
    if isinstance(n_seeds, Sequence):
        n_a, n_b = (int(n) for n in n_seeds)
        if n_a != n_b:
            return f"{a}: {seeds_phrase(n_a, sd=sd and n_a > 1)}; {b}: {seeds_phrase(n_b, sd=sd and n_b > 1)}"
        n_seeds = n_a
    return seeds_phrase(int(n_seeds), sd=sd)


def describe_comparison(metric: str, a: str, a_value: float, b: str, b_value: float, *, interval: Any = None,
                        n_seeds: int | Sequence[int] | None = None, a_sd: float | None = None,
                        b_sd: float | None = None, higher_better: bool | None = None, decimals: int = 3,
                        see: str | None = None) -> str:
    """Two models' values of one metric and what their difference shows.

    With an interval for a - b: "M3MSTL's ROC-AUC is 0.958 against the baseline's 0.960 (mean of 3
    seeds); the difference, -0.002 [-0.010, +0.007] (95 %, training seeds and test subjects),
    includes zero: no difference resolved."
    Without one, the gap is given as a number that resolves nothing (`see`: where an interval is).
    `n_seeds`: one count, or (a's, b's) when they differ; sds print as "0.960 ± 0.002".
    """
    label = metric_label(metric)
    has_sd = not (_is_missing(a_sd) and _is_missing(b_sd))
    note = _seed_note(n_seeds, a, b, has_sd)
    head = (f"{capitalise(possessive(a))} {label} is {_value_with_sd(a_value, a_sd, decimals)} against "
            f"{possessive(b)} {_value_with_sd(b_value, b_sd, decimals)}{f' ({note})' if note else ''}")
    if interval is not None:
        estimate, low, high = interval_parts(interval)
        where = scope(_field(interval, "confidence", 0.95), _field(interval, "variance"))
        return (f"{head}; the difference, {interval_text(estimate, low, high, decimals)}"
                f"{f' ({where})' if where else ''}, "
                f"{verdict(low, high, a=a, b=b, metric=metric, higher_better=higher_better, estimate=estimate, decimals=decimals)}.")
    if _is_missing(a_value) or _is_missing(b_value):
        return f"{head}."
    gap = float(a_value) - float(b_value)
    if number(gap, decimals) in ("0", number(0.0, decimals)):
        tail = f"the same to {decimals} decimals"
    else:
        tail = f"a gap of {number(gap, decimals, signed=True)} with no interval here, so it does not say which is ahead"
    return f"{head}: {tail}{f' ({see})' if see else ''}."


def describe_differences(a: str, b: str, items: Iterable[tuple[str, Any]], *, confidence: float | None = 0.95,
                         variance: str | None = None, n_seeds: int | None = None, decimals: int = 3) -> str:
    """Several metrics' differences a - b in one sentence, each with its interval and verdict.

    "No stage 1 minus full M3MSTL (95 %, training seeds and test subjects; 3 seeds): ROC-AUC -0.007
    [-0.016, +0.002], includes zero: no difference resolved; mean NME +0.025 [+0.018, +0.033],
    excludes zero: full M3MSTL is ahead (lower mean NME)."
    items: (metric, interval) pairs (a stats interval or a mapping with estimate, low, high).
    """
    where = scope(confidence, variance)
    if n_seeds is not None:
        where = f"{where}; {count(int(n_seeds), 'seed')}" if where else count(int(n_seeds), "seed")
    parts = []
    for metric, interval in items:
        estimate, low, high = interval_parts(interval)
        if _is_missing(estimate) or _is_missing(low) or _is_missing(high):
            parts.append(f"{metric_label(metric)} has no interval")
            continue
        parts.append(f"{metric_label(metric)} {interval_text(estimate, low, high, decimals)}, "
                     f"{verdict(low, high, a=a, b=b, metric=metric, estimate=estimate, decimals=decimals)}")
    return f"{capitalise(a)} minus {b}{f' ({where})' if where else ''}: " + "; ".join(parts) + "."


def row_interval(row: Mapping[str, Any], estimate: str, low: str, high: str) -> dict[str, float]:
    """An interval from a table row's three columns (e.g. "roc_auc_diff", "roc_auc_low", "roc_auc_high")."""
    return {"estimate": row.get(estimate), "low": row.get(low), "high": row.get(high)}


def tally(directions: Sequence[int], *, metric: str, a: str, b: str, what: str = "comparisons") -> str:
    """How many intervals put a ahead, b ahead, or resolve nothing (directions of a - b, from
    `direction`): "Mean NME: the baseline is ahead in 1 of 4 comparisons, M3MSTL in none; 3 resolve
    no difference." """
    n = len(directions)
    better_high = higher_is_better(metric)
    a_ahead = sum(1 for d in directions if d != 0 and (d > 0) == better_high)
    b_ahead = sum(1 for d in directions if d != 0 and (d > 0) != better_high)
    unresolved = n - a_ahead - b_ahead

    def times(k: int) -> str:
        return "none" if k == 0 else f"{k} of {n} {what}"

    return (f"{capitalise(metric_label(metric))}: {a} is ahead in {times(a_ahead)}, {b} in {times(b_ahead)}; "
            f"{unresolved} of {n} resolve no difference.")


def describe_ablations(table: Any, reference: str, *, label: str = "variant",
                       metrics: Sequence[str] = ("roc_auc", "nme_mean"), decimals: int = 3) -> list[str]:
    """Sentences for an ablation differences table (`comparison.differences_over_seeds`: columns
    <metric>_diff, _low, _high, n_seeds, variance; each row a variant minus `reference`): one per
    variant, then how many differ resolvably from the reference, and a caution when the intervals
    leave out seed variance."""
    rows = table.to_dict("records") if hasattr(table, "to_dict") else list(table)
    if not rows:
        return [f"No variant besides {reference} was trained in this profile: nothing to compare."]
    sentences, resolved = [], 0
    for row in rows:
        items = [(m, row_interval(row, f"{m}_diff", f"{m}_low", f"{m}_high")) for m in metrics]
        if any(direction(i["low"], i["high"]) != 0 for _, i in items):
            resolved += 1
        n_seeds = row.get("n_seeds")
        sentences.append(describe_differences(f'"{row[label]}"', reference, items, variance=row.get("variance"),
                                              n_seeds=None if _is_missing(n_seeds) else int(n_seeds),
                                              decimals=decimals))
    names = " and ".join(metric_label(m) for m in metrics)
    others = "" if resolved == len(rows) else "; the others are not resolved from it on this test split"
    sentences.append(f"{resolved} of {count(len(rows), 'variant')} differ from {reference} by an interval that "
                     f"excludes zero in at least one of {names}{others}.")
    if all(not _is_missing(r.get("n_seeds")) and int(r["n_seeds"]) == 1 for r in rows):
        sentences.append("With one training seed per row these intervals leave out seed variance, which can "
                         "exceed them: read them as where to look, not as findings.")
    return sentences


# --------------------------------------------------------------------------- tests


def _test_subject(test: Any) -> tuple[str, str, bool]:
    """(what the estimate is, what n counts, higher is better) of a stats.TestResult."""
    name = str(_field(test, "test", "")).lower()
    if "mcnemar" in name:
        return "occlusion accuracy difference", "landmarks", True
    if "wilcoxon" in name:
        return "median per-image NME difference", "images", False
    return "mean per-image NME difference", "images", False


def p_text(p: float | None) -> str:
    """ "p < 0.001", "p = 0.032", "p –" (missing)."""
    text = format_p_value(p)
    if text is None:
        return f"p {MISSING}"
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def describe_test(test: Any, *, a: str | None = None, b: str | None = None, names: Mapping[str, str] | None = None,
                  alpha: float = 0.05, context: str | None = None, decimals: int = 3) -> str:
    """One paired test (stats.TestResult; estimate is a - b) as a sentence: the estimate, the
    (Holm-corrected when given) p-value against `alpha`, and who is ahead on these test items
    only when p is below it. `context`: what the test's variance covers, e.g. "one training seed:
    seed variance not included". a and b default to the models of the test's comparison label
    ("m3mstl vs baseline: ..."), named by `names` (e.g. {"m3mstl": "M3MSTL"})."""
    label_a, _, rest = str(_field(test, "comparison", "")).partition(" vs ")
    label_b = rest.split(":")[0]
    a = a or (names or {}).get(label_a, label_a)
    b = b or (names or {}).get(label_b, label_b)
    what, units, better_high = _test_subject(test)
    estimate = _field(test, "estimate")
    p_holm = _field(test, "p_holm")
    p = p_holm if not _is_missing(p_holm) else _field(test, "p_value")
    corrected = "Holm-corrected " if not _is_missing(p_holm) else ""
    n = _field(test, "n")
    head = (f"{capitalise(str(_field(test, 'test')))} ({a} minus {b}"
            f"{'' if _is_missing(n) else f', {count(int(n), units[:-1])}'}): {what} {number(estimate, decimals, signed=True)}, "
            f"{corrected}{p_text(p)}")
    if _is_missing(p) or float(p) >= alpha:
        tail = f"not below {alpha:g}: no difference resolved"
    elif _is_missing(estimate) or float(estimate) == 0:
        tail = f"below {alpha:g}, with a zero estimate: no direction"
    else:
        a_ahead = (float(estimate) > 0) == better_high
        tail = f"below {alpha:g}: {a if a_ahead else b} is ahead on these {units}"
    return f"{head}, {tail}{f' ({context})' if context else ''}."


# --------------------------------------------------------------------------- curves and single runs


def describe_curve(quantity: str, values: Sequence[float], *, epochs: Sequence[int] | None = None,
                   higher_better: bool = False, decimals: int = 3) -> str:
    """A training curve in one or two sentences: first and last value, the best and when it came,
    and whether the curve was still improving when training stopped."""
    points = [(e, float(v)) for e, v in zip(epochs or range(1, len(values) + 1), values) if not _is_missing(v)]
    if not points:
        return f"No {quantity} was recorded."
    if len(points) == 1:
        epoch, value = points[0]
        return f"{capitalise(quantity)} after its single epoch ({epoch}) is {number(value, decimals)}: one epoch draws no curve."
    (first_epoch, first), (last_epoch, last) = points[0], points[-1]
    pick = max if higher_better else min
    best_index = pick(range(len(points)), key=lambda i: points[i][1])
    best_epoch, best = points[best_index]
    moved = "rose" if last > first else "fell" if last < first else "stayed"
    head = (f"{capitalise(quantity)} {moved} from {number(first, decimals)} (epoch {first_epoch}) to "
            f"{number(last, decimals)} (epoch {last_epoch}) over {count(len(points), 'epoch')}")
    if best_index == len(points) - 1:
        tail = "its best is the last epoch: it was still improving when training stopped"
    elif best_index == 0:
        tail = f"its best, {number(best, decimals)}, is the first epoch: it never improved on it"
    else:
        after = len(points) - 1 - best_index
        tail = (f"its best, {number(best, decimals)}, came at epoch {best_epoch}, and "
                f"{'the last epoch' if after == 1 else f'the last {after} epochs'} did not improve on it")
    return f"{head}; {tail}."


def describe_history(history: Sequence[Mapping[str, Any]], key: str = "val_loss", *, stage: str | None = None,
                     quantity: str | None = None, decimals: int = 3) -> str:
    """`describe_curve` of one column of a run's history (`m3mstl.read_history`), for one stage
    (default: the last stage in the history)."""
    stage = stage or (history[-1]["stage"] if history else None)
    rows = [h for h in history if h.get("stage") == stage]
    names = {"val_loss": "validation loss", "val_nme": "validation NME", "train_loss": "training loss"}
    quantity = quantity or f"{names.get(key, key)} in stage {stage!r}"
    return describe_curve(quantity, [h.get(key) for h in rows], epochs=[h.get("epoch") for h in rows],
                          higher_better=higher_is_better(key), decimals=decimals)


def describe_run(name: str, row: Mapping[str, Any], *, n_seeds: int = 1, decimals: int = 3) -> list[str]:
    """What one model scores on the test split (`comparison.summary_row`): its occlusion numbers
    beside what calling every landmark visible would score, and its NME. A landmarks-only model
    (no occlusion numbers) says so."""
    images = row.get("n_images")
    where = f"on the test split ({count(int(images), 'image')})" if not _is_missing(images) else "on the test split"
    seeds = seeds_phrase(n_seeds)
    sentences = []
    if _is_missing(row.get("roc_auc")) and _is_missing(row.get("occlusion_accuracy")):
        sentences.append(f"{capitalise(name)} predicts landmarks only: no occlusion numbers.")
    else:
        prior, accuracy = row.get("class_prior_occluded"), row.get("occlusion_accuracy")
        trivial = ""
        if not _is_missing(prior) and not _is_missing(accuracy):
            rule = number(1 - float(prior), decimals)
            shown = number(accuracy, decimals)
            relation = "equal to" if shown == rule else "above" if float(shown) > float(rule) else "below"
            trivial = (f", {relation} the {rule} that calling every landmark visible scores ({share(prior)} of "
                       "labelled landmarks are occluded, which is also the AP of a random ranking)")
        sentences.append(f"{capitalise(where)}, {possessive(name)} occlusion accuracy is "
                         f"{number(accuracy, decimals)}{trivial}; its ROC-AUC is "
                         f"{number(row.get('roc_auc'), decimals)} and its AP {number(row.get('average_precision'), decimals)}.")
    nme = (f"{capitalise(possessive(name))} mean NME is {number(row.get('nme_mean'), decimals)} and its median "
           f"{number(row.get('nme_median'), decimals)} (inter-ocular)")
    if not _is_missing(row.get("nme_visible")) and not _is_missing(row.get("nme_occluded")):
        nme += (f"; {number(row.get('nme_visible'), decimals)} at visible and "
                f"{number(row.get('nme_occluded'), decimals)} at occluded landmarks")
    if not _is_missing(row.get("failure_rate@0.10")):
        nme += f"; {share(row['failure_rate@0.10'])} of images have an NME above 0.10"
    sentences.append(f"{nme} ({seeds}; no interval from one run).")
    return sentences


def describe_extremes(table: Any, *, group: str, value: str, where: Mapping[str, Any] | None = None,
                      what: str | None = None, decimals: int = 3) -> str:
    """Which group of a breakdown table has the best and the worst `value` (e.g. median NME by
    occluder), among the rows matching `where`."""
    rows = [r for r in (table.to_dict("records") if hasattr(table, "to_dict") else table)
            if all(r.get(k) == v for k, v in (where or {}).items()) and not _is_missing(r.get(value))]
    label = what or metric_label(value)
    if not rows:
        return f"No group has a {label}."
    if len(rows) == 1:
        return f"Only one group ({rows[0][group]}) has a {label}: {number(rows[0][value], decimals)}."
    ordered = sorted(rows, key=lambda r: float(r[value]))
    low, high = ordered[0], ordered[-1]

    def shown(row: Mapping[str, Any]) -> str:
        images = row.get("n_images")
        return number(row[value], decimals) + ("" if _is_missing(images) else f", {count(int(images), 'image')}")

    def name(row: Mapping[str, Any]) -> str:
        return _occluders(row[group]) if group in ("occluder", "occluder_type") else str(row[group])

    return (f"{capitalise(label)} is lowest for {name(low)} ({shown(low)}) and highest for {name(high)} "
            f"({shown(high)}) among {count(len(rows), 'group')} "
            f"({'higher' if higher_is_better(value) else 'lower'} is better; no interval per group).")


# --------------------------------------------------------------------------- settings and data


def describe_settings(settings: Mapping[str, Any], decimals: int = 3) -> str:
    """A settings mapping as text without 16-digit reprs: "window_fraction 0.3, calibration_c 0.290"."""
    parts = []
    for key, value in settings.items():
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
            short = float(value) == round(float(value), decimals)
            text = format(float(value), "g") if short else number(value, decimals)
        else:
            text = str(value)
        parts.append(f"{key} {text}")
    return ", ".join(parts)


def describe_paper_results(results: Mapping[str, Mapping[str, float]], decimals: int = 3) -> str:
    """The paper's reported numbers (`comparison.PAPER_RESULTS`), named as the paper's and not measured here."""
    per_model = []
    for model, values in results.items():
        named = ", ".join(f"{metric_label(k)} {number(v, decimals)}" for k, v in values.items())
        per_model.append(f"{model}: {named}")
    return ("The paper reports on TFD68 (its numbers, typed once in comparison.PAPER_RESULTS, not measured "
            "here): " + "; ".join(per_model) + ".")


def describe_profile(row: Mapping[str, Any]) -> str:
    """One profile of `inspection.profiles_table` in a sentence."""
    floor = row.get("stage-1 disk floor (px)")
    floor_text = "" if floor in (None, "-") else f", stage-1 disks floored at {number(floor, 'g')} px"
    seeds = str(row.get("training seeds (main / ablation)", "")).split("/")
    seed_text = (f"; {seeds[0]} training seeds per model in the main comparison and {seeds[1]} per ablation row"
                 if len(seeds) == 2 else "")
    return (f"Profile {row['profile']}: {row['synthetic images']} synthetic images at {row['input px']} px, a "
            f"{row['backbone']} trunk, batch {row['batch']}{floor_text}; M3MSTL trains "
            f"{row['M3MSTL epochs (stage 1/2/3)']} epochs in stages 1/2/3, the baseline "
            f"{row['baseline epochs']} in one stage, at learning rate {number(row['lr'], '.0e')}{seed_text}.")


def describe_dataset(summary: Mapping[str, Any], problems: int) -> str:
    """`dataset_summary.dataset_summary` and the validation's problem count in a sentence."""
    images, subjects = int(summary["images"]), int(summary["subjects"])
    low, high = int(summary["images_per_subject_min"]), int(summary["images_per_subject_max"])
    per_subject = f"{low} images per subject" if low == high else f"{low}-{high} images per subject"
    checked = "validation found no problems" if problems == 0 else f"validation found {count(problems, 'problem')}"
    return (f"The dataset holds {images} images of {subjects} subjects ({per_subject}); {checked}. "
            f"{share(summary.get('occluded_landmark_share'))} of labelled landmarks are occluded, and "
            f"{int(summary['images_with_occluders'])} of {images} images show at least one occluder.")


def describe_region_temperatures(regions: Any, decimals: int = 2) -> list[str]:
    """From `dataset_summary.region_temperature_table`: in how many regions the map reads colder at
    occluded than at visible landmarks, the widest gap, and the true skin beneath it when known."""
    rows = regions.to_dict("records") if hasattr(regions, "to_dict") else list(regions)
    by_region: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        by_region.setdefault(str(r["region"]), {})[str(r["state"])] = r
    gaps = {region: (float(s["visible"]["temperature_c_mean"]) - float(s["occluded"]["temperature_c_mean"]), s)
            for region, s in by_region.items() if {"visible", "occluded"} <= set(s)
            and not _is_missing(s["visible"].get("temperature_c_mean"))
            and not _is_missing(s["occluded"].get("temperature_c_mean"))}
    if not gaps:
        return ["No region has both visible and occluded landmarks with a temperature reading: no gap to report."]
    colder = sum(1 for gap, _ in gaps.values() if gap > 0)
    region, (gap, states) = max(gaps.items(), key=lambda item: item[1][0])
    sentence = (f"The temperature map reads colder at occluded than at visible landmarks in {colder} of "
                f"{count(len(gaps), 'region')}; the widest gap is at the {region}: "
                f"{number(states['occluded']['temperature_c_mean'], decimals)} °C occluded against "
                f"{number(states['visible']['temperature_c_mean'], decimals)} °C visible")
    skin = states["occluded"].get("skin_temperature_c_mean")
    if not _is_missing(skin):
        sentence += (f", while the skin beneath the occluded ones is {number(skin, decimals)} °C: a reading "
                     "there measures the occluder, not the face")
    return [sentence + "."]


def describe_occluders(by_occluder: Any, decimals: int = 1) -> str:
    """From `dataset_summary.occlusion_by_occluder`: the most worn occluder and the one that hides most."""
    rows = [r for r in (by_occluder.to_dict("records") if hasattr(by_occluder, "to_dict") else by_occluder)
            if r["occluder"] != "none"]
    if not rows:
        return "No image shows an occluder."
    worn = max(rows, key=lambda r: float(r["image_share"]))
    hides = max(rows, key=lambda r: float(r["hidden_by_it_per_image"]))
    return (f"The most frequent occluder is {worn['occluder']} ({share(worn['image_share'])} of images); "
            f"{hides['occluder']} hides the most landmarks, {number(hides['hidden_by_it_per_image'], decimals)} per "
            f"image that wears it, of {count(len(rows), 'occluder type')}.")


# --------------------------------------------------------------------------- measurement


METHOD_NAMES = {
    "single_pixel": "the single pixel under each predicted canthus",
    "naive": "the naive window maximum at both predicted canthi",
    "skip_occluded": "skipping canthi the model calls occluded",
    "calibrated": "skipping canthi the model calls occluded, with the site calibration",
    "oracle": "skipping the truly occluded canthi (oracle)",
}


def describe_canthus_readings(summary: Any, *, lens_abstention: float | None = None,
                              bare_abstention: float | None = None, faces_found: tuple[int, int] | None = None,
                              decimals: int = 3) -> list[str]:
    """From `thermometry.summarise_readings` (method x occluder rows, "all" overall): the naive
    reading's error, the occlusion-aware reading's error on the faces it reads against the naive
    one on the same faces, its abstention, and the occluder that misleads the naive reading most."""
    rows = summary.to_dict("records") if hasattr(summary, "to_dict") else list(summary)
    overall = {r["method"]: r for r in rows if r.get("occluder_type") == "all"}
    if "naive" not in overall:
        return ["No canthus reading was taken on this dataset: nothing to report."]
    naive = overall["naive"]
    sentences = [] if faces_found is None else [
        f"The detector found {faces_found[0]} of {count(int(faces_found[1]), 'test face')}; a missed face gets no reading."]
    sentences += [f"Read at the predicted canthi by {METHOD_NAMES['naive']}, the temperature misses the true skin "
                 f"by {number(naive['mae_c'], decimals)} °C on average over {count(int(naive['n_images']), 'test face')} "
                 f"(mean signed error {number(naive['bias_c'], decimals, signed=True)} °C; negative reads cold)."]
    aware = next((m for m in ("calibrated", "skip_occluded") if m in overall), None)
    if aware is not None:
        r = overall[aware]
        if int(r["n_read"]) == 0:
            sentences.append(f"{capitalise(METHOD_NAMES[aware])}, the reading abstains on every face.")
        else:
            sentences.append(
                f"{capitalise(METHOD_NAMES[aware])}, it reads {r['n_read']} of {r['n_images']} faces (abstains on "
                f"{share(r['abstention_rate'])}) with a mean absolute error of {number(r['mae_c'], decimals)} °C, "
                f"against {number(r['naive_mae_same_images_c'], decimals)} °C for the naive reading on those same faces "
                "(one trained model; no interval).")
    worst = [r for r in rows if r["method"] == "naive" and r["occluder_type"] != "all" and not _is_missing(r["mae_c"])]
    if worst:
        w = max(worst, key=lambda r: float(r["mae_c"]))
        sentences.append(f"The naive reading is furthest off for faces with {_occluders(w['occluder_type'])}: "
                         f"{number(w['mae_c'], decimals)} °C over {count(int(w['n_images']), 'face')}.")
    if not _is_missing(lens_abstention) or not _is_missing(bare_abstention):
        sentences.append(f"The occlusion-aware reading abstains on {share(lens_abstention)} of faces behind glasses or "
                         f"sunglasses and on {share(bare_abstention)} of faces whose canthi are both bare.")
    return sentences


def _occluders(group: str) -> str:
    """An occluder group of the tables as words: "none" -> "no occluder", "several" -> "several occluders"."""
    return {"none": "no occluder", "several": "several occluders"}.get(str(group), str(group))


def describe_pose(pose: Mapping[str, Any], decimals: int = 2, *, n_seeds: int = 1) -> str:
    """Head-pose errors (degrees) of `metrics["pose"]` in a sentence (with `n_seeds` > 1: each error
    the mean of that many training seeds' values)."""
    axes = ", ".join(f"{axis} {number(pose[f'mae_{axis}'], decimals)}°" for axis in ("yaw", "pitch", "roll")
                     if f"mae_{axis}" in pose)
    seeds = f" ({seeds_phrase(n_seeds)})" if n_seeds > 1 else ""
    return (f"Head pose on {count(int(pose['n_images']), 'test image')}{seeds}: mean geodesic error "
            f"{number(pose['geodesic_mean'], decimals)}° (median {number(pose['geodesic_median'], decimals)}°); "
            f"mean absolute error per axis {axes}.")


def describe_explorer_views(views: Mapping[str, Mapping[str, Any]]) -> str:
    """One explorer scenario (`OcclusionExplorer.state` per model, all on the same face and occluders):
    the landmarks occluded in truth, and per model how many it calls occluded and how many of its 68
    calls agree with the truth."""
    import numpy as np

    first = next(iter(views.values()))
    truth = np.asarray(first["gt_occluded"], dtype=bool)
    kinds = " and ".join(first.get("occluders") or []) or "no occluder"
    head = f"With {kinds}: {truth.sum()} of {truth.size} landmarks are occluded in truth"
    calls = []
    for model, view in views.items():
        if "pred_occluded" not in view:
            continue
        called = np.asarray(view["pred_occluded"], dtype=bool)
        calls.append(f"{model} calls {called.sum()} occluded and agrees with the truth on "
                     f"{int((called == truth).sum())} of {truth.size}")
    if not calls:
        return head + "; no model predicts on this view."
    threshold = first.get("threshold")
    at = "" if threshold is None else f" (threshold {number(threshold, 'g')} on P(occluded))"
    return f"{head}; " + ", ".join(calls) + f"{at}."


def describe_mask_iou(iou: float, n_faces: int, decimals: int = 3) -> str:
    """Stage 1's mask IoU on a few validation faces."""
    return (f"On the first {count(int(n_faces), 'validation face')} the best stage-1 checkpoint's mask IoU at "
            f"probability 0.5 is {number(float(iou), decimals)} (1: the predicted disks cover the targets exactly; "
            "0: no overlap).")


def describe_reading_choice(settings: Mapping[str, Any] | None) -> str:
    """The canthus reading `thermometry.choose_reading` chose on the training and validation splits."""
    if not settings:
        return "No reading was chosen: the dataset has no hottest-canthus reference (canthus_skin_max_c)."
    known = {"window_fraction", "calibration_c", "threshold", "combine"}
    if not known <= set(settings):
        return f"The reading chosen without the test split: {describe_settings(settings)}."
    return (f"The reading chosen without the test split: a window of {number(settings['window_fraction'], 'g')} x the "
            f"outer-eye-corner distance, a site calibration of {number(settings['calibration_c'], 3, signed=True)} °C "
            f"(from the training split), abstention when P(occluded) reaches {number(settings['threshold'], 'g')} "
            f"at both canthi, and the canthi combined by their {settings['combine']}.")


def describe_seed_effect(one_seed: Sequence[Any], over_seeds: Sequence[Any], n_seeds: int) -> str:
    """How many of one seed's subject-bootstrap intervals exclude zero against how many of the
    intervals over seeds and subjects do."""
    k = sum(1 for i in one_seed if direction(*interval_parts(i)[1:]) != 0)
    m = sum(1 for i in over_seeds if direction(*interval_parts(i)[1:]) != 0)
    text = (f"With one training seed, {k} of {len(one_seed)} subject-bootstrap intervals exclude zero; over "
            f"{n_seeds} training seeds and the test subjects, {m} of {len(over_seeds)} do")
    if k and m == 0:
        text += ": what one seed resolves here, retraining does not confirm"
    return text + "."


def describe_scaling_study(study: Any, *, peer_nme: float | None = None,
                           metrics: Sequence[str] = ("roc_auc", "nme_median"), decimals: int = 3) -> list[str]:
    """From the scaling study's table (`scaling.point_row` rows: input_size, backbone, variant, n_seeds,
    diff_<metric>, _low, _high, variance, <model>_nme_median): M3MSTL minus the baseline at every
    point, a tally per metric, and the classical peer beside the deep models."""
    rows = study.to_dict("records") if hasattr(study, "to_dict") else list(study)
    if not rows:
        return ["The grid has no point: nothing to compare."]
    sentences, directions = [], {m: [] for m in metrics}
    for row in rows:
        items = [(m, row_interval(row, f"diff_{m}", f"diff_{m}_low", f"diff_{m}_high")) for m in metrics]
        for m, interval in items:
            directions[m].append(direction(*interval_parts(interval)[1:]))
        n_seeds = row.get("n_seeds")
        sentences.append(f"At {_point_label(row)}, " + describe_differences(
            "M3MSTL", "the baseline", items, variance=row.get("variance"),
            n_seeds=None if _is_missing(n_seeds) else int(n_seeds), decimals=decimals))
    sentences += [tally(directions[m], metric=m, a="M3MSTL", b="the baseline", what="points") for m in metrics]
    if not _is_missing(peer_nme):
        means = [(float(row[f"{model}_nme_median"]), model, _point_label(row)) for row in rows
                 for model in ("m3mstl", "baseline") if not _is_missing(row.get(f"{model}_nme_median"))]
        if means:
            lowest = min(means)
            below = sum(1 for value, _, _ in means if value < float(peer_nme))
            sentences.append(
                f"The classical peer's median NME is {number(peer_nme, decimals)} (one run); the lowest deep-model mean "
                f"on the grid is {number(lowest[0], decimals)} ({'M3MSTL' if lowest[1] == 'm3mstl' else 'the baseline'} "
                f"at {lowest[2]}), and {below} of {len(means)} deep-model means are below the peer's (no interval).")
    return sentences


def describe_recipes(curves: Any, decimals: int = 3) -> list[str]:
    """From `m3mstl.studies.recipes.recipe_curves` (one row per epoch of each recipe run): per model,
    each recipe's last validation NME and the compute it spent, lowest first (one seed: no interval)."""
    if not len(curves):
        return ["No recipe run finished on this data: no training curve to compare "
                "(benchmarks/bench_recipe.py trains them, on the default profile's data)."]
    sentences = []
    for model, part in curves.groupby("model", sort=False):
        ends = part.groupby("recipe", sort=False).agg(tflop=("tflop", "max"), val_nme=("val_nme", "last"))
        ends = ends.sort_values("val_nme")
        listed = "; ".join(f"{name} {number(row.val_nme, decimals)} after {number(row.tflop, 1)} TFLOP"
                           for name, row in ends.iterrows())
        name = {"m3mstl": "M3MSTL", "baseline": "The baseline"}.get(str(model), str(model))
        sentences.append(f"{name}, validation NME at the end of each recipe (one training seed, no interval; "
                         f"lowest first): {listed}.")
    return sentences


def _point_label(row: Mapping[str, Any]) -> str:
    parts = [f"{row['input_size']} px" if "input_size" in row else None, row.get("backbone"), row.get("variant")]
    return ", ".join(str(p) for p in parts if p)


def describe_detectors(choice: Any, test: Any, chosen: str, *, decimals: int = 3) -> list[str]:
    """Notebook 14's detectors: the validation recall the choice rests on, then each detector on the
    test frames (the rows of breakdown "all"): recall at IoU >= 0.5, mean IoU, false detections."""
    def records(table: Any) -> list[Mapping[str, Any]]:
        rows = table.to_dict("records") if hasattr(table, "to_dict") else list(table)
        return [r for r in rows if r.get("breakdown", "all") == "all"]

    def seeds_of(row: Mapping[str, Any]) -> str:  # a single run (the rule-based one trains nothing) says nothing
        n = row.get("n_seeds")
        return "" if _is_missing(n) or int(n) == 1 else f" ({seeds_phrase(int(n))})"

    val = ", ".join(f"{r['detector']} {number(r['recall'], decimals)}{seeds_of(r)}" for r in records(choice))
    sentences = [f"Recall at IoU >= 0.5 on the validation frames: {val}; the pipeline uses {chosen} (the higher "
                 "validation recall, then the higher mean IoU)."]
    for r in records(test):
        sentences.append(f"On {count(int(r['faces']), 'test face')}, {r['detector']} finds "
                         f"{number(r['recall'], decimals)} of them{seeds_of(r)}, with mean IoU "
                         f"{number(r['mean_iou'], decimals)} and {number(r['false_positives_per_frame'], decimals)} "
                         "false detections per frame.")
    return sentences


def describe_scene_detection(table: Any, *, decimals: int = 3) -> list[str]:
    """Notebook 14's detectors on whole camera scenes (`camera_frames.scene_detection` rows): per
    detector, its recall on faces at least 40 px wide overall and per scene kind, and its false
    detections per frame."""
    from m3mstl.evaluation.detection import TARGET_FACE_WIDTH_PX, TARGET_SIZE_LABEL

    rows = table.to_dict("records") if hasattr(table, "to_dict") else list(table)
    sentences = []
    for detector in dict.fromkeys(r["detector"] for r in rows):
        wide = {r["kind"]: r for r in rows if r["detector"] == detector and r["size"] == TARGET_SIZE_LABEL}
        overall = wide.get("all")
        if overall is None:
            continue
        n = overall.get("n_seeds")
        notes = [f"{kind} {number(r['recall'], decimals)}" for kind, r in wide.items() if kind != "all"]
        notes = "; ".join(filter(None, [", ".join(notes), "" if _is_missing(n) or int(n) == 1 else seeds_phrase(int(n))]))
        sentences.append(
            f"On whole camera scenes, {detector} finds {number(overall['recall'], decimals)} of "
            f"{count(int(overall['faces']), 'face')} at least {TARGET_FACE_WIDTH_PX:g} px wide"
            f"{f' ({notes})' if notes else ''}, with {number(overall['false_detections_per_frame'], decimals)} false "
            "detections per frame.")
    return sentences


def describe_choice(table: Any, *, label: str, value: str, chosen: str, what: str, decimals: int = 3) -> str:
    """A choice by the lowest `value` (e.g. validation median NME) among a table's rows."""
    rows = [r for r in (table.to_dict("records") if hasattr(table, "to_dict") else table)
            if not _is_missing(r.get(value))]
    picked = next((r for r in rows if str(r[label]) == str(chosen)), None)
    if picked is None:
        return f"{capitalise(str(chosen))} was chosen; the table has no {metric_label(value)} for it."
    others = [float(r[value]) for r in rows if r is not picked]
    rest = ("" if not others else
            f" (the other {count(len(others), 'candidate')}: {number(min(others), decimals)}"
            f"{'' if len(others) == 1 else f'-{number(max(others), decimals)}'})")
    return (f"Of {count(len(rows), 'candidate')} for {what}, {chosen} has the lowest {metric_label(value)}: "
            f"{number(picked[value], decimals)}{rest}.")


def describe_pipeline(pipeline: Any, *, decimals: int = 3) -> list[str]:
    """Notebook 14's landmarks from frames (`pipeline` rows: model, box "true box" / "detector box",
    n_seeds, median_nme, median_nme_sd, ratio_to_true_box): per model, its median NME from the
    detector's boxes and how many times its median from the true box that is."""
    rows = pipeline.to_dict("records") if hasattr(pipeline, "to_dict") else list(pipeline)
    sentences = []
    for model in dict.fromkeys(r["model"] for r in rows):
        by_box = {r["box"]: r for r in rows if r["model"] == model}
        detector, true = by_box.get("detector box"), by_box.get("true box")
        if detector is None or true is None:
            continue
        n = detector.get("n_seeds")
        seeds = "" if _is_missing(n) else seeds_phrase(int(n), sd=int(n) > 1)
        sentences.append(
            f"{capitalise(model)}: median NME {_value_with_sd(detector['median_nme'], detector.get('median_nme_sd'), decimals)} "
            f"from the detector's boxes against {_value_with_sd(true['median_nme'], true.get('median_nme_sd'), decimals)} "
            f"from the true box of its kind, {number(detector['ratio_to_true_box'], 2)} times as large"
            f"{f' ({seeds})' if seeds else ''}.")
    return sentences


# --------------------------------------------------------------------------- display


def markdown_text(sentences: Iterable[str]) -> str:
    """The sentences as a Markdown bullet list."""
    return "\n".join(f"- {s}" for s in sentences if s) + "\n"


def show(sentences: Iterable[str]):
    """The sentences as IPython Markdown, the last expression of a notebook's findings cell."""
    from IPython.display import Markdown

    return Markdown(markdown_text(sentences))
