"""Paired statistics for comparing two models evaluated on the same images.

- `paired_t_test` and `wilcoxon_signed_rank` on per-image values (NME), with effect sizes
  (Cohen's d_z, matched-pairs rank-biserial correlation); scipy does the tests.
- `mcnemar_exact` on per-(image, landmark) occlusion correctness: a binomial test on the
  discordant pairs (scipy.stats.binomtest).
- Subject-level (cluster) bootstrap intervals for differences in NME, accuracy, ROC-AUC and
  AP. Images of one subject are correlated, so resampling images pretends there is more
  independent data than there is and gives intervals that are too narrow; we resample
  SUBJECTS with replacement and take all their images. Intervals are percentile intervals
  widened for the few subjects a test split has (`percentile_tail`).
- `holm` correction across a family of comparisons, and mean/spread over seeds.
- Seed-aware intervals (`seed_subject_*`, `per_seed_t_interval`): a trained model is one draw
  from its training seed's distribution, so a difference between two single runs mixes the
  methods' difference with seed noise that no resampling of test subjects sees. With several
  seeds per model, the interval combines each model's variance across its own seeds (the two
  models' seeds are independent samples, never paired) with the subject-bootstrap variance
  (see `seed_subject_interval`). Every interval names the variance it includes
  (`variance`: SUBJECTS_ONLY, SEEDS_ONLY or SEEDS_AND_SUBJECTS).

Sign convention: every difference is a - b, where a is the first argument. To test whether
M3MSTL beats the baseline on NME, pass (baseline, m3mstl): a positive difference means the
baseline's error is larger.

The tests treat (image, landmark) pairs or images as independent; the bootstrap does not.
When they disagree, trust the bootstrap interval.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as scipy_stats
from sklearn.metrics import average_precision_score, roc_auc_score

from m3mstl.core.landmarks import NUM_LANDMARKS


class StatsInputError(ValueError):
    """Inputs a statistical procedure cannot use (length mismatch, NaN, too few pairs, ...)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TestResult:
    """One paired comparison, ready for a table row (`as_row`)."""

    test: str                  # "paired t-test", "Wilcoxon signed-rank", "exact McNemar"
    statistic: float
    p_value: float
    n: int                     # pairs used by the test
    estimate: float            # mean (t-test), median (Wilcoxon) of a - b; accuracy a - b (McNemar)
    effect_size: float
    effect_size_name: str
    comparison: str = ""       # free label, e.g. "baseline vs m3mstl: nme_inter_ocular"
    p_holm: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(row.pop("details"))
        return row

    # pytest would try to collect a class named Test*; this is not a test case.
    __test__ = False


def results_table(results: Sequence[TestResult]) -> pd.DataFrame:
    """Rows of several TestResults (details expanded into columns)."""
    return pd.DataFrame([r.as_row() for r in results])


# --------------------------------------------------------------------------- input handling


def _paired_arrays(a: Sequence[float], b: Sequence[float], drop_nan: bool) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise StatsInputError(f"paired samples differ in length: {a.size} and {b.size}")
    missing = ~(np.isfinite(a) & np.isfinite(b))
    if missing.any():
        if not drop_nan:
            raise StatsInputError(
                f"{int(missing.sum())} of {a.size} pairs have a NaN or infinite value"
                " (pass drop_nan=True to leave those pairs out)"
            )
        a, b = a[~missing], b[~missing]
    if a.size < 2:
        raise StatsInputError(f"a paired test needs at least 2 complete pairs, got {a.size}")
    return a, b


def paired_columns(
    table_a: pd.DataFrame, table_b: pd.DataFrame, column: str, *, on: str = "image_id"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align one column of two per-image tables (metrics.per_image_table) on image_id.

    Returns (values_a, values_b, subjects). Both tables must cover the same images: a
    paired comparison on different image sets would be meaningless.
    """
    for name, table in (("table_a", table_a), ("table_b", table_b)):
        missing = {on, "subject", column} - set(table.columns)
        if missing:
            raise StatsInputError(f"{name} lacks column(s) {sorted(missing)}")
        if table[on].duplicated().any():
            raise StatsInputError(f"{name} has duplicate {on} values")
    ids_a, ids_b = set(table_a[on]), set(table_b[on])
    if ids_a != ids_b:
        raise StatsInputError(
            f"the tables cover different images: {len(ids_a - ids_b)} only in table_a,"
            f" {len(ids_b - ids_a)} only in table_b"
        )
    merged = table_a[[on, "subject", column]].merge(
        table_b[[on, "subject", column]], on=on, suffixes=("_a", "_b"), validate="one_to_one"
    )
    if (merged["subject_a"] != merged["subject_b"]).any():
        raise StatsInputError("the tables disagree on the subject of some images")
    return (merged[f"{column}_a"].to_numpy(float), merged[f"{column}_b"].to_numpy(float),
            merged["subject_a"].to_numpy())


# --------------------------------------------------------------------------- effect sizes


def cohens_dz(a: Sequence[float], b: Sequence[float]) -> float:
    """Cohen's d_z for paired samples: mean(a - b) / sd(a - b) (sample sd, ddof = 1)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    sd = diff.std(ddof=1)
    return float(diff.mean() / sd) if sd > 0 else float("nan")


def rank_biserial(a: Sequence[float], b: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014): (R+ - R-) / (R+ + R-).

    Ranks are those of |a - b| over the non-zero differences (average ranks for ties),
    the same pairs scipy's Wilcoxon test uses with zero_method="wilcox". In [-1, 1];
    +1 when every pair has a > b.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diff = diff[diff != 0]
    if diff.size == 0:
        return float("nan")
    ranks = scipy_stats.rankdata(np.abs(diff))
    r_plus, r_minus = ranks[diff > 0].sum(), ranks[diff < 0].sum()
    return float((r_plus - r_minus) / (r_plus + r_minus))


# --------------------------------------------------------------------------- tests


def paired_t_test(
    a: Sequence[float], b: Sequence[float], *, comparison: str = "", drop_nan: bool = False
) -> TestResult:
    """scipy.stats.ttest_rel(a, b) (two-sided) with Cohen's d_z."""
    a, b = _paired_arrays(a, b, drop_nan)
    result = scipy_stats.ttest_rel(a, b)
    return TestResult(
        test="paired t-test", statistic=float(result.statistic), p_value=float(result.pvalue), n=int(a.size),
        estimate=float(np.mean(a - b)), effect_size=cohens_dz(a, b), effect_size_name="cohens_dz",
        comparison=comparison, details={"df": int(a.size - 1)},
    )


def wilcoxon_signed_rank(
    a: Sequence[float], b: Sequence[float], *, comparison: str = "", drop_nan: bool = False
) -> TestResult:
    """scipy.stats.wilcoxon(a, b) (two-sided, zero differences dropped) with the rank-biserial r."""
    a, b = _paired_arrays(a, b, drop_nan)
    n_nonzero = int(np.count_nonzero(a - b))
    if n_nonzero == 0:
        raise StatsInputError("Wilcoxon signed-rank: every difference is zero, nothing to test")
    result = scipy_stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    return TestResult(
        test="Wilcoxon signed-rank", statistic=float(result.statistic), p_value=float(result.pvalue),
        n=int(a.size), estimate=float(np.median(a - b)), effect_size=rank_biserial(a, b),
        effect_size_name="rank_biserial", comparison=comparison, details={"n_nonzero": n_nonzero},
    )


def mcnemar_exact(
    correct_a: np.ndarray, correct_b: np.ndarray, mask: np.ndarray | None = None, *, comparison: str = ""
) -> TestResult:
    """Exact McNemar test on paired correctness (e.g. metrics.occlusion_correct of two models).

    b = pairs only model a gets right, c = pairs only model b gets right. Under H0 the
    discordant pairs split 50/50, so p = binomtest(b, b + c, 0.5), two-sided. `mask`
    (same shape) selects the pairs to use, e.g. the labelled landmarks.
    Effect size: the discordant odds ratio b / c; estimate: accuracy of a minus b.
    """
    correct_a = np.asarray(correct_a, dtype=bool)
    correct_b = np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise StatsInputError(f"correctness arrays differ in shape: {correct_a.shape} and {correct_b.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != correct_a.shape:
            raise StatsInputError(f"mask shape {mask.shape} differs from the correctness shape {correct_a.shape}")
        correct_a, correct_b = correct_a[mask], correct_b[mask]
    correct_a, correct_b = correct_a.ravel(), correct_b.ravel()
    if correct_a.size == 0:
        raise StatsInputError("McNemar's test got no pairs")
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(scipy_stats.binomtest(only_a, discordant, 0.5).pvalue)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds_ratio = float(np.float64(only_a) / only_b) if discordant else float("nan")
    return TestResult(
        test="exact McNemar", statistic=float(only_a), p_value=p_value, n=int(correct_a.size),
        estimate=float(correct_a.mean() - correct_b.mean()), effect_size=odds_ratio,
        effect_size_name="discordant_odds_ratio", comparison=comparison,
        details={"b_only_a_correct": only_a, "c_only_b_correct": only_b, "n_discordant": discordant},
    )


# --------------------------------------------------------------------------- Holm


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction. Returns (adjusted p-values, reject at alpha), input order.

    Sort p ascending; the i-th smallest (i = 1..m) is multiplied by m - i + 1, then a running
    maximum keeps the adjusted values monotone, capped at 1. Rejecting where adjusted <= alpha
    is the same as Holm's sequential procedure (stop at the first p_(i) > alpha / (m - i + 1)).
    """
    p = np.asarray(p_values, dtype=float).ravel()
    if p.size == 0:
        return p.copy(), np.zeros(0, dtype=bool)
    if not ((p >= 0) & (p <= 1)).all():
        raise StatsInputError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted, adjusted <= alpha


def apply_holm(results: Sequence[TestResult], alpha: float = 0.05) -> list[TestResult]:
    """The same results with p_holm filled in, correcting across the whole family given."""
    adjusted, _ = holm([r.p_value for r in results], alpha)
    return [replace(r, p_holm=float(p)) for r, p in zip(results, adjusted)]


# --------------------------------------------------------------------------- cluster bootstrap


#: What each kind of interval's width accounts for (the `variance` field of every interval).
SUBJECTS_ONLY = "test subjects only (one training seed: seed variance not included)"
SEEDS_ONLY = "training seeds only (test subjects fixed: subject variance not included)"
SEEDS_AND_SUBJECTS = "training seeds and test subjects"


@dataclass(frozen=True)
class BootstrapInterval:
    """Bootstrap interval of a - b from a subject-level (cluster) bootstrap (see percentile_tail)."""

    metric: str
    estimate: float            # a - b on the data as observed
    low: float
    high: float
    standard_error: float      # sd of the bootstrap distribution
    confidence: float
    n_resamples: int
    n_clusters: int            # subjects (or images, for the naive image-level bootstrap)
    n_failed: int = 0          # resamples where the metric was undefined (e.g. one class only)
    method: str = "expanded_percentile"
    # Which variance the interval includes: resampling subjects of one trained model pair says
    # nothing about how much the difference moves with the training seed.
    variance: str = SUBJECTS_ONLY

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    def covers(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)


def cluster_resample_counts(
    clusters: Sequence[Any], n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Subject multiplicities of each bootstrap resample.

    Returns (counts (n_resamples, S), cluster_index (N,)): counts[r, s] is how often subject s
    was drawn in resample r (S draws with replacement), and cluster_index maps each image to
    its subject. An image's weight in resample r is counts[r, cluster_index[image]].
    """
    if n_resamples < 1:
        raise StatsInputError(f"n_resamples must be positive, got {n_resamples}")
    labels, cluster_index = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    n_clusters = labels.size
    if n_clusters < 2:
        raise StatsInputError(f"a cluster bootstrap needs at least 2 subjects, got {n_clusters}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_resamples)
    return counts, cluster_index


BOOTSTRAP_METHODS = ("expanded_percentile", "percentile")


def percentile_tail(confidence: float, n_clusters: int, method: str = "expanded_percentile") -> float:
    """Lower-tail probability at which to read the bootstrap distribution.

    "percentile" reads it at (1 - confidence) / 2. With few subjects that interval is too
    narrow (it uses z instead of t quantiles and the plug-in variance, (S - 1)/S of the
    unbiased one): about 92-93 % coverage at 30 subjects for a nominal 95 %, and a TFD68
    test split has about 27 subjects. "expanded_percentile" (Hesterberg 2015, "What teachers
    should know about the bootstrap") reads it at Phi(-sqrt(S / (S - 1)) * t_{S-1}), which makes
    the interval of a mean match the t-interval's width; it tends to the plain percentile
    interval as S grows.
    """
    if not 0.0 < confidence < 1.0:
        raise StatsInputError(f"confidence must lie in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    if method == "percentile":
        return tail
    if method != "expanded_percentile":
        raise StatsInputError(f"unknown bootstrap method {method!r}; choose one of {BOOTSTRAP_METHODS}")
    t_quantile = scipy_stats.t.ppf(1.0 - tail, df=n_clusters - 1)
    return float(scipy_stats.norm.cdf(-np.sqrt(n_clusters / (n_clusters - 1)) * t_quantile))


def _percentile_interval(
    metric: str, estimate: float, replicates: np.ndarray, confidence: float, n_clusters: int, method: str
) -> BootstrapInterval:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        raise StatsInputError(f"bootstrap of {metric}: the metric was undefined in every resample")
    tail = percentile_tail(confidence, n_clusters, method)
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return BootstrapInterval(
        metric=metric, estimate=float(estimate), low=float(low), high=float(high),
        standard_error=float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
        confidence=float(confidence), n_resamples=int(replicates.size), n_clusters=int(n_clusters),
        n_failed=int(replicates.size - finite.size), method=method,
    )


def bootstrap_ratio_difference(
    numerator_a: np.ndarray,
    numerator_b: np.ndarray,
    denominator: np.ndarray,
    clusters: Sequence[Any],
    *,
    metric: str,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "expanded_percentile",
) -> BootstrapInterval:
    """Cluster bootstrap of sum(num_a - num_b) / sum(den) over images: fully vectorised.

    Covers the mean per-image NME difference (numerators = NME, denominator = 1) and the
    accuracy difference over landmarks (numerators = correct counts, denominator = labelled
    counts). Per-subject sums are formed once; each resample is then a weighted sum.
    """
    numerator = np.asarray(numerator_a, dtype=float) - np.asarray(numerator_b, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    if not (numerator.shape == denominator.shape == (len(clusters),)):
        raise StatsInputError(
            f"bootstrap of {metric}: values ({numerator.shape}), denominators ({denominator.shape}) and"
            f" subjects ({len(clusters)}) must have one entry per image"
        )
    if not (np.isfinite(numerator).all() and np.isfinite(denominator).all()):
        raise StatsInputError(f"bootstrap of {metric}: NaN or infinite values (drop those images first)")
    counts, cluster_index = cluster_resample_counts(clusters, n_resamples, seed)
    n_clusters = counts.shape[1]
    numerator_per_cluster = np.bincount(cluster_index, weights=numerator, minlength=n_clusters)
    denominator_per_cluster = np.bincount(cluster_index, weights=denominator, minlength=n_clusters)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = (counts @ numerator_per_cluster) / (counts @ denominator_per_cluster)
    estimate = numerator.sum() / denominator.sum()
    return _percentile_interval(metric, estimate, replicates, confidence, n_clusters, method)


def bootstrap_mean_difference(
    a: Sequence[float],
    b: Sequence[float],
    clusters: Sequence[Any],
    *,
    metric: str = "mean difference",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "expanded_percentile",
) -> BootstrapInterval:
    """Interval for mean(a) - mean(b) of per-image values (e.g. NME), resampling subjects.

    Passing one distinct cluster per image gives the naive image-level bootstrap, which
    under-covers when images of a subject are correlated (shown in tests/test_stats.py).
    """
    a = np.asarray(a, dtype=float)
    return bootstrap_ratio_difference(
        a, np.asarray(b, dtype=float), np.ones_like(a), clusters,
        metric=metric, n_resamples=n_resamples, confidence=confidence, seed=seed, method=method,
    )


def bootstrap_accuracy_difference(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    labelled: np.ndarray,
    subjects: Sequence[Any],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "expanded_percentile",
) -> BootstrapInterval:
    """Occlusion accuracy of a minus b over labelled (image, landmark) pairs, resampling subjects.

    correct_a/b, labelled: (N, 68) bool (metrics.occlusion_correct gives the former).
    """
    labelled = np.asarray(labelled, dtype=bool)
    shape = (len(subjects), NUM_LANDMARKS)
    for name, array in (("correct_a", correct_a), ("correct_b", correct_b), ("labelled", labelled)):
        if np.shape(array) != shape:
            raise StatsInputError(f"{name} must have shape {shape}, got {np.shape(array)}")
    hits_a = (np.asarray(correct_a, dtype=bool) & labelled).sum(axis=1)
    hits_b = (np.asarray(correct_b, dtype=bool) & labelled).sum(axis=1)
    return bootstrap_ratio_difference(
        hits_a, hits_b, labelled.sum(axis=1), subjects, metric="occlusion accuracy",
        n_resamples=n_resamples, confidence=confidence, seed=seed, method=method,
    )


_RANKING_METRICS: dict[str, Callable[..., float]] = {
    "roc_auc": roc_auc_score,
    "average_precision": average_precision_score,
}
#: Resamples x score groups held in memory at once by the vectorised ranking bootstrap.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class _RankingTables:
    """Per-subject counts at the distinct scores that hold a positive (descending score).

    Only those scores change TP, so the curves need nothing else: negatives are binned by
    the first such score at or below their own (bin n_pos_scores = below every positive).
    """

    positives: sparse.csr_matrix     # (subjects, P): positives at positive-score p
    negative_bins: sparse.csr_matrix  # (subjects, P + 1): negatives first counted at p
    negative_ties: sparse.csr_matrix  # (subjects, P): negatives with exactly score p


def _ranking_tables(scores: np.ndarray, positive: np.ndarray, pair_cluster: np.ndarray, n_clusters: int) -> _RankingTables:
    _, group = np.unique(-scores, return_inverse=True)  # group 0 = highest score
    positive_groups = np.unique(group[positive])
    n_pos = positive_groups.size
    pos_bin = np.searchsorted(positive_groups, group[positive])
    neg_group = group[~positive]
    neg_bin = np.searchsorted(positive_groups, neg_group, side="left")  # first positive score <= own score
    tied = neg_bin < n_pos
    tied[tied] = positive_groups[neg_bin[tied]] == neg_group[tied]
    neg_cluster = pair_cluster[~positive]

    def table(rows: np.ndarray, cols: np.ndarray, width: int) -> sparse.csr_matrix:
        return sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_clusters, width))

    return _RankingTables(
        positives=table(pair_cluster[positive], pos_bin, n_pos),
        negative_bins=table(neg_cluster, neg_bin, n_pos + 1),
        negative_ties=table(neg_cluster[tied], neg_bin[tied], n_pos),
    )


def weighted_ranking_replicates(
    scores: np.ndarray, positive: np.ndarray, pair_cluster: np.ndarray, counts: np.ndarray, metric: str
) -> np.ndarray:
    """ROC-AUC or AP for every resample at once; equal to scikit-learn with sample_weight.

    In resample r a pair of subject s weighs counts[r, s]. At each distinct score holding a
    positive (descending), the weighted new positives dTP, the cumulative TP and FP (ties
    included) and the tied negatives are linear in the counts, so each is a product of the
    resample counts with a sparse per-subject table:
      ROC-AUC = sum_p dTP_p (N - FP_p + ties_p / 2) / (P N)   (Mann-Whitney with half ties,
                                                               = sklearn's trapezoid area)
      AP      = sum_p dTP_p / P * TP_p / (TP_p + FP_p)        (sklearn's step sum)
    NaN where a resample holds one class only. A loop of scikit-learn calls took about a
    minute for 1000 resamples of 80k landmarks; this takes seconds.
    """
    if metric not in _RANKING_METRICS:
        raise StatsInputError(f"unknown ranking metric {metric!r}; choose one of {sorted(_RANKING_METRICS)}")
    tables = _ranking_tables(np.asarray(scores, float), np.asarray(positive, bool), pair_cluster, counts.shape[1])
    n_columns = tables.negative_bins.shape[1]
    chunk = max(1, _CHUNK_CELLS // n_columns)
    replicates = np.full(counts.shape[0], np.nan)
    for start in range(0, counts.shape[0], chunk):
        weights = counts[start:start + chunk].T.astype(float)  # (subjects, chunk)
        # (scores, chunk) layout: the cumulative sums run down contiguous rows.
        d_tp = tables.positives.T @ weights
        negatives = tables.negative_bins.T @ weights
        tp = np.cumsum(d_tp, axis=0)
        fp = np.cumsum(negatives[:-1], axis=0)
        total_p, total_n = tp[-1], negatives.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if metric == "roc_auc":
                ties = tables.negative_ties.T @ weights
                value = (d_tp * (total_n - fp + 0.5 * ties)).sum(axis=0) / (total_p * total_n)
            else:
                # Scores whose positives were not drawn have dTP = 0 and may have TP + FP = 0.
                precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
                value = (d_tp * precision).sum(axis=0) / total_p
        defined = (total_p > 0) & (total_n > 0)
        replicates[start:start + chunk] = np.where(defined, value, np.nan)
    return replicates


def bootstrap_ranking_difference(
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    occluded: np.ndarray,
    labelled: np.ndarray,
    subjects: Sequence[Any],
    *,
    metric: str = "roc_auc",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "expanded_percentile",
) -> BootstrapInterval:
    """ROC-AUC or AP of a minus b on occlusion probabilities, resampling subjects.

    A subject drawn k times weighs k (as scikit-learn's sample_weight), which equals taking
    all its images k times; both models see the same resamples. Resamples with a single
    class (metric undefined) are counted in n_failed and left out of the interval. The
    estimate is scikit-learn's metric on the data as observed.
    """
    if metric not in _RANKING_METRICS:
        raise StatsInputError(f"unknown ranking metric {metric!r}; choose one of {sorted(_RANKING_METRICS)}")
    score = _RANKING_METRICS[metric]
    labelled = np.asarray(labelled, dtype=bool)
    shape = (len(subjects), NUM_LANDMARKS)
    for name, array in (("prob_a", prob_a), ("prob_b", prob_b), ("occluded", occluded), ("labelled", labelled)):
        if np.shape(array) != shape:
            raise StatsInputError(f"{name} must have shape {shape}, got {np.shape(array)}")
    y_true = np.asarray(occluded, dtype=bool)[labelled]
    score_a = np.asarray(prob_a, dtype=float)[labelled]
    score_b = np.asarray(prob_b, dtype=float)[labelled]
    if not (np.isfinite(score_a).all() and np.isfinite(score_b).all()):
        raise StatsInputError(f"bootstrap of {metric}: NaN probabilities at labelled landmarks")
    if y_true.all() or not y_true.any():
        raise StatsInputError(f"bootstrap of {metric}: the data hold only one class")
    counts, cluster_index = cluster_resample_counts(subjects, n_resamples, seed)
    pair_cluster = np.broadcast_to(cluster_index[:, None], labelled.shape)[labelled]
    replicates = (weighted_ranking_replicates(score_a, y_true, pair_cluster, counts, metric)
                  - weighted_ranking_replicates(score_b, y_true, pair_cluster, counts, metric))
    estimate = score(y_true, score_a) - score(y_true, score_b)
    return _percentile_interval(metric, estimate, replicates, confidence, counts.shape[1], method)


# --------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class SeedSpread:
    """Mean and spread of one metric over training seeds."""

    mean: float
    std: float          # sample sd (ddof = 1); NaN with a single seed
    n_seeds: int
    minimum: float
    maximum: float

    def format(self, decimals: int = 3) -> str:
        if self.n_seeds == 1 or not np.isfinite(self.std):
            return f"{self.mean:.{decimals}f}"
        return f"{self.mean:.{decimals}f} ± {self.std:.{decimals}f}"


def seed_spread(values: Sequence[float]) -> SeedSpread:
    """Mean, sample sd, count, min and max of a metric over seeds (NaN values refused)."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise StatsInputError(f"seed_spread needs finite values, got {values.tolist()}")
    return SeedSpread(
        mean=float(values.mean()), std=float(values.std(ddof=1)) if values.size > 1 else float("nan"),
        n_seeds=int(values.size), minimum=float(values.min()), maximum=float(values.max()),
    )


def summarise_over_seeds(table: pd.DataFrame, by: str | Sequence[str], metrics: Sequence[str] | None = None, *,
                         constant: Sequence[str] = ()) -> pd.DataFrame:
    """Collapse one row per (group, training seed) into one row per group, in order of first appearance.

    Columns: the `by` keys, n_seeds, the `constant` columns (the same for every seed, such as the
    test faces: their first value), then for each metric its mean over seeds followed by
    `<metric>_sd` (sample sd, ddof=1: NaN with one seed). `metrics` None takes every numeric column
    that is not a key, a constant or "seed". A metric no seed of a group has (a landmarks-only model's
    occlusion numbers) stays NaN. The one summary over seeds of every table in the project."""
    keys = [by] if isinstance(by, str) else list(by)
    if metrics is None:
        metrics = [c for c in table.columns
                   if c not in (*keys, *constant, "seed") and pd.api.types.is_numeric_dtype(table[c])]
    missing = (set(keys) | set(metrics) | set(constant)) - set(table.columns)
    if missing:
        raise StatsInputError(f"summarise_over_seeds: table lacks column(s) {sorted(missing)}")
    values = table[list(metrics)].apply(pd.to_numeric, errors="coerce")
    grouped = values.groupby([table[k] for k in keys], sort=False)
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    summary = pd.DataFrame(index=mean.index)
    summary["n_seeds"] = grouped.size()
    for column in constant:
        summary[column] = table.groupby(keys, sort=False)[column].first()
    for metric in metrics:
        summary[metric], summary[f"{metric}_sd"] = mean[metric], sd[metric]
    return summary.reset_index()


# --------------------------------------------------------------------------- seed-aware intervals


@dataclass(frozen=True)
class SeedAwareInterval:
    """Interval for the difference a - b between two training procedures, each trained with
    several seeds and evaluated on the same test images. `variance` says what its width includes."""

    metric: str
    estimate: float            # mean over a's seeds minus mean over b's seeds, each on the whole test set
    low: float
    high: float
    standard_error: float
    df: float                  # degrees of freedom of the t quantile
    confidence: float
    n_seeds: int               # training seeds of a (of the differences, for per_seed_t_interval)
    n_subjects: int
    seed_sd: float             # sd over a's seeds of its whole-test-set metric (ddof 1; of the differences
                               # for per_seed_t_interval)
    subject_se: float          # subject-bootstrap standard error of the seed-averaged difference
    variance: str
    method: str
    # b's seeds: its own sample, not paired with a's (NaN/0 for per_seed_t_interval). Last, so
    # tables keep their earlier column order.
    n_seeds_b: int = 0
    seed_sd_b: float = float("nan")

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    def covers(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)


def per_seed_t_interval(differences: Sequence[float], *, metric: str = "difference",
                        confidence: float = 0.95, n_subjects: int = 0) -> SeedAwareInterval:
    """t-interval (df = seeds - 1) on per-seed differences a_s - b_s, each on the whole test set.

    Its width is the spread over training seeds only: the test subjects are the same in every
    seed, so it answers "would retraining change the difference on THIS test set", not "on new
    subjects". `seed_subject_interval` adds the subject variance.
    """
    d = np.asarray(differences, dtype=float).ravel()
    if d.size < 2 or not np.isfinite(d).all():
        raise StatsInputError(f"per_seed_t_interval needs at least 2 finite per-seed differences, got {d.tolist()}")
    se = float(d.std(ddof=1) / np.sqrt(d.size))
    df = float(d.size - 1)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df)) * se
    return SeedAwareInterval(
        metric=metric, estimate=float(d.mean()), low=float(d.mean() - half), high=float(d.mean() + half),
        standard_error=se, df=df, confidence=float(confidence), n_seeds=int(d.size), n_subjects=int(n_subjects),
        seed_sd=float(d.std(ddof=1)), subject_se=float("nan"), variance=SEEDS_ONLY, method="t on per-seed differences",
    )


SEED_DF_METHODS = ("satterthwaite_upper", "satterthwaite", "seeds")


def seed_subject_interval(per_seed_a: Sequence[float], per_seed_b: Sequence[float], replicates_a: np.ndarray,
                          replicates_b: np.ndarray, n_subjects: int, *, metric: str = "difference",
                          confidence: float = 0.95, df_method: str = "satterthwaite_upper") -> SeedAwareInterval:
    """t-interval for mean_s a_s - mean_t b_t with seed AND subject variance, seeds independent per model.

    per_seed_a (K_a,), per_seed_b (K_b,): each training seed's metric on the whole test set.
    replicates_a (K_a, R), replicates_b (K_b, R): the same metric in R subject-bootstrap resamples,
        the SAME R resamples for every seed of both models (so the two models keep their subject
        pairing: both are scored on the same test images).

    The two models' seeds are separate trainings: seed k of a has nothing to do with seed k of b,
    so any pairing of them is arbitrary, and a variance from per-seed differences a_k - b_k changes
    with it (one published result reached zero under one pairing and excluded it under 2 of 6).
    Here each model's seeds are an independent sample, and nothing depends on their order.
    Variance of the estimate D = mean_s a_s - mean_t b_t, three components (the test subjects are
    shared by all seeds, so the spread over seeds holds no subject variance, and vice versa):
      seed part of a  A_a = var_s(a_s) / K_a                                   (ddof 1)
      seed part of b  A_b = var_t(b_t) / K_b
      subject part    B   = var_r(mean_s rep_a[s, r] - mean_t rep_b[t, r]) * S / (S - 1)
    (the factor S/(S-1) undoes the plug-in bootstrap's shrinkage, as in `percentile_tail`). The
    seed x subject interaction enters both seed and subject parts, so the sum errs on the wide side.

    Quantile: Student t; df_method chooses its degrees of freedom (A_a, A_b and B carry K_a - 1,
    K_b - 1 and S - 1 df):
      "satterthwaite"        Welch-Satterthwaite over the three parts: Welch's seed df (2-4 with 3
                             seeds each) when seeds dominate, S - 1 when subjects do. Under-covers
                             when ONE model's seeds dominate (as M3MSTL's, whose seed sd of NME
                             is 2-6x the baseline's at most archived grid points): the true df is
                             then K_a - 1, but a seed part that happens to come out small hands the
                             df to the subject part just when the standard error is too small.
      "satterthwaite_upper"  (default) the same formula with each seed part at its one-sided upper
                             confidence limit (A nu / chi2_nu quantile 1 - confidence; x19.5 for
                             2 df at 95 %); the standard error keeps the estimates. An underestimated
                             seed part then still weighs in the df.
      "seeds"                min(K_a, K_b) - 1, the smallest value the Satterthwaite df can take
                             whatever the parts' sizes: safe, but twice as wide as needed when
                             subjects dominate.
    Coverage of nominal 95 % intervals measured in simulations with known components (the model of
    tests/test_stats.py: 20 subjects x 4 images, image sd 0.02, 4000 simulations each, binomial sd
    0.004), width as the median ratio to the oracle interval (known variance, z quantile); "paired"
    is the former interval on per-seed differences a_k - b_k with seeds matched by position:
      seed sd a, b; subject sd   satterthwaite_upper  satterthwaite  seeds        paired (satterthwaite)
      0.02, 0.02; 0.005          0.970 (1.49x)        0.962 (1.45x)  0.993 (2.0x)  0.931 (1.76x)
      0.02, 0.004; 0.005         0.954 (1.67x)        0.928 (1.54x)  0.982 (1.9x)  0.930 (1.67x)
      0.01, 0.002; 0.01          0.981 (1.66x)        0.944 (1.19x)  0.997 (2.0x)  0.936 (1.25x)
      0, 0; 0.02                 0.982 (1.19x)        0.961 (1.08x)  1.000 (2.2x)  0.961 (1.08x)
      0.02, 0.004; 0.005, 3 v 5  0.959 (1.80x)        0.923 (1.59x)  0.976 (1.9x)
    (3 seeds per model unless stated). With 2 seeds per model every seed variance has 1 df, and
    "satterthwaite_upper" is much wider when subjects dominate (about 2.9x the oracle).
    """
    if df_method not in SEED_DF_METHODS:
        raise StatsInputError(f"unknown df_method {df_method!r}; choose one of {SEED_DF_METHODS}")
    a, b = _per_seed_values(per_seed_a, "per_seed_a"), _per_seed_values(per_seed_b, "per_seed_b")
    rep_a = _seed_replicates(replicates_a, a.size, "replicates_a")
    rep_b = _seed_replicates(replicates_b, b.size, "replicates_b")
    if rep_a.shape[1] != rep_b.shape[1]:
        raise StatsInputError(f"replicates_a and replicates_b must come from the same resamples, got "
                              f"{rep_a.shape[1]} and {rep_b.shape[1]}")
    if n_subjects < 2:
        raise StatsInputError(f"a subject variance needs at least 2 subjects, got {n_subjects}")
    seed_part_a, seed_part_b = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    subject_part = _subject_part(rep_a, rep_b, n_subjects, metric)
    df = _seed_subject_df([(seed_part_a, a.size - 1), (seed_part_b, b.size - 1)], (subject_part, n_subjects - 1),
                          df_method, confidence)
    se = float(np.sqrt(seed_part_a + seed_part_b + subject_part))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df)) * se
    estimate = float(a.mean() - b.mean())
    return SeedAwareInterval(
        metric=metric, estimate=estimate, low=estimate - half, high=estimate + half, standard_error=se, df=df,
        confidence=float(confidence), n_seeds=int(a.size), n_seeds_b=int(b.size), n_subjects=int(n_subjects),
        seed_sd=float(a.std(ddof=1)), seed_sd_b=float(b.std(ddof=1)), subject_se=float(np.sqrt(subject_part)),
        variance=SEEDS_AND_SUBJECTS,
        method=f"t ({df_method} df): each model's seeds an independent sample (unpaired) + subject bootstrap",
    )


def _per_seed_values(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size < 2:
        raise StatsInputError(f"a seed-aware interval needs at least 2 seeds per model, got {array.size} in {name}")
    if not np.isfinite(array).all():
        raise StatsInputError(f"non-finite per-seed values in {name}: {array.tolist()}")
    return array


def _seed_replicates(replicates: np.ndarray, n_seeds: int, name: str) -> np.ndarray:
    array = np.asarray(replicates, dtype=float)
    if array.ndim != 2 or array.shape[0] != n_seeds:
        raise StatsInputError(f"{name} must be ({n_seeds} seeds, resamples), got {array.shape}")
    return array


def _subject_part(rep_a: np.ndarray, rep_b: np.ndarray, n_subjects: int, metric: str) -> float:
    """Subject-bootstrap variance of the seed-averaged difference, unbiased for the S subjects.
    Averaging each model over its own seeds first keeps the variance free of seed order."""
    averaged = rep_a.mean(axis=0) - rep_b.mean(axis=0)
    averaged = averaged[np.isfinite(averaged)]  # resamples where the metric was undefined
    if averaged.size < 2:
        raise StatsInputError(f"{metric}: fewer than 2 defined subject resamples")
    return float(averaged.var(ddof=1) * n_subjects / (n_subjects - 1))


def _seed_subject_df(seed_parts: list[tuple[float, int]], subject_part: tuple[float, int], df_method: str,
                     confidence: float) -> float:
    """Degrees of freedom of the t quantile; each part is (variance estimate, its df)."""
    seeds_bound = float(min(df for _, df in seed_parts))
    if df_method == "seeds":
        return seeds_bound
    if df_method == "satterthwaite_upper":
        # A seed variance from 3 seeds (2 df) is below a tenth of the truth one time in ten. When it
        # happens to be small, the plug-in df shifts to the subject part's S - 1 just when the standard
        # error is too small; at its upper confidence limit the seed part keeps its weight in the df.
        seed_parts = [(part * df / scipy_stats.chi2.ppf(1.0 - confidence, df), df) for part, df in seed_parts]
    parts = [*seed_parts, subject_part]
    denominator = sum(part ** 2 / df for part, df in parts)
    if denominator <= 0:  # every part zero: no spread anywhere
        return seeds_bound
    return float(sum(part for part, _ in parts) ** 2 / denominator)


def _seed_matrices(values_a, values_b, subjects: Sequence[Any], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Both models' (seeds, images) matrices of per-image values on the same images (the seed
    counts may differ), checked to be finite."""
    a, b = _per_seed_matrix(values_a, "values_a"), _per_seed_matrix(values_b, "values_b")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != len(subjects) or b.shape[1] != len(subjects):
        raise StatsInputError(f"values_a {a.shape} and values_b {b.shape} must both be (seeds, {len(subjects)} images)")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise StatsInputError(f"{metric}: NaN or infinite per-image values")
    return a, b


def _per_seed_matrix(values: Sequence[Any], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim < 2:
        raise StatsInputError(f"{name} must hold one row per training seed, got shape {array.shape}")
    return array


def _ratio_replicates(numerators: np.ndarray, cluster_index: np.ndarray, counts: np.ndarray,
                      cluster_totals: np.ndarray) -> np.ndarray:
    """(seeds, resamples): sum of each seed's per-image numerators over the resample divided by
    the resample's total (images, or labelled landmarks); a subject drawn k times counts k times."""
    n_clusters = counts.shape[1]
    sums = np.stack([np.bincount(cluster_index, weights=row, minlength=n_clusters) for row in numerators])
    return (sums @ counts.T) / (counts @ cluster_totals)[None, :]


def seed_subject_mean_difference(values_a: Sequence[Sequence[float]], values_b: Sequence[Sequence[float]],
                                 subjects: Sequence[Any], *, metric: str = "mean difference",
                                 n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                                 df_method: str = "satterthwaite_upper") -> SeedAwareInterval:
    """Seed-aware interval for mean(a) - mean(b) of per-image values (e.g. NME).

    values_a (K_a, N), values_b (K_b, N): row s is seed s's per-image values on the same N test
    images; the seeds of a and b are not paired (K_a may differ from K_b, and their order does not
    matter). subjects: (N,) subject per image.
    """
    a, b = _seed_matrices(values_a, values_b, subjects, metric)
    counts, cluster_index = cluster_resample_counts(subjects, n_resamples, seed)
    images_per_cluster = np.bincount(cluster_index, minlength=counts.shape[1]).astype(float)
    return seed_subject_interval(a.mean(axis=1), b.mean(axis=1),
                                 _ratio_replicates(a, cluster_index, counts, images_per_cluster),
                                 _ratio_replicates(b, cluster_index, counts, images_per_cluster),
                                 counts.shape[1], metric=metric, confidence=confidence, df_method=df_method)


def seed_subject_ranking_difference(prob_a: np.ndarray, prob_b: np.ndarray, occluded: np.ndarray,
                                    labelled: np.ndarray, subjects: Sequence[Any], *, metric: str = "roc_auc",
                                    n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                                    df_method: str = "satterthwaite_upper") -> SeedAwareInterval:
    """Seed-aware interval for ROC-AUC or AP of a minus b. prob_a (K_a, N, 68), prob_b (K_b, N, 68),
    one row per seed (seeds not paired); occluded, labelled: (N, 68), the same test images for every seed."""
    if metric not in _RANKING_METRICS:
        raise StatsInputError(f"unknown ranking metric {metric!r}; choose one of {sorted(_RANKING_METRICS)}")
    prob_a, prob_b = _per_seed_matrix(prob_a, "prob_a"), _per_seed_matrix(prob_b, "prob_b")
    labelled = np.asarray(labelled, dtype=bool)
    shape = (len(subjects), NUM_LANDMARKS)
    if prob_a.shape[1:] != shape or prob_b.shape[1:] != shape or np.shape(occluded) != shape:
        raise StatsInputError(f"prob_a {prob_a.shape}, prob_b {prob_b.shape} must be (seeds, *{shape}) and "
                              f"occluded/labelled {shape}")
    y_true = np.asarray(occluded, dtype=bool)[labelled]
    if y_true.all() or not y_true.any():
        raise StatsInputError(f"{metric}: the data hold only one class")
    score = _RANKING_METRICS[metric]
    counts, cluster_index = cluster_resample_counts(subjects, n_resamples, seed)
    pair_cluster = np.broadcast_to(cluster_index[:, None], labelled.shape)[labelled]

    def per_seed(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = [p[labelled] for p in probabilities]
        return (np.array([score(y_true, s) for s in scores]),
                np.stack([weighted_ranking_replicates(s, y_true, pair_cluster, counts, metric) for s in scores]))

    (estimates_a, replicates_a), (estimates_b, replicates_b) = per_seed(prob_a), per_seed(prob_b)
    return seed_subject_interval(estimates_a, estimates_b, replicates_a, replicates_b, counts.shape[1],
                                 metric=metric, confidence=confidence, df_method=df_method)


def seed_subject_accuracy_difference(correct_a: np.ndarray, correct_b: np.ndarray, labelled: np.ndarray,
                                     subjects: Sequence[Any], *, n_resamples: int = 2000,
                                     confidence: float = 0.95, seed: int = 0,
                                     df_method: str = "satterthwaite_upper") -> SeedAwareInterval:
    """Seed-aware interval for occlusion accuracy of a minus b over labelled landmarks.
    correct_a (K_a, N, 68), correct_b (K_b, N, 68) bool per seed (seeds not paired); labelled: (N, 68)."""
    labelled = np.asarray(labelled, dtype=bool)
    hits_a = (np.asarray(correct_a, dtype=bool) & labelled).sum(axis=-1).astype(float)
    hits_b = (np.asarray(correct_b, dtype=bool) & labelled).sum(axis=-1).astype(float)
    if hits_a.ndim != 2 or hits_b.ndim != 2 or hits_a.shape[1] != len(subjects) or hits_b.shape[1] != len(subjects):
        raise StatsInputError(f"correct_a/b must be (seeds, {len(subjects)}, 68)")
    counts, cluster_index = cluster_resample_counts(subjects, n_resamples, seed)
    labelled_per_cluster = np.bincount(cluster_index, weights=labelled.sum(axis=1), minlength=counts.shape[1])
    return seed_subject_interval(hits_a.sum(axis=1) / labelled.sum(), hits_b.sum(axis=1) / labelled.sum(),
                                 _ratio_replicates(hits_a, cluster_index, counts, labelled_per_cluster),
                                 _ratio_replicates(hits_b, cluster_index, counts, labelled_per_cluster),
                                 counts.shape[1], metric="occlusion accuracy", confidence=confidence,
                                 df_method=df_method)


def weighted_median_replicates(values: np.ndarray, cluster_index: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of per-image values in every subject resample at once: image i weighs
    counts[r, cluster_index[i]]; the median is the lower weighted median (the first sorted value
    at which the cumulative weight reaches half the total), averaged with the next value when
    the cumulative weight lands exactly on half (as numpy's median of an even count)."""
    order = np.argsort(values, kind="stable")
    sorted_values = np.asarray(values, dtype=float)[order]
    weights = counts[:, cluster_index[order]].astype(float)          # (R, N)
    cumulative = np.cumsum(weights, axis=1)
    half = cumulative[:, -1:] / 2.0
    lower = np.argmax(cumulative >= half, axis=1)
    exact = np.isclose(cumulative[np.arange(len(lower)), lower], half[:, 0])
    # On an exact half the median lies between this value and the next image that has weight.
    has_weight = weights > 0
    upper = lower.copy()
    for r in np.flatnonzero(exact):
        later = np.flatnonzero(has_weight[r, lower[r] + 1:])
        upper[r] = lower[r] + 1 + later[0] if later.size else lower[r]
    return 0.5 * (sorted_values[lower] + sorted_values[upper])


def seed_subject_median_difference(values_a: Sequence[Sequence[float]], values_b: Sequence[Sequence[float]],
                                   subjects: Sequence[Any], *, metric: str = "median difference",
                                   n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                                   df_method: str = "satterthwaite_upper") -> SeedAwareInterval:
    """Seed-aware interval for median(a) - median(b) of per-image values (e.g. median NME): each
    model's mean over its seeds of the median on the test set, with subject-bootstrap replicates of
    it. values_a (K_a, N), values_b (K_b, N) as in `seed_subject_mean_difference` (seeds not paired)."""
    a, b = _seed_matrices(values_a, values_b, subjects, metric)
    counts, cluster_index = cluster_resample_counts(subjects, n_resamples, seed)

    def replicates(values: np.ndarray) -> np.ndarray:
        return np.stack([weighted_median_replicates(row, cluster_index, counts) for row in values])

    return seed_subject_interval(np.median(a, axis=1), np.median(b, axis=1), replicates(a), replicates(b),
                                 counts.shape[1], metric=metric, confidence=confidence, df_method=df_method)
