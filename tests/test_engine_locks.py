"""Two runs of one engine in one workspace at once: the second stops with the engine's lock
message, and the first finishes with correct outputs (real, tiny runs).

Snakemake locks the outputs (and inputs) of its whole DAG in .snakemake/locks/ before it runs
anything ("Directory cannot be locked"). DVC locks the outputs and dependencies of each stage
as the stage starts (.dvc/tmp/rwlock); the second run stops at the first stage the other one
holds, naming its PID ("... is busy, it is being blocked by: (PID n) ...").

The overlap does not depend on how fast the machine is: the first run's training step waits
at a gate (a `python` first on its PATH) until the second run has tried and ended, so the
first is always mid-run, holding its locks, when the second starts.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import env_with_venv, make_workspace, run, tiny_params

pytestmark = pytest.mark.slow

# One PyTorch training job and what it needs.
HISTORY = "reports/runs/torch/seed0/history.csv"
DVC_STAGE = "train@torch-0"
# Guards against a hang, not speed targets: far beyond what any step here takes.
HANG_SECONDS = 900


class Gate:
    """A `python` to put first on the first run's PATH: the training step waits at it until
    ``open()``; every other command goes straight to the venv's python."""

    def __init__(self, folder: Path):
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True)
        self.reached, self.opened = folder / "reached", folder / "open"
        shim = self.bin / "python"
        reached, opened = shlex.quote(str(self.reached)), shlex.quote(str(self.opened))
        python = shlex.quote(str(Path(sys.executable).parent / "python"))
        shim.write_text(
            "#!/bin/sh\n"
            'if [ "$1" = workflow/scripts/train.py ]; then\n'
            f"    touch {reached}\n"
            "    i=0\n"
            f"    while [ ! -e {opened} ] && [ $i -lt {HANG_SECONDS * 10} ]; do sleep 0.1; i=$((i + 1)); done\n"
            "fi\n"
            f'exec {python} "$@"\n'
        )
        shim.chmod(0o755)

    def open(self) -> None:
        self.opened.touch()


def start(cmd: list[str], cwd: Path, log: Path, gate: Gate) -> subprocess.Popen:
    env = env_with_venv(path_first=gate.bin)
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def wait_until(condition, first: subprocess.Popen, log: Path, what: str, timeout: float = HANG_SECONDS) -> None:
    """Poll until ``condition()``; fail if the first run ends (or hangs) before."""
    deadline = time.monotonic() + timeout
    while not condition():
        if first.poll() is not None:
            pytest.fail(f"the first run ended (exit {first.returncode}) before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s:\n{log.read_text()}")
        time.sleep(0.2)


def finish(first: subprocess.Popen, log: Path) -> str:
    try:
        first.wait(timeout=HANG_SECONDS)
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


def second_while_first_trains(cmd: list[str], workspace: Path, tmp_path: Path, while_held=None):
    """Start ``cmd``, hold it in its training step, run ``cmd`` again meanwhile, then let the
    first finish. The first run's process id and the second run's result; fails unless the two
    really overlapped and the second one failed."""
    log, gate = tmp_path / "first.log", Gate(tmp_path / "gate")
    first = start(cmd, workspace, log, gate)
    try:
        wait_until(gate.reached.exists, first, log, "the training step")
        if while_held is not None:
            while_held()
        second = run(cmd, workspace, check=False, timeout=HANG_SECONDS)
        still_running = first.poll() is None
    finally:
        gate.open()
        finish(first, log)
    assert still_running, "the first run ended before the second one had tried: no overlap tested"
    assert second.returncode != 0, second.stdout + second.stderr
    return first.pid, second


def test_a_second_snakemake_stops_while_the_first_runs(tiny_workspace, tmp_path):
    locks = tiny_workspace / ".snakemake" / "locks"

    def locks_held():
        assert locks.is_dir() and any(locks.iterdir()), "no lock held while the first run trains"

    _, second = second_while_first_trains(["snakemake", "--cores", "1", HISTORY], tiny_workspace, tmp_path, locks_held)
    output = second.stdout + second.stderr
    assert "Directory cannot be locked" in output, output

    assert_trained_one_epoch(tiny_workspace)
    assert not (locks.exists() and any(locks.iterdir())), "the first run left its locks behind"
    again = run(["snakemake", "--cores", "1", "-n", HISTORY], tiny_workspace)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_second_dvc_repro_stops_while_the_first_runs(tiny_workspace, tmp_path):
    first_pid, second = second_while_first_trains(["dvc", "repro", DVC_STAGE], tiny_workspace, tmp_path)
    output = second.stdout + second.stderr
    # DVC 3 locks each stage's outputs for the run that reproduces them (.dvc/tmp/rwlock) and
    # names the process that holds them; older DVC held one lock on the repo ("Unable to acquire lock").
    blocked = re.search(rf"is busy, it is being blocked by:\s+\(PID {first_pid}\)", output)
    assert blocked or "Unable to acquire lock" in output, output

    # The first run held the training stage's lock (it waited inside it) and had finished the
    # stages before it: the second stopped there. What must hold: the first run succeeded and
    # dvc.lock records every stage of the target, up to date.
    assert_trained_one_epoch(tiny_workspace)
    status = run(["dvc", "status", "--with-deps", DVC_STAGE], tiny_workspace)
    assert "up to date" in status.stdout, status.stdout
    recorded = yaml.safe_load((tiny_workspace / "dvc.lock").read_text())["stages"]
    assert {"download", "prepare", "init@0", DVC_STAGE} <= set(recorded), recorded.keys()
