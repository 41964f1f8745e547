"""The benchmark's figure: seconds per epoch per variant and framework, and the pipeline's scaling.

Drawn in the comparison report's style and colors (lenet_compare.report.figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import seaborn as sns

from lenet_compare.report.figures import empty_panel, label_bars, palette, plt, save, style


def benchmark(
    seconds: pd.DataFrame,
    order: Sequence[str],
    frameworks: Sequence[str],
    images: int,
    scaling: pd.DataFrame | None,
    scaling_command: str | None,
    path: str | Path,
) -> Path:
    """The benchmark. Left: seconds per epoch per variant and framework (bar: median, dots: repetitions).

    ``seconds``: one row per timed epoch, columns Framework (display name), variant (in ``order``)
    and seconds. Right: ``scaling`` (columns seeds, seconds), the whole tiny pipeline's wall time
    against the number of seeds with ``scaling_command``; None when it was not measured.
    """
    colors = palette(frameworks)
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        ax = axes[0]
        common = {
            "data": seconds,
            "x": "variant",
            "y": "seconds",
            "hue": "Framework",
            "order": order,
            "palette": colors,
        }
        sns.barplot(**common, estimator="median", errorbar=None, alpha=0.85, ax=ax)
        sns.stripplot(
            **common, dodge=True, color="black", size=4, legend=False, ax=ax, edgecolor="black", linewidth=0.6
        )
        label_bars(ax, "{:.2f}")
        ax.set(xlabel=None, ylabel="seconds per epoch")
        sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(colors), title=None, frameon=False)
        ax.set_title(f"Training, {images:,} images per epoch (bar: median; dots: each run)")
        ax = axes[1]
        if scaling is None:
            empty_panel(ax, "pipeline scaling not measured\n(--skip-pipeline)")
            return save(fig, path)
        ax.plot(scaling["seeds"], scaling["seconds"], marker="o", color="0.25")
        for _, r in scaling.iterrows():
            ax.annotate(
                f"{r['seconds']:.0f} s",
                (r["seeds"], r["seconds"]),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=9,
            )
        ax.set_xticks(scaling["seeds"])
        ax.set_ylim(0, scaling["seconds"].max() * 1.15)
        ax.set(xlabel="seeds", ylabel="wall time (s)")
        ax.set_title(f"Whole tiny pipeline from scratch ({scaling_command})")
        return save(fig, path)
