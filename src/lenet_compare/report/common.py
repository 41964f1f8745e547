"""What the report steps share: the frameworks' names (the registry's), the article's pair, reading a
run's files, the output names, and the headline (the comparison in one line, read back from reports/metrics.json).

Used by the comparison report, the ablation's report, the benchmark's report and the figures,
so that none of them imports another; the Snakemake rules and the tests take the file names from
here too. Kept free of heavy imports: Snakemake reads it while parsing the workflow.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from lenet_compare.core import frameworks
from lenet_compare.core.article import PAIR
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import FRAMEWORK_NAMES as FRAMEWORK_NAMES  # re-exported
from lenet_compare.core.numbers import signed_points

# The significance level of every test in the reports.
ALPHA = 0.05

# reports/figures/{name}.png, in the order the report shows them.
FIGURES = (
    "learning_curves",
    "accuracy_per_seed",
    "confusion_matrices",
    "per_class_accuracy",
    "timing",
    "disagreements",
    "drift",
)

# Written by `python -m lenet_compare.report.browser` (headless Chromium), not by the report step.
SCREENSHOT = "report_screenshot.png"


def figure_files(figures_dir: str = "reports/figures") -> list[str]:
    return [f"{figures_dir}/{name}.png" for name in FIGURES]


def confusion_csv(framework: str, plots_dir: str = "reports/plots") -> str:
    """One (actual, predicted) row per test image of the first seed, for DVC's confusion template."""
    return f"{plots_dir}/confusion_{framework}.csv"


def device_text(run: dict) -> str:
    """A run's device as the reports show it: "cpu", or "cuda (NVIDIA H200)" when the name says more."""
    device, name = run.get("device"), run.get("device_name")
    if device and name and str(name).lower() != str(device).lower():
        return f"{device} ({name})"
    return str(device or name or "n/a")


def require_files(paths: Iterable[Path], who: str, remedy: str) -> None:
    """Stop with one PipelineError that lists every missing file at once; ``remedy`` says what makes them."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        listing = "\n".join(f"  - {m}" for m in missing)
        raise PipelineError(f"{who} needs {len(missing)} file(s) that do not exist ({remedy}):\n{listing}")


def read_json(path: Path, rerun: str = "rerun the step that writes it") -> dict:
    """A JSON object from a run's file; a PipelineError says what is wrong and ``rerun`` what to do."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PipelineError(f"{path} is not readable JSON ({e}); {rerun}") from e
    if not isinstance(obj, dict):
        raise PipelineError(f"{path} must hold a JSON object, got {type(obj).__name__}; {rerun}")
    return obj


def format_p(p: float | None) -> str:
    """p-values as a reader expects them: 3 significant digits, scientific below 0.001."""
    if p is None:
        return "n/a"
    if p == 0:
        return "< 1e-300"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3g}"


# ----------------------------------------------------------------------------------------------
# The headline: the answer in one line, at the end of the report step and of a Snakemake run


def _signed(x: float) -> str:
    """+0.40 / −0.14, with a typographic minus (U+2212): the headline is for reading, not parsing."""
    return signed_points(x).replace("-", "\u2212")


def format_margin(points: float) -> str:
    """An equivalence margin in points as params.yaml gives it: 1.0, 0.5, 0.25 (never "1")."""
    text = f"{points:g}"
    return text if "." in text or "e" in text else f"{text}.0"


def pair_key(a: str, b: str) -> str:
    """The name of the pair (a, b) in reports/metrics.json, after its difference b minus a: "jax_minus_torch"."""
    return f"{b}_minus_{a}"


def short_name(framework: str) -> str:
    """The framework as the headline's differences name it ("TF"); an unknown key as it is."""
    return frameworks.BY_KEY[framework].short if framework in frameworks.BY_KEY else framework


def _pair_short(key: str) -> str:
    """ "jax_minus_torch" as the headline writes it: "JAX−PT"."""
    b, a = key.split("_minus_")
    return f"{short_name(b)}\u2212{short_name(a)}"


def headline(metrics_path: Path | str, report: Path | str = "reports/report.html") -> str:
    """The comparison in one line, from reports/metrics.json alone (its layout: metrics_file.summary_metrics).

    Each framework's accuracy, then the article's pair (TF−PT): its gap, t-test verdict and
    equivalence verdict, then each further pair's gap and equivalence verdict. With more than one
    pair the verdicts are on the Holm-adjusted p-values, and the line gives them:

    "PyTorch 90.36 ± 0.45 % | TensorFlow/Keras 90.22 ± 0.75 % (mean ± 95 % CI, 5 seeds) |
    TF−PT −0.14 points (95 % CI −0.68 to +0.40): no significant difference (p = 0.515);
    equivalent within ±1.0 points (90 % CI −0.56 to +0.28) → reports/report.html"
    """
    m = read_json(Path(metrics_path), "rerun the report step (dvc repro report / snakemake)")
    try:
        return _headline(m, str(report))
    except (KeyError, TypeError, ValueError) as e:
        raise PipelineError(f"{metrics_path} lacks {e} or holds the wrong type there; rerun the report step") from e


def _headline(m: dict, report: str) -> str:
    parts = []
    for f, acc in m["accuracy"].items():
        name = frameworks.name(f)
        half = None if acc["ci95_high"] is None else acc["ci95_high"] - acc["mean"]
        parts.append(f"{name} {acc['mean']:.2f} %" if half is None else f"{name} {acc['mean']:.2f} ± {half:.2f} %")
    n = m["n_seeds"]
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    with_ci = any(acc["ci95_high"] is not None for acc in m["accuracy"].values())
    parts[-1] += f" (mean ± 95 % CI, {seeds})" if with_ci else f" ({seeds})"
    further = m.get("pairs", {})
    several = ("gap" in m) + len(further) > 1  # then every p is Holm-adjusted over the pairs
    if "gap" in m:
        parts.append(_article_pair(m["gap"], m["equivalence"], several))
    for key, pair in further.items():
        parts.append(f"{_pair_short(key)} {_signed(pair['mean'])} points, {_equivalence_words(pair['equivalence'])}")
    return " | ".join(parts) + f" \u2192 {report}"


def _article_pair(gap: dict, eq: dict, several: bool) -> str:
    """TF−PT: the gap with its CI, the t-test's verdict, the equivalence verdict with its 90 % CI."""
    text = f"{_pair_short(pair_key(*PAIR))} {_signed(gap['mean'])} points"
    if gap["ci95_low"] is not None:
        text += f" (95 % CI {_signed(gap['ci95_low'])} to {_signed(gap['ci95_high'])})"
    if gap["p"] is None:
        text += ": no paired t-test"
    else:
        p = f"p = {format_p(gap['p'])}"
        if several:
            p += f", Holm-adjusted p = {format_p(gap['p_holm'])}"
        if gap["p_holm"] < ALPHA:
            ahead = frameworks.name(PAIR[1] if gap["mean"] > 0 else PAIR[0])
            text += f": {ahead} ahead, significant ({p})"
        else:
            text += f": no significant difference ({p})"
    within = f"within ±{format_margin(eq['margin'])} points"
    if eq["p"] is None:
        return text + f"; equivalence {within} not shown (TOST undefined)"
    ci = f"90 % CI {_signed(eq['ci90_low'])} to {_signed(eq['ci90_high'])}"
    if several:
        ci += f", Holm-adjusted TOST p = {format_p(eq['p_holm'])}"
    return text + (f"; equivalent {within} ({ci})" if eq["equivalent"] else f"; equivalence {within} not shown ({ci})")


def _equivalence_words(eq: dict) -> str:
    """A further pair's equivalence verdict: "equivalent within ±1.0 points (Holm-adjusted TOST p = 0.012)"."""
    within = f"within ±{format_margin(eq['margin'])} points"
    if eq["p"] is None:
        return f"equivalence {within} not shown (TOST undefined)"
    p = f"Holm-adjusted TOST p = {format_p(eq['p_holm'])}"
    return f"equivalent {within} ({p})" if eq["equivalent"] else f"equivalence {within} not shown ({p})"


def print_line(text: str, stream: TextIO | None = None) -> None:
    """Print one line whatever the console's encoding: what it cannot show becomes "?", never an error.

    A report step that wrote every file must not fail on a "±" sent to an ASCII-only console.
    """
    stream = stream or sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    stream.write(text.encode(encoding, errors="replace").decode(encoding) + "\n")
    stream.flush()


def file_state(path: Path | str) -> tuple[int, int] | None:
    """(inode, mtime in ns) of a file, None when there is none: changes whenever a step rewrites it.

    The report step writes atomically (a new file renamed over the old), so even a rewrite within
    the clock's resolution gets a new inode.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def announce(metrics_path: Path | str, report: Path | str, before: tuple[int, int] | None) -> str | None:
    """Snakemake's onsuccess: print the headline again, after Snakemake's summary, when this run
    rewrote ``metrics_path`` (its ``file_state`` differs from ``before``, taken at start-up).

    Returns the line printed, or None. Never raises: a run without the report (``snakemake
    benchmark``) prints nothing, and a hook must not turn a finished run into a failure, so an
    unreadable file only costs the headline (the reason goes to stderr).
    """
    if file_state(metrics_path) in (None, before):
        return None
    try:
        line = headline(metrics_path, report)
    except Exception as e:  # any failure: the run has succeeded already (see the docstring)
        print(f"no headline: {e}", file=sys.stderr)
        return None
    print_line(line)
    return line
