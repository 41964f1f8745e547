"""The report's figures and DVC's confusion CSVs, from the inputs and the analysis.

Arranges the data of each figure (the report.figures_* modules draw them, in report.figures' style)
and writes one (actual, predicted) CSV per framework for DVC's confusion template. Every figure
shows every framework of params.yaml's ``frameworks``; those that compare frameworks show every
pair.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from lenet_compare.core import article
from lenet_compare.core.atomic import write_text
from lenet_compare.report import figures, figures_accuracy, figures_agreement, figures_speed, figures_training
from lenet_compare.report.common import FIGURES, confusion_csv
from lenet_compare.report.inputs import Inputs


def protocol_text(train: dict) -> str:
    return f"train.init = {train['init']}, train.order = {train['order']}"


def make_figures(inp: Inputs, analysis: dict, figures_dir: Path) -> dict[str, Path]:
    figures_dir = Path(figures_dir)
    paths = {name: figures_dir / f"{name}.png" for name in FIGURES}
    history = pd.concat([r.history.assign(framework=f, seed=s) for (f, s), r in inp.runs.items()], ignore_index=True)
    table = analysis["table"]
    figures_training.learning_curves(history, paths["learning_curves"])
    published = {
        f: (article.PUBLISHED[f]["low"], article.PUBLISHED[f]["high"]) for f in inp.frameworks if f in article.PUBLISHED
    }
    figures_accuracy.accuracy_per_seed(
        table, {f: fw["accuracy"] for f, fw in analysis["frameworks"].items()}, paths["accuracy_per_seed"], published
    )
    per_run = analysis["per_run"]
    cms = {f: np.sum([per_run[(f, s)]["confusion_matrix"] for s in inp.seeds], axis=0) for f in inp.frameworks}
    figures_accuracy.confusion_matrices(cms, inp.class_names, paths["confusion_matrices"])
    per_class = pd.DataFrame(
        [
            {"framework": f, "seed": s, "class_name": name, "recall": m["per_class"]["recall"][k]}
            for (f, s), m in per_run.items()
            for k, name in enumerate(inp.class_names)
        ]
    )
    pairs = [(p["a"], p["b"]) for p in analysis["pairs"]]
    figures_accuracy.per_class_accuracy(per_class, inp.class_names, paths["per_class_accuracy"], pairs=pairs)
    figures_speed.timing(table, paths["timing"])
    if pairs:
        seed = inp.seeds[0]
        # One line per framework under each image, in the order of the pairs: the article's pair first.
        preds = {f: inp.runs[(f, seed)].y_pred for f in dict.fromkeys(f for pair in pairs for f in pair)}
        figures_agreement.disagreements(
            inp.images, inp.y_test, preds, inp.class_names, paths["disagreements"], title=f"Seed {seed}"
        )
        figures_agreement.drift(history, pairs, paths["drift"], protocol_text(inp.params["train"]))
    else:
        why = "Needs two frameworks or more (params.yaml frameworks lists only " + ", ".join(inp.frameworks) + ")."
        figures.placeholder(paths["disagreements"], why)
        figures.placeholder(paths["drift"], why)
    return paths


def write_confusion_csvs(inp: Inputs, plots_dir: Path) -> list[Path]:
    """(actual, predicted) class names per test image of the first seed, for DVC's confusion plot."""
    written = []
    seed = inp.seeds[0]
    for f in inp.frameworks:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["actual", "predicted"])
        names = inp.class_names
        w.writerows((names[t], names[p]) for t, p in zip(inp.y_test, inp.runs[(f, seed)].y_pred, strict=True))
        path = Path(confusion_csv(f, str(plots_dir)))
        write_text(path, buf.getvalue())
        written.append(path)
    # The folder holds exactly params.yaml's frameworks (DVC declares it as one output).
    pattern = Path(confusion_csv("*", str(plots_dir))).name
    for stale in set(Path(plots_dir).glob(pattern)) - set(written):
        stale.unlink()
    return written
