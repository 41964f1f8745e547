"""The ablation's figure: the gap after each step, and each framework's reported accuracy.

Drawn in the comparison report's style and colors (lenet_compare.report.figures).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lenet_compare.report import figures as report_figures
from lenet_compare.report.figures import label, palette, plt, style


def ablation_gap(per_seed: pd.DataFrame, analysis: Mapping, path: str | Path) -> Path:
    """The ablation: the TensorFlow-minus-PyTorch gap after each step, and each framework's accuracy.

    ``per_seed``: one row per (step, seed) with columns index, step, seed, gap and one column per
    framework (its reported accuracy in %). ``analysis``: lenet_compare.ablation.analysis.analyze's result (each
    step's summaries, the article's numbers). Top: each seed's gap (grey, lines join a seed), the
    mean with its 95 % CI, the article's printed gap at the first step. Bottom: each framework's
    accuracy as its code reported it at that step, mean and 95 % CI.
    """
    steps = analysis["steps"]
    names = [e["step"] if e["index"] == 0 else f"+ {e['step']}" for e in steps]
    x = np.arange(len(steps))
    frameworks = list(analysis["frameworks"])
    colors = palette(frameworks)
    n = analysis["n_seeds"]

    def mean_ci(ax, xs, summaries, color, marker, label=None):
        means = np.array([s["mean"] for s in summaries])
        has_ci = all(s["ci_low"] is not None for s in summaries)
        err = (
            [means - np.array([s["ci_low"] for s in summaries]), np.array([s["ci_high"] for s in summaries]) - means]
            if has_ci
            else None
        )
        ax.errorbar(xs, means, yerr=err, fmt=marker, color=color, capsize=5, ms=7, lw=1.6, zorder=4, label=label)
        return means

    with style():
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(11, 8.2), sharex=True, layout="constrained", gridspec_kw={"height_ratios": [3, 2]}
        )
        for _seed, part in per_seed.groupby("seed"):
            part = part.sort_values("index")
            top.plot(part["index"], part["gap"], color="0.78", lw=1, marker="o", ms=4, zorder=2)
        top.plot([], [], color="0.78", lw=1, marker="o", ms=4, label="one seed")
        means = mean_ci(top, x, [e["gap"] for e in steps], "black", "D", f"mean and 95 % CI over {n} seeds")
        for xi, m in zip(x, means, strict=True):
            top.annotate(f"{m:+.2f}", (xi, m), xytext=(9, 0), textcoords="offset points", fontsize=8, va="center")
        gap = analysis["article"]["gap"]
        top.plot([-0.3, -0.3], [gap["low"], gap["high"]], color="0.3", lw=3, zorder=3)
        top.plot(
            [-0.3], [gap["printed"]], marker="s", mfc="white", color="0.3", ms=7, lw=0, zorder=3,
            label=f"article, one run each: {gap['printed']:+.2f} as printed (bar: what PyTorch's truncation allows)",
        )  # fmt: skip
        top.axhline(0, color="black", lw=0.8)
        top.set(ylabel="TensorFlow minus PyTorch (points)")
        top.set_title("The gap after each step, as each framework's code reports accuracy", fontsize=11)
        top.legend(loc="upper right", fontsize=8)
        for k, f in enumerate(frameworks):
            dx = (k - (len(frameworks) - 1) / 2) * 0.12
            color = colors[label(f)]
            for _seed, part in per_seed.groupby("seed"):
                part = part.sort_values("index")
                bottom.scatter(part["index"] + dx, part[f], color=color, alpha=0.35, s=14, zorder=2, lw=0)
            mean_ci(bottom, x + dx, [e["accuracy"][f]["reported"] for e in steps], color, "o", label(f))
            article = analysis["article"].get(f)
            if article:
                bottom.plot(
                    [-0.3], [article["low"]], marker="s", mfc="white", color=color, ms=7, lw=0, zorder=3,
                    label=f"article, {label(f)}: {article['shown']}",
                )  # fmt: skip
        bottom.set(ylabel="test accuracy (%) as reported")
        bottom.legend(loc="lower right", fontsize=8, ncol=2)
        bottom.set_xticks(x, names)
        bottom.set_xlim(-0.6, len(steps) - 0.4)
        bottom.tick_params(axis="x", labelrotation=15)
        fig.suptitle(
            "From the article's setup to the controlled protocol, one factor at a time (cumulative)", fontsize=12
        )
        return report_figures.save(fig, path)  # looked up at the call: tests watch it
