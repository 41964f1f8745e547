"""Building the comparison report from synthetic runs, and reading it back: the helpers of the
tests/test_report_*.py files and tests/test_headline.py (their shared fixtures: tests/report_builds.py).

The runs are synthetic (tests/synthetic_runs.py) on a tiny fake cache; the expected numbers are
recomputed in the tests from the run files with numpy / scipy, independently of lenet_compare.report.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import REPO, run
from synthetic_runs import write_runs

from lenet_compare.report.compare import build

FRAMEWORKS = ("torch", "tensorflow")
# Every framework, with made-up runs (synthetic_runs): the report's N-framework comparison.
THREE = ("torch", "tensorflow", "jax")
SEEDS = (0, 1, 2)


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


def rebuild(b: Built, root: Path, params: dict) -> Built:
    """The report of ``b``'s runs again, with other params (the runs stay as they are), under ``root``."""
    out = outputs(root)
    build(params, b.runs, b.preds, b.cache, **out)
    return read_built(root, params, b.cache, b.runs, b.preds, out)


# ----------------------------------------------------------------------------------------------
# Reading the Markdown and metrics.json back


def row(rows: list[list[str]], first: str) -> list[str]:
    return next(r for r in rows if r[0] == first)


def pct(x) -> str:
    return f"{100 * x:.2f}"


def one_line(md: str) -> str:
    return " ".join(md.split())


def flatten(node: dict, prefix: str = "") -> dict:
    """metrics.json's keys as `dvc exp show` names its columns (the nesting joined by dots)."""
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


GAP_KEYS = ("mean", "ci95_low", "ci95_high", "p", "p_holm")
EQUIVALENCE_KEYS = ("margin", "ci90_low", "ci90_high", "p", "p_holm", "equivalent")


def summary_keys(frameworks, further_pairs=()) -> list[str]:
    """reports/metrics.json's flattened keys for these frameworks, with the article's pair among them,
    and ``further_pairs`` (e.g. ["jax_minus_torch"]) in their order."""
    return [
        "n_seeds",
        *(f"accuracy.{f}.{k}" for f in frameworks for k in ("mean", "std", "ci95_low", "ci95_high")),
        *(f"gap.{k}" for k in GAP_KEYS),
        *(f"equivalence.{k}" for k in EQUIVALENCE_KEYS),
        *(
            key
            for pair in further_pairs
            for key in (
                *(f"pairs.{pair}.{k}" for k in GAP_KEYS),
                *(f"pairs.{pair}.equivalence.{k}" for k in EQUIVALENCE_KEYS),
            )
        ),
        *(f"timing.{f}.{k}" for f in frameworks for k in ("seconds_per_epoch", "inference_images_per_second")),
    ]
