"""The report's figures of test accuracy: each seed's accuracy beside the article's, the confusion
matrices, and the accuracy per class with each pair's difference.

Drawn in the reports' style (lenet_compare.report.figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from lenet_compare.report import figures  # figures.save looked up at the call: tests watch it
from lenet_compare.report.figures import COLORS, label, pair_colors, pair_label, palette, plt, style, with_labels


def accuracy_per_seed(
    runs: pd.DataFrame,
    summaries: Mapping[str, dict],
    path: str | Path,
    article: Mapping[str, tuple[float, float]] | None = None,
) -> Path:
    """Each seed's test accuracy (lines join the same seed), the mean with its 95 % CI, the article.

    ``article``: framework -> (low, high) of the published value in %; a truncated value is an
    interval, an exact one has low == high. Each framework's mean and article sit beside its seeds,
    nearer to them than to the next framework's: left of the first framework, right of the others
    (of the last, beyond the seeds' labels).
    """
    frameworks = list(dict.fromkeys(runs["framework"]))
    colors = palette(frameworks)
    last = len(frameworks) - 1
    with style():
        fig, ax = plt.subplots(figsize=(8, 5.2))
        pivot = runs.pivot(index="seed", columns="framework", values="test_accuracy") * 100
        for seed, row in pivot.iterrows():
            values = [row[f] for f in frameworks]
            ax.plot(range(len(frameworks)), values, color="0.75", lw=1, zorder=1)
            ax.annotate(
                f"seed {seed}",
                (last, values[-1]),
                xytext=(7, 0),
                textcoords="offset points",
                fontsize=7,
                color="0.45",
                va="center",
            )
        for i, f in enumerate(frameworks):
            side = -1 if i == 0 and last > 0 else 1
            # The last framework's seed labels take the first ~0.25 to its right (7-point offset,
            # 7-point text, in an 8-inch figure of about 3.3 x-units).
            beside = 0.32 if i == last and last > 0 else 0.22
            ax.scatter([i] * len(pivot), pivot[f], color=colors[label(f)], s=36, zorder=3)
            s = summaries[f]
            if s["ci_low"] is not None:
                mean = 100 * s["mean"]
                err = [[mean - 100 * s["ci_low"]], [100 * s["ci_high"] - mean]]
                ax.errorbar(
                    i + side * beside,
                    mean,
                    yerr=err,
                    fmt="D",
                    color=colors[label(f)],
                    capsize=5,
                    ms=7,
                    zorder=3,
                    label="mean and 95 % CI" if i == 0 else None,
                )
            if article and f in article:
                low, high = article[f]
                x = i + side * (beside + 0.18)
                ax.plot(
                    [x, x] if high > low else [x],
                    [low, high] if high > low else [low],
                    marker="s",
                    mfc="white",
                    color="0.3",
                    lw=3,
                    ms=6,
                    zorder=2,
                    label="article, one run (PyTorch truncated: an interval)" if i == 0 else None,
                )
        ax.set_xticks(range(len(frameworks)), [label(f) for f in frameworks])
        ax.set_xlim(-0.65, last + 0.75)
        ax.set(ylabel="test accuracy (%)", title="Test accuracy per seed")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8, frameon=False)
        return figures.save(fig, path)


def confusion_matrices(cms: Mapping[str, np.ndarray], class_names: Sequence[str], path: str | Path) -> Path:
    """Row-normalized confusion matrices side by side (% of each true class), one color scale."""
    with style():
        n = len(cms)
        fig, axes = plt.subplots(
            1, n + 1, figsize=(7 * n + 0.8, 6.6), gridspec_kw={"width_ratios": [1] * n + [0.05]}, squeeze=False
        )
        cbar_ax = axes[0, -1]
        for k, (ax, (f, cm)) in enumerate(zip(axes[0, :n], cms.items(), strict=True)):
            cm = np.asarray(cm, dtype=np.float64)
            rows = cm.sum(axis=1, keepdims=True)
            pct = np.divide(100 * cm, rows, out=np.zeros_like(cm), where=rows > 0)
            sns.heatmap(
                pct,
                annot=True,
                fmt=".1f",
                annot_kws={"fontsize": 7},
                cmap="Blues",
                vmin=0,
                vmax=100,
                square=True,
                cbar=k == 0,
                cbar_ax=cbar_ax if k == 0 else None,
                cbar_kws={"label": "% of the true class"},
                xticklabels=class_names,
                yticklabels=class_names if k == 0 else False,
                ax=ax,
            )
            ax.set(xlabel="predicted", ylabel="true" if k == 0 else None)
            ax.set_title(label(f), color=COLORS.get(f, "black"), fontweight="bold")
            ax.tick_params(axis="x", labelrotation=45)
            plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
        fig.suptitle("Confusion matrices, all seeds pooled, normalized per true class (%)", fontsize=12)
        return figures.save(fig, path)


def per_class_accuracy(
    per_class: pd.DataFrame,
    class_names: Sequence[str],
    path: str | Path,
    pairs: Sequence[tuple[str, str]] = (),
) -> Path:
    """Per-class accuracy (recall) as grouped bars, and the per-class difference of each pair of frameworks.

    ``per_class``: columns framework, seed, class_name, recall (fraction). ``pairs``: (a, b) per
    pair, drawn in the lower panel as b minus a (the report passes the article's pair first,
    (torch, tensorflow): TensorFlow minus PyTorch, whatever the order of params.yaml's
    frameworks); one pair in grey, several side by side in the pairs' colors; no pair, no panel.
    """
    df = with_labels(per_class).assign(recall_pct=lambda d: 100 * d["recall"])
    frameworks = list(dict.fromkeys(per_class["framework"]))
    errorbar = "sd" if per_class.groupby("framework")["seed"].nunique().min() > 1 else None
    for pair in pairs:
        if not all(f in frameworks for f in pair):
            raise ValueError(f"pair {pair} names a framework not in the data ({', '.join(frameworks)})")
    with style():
        fig, axes = plt.subplots(
            2 if pairs else 1,
            1,
            figsize=(12, 8.5 if pairs else 4.8),
            squeeze=False,
            layout="constrained",
            gridspec_kw={"height_ratios": [3, 2]} if pairs else None,
        )
        ax = axes[0, 0]
        sns.barplot(
            data=df,
            x="class_name",
            y="recall_pct",
            hue="Framework",
            order=class_names,
            palette=palette(frameworks),
            errorbar=errorbar,
            capsize=0.1,
            err_kws={"linewidth": 1},
            ax=ax,
        )
        ax.set(xlabel=None, ylabel="accuracy on the class (%)", ylim=(0, 100))
        ax.set_title("Per-class test accuracy (recall), mean over seeds" + (", ±1 sd" if errorbar else ""))
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), title=None, fontsize=9)
        if pairs:
            wide = df.pivot_table(index=["seed", "class_name"], columns="framework", values="recall_pct")
            diff = pd.concat(
                [(wide[b] - wide[a]).rename("diff").reset_index().assign(pair=pair_label(a, b)) for a, b in pairs],
                ignore_index=True,
            )
            ax2 = axes[1, 0]
            several = len(pairs) > 1
            sns.barplot(
                data=diff,
                x="class_name",
                y="diff",
                order=class_names,
                hue="pair" if several else None,
                palette=pair_colors(pairs) if several else None,
                color=None if several else "0.55",
                errorbar=errorbar,
                capsize=0.1,
                err_kws={"linewidth": 1},
                ax=ax2,
            )
            ax2.axhline(0, color="black", lw=0.8)
            ax2.set(xlabel=None, ylabel="percentage points")
            if several:
                ax2.set_title("Each pair's difference, per class")
                sns.move_legend(ax2, "upper left", bbox_to_anchor=(1.0, 1.0), title=None, fontsize=9)
            else:
                ax2.set_title(f"{pair_label(*pairs[0])}, per class")
        for row in axes[:, 0]:
            row.tick_params(axis="x", labelrotation=20)
        return figures.save(fig, path)
