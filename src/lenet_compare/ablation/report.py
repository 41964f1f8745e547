"""The ablation report step: the article's gap explained one factor at a time; ablation.md, .json and a figure.

``build`` reads the runs (lenet_compare.ablation.inputs), computes every number and its words
(ablation.analysis, ablation.sentences), draws the figure (ablation.figures) and writes the
Markdown and the JSON, each atomically. The main report reads the JSON.

Framework-free: reads files only, never imports torch or tensorflow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from lenet_compare.ablation import analysis, figures, inputs
from lenet_compare.core import article
from lenet_compare.core.article import PAIR
from lenet_compare.core.atomic import write_json, write_text
from lenet_compare.report.render import environment, image_link

log = logging.getLogger(__name__)


def figure_data(a: dict) -> pd.DataFrame:
    """Tidy per-seed rows: step index, step, seed, framework reported accuracies and the gap."""
    rows = []
    for e in a["steps"]:
        for i, s in enumerate(a["seeds"]):
            rows.append(
                {
                    "index": e["index"],
                    "step": e["step"],
                    "seed": s,
                    "gap": e["gap"]["values"][i],
                    **{f: e["accuracy"][f]["reported"]["values"][i] for f in PAIR},
                }
            )
    return pd.DataFrame(rows)


def render_markdown(a: dict, figure_src: str) -> str:
    template = environment().get_template("ablation.md.j2")
    return template.render(
        a=a, pair=PAIR, truncation=article.TRUNCATED_ACCURACY, figure=image_link("ablation", figure_src)
    )


def build(params: dict, runs_dir: Path, main_runs_dir: Path, out_md: Path, out_json: Path, figure: Path) -> dict:
    """Run the whole ablation report step; returns what it writes to ``out_json``.

    ``runs_dir`` holds the ablation's run records (core.layout.ABLATION_RUN under it),
    ``main_runs_dir`` the main runs' (core.layout.RUN).
    """
    results = inputs.load_results(params, Path(runs_dir), Path(main_runs_dir))
    a = analysis.analyze(params, results)
    figures.ablation_gap(figure_data(a), a, Path(figure))
    rel_figure = Path(os.path.relpath(Path(figure), Path(out_md).parent)).as_posix()
    # Where the main report finds the Markdown and the figure, relative to this JSON file.
    a["markdown"] = Path(os.path.relpath(Path(out_md), Path(out_json).parent)).as_posix()
    a["figure"] = Path(os.path.relpath(Path(figure), Path(out_json).parent)).as_posix()
    write_text(out_md, render_markdown(a, rel_figure))
    write_json(out_json, a)
    for line in a["conclusion"]:
        log.info("%s", line)
    return a
