"""Per-run classification metrics: confusion matrix, precision / recall / F1, JSON-ready."""

import json

import numpy as np
import pytest

from lenet_compare.core.errors import PipelineError
from lenet_compare.evaluate.classification import classification_metrics, confusion_matrix, per_class_metrics

Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def test_confusion_matrix_rows_are_truth_columns_prediction():
    assert confusion_matrix(Y_TRUE, Y_PRED, n_classes=3) == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_per_class_metrics_by_hand():
    m = per_class_metrics(confusion_matrix(Y_TRUE, Y_PRED, n_classes=3))
    # class 0: 2 of 2 predicted right (precision 1), 2 of 3 found (recall 2/3); F1 = 0.8
    # class 1: 1 of 2 predicted right, 1 of 2 found; class 2: 1 of 2 predicted right, 1 of 1 found
    assert m["precision"] == pytest.approx([1, 0.5, 0.5])
    assert m["recall"] == pytest.approx([2 / 3, 0.5, 1])
    assert m["f1"] == pytest.approx([0.8, 0.5, 2 / 3])
    assert m["support"] == [3, 2, 1]
    assert m["predicted"] == [2, 2, 2]


def test_a_class_never_predicted_or_absent_scores_zero_not_nan():
    m = per_class_metrics(confusion_matrix([0, 0], [0, 0], n_classes=3))
    assert m["precision"] == [1.0, 0.0, 0.0] and m["recall"] == [1.0, 0.0, 0.0] and m["f1"] == [1.0, 0.0, 0.0]


def test_classification_metrics_is_plain_json():
    names = ["a", "b", "c"]
    m = classification_metrics(np.array(Y_TRUE), np.array(Y_PRED), names)
    assert json.loads(json.dumps(m)) == m  # only lists, dicts, ints, floats, strings
    assert m["n_correct"] == 4
    assert m["class_names"] == names
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert set(m) == {
        "n_correct",
        "class_names",
        "confusion_matrix",
        "per_class",
        "macro_precision",
        "macro_recall",
        "macro_f1",
    }


def test_counts_match_a_random_run():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 10, 5000), rng.integers(0, 10, 5000)
    cm = np.array(confusion_matrix(y, p))
    assert cm.sum() == 5000 and np.trace(cm) == np.sum(y == p)
    assert cm[3, 7] == np.sum((y == 3) & (p == 7))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([0, 1], [0], "has 1"),
        ([0, 10], [0, 1], "outside 0-9"),
        ([0, -1], [0, 1], "outside 0-9"),
        ([0.0, 1.0], [0, 1], "integer"),
        ([[0, 1]], [[0, 1]], "1-d"),
    ],
)
def test_bad_labels_are_pipeline_errors(y_true, y_pred, message):
    with pytest.raises(PipelineError, match=message):
        confusion_matrix(np.array(y_true), np.array(y_pred))
