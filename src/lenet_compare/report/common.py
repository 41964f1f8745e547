"""What the report steps share: framework names, the pair compared, reading a run's files, the output names.

Used by the comparison report, the ablation's report, the benchmark's report and the figures,
so that none of them imports another; the Snakemake rules and the tests take the file names from
here too. Kept free of heavy imports: Snakemake reads it while parsing the workflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from lenet_compare.core.errors import PipelineError

FRAMEWORK_NAMES = {"torch": "PyTorch", "tensorflow": "TensorFlow/Keras"}
# Differences are always the second minus the first: TensorFlow minus PyTorch.
PAIR = ("torch", "tensorflow")

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
