"""The style every figure of the reports shares: seaborn on matplotlib's Agg backend, one PNG each,
written atomically by ``save``.

The comparison report's figures are drawn by one module per concern, each in this style:
figures_training (learning curves), figures_accuracy (test accuracy per seed, confusion
matrices, per-class accuracy), figures_speed (training and inference speed) and figures_agreement
(where the frameworks disagree, how they drift apart); lenet_compare.report.drawing arranges
their data and common.FIGURES lists them. The ablation's figure (lenet_compare.ablation.figures)
and the benchmark's (lenet_compare.bench.figures) use the same style, colors and ``save``.

Each figure takes tidy data (pandas DataFrames with a ``framework`` column holding the
params.yaml names) and a path. Colors are the registry's, fixed per framework (Okabe-Ito,
readable for color-blind readers; lenet_compare.core.frameworks), so every figure and the report
agree. The figure modules call ``figures.save`` looked up at the call (tests watch it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot

import matplotlib.pyplot as plt  # the figure modules take pyplot from here, after the backend is set
import pandas as pd
import seaborn as sns

from lenet_compare.core import frameworks
from lenet_compare.core.atomic import atomic_write

COLORS = {f.key: f.color for f in frameworks.REGISTRY}
# One per pair of frameworks where a figure draws several pairs (Okabe-Ito's others; black first).
PAIR_COLORS = ("black", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "0.5")
DPI = 120


def label(framework: str) -> str:
    return frameworks.name(framework)


def pair_label(a: str, b: str) -> str:
    """A pair (a, b) by its difference: "TensorFlow/Keras minus PyTorch"."""
    return f"{label(b)} minus {label(a)}"


def pair_colors(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Colors keyed by pair_label, in the order of ``pairs``."""
    return {pair_label(a, b): PAIR_COLORS[i % len(PAIR_COLORS)] for i, (a, b) in enumerate(pairs)}


def palette(keys: Sequence[str]) -> dict[str, str]:
    """Colors keyed by display name, the way seaborn's ``hue`` sees them; a framework the registry
    does not know (a test's made-up one) gets one of seaborn's colorblind palette."""
    fallback = iter(sns.color_palette("colorblind", 10).as_hex()[2:])
    return {label(f): COLORS.get(f) or next(fallback) for f in keys}


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
        # matplotlib's stubs type Axes.containers as list[Container] but bar_label as taking a
        # BarContainer; the panels that call this hold only bars.
        ax.bar_label(container, fmt=fmt.format, label_type="center", color="white", fontsize=9, fontweight="bold")  # type: ignore[arg-type]


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
