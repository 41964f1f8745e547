"""The headline: the answer in one line, from reports/metrics.json alone (lenet_compare.report.common.headline),
printed last by the report step and again by Snakemake's onsuccess (announce)."""

from __future__ import annotations

import json

import pytest
from conftest import t_half
from report_helpers import FRAMEWORKS, pct

from lenet_compare.core.atomic import write_json
from lenet_compare.core.errors import PipelineError
from lenet_compare.report.common import FRAMEWORK_NAMES, announce, file_state, headline

pytest_plugins = ["report_builds"]

# The committed 5-seed run's numbers, in metrics.json's layout (percent, points).
COMMITTED = {
    "n_seeds": 5,
    "accuracy": {
        "torch": {"mean": 90.356, "std": 0.36018, "ci95_low": 89.9088, "ci95_high": 90.8032},
        "tensorflow": {"mean": 90.216, "std": 0.60044, "ci95_low": 89.4705, "ci95_high": 90.9615},
    },
    "gap": {"mean": -0.14, "ci95_low": -0.6846, "ci95_high": 0.4046, "p": 0.51485, "p_holm": 0.51485},
    "equivalence": {
        "margin": 1.0,
        "ci90_low": -0.5582,
        "ci90_high": 0.2782,
        "p": 0.00592,
        "p_holm": 0.00592,
        "equivalent": True,
    },
    "timing": {},
}

# A third framework and its two pairs; Holm over three pairs.
JAX = {"mean": 90.4, "std": 0.3, "ci95_low": 90.03, "ci95_high": 90.77}
THREE = {
    **COMMITTED,
    "accuracy": COMMITTED["accuracy"] | {"jax": JAX},
    "gap": COMMITTED["gap"] | {"p_holm": 1.0},
    "equivalence": COMMITTED["equivalence"] | {"p_holm": 0.01776},
    "pairs": {
        "jax_minus_torch": {
            "mean": 0.1, "ci95_low": -0.3, "ci95_high": 0.5, "p": 0.5, "p_holm": 1.0,
            "equivalence": {"margin": 1.0, "ci90_low": -0.2, "ci90_high": 0.4, "p": 0.004, "p_holm": 0.012,
                            "equivalent": True},
        },
        "jax_minus_tensorflow": {
            "mean": 0.184, "ci95_low": -0.9, "ci95_high": 1.3, "p": 0.6, "p_holm": 1.0,
            "equivalence": {"margin": 1.0, "ci90_low": -0.7, "ci90_high": 1.1, "p": 0.04, "p_holm": 0.04,
                            "equivalent": False},
        },
    },
}  # fmt: skip


def with_changes(base: dict = COMMITTED, **groups) -> dict:
    """``base`` with some keys of some groups changed."""
    m = json.loads(json.dumps(base))
    for group, values in groups.items():
        m[group] |= values
    return m


ACCURACIES = "PyTorch 90.36 ± 0.45 % | TensorFlow/Keras 90.22 ± 0.75 % (mean ± 95 % CI, 5 seeds)"


@pytest.mark.parametrize(
    ("metrics", "text"),
    [
        (
            COMMITTED,
            f"{ACCURACIES} | TF\u2212PT \u22120.14 points (95 % CI \u22120.68 to +0.40): no significant difference "
            "(p = 0.515); equivalent within ±1.0 points (90 % CI \u22120.56 to +0.28) \u2192 reports/report.html",
        ),
        (
            with_changes(
                gap={"mean": 1.5, "ci95_low": 0.9, "ci95_high": 2.1, "p": 0.0012, "p_holm": 0.0012},
                equivalence={
                    "margin": 0.5,
                    "ci90_low": 1.0,
                    "ci90_high": 2.0,
                    "p": 0.99,
                    "p_holm": 0.99,
                    "equivalent": False,
                },
            ),
            f"{ACCURACIES} | TF\u2212PT +1.50 points (95 % CI +0.90 to +2.10): TensorFlow/Keras ahead, significant "
            "(p = 0.0012); equivalence within ±0.5 points not shown (90 % CI +1.00 to +2.00) "
            "\u2192 reports/report.html",
        ),
        (
            with_changes(
                gap={"p": None, "p_holm": None},
                equivalence={"ci90_low": -0.14, "ci90_high": -0.14, "p": None, "p_holm": None, "equivalent": None},
            ),
            f"{ACCURACIES} | TF\u2212PT \u22120.14 points (95 % CI \u22120.68 to +0.40): no paired t-test; "
            "equivalence within ±1.0 points not shown (TOST undefined) \u2192 reports/report.html",
        ),
        (
            {
                "n_seeds": 1,
                "accuracy": {"torch": {"mean": 90.356, "std": None, "ci95_low": None, "ci95_high": None}},
                "timing": {},
            },
            "PyTorch 90.36 % (1 seed) \u2192 reports/report.html",
        ),
        (
            THREE,
            "PyTorch 90.36 ± 0.45 % | TensorFlow/Keras 90.22 ± 0.75 % | JAX 90.40 ± 0.37 % (mean ± 95 % CI, 5 seeds) "
            "| TF\u2212PT \u22120.14 points (95 % CI \u22120.68 to +0.40): no significant difference (p = 0.515, "
            "Holm-adjusted p = 1); equivalent within ±1.0 points (90 % CI \u22120.56 to +0.28, Holm-adjusted TOST "
            "p = 0.0178) | JAX\u2212PT +0.10 points, equivalent within ±1.0 points (Holm-adjusted TOST p = 0.012) "
            "| JAX\u2212TF +0.18 points, equivalence within ±1.0 points not shown (Holm-adjusted TOST p = 0.04) "
            "\u2192 reports/report.html",
        ),
    ],
    ids=["committed", "significant", "undefined", "one framework", "three frameworks"],
)
def test_headline_text(tmp_path, metrics, text):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    assert headline(path, "reports/report.html") == text


def test_significance_is_decided_on_the_holm_adjusted_p(tmp_path):
    """Raw p 0.01 of three pairs, adjusted 0.03: significant; adjusted 0.06: not, whatever the raw p says."""
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(with_changes(THREE, gap={"mean": 0.9, "p": 0.01, "p_holm": 0.03})))
    assert ": TensorFlow/Keras ahead, significant (p = 0.01, Holm-adjusted p = 0.03)" in headline(path)
    path.write_text(json.dumps(with_changes(THREE, gap={"mean": 0.9, "p": 0.01, "p_holm": 0.06})))
    assert ": no significant difference (p = 0.01, Holm-adjusted p = 0.06)" in headline(path)


def test_a_metrics_file_without_the_holm_keys_is_refused(tmp_path):
    path = tmp_path / "metrics.json"
    m = with_changes()
    del m["gap"]["p_holm"]
    path.write_text(json.dumps(m))
    with pytest.raises(PipelineError, match="lacks 'p_holm'.*rerun the report step"):
        headline(path)


def test_headline_is_the_report_steps_last_stdout_line(built):
    last = built.stdout.splitlines()[-1]
    assert last == headline(built.reports / "metrics.json", built.reports / "report.html")
    # Its numbers are the run files': mean ± 95 % CI half-width per framework, then the gap.
    for f in FRAMEWORKS:
        acc = built.acc(f)
        assert f"{FRAMEWORK_NAMES[f]} {pct(acc.mean())} ± {100 * t_half(acc):.2f} %" in last
    d = 100 * (built.acc("tensorflow") - built.acc("torch"))
    assert f"TF\u2212PT {d.mean():+.2f} points".replace("-", "\u2212") in last  # a typographic minus
    assert "Holm" not in last  # one pair: nothing adjusted
    assert last.endswith(f"\u2192 {built.reports / 'report.html'}")


def test_announce_prints_only_when_the_run_rewrote_the_metrics(tmp_path, capsys):
    """Snakemake's onsuccess: silent after a run without the report, the headline after one with it."""
    path, report = tmp_path / "metrics.json", "reports/report.html"
    assert announce(path, report, file_state(path)) is None  # no metrics.json at all
    write_json(path, COMMITTED)
    before = file_state(path)
    assert announce(path, report, before) is None  # e.g. `snakemake benchmark`: untouched
    assert capsys.readouterr().out == ""
    write_json(path, COMMITTED)  # the report job rewrote it (atomically, as compare.build does)
    assert announce(path, report, before) == headline(path, report)
    assert capsys.readouterr().out == headline(path, report) + "\n"
    path.write_text("{")  # unreadable: no headline, no exception, a reason on stderr
    assert announce(path, report, before) is None
    assert "no headline" in capsys.readouterr().err
