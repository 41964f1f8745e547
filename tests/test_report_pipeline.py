"""The report from a tiny real run: 2 seeds x 2 frameworks, 2 epochs, 4,000 training images.

Runs the whole workflow under Snakemake in a copy of the repo, then checks that the report's
summary matches the per-run metrics and the saved predictions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_workspace, run, tiny_params
from PIL import Image

from lenet_compare.data.dataset import load_prepared
from lenet_compare.report.common import FIGURES

pytestmark = pytest.mark.slow

SEEDS = [0, 1]


def test_tiny_real_run_builds_a_consistent_report(tmp_path):
    ws = make_workspace(tmp_path / "repo", tiny_params(seeds=SEEDS))
    run(["snakemake", "--cores", "2", "reports/report.md"], ws, timeout=1800)

    reports = ws / "reports"
    summary = json.loads((reports / "metrics.json").read_text())
    arrays, _ = load_prepared(ws / "data" / "prepared" / "fashion_mnist.npz")
    for f in ("torch", "tensorflow"):
        accuracies = []
        for s in SEEDS:
            metrics = json.loads((reports / "runs" / f / f"seed{s}" / "metrics.json").read_text())
            with np.load(ws / "data" / "predictions" / f / f"seed{s}.npz") as npz:
                assert metrics["test_accuracy"] == np.mean(npz["y_pred"] == arrays["y_test"])
            accuracies.append(metrics["test_accuracy"])
        # The same float64 mean of the same two fractions (JSON keeps float64 exactly): any
        # difference is a rounding of 2^-53 or so, far below 1e-15.
        assert summary[f]["accuracy_mean"] == pytest.approx(np.mean(accuracies), abs=1e-15)
        assert f"{100 * np.mean(accuracies):.2f}" in (reports / "report.md").read_text()
    assert summary["n_seeds"] == len(SEEDS)
    for name in FIGURES:
        with Image.open(reports / "figures" / f"{name}.png") as img:
            assert img.format == "PNG"
    assert (reports / "report.html").stat().st_size > 100_000  # the figures are inside
