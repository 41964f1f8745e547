"""The ablation's steps: cumulative factor values, which runs train, config rules; one Keras run
proves the softmax head a training no-op."""

import copy
import json
import os
import subprocess
import sys

import pytest
from conftest import default_params, tiny_params

from lenet_compare.ablation import factors
from lenet_compare.core.config import validate_params
from lenet_compare.core.errors import PipelineError


@pytest.fixture
def params() -> dict:
    return default_params()


def test_article_step_is_the_article_and_last_step_is_the_main_protocol(params):
    tf = factors.settings(params, "tensorflow", "article")
    assert tf == {
        "accuracy": "exact",
        "head": "softmax",
        "eps": 1e-7,
        "padding": [2, 2],
        "init": "native",
        "order": "native",
    }
    pt = factors.settings(params, "torch", "article")
    assert pt["order"] == "fixed" and pt["accuracy"] == "truncated" and pt["padding"] == [2, 0]
    last = params["ablation"]["steps"][-1]
    for framework in ("torch", "tensorflow"):
        assert factors.settings(params, framework, last) == factors.controlled(params)
        assert factors.run_id(params, framework, last) == factors.MAIN


def test_steps_are_cumulative(params):
    steps = factors.step_names(params)
    for i, step in enumerate(steps[1:], start=1):
        before = factors.settings(params, "tensorflow", steps[i - 1])
        after = factors.settings(params, "tensorflow", step)
        # exactly the factor of this step changed (or already had its controlled value)
        changed = {k for k in after if after[k] != before[k]}
        assert changed <= {step}
        assert after[step] == factors.controlled(params)[step]


def test_each_distinct_configuration_trains_once(params):
    # PyTorch's training changes only when init and order move; the accuracy step only re-reports.
    assert factors.runs_to_train(params, "torch") == ["article", "init"]
    # Keras's head step trains like the article's run (softmax and logits train bit for bit
    # alike: test_the_softmax_head_trains_bit_for_bit_like_logits), so it reuses that run.
    assert factors.runs_to_train(params, "tensorflow") == ["article", "eps", "padding", "init"]
    assert factors.run_id(params, "torch", "accuracy") == "article"
    assert factors.run_id(params, "torch", "padding") == "article"
    assert factors.run_id(params, "tensorflow", "accuracy") == "article"
    assert factors.run_id(params, "tensorflow", "head") == "article"


def test_training_config_carries_the_factors(params):
    model, train = factors.training_config(params, "tensorflow", "article")
    assert model["conv_padding"] == [2, 2]
    assert (train["eps"], train["init"], train["order"], train["head"]) == (1e-7, "native", "native", "softmax")
    assert train["epochs"] == params["train"]["epochs"]  # everything else is the main protocol's
    assert params["model"]["conv_padding"] == [2, 0]  # the params themselves are untouched


def test_another_step_order_changes_which_runs_are_shared(params):
    params["ablation"]["steps"] = ["order", "init", "padding", "eps", "head", "accuracy"]
    # The last step only changes reporting: both frameworks' last training is the main run.
    assert factors.run_id(params, "torch", "head") == factors.MAIN
    assert factors.run_id(params, "tensorflow", "head") == factors.MAIN
    assert factors.runs_to_train(params, "torch") == ["article", "order"]


@pytest.mark.parametrize(
    ("correct", "how", "expected"),
    [(8999, "truncated", 89.0), (8999, "exact", 89.99), (9134, "exact", 91.34), (10000, "truncated", 100.0)],
)
def test_reported_accuracy(correct, how, expected):
    assert factors.reported_accuracy(correct, 10000, how) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ablation.seeds": [0, 7]}, r"ablation.seeds = \[0, 7\] has seeds not in seeds"),
        ({"frameworks": ["torch"]}, "both are needed"),
        ({"ablation.article.torch.head": "softmax"}, "only implemented for Keras"),
        ({"ablation.article.tensorflow.conv_padding": [2]}, "needs one entry per conv layer"),
        ({"ablation.steps": ["accuracy", "head", "eps", "padding", "init", "init"]}, "ablation.steps"),
        ({"ablation.article.tensorflow.order": "sorted"}, "ablation.article.tensorflow.order"),
    ],
)
def test_invalid_ablation_params_are_refused(params, change, message):
    bad = copy.deepcopy(params)
    for dotted, value in change.items():
        node = bad
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    with pytest.raises(PipelineError, match=message):
        validate_params(bad)


HEADS = """
import json, sys
import numpy as np
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.data.dataset import load_prepared
from lenet_compare.train import init_weights, tensorflow_backend as b

params = json.loads(sys.argv[2])
b.configure("cpu", True, False, 0, threads=1)
data, _ = load_prepared(sys.argv[1])
spec = LeNetSpec.from_params(params["model"])
out = {}
for head in ("softmax", "logits"):
    train = dict(params["train"], head=head, order="native", init="native")
    trainer = b.Trainer(spec, train, 0, "cpu", None)
    trainer.set_training_data(data["x_train"], data["y_train"])
    history = [trainer.train_epoch(epoch)[:2] for epoch in range(train["epochs"])]
    out[head] = {"history": history, "weights": {k: w.tolist() for k, w in trainer.canonical_weights().items()}}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_softmax_head_trains_bit_for_bit_like_logits(small_cache):
    """Why the head step reuses the article's Keras run (factors.TRAINING_NEUTRAL): Keras hands
    categorical cross-entropy the logits under the softmax layer, so the softmax head with
    one-hot labels and the logits head with integer labels take the same steps. Here with the
    article's own native init and Keras's shuffle, 2 epochs: every loss, accuracy and final
    weight is equal, not just close. (Broken once: an identity layer after the softmax hides the
    logits from Keras, which then takes the log of clipped probabilities: the histories differ.)"""
    params = tiny_params()
    done = subprocess.run(
        [sys.executable, "-c", HEADS, str(small_cache), json.dumps(params)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["softmax"]["history"] == out["logits"]["history"]
    assert out["softmax"]["weights"] == out["logits"]["weights"]
