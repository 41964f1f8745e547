"""Two runs of one engine in one workspace at once: the second stops with the engine's lock
message, and the first finishes with correct outputs (real, tiny runs).

Snakemake locks the outputs (and inputs) of its whole DAG in .snakemake/locks/ before it runs
anything ("Directory cannot be locked"). DVC locks the outputs and dependencies of each stage
as the stage starts (.dvc/tmp/rwlock); the second run stops at the first stage the other one
holds, naming its PID ("... is busy, it is being blocked by: (PID n) ..."), possibly after
running a stage the first had not reached yet.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import env_with_venv, make_workspace, run, tiny_params

pytestmark = pytest.mark.slow

# One PyTorch training job and what it needs: about 20 s, long enough to try a second run.
HISTORY = "reports/runs/torch/seed0/history.csv"
DVC_STAGE = "train@torch-0"


def start(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env_with_venv(), stdout=out, stderr=subprocess.STDOUT, text=True)


def wait_until(condition, first: subprocess.Popen, log: Path, what: str, timeout: float = 120) -> None:
    """Poll until ``condition()``; fail if the first run ends or the time runs out before."""
    deadline = time.monotonic() + timeout
    while not condition():
        if first.poll() is not None:
            pytest.fail(f"the first run ended (exit {first.returncode}) before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s:\n{log.read_text()}")
        time.sleep(0.2)


def finish(first: subprocess.Popen, log: Path) -> str:
    try:
        first.wait(timeout=900)
    except subprocess.TimeoutExpired:
        first.kill()
        first.wait()
    output = log.read_text()
    assert first.returncode == 0, f"the first run failed (exit {first.returncode}):\n{output}"
    return output


def assert_trained_one_epoch(workspace: Path) -> None:
    history = pd.read_csv(workspace / HISTORY)
    assert list(history["epoch"]) == [1]
    assert history["train_loss"].notna().all()
    assert (workspace / "reports/runs/torch/seed0/run.json").stat().st_size > 0


@pytest.fixture
def tiny_workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "repo", tiny_params(**{"train.epochs": 1}))


def test_a_second_snakemake_stops_while_the_first_runs(tiny_workspace, tmp_path):
    log = tmp_path / "first.log"
    first = start(["snakemake", "--cores", "1", HISTORY], tiny_workspace, log)
    try:
        locks = tiny_workspace / ".snakemake" / "locks"
        wait_until(lambda: locks.is_dir() and any(locks.iterdir()), first, log, "Snakemake's locks")
        second = run(["snakemake", "--cores", "1", HISTORY], tiny_workspace, check=False, timeout=300)
        still_running = first.poll() is None
    finally:
        finish(first, log)
    output = second.stdout + second.stderr
    assert still_running, "the first run ended before the second one had tried: no overlap tested"
    assert second.returncode != 0, output
    assert "Directory cannot be locked" in output, output

    assert_trained_one_epoch(tiny_workspace)
    assert not (locks.exists() and any(locks.iterdir())), "the first run left its locks behind"
    again = run(["snakemake", "--cores", "1", "-n", HISTORY], tiny_workspace)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_second_dvc_repro_stops_while_the_first_runs(tiny_workspace, tmp_path):
    log = tmp_path / "first.log"
    first = start(["dvc", "repro", DVC_STAGE], tiny_workspace, log)
    try:
        wait_until(lambda: "Running stage" in log.read_text(), first, log, "a running stage")
        second = run(["dvc", "repro", DVC_STAGE], tiny_workspace, check=False, timeout=300)
        still_running = first.poll() is None
    finally:
        finish(first, log)
    output = second.stdout + second.stderr
    assert still_running, "the first run ended before the second one had tried: no overlap tested"
    assert second.returncode != 0, output
    # DVC 3 locks each stage's outputs for the run that reproduces them (.dvc/tmp/rwlock) and
    # names the process that holds them; older DVC held one lock on the repo ("Unable to acquire lock").
    blocked = re.search(rf"is busy, it is being blocked by:\s+\(PID {first.pid}\)", output)
    assert blocked or "Unable to acquire lock" in output, output

    # DVC locks stage by stage, as each one starts: before it stopped, the second run may have
    # run a stage the first had not reached yet (seen: init@0 while the first ran download; the
    # first then found it "cached" and went on). What must hold: no stage ran twice at once, the
    # first run succeeded and dvc.lock records every stage of the target, up to date.
    assert_trained_one_epoch(tiny_workspace)
    status = run(["dvc", "status", "--with-deps", DVC_STAGE], tiny_workspace)
    assert "up to date" in status.stdout, status.stdout
    recorded = yaml.safe_load((tiny_workspace / "dvc.lock").read_text())["stages"]
    assert {"download", "prepare", "init@0", DVC_STAGE} <= set(recorded), recorded.keys()
