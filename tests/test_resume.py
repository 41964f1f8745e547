"""Interrupted training resumes from its per-epoch checkpoint and ends exactly where an
uninterrupted run ends (CPU, train.deterministic); a diverging run stops with a clear error.

The interruption is real: the training process gets SIGKILL after its first checkpoint. The
live metrics (DVCLive, tests/test_live_metrics.py) then hold each epoch exactly once.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import REPO, env_with_venv, make_workspace, run, tiny_params, write_params
from test_live_metrics import history_csv_rows, live_epochs

SCRIPTS = REPO / "workflow" / "scripts"
FRAMEWORKS = ("torch", "tensorflow", "jax")
RESULT_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")

pytestmark = pytest.mark.slow


def train_cmd(root: Path, cache: Path, framework: str) -> list[str]:
    out = root / "out" / framework
    return [
        sys.executable,
        str(SCRIPTS / "train.py"),
        *("--framework", framework, "--seed", "0", "--data", str(cache), "--init", "data/init/seed0.npz"),
        *("--model-dir", str(out / "model"), "--history", str(out / "history.csv")),
        *("--run-record", str(out / "run.json"), "--checkpoint-dir", str(out / "checkpoints")),
        *("--live-dir", str(out / "live")),
    ]


def prepare(root: Path, **overrides) -> None:
    root.mkdir(parents=True, exist_ok=True)
    write_params(root / "params.yaml", tiny_params(**{"train.epochs": 4, **overrides}))
    cmd = [sys.executable, str(SCRIPTS / "init.py"), "--seed", "0", "--out", "data/init/seed0.npz"]
    subprocess.run(cmd, cwd=root, check=True, env=env_with_venv(), capture_output=True)


def history(root: Path, framework: str) -> list[tuple]:
    with open(root / "out" / framework / "history.csv") as f:
        return [tuple(row[c] for c in RESULT_COLUMNS) for row in csv.DictReader(f)]


def kill_after_first_checkpoint(cmd: list[str], root: Path, progress: Path) -> int:
    """Start training, SIGKILL it once a checkpoint exists; the epochs that checkpoint holds."""
    proc = subprocess.Popen(cmd, cwd=root, env=env_with_venv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not progress.is_file():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return len(json.loads(progress.read_text())["rows"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_killed_training_resumes_to_the_same_result(framework, small_cache, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for root in (whole, killed):
        prepare(root)
    run(train_cmd(whole, small_cache, framework), whole)

    out = killed / "out" / framework
    done = kill_after_first_checkpoint(
        train_cmd(killed, small_cache, framework), killed, out / "checkpoints" / "progress.json"
    )
    assert 1 <= done < 4
    assert not (out / "run.json").exists() and not (out / "history.csv").exists()  # nothing half-written
    # The live folder never runs ahead of the checkpoint: an epoch is logged after it is saved.
    # The kill may have cut the logging of an epoch short (files or folders missing): the
    # rerun starts the folder again from the checkpoint.
    for tsv in (out / "live").rglob("*.tsv"):
        steps = [line.split("\t")[0] for line in tsv.read_text().splitlines()[1:]]
        assert steps == [str(e) for e in range(1, len(steps) + 1)] and len(steps) <= done, tsv

    result = run(train_cmd(killed, small_cache, framework), killed)  # the very same command
    assert f"resuming after epoch {done}" in result.stderr
    # Every loss and accuracy, to the last bit (repr in the CSV), validation ones included,
    # which are computed from the weights after each epoch.
    assert history(killed, framework) == history(whole, framework)
    assert json.loads((out / "run.json").read_text())["resumed_after_epoch"] == done
    assert not (out / "checkpoints").exists()  # removed once the run is complete
    # Live metrics: epochs 1-4 once each, the values of history.csv (epoch_seconds included,
    # which for the epochs before the kill come from the checkpoint), uninterrupted or not.
    for root in (whole, killed):
        rows = history_csv_rows(root / "out" / framework / "history.csv")
        assert [r[0] for r in rows] == ["1", "2", "3", "4"]
        assert live_epochs(root / "out" / framework / "live") == rows


def test_checkpoint_of_other_params_is_not_resumed(small_cache, tmp_path):
    root = tmp_path / "ws"
    prepare(root)
    out = root / "out" / "torch"
    kill_after_first_checkpoint(train_cmd(root, small_cache, "torch"), root, out / "checkpoints" / "progress.json")
    write_params(root / "params.yaml", tiny_params(**{"train.epochs": 4, "train.lr": 0.002}))
    result = run(train_cmd(root, small_cache, "torch"), root)
    assert "ignoring" in result.stderr and "other params" in result.stderr
    assert "resuming" not in result.stderr
    assert len(history(root, "torch")) == 4


def test_checkpoint_of_other_code_is_not_resumed(small_cache, tmp_path):
    """The same params and data, but the epoch loop's code changed since the checkpoint."""
    root = tmp_path / "ws"
    prepare(root)
    out = root / "out" / "tensorflow"
    kill_after_first_checkpoint(train_cmd(root, small_cache, "tensorflow"), root, out / "checkpoints" / "progress.json")
    # A copy of the package (and the schema it finds beside it), first on the import path,
    # whose epoch loop (train/loop.py) differs by one comment.
    code = tmp_path / "code"
    package = code / "src" / "lenet_compare"
    shutil.copytree(REPO / "src" / "lenet_compare", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "workflow" / "schemas", code / "workflow" / "schemas")
    with open(package / "train" / "loop.py", "a") as f:
        f.write("# changed after the checkpoint was written\n")
    env = {**env_with_venv(), "PYTHONPATH": str(package.parent)}
    result = subprocess.run(
        train_cmd(root, small_cache, "tensorflow"), cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "ignoring" in result.stderr and "other params, data, code or library versions" in result.stderr
    assert "resuming" not in result.stderr
    assert len(history(root, "tensorflow")) == 4


def test_the_fingerprint_covers_code_and_library_versions(small_cache, monkeypatch):
    """Each input of the checkpoint key changes it (no framework imported: a stand-in backend)."""
    from lenet_compare.train import checkpoints

    params = tiny_params()
    with np.load(small_cache) as data:
        x, y = data["x_train"][:100], data["y_train"][:100]
    backends = REPO / "src" / "lenet_compare" / "train" / "backends"
    code = [backends / "torch" / "backend.py", REPO / "src" / "lenet_compare" / "train" / "loop.py"]

    def key(**changes):
        args = {"framework": "torch", "seed": 0, "model": params["model"], "train": params["train"], "x": x, "y": y}
        return checkpoints.fingerprint(**{"version": "2.14.1", "code": code, **args, **changes})

    base = key()
    assert key() == base  # the same inputs, the same key
    assert key(train={**params["train"], "device": "cuda"}) == base  # a GPU run may resume on a CPU
    assert key(train={**params["train"], "lr": 0.002}) != base
    assert key(x=x[::-1]) != base
    assert key(version="2.15.0") != base
    monkeypatch.setattr(np, "__version__", "0.0.0")
    assert key() != base
    monkeypatch.undo()
    assert key(code=[backends / "tensorflow" / "backend.py", code[1]]) != base  # other code
    assert key(code=code[:1]) != base


def test_a_job_fingerprints_its_whole_backend_folder():
    """A backend of two modules (JAX's start.py beside backend.py): a change to either is new code."""
    from lenet_compare.train.job import training_code

    files = {p.relative_to(REPO).as_posix() for p in training_code("jax")}
    assert {"src/lenet_compare/train/backends/jax/backend.py", "src/lenet_compare/train/backends/jax/start.py"} <= files
    assert "src/lenet_compare/train/loop.py" in files and "src/lenet_compare/train/trainer.py" in files
    assert not any("/backends/torch/" in f for f in files)


@pytest.fixture(scope="module")
def poisoned_cache(small_cache, tmp_path_factory) -> Path:
    """The small cache with one infinite pixel in training image 100 (minibatch 4 in data-set order).

    Infinite, not NaN: TensorFlow's relu maps NaN to 0, so a NaN pixel never reaches Keras's
    loss (it silently poisons conv1's weights instead); inf does, in both frameworks.
    """
    with np.load(small_cache, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["x_train"] = arrays["x_train"].copy()
    arrays["x_train"][100, 5, 5] = np.inf
    path = tmp_path_factory.mktemp("nan") / "fashion_mnist.npz"
    np.savez(path, **arrays)
    return path


# Two detections, both correct, and which fires first depends on how the CPU rounds: the loss
# check names the step (exactly, or "by" the step on Keras's fast path, which reports every 50
# steps); the weights check, after the epoch, names the tensors. Keras's relu maps NaN to 0, so
# there the loss may stay finite while conv1's weights are already NaN. JAX on a CPU too: the
# poisoned image alone gets NaN logits, but inside its minibatch of 32 XLA's compiled step
# returned finite logits and loss (measured), while conv1's and conv2's gradients were NaN.
LOSS_STOP = re.compile(r"the training loss became (nan|inf|-inf) in epoch 1, (at|by) step (\d+) of 125")
WEIGHTS_STOP = re.compile(r"the weights [\w.]+(, [\w.]+)* became NaN or infinite in epoch 1")
POISONED_STEP = 4  # image 100 is in minibatch 4 (images 96-127) of the data set's order


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_non_finite_training_stops_naming_where(framework, fast, poisoned_cache, tmp_path):
    # order: fixed walks the data set's order, so image 100 is in minibatch 4 of epoch 1.
    prepare(tmp_path, **{"train.order": "fixed", "train.fast": fast})
    result = run(train_cmd(tmp_path, poisoned_cache, framework), tmp_path, check=False)
    assert result.returncode == 1
    loss, weights = LOSS_STOP.search(result.stderr), WEIGHTS_STOP.search(result.stderr)
    assert loss or weights, result.stderr
    if loss:
        assert int(loss.group(3)) >= POISONED_STEP, result.stderr  # never before the poisoned minibatch
    if framework == "torch":
        # PyTorch's loss is read at every step and its relu passes inf on: the poisoned step itself.
        assert loss and loss.group(2) == "at" and int(loss.group(3)) == POISONED_STEP, result.stderr
    assert "lower train.lr" in result.stderr and "Traceback" not in result.stderr
    out = tmp_path / "out" / framework
    assert not (out / "model").exists() and not (out / "run.json").exists()


def test_snakemake_reruns_a_killed_training_job_and_resumes(tmp_path):
    """kill -9 of a training job under Snakemake; the README command then finishes the run."""
    ws = make_workspace(tmp_path / "ws", tiny_params(**{"train.epochs": 4, "frameworks": ["torch", "tensorflow"]}))
    target = "reports/runs/torch/seed0/metrics.json"
    cmd = ["snakemake", target, "--cores", "2", "--resources", "gpu=1"]  # --resources takes several values
    proc = subprocess.Popen(
        cmd, cwd=ws, env=env_with_venv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    progress = ws / "data" / "checkpoints" / "torch" / "seed0" / "progress.json"
    deadline = time.monotonic() + 600
    while not progress.is_file():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # Only this Snakemake's own training job: other runs on the machine stay untouched.
    jobs = [p for p in psutil.Process(proc.pid).children(recursive=True) if "train.py" in " ".join(p.cmdline())]
    assert jobs
    for job in jobs:
        job.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0, out
    runs = ws / "reports/runs/torch/seed0"
    # Snakemake removed the failed job's outputs, the live folder too...
    assert not (runs / "run.json").exists() and not (runs / "live").exists()
    assert progress.is_file()  # ...but not the checkpoint

    rerun = run(cmd, ws)  # the same command again
    log = (ws / "logs/train/torch/seed0.log").read_text()
    assert "resuming after epoch" in log
    # The live folder, rebuilt from the checkpoint: each epoch once, history.csv's values.
    assert live_epochs(runs / "live") == history_csv_rows(runs / "history.csv")
    assert json.loads((ws / target).read_text())["test_accuracy"] > 0.5
    assert "Nothing to be done" not in rerun.stdout + rerun.stderr
