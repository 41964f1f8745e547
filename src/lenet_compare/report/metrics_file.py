"""reports/metrics.json, the only file DVC knows as metrics: the analysis in few, short, grouped keys."""

from __future__ import annotations

from lenet_compare.core.numbers import percent_from_fraction

# reports/metrics.json's timing keys: one training and one inference figure per framework, the
# two a reader compares first; the rest stays in report.md's Timings table.
SUMMARY_TIMINGS = ("seconds_per_epoch", "inference_images_per_second")


def summary_metrics(analysis: dict) -> dict:
    """reports/metrics.json from the analysis (lenet_compare.report.analysis.analyze).

    Sized for one `dvc exp show` table: accuracies in percent, differences in percentage points,
    each group a prefix of the flattened column names. The layout, flattened as DVC shows it:

    - ``n_seeds``
    - ``accuracy.{framework}.{mean, std, ci95_low, ci95_high}``: every framework of params.yaml
    - ``gap.{mean, ci95_low, ci95_high, p, p_holm}``: the article's pair, TensorFlow minus PyTorch
      (present when both run): the mean difference over seeds, its 95 % CI and the paired
      t-test's p, unadjusted and Holm-adjusted over all pairs
    - ``equivalence.{margin, ci90_low, ci90_high, p, p_holm, equivalent}``: its paired TOST at
      ``report.equivalence_margin`` (points), the 90 % CI, the TOST's p unadjusted and
      Holm-adjusted; ``equivalent`` is decided on ``p_holm``
    - ``pairs.{b}_minus_{a}.{mean, ci95_low, ci95_high, p, p_holm}`` and
      ``pairs.{b}_minus_{a}.equivalence.{margin, ci90_low, ci90_high, p, p_holm, equivalent}``:
      every further pair (a, b), b minus a, in the analysis's order (e.g. ``pairs.jax_minus_torch``);
      absent with two frameworks
    - ``timing.{framework}.{seconds_per_epoch, inference_images_per_second}``

    ``gap`` and ``equivalence`` keep the keys of the two-framework layout, so ``dvc metrics diff``
    lines up with older commits; with one pair, ``p_holm`` equals ``p``. Everything else is in
    report.md; ``headline`` (common.py) reads this file back.
    """
    out: dict = {"n_seeds": len(analysis["seeds"]), "accuracy": {}}
    for f, fw in analysis["frameworks"].items():
        acc = fw["accuracy"]
        out["accuracy"][f] = {
            "mean": percent_from_fraction(acc["mean"]),
            "std": percent_from_fraction(acc["std"]),
            "ci95_low": percent_from_fraction(acc["ci_low"]),
            "ci95_high": percent_from_fraction(acc["ci_high"]),
        }
    further = {}
    for pair in analysis["pairs"]:
        if pair is analysis["pair"]:
            out["gap"], out["equivalence"] = _gap(pair), _equivalence(pair)
        else:
            further[pair["key"]] = _gap(pair) | {"equivalence": _equivalence(pair)}
    if further:
        out["pairs"] = further
    out["timing"] = {
        f: {key: fw["timing"][key]["mean"] for key in SUMMARY_TIMINGS} for f, fw in analysis["frameworks"].items()
    }
    return out


def _gap(pair: dict) -> dict:
    """The mean difference b - a in points, its 95 % CI and the paired t-test's p (raw, Holm-adjusted)."""
    p = pair["paired"]
    return {
        "mean": percent_from_fraction(p["mean_difference"]),
        "ci95_low": percent_from_fraction(p["ci_low"]),
        "ci95_high": percent_from_fraction(p["ci_high"]),
        "p": p["t_pvalue"],
        "p_holm": p["t_pvalue_holm"],
    }


def _equivalence(pair: dict) -> dict:
    """The paired TOST: margin (points), 90 % CI, p (the larger one-sided p; raw, Holm-adjusted), verdict."""
    eq = pair["equivalence"]
    return {
        "margin": pair["equivalence_margin_points"],
        "ci90_low": percent_from_fraction(eq["ci_low"]),
        "ci90_high": percent_from_fraction(eq["ci_high"]),
        "p": eq["pvalue"],
        "p_holm": eq["pvalue_holm"],
        "equivalent": eq["equivalent"],
    }
