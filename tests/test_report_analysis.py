"""The report's numbers with the article's two frameworks: every number in report.md and metrics.json
equals its source files, recomputed here with numpy / scipy, independently of lenet_compare.report."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import t_half, table_after
from report_helpers import FRAMEWORKS, SEEDS, build_here, flatten, one_line, outputs, pct, row, summary_keys
from scipy import stats as sps
from synthetic_runs import params_for

from lenet_compare.core.article import PAIR
from lenet_compare.data.dataset import load_prepared
from lenet_compare.evaluate.classification import classification_metrics
from lenet_compare.report.common import FIGURES, FRAMEWORK_NAMES, format_p

pytest_plugins = ["report_builds"]


def test_step_writes_every_output(built):
    for path in outputs(built.root).values():
        assert path.exists(), path
    for name in FIGURES:
        assert (built.reports / "figures" / f"{name}.png").is_file()
    for f in FRAMEWORKS:
        assert (built.reports / "plots" / f"confusion_{f}.csv").is_file()
    assert "wrote" in (built.root / "report.log").read_text()


def test_glance_table_equals_the_run_files(built):
    rows = table_after(built.md, "## Results at a glance")
    for f in FRAMEWORKS:
        acc = built.acc(f)
        r = row(rows, FRAMEWORK_NAMES[f])
        assert r[2] == f"{pct(acc.mean())} ± {pct(t_half(acc))} %"
        assert r[3] == ", ".join(pct(a) for a in acc)
    assert row(rows, "PyTorch")[1] == "89 % ¹"
    assert row(rows, "TensorFlow/Keras")[1] == "91.34 %"
    d = built.acc("tensorflow") - built.acc("torch")
    diff = row(rows, "TensorFlow/Keras minus PyTorch")
    assert diff[1] == "+1.34 to +2.34 points ²"
    low, high = d.mean() - t_half(d), d.mean() + t_half(d)
    assert diff[2] == f"{100 * d.mean():+.2f} points (95 % CI {100 * low:+.2f} to {100 * high:+.2f})"
    assert diff[3] == ", ".join(f"{100 * x:+.2f}" for x in d)
    assert len(rows) == 3  # two frameworks, one pair


def test_article_gap_is_set_against_a_single_runs_prediction_interval(built):
    """One published run each: compared with where one run's gap falls, not with the CI of the mean."""
    d = built.acc("tensorflow") - built.acc("torch")
    low, high = 100 * (d.mean() - t_half(d, one_more=True)), 100 * (d.mean() + t_half(d, one_more=True))
    text = one_line(built.md)
    # The glance table's footnote gives the interval and says what it means.
    assert (
        f"the 95 % prediction interval for a single run's TensorFlow/Keras-minus-PyTorch gap under this protocol "
        f"is {low:+.2f} to {high:+.2f} points"
    ) in text
    assert "where a single run's gap would fall 95 % of the time" in text
    # The verdict compares the article's gap (+1.34 to +2.34) with it.
    line = next(x for x in built.md.splitlines() if x.startswith("- The article's gap"))
    assert f"single run's TensorFlow-minus-PyTorch gap under this protocol ({low:+.2f} to {high:+.2f} points" in line
    gap_low, gap_high = 1.34, 2.34  # the article's gap, in points
    if high <= gap_low:
        where = "lies above"
    elif low > gap_high:
        where = "lies below"
    else:
        where = "lies within" if low <= gap_low and high >= gap_high else "overlaps"
    assert where in line and "CI" not in line


def test_accuracy_table_equals_the_run_files(built):
    rows = table_after(built.md, "### Test accuracy over seeds")
    for f in FRAMEWORKS:
        acc = built.acc(f)
        half = t_half(acc)
        loss = np.mean([built.metrics(f, s)["test_loss"] for s in SEEDS])
        f1 = np.mean([built.metrics(f, s)["macro_f1"] for s in SEEDS])
        assert row(rows, FRAMEWORK_NAMES[f])[1:] == [
            str(len(SEEDS)),
            pct(acc.mean()),
            pct(np.std(acc, ddof=1)),
            f"{pct(acc.mean() - half)} to {pct(acc.mean() + half)}",
            pct(acc.min()),
            pct(acc.max()),
            f"{loss:.4f}",
            f"{f1:.4f}",
        ]


def test_paired_table_equals_the_predictions(built):
    rows = table_after(built.md, "### Paired by seed: TensorFlow/Keras minus PyTorch")
    arrays, _ = load_prepared(built.cache)
    y = arrays["y_test"]
    assert [int(r[0]) for r in rows] == list(SEEDS)
    for s in SEEDS:
        pt, tf = built.y_pred("torch", s), built.y_pred("tensorflow", s)
        only_pt, only_tf = int(np.sum((pt == y) & (tf != y))), int(np.sum((pt != y) & (tf == y)))
        a, b = built.metrics("torch", s)["test_accuracy"], built.metrics("tensorflow", s)["test_accuracy"]
        # The metrics files agree with the predictions (the report step checks this too).
        assert a == np.mean(pt == y) and b == np.mean(tf == y)
        p = sps.binomtest(min(only_pt, only_tf), only_pt + only_tf, 0.5).pvalue  # exact McNemar
        assert row(rows, str(s))[1:] == [
            pct(a),
            pct(b),
            f"{100 * (b - a):+.2f}",
            str(only_pt),
            str(only_tf),
            format_p(p),
            pct(np.mean(pt == tf)),
        ]


def test_test_results_equal_scipy_on_the_run_files(built):
    a, b = built.acc("torch"), built.acc("tensorflow")
    t = sps.ttest_rel(b, a)
    assert f"t = {t.statistic:.3f}, df = {len(SEEDS) - 1}, p = {format_p(t.pvalue)}." in built.md
    w = sps.wilcoxon(np.round(b - a, 12))
    assert f"W = {w.statistic:.1f}, p = {format_p(w.pvalue)}" in built.md
    # One pair: nothing to adjust, and the report does not speak of it.
    assert "Holm" not in built.md


def test_summary_is_a_few_short_grouped_keys(built):
    """One `dvc exp show` table: these 24 columns, each a number, a boolean or null."""
    flat = flatten(built.summary)
    assert list(flat) == summary_keys(FRAMEWORKS)
    assert 15 <= len(flat) <= 25
    assert all(v is None or isinstance(v, int | float) for v in flat.values())


def test_summary_metrics_equal_the_run_files(built):
    s = built.summary
    assert s["n_seeds"] == len(SEEDS)
    for f in FRAMEWORKS:
        acc = 100 * built.acc(f)  # percent
        runs = [built.run_json(f, seed) for seed in SEEDS]
        assert s["accuracy"][f]["mean"] == pytest.approx(acc.mean(), abs=1e-12)
        assert s["accuracy"][f]["std"] == pytest.approx(np.std(acc, ddof=1), abs=1e-12)
        assert s["accuracy"][f]["ci95_low"] == pytest.approx(acc.mean() - t_half(acc), abs=1e-10)
        assert s["accuracy"][f]["ci95_high"] == pytest.approx(acc.mean() + t_half(acc), abs=1e-10)
        timing = s["timing"][f]
        assert timing["seconds_per_epoch"] == pytest.approx(np.mean([r["seconds_per_epoch"] for r in runs]))
        inference = [built.metrics(f, x)["inference_images_per_second"] for x in SEEDS]
        assert timing["inference_images_per_second"] == pytest.approx(np.mean(inference))
    gap = s["gap"]
    a, b = built.acc("torch"), built.acc("tensorflow")
    d = 100 * (b - a)  # points
    assert gap["mean"] == pytest.approx(d.mean(), abs=1e-10)
    assert gap["ci95_low"] == pytest.approx(d.mean() - t_half(d), abs=1e-10)
    assert gap["ci95_high"] == pytest.approx(d.mean() + t_half(d), abs=1e-10)
    assert gap["p"] == pytest.approx(sps.ttest_rel(b, a).pvalue, rel=1e-9)


def test_with_one_pair_the_holm_adjusted_p_is_the_p(built):
    """Two frameworks, one pair: Holm's adjustment changes nothing, and the verdict is today's rule."""
    gap, eq = built.summary["gap"], built.summary["equivalence"]
    assert gap["p_holm"] == gap["p"] and eq["p_holm"] == eq["p"]
    assert eq["equivalent"] is bool(eq["p"] < 0.05)
    assert "pairs" not in built.summary


def test_equivalence_in_metrics_equals_a_tost_on_the_run_files(built):
    """The TOST recomputed from the per-seed accuracies: t = (mean +- margin) / se, df = n - 1."""
    eq = built.summary["equivalence"]
    margin = built.params["report"]["equivalence_margin"]
    d = 100 * (built.acc("tensorflow") - built.acc("torch"))
    n = len(d)
    se = np.std(d, ddof=1) / np.sqrt(n)
    half = sps.t.ppf(0.95, n - 1) * se
    p = max(sps.t.sf((d.mean() + margin) / se, n - 1), sps.t.cdf((d.mean() - margin) / se, n - 1))
    assert eq["margin"] == margin == 1.0
    assert (eq["ci90_low"], eq["ci90_high"]) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-10)
    assert eq["p"] == pytest.approx(p, rel=1e-9)
    inside = bool(-margin < d.mean() - half and d.mean() + half < margin)
    assert eq["equivalent"] is inside is bool(p < 0.05)
    # The verdict says the same, with the same interval.
    line = next(x for x in built.md.splitlines() if x.startswith("- Equivalen"))
    ci = f"{d.mean() - half:+.2f} to {d.mean() + half:+.2f} points"
    words = "Equivalent within ±1.0 points" if inside else "Equivalence within ±1.0 points not shown"
    assert line.startswith(f"- {words}")
    assert ci in line


@pytest.mark.parametrize(("margin", "shown", "equivalent"), [(50.0, "50.0", True), (0.01, "0.01", False)])
def test_the_margin_comes_from_params(tmp_path, fake_cache, margin, shown, equivalent):
    """A wide margin shows equivalence and a hair-thin one cannot, on the same runs."""
    params = params_for(FRAMEWORKS, SEEDS)
    params["report"]["equivalence_margin"] = margin
    b = build_here(tmp_path, fake_cache, params)
    assert b.summary["equivalence"]["margin"] == margin
    assert b.summary["equivalence"]["equivalent"] is equivalent
    words = f"Equivalent within ±{shown} points" if equivalent else f"Equivalence within ±{shown} points not shown"
    assert f"- {words}" in b.md
    assert f"with margin ±{shown} points" in one_line(b.md)


def test_timings_table_equals_run_json(built):
    rows = table_after(built.md, "## Timings")

    def mean_sd(f, key, digits, source="run"):
        values = [(built.run_json if source == "run" else built.metrics)(f, s)[key] for s in SEEDS]
        return f"{np.mean(values):,.{digits}f} ± {np.std(values, ddof=1):,.{digits}f}"

    for i, f in enumerate(FRAMEWORKS, start=1):
        assert row(rows, "training time (s)")[i] == mean_sd(f, "train_seconds", 1)
        assert row(rows, "seconds per epoch")[i] == mean_sd(f, "seconds_per_epoch", 2)
        assert row(rows, "training images per second")[i] == mean_sd(f, "images_per_second", 0)
        assert row(rows, "inference images per second (batch 1,000)")[i] == mean_sd(
            f, "inference_images_per_second", 0, "metrics"
        )
        assert row(rows, "latency of one image (ms)")[i] == mean_sd(f, "latency_ms_single_image", 3, "metrics")
        assert row(rows, "peak process memory, RSS (MB)")[i] == mean_sd(f, "peak_rss_mb", 0)
        assert row(rows, "peak GPU memory (MB)")[i] == "n/a"  # null on CPU
        assert row(rows, "device")[i] == "cpu"


def test_inference_table_equals_the_runs_inference_rows(built):
    """Each framework's naive and fastest idiomatic call per batch size: mean ± sd of the runs' rows."""
    rows = table_after(built.md, "### Inference: naive and fastest idiomatic calls")
    assert len(rows) == 2 * len(FRAMEWORKS) * 2  # per framework: 2 batch sizes x (naive, fastest)
    for f in FRAMEWORKS:
        for size in (1, 1000):
            for path in ("naive", "fastest idiomatic"):
                found = [
                    r
                    for s in SEEDS
                    for r in built.metrics(f, s)["inference"]["rows"]
                    if r["batch_size"] == size and r["path"] == path
                ]
                ms = [r["median_ms"] for r in found]
                cells = next(r for r in rows if r[:3] == [FRAMEWORK_NAMES[f], f"{size:,}", path])
                assert cells[3] == f"`{found[0]['call']}`"
                assert cells[4] == f"{np.mean(ms):,.3f} ± {np.std(ms, ddof=1):,.3f}"
    assert one_line(built.md).count("Fastest idiomatic call against fastest idiomatic call:") == 1


def test_control_table_shows_this_runs_params(built):
    rows = table_after(built.md, "## What differed in the article, and how this run controls it")
    assert "`train.order = shared`" in row(rows, "training order")[3]
    assert "`train.init = shared`" in row(rows, "initial weights")[3]
    assert "`train.eps = 1e-08`" in row(rows, "Adam epsilon")[3]
    assert "PyTorch 61,706 parameters, TensorFlow/Keras 61,706 parameters" in row(rows, "second conv padding")[3]
    assert "shared: both frameworks see identical minibatches" in row(rows, "training order")[3]


# ----------------------------------------------------------------------------------------------
# Smaller setups


def test_one_seed_reports_no_interval_and_says_why(tmp_path, fake_cache):
    b = build_here(tmp_path, fake_cache, params_for(FRAMEWORKS, (7,)))
    rows = table_after(b.md, "## Results at a glance")
    acc = b.metrics("torch", 7)["test_accuracy"]
    assert row(rows, "PyTorch")[2] == f"{pct(acc)} %"
    assert "No paired t-test across seeds: 1 paired seed" in b.md
    assert "no prediction interval for a single run's gap: 1 paired seed" in one_line(b.md)
    assert "cannot be set against the spread of single runs here: 1 paired seed" in b.md
    assert b.summary["accuracy"]["torch"]["std"] is None and b.summary["accuracy"]["torch"]["ci95_low"] is None
    assert b.summary["gap"]["p"] is None and b.summary["gap"]["ci95_low"] is None
    assert b.summary["gap"]["p_holm"] is None and b.summary["equivalence"]["p_holm"] is None
    assert b.summary["equivalence"]["p"] is None and b.summary["equivalence"]["equivalent"] is None
    assert "Equivalence within ±1.0 points not shown: 1 paired seed: a TOST needs at least 2." in b.md
    for name in FIGURES:
        assert (tmp_path / "reports" / "figures" / f"{name}.png").is_file()


def test_one_framework_builds_without_comparisons(tmp_path, fake_cache):
    from PIL import Image

    b = build_here(tmp_path, fake_cache, params_for(("torch",), (0, 1)))
    assert "Paired by seed" not in b.md and "nothing to compare" in b.md
    assert list(b.summary) == ["n_seeds", "accuracy", "timing"]  # no gap, no equivalence
    assert list(b.summary["accuracy"]) == ["torch"]
    for name in FIGURES:
        with Image.open(tmp_path / "reports" / "figures" / f"{name}.png") as img:
            assert img.format == "PNG"


def test_unsorted_seeds_keep_their_order_in_every_row(tmp_path, fake_cache):
    b = build_here(tmp_path, fake_cache, params_for(FRAMEWORKS, (3, 1)))
    lines = b.md.splitlines()
    header = lines[lines.index("## Results at a glance") + 2]
    assert header.rstrip().endswith("| Per seed (3, 1) |")
    rows = table_after(b.md, "## Results at a glance")
    acc = {f: [b.metrics(f, s)["test_accuracy"] for s in (3, 1)] for f in FRAMEWORKS}
    assert row(rows, "PyTorch")[3] == ", ".join(pct(a) for a in acc["torch"])
    diff = [tf - pt for tf, pt in zip(acc["tensorflow"], acc["torch"], strict=True)]
    assert diff[0] != diff[1]
    assert row(rows, "TensorFlow/Keras minus PyTorch")[3] == ", ".join(f"{100 * x:+.2f}" for x in diff)


def test_tensorflow_first_still_shows_tensorflow_minus_pytorch(tmp_path, fake_cache, saved_figures):
    """params.yaml may list tensorflow first: every difference stays TensorFlow minus PyTorch."""
    assert PAIR == ("torch", "tensorflow")
    seeds = (0, 1)
    b = build_here(tmp_path, fake_cache, params_for(("tensorflow", "torch"), seeds))
    rows = table_after(b.md, "## Results at a glance")
    d = [b.metrics("tensorflow", s)["test_accuracy"] - b.metrics("torch", s)["test_accuracy"] for s in seeds]
    assert row(rows, "TensorFlow/Keras minus PyTorch")[3] == ", ".join(f"{100 * x:+.2f}" for x in d)
    # The per-class difference panel: TensorFlow minus PyTorch, class by class, mean over seeds.
    per_class = saved_figures["per_class_accuracy.png"]
    assert per_class.axes[1].get_title() == "TensorFlow/Keras minus PyTorch, per class"
    arrays, meta = load_prepared(b.cache)

    def recall(f: str, s: int) -> list[float]:
        return classification_metrics(arrays["y_test"], b.y_pred(f, s), meta["class_names"])["per_class"]["recall"]

    recalls = {f: np.array([recall(f, s) for s in seeds]) for f in ("tensorflow", "torch")}
    expected = 100 * (recalls["tensorflow"] - recalls["torch"]).mean(axis=0)
    heights = np.array([p.get_height() for p in per_class.axes[1].patches][: len(expected)])
    np.testing.assert_allclose(heights, expected, atol=1e-9)
    assert saved_figures["drift.png"].get_suptitle().startswith("Drift between TensorFlow/Keras and PyTorch")


def test_native_protocol_changes_the_words(tmp_path, fake_cache):
    b = build_here(tmp_path, fake_cache, params_for(FRAMEWORKS, (0, 1), init="native", order="native"))
    assert "native: each framework's own default initializers" in b.md
    assert "do not share initial weights or the minibatch order" in b.md
