"""More than two frameworks: every framework and every pair in report.md, metrics.json, the headline and
the figures, p-values Holm-adjusted over the pairs and the verdicts decided on the adjusted ones.

The third framework is made up ("jax" in tests/synthetic_runs.py); the expected numbers are recomputed
here by hand from the run files (Holm's adjustment included), independently of lenet_compare.report.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import table_after
from report_helpers import SEEDS, THREE, build_here, flatten, one_line, rebuild, row, summary_keys
from scipy import optimize
from scipy import stats as sps
from synthetic_runs import params_for

from lenet_compare.report.analysis import framework_pairs
from lenet_compare.report.common import FIGURES, FRAMEWORK_NAMES, format_p, headline
from lenet_compare.report.document import title

pytest_plugins = ["report_builds"]

# The pairs of THREE as the report orders them: the article's first, then params.yaml's order.
PAIRS = [("torch", "tensorflow"), ("torch", "jax"), ("tensorflow", "jax")]


def holm_by_hand(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment written out: sorted p times (m - rank), running maximum, at most 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * pvalues[i])
        adjusted[i] = min(1.0, running)
    return adjusted


def differences(b, a: str, bb: str) -> np.ndarray:
    """b minus a per seed, in points."""
    return 100 * (b.acc(bb) - b.acc(a))


def t_p(d: np.ndarray) -> float:
    """The paired t-test's two-sided p, from the differences."""
    n = d.size
    return float(2 * sps.t.sf(abs(d.mean() / (d.std(ddof=1) / np.sqrt(n))), n - 1))


def tost_p(d: np.ndarray, margin: float) -> float:
    """The paired TOST's p at ±margin: the larger of the two one-sided t-tests' p-values."""
    n, se = d.size, d.std(ddof=1) / np.sqrt(d.size)
    return float(max(sps.t.sf((d.mean() + margin) / se, n - 1), sps.t.cdf((d.mean() - margin) / se, n - 1)))


def pair_metrics(summary: dict, a: str, b: str) -> tuple[dict, dict]:
    """metrics.json's gap and equivalence groups of the pair (a, b)."""
    if (a, b) == ("torch", "tensorflow"):
        return summary["gap"], summary["equivalence"]
    group = summary["pairs"][f"{b}_minus_{a}"]
    return group, group["equivalence"]


def test_pairs_come_in_the_articles_order_then_params_order():
    assert framework_pairs(list(THREE)) == PAIRS
    assert framework_pairs(["tensorflow", "jax", "torch"]) == [
        ("torch", "tensorflow"),
        ("tensorflow", "jax"),
        ("jax", "torch"),
    ]
    assert framework_pairs(["torch", "jax"]) == [("torch", "jax")]
    assert framework_pairs(["tensorflow", "torch"]) == [("torch", "tensorflow")]
    assert framework_pairs(["torch"]) == []


def test_the_title_names_every_framework():
    assert title(["torch", "tensorflow"]) == "TensorFlow vs PyTorch: LeNet-5 on Fashion-MNIST, a controlled comparison"
    assert title(list(THREE)).startswith("TensorFlow vs PyTorch and JAX: ")
    assert title(["torch"]).startswith("TensorFlow vs PyTorch: ")


def test_every_framework_and_pair_is_in_the_report(built3):
    assert built3.md.startswith("# TensorFlow vs PyTorch and JAX: LeNet-5 on Fashion-MNIST")
    assert "<title>TensorFlow vs PyTorch and JAX: LeNet-5" in built3.html
    assert "one controlled experiment, with JAX alongside:" in one_line(built3.md)
    rows = table_after(built3.md, "## Results at a glance")
    for f in THREE:
        assert row(rows, FRAMEWORK_NAMES[f])[3] == ", ".join(f"{100 * x:.2f}" for x in built3.acc(f))
    assert row(rows, "JAX")[1] == "n/a"  # the article ran no JAX
    glance = [r[0] for r in rows[len(THREE) :]]
    assert glance == [f"{FRAMEWORK_NAMES[b]} minus {FRAMEWORK_NAMES[a]}" for a, b in PAIRS]
    for a, b in PAIRS:
        name = f"{FRAMEWORK_NAMES[b]} minus {FRAMEWORK_NAMES[a]}"
        assert row(rows, name)[3] == ", ".join(f"{x:+.2f}" for x in differences(built3, a, b))
        assert f"\n### Paired by seed: {name}\n" in built3.md
        assert f"\n{name}:\n" in built3.md  # its verdict
    assert "| | PyTorch | TensorFlow/Keras | JAX |" in built3.md  # Timings
    assert row(table_after(built3.md, "## Timings"), "device")[1:] == ["cpu"] * 3
    assert row(table_after(built3.md, "## Environment"), "framework version")[1:] == ["2.14.1", "2.21.0", "2.21.0"]
    assert "the 3 frameworks do not all predict the same class" in built3.md


def test_every_pair_is_in_metrics_json(built3):
    flat = flatten(built3.summary)
    assert list(flat) == summary_keys(THREE, ["jax_minus_torch", "jax_minus_tensorflow"])
    assert all(v is None or isinstance(v, int | float) for v in flat.values())
    margin = built3.params["report"]["equivalence_margin"]
    for a, b in PAIRS:
        d = differences(built3, a, b)
        gap, eq = pair_metrics(built3.summary, a, b)
        assert gap["mean"] == pytest.approx(d.mean(), abs=1e-10)
        assert gap["p"] == pytest.approx(t_p(d), rel=1e-9)
        assert eq["margin"] == margin
        assert eq["p"] == pytest.approx(tost_p(d, margin), rel=1e-9)


def test_holm_adjusted_p_values_equal_a_hand_computation(built3):
    margin = built3.params["report"]["equivalence_margin"]
    ds = [differences(built3, a, b) for a, b in PAIRS]
    expected_t = holm_by_hand([t_p(d) for d in ds])
    expected_tost = holm_by_hand([tost_p(d, margin) for d in ds])
    for (a, b), p_t, p_tost in zip(PAIRS, expected_t, expected_tost, strict=True):
        gap, eq = pair_metrics(built3.summary, a, b)
        assert gap["p_holm"] == pytest.approx(p_t, rel=1e-9)
        assert eq["p_holm"] == pytest.approx(p_tost, rel=1e-9)
        assert eq["equivalent"] is bool(p_tost < 0.05)
    # The report gives both, raw and adjusted, in each pair's statistics and verdict.
    text = one_line(built3.md)
    for (a, b), p_t in zip(PAIRS, expected_t, strict=True):
        raw = format_p(pair_metrics(built3.summary, a, b)[0]["p"])
        assert f"paired t-test p = {raw}, Holm-adjusted over 3 pairs p = {format_p(p_t)}" in text


def margin_for_raw_tost_p(d: np.ndarray, p: float) -> float:
    """The margin (points) at which the TOST of ``d`` has exactly p-value ``p``."""
    return optimize.brentq(lambda m: tost_p(d, m) - p, abs(d.mean()) + 1e-9, 1000.0)


def test_the_verdict_uses_the_adjusted_p(tmp_path, built3):
    """A margin at which the article pair's raw TOST p is 0.03 < 0.05, but the Holm-adjusted one is not:
    equivalence is not shown, in metrics.json, in the verdict, in the statistics and in the headline."""
    ds = {pair: differences(built3, *pair) for pair in PAIRS}
    margin = margin_for_raw_tost_p(ds[PAIRS[0]], 0.03)
    ps = [tost_p(d, margin) for d in ds.values()]
    adjusted = holm_by_hand(ps)
    assert ps[0] == pytest.approx(0.03) and adjusted[0] >= 0.05
    params = built3.params | {"report": built3.params["report"] | {"equivalence_margin": margin}}
    b = rebuild(built3, tmp_path, params)
    eq = b.summary["equivalence"]
    assert eq["p"] == pytest.approx(0.03) and eq["p_holm"] == pytest.approx(adjusted[0], rel=1e-9)
    assert eq["equivalent"] is False
    within = f"within ±{margin:g} points"
    line = next(x for x in b.md.splitlines() if x.startswith("- Equivalen"))
    assert line.startswith(f"- Equivalence {within} not shown: the 90 % CI of TensorFlow/Keras minus PyTorch")
    assert f"lies within ±{margin:g}, but over 3 pairs the Holm-adjusted TOST p = {format_p(adjusted[0])}" in line
    assert "is not below 0.05 (paired TOST p = 0.03)" in line
    assert "equivalence not shown: the 90 % CI lies within the margin, but the TOST p Holm-adjusted" in b.md
    assert f"; equivalence {within} not shown (90 % CI" in headline(b.reports / "metrics.json")


def test_two_frameworks_decide_on_the_same_margin_as_before(tmp_path, built3):
    """The same runs and margin without jax: one pair, nothing to adjust, raw p 0.03 shows equivalence."""
    d = differences(built3, "torch", "tensorflow")
    margin = margin_for_raw_tost_p(d, 0.03)
    params = params_for(("torch", "tensorflow"), SEEDS, epochs=4)
    params["report"]["equivalence_margin"] = margin
    b = rebuild(built3, tmp_path, params)
    eq = b.summary["equivalence"]
    assert eq["p_holm"] == eq["p"] == pytest.approx(0.03)
    assert eq["equivalent"] is True
    assert f"- Equivalent within ±{margin:g} points: the 90 % CI" in b.md and "Holm" not in b.md


def test_the_headline_names_every_framework_and_pair(built3):
    line = headline(built3.reports / "metrics.json", "reports/report.html")
    for f in THREE:
        assert f"{FRAMEWORK_NAMES[f]} {100 * built3.acc(f).mean():.2f} ± " in line
    parts = line.split(" | ")
    assert [p.split(" ")[0] for p in parts[3:]] == ["TF\u2212PT", "JAX\u2212PT", "JAX\u2212TF"]
    for part, (a, b) in zip(parts[4:], PAIRS[1:], strict=True):
        _, eq = pair_metrics(built3.summary, a, b)
        mean = f"{differences(built3, a, b).mean():+.2f}".replace("-", "\u2212")
        verdict = "equivalent within ±1.0 points" if eq["equivalent"] else "equivalence within ±1.0 points not shown"
        assert part.startswith(f"{part.split(' ')[0]} {mean} points, {verdict} (Holm-adjusted TOST p = ")
        assert format_p(eq["p_holm"]) in part


def test_every_figure_shows_every_framework(tmp_path, fake_cache, saved_figures):
    b = build_here(tmp_path, fake_cache, params_for(THREE, (0, 1), epochs=3))
    assert sorted(saved_figures) == sorted(f"{name}.png" for name in FIGURES)
    names = [FRAMEWORK_NAMES[f] for f in THREE]
    pair_names = [f"{FRAMEWORK_NAMES[b]} minus {FRAMEWORK_NAMES[a]}" for a, b in PAIRS]

    def legend(ax) -> list[str]:
        return [t.get_text() for t in ax.get_legend().get_texts()]

    assert legend(saved_figures["learning_curves.png"].axes[0]) == names
    accuracy = saved_figures["accuracy_per_seed.png"].axes[0]
    assert [t.get_text() for t in accuracy.get_xticklabels()] == names
    assert [ax.get_title() for ax in saved_figures["confusion_matrices.png"].axes[:3]] == names
    per_class = saved_figures["per_class_accuracy.png"]
    assert legend(per_class.axes[0]) == names and legend(per_class.axes[1]) == pair_names
    assert [t.get_text() for t in saved_figures["timing.png"].axes[0].get_xticklabels()] == names
    drift = saved_figures["drift.png"]
    assert legend(drift.axes[0]) == [f"{n}, mean over seeds" for n in pair_names] + ["thin lines: one seed"]
    # Every framework's prediction under each image the frameworks do not all agree on.
    texts = [t.get_text() for ax in saved_figures["disagreements.png"].axes for t in ax.texts]
    for name in names:
        assert any(t.startswith(f"{name}: ") for t in texts), name
    y = b.y_pred("torch", 0)
    disagree = (b.y_pred("tensorflow", 0) != y) | (b.y_pred("jax", 0) != y)
    assert saved_figures["disagreements.png"].get_suptitle().endswith(f"of {int(disagree.sum())} disagreements")
    assert f"seed 0: {int(disagree.sum()):,} of 400 images" in b.md


def test_the_plots_folder_holds_exactly_the_frameworks_confusion_csvs(built3, tmp_path):
    """DVC declares reports/plots as one output: a framework dropped from params.yaml leaves no CSV."""
    plots = built3.root / "reports" / "plots"
    assert sorted(p.name for p in plots.iterdir()) == sorted(f"confusion_{f}.csv" for f in THREE)
    # The same runs reported again for two of the frameworks, over a copy of that folder.
    shutil.copytree(plots, tmp_path / "reports" / "plots")
    rebuild(built3, tmp_path, params_for(THREE[:2], SEEDS, epochs=4))
    kept = sorted(p.name for p in (tmp_path / "reports" / "plots").iterdir())
    assert kept == sorted(f"confusion_{f}.csv" for f in THREE[:2])
