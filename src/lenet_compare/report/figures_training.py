"""The report's learning curves: validation accuracy and training loss per epoch, per framework.

Drawn in the reports' style (lenet_compare.report.figures).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from lenet_compare.report import figures  # figures.save looked up at the call: tests watch it
from lenet_compare.report.figures import palette, plt, style, with_labels


def learning_curves(history: pd.DataFrame, path: str | Path) -> Path:
    """Validation accuracy and training loss per epoch: mean over seeds, band of ±1 sd."""
    df = with_labels(history).assign(val_accuracy_pct=lambda d: 100 * d["val_accuracy"])
    frameworks = list(dict.fromkeys(history["framework"]))
    n_seeds = history.groupby("framework")["seed"].nunique().min()
    errorbar = "sd" if n_seeds > 1 else None
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, column, title in (
            (axes[0], "val_accuracy_pct", "Validation accuracy (%)"),
            (axes[1], "train_loss", "Training loss"),
        ):
            sns.lineplot(
                data=df,
                x="epoch",
                y=column,
                hue="Framework",
                palette=palette(frameworks),
                errorbar=errorbar,
                marker="o" if df["epoch"].nunique() <= 12 else None,
                ax=ax,
            )
            ax.set(title=title, xlabel="epoch", ylabel=None)
            ax.xaxis.get_major_locator().set_params(integer=True)
        band = f"band: ±1 standard deviation over {n_seeds} seeds" if errorbar else "one seed"
        fig.suptitle(f"Learning curves, mean over seeds ({band})", fontsize=12)
        return figures.save(fig, path)
