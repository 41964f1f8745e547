"""The ablation's steps: cumulative factor values, which runs train, config rules; one Keras run
proves the softmax head a training no-op; the training step trains one run per job and refuses others."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, default_params, run, tiny_params, write_params

from lenet_compare.ablation import factors, inputs
from lenet_compare.core import layout
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
        ({"frameworks": ["torch"]}, r"frameworks = \[.torch.\] lacks tensorflow: .* always needed"),
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
from lenet_compare.train import init_weights
from lenet_compare.train.backends.tensorflow import backend as b

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


# ----------------------------------------------------------------------------------------------
# The step workflow/scripts/ablation_train.py: one job per run

RECORD_KEYS = [
    "framework", "framework_version", "python_version", "seed", "run", "device", "device_name", "epochs",
    "batch_size", "n_train", "wall_seconds", "settings", "n_parameters", "n_correct", "n_test", "test_accuracy",
    "test_loss", "train_seconds", "seconds_per_epoch", "resumed_after_epoch", "framework_details", "history",
]  # fmt: skip


def ablation_train(root: Path, framework: str, run_id: str, data: Path, seed: int = 0) -> subprocess.CompletedProcess:
    """The step's command line as the engines run it (the paths of lenet_compare.core.layout), under ``root``."""
    where = {"framework": framework, "seed": seed, "run": run_id}
    return run(
        [
            sys.executable, REPO / "workflow/scripts/ablation_train.py", "--framework", framework,
            "--seed", str(seed), "--run", run_id, "--data", data,
            "--model-dir", layout.ABLATION_MODEL_DIR.format(**where),
            "--checkpoint-dir", layout.ABLATION_CHECKPOINT_DIR.format(**where),
            "--out", layout.ablation_run_file(framework, seed, run_id),
            "--live-dir", layout.ABLATION_LIVE.format(**where),
            "--log", f"logs/ablation/{framework}/seed{seed}/{run_id}.log",
        ],
        cwd=root,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("framework", "run_id", "valid"),
    [
        ("torch", "eps", "article, init"),  # a step whose PyTorch run is the article's: not trained twice
        ("tensorflow", "head", "article, eps, padding, init"),  # the softmax head reuses the article's run
        ("torch", "main", "article, init"),  # the last step is the main pipeline's run
        ("tensorflow", "nonsense", "article, eps, padding, init"),
    ],
)
def test_the_step_refuses_a_run_the_ablation_does_not_train(tmp_path, framework, run_id, valid):
    write_params(tmp_path / "params.yaml", default_params())
    done = ablation_train(tmp_path, framework, run_id, tmp_path / "no-cache.npz")
    assert done.returncode == 1, done.stderr
    assert (
        f"--run {run_id!r} is not a run the ablation trains for {framework}: "
        f"with params.yaml's ablation its runs are {valid}"
    ) in done.stderr
    # Refused before anything started: no framework, no cache read (it does not exist), nothing written.
    assert "Traceback" not in done.stderr and "no-cache.npz" not in done.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        f"logs/ablation/{framework}/seed0/{run_id}.log",
        "params.yaml",
    ]


@pytest.mark.slow
def test_one_job_trains_one_run_and_writes_its_record(tmp_path, fake_cache):
    """PyTorch's `init` run (shared initial weights, the article's fixed order), 2 epochs: the record
    holds what the ablation report reads, the model and live folder are the run's own, the
    checkpoints are gone once the record is written, and the report's reader accepts the record."""
    params = tiny_params()
    write_params(tmp_path / "params.yaml", params)
    done = ablation_train(tmp_path, "torch", "init", fake_cache)
    assert done.returncode == 0, done.stderr[-3000:]

    path = tmp_path / layout.ablation_run_file("torch", 0, "init")
    record = json.loads(path.read_text())
    assert list(record) == RECORD_KEYS
    assert (record["framework"], record["seed"], record["run"]) == ("torch", 0, "init")
    assert record["settings"] == factors.settings(params, "torch", "init")
    assert (record["n_test"], record["n_train"], record["epochs"]) == (400, 500, 2)
    assert record["test_accuracy"] == record["n_correct"] / record["n_test"]
    assert [row["epoch"] for row in record["history"]] == [1, 2] and record["resumed_after_epoch"] == 0
    assert record["train_seconds"] == pytest.approx(sum(r["epoch_seconds"] for r in record["history"]))
    assert record["wall_seconds"] > record["train_seconds"] > 0
    assert record["n_parameters"] == 61706  # the article's PyTorch padding, [2, 0]

    assert (tmp_path / "data/ablation/models/torch/seed0/init/model.pt").is_file()
    assert not (tmp_path / "data/checkpoints/ablation/torch/seed0/init").exists()
    live = tmp_path / "reports/ablation/live/torch/seed0/init"
    assert sorted(p.relative_to(live).as_posix() for p in live.rglob("*.tsv")) == [
        "plots/metrics/epoch_seconds.tsv", "plots/metrics/train/accuracy.tsv", "plots/metrics/train/loss.tsv",
        "plots/metrics/val/accuracy.tsv", "plots/metrics/val/loss.tsv",
    ]  # fmt: skip
    assert json.loads((live / "metrics.json").read_text())["step"] == 2

    numbers = inputs.ablation_result(params, path, "torch", 0, "init")
    assert (numbers["n_correct"], numbers["n_test"], numbers["epochs"]) == (record["n_correct"], 400, 2)
