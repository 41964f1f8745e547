"""The comparison report, the `report` step: read every run's files, compute the statistics, draw, render, write.

One function, ``build``, in the order of the modules it calls:

- inputs: reports/runs/{framework}/seed{seed}/{metrics.json,history.csv,run.json},
  data/predictions/{framework}/seed{seed}.npz and the prepared cache (test labels and images),
  each checked; optionally reports/ablation.json (ablation_report.py);
- analysis: every framework of params.yaml's ``frameworks`` over the seeds, and every pair of
  frameworks paired by seed, p-values Holm-adjusted over the pairs (stats for the tests,
  sentences for the verdicts);
- drawing: the figures (figures draws them) and one (actual, predicted) CSV per framework for DVC's
  confusion template;
- document: report.md and report.html from one jinja2 template (templates/report.md.j2; the HTML is
  that Markdown rendered by markdown-it with raw HTML disabled, images as data: URIs, inside
  templates/page.html.j2);
- metrics_file: reports/metrics.json (DVC's metrics, `dvc exp show`), which the headline reads back.

Framework-free: reads files only, never imports torch or tensorflow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lenet_compare.core.atomic import write_json, write_text
from lenet_compare.report.analysis import analyze
from lenet_compare.report.document import ablation_context, render_markdown, title
from lenet_compare.report.drawing import make_figures, write_confusion_csvs
from lenet_compare.report.inputs import load_ablation, load_inputs
from lenet_compare.report.metrics_file import summary_metrics
from lenet_compare.report.render import data_uri, markdown_to_html

log = logging.getLogger(__name__)


def build(
    params: dict,
    runs_dir: Path,
    predictions_dir: Path,
    cache: Path,
    out_md: Path,
    out_html: Path,
    out_metrics: Path,
    figures_dir: Path,
    plots_dir: Path,
    ablation: Path | None = None,
) -> dict:
    """Run the whole report step; returns the summary written to ``out_metrics``.

    ``ablation``: reports/ablation.json, optional; when given, the report summarizes it in a
    section of its own and links its Markdown report.
    """
    abl = load_ablation(Path(ablation)) if ablation is not None else None
    inp = load_inputs(params, Path(runs_dir), Path(predictions_dir), Path(cache))
    analysis = analyze(inp)
    paths = make_figures(inp, analysis, Path(figures_dir))
    write_confusion_csvs(inp, Path(plots_dir))
    # The .md links figures relative to its own folder (reports/report.md -> figures/x.png).
    rel = os.path.relpath(Path(figures_dir), Path(out_md).parent)
    md_src = {name: f"{Path(rel).as_posix()}/{path.name}" for name, path in paths.items()}
    write_text(out_md, render_markdown(inp, analysis, md_src, ablation_context(abl, Path(out_md))))
    html_src = {name: data_uri(path) for name, path in paths.items()}
    html_md = render_markdown(inp, analysis, html_src, ablation_context(abl, Path(out_html)))
    write_text(out_html, markdown_to_html(html_md, title(inp.frameworks)))
    summary = summary_metrics(analysis)
    write_json(out_metrics, summary)
    for pair in analysis["pairs"]:
        for line in pair["verdict"]:
            log.info("%s", line)
    return summary
