"""The report from a tiny real run: 2 seeds x every registered framework (the NumPy reference
too), a few epochs, a small subset.

Runs the whole workflow under Snakemake in a copy of the repo, then checks that the report's
summary matches the per-run metrics and the saved predictions, and that the run ends with the
headline (common.headline): printed by the report job, then again by the Snakefile's onsuccess.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from conftest import run, tiny_params
from PIL import Image

from lenet_compare.core.article import PAIR
from lenet_compare.core.frameworks import FRAMEWORKS
from lenet_compare.data.dataset import load_prepared
from lenet_compare.report.common import FIGURES, headline

pytestmark = pytest.mark.slow

SEEDS = [0, 1]


def test_tiny_real_run_builds_a_consistent_report(snakemake_tiny_run, tmp_path):
    ws, output = snakemake_tiny_run  # conftest: every framework, seeds 0 and 1
    assert yaml.safe_load((ws / "params.yaml").read_text())["seeds"] == SEEDS

    reports = ws / "reports"
    summary = json.loads((reports / "metrics.json").read_text())
    arrays, _ = load_prepared(ws / "data" / "prepared" / "fashion_mnist.npz")
    predictions = {}
    for f in FRAMEWORKS:
        accuracies = []
        for s in SEEDS:
            metrics = json.loads((reports / "runs" / f / f"seed{s}" / "metrics.json").read_text())
            with np.load(ws / "data" / "predictions" / f / f"seed{s}.npz") as npz:
                assert metrics["test_accuracy"] == np.mean(npz["y_pred"] == arrays["y_test"])
                predictions[f, s] = npz["y_pred"]
            accuracies.append(metrics["test_accuracy"])
        # metrics.json holds percent: 100 x the float64 mean of the run files' fractions.
        assert summary["accuracy"][f]["mean"] == pytest.approx(100 * np.mean(accuracies), abs=1e-12)
        assert f"{100 * np.mean(accuracies):.2f}" in (reports / "report.md").read_text()

    # Every other framework (JAX, the framework-free NumPy reference) agrees with each of the
    # article's two at least as closely as those two agree with each other (same weights, same
    # minibatches), less 4 standard errors of the difference of two agreement rates over the test
    # images (sqrt(p (1 - p) / n) each): its accuracy lies where theirs do. One-sided: JAX's and
    # the reference's Adam add eps where PyTorch's does, so they may agree with PyTorch more
    # closely than Keras does.
    def agreement(a: str, b: str, seed: int) -> float:
        return float(np.mean(predictions[a, seed] == predictions[b, seed]))

    n = len(arrays["y_test"])
    others = [f for f in FRAMEWORKS if f not in PAIR]
    assert "numpy" in others  # the reference took part: a framework is its backend and registry row
    for s in SEEDS:
        control = agreement(*PAIR, s)
        for a in PAIR:
            for b in others:
                p = agreement(a, b, s)
                se = np.sqrt(p * (1 - p) / n + control * (1 - control) / n)
                assert p >= control - 4 * se, (a, b, s, p, control)
    assert summary["n_seeds"] == len(SEEDS)
    assert summary["equivalence"]["margin"] == tiny_params()["report"]["equivalence_margin"]
    # Every pair: the article's under gap/equivalence, the others under pairs.
    n_pairs = len(FRAMEWORKS) * (len(FRAMEWORKS) - 1) // 2
    assert len(summary["pairs"]) == n_pairs - 1 and "jax_minus_torch" in summary["pairs"]
    for name in FIGURES:
        with Image.open(reports / "figures" / f"{name}.png") as img:
            assert img.format == "PNG"
    assert (reports / "report.html").stat().st_size > 100_000  # the figures are inside

    # The headline twice: the report job's last stdout line, then onsuccess's, after Snakemake's
    # own summary ("N of N steps (100%) done").
    line = headline(reports / "metrics.json", "reports/report.html")
    assert output.count(line) == 2, output[-3000:]
    assert output.rindex(line) > output.rindex("steps (100%) done")

    # A run without the report job (like `snakemake benchmark`) succeeds and prints no headline.
    # (The target goes first: --forcerun takes every name after it as a rule.)
    copy = tmp_path / "repo"  # the shared run stays as it was
    shutil.copytree(ws, copy, symlinks=True)
    other = run("snakemake data/init/seed0.npz --cores 1 --forcerun init 2>&1", copy)
    assert "1 of 1 steps (100%) done" in other.stdout
    assert "\u2192 reports/report.html" not in other.stdout and "no headline" not in other.stdout
