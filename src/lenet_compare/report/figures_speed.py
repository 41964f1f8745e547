"""The report's figure of speed: seconds per epoch, training throughput and inference throughput.

Drawn in the reports' style (lenet_compare.report.figures).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from lenet_compare.report import figures  # figures.save looked up at the call: tests watch it
from lenet_compare.report.figures import empty_panel, label, label_bars, palette, plt, style, with_labels


def timing(runs: pd.DataFrame, path: str | Path) -> Path:
    """Seconds per epoch, training throughput and inference throughput per framework (±1 sd)."""
    df = with_labels(runs)
    frameworks = list(dict.fromkeys(runs["framework"]))
    colors = palette(frameworks)
    panels = [
        ("seconds_per_epoch", "Training: seconds per epoch", "{:.2f}"),
        ("images_per_second", "Training: images per second", "{:,.0f}"),
        ("inference_images_per_second", "Inference: images per second (batch 1,000)", "{:,.0f}"),
    ]
    errorbar = "sd" if runs.groupby("framework")["seed"].nunique().min() > 1 else None
    with style():
        fig, axes = plt.subplots(1, len(panels), figsize=(13, 4.2))
        for ax, (column, title, fmt) in zip(axes, panels, strict=True):
            ax.set_title(title, fontsize=10)
            values = pd.to_numeric(df.get(column), errors="coerce") if column in df else None
            if values is None or values.isna().all():
                empty_panel(ax, "not recorded")
                continue
            data = df.assign(value=values)
            sns.barplot(
                data=data,
                x="Framework",
                y="value",
                hue="Framework",
                palette=colors,
                errorbar=errorbar,
                capsize=0.15,
                err_kws={"linewidth": 1},
                legend=False,
                ax=ax,
            )
            label_bars(ax, fmt)
            ax.set(xlabel=None, ylabel=None)
        devices = "; ".join(
            f"{label(f)}: {', '.join(sorted(set(map(str, runs.loc[runs['framework'] == f, 'device_text']))))}"
            for f in frameworks
        )
        fig.suptitle(f"Speed (mean over seeds{', ±1 sd' if errorbar else ''}); {devices}", fontsize=11)
        return figures.save(fig, path)
