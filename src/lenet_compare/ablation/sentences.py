"""The ablation's words, each derived from its numbers (lenet_compare.ablation.analysis).

Every function here takes summaries or the analysis dict and returns text: nothing is computed
that the numbers do not already hold. Gaps and changes are in percentage points.
"""

from __future__ import annotations

from lenet_compare.core.article import PAIR
from lenet_compare.core.frameworks import FRAMEWORK_NAMES
from lenet_compare.core.numbers import signed_points
from lenet_compare.report import stats


def ci_text(s: dict) -> str:
    """The 95 % CI as "95 % CI a to b", or why there is none."""
    if s["ci_low"] is None:
        return "no CI with one seed" if s["n"] == 1 else f"no CI: {s['note']}"
    return f"95 % CI {signed_points(s['ci_low'])} to {signed_points(s['ci_high'])}"


def small_n_note(n: int) -> str:
    """What n seeds can and cannot say about a single published run, in words."""
    if n < 2:
        return (
            f"With {n} seed there is no seed-to-seed spread to compare the article's single runs with: "
            "add seeds to ablation.seeds."
        )
    t = stats.t_quantile(n - 1)
    cover = (n - 1) / (n + 1)
    return (
        f"With n = {n} seeds: the range [min, max] of n runs holds one more run only with probability "
        f"(n - 1) / (n + 1) = {100 * cover:.0f} %, so an article value outside it is weak evidence on its own; "
        f"the 95 % prediction interval for one run (mean ± t · sd · sqrt(1 + 1/n), t(0.975, {n - 1}) = {t:.2f}) "
        "is the fairer yardstick, and with few seeds it is wide."
    )


def what_changed(entry: dict) -> str:
    """Which frameworks a step retrains, which it only reports differently, which it leaves alone."""
    if entry["index"] == 0:
        return "both (the article's setup)"
    names = FRAMEWORK_NAMES
    retrained = entry["retrained"]
    reporting = [f for f in entry["reporting_changed"] if f not in retrained]
    no_op = entry["no_op"]
    untouched = [f for f in PAIR if f not in retrained and f not in reporting and f not in no_op]
    already = f" ({' and '.join(names[f] for f in untouched)} already controlled)" if untouched else ""
    if retrained:
        text = " and ".join(names[f] for f in retrained)
        if reporting:
            return f"{text}; reporting only: {' and '.join(names[f] for f in reporting)}"
        return text + already
    if reporting:
        return f"none: reporting only ({' and '.join(names[f] for f in reporting)})"
    if no_op:
        return f"none: {' and '.join(names[f] for f in no_op)} trains bit for bit as before{already}"
    return "none: both already controlled"


def _excludes_zero(s: dict) -> bool | None:
    if s["ci_low"] is None:
        return None
    return s["ci_low"] > 0 or s["ci_high"] < 0


def _seeds(a: dict) -> str:
    return stats.plural(a["n_seeds"], "seed")


def _largest_step(a: dict) -> dict | None:
    """The step that moved the gap most (None when the article's setup is the only step)."""
    return next((e for e in a["steps"] if e["step"] == a["largest_step"]), None)


def conclusion(a: dict) -> list[str]:
    """Two or three sentences for ablation.md, each derived from the numbers."""
    pt, tf = PAIR
    rep, total = a["reproduction"], a["total"]
    first_gap, last_gap = total["article_gap"], total["controlled_gap"]
    where = rep["gap"]["reported_vs_article"]["in_prediction_interval"]
    where_words = {
        "inside": "inside the 95 % prediction interval for a single run of that setup",
        "overlaps": "within the 95 % prediction interval for a single run of that setup",
        "above": "above the 95 % prediction interval for a single run of that setup",
        "below": "below the 95 % prediction interval for a single run of that setup",
        None: "not comparable with a single run's spread here (too few seeds)",
    }[where]
    lines = [
        f"Reproduced over {_seeds(a)}, the article's setup gives {a['frameworks'][tf]} "
        f"{rep[tf]['reported']['mean']:.2f} % and {a['frameworks'][pt]} {rep[pt]['reported']['mean']:.2f} % "
        f"as its code reports them, a gap of {signed_points(first_gap['mean'])} points ({ci_text(first_gap)}); "
        f"the article's {signed_points(rep['gap']['article_printed'])} is {where_words}."
    ]
    step = _largest_step(a)
    if step is not None:
        ch = step["change"]
        zero = _excludes_zero(ch)
        tail = "" if zero is None else (", which excludes zero" if zero else ", which includes zero")
        significant = [e["step"] for e in a["steps"][1:] if _excludes_zero(e["change"])]
        lines.append(
            f"The step that moved the gap most is {step['label']}: {signed_points(ch['mean'])} points "
            f"({ci_text(ch)}{tail}); "
            + (
                f"the steps whose 95 % CI excludes zero are {', '.join(significant)}."
                if significant
                else "no step's 95 % CI excludes zero."
            )
        )
    lines.extend(framework_effects(a))
    lines.append(
        f"With every factor controlled the gap is {signed_points(last_gap['mean'])} points ({ci_text(last_gap)}), "
        f"a change of {signed_points(total['change']['mean'])} points from the article's setup "
        f"({ci_text(total['change'])})."
    )
    return lines


def framework_effects(a: dict) -> list[str]:
    """Per framework, the steps that changed its own (exact) accuracy beyond their 95 % CI."""
    lines = []
    for f in PAIR:
        moved = [
            f"{e['label']} ({signed_points(e['framework_change'][f]['mean'])} points, "
            f"{ci_text(e['framework_change'][f])})"
            for e in a["steps"][1:]
            if f in e["retrained"] and _excludes_zero(e["framework_change"][f])
        ]
        lines.append(
            f"{a['frameworks'][f]}'s own accuracy: "
            + (
                f"the steps whose 95 % CI excludes zero are {'; '.join(moved)}."
                if moved
                else "no step changed it beyond its 95 % CI."
            )
        )
    return lines


def summary_sentences(a: dict) -> list[str]:
    """Exactly two sentences for the main report's section "The article's gap, explained"."""
    first_gap, last_gap = a["total"]["article_gap"], a["total"]["controlled_gap"]
    step = _largest_step(a)
    moved = (
        f", and the step that moved it most is {step['label']}, by {signed_points(step['change']['mean'])} points "
        f"({ci_text(step['change'])})"
        if step is not None
        else ""
    )
    return [
        f"Reproducing the article's setup over {_seeds(a)} gives a TensorFlow-minus-PyTorch gap "
        f"of {signed_points(first_gap['mean'])} points as its code reports it ({ci_text(first_gap)}; the article: "
        f"{signed_points(a['reproduction']['gap']['article_printed'])}){moved}.",
        f"Moving the factors one at a time to this protocol leaves a gap of {signed_points(last_gap['mean'])} points "
        f"({ci_text(last_gap)}) on the same {_seeds(a)}.",
    ]
