"""The reports' figures: seaborn on matplotlib's Agg backend, one PNG each, written atomically by ``save``.

Each function takes tidy data (pandas DataFrames with a ``framework`` column holding the
params.yaml names) and a path, and draws one figure of the comparison report, for every framework
given and, where it compares them, every pair given. The ablation's figure
(lenet_compare.ablation.figures) and the benchmark's (lenet_compare.bench.figures) use the same
style, colors and ``save``. Colors are fixed per framework (Okabe-Ito, readable for color-blind
readers) so every figure and the report agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lenet_compare.core.atomic import atomic_write
from lenet_compare.report.common import FRAMEWORK_NAMES

COLORS = {"torch": "#D55E00", "tensorflow": "#0072B2", "jax": "#009E73"}  # vermillion, blue, bluish green
# One per pair of frameworks where a figure draws several pairs (Okabe-Ito's others; black first).
PAIR_COLORS = ("black", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "0.5")
DPI = 120


def label(framework: str) -> str:
    return FRAMEWORK_NAMES.get(framework, framework)


def pair_label(a: str, b: str) -> str:
    """A pair (a, b) by its difference: "TensorFlow/Keras minus PyTorch"."""
    return f"{label(b)} minus {label(a)}"


def pair_colors(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Colors keyed by pair_label, in the order of ``pairs``."""
    return {pair_label(a, b): PAIR_COLORS[i % len(PAIR_COLORS)] for i, (a, b) in enumerate(pairs)}


def palette(frameworks: Sequence[str]) -> dict[str, str]:
    """Colors keyed by display name, the way seaborn's ``hue`` sees them."""
    fallback = iter(sns.color_palette("colorblind", 10).as_hex()[2:])
    return {label(f): COLORS.get(f) or next(fallback) for f in frameworks}


@contextlib.contextmanager
def style() -> Iterator[None]:
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.95):
        yield


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically, without the software version (reproducible bytes); close it."""
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def label_bars(ax: plt.Axes, fmt: str) -> None:
    """Each bar's value written inside it, in white."""
    for container in ax.containers:
        ax.bar_label(container, fmt=fmt.format, label_type="center", color="white", fontsize=9, fontweight="bold")


def empty_panel(ax: plt.Axes, message: str) -> None:
    """A panel with nothing to draw says why."""
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color="0.4")


def with_labels(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(Framework=df["framework"].map(label))


def placeholder(path: str | Path, message: str) -> Path:
    """A figure that says why there is nothing to draw (the file list stays fixed)."""
    with style():
        fig, ax = plt.subplots(figsize=(8, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=12)
        return save(fig, path)


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
        return save(fig, path)


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
        return save(fig, path)


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
        return save(fig, path)


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
        return save(fig, path)


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
        return save(fig, path)


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
        return save(fig, path)


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
        return save(fig, path)
