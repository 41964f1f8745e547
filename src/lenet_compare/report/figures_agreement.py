"""The report's figures of how the frameworks differ from one another: the test images they
disagree on, and how far apart their training drifts epoch by epoch, paired by seed.

Drawn in the reports' style (lenet_compare.report.figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from lenet_compare.report import figures  # figures.save looked up at the call: tests watch it
from lenet_compare.report.figures import COLORS, label, pair_colors, pair_label, placeholder, plt, style


def disagreements(
    images: np.ndarray,
    y_true: np.ndarray,
    preds: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    path: str | Path,
    title: str,
    max_images: int = 24,
    columns: int = 6,
) -> Path:
    """The first test images (in test-set order) on which the frameworks do not all predict the same class,
    with every framework's prediction under each.

    ``images``: raw pixel values 0..255, shape (N, 28, 28); ``preds``: framework -> predictions.
    """
    stacked = np.array(list(preds.values()))
    idx = np.flatnonzero(np.any(stacked != stacked[0], axis=0))
    if idx.size == 0:
        who = "two" if len(preds) == 2 else f"{len(preds)}"
        return placeholder(path, f"The {who} frameworks predict the same class for every test image.")
    shown = idx[:max_images]
    rows = int(np.ceil(len(shown) / columns))
    row_height = 3.0 + 0.35 * max(0, len(preds) - 2)  # one line of text per framework under each image
    with style(), sns.axes_style("white"):
        fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, row_height * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, i in zip(axes.flat, shown, strict=False):
            ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(f"#{i}  true: {class_names[y_true[i]]}", fontsize=9)
            for line, (f, p) in enumerate(preds.items()):
                mark = "right" if p[i] == y_true[i] else "wrong"
                ax.text(
                    0.5,
                    -0.08 - 0.14 * line,
                    f"{label(f)}: {class_names[p[i]]} ({mark})",
                    transform=ax.transAxes,
                    ha="center",
                    va="top",
                    fontsize=8.5,
                    color=COLORS.get(f, "black"),
                    fontweight="bold" if mark == "right" else "normal",
                )
        fig.suptitle(f"{title}: {len(shown)} of {idx.size} disagreements", fontsize=12)
        fig.tight_layout()
        return figures.save(fig, path)


def drift(history: pd.DataFrame, pairs: Sequence[tuple[str, str]], path: str | Path, protocol: str) -> Path:
    """How far the frameworks drift apart epoch by epoch, paired by seed: |b - a| per seed and mean, per pair.

    One pair: grey lines per seed, the mean in black. Several: each pair in its color (pair_colors),
    thin lines per seed, the mean thick.
    """
    cols = ["val_accuracy", "train_loss"]
    wide = history.pivot_table(index=["seed", "epoch"], columns="framework", values=cols)
    colors = pair_colors(pairs)
    several = len(pairs) > 1
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
        for a, b in pairs:
            diff = pd.DataFrame(
                {
                    "val_accuracy": 100 * (wide[("val_accuracy", b)] - wide[("val_accuracy", a)]).abs(),
                    "train_loss": (wide[("train_loss", b)] - wide[("train_loss", a)]).abs(),
                }
            ).reset_index()
            color = colors[pair_label(a, b)]
            for ax, column in zip(axes, cols, strict=True):
                for _seed, part in diff.groupby("seed"):
                    ax.plot(
                        part["epoch"],
                        part[column],
                        color=color if several else "0.7",
                        lw=1,
                        alpha=0.35 if several else 1,
                    )
                mean = diff.groupby("epoch")[column].mean()
                ax.plot(
                    mean.index,
                    mean.values,
                    color=color,
                    lw=2.2,
                    marker="o" if len(mean) <= 12 else None,
                    label=f"{pair_label(a, b)}, mean over seeds" if several else None,
                )
        for ax, title in zip(
            axes,
            ("|difference in validation accuracy| (percentage points)", "|difference in training loss|"),
            strict=True,
        ):
            ax.set(title=title, xlabel="epoch")
            ax.set_title(title, fontsize=10)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_ylim(bottom=0)
        if several:
            axes[0].plot([], [], color="0.5", lw=1, alpha=0.5, label="thin lines: one seed")
            axes[0].legend(fontsize=8, loc="upper left")
            fig.suptitle(f"Drift between each pair of frameworks, paired by seed ({protocol})", fontsize=12)
        else:
            (a, b) = pairs[0]
            axes[0].plot([], [], color="0.7", label="one seed")
            axes[0].plot([], [], color="black", lw=2.2, label="mean over seeds")
            axes[0].legend(fontsize=8, loc="upper left")
            fig.suptitle(f"Drift between {label(b)} and {label(a)}, paired by seed ({protocol})", fontsize=12)
        return figures.save(fig, path)
