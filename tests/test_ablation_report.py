"""The ablation's report: every gap, change and interval equals a direct computation from the run files.

The runs are synthetic (tests/synthetic_runs.py: known n_correct per framework, run and seed, one
record per run as the one-run jobs write them). The expected numbers are computed here with numpy /
scipy from those counts and a hand-written map of which run each framework has at each step,
independently of lenet_compare.ablation.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run, t_half, table_after, write_params
from PIL import Image
from scipy import stats as sps
from synthetic_runs import ABLATION_CORRECT, ABLATION_N_TEST, params_for, write_ablation_runs

from lenet_compare.ablation import analysis, report
from lenet_compare.core import layout
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import FRAMEWORK_NAMES

SEEDS = (0, 1, 2)
STEPS = ("article", "accuracy", "head", "eps", "padding", "init", "order")
# Which run each framework has at each step with params.yaml's default ablation (written out by hand).
STEP_RUNS = {
    "torch": ("article", "article", "article", "article", "article", "init", "main"),
    # Keras's head step reuses the article's run: the softmax head trains bit for bit like logits.
    "tensorflow": ("article", "article", "article", "eps", "padding", "init", "main"),
}
RETRAINED = {
    "accuracy": "none: reporting only (PyTorch)",
    "head": "none: TensorFlow/Keras trains bit for bit as before (PyTorch already controlled)",
    "eps": "TensorFlow/Keras (PyTorch already controlled)",
    "padding": "TensorFlow/Keras (PyTorch already controlled)",
    "init": "PyTorch and TensorFlow/Keras",
    "order": "PyTorch and TensorFlow/Keras",
}


def ablation_params(seeds=SEEDS, main_seeds=(0, 1, 2, 3)) -> dict:
    params = params_for(("torch", "tensorflow"), main_seeds, epochs=3)
    params["ablation"]["seeds"] = list(seeds)
    return params


def reported(f: str, k: int, correct=ABLATION_CORRECT) -> np.ndarray:
    """Accuracy in % as the article's code prints it: PyTorch truncated at the first step only."""
    n = np.array(correct[f][STEP_RUNS[f][k]], dtype=np.int64)
    if f == "torch" and k == 0:
        return (100 * n // ABLATION_N_TEST).astype(np.float64)
    return 100 * n / ABLATION_N_TEST


def gaps(k: int) -> np.ndarray:
    return reported("tensorflow", k) - reported("torch", k)


def t_ci(x: np.ndarray) -> tuple[float, float]:
    return x.mean() - t_half(x), x.mean() + t_half(x)


def t_pi(x: np.ndarray) -> tuple[float, float]:
    return x.mean() - t_half(x, one_more=True), x.mean() + t_half(x, one_more=True)


@dataclass
class Built:
    root: Path
    params: dict
    md: str
    data: dict

    @property
    def figure(self) -> Path:
        return self.root / "reports" / "figures" / "ablation.png"


def outputs(root: Path) -> dict[str, Path]:
    r = root / "reports"
    return {"out_md": r / "ablation.md", "out_json": r / "ablation.json", "figure": r / "figures" / "ablation.png"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """The ablation report of 3 seeds, built through the step's command line."""
    root = tmp_path_factory.mktemp("ablation")
    params = ablation_params()
    write_params(root / "params.yaml", params)
    write_ablation_runs(root, params)
    run(
        [
            sys.executable, REPO / "workflow/scripts/ablation_report.py", "--params", "params.yaml",
            "--runs-dir", "reports/ablation/runs", "--main-runs-dir", "reports/runs",
            "--out-md", "reports/ablation.md", "--out-json", "reports/ablation.json",
            "--figure", "reports/figures/ablation.png", "--log", "ablation.log",
        ],
        cwd=root,
    )  # fmt: skip
    out = outputs(root)
    return Built(root, params, out["out_md"].read_text(), json.loads(out["out_json"].read_text()))


# ----------------------------------------------------------------------------------------------
# The numbers


def test_reported_accuracies_truncate_pytorch_at_the_article_step_only(built):
    steps = built.data["steps"]
    # 8,997 of 10,000 right is 89.97 %: the article's code prints 89, the next step shows 89.97.
    assert steps[0]["accuracy"]["torch"]["reported"]["values"] == [89.0, 89.0, 90.0]
    assert steps[0]["accuracy"]["torch"]["exact"]["values"] == pytest.approx([89.97, 89.50, 90.12], abs=1e-12)
    assert steps[1]["accuracy"]["torch"]["reported"]["values"] == pytest.approx([89.97, 89.50, 90.12], abs=1e-12)
    assert steps[0]["accuracy"]["torch"]["how"] == "truncated"
    assert all(e["accuracy"]["torch"]["how"] == "exact" for e in steps[1:])
    for k, e in enumerate(steps):
        for f in ("torch", "tensorflow"):
            assert e["run_ids"][f] == STEP_RUNS[f][k]
            assert e["accuracy"][f]["reported"]["values"] == pytest.approx(reported(f, k).tolist(), abs=1e-9)


def test_gaps_and_their_intervals_equal_scipy(built):
    steps = built.data["steps"]
    assert [e["step"] for e in steps] == list(STEPS)
    for k, e in enumerate(steps):
        g = gaps(k)
        s = e["gap"]
        assert s["values"] == pytest.approx(g.tolist(), abs=1e-9)
        assert s["mean"] == pytest.approx(g.mean(), abs=1e-9)
        assert s["std"] == pytest.approx(np.std(g, ddof=1), abs=1e-9)
        low, high = t_ci(g)
        assert (s["ci_low"], s["ci_high"]) == pytest.approx((low, high), abs=1e-9)
        # The same as scipy's own one-sample t interval.
        ci = sps.ttest_1samp(g, 0).confidence_interval(0.95)
        assert (s["ci_low"], s["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_changes_are_paired_by_seed_and_equal_scipy(built):
    steps = built.data["steps"]
    assert steps[0]["change"] is None
    for k in range(1, len(STEPS)):
        d = gaps(k) - gaps(k - 1)
        s = steps[k]["change"]
        assert s["values"] == pytest.approx(d.tolist(), abs=1e-9)
        assert s["mean"] == pytest.approx(d.mean(), abs=1e-9)
        # Paired: the CI of the mean change is ttest_rel's on the two steps' gaps.
        ci = sps.ttest_rel(gaps(k), gaps(k - 1)).confidence_interval(0.95)
        assert (s["ci_low"], s["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_the_changes_add_up_to_the_total(built):
    total = built.data["total"]
    whole = gaps(len(STEPS) - 1) - gaps(0)
    assert total["change"]["values"] == pytest.approx(whole.tolist(), abs=1e-9)
    assert total["change"]["mean"] == pytest.approx(whole.mean(), abs=1e-9)
    assert total["sum_of_step_changes"] == pytest.approx(whole.mean(), abs=1e-9)
    assert sum(e["change"]["mean"] for e in built.data["steps"][1:]) == pytest.approx(whole.mean(), abs=1e-9)
    assert total["sum_check_ok"] is True
    assert total["article_gap"]["mean"] == pytest.approx(gaps(0).mean(), abs=1e-9)
    assert total["controlled_gap"]["mean"] == pytest.approx(gaps(len(STEPS) - 1).mean(), abs=1e-9)


def test_which_frameworks_each_step_retrains(built):
    steps = {e["step"]: e for e in built.data["steps"]}
    assert steps["article"]["retrained"] == ["torch", "tensorflow"]
    assert steps["accuracy"]["retrained"] == [] and steps["accuracy"]["reporting_changed"] == ["torch"]
    assert steps["head"]["retrained"] == [] and steps["head"]["no_op"] == ["tensorflow"]
    for step in ("eps", "padding"):
        assert steps[step]["retrained"] == ["tensorflow"] and steps[step]["reporting_changed"] == []
    for step in ("init", "order"):
        assert steps[step]["retrained"] == ["torch", "tensorflow"]
    for step, text in RETRAINED.items():
        assert steps[step]["what_changed"] == text
    assert built.data["run_ids"] == {f: list(dict.fromkeys(STEP_RUNS[f])) for f in STEP_RUNS}
    # The factors' values per framework and step, as params.yaml's ablation section gives them.
    assert steps["article"]["settings"]["tensorflow"]["padding"] == [2, 2]
    assert steps["padding"]["settings"]["tensorflow"]["padding"] == [2, 0]
    assert steps["order"]["settings"]["torch"]["order"] == "shared"
    assert built.data["seeds"] == list(SEEDS)


def test_reproduction_against_the_articles_numbers(built):
    rep = built.data["reproduction"]
    pt, tf = reported("torch", 0), reported("tensorflow", 0)
    assert rep["torch"]["reported"]["mean"] == pytest.approx(pt.mean())
    assert rep["torch"]["reported"]["std"] == pytest.approx(np.std(pt, ddof=1))
    assert (rep["torch"]["reported"]["min"], rep["torch"]["reported"]["max"]) == (89.0, 90.0)
    assert (rep["tensorflow"]["reported"]["pi_low"], rep["tensorflow"]["reported"]["pi_high"]) == pytest.approx(
        t_pi(tf), abs=1e-9
    )
    # Printed like with like: the article's 89 lies in our printed range [89, 90] and its 91.34 in [91.20, 91.51].
    assert rep["torch"]["reported_vs_article"]["in_range"] == "inside"
    assert rep["tensorflow"]["reported_vs_article"]["in_range"] == "inside"
    # The interval the printed 89 allows, [89, 90), against our exact range [89.50, 90.12]: it overlaps.
    assert rep["torch"]["exact_vs_article"]["in_range"] == "overlaps"
    assert rep["torch"]["exact_vs_article"]["article_high_excluded"] is True
    # The printed gap 91.34 - 89 = 2.34 equals our seed 0's printed gap: inside our range and our PI.
    g = gaps(0)
    assert rep["gap"]["article_printed"] == pytest.approx(2.34)
    assert rep["gap"]["reported_vs_article"]["in_range"] == "inside"
    low, high = t_pi(g)
    assert rep["gap"]["reported"]["pi_low"] == pytest.approx(low, abs=1e-9)
    assert rep["gap"]["reported_vs_article"]["in_prediction_interval"] == ("inside" if low <= 2.34 <= high else "no")
    assert "n = 3 seeds" in rep["note"] and "50 %" in rep["note"]


def test_within_says_where_the_articles_value_lies():
    within = analysis.within
    assert within(89, 89, 89, 90, False) == "inside"
    assert within(91.34, 91.34, 91.0, 91.3, False) == "above"
    assert within(89, 89, 89.5, 90, False) == "below"
    assert within(89, 90, 89.5, 90.1, True) == "overlaps"
    assert within(89, 90, 90.0, 90.1, True) == "below"  # 90 itself is not in [89, 90)
    assert within(89, 90, 88.0, 91.0, True) == "inside"
    assert within(89, 89, None, None, False) is None


# ----------------------------------------------------------------------------------------------
# The Markdown and the figure


def test_markdown_cites_the_article_first(built):
    intro = built.md.split("\n\n")[1]
    assert "**TensorFlow/Keras 91.34 % against PyTorch 89 %**" in intro
    assert "`100 * correct // total`" in intro


def test_one_row_per_step_with_its_gap_and_interval(built):
    rows = table_after(built.md, "## One factor at a time")
    assert len(rows) == len(STEPS)
    for k, r in enumerate(rows):
        g = gaps(k)
        low, high = t_ci(g)
        assert r[0] == str(k) and r[1] == STEPS[k]
        assert r[4] == f"{reported('tensorflow', k).mean():.2f}"
        assert r[5].startswith(f"{reported('torch', k).mean():.2f}")
        assert r[6] == f"{g.mean():+.2f} [{low:+.2f}, {high:+.2f}]"
        if k == 0:
            assert r[7] == "n/a" and r[3] == "both (the article's setup)"
        else:
            d = g - gaps(k - 1)
            dl, dh = t_ci(d)
            assert r[7] == f"{d.mean():+.2f} [{dl:+.2f}, {dh:+.2f}]"
            assert r[3] == RETRAINED[STEPS[k]]
    assert rows[0][5].endswith("(truncated)") and not rows[1][5].endswith("(truncated)")


def test_reproduction_table_shows_our_runs_of_the_articles_setup(built):
    rows = table_after(built.md, "## The article's setup, reproduced")
    assert len(rows) == 4
    pt = reported("torch", 0)
    assert rows[0][1] == "89 %" and rows[0][2] == f"{pt.mean():.2f} ± {np.std(pt, ddof=1):.2f}"
    assert rows[0][5] == "89.00, 89.00, 90.00"
    assert rows[2][1] == "91.34 %"
    assert rows[3][1] == "+2.34"


def test_conclusion_comes_from_the_numbers(built):
    c = built.data["conclusion"]
    assert len(c) == 5  # reproduction, largest step, one line per framework, the controlled gap
    changes = {e["step"]: e["change"]["mean"] for e in built.data["steps"][1:]}
    largest = max(changes, key=lambda s: abs(changes[s]))
    assert built.data["largest_step"] == largest
    assert f"{changes[largest]:+.2f} points" in c[1]
    assert f"{gaps(0).mean():+.2f} points" in c[0]
    assert f"{gaps(len(STEPS) - 1).mean():+.2f} points" in c[-1]
    for line in c:
        assert f"- {line}" in built.md
    assert len(built.data["summary"]) == 2


def exact(f: str, k: int) -> np.ndarray:
    return 100 * np.array(ABLATION_CORRECT[f][STEP_RUNS[f][k]], dtype=np.int64) / ABLATION_N_TEST


def test_each_steps_effect_on_each_framework_is_computed_by_hand(built):
    """Per framework: exact accuracy at a step minus at the step before, paired by seed, t CI;
    the conclusion names exactly the retrained steps whose interval excludes zero."""
    steps = built.data["steps"]
    for f in ("torch", "tensorflow"):
        significant = []
        for k in range(1, len(STEPS)):
            d = exact(f, k) - exact(f, k - 1)
            change = steps[k]["framework_change"][f]
            assert change["mean"] == pytest.approx(d.mean(), abs=1e-9)
            if STEP_RUNS[f][k] == STEP_RUNS[f][k - 1]:
                assert change["values"] == [0.0] * len(SEEDS)  # the same run: no effect by construction
                continue
            low, high = t_ci(d)
            assert (change["ci_low"], change["ci_high"]) == pytest.approx((low, high), abs=1e-9)
            if low > 0 or high < 0:
                significant.append(k)
        line = next(c for c in built.data["conclusion"] if c.startswith(f"{FRAMEWORK_NAMES[f]}'s own accuracy"))
        for k in significant:
            assert f"{steps[k]['label']} ({(exact(f, k) - exact(f, k - 1)).mean():+.2f} points" in line
        assert line.count(" points, 95 % CI") == len(significant)
    # The synthetic numbers make PyTorch's init and order steps and several Keras steps count.
    assert "no step changed it" not in "".join(built.data["conclusion"])
    rows = table_after(built.md, "### What each step did to each framework")
    assert [r[1] for r in rows] == list(STEPS[1:])
    assert rows[STEPS.index("head") - 1][2:] == ["not retrained", "none: trains bit for bit as before"]


def test_figure_draws_each_steps_gap_and_interval(tmp_path, saved_figures):
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    report.build(params, runs, main, **outputs(tmp_path))
    fig = saved_figures["ablation.png"]
    means = fig.axes[0].containers[0].lines[0].get_ydata()  # the errorbar of the means
    np.testing.assert_allclose(means, [gaps(k).mean() for k in range(len(STEPS))], atol=1e-9)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["article", *(f"+ {s}" for s in STEPS[1:])]


def test_figure_is_a_png_and_reproducible(built, tmp_path):
    with Image.open(built.figure) as img:
        assert img.format == "PNG" and img.width >= 600
    assert "(<figures/ablation.png>)" in built.md
    runs, main = write_ablation_runs(tmp_path, built.params)
    report.build(built.params, runs, main, **outputs(tmp_path))
    assert outputs(tmp_path)["figure"].read_bytes() == built.figure.read_bytes()
    assert outputs(tmp_path)["out_md"].read_text() == built.md
    assert built.data["markdown"] == "ablation.md" and built.data["figure"] == "figures/ablation.png"


# ----------------------------------------------------------------------------------------------
# Inputs that are missing, stale or few


def edit_record(path: Path, change) -> None:
    """Rewrite a JSON record with ``change`` (a function that edits the dict in place) applied."""
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_missing_files_are_listed_at_once(tmp_path):
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    (runs / "tensorflow" / "seed1" / "eps.json").unlink()
    (runs / "torch" / "seed2" / "init.json").unlink()
    (main / "torch" / "seed2" / "metrics.json").unlink()
    with pytest.raises(PipelineError) as e:
        report.build(params, runs, main, **outputs(tmp_path))
    assert "needs 3 file(s)" in str(e.value)
    for path in ("tensorflow/seed1/eps.json", "torch/seed2/init.json", "torch/seed2/metrics.json"):
        assert path in str(e.value)
    assert not outputs(tmp_path)["out_md"].exists()


def test_the_runs_are_read_where_the_layout_puts_them(tmp_path):
    """One record per (framework, seed, run) that params.yaml's ablation trains, and no other: a
    record of a run no step uses is not read (Keras's `head` step reuses the article's run)."""
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    expected = {
        layout.ablation_run_file(f, s, rid, runs)
        for f in STEP_RUNS
        for s in SEEDS
        for rid in dict.fromkeys(STEP_RUNS[f])
        if rid != "main"
    }
    assert set(runs.rglob("*.json")) == expected and len(expected) == 6 * len(SEEDS)
    head = layout.ablation_run_file("tensorflow", 0, "head", runs)
    head.write_text("not JSON")
    a = report.build(params, runs, main, **outputs(tmp_path))
    assert a["run_ids"]["tensorflow"] == ["article", "eps", "padding", "init", "main"]


def test_runs_with_other_settings_are_stale(tmp_path):
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    edit_record(runs / "tensorflow" / "seed0" / "eps.json", lambda r: r["settings"].update(eps=1e-7))
    with pytest.raises(
        PipelineError,
        match=r"seed0/eps.json \(run 'eps': its settings\) was trained with params that differ from params.yaml "
        r"in eps; the run is stale: rerun the ablation's training",
    ):
        report.build(params, runs, main, **outputs(tmp_path))


def test_how_a_run_is_reported_is_no_training_setting(tmp_path):
    """The accuracy factor only changes how a result is printed: a record that says otherwise is
    still the same training, and the report prints it the way params.yaml's step says."""
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    edit_record(runs / "torch" / "seed0" / "article.json", lambda r: r["settings"].update(accuracy="exact"))
    a = report.build(params, runs, main, **outputs(tmp_path))
    assert a["steps"][0]["accuracy"]["torch"]["reported"]["values"] == [89.0, 89.0, 90.0]


def test_main_runs_trained_with_other_params_are_stale(tmp_path):
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    edit_record(main / "tensorflow" / "seed1" / "run.json", lambda r: r["params"]["train"].update(lr=0.01))
    with pytest.raises(PipelineError, match=r"tensorflow/seed1/run.json was trained with params .* in train.lr; "):
        report.build(params, runs, main, **outputs(tmp_path))


def test_a_record_of_another_run_is_refused(tmp_path):
    """A record copied under another run's name (or seed) would pair the wrong numbers."""
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    seed2 = runs / "torch" / "seed2"
    (seed2 / "init.json").write_text((seed2 / "article.json").read_text())
    with pytest.raises(
        PipelineError,
        match=r"init.json records framework 'torch', seed 2, run 'article', not 'torch', seed 2, run 'init'",
    ):
        report.build(params, runs, main, **outputs(tmp_path))


@pytest.mark.parametrize(
    ("record", "change", "message"),
    [
        ("torch/seed1/init.json", lambda r: r.pop("n_correct"), r"init.json lacks n_correct: written by older code"),
        ("tensorflow/seed0/padding.json", lambda r: r.pop("history"), r"padding.json lacks history"),
        ("torch/seed0/article.json", lambda r: r.update(test_accuracy=0.9), r"test_accuracy = 0.9 but n_correct / "),
        ("tensorflow/seed2/eps.json", lambda r: r.update(n_correct=10001), r"n_correct = 10001 of n_test = 10000"),
        ("tensorflow/seed2/eps.json", lambda r: r.update(n_test=9999.5), r"n_test must be a non-negative integer"),
    ],
)
def test_a_record_without_what_the_report_reads_is_refused(tmp_path, record, change, message):
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    edit_record(runs / record, change)
    with pytest.raises(PipelineError, match=message):
        report.build(params, runs, main, **outputs(tmp_path))


def test_main_metrics_without_n_correct_are_refused(tmp_path):
    """The evaluate step writes n_correct: a metrics.json without it is not guessed from test_accuracy."""
    params = ablation_params()
    runs, main = write_ablation_runs(tmp_path, params)
    edit_record(main / "torch" / "seed0" / "metrics.json", lambda r: r.pop("n_correct"))
    with pytest.raises(PipelineError, match=r"torch/seed0/metrics.json lacks n_correct"):
        report.build(params, runs, main, **outputs(tmp_path))


def test_one_seed_has_no_interval_and_says_why(tmp_path):
    params = ablation_params(seeds=(0,))
    runs, main = write_ablation_runs(tmp_path, params)
    a = report.build(params, runs, main, **outputs(tmp_path))
    for e in a["steps"]:
        assert e["gap"]["ci_low"] is None and e["gap"]["std"] is None
        assert e["gap"]["note"] == "one seed: no standard deviation or confidence interval"
    assert a["reproduction"]["torch"]["reported"]["pi_low"] is None
    assert a["reproduction"]["gap"]["reported_vs_article"]["in_prediction_interval"] is None
    assert "no CI with one seed" in a["summary"][0]
    md = outputs(tmp_path)["out_md"].read_text()
    assert len(table_after(md, "## One factor at a time")) == len(STEPS)
    assert "[no CI]" in md and "no seed-to-seed spread" in md
