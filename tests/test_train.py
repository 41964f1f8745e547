"""The init, train and evaluate steps end to end, on the real images of the small cache.

One module-scoped run per framework (2 epochs on 4,000 training images, 2,000 test images, the
shared protocol) serves most tests. Each step runs as its own process, as under the engines,
so torch and tensorflow never meet.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import env_with_venv, tiny_params, write_params

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
FRAMEWORKS = ("torch", "tensorflow")
CONTRACT_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds"]
TIME_COLUMNS = {"epoch_seconds", "val_seconds"}


def outputs(root: Path, framework: str, seed: int = 0) -> dict[str, Path]:
    run_dir = root / "reports" / "runs" / framework / f"seed{seed}"
    return {
        "model_dir": root / "data" / "models" / framework / f"seed{seed}",
        "history": run_dir / "history.csv",
        "run_record": run_dir / "run.json",
        "predictions": root / "data" / "predictions" / framework / f"seed{seed}.npz",
        "metrics": run_dir / "metrics.json",
        "checkpoint_dir": root / "data" / "checkpoints" / framework / f"seed{seed}",
    }


def step(root: Path, script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / f"{script}.py"), *args],
        cwd=root,
        env=env or env_with_venv(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stderr}"


def train(root: Path, cache: Path, framework: str, out: dict[str, Path], env: dict | None = None):
    return step(
        root,
        "train",
        *("--framework", framework, "--seed", "0", "--data", str(cache), "--init", "data/init/seed0.npz"),
        *("--model-dir", str(out["model_dir"]), "--history", str(out["history"])),
        *("--run-record", str(out["run_record"]), "--checkpoint-dir", str(out["checkpoint_dir"])),
        env=env,
    )


def evaluate(root: Path, cache: Path, framework: str, out: dict[str, Path]):
    return step(
        root,
        "evaluate",
        *("--framework", framework, "--seed", "0", "--data", str(cache)),
        *("--model-dir", str(out["model_dir"]), "--run-record", str(out["run_record"])),
        *("--predictions", str(out["predictions"]), "--metrics", str(out["metrics"])),
    )


@pytest.fixture(scope="module")
def trained(small_cache, tmp_path_factory) -> Path:
    """A folder where both frameworks were trained and evaluated for seed 0 under tiny params."""
    root = tmp_path_factory.mktemp("trained")
    write_params(root / "params.yaml", tiny_params())
    check(step(root, "init", "--seed", "0", "--out", "data/init/seed0.npz"))
    for framework in FRAMEWORKS:
        check(train(root, small_cache, framework, outputs(root, framework)))
        check(evaluate(root, small_cache, framework, outputs(root, framework)))
    return root


def read_history(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_outputs_follow_the_contracts(trained, small_cache, framework):
    out = outputs(trained, framework)
    with open(out["history"], newline="") as f:
        header = next(csv.reader(f))
    assert header[:6] == CONTRACT_COLUMNS
    history = read_history(out["history"])
    assert [row["epoch"] for row in history] == ["1", "2"]

    record = json.loads(out["run_record"].read_text())
    assert record["framework"] == framework
    assert (record["device"], record["peak_gpu_memory_mb"]) == ("cpu", None)
    assert (record["n_parameters"], record["n_train"], record["epochs"], record["seed"]) == (61_706, 4000, 2, 0)
    assert record["train_seconds"] == pytest.approx(sum(float(r["epoch_seconds"]) for r in history))
    assert record["images_per_second"] == pytest.approx(2 * 4000 / record["train_seconds"])
    assert record["peak_rss_mb"] > 50
    assert (record["init"], record["order"], record["deterministic"]) == ("shared", "shared", True)

    with np.load(out["predictions"]) as npz:
        y_pred, logits = npz["y_pred"], npz["logits"]
    assert y_pred.dtype == np.int64 and y_pred.shape == (2000,)
    assert logits.dtype == np.float32 and logits.shape == (2000, 10)
    assert np.array_equal(y_pred, logits.argmax(axis=1))
    metrics = json.loads(out["metrics"].read_text())
    y_test = np.load(small_cache)["y_test"]
    assert metrics["n_test"] == 2000
    assert metrics["test_accuracy"] == (y_pred == y_test).mean()  # exact fraction
    assert metrics["train_seconds"] == record["train_seconds"]
    assert 0 < metrics["test_loss"] < 2.5


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_epochs_on_4000_images_learn(trained, framework):
    metrics = json.loads(outputs(trained, framework)["metrics"].read_text())
    assert metrics["test_accuracy"] >= 0.65, metrics


@pytest.mark.slow
def test_frameworks_agree_under_the_shared_protocol(trained):
    torch_pred, keras_pred = (np.load(outputs(trained, fw)["predictions"])["y_pred"] for fw in FRAMEWORKS)
    agreement = (torch_pred == keras_pred).mean()
    assert agreement >= 0.85, f"predictions agree on {agreement:.1%} of test images"


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_same_seed_gives_the_same_history(trained, small_cache, framework):
    again = outputs(trained / "again", framework)
    check(train(trained, small_cache, framework, again))
    first, second = read_history(outputs(trained, framework)["history"]), read_history(again["history"])

    def without_times(rows):
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]

    assert without_times(second) == without_times(first)
    assert first[0]["train_loss"] != first[1]["train_loss"]  # real numbers, not a constant


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_native_protocol_is_seeded_and_differs_from_shared(trained, small_cache, tmp_path, framework):
    """init and order native: each framework's own initializers and shuffling, still repeatable."""
    write_params(tmp_path / "params.yaml", tiny_params(**{"train.init": "native", "train.order": "native"}))
    histories = []
    for attempt in ("first", "second"):
        out = outputs(tmp_path / attempt, framework)
        check(train(tmp_path, small_cache, framework, out))
        histories.append([{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in read_history(out["history"])])
        record = json.loads(out["run_record"].read_text())
        assert (record["init"], record["order"]) == ("native", "native")
    assert histories[0] == histories[1]
    shared = read_history(outputs(trained, framework)["history"])
    assert histories[0][0]["train_loss"] != shared[0]["train_loss"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_cuda_without_a_gpu_stops_at_once(small_cache, tmp_path, framework):
    write_params(tmp_path / "params.yaml", tiny_params(**{"train.device": "cuda"}))
    env = {**env_with_venv(), "CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, even on a GPU machine
    out = outputs(tmp_path, framework)
    result = train(tmp_path, small_cache, framework, out, env=env)
    assert result.returncode == 1
    assert "train.device is 'cuda'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "reports").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("framework", "damage"), [("torch", "corrupt"), ("tensorflow", "corrupt"), ("torch", "missing")]
)
def test_corrupt_or_missing_model_is_a_clear_error(trained, small_cache, tmp_path, framework, damage):
    good = outputs(trained, framework)
    out = outputs(tmp_path, framework)
    out["run_record"].parent.mkdir(parents=True)
    out["run_record"].write_bytes(good["run_record"].read_bytes())
    out["model_dir"].mkdir(parents=True)
    model_file = next(good["model_dir"].iterdir())
    if damage == "corrupt":
        (out["model_dir"] / model_file.name).write_bytes(model_file.read_bytes()[:500])
    result = evaluate(tmp_path, small_cache, framework, out)
    assert result.returncode == 1
    assert ("cannot load" if damage == "corrupt" else "is missing") in result.stderr
    assert "rerun the train step" in result.stderr or "run the train step" in result.stderr
    assert not out["predictions"].exists() and not out["metrics"].exists()
