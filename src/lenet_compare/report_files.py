"""The report step's file names, in one place for the step, the Snakemake rule and the tests.

Kept free of heavy imports: Snakemake reads it while parsing the workflow.
"""

FRAMEWORK_NAMES = {"torch": "PyTorch", "tensorflow": "TensorFlow/Keras"}

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

# Written by `python -m lenet_compare.browser` (headless Chromium), not by the report step.
SCREENSHOT = "report_screenshot.png"


def figure_files(figures_dir: str = "reports/figures") -> list[str]:
    return [f"{figures_dir}/{name}.png" for name in FIGURES]


def confusion_csv(framework: str, plots_dir: str = "reports/plots") -> str:
    """One (actual, predicted) row per test image of the first seed, for DVC's confusion template."""
    return f"{plots_dir}/confusion_{framework}.csv"
