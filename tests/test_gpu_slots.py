"""GPU claims without a GPU: fake `nvidia-smi` listings, Slurm's variables, holders we control.

Concurrent jobs get distinct GPUs, keyed by UUID; a dead job frees its GPU; a job that waits
says for what and gives up with a PipelineError; a job Slurm gave one GPU takes no lock.
"""

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run, tiny_params, write_params

from lenet_compare.core.errors import PipelineError
from lenet_compare.train import gpu_slots
from lenet_compare.train.gpu_slots import Gpu, claim_gpu_for_this_process, parse_listing, visible_gpus

UUID_A = "GPU-aaaaaaaa-1111-4111-8111-111111111111"
UUID_B = "GPU-bbbbbbbb-2222-4222-8222-222222222222"
UUID_C = "GPU-cccccccc-3333-4333-8333-333333333333"
MIG_1 = "MIG-11111111-aaaa-5aaa-9aaa-aaaaaaaaaaaa"
MIG_2 = "MIG-22222222-bbbb-5bbb-9bbb-bbbbbbbbbbbb"


def gpu_line(index: int, uuid: str) -> str:
    return f"GPU {index}: NVIDIA H200 (UUID: {uuid})"


MIG_LISTING = [
    "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaaaaaa-1111-4111-8111-111111111111)",
    f"  MIG 3g.20gb     Device  0: (UUID: {MIG_1})",
    f"  MIG 3g.20gb     Device  1: (UUID: {MIG_2})",
    gpu_line(1, UUID_B),
]

HOLDER = """
import logging, os, sys, time
from pathlib import Path
from lenet_compare.train.gpu_slots import claim_gpu_for_this_process
logging.basicConfig(level=logging.INFO, format="%(message)s")  # to stderr: says when it waits
claim = claim_gpu_for_this_process(float(sys.argv[2]), Path(sys.argv[1]))
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(600)
"""


@pytest.fixture(autouse=True)
def no_scheduler(monkeypatch):
    """No Slurm job and no CUDA_VISIBLE_DEVICES, restored afterwards even when a claim sets it."""
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        monkeypatch.setenv(name, "x")  # so that monkeypatch restores the variable's absence
        monkeypatch.delenv(name)


def fake_nvidia_smi(folder: Path, lines: list[str]) -> Path:
    """A folder holding an `nvidia-smi` that prints ``lines`` (for any arguments)."""
    folder.mkdir(parents=True, exist_ok=True)
    smi = folder / "nvidia-smi"
    smi.write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
    smi.chmod(0o755)
    return folder


@pytest.fixture
def gpus(tmp_path, monkeypatch):
    """Put a fake nvidia-smi listing these lines first on PATH."""

    def listing(*lines: str) -> None:
        folder = fake_nvidia_smi(tmp_path / f"bin{len(lines)}-{abs(hash(lines))}", list(lines))
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    return listing


def start_job(lock_dir: Path, cuda_visible_devices: str | None = None, wait_seconds: float = 600):
    """A job in a process of its own that claims a GPU, prints it and holds it."""
    env = dict(os.environ)
    if cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), str(wait_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop(*jobs):
    for job in jobs:
        job.kill()
        job.wait()


def claim_as_a_new_job(monkeypatch, lock_dir, cuda_visible_devices=None, wait_seconds=0.01):
    """Claim in this process as a fresh job would (CUDA_VISIBLE_DEVICES as its launcher set it)."""
    if cuda_visible_devices is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cuda_visible_devices)
    return claim_gpu_for_this_process(wait_seconds, lock_dir)


# --- nvidia-smi's listing and CUDA_VISIBLE_DEVICES ---------------------------------------------


def test_the_listing_gives_uuids_by_index_and_mig_instances_by_gpu():
    listing = parse_listing("\n".join([*MIG_LISTING, "No devices were found"]))
    assert listing.gpus == {0: UUID_A, 1: UUID_B}
    assert listing.migs == {UUID_A: [MIG_1, MIG_2]}
    assert listing.lookup("1") == UUID_B
    assert listing.lookup("GPU-bbbbbbbb") == UUID_B  # CUDA accepts a unique UUID prefix
    assert listing.lookup(MIG_2) == MIG_2
    assert listing.lookup("GPU-") is None  # ambiguous
    assert listing.lookup("7") is None


def test_visible_gpus_follow_cuda_visible_devices():
    listing = parse_listing("\n".join(gpu_line(i, u) for i, u in enumerate([UUID_A, UUID_B, UUID_C])))
    assert visible_gpus(listing, None) == [Gpu("0", UUID_A), Gpu("1", UUID_B), Gpu("2", UUID_C)]
    assert visible_gpus(listing, "2,GPU-aaaa") == [Gpu("2", UUID_C), Gpu("GPU-aaaa", UUID_A)]
    assert visible_gpus(listing, "1,7,0") == [Gpu("1", UUID_B)]  # CUDA stops at an index it lacks
    assert visible_gpus(listing, "-1") == []
    assert visible_gpus(listing, "") == []


def test_a_gpu_in_mig_mode_is_claimed_by_instance():
    listing = parse_listing("\n".join(MIG_LISTING))
    assert visible_gpus(listing, None) == [Gpu(MIG_1, MIG_1), Gpu(MIG_2, MIG_2), Gpu("1", UUID_B)]


# --- locks keyed by UUID -----------------------------------------------------------------------


def test_concurrent_jobs_get_distinct_gpus(tmp_path, gpus):
    gpus(gpu_line(0, UUID_A), gpu_line(1, UUID_B), gpu_line(2, UUID_C))
    jobs = [start_job(tmp_path / "locks") for _ in range(3)]
    try:
        claimed = [job.stdout.readline().strip() for job in jobs]
        assert sorted(claimed) == [UUID_A, UUID_B, UUID_C]
        assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == [f"gpu-{u}.lock" for u in sorted(claimed)]
    finally:
        stop(*jobs)


def test_one_gpu_under_different_names_has_one_lock(tmp_path, gpus, monkeypatch):
    """Index 1 in one job, its UUID in another: the second waits for the first, not beside it."""
    gpus(gpu_line(0, UUID_A), gpu_line(1, UUID_B))
    holder = start_job(tmp_path, cuda_visible_devices="1")
    try:
        assert holder.stdout.readline().strip() == UUID_B
        with pytest.raises(PipelineError, match=rf"GPU {UUID_B} held by PID {holder.pid}\b"):
            claim_as_a_new_job(monkeypatch, tmp_path, UUID_B)
        with pytest.raises(PipelineError, match=rf"GPU 1 \({UUID_B}\) held by PID {holder.pid}\b"):
            claim_as_a_new_job(monkeypatch, tmp_path, "1,1")  # listed twice: still one GPU
        assert claim_as_a_new_job(monkeypatch, tmp_path, "0").device_id == UUID_A  # another GPU: free
    finally:
        stop(holder)


def test_jobs_that_see_different_gpus_as_gpu_0_do_not_share_a_lock(tmp_path, monkeypatch):
    """Each job's container (or cgroup) shows only its own GPU, as "GPU 0": the UUIDs differ."""
    first = fake_nvidia_smi(tmp_path / "node-view-a", [gpu_line(0, UUID_A)])
    second = fake_nvidia_smi(tmp_path / "node-view-b", [gpu_line(0, UUID_B)])
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{first}{os.pathsep}{path}")
    holder = start_job(tmp_path / "locks")
    try:
        assert holder.stdout.readline().strip() == UUID_A
        monkeypatch.setenv("PATH", f"{second}{os.pathsep}{path}")
        assert claim_as_a_new_job(monkeypatch, tmp_path / "locks").device_id == UUID_B
    finally:
        stop(holder)


def test_mig_instances_are_claimed_one_by_one(tmp_path, gpus, monkeypatch):
    gpus(*MIG_LISTING)
    claims = [claim_as_a_new_job(monkeypatch, tmp_path) for _ in range(3)]
    assert [c.device_id for c in claims] == [MIG_1, MIG_2, UUID_B]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == UUID_B
    with pytest.raises(PipelineError, match="no free GPU"):
        claim_as_a_new_job(monkeypatch, tmp_path, MIG_2)


def test_without_uuids_the_entries_are_the_keys(tmp_path, monkeypatch, caplog):
    """No nvidia-smi (nor its UUIDs): lock by CUDA_VISIBLE_DEVICES entry, and say what that risks."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(gpu_slots, "visible_gpu_count", lambda: 2)  # as /proc/driver/nvidia would say
    caplog.set_level(logging.INFO, logger=gpu_slots.__name__)
    assert [claim_as_a_new_job(monkeypatch, tmp_path).device_id for _ in range(2)] == ["0", "1"]
    assert "keyed by CUDA_VISIBLE_DEVICES entries" in caplog.text
    assert visible_gpus(None, f"{UUID_C},1") == [Gpu(UUID_C, UUID_C), Gpu("1")]


# --- waiting, giving up, and freeing ------------------------------------------------------------


def test_a_killed_job_releases_its_gpu(tmp_path, gpus):
    gpus(gpu_line(0, UUID_A), gpu_line(1, UUID_B))
    first, second = start_job(tmp_path), start_job(tmp_path)
    try:
        first_gpu, second_gpu = first.stdout.readline().strip(), second.stdout.readline().strip()
        assert {first_gpu, second_gpu} == {UUID_A, UUID_B}
        waiting = start_job(tmp_path)
        # Both GPUs busy: it says so, and whom it waits for, rather than doubling up. Read from its
        # log, not after a sleep: no guess at how long a machine takes to get there.
        said = waiting.stderr.readline()
        assert "every GPU is busy" in said and "scheduling.gpu_wait_seconds" in said, said
        assert f"PID {first.pid}" in said and f"PID {second.pid}" in said, said
        assert waiting.poll() is None
        os.kill(first.pid, signal.SIGKILL)  # dies without any clean-up
        first.wait()
        assert waiting.stdout.readline().strip() == first_gpu
        stop(waiting)
    finally:
        stop(first, second)


def test_a_job_that_waits_too_long_stops_and_says_why(tmp_path, gpus, monkeypatch, caplog):
    gpus(gpu_line(0, UUID_A))
    holder = start_job(tmp_path)
    caplog.set_level(logging.INFO, logger=gpu_slots.__name__)
    try:
        assert holder.stdout.readline().strip() == UUID_A
        with pytest.raises(PipelineError) as stopped:
            claim_as_a_new_job(monkeypatch, tmp_path, wait_seconds=0.2)
        message = str(stopped.value)
        assert f"GPU 0 ({UUID_A}) held by PID {holder.pid}" in message
        assert "after waiting 0 s" in message and "scheduling.gpu_wait_seconds" in message
        assert "(now 0.2 s)" in message
        assert f"held by PID {holder.pid}" in caplog.text and "waiting up to 0.2 s" in caplog.text
    finally:
        stop(holder)


def test_a_finished_job_releases_its_gpu(tmp_path, gpus, monkeypatch):
    gpus(gpu_line(0, UUID_A))
    claim = claim_as_a_new_job(monkeypatch, tmp_path)
    with pytest.raises(PipelineError, match=f"held by PID {os.getpid()}"):
        claim_as_a_new_job(monkeypatch, tmp_path)
    claim.release()
    assert claim_as_a_new_job(monkeypatch, tmp_path).device_id == UUID_A


# --- Slurm --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "slurm",
    [
        {"SLURM_STEP_GPUS": "3", "SLURM_JOB_GPUS": "3", "CUDA_VISIBLE_DEVICES": "0"},
        {"SLURM_JOB_GPUS": "1", "CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "0"},
    ],
    ids=["step-gpus", "job-gpus", "cuda-visible-devices"],
)
def test_a_slurm_job_with_its_own_gpu_takes_no_lock(tmp_path, gpus, monkeypatch, caplog, slurm):
    gpus(gpu_line(0, UUID_A), gpu_line(1, UUID_B))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO, logger=gpu_slots.__name__)
    assert claim_gpu_for_this_process(0.01, tmp_path / "locks") is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"  # as Slurm set it
    assert not (tmp_path / "locks").exists()
    name, value = next(iter(slurm.items()))
    assert f"Slurm assigned this job its GPU ({name}={value})" in caplog.text


def test_a_slurm_job_with_several_gpus_shares_them_by_lock(tmp_path, gpus, monkeypatch):
    """Snakemake run inside `salloc --gpus=2`: the jobs it starts share the allocation's GPUs."""
    gpus(gpu_line(0, UUID_A), gpu_line(1, UUID_B))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_GPUS", "0,1")
    claims = [claim_as_a_new_job(monkeypatch, tmp_path, "0,1") for _ in range(2)]
    assert [c.device_id for c in claims] == [UUID_A, UUID_B]


def test_one_gpu_outside_slurm_is_still_locked(tmp_path, gpus, monkeypatch):
    """CUDA_VISIBLE_DEVICES=0 set by hand (no SLURM_JOB_ID) assigns nothing: another job may use GPU 0."""
    gpus(gpu_line(0, UUID_A))
    claim = claim_as_a_new_job(monkeypatch, tmp_path, "0")
    assert claim is not None and claim.lock_path.name == f"gpu-{UUID_A}.lock"


# --- Snakemake's view ---------------------------------------------------------------------------


def train_jobs(dry_run_output: str) -> list[str]:
    return [block for block in dry_run_output.split("\n\n") if "rule train:" in block]


def with_threads(workspace, threads: int):
    """The workspace's params with train.threads set (Snakemake shows threads only above 1)."""
    write_params(workspace / "params.yaml", tiny_params(**{"train.threads": threads}))
    return workspace


@pytest.mark.skipif(os.path.isdir("/proc/driver/nvidia/gpus"), reason="a real GPU decides here")
def test_snakemake_gives_cpu_training_its_threads_and_no_gpu(workspace):
    with_threads(workspace, 3)
    out = run(["snakemake", "--cores", "4", "--resources", "gpu=2", "--dry-run", "--forceall"], workspace).stdout
    jobs = train_jobs(out)
    assert jobs and all("threads: 3" in job and "gpu=0" in job for job in jobs)


@pytest.mark.skipif(os.path.isdir("/proc/driver/nvidia/gpus"), reason="a real GPU decides here")
def test_snakemake_gives_gpu_training_one_gpu_and_its_threads(workspace, tmp_path, monkeypatch):
    """With GPUs visible (a fake nvidia-smi listing two), N jobs may run side by side."""
    with_threads(workspace, 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_bin = fake_nvidia_smi(tmp_path / "bin", [gpu_line(0, UUID_A), gpu_line(1, UUID_B)])
    cmd = ["snakemake", "--cores", "16", "--resources", "gpu=2", "--dry-run", "--forceall"]
    jobs = train_jobs(run(cmd, workspace, path_first=fake_bin).stdout)
    assert jobs and all("threads: 3" in job and "gpu=1" in job for job in jobs)
