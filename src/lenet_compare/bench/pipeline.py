"""The pipeline's own cost: no-op overhead of both engines, and wall time against the number of seeds.

Both run in temporary copies of the repository (its tracked and untracked, not ignored files,
like the tests' workspaces), with a tiny params.yaml whose DAG has the default's shape: the
measured overhead is the engines' (parsing, DAG building, checking files), which depends on
the number of jobs, not on how many images a job trains on.

- No-op overhead: the tiny pipeline runs once with ``dvc repro``; then, in turns, a no-op
  ``snakemake --cores 2``, ``snakemake -n``, ``dvc repro`` and ``dvc status``, each timed as a
  whole command (interpreter start-up included, as a user waits for it). Each no-op is checked
  to have done nothing.
- Seeds scaling: for each number of seeds N, a fresh copy runs the whole default target from
  scratch with ``snakemake --cores 2`` (download from the local raw files included).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from lenet_compare.core import cli
from lenet_compare.core.errors import PipelineError

NOOP_COMMANDS = {
    "snakemake": (["snakemake", "--cores", "2"], "Nothing to be done"),
    "snakemake_dry_run": (["snakemake", "--cores", "2", "-n"], "Nothing to be done"),
    "dvc_repro": (["dvc", "repro"], "Data and pipelines are up to date"),
    "dvc_status": (["dvc", "status"], "Data and pipelines are up to date"),
}
SEED_COUNTS = (1, 2, 4, 8)
CORES = 2
# The benchmark's own stage must not run inside its workspaces (DVC's `repro` runs every stage).
EXCLUDED_STAGES = ("benchmark",)
OUTER_DVC_VARIABLES = ("DVC_ROOT", "DVC_STAGE", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV")


def tiny_params(base: dict, raw_dir: Path, seeds: list[int], ablation_seeds: list[int] | None = None) -> dict:
    """``base`` shrunk to seconds per job: 3,000 training images (500 for validation), 1,000 test, 1 epoch."""
    params = copy.deepcopy(base)
    params["data"].update(sources=[str(Path(raw_dir).resolve())], limit_train=3000, val_size=500, limit_test=1000)
    params["train"]["epochs"] = 1
    params["seeds"] = list(seeds)
    if "ablation" in params:
        kept = [s for s in params["ablation"]["seeds"] if s in seeds]
        params["ablation"]["seeds"] = list(ablation_seeds if ablation_seeds is not None else kept or seeds[:1])
    return params


def environment() -> dict:
    """This interpreter's folder first on PATH: the steps' `python`, `snakemake` and `dvc`."""
    # Under `dvc repro` (or `dvc exp run`) these name the outer repo and stage, not the workspace's.
    env = {k: v for k, v in os.environ.items() if k not in OUTER_DVC_VARIABLES}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command; (wall seconds, result)."""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=environment(), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if check and result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise PipelineError(f"`{' '.join(cmd)}` failed in {cwd} with exit status {result.returncode}:\n{tail}")
    return seconds, result


def drop_excluded_stages(root: Path) -> None:
    """Remove the benchmark's own stage from every dvc.yaml under ``root`` (and files left empty)."""
    for dvc_yaml in root.rglob("dvc.yaml"):
        pipeline = yaml.safe_load(dvc_yaml.read_text()) or {}
        stages = pipeline.get("stages", {})
        if not any(stages.pop(name, None) is not None for name in EXCLUDED_STAGES):
            continue
        if stages or dvc_yaml.parent == root:
            dvc_yaml.write_text(yaml.safe_dump(pipeline, sort_keys=False))
        else:
            dvc_yaml.unlink()


def copy_checkout(repo: Path, dest: Path, leave_out: Callable[[str], bool] = lambda rel: False) -> Path:
    """Copy the checkout's tracked and untracked, not ignored files, as they are in its working tree, to ``dest``.

    ``leave_out`` gets each file's path relative to ``repo`` and says whether to skip it. The
    benchmark's workspaces and the tests' (tests/conftest.py) are made this way.
    """
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        if leave_out(rel) or not (Path(repo) / rel).is_file():
            continue
        target = Path(dest) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(repo) / rel, target)
    return Path(dest)


def commit_all(folder: Path, message: str, author: str) -> None:
    """Make ``folder`` a git repository (if it is not one yet) and commit everything in it."""
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.name", author],
        ["git", "config", "user.email", f"{author}@localhost"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", message],
    ):
        run(cmd, folder)


def make_workspace(repo: Path, dest: Path, params: dict) -> Path:
    """A git repo at ``dest`` holding the checkout's files (not reports/ nor dvc.lock) and ``params``."""
    # reports/ and dvc.lock belong to the committed full run; Snakemake would take them as up to date.
    copy_checkout(repo, dest, leave_out=lambda rel: rel.startswith("reports/") or Path(rel).name == "dvc.lock")
    drop_excluded_stages(dest)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(dest, "benchmark workspace", "benchmark")
    return dest


def noop_overhead(repo: Path, workdir: Path, base_params: dict, raw_dir: Path, repeats: int = 3) -> dict:
    """Median wall seconds of each no-op command, after one full tiny `dvc repro`."""
    params = tiny_params(base_params, raw_dir, seeds=base_params["seeds"])
    ws = make_workspace(repo, workdir / "noop", params)
    cli.log.info("no-op overhead: running the tiny pipeline once with dvc repro in %s", ws)
    first_run, _ = run(["dvc", "repro"], ws)
    seconds: dict[str, list[float]] = {name: [] for name in NOOP_COMMANDS}
    for _ in range(repeats):
        for name, (cmd, nothing_done) in NOOP_COMMANDS.items():
            took, result = run(cmd, ws)
            output = result.stdout + result.stderr
            if nothing_done not in output or "Running stage" in output:
                raise PipelineError(f"`{' '.join(cmd)}` was expected to do nothing but said:\n{output[-3000:]}")
            seconds[name].append(took)
            cli.log.info("no-op %s: %.2f s", " ".join(cmd), took)
    return {
        "params": {
            "seeds": params["seeds"],
            "ablation_seeds": params.get("ablation", {}).get("seeds"),
            **{k: params["data"][k] for k in ("limit_train", "val_size", "limit_test")},
            "epochs": params["train"]["epochs"],
        },
        "first_run_command": "dvc repro",
        "first_run_seconds": first_run,
        "commands": {name: " ".join(cmd) for name, (cmd, _) in NOOP_COMMANDS.items()},
        "seconds": seconds,
        "median_seconds": {name: statistics.median(values) for name, values in seconds.items()},
    }


def jobs_done(output: str) -> int | None:
    """The job count from Snakemake's last "N of M steps (100%) done"."""
    counts = re.findall(r"(\d+) of (\d+) steps? \(100%\) done", output)
    return int(counts[-1][1]) if counts else None


def seeds_scaling(repo: Path, workdir: Path, base_params: dict, raw_dir: Path, counts=SEED_COUNTS) -> dict:
    """Wall seconds of a whole tiny pipeline run from scratch for each number of seeds."""
    rows = []
    for n in counts:
        params = tiny_params(base_params, raw_dir, seeds=list(range(n)), ablation_seeds=[0])
        ws = make_workspace(repo, workdir / f"seeds{n}", params)
        cmd = ["snakemake", "--cores", str(CORES)]
        took, result = run(cmd, ws)
        rows.append({"seeds": n, "seconds": took, "jobs": jobs_done(result.stdout + result.stderr)})
        cli.log.info("seeds scaling: %d seed(s), %s jobs: %.1f s", n, rows[-1]["jobs"], took)
        shutil.rmtree(ws, ignore_errors=True)  # its data/ and models: not needed any more
    return {
        "command": " ".join(cmd),
        "note": "the whole default target from scratch (local download included), a fresh copy per N",
        "params": {
            "ablation_seeds": [0] if "ablation" in base_params else None,
            "limit_train": 3000,
            "val_size": 500,
            "limit_test": 1000,
            "epochs": 1,
        },
        "runs": rows,
    }
