"""Per-run classification metrics from labels and predictions, as plain JSON-ready values.

Pure numpy, no framework: the evaluate step calls ``classification_metrics`` on its predictions
and merges the result into reports/runs/{framework}/seed{seed}/metrics.json; the report step
recomputes the same values from the saved predictions and checks that they agree.
"""

from __future__ import annotations

import numpy as np

from lenet_compare.core.errors import PipelineError


def _labels(y: np.ndarray, name: str, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise PipelineError(f"{name} must be one label per image (1-d), got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise PipelineError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise PipelineError(f"{name} holds labels outside 0-{n_classes - 1} (min {y.min()}, max {y.max()})")
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, n_classes: int = 10) -> list[list[int]]:
    """``cm[i][j]``: images of true class i predicted as class j (rows: truth, columns: prediction)."""
    y_true = _labels(y_true, "y_true", n_classes)
    y_pred = _labels(y_pred, "y_pred", n_classes)
    if y_true.shape != y_pred.shape:
        raise PipelineError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).tolist()


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0/0 (a class never predicted, or absent from the test set) counts as 0, as in scikit-learn's
    # zero_division=0; the support and the predicted count say when that happened.
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def per_class_metrics(cm: list[list[int]] | np.ndarray) -> dict[str, list]:
    """Precision, recall (= per-class accuracy), F1, support and predicted count per class."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)  # true images of the class
    predicted = cm.sum(axis=0)  # images predicted as the class
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "predicted": predicted.tolist(),
    }


def classification_metrics(y_true, y_pred, class_names: list[str] | tuple[str, ...]) -> dict:
    """The keys the evaluate step adds to a run's metrics.json.

    ``n_correct / n_test`` is the run's ``test_accuracy``; the report checks that they agree.
    Macro averages weigh every class equally.
    """
    n_classes = len(class_names)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    per_class = per_class_metrics(cm)
    correct = int(np.trace(np.asarray(cm)))
    return {
        "n_correct": correct,
        "class_names": list(class_names),
        "confusion_matrix": cm,
        "per_class": per_class,
        "macro_precision": float(np.mean(per_class["precision"])),
        "macro_recall": float(np.mean(per_class["recall"])),
        "macro_f1": float(np.mean(per_class["f1"])),
    }
