"""The tiny pipeline through a real one-node Slurm cluster equals a local run of it.

The cluster comes from Debian's packages (tools/slurm/start-local-cluster.sh: munged, MariaDB,
slurmdbd, slurmctld, slurmd), the run from `snakemake --profile profiles/slurm`. This machine
has no GPU, so a second profile layered on top (written by ``cpu_profile`` below) sets the
training jobs' ``gpu`` resource to 0 and names the test cluster's account and partition, as
one would for a real cluster; everything else is profiles/slurm as it is.

Without a cluster (no Slurm packages and not root, or the daemons do not start) the test is
skipped locally and fails in CI (the CI variable set), so CI never skips it silently.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, make_workspace, run, tiny_params

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

START = REPO / "tools" / "slurm" / "start-local-cluster.sh"
# What start-local-cluster.sh creates.
ACCOUNT = "lenet"
PARTITION = "debug"
TRAINING_RULES = ("train", "ablation_train")
PREPARED = "data/prepared/fashion_mnist.npz"
# Result values compared between the two runs; timings differ and are left out.
RESULT_KEY = re.compile(r"accuracy|loss|correct")
TIMING_KEY = re.compile(r"seconds|per_second|latency|time")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(reason: str):
    if in_ci():
        pytest.fail(f"the Slurm integration test cannot run in CI: {reason}")
    pytest.skip(f"no local Slurm cluster: {reason} (run tools/slurm/start-local-cluster.sh as root)")


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    """Starts the one-node cluster (or finds it running); skips or fails when it cannot."""
    try:
        started = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        unavailable(f"{START.name} took more than 15 minutes")
    if started.returncode != 0:
        unavailable(f"{START.name} failed:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}")


def cpu_profile(workspace: Path, dest: Path) -> Path:
    """A profile for `--profile profiles/slurm --profile DEST`: no GPU, the test cluster's names.

    A later profile replaces a top-level key of an earlier one whole, so the keys changed here
    are copies of profiles/slurm's with the changes made.
    """
    slurm = yaml.safe_load((workspace / "profiles" / "slurm" / "config.yaml").read_text())
    set_resources = slurm["set-resources"]
    for rule in TRAINING_RULES:
        assert set_resources[rule]["gpu"] == 1, f"profiles/slurm: {rule} should request one GPU"
        set_resources[rule]["gpu"] = 0  # this machine has none
    overlay = {
        "set-resources": set_resources,
        "default-resources": {**slurm["default-resources"], "slurm_account": ACCOUNT, "slurm_partition": PARTITION},
        # Short jobs: look at them every few seconds, not after the profile's 20 s.
        "slurm-init-seconds-before-status-checks": 2,
    }
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return dest


def names_only_profile(dest: Path) -> Path:
    """A profile that only names the test cluster's account and partition: the GPUs stay requested."""
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    overlay = {
        "default-resources": {**slurm["default-resources"], "slurm_account": ACCOUNT, "slurm_partition": PARTITION}
    }
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return dest


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table (rule -> jobs), without `all` and the total."""
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match[1]] = int(match[2])
    counts.pop("total", None)
    counts.pop("all", None)
    return counts


def results(node, path: str = "") -> dict:
    """Every accuracy, loss or count of correct predictions in a JSON tree, by its path."""
    found = {}
    if isinstance(node, dict):
        for key, value in node.items():
            found.update(results(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.update(results(value, f"{path}/{i}"))
    elif RESULT_KEY.search(path) and not TIMING_KEY.search(path):
        found[path] = node
    return found


def compared_files(workspace: Path) -> list[Path]:
    """Every run's metrics and the ablation's per-run results, relative to the workspace."""
    reports = workspace / "reports"
    files = [*reports.glob("runs/*/seed*/metrics.json"), *reports.glob("ablation/runs/*/seed*/*.json")]
    for summary in ("metrics.json", "ablation.json"):
        if (reports / summary).exists():
            files.append(reports / summary)
    return sorted(p.relative_to(workspace) for p in files)


def slurm_jobs(run_id: str, since: datetime) -> pd.DataFrame:
    """The run's jobs as Slurm's accounting recorded them (the plugin names every job by the run ID)."""
    fields = ["JobIDRaw", "JobName%60", "Comment%200", "State", "AllocCPUS", "ReqMem", "Account", "Partition"]
    listing = run(
        [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            f"--starttime={since:%Y-%m-%dT%H:%M}",
            "--name",
            run_id,
            "--format",
            ",".join(fields),
        ],
        REPO,
    ).stdout
    names = [f.split("%")[0] for f in fields]
    rows = [line.split("|") for line in listing.splitlines() if line.strip()]
    jobs = pd.DataFrame(rows, columns=names)
    jobs["rule"] = jobs["Comment"].str.removeprefix("rule_").str.split("_wildcards_").str[0]
    return jobs


@pytest.mark.timeout(3600)
def test_pipeline_on_slurm_equals_a_local_run(slurm_cluster, tmp_path):
    # train.threads 2, not the default 1, which is also what Slurm allocates when asked for nothing.
    params = tiny_params(**{"train.epochs": 1, "train.threads": 2})
    on_slurm = make_workspace(tmp_path / "slurm", params)
    local = make_workspace(tmp_path / "local", params)
    profile = cpu_profile(on_slurm, tmp_path / "profile-no-gpu")

    since = datetime.now() - timedelta(minutes=5)
    slurm_run = run(["snakemake", "--profile", "profiles/slurm", "--profile", str(profile)], on_slurm, timeout=2400)
    slurm_log = slurm_run.stdout + slurm_run.stderr
    local_run = run(["snakemake", "--cores", "2"], local, timeout=2400)

    # The same jobs; the workflow's localrules (download needs the internet, the others take
    # seconds) ran on the submitting host, every other job is a Slurm job that completed.
    stats = job_stats(slurm_log)
    assert stats == job_stats(local_run.stdout + local_run.stderr)
    local_rules = set(re.findall(r"^localrule (\w+):", slurm_log, re.MULTILINE)) - {"all"}
    assert local_rules == {"download", "prepare", "init", "ablation", "report"}, local_rules
    run_id = re.search(r"SLURM run ID: (\S+)", slurm_log)[1]
    jobs = slurm_jobs(run_id, since)
    assert jobs["rule"].value_counts().to_dict() == {r: n for r, n in stats.items() if r not in local_rules}, jobs
    assert (jobs["State"] == "COMPLETED").all(), jobs
    assert (jobs["Account"] == ACCOUNT).all() and (jobs["Partition"] == PARTITION).all(), jobs
    # The profile's resources reached Slurm: training jobs have train.threads CPUs and 8 GB each.
    training = jobs[jobs["rule"] == "train"]
    cpus = str(params["train"]["threads"])
    assert (training["AllocCPUS"] == cpus).all() and (training["ReqMem"] == "8000M").all(), training
    assert set(training["Comment"]) == {
        f"rule_train_wildcards_{fw}_{seed}" for fw in params["frameworks"] for seed in params["seeds"]
    }

    # Identical results: CPU, train.deterministic, the same thread count (2) in both.
    assert (on_slurm / PREPARED).read_bytes() == (local / PREPARED).read_bytes()
    for framework in params["frameworks"]:
        for seed in params["seeds"]:
            history = f"reports/runs/{framework}/seed{seed}/history.csv"
            a, b = pd.read_csv(on_slurm / history), pd.read_csv(local / history)
            timings = [c for c in a.columns if c.endswith("_seconds")]
            assert timings, a.columns
            pd.testing.assert_frame_equal(a.drop(columns=timings), b.drop(columns=timings))
    files = compared_files(local)
    assert files == compared_files(on_slurm)
    assert any(str(f).endswith("metrics.json") for f in files)
    for rel in files:
        a = results(json.loads((on_slurm / rel).read_text()))
        b = results(json.loads((local / rel).read_text()))
        assert a, f"{rel}: nothing compared"
        assert a == b, rel

    # profiles/slurm as it is asks Slurm for one GPU per training job, which this cluster (no
    # GPU configured) refuses at submission: rerun one training job to see the request.
    gpu_run = run(
        [
            "snakemake",
            "--profile",
            "profiles/slurm",
            "--profile",
            str(names_only_profile(tmp_path / "profile-names")),
            "--verbose",
            "--forcerun",
            "train",
            "--allowed-rules",
            "train",
            "--",
            "reports/runs/torch/seed0/history.csv",
        ],
        on_slurm,
        check=False,
    )
    gpu_log = gpu_run.stdout + gpu_run.stderr
    sbatch = re.search(r"sbatch call: (sbatch .*--comment rule_train_wildcards_torch_0 .*)", gpu_log)
    assert sbatch, gpu_log
    # CPUs per job: train.threads, the threads the step sets itself (no set-threads in the profile).
    assert re.search(rf"-t 60 --mem 8000 --cpus-per-task={cpus} .*--gpus=1 ", sbatch[1]), sbatch[1]
    assert gpu_run.returncode != 0 and "Invalid generic resource (gres) specification" in gpu_log, gpu_log
