"""The report's conclusions in words: the verdict of each pair of frameworks, the article's gap set
against a single run's spread, and the inference sentence.

Every sentence is derived from numbers passed in (lenet_compare.report.stats and .analysis); none
computes a statistic itself. Accuracies and differences are fractions; the sentences speak in
percent and percentage points. Differences are always b minus a of a pair (a, b).

Holm's adjustment: a paired test's dict from the analysis also carries ``t_pvalue_holm`` and
``holm_pairs`` (paired t-test), an equivalence dict ``pvalue_holm``, ``holm_pairs`` and
``within_margin`` (the unadjusted decision), with ``equivalent`` decided on the adjusted p. With
one pair (or a dict straight from stats) the adjusted p is the p itself and the sentences do not
mention it.
"""

from __future__ import annotations

from collections.abc import Mapping

from lenet_compare.core.article import PAIR
from lenet_compare.core.numbers import percent_from_fraction, signed_points
from lenet_compare.evaluate.inference_timing import BATCH_SIZES, FASTEST
from lenet_compare.report.common import ALPHA, format_margin, format_p
from lenet_compare.report.stats import plural


def _points(fraction: float | None) -> str:
    """A difference of fractions in signed percentage points: +0.40."""
    return signed_points(percent_from_fraction(fraction))


def _percent(fraction: float) -> float:
    """A fraction that is known to be there, in percent (points)."""
    points = percent_from_fraction(fraction)
    # percent_from_fraction gives None only for None, and every caller here has checked for that.
    assert points is not None
    return points


def verdict(
    paired: dict,
    mcnemar_by_seed: Mapping[int, dict],
    name_a: str,
    name_b: str,
    alpha: float = ALPHA,
    equivalence: dict | None = None,
) -> list[str]:
    """Plain-language conclusions, each derived from the numbers passed in (b - a differences).

    ``equivalence`` (from stats.equivalence_test, or the analysis's pair) adds its sentence after the t-test's.
    """
    lines = [t_test_sentence(paired, name_a, name_b, alpha)]
    if equivalence is not None:
        lines.append(equivalence_sentence(equivalence, name_a, name_b, alpha))
    wilcoxon = wilcoxon_sentence(paired, alpha)
    if wilcoxon is not None:
        lines.append(wilcoxon)
    if mcnemar_by_seed:
        lines.append(mcnemar_sentence(list(mcnemar_by_seed.values()), name_a, name_b, alpha))
    return lines


def _holm_words(p: float, p_holm: float | None, pairs: int, test: str) -> str:
    """ "paired t-test p = 0.01", and with more than one pair ", Holm-adjusted over 3 pairs p = 0.03"."""
    text = f"{test} p = {format_p(p)}"
    return text if pairs <= 1 else f"{text}, Holm-adjusted over {pairs} pairs p = {format_p(p_holm)}"


def t_test_sentence(paired: dict, name_a: str, name_b: str, alpha: float = ALPHA) -> str:
    """The mean difference over seeds and what the paired t-test says of it (on the Holm-adjusted p)."""
    seeds_word = plural(paired["n_pairs"], "paired seed")
    p_t, mean_d = paired["t_pvalue"], paired["mean_difference"]
    if mean_d is None:
        return "No seed has results for both frameworks, so they cannot be compared."
    if p_t is None:
        return (
            f"No paired t-test across seeds: {paired['t_note']}. "
            f"{name_b} minus {name_a} = {_points(mean_d)} percentage points over {seeds_word}."
        )
    pairs = paired.get("holm_pairs", 1)
    p_decide = paired["t_pvalue_holm"] if pairs > 1 else p_t
    p_words = _holm_words(p_t, p_decide, pairs, "paired t-test")
    ci = f"95 % CI {_points(paired['ci_low'])} to {_points(paired['ci_high'])}"
    if p_decide < alpha:
        better, worse = (name_b, name_a) if mean_d > 0 else (name_a, name_b)
        return (
            f"{better} is more accurate than {worse}, by {abs(_percent(mean_d)):.2f} percentage points "
            f"on average over {seeds_word} ({name_b} minus {name_a}: {ci}; {p_words} < {alpha})."
        )
    return (
        f"No significant difference in test accuracy at alpha = {alpha}: {name_b} minus "
        f"{name_a} = {_points(mean_d)} percentage points on average over {seeds_word} "
        f"({ci}; {p_words})."
    )


def equivalence_sentence(eq: dict, name_a: str, name_b: str, alpha: float = ALPHA) -> str:
    """Either "Equivalent within +-m points" with the 90 % CI, or "Equivalence ... not shown".

    The decision is ``eq["equivalent"]``: the Holm-adjusted TOST p below alpha. With more than one
    pair, a CI inside the margin whose adjusted p is not below alpha is said to be "not shown" too.
    """
    margin = format_margin(_percent(eq["margin"]))
    if eq["pvalue"] is None:
        return f"Equivalence within ±{margin} points not shown: {eq['note']}."
    ci = f"{_points(eq['ci_low'])} to {_points(eq['ci_high'])} points"
    level = f"{100 * eq['confidence']:.0f} % CI"
    pairs = eq.get("holm_pairs", 1)
    p_words = _holm_words(eq["pvalue"], eq.get("pvalue_holm"), pairs, "paired TOST")
    if eq["equivalent"]:
        return (
            f"Equivalent within ±{margin} points: the {level} of {name_b} minus {name_a}, {ci}, lies within "
            f"±{margin} ({p_words} < {alpha})."
        )
    if eq.get("within_margin"):
        return (
            f"Equivalence within ±{margin} points not shown: the {level} of {name_b} minus {name_a}, {ci}, lies "
            f"within ±{margin}, but over {pairs} pairs the Holm-adjusted TOST p = {format_p(eq['pvalue_holm'])} "
            f"is not below {alpha} (paired TOST p = {format_p(eq['pvalue'])})."
        )
    return (
        f"Equivalence within ±{margin} points not shown: the {level} of {name_b} minus {name_a}, {ci}, "
        f"reaches beyond ±{margin} ({p_words})."
    )


def wilcoxon_sentence(paired: dict, alpha: float = ALPHA) -> str | None:
    """The Wilcoxon test's p-value and whether it can, and does, agree with the t-test."""
    p_w, p_t, smallest = paired["wilcoxon_pvalue"], paired["t_pvalue"], paired["wilcoxon_smallest_p"]
    if p_w is None:
        if paired["wilcoxon_note"] and paired["n_pairs"] >= 2:
            return f"No Wilcoxon signed-rank test: {paired['wilcoxon_note']}."
        return None
    text = f"The Wilcoxon signed-rank test gives p = {format_p(p_w)}"
    if smallest is not None and smallest >= alpha:
        text += (
            f"; with {paired['wilcoxon_n_nonzero']} non-zero differences its smallest possible "
            f"p-value is {format_p(smallest)}, so on its own it cannot reach significance at "
            f"alpha = {alpha}"
        )
    elif p_t is not None and (p_w < alpha) != (p_t < alpha):
        text += ", which disagrees with the t-test: treat the difference as uncertain"
    elif p_t is not None:
        text += ", in line with the t-test"
    return text + "."


def mcnemar_sentence(results: list[dict], name_a: str, name_b: str, alpha: float = ALPHA) -> str:
    """In how many seeds McNemar's test finds a difference, who is ahead there, how often they agree."""
    pvals = [r["pvalue"] for r in results if r["pvalue"] is not None]
    significant = [r for r in results if r["pvalue"] is not None and r["pvalue"] < alpha]
    agree = [_percent(r["agreement"]) for r in results if r["agreement"] is not None]
    k, m = len(significant), len(results)
    text = (
        f"Per seed, the exact McNemar test on the same {results[0]['n']:,} test images finds a "
        f"significant difference (p < {alpha}) in {k} of {plural(m, 'seed')}"
    )
    if pvals:
        low, high = min(pvals), max(pvals)
        text += f" (p = {format_p(low)})" if m == 1 else f" (p from {format_p(low)} to {format_p(high)})"
    if significant:
        b_ahead = sum(r["only_b"] > r["only_a"] for r in significant)
        parts = []
        if b_ahead:
            parts.append(f"{name_b} ahead in {b_ahead}")
        if k - b_ahead:
            parts.append(f"{name_a} ahead in {k - b_ahead}")
        text += ": " + ", ".join(parts)
    if agree:
        span = (
            f"{min(agree):.1f} %"
            if len(agree) == 1 or min(agree) == max(agree)
            else (f"{min(agree):.1f} to {max(agree):.1f} %")
        )
        text += f". The two frameworks predict the same class for {span} of the test images"
    return text + "."


def article_comparison(gap: dict, paired: dict) -> str:
    """Where the article's gap (one run each) falls relative to where a single run's gap would.

    The article's gap is one run per framework, so it is compared with the 95 % prediction
    interval for a single paired run's difference, not with the CI of the mean difference (which
    narrows towards a point as seeds are added, and would call ordinary run-to-run scatter a
    failure to reproduce). ``paired``: the article's pair (TensorFlow minus PyTorch).
    """
    published = f"The article's gap ({gap['low']:.2f} to {gap['high']:.2f} points, TensorFlow ahead, one run each)"
    if paired["pi_low"] is None:
        return f"{published} cannot be set against the spread of single runs here: {paired['pi_note']}."
    low, high = percent_from_fraction(paired["pi_low"]), percent_from_fraction(paired["pi_high"])
    interval = (
        f"the 95 % prediction interval for a single run's TensorFlow-minus-PyTorch gap under this protocol "
        f"({signed_points(low)} to {signed_points(high)} points: where one run's gap would fall 95 % of the time)"
    )
    if gap["low"] >= high:
        return f"{published} lies above {interval}: this protocol does not reproduce it."
    if gap["high"] < low:
        return f"{published} lies below {interval}."
    where = "lies within" if low <= gap["low"] and gap["high"] <= high else "overlaps"
    return f"{published} {where} {interval}: a single run under this protocol could show such a gap."


def fastest_with_fastest(rows: list[dict], pair: tuple[str, str] = PAIR) -> str | None:
    """Framework a against b of ``pair``, each on its fastest idiomatic call; None without both.

    ``rows``: lenet_compare.report.analysis.inference_summary's rows.
    """
    a, b = pair
    fastest = {(r["framework"], r["batch_size"]): r for r in rows if r["path"] == FASTEST}
    parts = []
    for size in BATCH_SIZES:
        if (a, size) not in fastest or (b, size) not in fastest:
            return None
        ra, rb = fastest[(a, size)], fastest[(b, size)]
        ms_a, ms_b = ra["median_ms"]["mean"], rb["median_ms"]["mean"]
        quicker, ratio = (ra["name"], ms_b / ms_a) if ms_a <= ms_b else (rb["name"], ms_a / ms_b)
        what = "one image" if size == 1 else f"a batch of {size:,}"
        parts.append(
            f"{what} takes {ms_a:,.3f} ms in {ra['name']} and {ms_b:,.3f} ms in {rb['name']} "
            f"({quicker} {ratio:.1f}x as fast)"
        )
    return "Fastest idiomatic call against fastest idiomatic call: " + "; ".join(parts) + "."
