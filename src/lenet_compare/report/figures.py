"""The reports' figures: seaborn on matplotlib's Agg backend, one PNG each, written atomically by ``save``.

Each function takes tidy data (pandas DataFrames with a ``framework`` column holding the
params.yaml names) and a path, and draws one figure: the comparison report's, the ablation's
(``ablation_gap``) and the benchmark's (``benchmark``). Colors are fixed per framework
(Okabe-Ito, readable for color-blind readers) so every figure and the report agree.
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

COLORS = {"torch": "#D55E00", "tensorflow": "#0072B2"}  # vermillion, blue
DPI = 120


def label(framework: str) -> str:
    return FRAMEWORK_NAMES.get(framework, framework)


def palette(frameworks: Sequence[str]) -> dict[str, str]:
    """Colors keyed by display name, the way seaborn's ``hue`` sees them."""
    fallback = iter(sns.color_palette("colorblind", 10).as_hex()[2:])
    return {label(f): COLORS.get(f) or next(fallback) for f in frameworks}


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.95):
        yield


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically, without the software version (reproducible bytes); close it."""
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def _label_bars(ax: plt.Axes, fmt: str) -> None:
    """Each bar's value written inside it, in white."""
    for container in ax.containers:
        ax.bar_label(container, fmt=fmt.format, label_type="center", color="white", fontsize=9, fontweight="bold")


def _empty_panel(ax: plt.Axes, message: str) -> None:
    """A panel with nothing to draw says why."""
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color="0.4")


def _with_labels(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(Framework=df["framework"].map(label))


def placeholder(path: str | Path, message: str) -> Path:
    """A figure that says why there is nothing to draw (the file list stays fixed)."""
    with _style():
        fig, ax = plt.subplots(figsize=(8, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=12)
        return save(fig, path)


def learning_curves(history: pd.DataFrame, path: str | Path) -> Path:
    """Validation accuracy and training loss per epoch: mean over seeds, band of ±1 sd."""
    df = _with_labels(history).assign(val_accuracy_pct=lambda d: 100 * d["val_accuracy"])
    frameworks = list(dict.fromkeys(history["framework"]))
    n_seeds = history.groupby("framework")["seed"].nunique().min()
    errorbar = "sd" if n_seeds > 1 else None
    with _style():
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
    interval, an exact one has low == high. Means and the article sit outside the seed lines:
    left of the first framework, right of the last.
    """
    frameworks = list(dict.fromkeys(runs["framework"]))
    colors = palette(frameworks)
    last = len(frameworks) - 1
    with _style():
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
            ax.scatter([i] * len(pivot), pivot[f], color=colors[label(f)], s=36, zorder=3)
            s = summaries[f]
            if s["ci_low"] is not None:
                mean = 100 * s["mean"]
                err = [[mean - 100 * s["ci_low"]], [100 * s["ci_high"] - mean]]
                ax.errorbar(
                    i + side * 0.3,
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
                x = i + side * 0.55
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
        ax.set_xlim(-0.8, last + 0.8)
        ax.set(ylabel="test accuracy (%)", title="Test accuracy per seed")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8, frameon=False)
        return save(fig, path)


def confusion_matrices(cms: Mapping[str, np.ndarray], class_names: Sequence[str], path: str | Path) -> Path:
    """Row-normalized confusion matrices side by side (% of each true class), one color scale."""
    with _style():
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
    pair: tuple[str, str] | None = None,
) -> Path:
    """Per-class accuracy (recall) as grouped bars, and the per-class difference between frameworks.

    ``per_class``: columns framework, seed, class_name, recall (fraction). ``pair`` = (a, b):
    the lower panel shows b minus a (the report passes (torch, tensorflow): TensorFlow minus
    PyTorch, whatever the order of params.yaml's frameworks); without it, no difference panel.
    """
    df = _with_labels(per_class).assign(recall_pct=lambda d: 100 * d["recall"])
    frameworks = list(dict.fromkeys(per_class["framework"]))
    errorbar = "sd" if per_class.groupby("framework")["seed"].nunique().min() > 1 else None
    if pair is not None and not all(f in frameworks for f in pair):
        raise ValueError(f"pair {pair} names a framework not in the data ({', '.join(frameworks)})")
    with _style():
        fig, axes = plt.subplots(
            2 if pair else 1,
            1,
            figsize=(12, 8.5 if pair else 4.8),
            squeeze=False,
            layout="constrained",
            gridspec_kw={"height_ratios": [3, 2]} if pair else None,
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
        if pair:
            a, b = pair
            wide = df.pivot_table(index=["seed", "class_name"], columns="framework", values="recall_pct")
            diff = (wide[b] - wide[a]).rename("diff").reset_index()
            ax2 = axes[1, 0]
            sns.barplot(
                data=diff,
                x="class_name",
                y="diff",
                order=class_names,
                color="0.55",
                errorbar=errorbar,
                capsize=0.1,
                err_kws={"linewidth": 1},
                ax=ax2,
            )
            ax2.axhline(0, color="black", lw=0.8)
            ax2.set(xlabel=None, ylabel="percentage points")
            ax2.set_title(f"{label(b)} minus {label(a)}, per class")
        for row in axes[:, 0]:
            row.tick_params(axis="x", labelrotation=20)
        return save(fig, path)


def timing(runs: pd.DataFrame, path: str | Path) -> Path:
    """Seconds per epoch, training throughput and inference throughput per framework (±1 sd)."""
    df = _with_labels(runs)
    frameworks = list(dict.fromkeys(runs["framework"]))
    colors = palette(frameworks)
    panels = [
        ("seconds_per_epoch", "Training: seconds per epoch", "{:.2f}"),
        ("images_per_second", "Training: images per second", "{:,.0f}"),
        ("inference_images_per_second", "Inference: images per second (batch 1,000)", "{:,.0f}"),
    ]
    errorbar = "sd" if runs.groupby("framework")["seed"].nunique().min() > 1 else None
    with _style():
        fig, axes = plt.subplots(1, len(panels), figsize=(13, 4.2))
        for ax, (column, title, fmt) in zip(axes, panels, strict=True):
            ax.set_title(title, fontsize=10)
            values = pd.to_numeric(df.get(column), errors="coerce") if column in df else None
            if values is None or values.isna().all():
                _empty_panel(ax, "not recorded")
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
            _label_bars(ax, fmt)
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
    """The first test images (in test-set order) on which the two frameworks predict differently.

    ``images``: raw pixel values 0..255, shape (N, 28, 28).
    """
    (a, pa), (b, pb) = preds.items()
    idx = np.flatnonzero(pa != pb)
    if idx.size == 0:
        return placeholder(path, "The two frameworks predict the same class for every test image.")
    shown = idx[:max_images]
    rows = int(np.ceil(len(shown) / columns))
    with _style(), sns.axes_style("white"):
        fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 3.0 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, i in zip(axes.flat, shown, strict=False):
            ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(f"#{i}  true: {class_names[y_true[i]]}", fontsize=9)
            for line, (f, p) in enumerate(((a, pa), (b, pb))):
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


def drift(history: pd.DataFrame, a: str, b: str, path: str | Path, protocol: str) -> Path:
    """How far the frameworks drift apart epoch by epoch, paired by seed: |b - a| per seed and mean."""
    cols = ["val_accuracy", "train_loss"]
    wide = history.pivot_table(index=["seed", "epoch"], columns="framework", values=cols)
    diff = pd.DataFrame(
        {
            "val_accuracy": 100 * (wide[("val_accuracy", b)] - wide[("val_accuracy", a)]).abs(),
            "train_loss": (wide[("train_loss", b)] - wide[("train_loss", a)]).abs(),
        }
    ).reset_index()
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
        for ax, column, title in (
            (axes[0], "val_accuracy", "|difference in validation accuracy| (percentage points)"),
            (axes[1], "train_loss", "|difference in training loss|"),
        ):
            for _seed, part in diff.groupby("seed"):
                ax.plot(part["epoch"], part[column], color="0.7", lw=1)
            mean = diff.groupby("epoch")[column].mean()
            ax.plot(mean.index, mean.values, color="black", lw=2.2, marker="o" if len(mean) <= 12 else None)
            ax.set(title=title, xlabel="epoch")
            ax.set_title(title, fontsize=10)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_ylim(bottom=0)
        axes[0].plot([], [], color="0.7", label="one seed")
        axes[0].plot([], [], color="black", lw=2.2, label="mean over seeds")
        axes[0].legend(fontsize=8, loc="upper left")
        fig.suptitle(f"Drift between {label(b)} and {label(a)}, paired by seed ({protocol})", fontsize=12)
        return save(fig, path)


def ablation_gap(per_seed: pd.DataFrame, analysis: Mapping, path: str | Path) -> Path:
    """The ablation: the TensorFlow-minus-PyTorch gap after each step, and each framework's accuracy.

    ``per_seed``: one row per (step, seed) with columns index, step, seed, gap and one column per
    framework (its reported accuracy in %). ``analysis``: ablation_report.analyze's result (each
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

    with _style():
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
        return save(fig, path)


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
    with _style():
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
        _label_bars(ax, "{:.2f}")
        ax.set(xlabel=None, ylabel="seconds per epoch")
        sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(colors), title=None, frameon=False)
        ax.set_title(f"Training, {images:,} images per epoch (bar: median; dots: each run)")
        ax = axes[1]
        if scaling is None:
            _empty_panel(ax, "pipeline scaling not measured\n(--skip-pipeline)")
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
