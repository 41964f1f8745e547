"""The report step: every number in report.md / report.html / metrics.json equals its source files.

The runs are synthetic (tests/synthetic_runs.py) on a tiny fake cache; the expected numbers are
recomputed here from the run files with numpy / scipy, independently of lenet_compare.report.stats.
"""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run, t_half, table_after, tiny_params, write_params
from idx_files import fake_dataset, write_gz_dir
from PIL import Image
from scipy import stats as sps
from synthetic_runs import params_for, write_ablation_runs, write_runs

from lenet_compare.ablation import report
from lenet_compare.core import article
from lenet_compare.core.atomic import write_json
from lenet_compare.core.errors import PipelineError
from lenet_compare.data.dataset import load_prepared, prepare, save_prepared
from lenet_compare.evaluate.classification import classification_metrics, confusion_matrix
from lenet_compare.report.common import FIGURES, FRAMEWORK_NAMES, PAIR, announce, file_state, headline
from lenet_compare.report.compare import build
from lenet_compare.report.render import TEMPLATES, image_link, markdown_to_html, md_escape
from lenet_compare.report.stats import format_p

FRAMEWORKS = ("torch", "tensorflow")
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def fake_cache(tmp_path_factory) -> Path:
    """A prepared cache of 600 random training and 400 random test images."""
    root = tmp_path_factory.mktemp("fake-cache")
    src = write_gz_dir(root / "raw", fake_dataset(n_train=600, n_test=400))
    data = tiny_params()["data"] | {"limit_train": None, "limit_test": None, "val_size": 100}
    arrays, meta = prepare(src, data)
    save_prepared(root / "fashion_mnist.npz", arrays, meta)
    return root / "fashion_mnist.npz"


@dataclass
class Built:
    root: Path
    params: dict
    cache: Path
    runs: Path
    preds: Path
    md: str
    html: str
    summary: dict
    stdout: str = ""  # the report step's, when built through its command line

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def metrics(self, f: str, s: int) -> dict:
        return json.loads((self.runs / f / f"seed{s}" / "metrics.json").read_text())

    def run_json(self, f: str, s: int) -> dict:
        return json.loads((self.runs / f / f"seed{s}" / "run.json").read_text())

    def y_pred(self, f: str, s: int) -> np.ndarray:
        with np.load(self.preds / f / f"seed{s}.npz") as npz:
            return npz["y_pred"]

    def acc(self, f: str) -> np.ndarray:
        return np.array([self.metrics(f, s)["test_accuracy"] for s in self.params["seeds"]])


def outputs(root: Path) -> dict[str, Path]:
    r = root / "reports"
    return {
        "out_md": r / "report.md",
        "out_html": r / "report.html",
        "out_metrics": r / "metrics.json",
        "figures_dir": r / "figures",
        "plots_dir": r / "plots",
    }


def report_step(root: Path, runs, preds, cache: Path, out: dict, *extra, check: bool = True):
    """Run the report step's command line in ``root``, with the params.yaml there."""
    return run(
        [
            sys.executable, REPO / "workflow/scripts/report.py", "--params", "params.yaml",
            "--runs-dir", runs, "--predictions-dir", preds, "--cache", cache,
            "--out-md", out["out_md"], "--out-html", out["out_html"], "--metrics", out["out_metrics"],
            "--figures-dir", out["figures_dir"], "--plots-dir", out["plots_dir"], *extra,
        ],
        cwd=root,
        check=check,
    )  # fmt: skip


def read_built(root: Path, params: dict, cache: Path, runs: Path, preds: Path, out: dict) -> Built:
    md, html = out["out_md"].read_text(), out["out_html"].read_text()
    return Built(root, params, cache, runs, preds, md, html, json.loads(out["out_metrics"].read_text()))


def build_here(root: Path, cache: Path, params: dict, **write_kw) -> Built:
    """Write synthetic runs under ``root`` and build the report with the Python API."""
    runs, preds = write_runs(root, cache, params, **write_kw)
    out = outputs(root)
    build(params, runs, preds, cache, **out)
    return read_built(root, params, cache, runs, preds, out)


@pytest.fixture(scope="module")
def built(tmp_path_factory, fake_cache) -> Built:
    """The report of 2 frameworks x 3 seeds, built through the step's command line."""
    root = tmp_path_factory.mktemp("report")
    params = params_for(FRAMEWORKS, SEEDS, epochs=4)
    write_params(root / "params.yaml", params)
    runs, preds = write_runs(root, fake_cache, params)
    out = outputs(root)
    result = report_step(root, runs, preds, fake_cache, out, "--log", root / "report.log")
    built = read_built(root, params, fake_cache, runs, preds, out)
    built.stdout = result.stdout
    return built


# ----------------------------------------------------------------------------------------------
# Reading the Markdown back


def row(rows: list[list[str]], first: str) -> list[str]:
    return next(r for r in rows if r[0] == first)


def pct(x) -> str:
    return f"{100 * x:.2f}"


def one_line(md: str) -> str:
    return " ".join(md.split())


# ----------------------------------------------------------------------------------------------
# The numbers


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


# reports/metrics.json's keys as `dvc exp show` names its columns (the nesting joined by dots).
SUMMARY_KEYS = [
    "n_seeds",
    *(f"accuracy.{f}.{k}" for f in FRAMEWORKS for k in ("mean", "std", "ci95_low", "ci95_high")),
    *(f"gap.{k}" for k in ("mean", "ci95_low", "ci95_high", "p")),
    *(f"equivalence.{k}" for k in ("margin", "ci90_low", "ci90_high", "p", "equivalent")),
    *(f"timing.{f}.{k}" for f in FRAMEWORKS for k in ("seconds_per_epoch", "inference_images_per_second")),
]


def flatten(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_summary_is_a_few_short_grouped_keys(built):
    """One `dvc exp show` table: these 22 columns, each a number, a boolean or null."""
    flat = flatten(built.summary)
    assert list(flat) == SUMMARY_KEYS
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


def test_no_number_of_the_article_is_typed_in_a_template():
    """The article's facts live in lenet_compare.core.article; the templates get them passed in."""
    facts = [p["shown"].removesuffix(" %") for p in article.PUBLISHED.values()]
    facts += [f"{n:,}" for n in article.N_PARAMETERS.values()] + [article.as_written(e) for e in article.EPS.values()]
    facts.append(article.TRUNCATED_ACCURACY)
    for template in TEMPLATES.glob("*.j2"):
        text = template.read_text()
        assert [fact for fact in facts if fact in text] == [], template.name


def test_control_table_shows_this_runs_params(built):
    rows = table_after(built.md, "## What differed in the article, and how this run controls it")
    assert "`train.order = shared`" in row(rows, "training order")[3]
    assert "`train.init = shared`" in row(rows, "initial weights")[3]
    assert "`train.eps = 1e-08`" in row(rows, "Adam epsilon")[3]
    assert "PyTorch 61,706 parameters, TensorFlow/Keras 61,706 parameters" in row(rows, "second conv padding")[3]


def test_verdict_is_in_both_reports(built):
    verdict = [line[2:] for line in built.md.splitlines() if line.startswith("- ") and "alpha = 0.05" in line]
    assert verdict, "no verdict line"
    # The HTML shows the same sentences (as text, with markdown-it's escaping).
    assert re.sub(r"<[^>]+>", "", built.html).count("paired t-test p =") >= 1


def test_confusion_csv_is_the_first_seed(built):
    arrays, meta = load_prepared(built.cache)
    names = meta["class_names"]
    for f in FRAMEWORKS:
        with open(built.reports / "plots" / f"confusion_{f}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == len(arrays["y_test"])
        actual = np.array([names.index(r["actual"]) for r in rows])
        predicted = np.array([names.index(r["predicted"]) for r in rows])
        np.testing.assert_array_equal(actual, arrays["y_test"])
        assert confusion_matrix(actual, predicted) == built.metrics(f, SEEDS[0])["confusion_matrix"]


# ----------------------------------------------------------------------------------------------
# Figures and the self-contained HTML


def test_every_figure_referenced_exists_and_is_a_png(built):
    links = re.findall(r"!\[[^\]]*\]\(<([^>]+)>\)", built.md)
    assert links == [f"figures/{name}.png" for name in FIGURES]
    for link in links:
        path = built.reports / link  # relative to report.md
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.format == "PNG"
            assert img.width >= 600 and img.height >= 150, (link, img.size)


def test_image_links_survive_spaces_and_parentheses():
    link = image_link("learning_curves", "my figs (v2)/a b).png")
    assert link == "![learning curves](<my figs (v2)/a b).png>)"
    html = markdown_to_html(link, "t")
    assert '<img src="my%20figs%20(v2)/a%20b).png" alt="learning curves"' in html
    with pytest.raises(ValueError):
        image_link("x", "a\nb.png")


def test_figures_in_a_folder_with_spaces_and_parentheses(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    out = outputs(tmp_path) | {"figures_dir": tmp_path / "reports" / "my figs (v2)"}
    build(params, runs, preds, fake_cache, **out)
    md = out["out_md"].read_text()
    html = markdown_to_html(md, "t")
    for name in FIGURES:
        assert f"(<my figs (v2)/{name}.png>)" in md
        assert f'<img src="my%20figs%20(v2)/{name}.png"' in html


def test_html_embeds_every_figure_and_nothing_external(built):
    srcs = re.findall(r'<img src="([^"]+)"', built.html)
    assert len(srcs) == len(FIGURES)
    for src, name in zip(srcs, FIGURES, strict=True):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == (built.reports / "figures" / f"{name}.png").read_bytes()
    # No external resource anywhere: only data: URIs after src= / href=, no <script> at all.
    assert not re.search(r'(?:src|href)="(?!data:|#)', built.html)
    assert "<script" not in built.html
    assert "Content-Security-Policy" in built.html


def test_html_shows_the_same_numbers(built):
    text = re.sub(r"<[^>]+>", "", built.html)
    for f in FRAMEWORKS:
        for a in built.acc(f):
            assert pct(a) in text


def test_report_is_reproducible(fake_cache, tmp_path, built):
    """Same inputs, same bytes: figures and reports diff cleanly in git."""
    out = outputs(tmp_path)
    build(built.params, built.runs, built.preds, fake_cache, **out)
    assert out["out_md"].read_text() == built.md
    assert out["out_html"].read_text() == built.html
    for name in FIGURES:
        a = (out["figures_dir"] / f"{name}.png").read_bytes()
        assert a == (built.reports / "figures" / f"{name}.png").read_bytes(), name


# ----------------------------------------------------------------------------------------------
# Strings from files are text, never markup


def test_strings_from_files_are_escaped(tmp_path, fake_cache):
    arrays, meta = load_prepared(fake_cache)
    meta["class_names"][0] = "<img src=x onerror=alert(1)>"
    cache = tmp_path / "hostile.npz"
    save_prepared(cache, arrays, meta)
    hostile = '<script>alert("x")</script> | *bold* [link](http://example.com) &amp;'
    b = build_here(
        tmp_path, cache, params_for(FRAMEWORKS, (0, 1)), device_name=hostile, extra_run={"framework_version": hostile}
    )
    assert "<script>alert" not in b.html and "<img src=x" not in b.html
    assert "&lt;script&gt;alert" in b.html
    assert 'href="http://example.com"' not in b.html and "<strong>bold</strong>" not in b.html
    assert md_escape(hostile) in b.md
    # The escaped "|" keeps the tables intact: 3 cells in every environment row.
    assert all(len(r) == 3 for r in table_after(b.md, "## Environment"))
    assert hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in b.html


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a|b", r"a\|b"),
        ("T-shirt/top", "T-shirt/top"),
        ("learning_curves", "learning_curves"),
        ("_x_", r"\_x\_"),
        ("p < 0.05", "p < 0.05"),
        ("<b>", r"\<b>"),
        ("-0.45", "-0.45"),
        ("- item", r"\- item"),
        ("# heading", r"\# heading"),
        ("1. one", r"1\. one"),
        ("1.5", "1.5"),
        ("two\nlines", "two lines"),
        ("&amp;", r"\&amp;"),
        ("$x$", r"\$x\$"),
    ],
)
def test_md_escape(text, escaped):
    assert md_escape(text) == escaped


# ----------------------------------------------------------------------------------------------
# Failures a user can act on, and smaller setups


def test_missing_run_files_are_named(tmp_path, built):
    root = tmp_path / "copy"
    shutil.copytree(built.root / "reports" / "runs", root / "runs")
    shutil.copytree(built.preds, root / "preds")
    (root / "runs" / "tensorflow" / "seed1" / "history.csv").unlink()
    (root / "preds" / "torch" / "seed2.npz").unlink()
    write_params(root / "params.yaml", built.params)
    out = {"out_md": "r.md", "out_html": "r.html", "out_metrics": "m.json", "figures_dir": "fig", "plots_dir": "plots"}
    result = report_step(root, "runs", "preds", built.cache, out, check=False)
    assert result.returncode == 1
    assert "runs/tensorflow/seed1/history.csv" in result.stderr
    assert "preds/torch/seed2.npz" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "r.md").exists()


def test_metrics_from_another_run_are_caught(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    path = runs / "torch" / "seed1" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["test_accuracy"] += 0.01
    path.write_text(json.dumps(metrics))
    with pytest.raises(PipelineError, match="different runs"):
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


def test_runs_trained_with_other_params_are_caught(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0,))
    other = {"model": dict(params["model"]), "train": dict(params["train"], lr=params["train"]["lr"] * 2)}
    other["model"].pop("conv_padding")
    runs, preds = write_runs(tmp_path, fake_cache, params, extra_run={"params": other})
    with pytest.raises(PipelineError) as e:
        build(params, runs, preds, fake_cache, **outputs(tmp_path))
    message = str(e.value)
    assert str(runs / "torch" / "seed0" / "run.json") in message
    assert "model.conv_padding" in message and "train.lr" in message and "train.epochs" not in message
    assert "rerun the train step (dvc repro / snakemake)" in message


def test_runs_trained_on_another_cache_are_caught(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0,))
    runs, preds = write_runs(tmp_path, fake_cache, params, extra_run={"n_train": 123})
    with pytest.raises(PipelineError, match=r"n_train = 123 but the prepared cache holds 500 .*dvc repro / snakemake"):
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


def test_a_stale_protocol_is_caught(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0,))
    runs, preds = write_runs(tmp_path, fake_cache, params, extra_run={"order": "native"})
    with pytest.raises(PipelineError, match="train.order = native"):
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


def test_runs_on_different_kinds_of_device_are_refused(tmp_path, fake_cache):
    """PyTorch on a GPU against Keras on a CPU (the article's setup) is no comparison: refused, naming both."""
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    for s in (0, 1):
        path = runs / "torch" / f"seed{s}" / "run.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"device": "cuda", "device_name": "NVIDIA H200"}))
    with pytest.raises(PipelineError) as e:
        build(params, runs, preds, fake_cache, **outputs(tmp_path))
    assert "different kinds of device: PyTorch on cuda (2 seeds: 0, 1); TensorFlow/Keras on cpu (2 seeds: 0, 1)" in str(
        e.value
    )
    assert "set train.device to cpu or cuda" in str(e.value)
    assert not (tmp_path / "reports" / "metrics.json").exists()


def test_one_framework_on_two_kinds_of_device_is_refused(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    path = runs / "tensorflow" / "seed1" / "run.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"device": "cuda"}))
    with pytest.raises(PipelineError, match=r"PyTorch on cpu \(2 seeds: 0, 1\); TensorFlow/Keras on cpu \(1 seed: 0\), "
                       r"cuda \(1 seed: 1\)"):  # fmt: skip
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


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
    assert b.summary["equivalence"]["p"] is None and b.summary["equivalence"]["equivalent"] is None
    assert "Equivalence within ±1.0 points not shown: 1 paired seed: a TOST needs at least 2." in b.md
    for name in FIGURES:
        assert (tmp_path / "reports" / "figures" / f"{name}.png").is_file()


def test_one_framework_builds_without_comparisons(tmp_path, fake_cache):
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


# ----------------------------------------------------------------------------------------------
# The ablation's summary (reports/ablation.json), only when --ablation is given

ABLATION_HEADING = "## The article's gap, explained"


def write_ablation_json(root: Path, params: dict) -> Path:
    """reports/ablation.json (and ablation.md beside it) from synthetic ablation runs under ``root``/abl."""
    runs, main = write_ablation_runs(root / "abl", params)
    r = root / "reports"
    report.build(params, runs, main, r / "ablation.md", r / "ablation.json", r / "figures" / "ablation.png")
    return r / "ablation.json"


def paragraph_after(md: str, heading: str) -> str:
    return md.split(heading + "\n\n", 1)[1].split("\n\n", 1)[0]


def test_no_ablation_section_without_the_argument(built):
    assert ABLATION_HEADING not in built.md
    assert "gap, explained" not in built.html and "ablation.md" not in built.html


def test_ablation_section_has_two_sentences_and_a_link(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, SEEDS)
    params["ablation"]["seeds"] = list(SEEDS)
    write_params(tmp_path / "params.yaml", params)
    ablation_json = write_ablation_json(tmp_path, params)
    runs, preds = write_runs(tmp_path, fake_cache, params)
    out = outputs(tmp_path)
    report_step(tmp_path, runs, preds, fake_cache, out, "--ablation", ablation_json)
    md, html = out["out_md"].read_text(), out["out_html"].read_text()
    sentences = json.loads(ablation_json.read_text())["summary"]
    assert len(sentences) == 2
    # Exactly the two generated sentences, as one paragraph, then the link to ablation.md beside report.md.
    paragraph = paragraph_after(md, ABLATION_HEADING)
    assert paragraph == f"{md_escape(sentences[0])} {md_escape(sentences[1])}"
    assert len(re.findall(r"\.(?:\s|$)", paragraph)) == 2
    assert "[ablation.md](<ablation.md>)" in md
    assert (tmp_path / "reports" / "ablation.md").is_file()
    # The section sits after the verdict, before the table of differences.
    assert md.index("**Verdict**") < md.index(ABLATION_HEADING) < md.index("## What differed in the article")
    text = re.sub(r"<[^>]+>", "", html)
    for sentence in sentences:
        assert sentence.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in text
    assert '<a href="ablation.md">' in html


def test_ablation_link_is_relative_to_each_report(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    params["ablation"]["seeds"] = [0, 1]
    ablation_json = write_ablation_json(tmp_path, params)
    runs, preds = write_runs(tmp_path, fake_cache, params)
    out = outputs(tmp_path) | {"out_md": tmp_path / "md" / "report.md", "out_html": tmp_path / "html" / "r.html"}
    build(params, runs, preds, fake_cache, **out, ablation=ablation_json)
    assert "[../reports/ablation.md](<../reports/ablation.md>)" in out["out_md"].read_text()
    assert '<a href="../reports/ablation.md">' in out["out_html"].read_text()


def test_ablation_strings_are_escaped(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    hostile = '<script>alert("x")</script> *bold* [link](http://example.com).'
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"summary": [hostile, "Second | sentence."], "markdown": "ablation.md"}))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    out = outputs(tmp_path)
    build(params, runs, preds, fake_cache, **out, ablation=path)
    md, html = out["out_md"].read_text(), out["out_html"].read_text()
    assert md_escape(hostile) in md and "Second \\| sentence." in md
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert 'href="http://example.com"' not in html and "<strong>bold</strong>" not in html


@pytest.mark.parametrize(
    "content",
    [
        {"summary": ["One sentence."], "markdown": "ablation.md"},
        {"summary": ["One.", "Two."], "markdown": "javascript:alert(1).md"},
        {"summary": ["One.", "Two."], "markdown": "/etc/ablation.md"},
        {"summary": ["One.", "Two."]},
    ],
)
def test_a_malformed_ablation_json_is_refused(tmp_path, fake_cache, content):
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PipelineError, match="rerun the ablation step"):
        build(params_for(FRAMEWORKS, (0,)), tmp_path / "runs", tmp_path / "preds", fake_cache,
              **outputs(tmp_path), ablation=path)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The headline: the answer in one line, from reports/metrics.json

# The committed 5-seed run's numbers, in metrics.json's layout (percent, points).
COMMITTED = {
    "n_seeds": 5,
    "accuracy": {
        "torch": {"mean": 90.356, "std": 0.36018, "ci95_low": 89.9088, "ci95_high": 90.8032},
        "tensorflow": {"mean": 90.216, "std": 0.60044, "ci95_low": 89.4705, "ci95_high": 90.9615},
    },
    "gap": {"mean": -0.14, "ci95_low": -0.6846, "ci95_high": 0.4046, "p": 0.51485},
    "equivalence": {"margin": 1.0, "ci90_low": -0.5582, "ci90_high": 0.2782, "p": 0.00592, "equivalent": True},
    "timing": {},
}


def with_changes(**groups) -> dict:
    """COMMITTED with some keys of some groups changed."""
    m = json.loads(json.dumps(COMMITTED))
    for group, values in groups.items():
        m[group] |= values
    return m


@pytest.mark.parametrize(
    ("metrics", "text"),
    [
        (
            COMMITTED,
            "PyTorch 90.36 ± 0.45 % | TensorFlow/Keras 90.22 ± 0.75 % (mean ± 95 % CI, 5 seeds) | TF\u2212PT "
            "\u22120.14 points (95 % CI \u22120.68 to +0.40): no significant difference (p = 0.515); equivalent "
            "within ±1.0 points (90 % CI \u22120.56 to +0.28) \u2192 reports/report.html",
        ),
        (
            with_changes(
                gap={"mean": 1.5, "ci95_low": 0.9, "ci95_high": 2.1, "p": 0.0012},
                equivalence={"margin": 0.5, "ci90_low": 1.0, "ci90_high": 2.0, "p": 0.99, "equivalent": False},
            ),
            "PyTorch 90.36 ± 0.45 % | TensorFlow/Keras 90.22 ± 0.75 % (mean ± 95 % CI, 5 seeds) | TF\u2212PT "
            "+1.50 points (95 % CI +0.90 to +2.10): TensorFlow/Keras ahead, significant (p = 0.0012); equivalence "
            "within ±0.5 points not shown (90 % CI +1.00 to +2.00) \u2192 reports/report.html",
        ),
        (
            with_changes(
                gap={"p": None},
                equivalence={"ci90_low": -0.14, "ci90_high": -0.14, "p": None, "equivalent": None},
            ),
            "PyTorch 90.36 ± 0.45 % | TensorFlow/Keras 90.22 ± 0.75 % (mean ± 95 % CI, 5 seeds) | TF\u2212PT "
            "\u22120.14 points (95 % CI \u22120.68 to +0.40): no paired t-test; equivalence within ±1.0 points "
            "not shown (TOST undefined) \u2192 reports/report.html",
        ),
        (
            {
                "n_seeds": 1,
                "accuracy": {"torch": {"mean": 90.356, "std": None, "ci95_low": None, "ci95_high": None}},
                "timing": {},
            },
            "PyTorch 90.36 % (1 seed) \u2192 reports/report.html",
        ),
    ],
)
def test_headline_text(tmp_path, metrics, text):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    assert headline(path, "reports/report.html") == text


def test_headline_is_the_report_steps_last_stdout_line(built):
    last = built.stdout.splitlines()[-1]
    assert last == headline(built.reports / "metrics.json", built.reports / "report.html")
    # Its numbers are the run files': mean ± 95 % CI half-width per framework, then the gap.
    for f in FRAMEWORKS:
        acc = built.acc(f)
        assert f"{FRAMEWORK_NAMES[f]} {pct(acc.mean())} ± {100 * t_half(acc):.2f} %" in last
    d = 100 * (built.acc("tensorflow") - built.acc("torch"))
    assert f"TF\u2212PT {d.mean():+.2f} points".replace("-", "\u2212") in last  # a typographic minus
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
