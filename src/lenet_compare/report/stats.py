"""The statistics of the comparison: spread over seeds, paired tests and equivalence by seed, McNemar per seed,
and Holm's adjustment of p-values over several pairs of frameworks.

Every test comes from scipy or statsmodels; this module only arranges inputs and catches the cases
where a test is undefined (too few seeds, no differences at all), saying why in a note. Nothing here
is written by hand that a library already provides. The sentences that read these numbers to a
reader are in lenet_compare.report.sentences.

Accuracies are fractions (0..1) throughout.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from lenet_compare.core.numbers import denoised, finite_or_none, percent_from_fraction, signed_points

# ALPHA lives with the light helpers, so that the headline (common.py) judges as the report does
# without importing scipy; callers know it as stats.ALPHA too.
from lenet_compare.report.common import ALPHA

CONFIDENCE = 0.95


def _denoised(values) -> np.ndarray:
    """Accuracies or their differences without floating-point noise (lenet_compare.core.numbers.DECIMALS)."""
    return np.array(denoised(np.asarray(values, dtype=np.float64).ravel()), dtype=np.float64)


def _equal_points(difference: float) -> str:
    """A difference of fractions as a note writes it: "equal (+0.40 percentage points)"."""
    return f"equal ({signed_points(percent_from_fraction(difference))} percentage points)"


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """n, mean, std (ddof=1), t-based confidence interval of the mean, min and max."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    out: dict[str, Any] = {"n": n, "mean": None, "std": None, "ci_low": None, "ci_high": None, "min": None, "max": None}
    out["note"] = None
    if n == 0:
        out["note"] = "no runs"
        return out
    out.update(mean=float(np.mean(x)), min=float(np.min(x)), max=float(np.max(x)))
    if n < 2:
        out["note"] = "one run: no standard deviation or confidence interval"
        return out
    out["std"] = float(np.std(x, ddof=1))
    if np.ptp(_denoised(x)) == 0:
        # Every run gave the same accuracy: the interval collapses to the value itself.
        out.update(ci_low=out["mean"], ci_high=out["mean"], std=0.0)
        out["note"] = f"all {n} runs gave the same value"
        return out
    ci = sps.ttest_1samp(x, popmean=0.0).confidence_interval(confidence)
    out.update(ci_low=finite_or_none(ci.low), ci_high=finite_or_none(ci.high))
    return out


def wilcoxon_smallest_p(n: int) -> float | None:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test can give with n pairs.

    With few seeds this is above alpha (n = 5: 0.0625), so the test cannot reject on its own;
    the report says so instead of letting a large p-value read as evidence of no difference.
    It is 2 / 2^n whenever the null distribution is exact (``wilcoxon_method``: with or without
    ties and zeros, only the all-one-sign pattern is that extreme); under the normal
    approximation there is no such floor, and the report does not quote one.
    """
    if n < 1:
        return None
    return float(sps.wilcoxon(np.arange(1, n + 1, dtype=np.float64), method="exact").pvalue)


# scipy's own choice for method="auto" (documented in scipy.stats.wilcoxon, 1.15 and later),
# made here explicitly so that the report can say which null distribution gave the p-value.
WILCOXON_EXACT_MAX_N = 50  # no ties, no zeros: the exact distribution up to this many pairs
WILCOXON_PERMUTATION_MAX_N = 13  # ties or zeros: all 2^n sign flips (2^13 < 9,999 resamples)


def wilcoxon_method(d: np.ndarray) -> str:
    """How scipy computes the p-value of these differences: "exact", "permutation" or "asymptotic".

    "exact" and "permutation" (every one of the 2^n sign patterns, enumerated) are both the
    exact null distribution; "asymptotic" is the normal approximation (tie-corrected), which
    scipy uses with ties or zeros above 13 pairs and always above 50.
    """
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    nonzero = np.abs(d[d != 0])
    ties_or_zeros = nonzero.size < n or np.unique(nonzero).size < nonzero.size
    if n <= WILCOXON_EXACT_MAX_N and not ties_or_zeros:
        return "exact"
    if n <= WILCOXON_PERMUTATION_MAX_N:
        return "permutation"
    return "asymptotic"


WILCOXON_METHOD_WORDS = {
    "exact": "exact null distribution",
    "permutation": "exact: all sign patterns enumerated, as there are ties or zeros",
    "asymptotic": "normal approximation, as there are ties or zeros or more than 50 pairs",
}


def plural(n: int, word: str) -> str:
    """ "1 seed", "3 seeds"."""
    return f"{n} {word}{'s' if n != 1 else ''}"


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided t quantile of a ``confidence`` interval with ``df`` degrees of freedom."""
    return sps.t.ppf(0.5 + confidence / 2, df)


def prediction_interval(mean: float, std: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Where one more value would fall with ``confidence``: mean +- t(n - 1) * sd * sqrt(1 + 1/n).

    Unlike the CI of the mean it does not shrink to a point as seeds are added: it is what a
    single published run (the article's) must be compared with. Needs n >= 2.
    """
    half = t_quantile(n - 1, confidence) * std * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def _paired(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """The seeds present in both, sorted; a's and b's values over them; the differences b - a."""
    seeds = sorted(set(a) & set(b))
    xa = np.array([a[s] for s in seeds], dtype=np.float64)
    xb = np.array([b[s] for s in seeds], dtype=np.float64)
    return seeds, xa, xb, _denoised(xb - xa)


def paired_tests(a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE) -> dict:
    """Paired by seed: the differences b - a, a paired t-test and a Wilcoxon signed-rank test.

    Only seeds present in both are paired. A test that is undefined returns null statistics and a
    ``*_note`` saying why (fewer than two pairs, all differences zero, or all equal).
    """
    seeds, xa, xb, d = _paired(a, b)
    n = len(seeds)
    out: dict = {
        "seeds": seeds,
        "differences": d.tolist(),
        "n_pairs": n,
        "mean_difference": float(np.mean(d)) if n else None,
        "std_difference": float(np.std(d, ddof=1)) if n >= 2 else None,
        "ci_low": None,
        "ci_high": None,
        "t_statistic": None,
        "t_df": None,
        "t_pvalue": None,
        "t_note": None,
        "wilcoxon_statistic": None,
        "wilcoxon_pvalue": None,
        "wilcoxon_note": None,
        "wilcoxon_n_nonzero": int(np.count_nonzero(d)),
        "wilcoxon_method": None,
        "wilcoxon_smallest_p": None,
        "pi_low": None,
        "pi_high": None,
        "pi_note": None,
    }
    if n < 2:
        out["t_note"] = out["wilcoxon_note"] = f"{plural(n, 'paired seed')}: a paired test needs at least 2"
        out["pi_note"] = (
            f"{plural(n, 'paired seed')}: the spread of a single run's difference needs at least 2 to be estimated"
        )
        return out
    low, high = prediction_interval(out["mean_difference"], out["std_difference"], n, confidence)
    out.update(pi_low=finite_or_none(low), pi_high=finite_or_none(high))
    out.update(_paired_t_test(xa, xb, d, confidence))
    out.update(_wilcoxon_test(d))
    return out


def _paired_t_test(xa: np.ndarray, xb: np.ndarray, d: np.ndarray, confidence: float) -> dict:
    """scipy's ttest_rel of b against a, or why it is undefined (every difference the same)."""
    n = d.size
    if np.ptp(d) == 0:
        what = "zero" if d[0] == 0 else _equal_points(d[0])
        note = f"all {n} differences are {what}: zero variance, the t-test is undefined"
        return {"t_note": note, "ci_low": float(d[0]), "ci_high": float(d[0])}
    t = sps.ttest_rel(xb, xa)
    ci = t.confidence_interval(confidence)
    return {
        "t_statistic": finite_or_none(t.statistic),
        "t_df": int(t.df),
        "t_pvalue": finite_or_none(t.pvalue),
        "ci_low": finite_or_none(ci.low),
        "ci_high": finite_or_none(ci.high),
    }


def _wilcoxon_test(d: np.ndarray) -> dict:
    """scipy's Wilcoxon signed-rank test of the differences, with the null distribution it used."""
    n, nonzero = d.size, int(np.count_nonzero(d))
    if nonzero == 0:
        return {"wilcoxon_note": f"all {n} differences are zero: nothing to rank"}
    method = wilcoxon_method(d)
    out: dict = {"wilcoxon_method": method}
    if method != "asymptotic":
        # An exact null distribution has a floor (2 / 2^nonzero); the normal approximation
        # has none worth quoting, so the report only states the floor where it exists.
        out["wilcoxon_smallest_p"] = wilcoxon_smallest_p(nonzero)
    # zero_method="wilcox" (scipy's default) drops zero differences, as Wilcoxon proposed.
    # The method is the one scipy's "auto" would pick, passed explicitly so that the report
    # can name it: only "exact" and "permutation" give an exact p-value.
    scipy_method = sps.PermutationMethod() if method == "permutation" else method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns about small samples
        w = sps.wilcoxon(d, zero_method="wilcox", method=scipy_method)
    out.update(wilcoxon_statistic=finite_or_none(w.statistic), wilcoxon_pvalue=finite_or_none(w.pvalue))
    if nonzero < n:
        out["wilcoxon_note"] = f"{n - nonzero} zero difference(s) dropped (zero_method='wilcox')"
    return out


def equivalence_test(a: Mapping[int, float], b: Mapping[int, float], margin: float, alpha: float = ALPHA) -> dict:
    """Paired TOST (two one-sided t-tests) of the mean of b - a within (-margin, +margin).

    statsmodels' ``ttost_paired`` gives both one-sided tests; their larger p-value is the TOST's.
    ``equivalent`` is ``pvalue < alpha``: a TOST at level alpha rejects non-equivalence exactly
    when the (1 - 2 alpha) CI of the mean difference (90 % for alpha = 0.05; ``ci_low``,
    ``ci_high``, from scipy's ``ttest_rel``) lies within the margins, so the two always agree.
    Undefined, with a ``note`` and null p-values, for fewer than two pairs or zero variance.
    ``margin`` is in the units of a and b (fractions here); only seeds present in both are paired.
    """
    seeds, xa, xb, d = _paired(a, b)
    n = len(seeds)
    out: dict = {
        "margin": float(margin),
        "n_pairs": n,
        "mean_difference": float(np.mean(d)) if n else None,
        "confidence": 1 - 2 * alpha,
        "ci_low": None,
        "ci_high": None,
        "t_lower": None,  # H0: mean <= -margin
        "p_lower": None,
        "t_upper": None,  # H0: mean >= +margin
        "p_upper": None,
        "df": None,
        "pvalue": None,
        "equivalent": None,
        "note": None,
    }
    if n < 2:
        out["note"] = f"{plural(n, 'paired seed')}: a TOST needs at least 2"
        return out
    if np.ptp(d) == 0:
        # statsmodels would divide by a zero standard error (t = +-inf, p = 0): no test to speak of.
        what = "zero" if d[0] == 0 else _equal_points(d[0])
        out.update(ci_low=float(d[0]), ci_high=float(d[0]))
        out["note"] = f"all {n} differences are {what}: zero variance, the TOST is undefined"
        return out
    pvalue, (t_lower, p_lower, df), (t_upper, p_upper, _) = ttost_paired(xb, xa, -margin, margin)
    ci = sps.ttest_rel(xb, xa).confidence_interval(1 - 2 * alpha)
    out.update(
        ci_low=finite_or_none(ci.low),
        ci_high=finite_or_none(ci.high),
        t_lower=finite_or_none(t_lower),
        p_lower=finite_or_none(p_lower),
        t_upper=finite_or_none(t_upper),
        p_upper=finite_or_none(p_upper),
        df=int(df),
        pvalue=finite_or_none(pvalue),
        equivalent=bool(pvalue < alpha),
    )
    return out


def mcnemar_test(y_true, pred_a, pred_b) -> dict:
    """Exact McNemar test of two classifiers on the same images, and how often they agree.

    The 2x2 table counts images by (a correct?, b correct?); the test looks only at the
    discordant cells: ``only_a`` (a right, b wrong) and ``only_b`` (a wrong, b right).
    ``agreement`` is the share of images on which both predict the same class.
    """
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape) or y_true.ndim != 1:
        raise ValueError(f"shapes differ: y_true {y_true.shape}, a {pred_a.shape}, b {pred_b.shape}")
    ok_a, ok_b = pred_a == y_true, pred_b == y_true
    table = [
        [int(np.sum(ok_a & ok_b)), int(np.sum(ok_a & ~ok_b))],
        [int(np.sum(~ok_a & ok_b)), int(np.sum(~ok_a & ~ok_b))],
    ]
    result = mcnemar(table, exact=True)
    n = int(y_true.size)
    return {
        "n": n,
        "table": table,
        "both_correct": table[0][0],
        "only_a": table[0][1],
        "only_b": table[1][0],
        "both_wrong": table[1][1],
        "statistic": finite_or_none(result.statistic),
        "pvalue": finite_or_none(result.pvalue),
        "agreement": float(np.mean(pred_a == pred_b)) if n else None,
        "n_disagree": int(np.sum(pred_a != pred_b)),
    }


def holm(pvalues: Sequence[float | None], alpha: float = ALPHA) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (statsmodels ``multipletests``, method "holm").

    One p-value per pair of frameworks; a None (an undefined test) stays None and is not counted
    in the family. With one p-value the adjusted one is that p-value itself.
    """
    present = [i for i, p in enumerate(pvalues) if p is not None]
    adjusted: list[float | None] = [None] * len(pvalues)
    if present:
        _, corrected, _, _ = multipletests([pvalues[i] for i in present], alpha=alpha, method="holm")
        for i, p in zip(present, corrected, strict=True):
            adjusted[i] = finite_or_none(p)
    return adjusted
