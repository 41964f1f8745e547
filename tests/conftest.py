"""Fixtures shared by the tests.

Pipeline tests run in a temporary copy of the repository (its tracked files plus this
checkout's venv on PATH), with a tiny params.yaml, so the committed reports/ stay intact.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lenet_compare.bench.pipeline import commit_all, copy_checkout

REPO = Path(__file__).resolve().parents[1]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
VENV_BIN = Path(sys.executable).parent


# A non-default model spec that exercises every branch of the model builders: valid, explicit and
# "same" padding, three convs, odd feature-map sides before max pooling, one hidden layer, tanh.
CUSTOM_MODEL = {
    "conv_channels": [4, 8, 16],
    "kernel_size": 3,
    "conv_padding": [0, 2, 1],
    "pooling": "max",
    "activation": "tanh",
    "hidden": [32],
    "classes": 10,
}


def default_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def tiny_params(**overrides) -> dict:
    """Defaults shrunk for a quick real run: 5,000 train (1,000 of them val), 2,000 test, 2 epochs.

    Overrides use dotted keys: tiny_params(**{"train.epochs": 1}).
    """
    params = default_params()
    params["data"]["sources"] = [str(DEBIAN_DIR)]
    params["data"].update(limit_train=5000, val_size=1000, limit_test=2000)
    params["train"]["epochs"] = 2
    params["seeds"] = [0]
    params["ablation"]["seeds"] = [0]
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = copy.deepcopy(value)
    return params


def write_params(path: Path, params: dict) -> None:
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def env_with_venv(path_first: Path | None = None) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run(
    cmd: list[str] | str, cwd: Path, check: bool = True, timeout: float = 1200, path_first: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a command with the venv (and ``path_first``, if given, before it) first on PATH."""
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=env_with_venv(path_first),
        shell=isinstance(cmd, str),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{cmd} failed with exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def run_probes(script: str, frameworks, args: list[str], out_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """``python script FRAMEWORK *args OUT`` for every framework, side by side, one process each (no
    two frameworks share a process); each writes OUT, an .npz: {framework: its arrays}."""
    procs = {
        fw: subprocess.Popen(
            [sys.executable, script, fw, *args, str(out_dir / f"{fw}.npz")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for fw in frameworks
    }
    for fw, proc in procs.items():
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{fw} probe failed:\n{output[-5000:]}"
    return {fw: dict(np.load(out_dir / f"{fw}.npz")) for fw in frameworks}


def make_workspace(dest: Path, params: dict | None = None, keep_benchmark: bool = False) -> Path:
    """A fresh copy of the repo with ``params`` (default: tiny_params()) committed.

    The committed results of the full baseline (reports/, dvc.lock) are removed: they belong
    to other params, and Snakemake, which has no record of them, would take the newer
    report files as up to date and skip the run. So is the benchmark's own dvc.yaml unless
    asked for: `dvc status` covers every dvc.yaml, and its 20-minute stage is not what the
    pipeline tests are about (tests/test_benchmark.py runs it small).
    """
    if not DEBIAN_DIR.is_dir():
        pytest.skip(f"{DEBIAN_DIR} missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    ws = copy_checkout(REPO, dest)
    commit_all(ws, "copy", "tests")
    shutil.rmtree(ws / "reports", ignore_errors=True)
    (ws / "dvc.lock").unlink(missing_ok=True)
    if not keep_benchmark:
        shutil.rmtree(ws / "workflow" / "benchmark")
    write_params(ws / "params.yaml", params or tiny_params())
    run(["git", "add", "-A"], ws)
    run(["git", "commit", "-qm", "tiny params, no baseline results"], ws)
    return ws


@pytest.fixture(scope="session")
def snakemake_tiny_run(tmp_path_factory) -> tuple[Path, str]:
    """The whole tiny DAG under `snakemake --cores 2`, every registered framework (the NumPy
    reference too) on 2 seeds:
    (the workspace, Snakemake's output, stderr and stdout as one stream in the order written).

    Shared by the tests that read a Snakemake run (tests/test_report_pipeline.py,
    tests/test_snakemake_report.py, tests/test_dvc_versioning.py): one pipeline run instead of
    one per file. A test that changes the repository works on a copy.
    """
    from lenet_compare.core.frameworks import FRAMEWORKS

    params = tiny_params(seeds=[0, 1], frameworks=list(FRAMEWORKS))
    ws = make_workspace(tmp_path_factory.mktemp("snakemake") / "repo", params)
    result = run("snakemake --cores 2 2>&1", ws, timeout=1800)
    return ws, result.stdout


@pytest.fixture(scope="session")
def dvc_tiny_run(tmp_path_factory) -> Path:
    """The whole tiny DAG run once by `dvc repro` and committed, as a user would.

    Shared by every test that reads a DVC run (tests/test_dvc_versioning.py,
    tests/test_live_metrics.py): one pipeline run instead of one per file. A test that changes
    the repository works on a copy (shutil.copytree(..., symlinks=True)).
    """
    ws = make_workspace(tmp_path_factory.mktemp("dvc") / "repo")
    run(["dvc", "repro"], ws)
    run(["git", "add", "-A"], ws)
    run(["git", "commit", "-qm", "baseline run"], ws)
    return ws


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A fresh copy of the repo with tiny params."""
    return make_workspace(tmp_path / "repo")


@pytest.fixture(scope="session")
def fake_cache(tmp_path_factory) -> Path:
    """A prepared cache of 600 random training and 400 random test images (no download needed)."""
    from idx_files import fake_dataset, write_gz_dir

    from lenet_compare.data.dataset import prepare, save_prepared

    root = tmp_path_factory.mktemp("fake-cache")
    src = write_gz_dir(root / "raw", fake_dataset(n_train=600, n_test=400))
    data = tiny_params()["data"] | {"limit_train": None, "limit_test": None, "val_size": 100}
    arrays, meta = prepare(src, data)
    save_prepared(root / "fashion_mnist.npz", arrays, meta)
    return root / "fashion_mnist.npz"


@pytest.fixture(scope="session")
def small_cache(tmp_path_factory) -> Path:
    """A real prepared cache from the Debian files: 4,000 train, 1,000 val, 2,000 test images."""
    if not DEBIAN_DIR.is_dir():
        pytest.skip(f"{DEBIAN_DIR} missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    from lenet_compare.data.dataset import prepare, save_prepared

    out = tmp_path_factory.mktemp("cache") / "fashion_mnist.npz"
    arrays, meta = prepare(DEBIAN_DIR, tiny_params()["data"])
    save_prepared(out, arrays, meta)
    return out


# ----------------------------------------------------------------------------------------------
# Reading the reports back, and the statistics recomputed independently of lenet_compare.report.stats


def table_after(md: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading`` (header and separator rows dropped)."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif rows:
            break
    return rows[2:]


def t_half(values, one_more: bool = False, level: float = 0.95) -> float:
    """Half-width of the t-interval of the mean at ``level`` (95 %); ``one_more``: of the prediction interval
    for one more value."""
    import numpy as np
    from scipy import stats as sps

    n = len(values)
    spread = np.sqrt(1 + 1 / n) if one_more else 1 / np.sqrt(n)
    return sps.t.ppf(0.5 + level / 2, n - 1) * np.std(values, ddof=1) * spread


@pytest.fixture
def saved_figures(monkeypatch) -> dict[str, object]:
    """Every figure the code saves during the test, by file name, to look into after the build."""
    from lenet_compare.report import figures

    saved = {}
    real_save = figures.save

    def save(fig, path):
        saved[Path(path).name] = fig
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save", save)
    return saved
