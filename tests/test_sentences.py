"""The sentences that read the statistics out (lenet_compare.report.sentences), and the formats of p-values
and margins they share with the headline: each derived from the numbers passed in."""

import numpy as np
import pytest

from lenet_compare.report.common import format_margin, format_p
from lenet_compare.report.sentences import equivalence_sentence, t_test_sentence, verdict
from lenet_compare.report.stats import equivalence_test, paired_tests


def by_seed(values):
    return dict(enumerate(values))


# As in tests/test_stats.py: five seeds, TensorFlow minus PyTorch +0.2, -0.1, +0.4, +0.1, -0.1 points;
# the 90 % CI of the mean difference is -0.10 to +0.30 points.
TOST_A = [0.900, 0.901, 0.898, 0.903, 0.900]
TOST_D = [0.002, -0.001, 0.004, 0.001, -0.001]
TOST_B = [a + d for a, d in zip(TOST_A, TOST_D, strict=True)]


def mcnemar_results(pvalues, only_a=10, only_b=20, n=1000, agreement=0.95):
    return {
        s: {"n": n, "pvalue": p, "only_a": only_a, "only_b": only_b, "agreement": agreement}
        for s, p in enumerate(pvalues)
    }


def test_verdict_names_the_winner_when_significant():
    a = by_seed([0.80, 0.81, 0.82, 0.80, 0.81])
    b = by_seed([0.83, 0.835, 0.845, 0.826, 0.84])
    paired = paired_tests(a, b)
    assert paired["t_pvalue"] < 0.05
    lines = verdict(paired, mcnemar_results([0.01] * 5), "PyTorch", "TensorFlow/Keras")
    assert lines[0].startswith("TensorFlow/Keras is more accurate than PyTorch, by 2.72 percentage points")
    assert f"p = {format_p(paired['t_pvalue'])} < 0.05" in lines[0]
    # Five seeds: the Wilcoxon test cannot reach 0.05 whatever happens, and the verdict says so.
    assert "cannot reach significance" in lines[1]
    assert "in 5 of 5 seeds" in lines[2] and "TensorFlow/Keras ahead in 5" in lines[2]
    assert "95.0 %" in lines[2]


def test_verdict_says_no_significant_difference_otherwise():
    a = by_seed([0.80, 0.82, 0.81, 0.83])
    b = by_seed([0.81, 0.81, 0.82, 0.82])
    paired = paired_tests(a, b)
    lines = verdict(paired, mcnemar_results([0.5, 0.7, 0.2, 0.9]), "PyTorch", "TensorFlow/Keras")
    assert lines[0].startswith("No significant difference in test accuracy at alpha = 0.05")
    assert "+0.00 percentage points" in lines[0]
    assert "in 0 of 4 seeds" in lines[-1] and "p from 0.2 to 0.9" in lines[-1]


def test_verdict_with_one_seed_explains_the_missing_test():
    paired = paired_tests({0: 0.80}, {0: 0.81})
    lines = verdict(paired, mcnemar_results([0.03], only_a=5, only_b=20), "PyTorch", "TensorFlow/Keras")
    assert lines[0].startswith("No paired t-test across seeds: 1 paired seed: a paired test needs at least 2")
    assert "+1.00 percentage points" in lines[0]
    assert "in 1 of 1 seed (p = 0.03): TensorFlow/Keras ahead in 1" in lines[-1]


@pytest.mark.parametrize(
    ("p", "text"),
    [(None, "n/a"), (0.5, "0.5"), (0.04567, "0.0457"), (0.001, "0.001"), (0.000123, "1.23e-04"), (0.0, "< 1e-300")],
)
def test_format_p(p, text):
    assert format_p(p) == text


def test_equivalence_sentences():
    eq = equivalence_test(by_seed(TOST_A), by_seed(TOST_B), 0.01)
    assert equivalence_sentence(eq, "PyTorch", "TensorFlow/Keras") == (
        "Equivalent within ±1.0 points: the 90 % CI of TensorFlow/Keras minus PyTorch, -0.10 to +0.30 points, "
        f"lies within ±1.0 (paired TOST p = {format_p(eq['pvalue'])} < 0.05)."
    )
    eq = equivalence_test(by_seed(TOST_A), by_seed(TOST_B), 0.002)
    assert equivalence_sentence(eq, "PyTorch", "TensorFlow/Keras") == (
        "Equivalence within ±0.2 points not shown: the 90 % CI of TensorFlow/Keras minus PyTorch, "
        "-0.10 to +0.30 points, reaches beyond ±0.2 (paired TOST p = 0.176)."
    )
    eq = equivalence_test({0: 0.90}, {0: 0.905}, 0.01)
    assert equivalence_sentence(eq, "PyTorch", "TensorFlow/Keras") == (
        "Equivalence within ±1.0 points not shown: 1 paired seed: a TOST needs at least 2."
    )


def test_the_verdict_carries_the_equivalence_after_the_t_test():
    a, b = by_seed(TOST_A), by_seed(TOST_B)
    lines = verdict(paired_tests(a, b), {}, "PyTorch", "TensorFlow/Keras", equivalence=equivalence_test(a, b, 0.01))
    assert lines[0].startswith("No significant difference") and lines[1].startswith("Equivalent within ±1.0 points")


@pytest.mark.parametrize(("points", "text"), [(1.0, "1.0"), (1, "1.0"), (0.5, "0.5"), (0.25, "0.25"), (2.5, "2.5")])
def test_format_margin(points, text):
    assert format_margin(points) == text


def test_no_smallest_p_is_quoted_under_the_normal_approximation():
    # Ties above 13 pairs: scipy's normal approximation, which has no floor worth quoting.
    d = [0.01, 0.01, 0.02, 0.02, 0.03, -0.01, 0.04, 0.05, 0.05, 0.06, 0.07, 0.08, -0.02, 0.09]
    r = paired_tests(by_seed([0.5] * 14), by_seed([0.5 + x for x in d]))
    assert r["wilcoxon_method"] == "asymptotic"
    lines = verdict(r, {}, "PyTorch", "TensorFlow/Keras")
    assert lines[1].startswith("The Wilcoxon signed-rank test gives p = ")
    assert not any("smallest possible" in line for line in lines)


# ----------------------------------------------------------------------------------------------
# With more than one pair: the p-values Holm-adjusted, the decisions on the adjusted ones


def adjusted(test: dict, p_holm: float, pairs: int = 3, **more) -> dict:
    """A stats result as the analysis passes it on with more than one pair (analysis.pairs_analysis)."""
    if "t_pvalue" in test:
        return test | {"t_pvalue_holm": p_holm, "holm_pairs": pairs}
    return test | {"pvalue_holm": p_holm, "holm_pairs": pairs, "within_margin": test["equivalent"]} | more


def test_the_t_test_is_significant_only_on_its_adjusted_p():
    a = by_seed([0.80, 0.81, 0.82, 0.80, 0.81])
    b = by_seed([0.83, 0.835, 0.845, 0.826, 0.84])
    paired = paired_tests(a, b)
    raw = format_p(paired["t_pvalue"])
    assert paired["t_pvalue"] < 0.01
    one = t_test_sentence(paired, "PyTorch", "TensorFlow/Keras")
    assert one.startswith("TensorFlow/Keras is more accurate") and "Holm" not in one
    significant = t_test_sentence(adjusted(paired, 0.03), "PyTorch", "TensorFlow/Keras")
    assert significant.startswith("TensorFlow/Keras is more accurate")
    assert f"paired t-test p = {raw}, Holm-adjusted over 3 pairs p = 0.03 < 0.05)." in significant
    not_significant = t_test_sentence(adjusted(paired, 0.06), "PyTorch", "TensorFlow/Keras")
    assert not_significant.startswith("No significant difference in test accuracy at alpha = 0.05")
    assert not_significant.endswith(f"paired t-test p = {raw}, Holm-adjusted over 3 pairs p = 0.06).")


def test_equivalence_is_shown_only_on_the_adjusted_tost_p():
    eq = equivalence_test(by_seed(TOST_A), by_seed(TOST_B), 0.01)
    raw = format_p(eq["pvalue"])
    shown = equivalence_sentence(adjusted(eq, 0.002, equivalent=True), "PyTorch", "TensorFlow/Keras")
    assert shown == (
        "Equivalent within ±1.0 points: the 90 % CI of TensorFlow/Keras minus PyTorch, -0.10 to +0.30 points, "
        f"lies within ±1.0 (paired TOST p = {raw}, Holm-adjusted over 3 pairs p = 0.002 < 0.05)."
    )
    # The CI within the margin, the raw p below alpha, the adjusted p not: not shown, and why.
    within = equivalence_sentence(adjusted(eq, 0.07, equivalent=False), "PyTorch", "TensorFlow/Keras")
    assert within == (
        "Equivalence within ±1.0 points not shown: the 90 % CI of TensorFlow/Keras minus PyTorch, -0.10 to "
        "+0.30 points, lies within ±1.0, but over 3 pairs the Holm-adjusted TOST p = 0.07 is not below 0.05 "
        f"(paired TOST p = {raw})."
    )
    beyond = equivalence_test(by_seed(TOST_A), by_seed(TOST_B), 0.002)
    assert equivalence_sentence(adjusted(beyond, 0.35, equivalent=False), "PyTorch", "TensorFlow/Keras") == (
        "Equivalence within ±0.2 points not shown: the 90 % CI of TensorFlow/Keras minus PyTorch, "
        "-0.10 to +0.30 points, reaches beyond ±0.2 (paired TOST p = 0.176, Holm-adjusted over 3 pairs p = 0.35)."
    )
    # One pair: the adjusted p is the p, and nothing is said about it.
    one = equivalence_sentence(adjusted(eq, eq["pvalue"], pairs=1), "PyTorch", "TensorFlow/Keras")
    assert one == equivalence_sentence(eq, "PyTorch", "TensorFlow/Keras") and "Holm" not in one
    assert np.isclose(eq["pvalue"], 3.4445e-4, rtol=1e-4)
