"""Snakemake's own report (`snakemake --report`) of a real tiny run.

The report rule flags its outputs with report() (workflow/rules/report.smk), each with a caption
from workflow/report/ and a category; the Snakefile's report directive adds the workflow's
description. One tiny run in a workspace, then the report as a .zip (files kept apart) and as
one self-contained .html.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run

from lenet_compare.core.frameworks import FRAMEWORKS
from lenet_compare.report.common import FIGURES

pytestmark = pytest.mark.slow

CAPTIONS = REPO / "workflow" / "report"
# What the report must show: category -> subcategory -> files, and each file's caption.
CATEGORIES = {
    "Comparison": {"Report": ["reports/metrics.json", "reports/report.html"]},
    "Figures": {
        "Training": ["reports/figures/drift.png", "reports/figures/learning_curves.png"],
        "Test accuracy": [
            "reports/figures/accuracy_per_seed.png",
            "reports/figures/confusion_matrices.png",
            "reports/figures/disagreements.png",
            "reports/figures/per_class_accuracy.png",
        ],
        "Speed": ["reports/figures/timing.png"],
    },
    "Data for DVC plots": {"Confusion matrices": [f"reports/plots/confusion_{f}.csv" for f in sorted(FRAMEWORKS)]},
}
CAPTION_OF = {
    "reports/report.html": "report_html.rst",
    "reports/metrics.json": "metrics.rst",
    **{f"reports/figures/{name}.png": f"{name}.rst" for name in FIGURES},
    **{f"reports/plots/confusion_{f}.csv": "confusion_csv.rst" for f in FRAMEWORKS},
}


def embedded(html: str, name: str):
    """The JSON value the report's page assigns to ``var name`` (results, categories, workflow_desc).

    Its template writes each on a line of its own; the bundled JavaScript has other ``var results``.
    """
    found = list(re.finditer(rf"^\s*var {name} = (?=[{{\"])", html, re.MULTILINE))
    assert len(found) == 1, f"var {name}: {len(found)} assignments of a JSON value"
    return json.JSONDecoder().raw_decode(html, found[0].end())[0]


def words(text: str) -> str:
    """Text with HTML tags dropped and whitespace collapsed, to compare a caption with its source."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


def source_opening(caption: Path) -> str:
    """The caption file's words before its first markup or template expression."""
    text = " ".join(caption.read_text().split())
    return re.split(r"\{\{|``", text, maxsplit=1)[0].strip()


@pytest.fixture(scope="module")
def ran(snakemake_tiny_run) -> tuple[Path, dict]:
    """The shared tiny Snakemake run (conftest: every framework, 2 seeds) and its params."""
    ws, _ = snakemake_tiny_run
    return ws, yaml.safe_load((ws / "params.yaml").read_text())


@pytest.fixture(scope="module")
def archive(ran) -> zipfile.ZipFile:
    ws, _ = ran
    run(["snakemake", "--report", "reports/snakemake-report.zip"], ws)
    return zipfile.ZipFile(ws / "reports" / "snakemake-report.zip")


def test_the_archive_holds_every_flagged_file_as_the_run_wrote_it(ran, archive):
    ws, _ = ran
    # The zip's layout: snakemake-report/report.html, and each file under data/raw/<id>/<its name>.
    names = archive.namelist()
    assert "snakemake-report/report.html" in names
    stored = {Path(n).name: n for n in names if n.startswith("snakemake-report/data/raw/")}
    assert sorted(stored) == sorted(Path(p).name for p in CAPTION_OF)
    for path in CAPTION_OF:
        assert archive.read(stored[Path(path).name]) == (ws / path).read_bytes(), path


def test_each_file_has_its_caption_category_and_labels(archive):
    html = archive.read("snakemake-report/report.html").decode()
    assert embedded(html, "categories") == CATEGORIES
    results = embedded(html, "results")
    assert sorted(results) == sorted(CAPTION_OF)
    for path, caption in CAPTION_OF.items():
        shown = words(results[path]["caption"])
        # The caption's own words, and every template expression in it filled in.
        assert source_opening(CAPTIONS / caption) in shown, (path, shown)
        assert "{{" not in shown and "}}" not in shown, (path, shown)
        assert results[path]["job_properties"]["rule"] == "report"
    assert results["reports/plots/confusion_torch.csv"]["labels"] == {"framework": "torch"}
    assert results["reports/figures/drift.png"]["labels"] == {"figure": "drift"}
    # Captions take the run's config: the first seed, whose test images the CSVs list.
    assert "One row per test image of seed 0:" in words(results["reports/plots/confusion_torch.csv"]["caption"])


def test_the_workflow_description_shows_this_runs_config(ran, archive):
    _, params = ran
    html = archive.read("snakemake-report/report.html").decode()
    description = words(embedded(html, "workflow_desc"))
    data = params["data"]
    assert f"seeds {', '.join(map(str, params['seeds']))}, {params['train']['epochs']} epoch(s)" in description
    assert f"{data['limit_train']} training images (of which {data['val_size']} for validation)" in description
    assert f"tested on {data['limit_test']} test images" in description


def test_a_single_html_file_embeds_every_flagged_file(ran):
    ws, _ = ran
    run(["snakemake", "--report", "reports/snakemake-report.html"], ws)
    html = (ws / "reports" / "snakemake-report.html").read_text()
    results = embedded(html, "results")
    assert sorted(results) == sorted(CAPTION_OF)
    assert all(r["data_uri"].startswith("data:") for r in results.values()), results
