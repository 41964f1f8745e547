"""The statistics (lenet_compare.report.stats) against answers worked out by hand or published in textbooks.

The sentences that read them out are tested in tests/test_sentences.py.
"""

import numpy as np
import pytest
from scipy import stats as sps

from lenet_compare.report.stats import (
    equivalence_test,
    holm,
    mcnemar_test,
    paired_tests,
    prediction_interval,
    summarize,
    wilcoxon_method,
    wilcoxon_smallest_p,
)

# Student (1908), "The probable error of a mean": extra hours of sleep under two drugs, the same
# ten patients. R: t.test(extra ~ group, data = sleep, paired = TRUE) gives t = -4.0621, df = 9,
# p-value = 0.002833, 95 % CI -2.4598858 to -0.7001142 (group 1 minus group 2).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# Hollander & Wolfe (1973), p. 29: Hamilton depression scale before (x) and after (y) a
# tranquilizer, nine patients. R: wilcox.test(x, y, paired = TRUE, alternative = "greater") gives
# V = 40, p-value = 0.01953; two-sided: p = 0.0390625 (20 of the 2^9 sign patterns).
HW_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
HW_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def by_seed(values):
    return dict(enumerate(values))


def test_paired_t_test_matches_students_sleep_data():
    r = paired_tests(by_seed(SLEEP_1), by_seed(SLEEP_2))  # b - a = group 2 minus group 1
    assert r["n_pairs"] == 10
    assert r["mean_difference"] == pytest.approx(1.58)
    assert r["t_statistic"] == pytest.approx(4.0621, abs=1e-4)
    assert r["t_df"] == 9
    assert r["t_pvalue"] == pytest.approx(0.002833, abs=1e-6)
    assert r["ci_low"] == pytest.approx(0.7001142, abs=1e-7)
    assert r["ci_high"] == pytest.approx(2.4598858, abs=1e-7)
    # One patient's difference is exactly zero: Wilcoxon drops it and says so.
    assert r["wilcoxon_n_nonzero"] == 9
    assert "dropped" in r["wilcoxon_note"]


def test_prediction_interval_of_one_run_on_students_sleep_data():
    # mean 1.58, sd 1.229995, t(0.975, 9) = 2.262157: 1.58 +- 2.262157 * 1.229995 * sqrt(1 + 1/10)
    # = 1.58 +- 2.918251 (R: predict(lm(d ~ 1), interval = "prediction")).
    r = paired_tests(by_seed(SLEEP_1), by_seed(SLEEP_2))
    assert r["pi_low"] == pytest.approx(1.58 - 2.918251, abs=1e-6)
    assert r["pi_high"] == pytest.approx(1.58 + 2.918251, abs=1e-6)
    assert r["pi_note"] is None
    # Wider than the CI of the mean by sqrt(n + 1) = sqrt(11).
    ci_half = (r["ci_high"] - r["ci_low"]) / 2
    assert (r["pi_high"] - r["pi_low"]) / 2 == pytest.approx(ci_half * np.sqrt(11))


def test_prediction_interval_is_the_one_formula_of_both_reports():
    # The same numbers as above, from the mean, sd and n alone (ablation_report.summary calls it so).
    d = np.subtract(SLEEP_2, SLEEP_1)
    low, high = prediction_interval(float(np.mean(d)), float(np.std(d, ddof=1)), len(d))
    assert (low, high) == pytest.approx((1.58 - 2.918251, 1.58 + 2.918251), abs=1e-6)


def test_prediction_interval_needs_two_seeds_and_says_why():
    r = paired_tests({0: 0.8}, {0: 0.9})
    assert r["pi_low"] is None and r["pi_high"] is None
    assert "1 paired seed" in r["pi_note"] and "at least 2" in r["pi_note"]


def test_wilcoxon_matches_hollander_wolfe():
    r = paired_tests(by_seed(HW_Y), by_seed(HW_X))  # b - a = x - y
    assert r["wilcoxon_pvalue"] == pytest.approx(0.0390625, abs=1e-9)
    # scipy reports min(W+, W-): W+ = 40 (R's V), so W- = 45 - 40 = 5.
    assert r["wilcoxon_statistic"] == 5
    assert r["wilcoxon_note"] is None


def test_wilcoxon_smallest_p_is_two_over_two_to_the_n():
    assert wilcoxon_smallest_p(5) == pytest.approx(2 / 2**5)  # 0.0625: five seeds can never reject
    assert wilcoxon_smallest_p(6) == pytest.approx(2 / 2**6)
    assert wilcoxon_smallest_p(0) is None


def test_wilcoxon_says_which_null_distribution_it_used():
    # No ties, no zeros: exact; its floor is 2 / 2^n.
    r = paired_tests(by_seed([0.0] * 20), by_seed(np.arange(1, 21) / 100))
    assert r["wilcoxon_method"] == "exact" and r["wilcoxon_smallest_p"] == pytest.approx(2 / 2**20)
    # Ties and a zero, 10 pairs: every sign pattern enumerated, still exact; 9 non-zero differences.
    r = paired_tests(by_seed(SLEEP_1), by_seed(SLEEP_2))
    assert r["wilcoxon_method"] == "permutation" and r["wilcoxon_smallest_p"] == pytest.approx(2 / 2**9)
    # Ties above 13 pairs: scipy falls back to the normal approximation, which has no such floor.
    d = [0.01, 0.01, 0.02, 0.02, 0.03, -0.01, 0.04, 0.05, 0.05, 0.06, 0.07, 0.08, -0.02, 0.09]
    r = paired_tests(by_seed([0.5] * 14), by_seed([0.5 + x for x in d]))
    assert r["wilcoxon_method"] == "asymptotic" and r["wilcoxon_smallest_p"] is None
    # The same p-value as scipy's default ("auto") picks: only the method is made explicit.
    assert r["wilcoxon_pvalue"] == pytest.approx(sps.wilcoxon(np.round(d, 12)).pvalue, rel=1e-12)


def test_wilcoxon_method_follows_scipys_rule():
    assert wilcoxon_method(np.arange(1.0, 51.0)) == "exact"
    assert wilcoxon_method(np.arange(1.0, 52.0)) == "asymptotic"  # above 50 pairs, always
    assert wilcoxon_method(np.array([1.0, 1.0, 2.0])) == "permutation"  # ties
    assert wilcoxon_method(np.array([0.0, 1.0, 2.0])) == "permutation"  # a zero
    assert wilcoxon_method(np.r_[0.0, np.arange(1.0, 13.0)]) == "permutation"  # 13 pairs
    assert wilcoxon_method(np.r_[0.0, np.arange(1.0, 14.0)]) == "asymptotic"  # 14 pairs


def test_mcnemar_on_a_hand_made_table():
    # 50 both right, 1 only a right, 7 only b right, 42 both wrong: exact two-sided
    # p = 2 * P(X <= 1), X ~ Binomial(8, 1/2) = 2 * (1 + 8) / 256 = 0.0703125.
    y = np.zeros(100, dtype=np.int64)
    a = np.array([0] * 50 + [0] * 1 + [1] * 7 + [2] * 42)
    b = np.array([0] * 50 + [3] * 1 + [0] * 7 + [1] * 21 + [2] * 21)  # both wrong: some agree, some not
    r = mcnemar_test(y, a, b)
    assert r["table"] == [[50, 1], [7, 42]]
    assert (r["only_a"], r["only_b"]) == (1, 7)
    assert r["statistic"] == 1  # exact test: the smaller discordant count
    assert r["pvalue"] == pytest.approx(18 / 256, abs=1e-12)
    assert r["pvalue"] == pytest.approx(sps.binomtest(1, 8, 0.5).pvalue)
    # Same class predicted: the 50 both-right images and the 21 both-wrong ones where a = b = 2.
    assert r["agreement"] == pytest.approx(71 / 100)
    assert r["n_disagree"] == 29


def test_mcnemar_without_discordant_pairs_is_p_one():
    y = np.arange(10) % 10
    r = mcnemar_test(y, y, y)
    assert (r["only_a"], r["only_b"], r["pvalue"], r["agreement"]) == (0, 0, 1.0, 1.0)


def test_mcnemar_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        mcnemar_test(np.zeros(3), np.zeros(3), np.zeros(4))


def test_summarize_mean_std_and_t_interval():
    s = summarize([1, 2, 3, 4, 5])
    # sd = sqrt(2.5); CI = 3 +- t(0.975, 4) * sd / sqrt(5) = 3 +- 2.776445 * 0.7071068
    assert (s["n"], s["mean"], s["min"], s["max"]) == (5, 3.0, 1.0, 5.0)
    assert s["std"] == pytest.approx(np.sqrt(2.5))
    assert s["ci_low"] == pytest.approx(3 - 1.963243, abs=1e-6)
    assert s["ci_high"] == pytest.approx(3 + 1.963243, abs=1e-6)


def test_summarize_one_run_has_no_spread():
    s = summarize([0.9])
    assert s["mean"] == 0.9 and s["std"] is None and s["ci_low"] is None
    assert "one run" in s["note"]


def test_summarize_identical_runs_collapse_the_interval():
    s = summarize([0.9] * 3)
    assert s["std"] == 0 and s["ci_low"] == s["ci_high"] == 0.9


def test_paired_tests_with_one_pair_are_null_and_say_why():
    r = paired_tests({0: 0.8}, {0: 0.9})
    assert r["t_pvalue"] is None and r["wilcoxon_pvalue"] is None
    assert "at least 2" in r["t_note"] and "at least 2" in r["wilcoxon_note"]
    assert r["mean_difference"] == pytest.approx(0.1)


def test_paired_tests_with_identical_results_are_null_and_say_why():
    r = paired_tests(by_seed([0.81, 0.82, 0.83]), by_seed([0.81, 0.82, 0.83]))
    assert r["t_pvalue"] is None and "zero" in r["t_note"]
    assert r["wilcoxon_pvalue"] is None and "zero" in r["wilcoxon_note"]
    assert r["mean_difference"] == 0


def test_constant_differences_survive_floating_point_noise():
    # k / n accuracies: 0.8123 - 0.8103 and 0.7001 - 0.6981 differ in the 17th digit.
    a, b = by_seed([8103 / 1e4, 6981 / 1e4, 7500 / 1e4]), by_seed([8123 / 1e4, 7001 / 1e4, 7520 / 1e4])
    r = paired_tests(a, b)
    assert r["t_pvalue"] is None and "equal (+0.20 percentage points)" in r["t_note"]
    assert r["ci_low"] == r["ci_high"] == pytest.approx(0.002)
    assert r["wilcoxon_pvalue"] == pytest.approx(0.25)  # three equal positive differences: 2 / 2^3


def test_only_common_seeds_are_paired():
    r = paired_tests({0: 0.8, 1: 0.81, 2: 0.82}, {1: 0.83, 2: 0.85, 3: 0.9})
    assert r["seeds"] == [1, 2] and r["differences"] == pytest.approx([0.02, 0.03])


# ----------------------------------------------------------------------------------------------
# Equivalence: the paired TOST

# Five seeds, TensorFlow minus PyTorch: +0.2, -0.1, +0.4, +0.1, -0.1 points (fractions below).
TOST_A = [0.900, 0.901, 0.898, 0.903, 0.900]
TOST_D = [0.002, -0.001, 0.004, 0.001, -0.001]
TOST_B = [a + d for a, d in zip(TOST_A, TOST_D, strict=True)]
# By hand, in points: mean = 0.5 / 5 = 0.1; deviations 0.1, -0.2, 0.3, 0, -0.2, squares summing
# to 0.18; sd = sqrt(0.18 / 4) = 0.2121320; se = sd / sqrt(5) = 0.0948683. t(0.95, 4) = 2.131847
# (a t table), so the 90 % CI is 0.1 +- 2.131847 * 0.0948683 = 0.1 +- 0.2022453.
TOST_MEAN, TOST_SE, T_95_4 = 0.1, 0.0948683, 2.131847


def test_tost_matches_a_hand_computation():
    margin = 1.0  # points
    r = equivalence_test(by_seed(TOST_A), by_seed(TOST_B), margin / 100)
    assert r["n_pairs"] == 5 and r["df"] == 4
    assert 100 * r["mean_difference"] == pytest.approx(TOST_MEAN, abs=1e-12)
    assert r["confidence"] == pytest.approx(0.90)
    assert 100 * r["ci_low"] == pytest.approx(TOST_MEAN - T_95_4 * TOST_SE, abs=1e-6)
    assert 100 * r["ci_high"] == pytest.approx(TOST_MEAN + T_95_4 * TOST_SE, abs=1e-6)
    # The two one-sided tests: t = (mean + margin) / se against H0 mean <= -margin, and
    # t = (mean - margin) / se against H0 mean >= +margin.
    t_lower, t_upper = (TOST_MEAN + margin) / TOST_SE, (TOST_MEAN - margin) / TOST_SE
    assert (t_lower, t_upper) == pytest.approx((11.595018, -9.486833), abs=1e-5)
    assert r["t_lower"] == pytest.approx(t_lower, abs=1e-5)
    assert r["t_upper"] == pytest.approx(t_upper, abs=1e-5)
    # Their p-values are the tails of t with 4 df beyond those points; the TOST's is the larger.
    assert r["p_lower"] == pytest.approx(sps.t.sf(t_lower, 4), rel=1e-5)
    assert r["p_upper"] == pytest.approx(sps.t.cdf(t_upper, 4), rel=1e-5)
    assert r["pvalue"] == max(r["p_lower"], r["p_upper"]) == pytest.approx(3.4445e-4, rel=1e-4)
    # The 90 % CI (-0.10 to +0.30) lies within +-1: equivalent.
    assert r["equivalent"] is True and r["note"] is None


def test_tost_with_a_margin_the_ci_crosses_is_not_equivalent():
    # Margin 0.2 points: the 90 % CI's upper end, 0.302, lies beyond it.
    margin = 0.2
    r = equivalence_test(by_seed(TOST_A), by_seed(TOST_B), margin / 100)
    t_lower, t_upper = (TOST_MEAN + margin) / TOST_SE, (TOST_MEAN - margin) / TOST_SE  # 3.162, -1.054
    assert r["p_lower"] == pytest.approx(sps.t.sf(t_lower, 4), rel=1e-5)  # 0.017: rejected alone
    assert r["p_upper"] == pytest.approx(sps.t.cdf(t_upper, 4), rel=1e-5)  # 0.176: not rejected
    assert r["pvalue"] == pytest.approx(0.17565, abs=1e-5)
    assert r["equivalent"] is False
    assert 100 * r["ci_high"] > margin


def test_tost_is_undefined_with_one_seed_or_zero_variance_and_says_why():
    one = equivalence_test({0: 0.90}, {0: 0.905}, 0.01)
    assert one["pvalue"] is None and one["equivalent"] is None
    assert one["note"] == "1 paired seed: a TOST needs at least 2"
    # k / n accuracies whose differences differ only by floating-point noise: still zero variance.
    same = equivalence_test(by_seed([8103 / 1e4, 6981 / 1e4]), by_seed([8123 / 1e4, 7001 / 1e4]), 0.01)
    assert same["pvalue"] is None and same["equivalent"] is None
    assert same["note"] == "all 2 differences are equal (+0.20 percentage points): zero variance, the TOST is undefined"
    assert same["ci_low"] == same["ci_high"] == pytest.approx(0.002)


# ----------------------------------------------------------------------------------------------
# Holm's adjustment over the pairs of frameworks


def test_holm_matches_a_hand_computation():
    # Sorted: 0.01, 0.03, 0.04 (ranks 0, 1, 2 of m = 3). Times (m - rank): 0.03, 0.06, 0.04; the
    # running maximum makes the last 0.06 too (a larger p never gets a smaller adjusted p).
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06], abs=1e-15)
    # Capped at 1.
    assert holm([0.5, 0.6]) == [1.0, 1.0]


def test_holm_with_one_p_value_is_that_p_value():
    assert holm([0.0321]) == [0.0321]
    assert holm([0.9]) == [0.9]


def test_holm_leaves_undefined_tests_out_of_the_family():
    # None (a TOST with one seed, say) stays None; the others are adjusted as a family of two.
    assert holm([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])
    assert holm([None, None]) == [None, None]
    assert holm([]) == []
