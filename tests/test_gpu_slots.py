"""GPU assignment without a GPU: concurrent jobs get distinct devices; a dead job frees its device."""

import os
import signal
import subprocess
import sys

import pytest
from conftest import run, tiny_params, write_params

from lenet_compare.train import gpu_slots
from lenet_compare.train.gpu_slots import claim_gpu

HOLDER = """
import logging, sys, time
from pathlib import Path
from lenet_compare.train.gpu_slots import claim_gpu
logging.basicConfig(level=logging.INFO, format="%(message)s")  # to stderr: says when it waits
claim = claim_gpu(sys.argv[1].split(","), Path(sys.argv[2]), poll_seconds=0.05)
print(claim.device_id, flush=True)
time.sleep(float(sys.argv[3]))
"""


def start_job(devices, lock_dir, hold_seconds=60):
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, ",".join(devices), str(lock_dir), str(hold_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_jobs_get_distinct_devices(tmp_path):
    jobs = [start_job(["0", "1", "2"], tmp_path) for _ in range(3)]
    try:
        claimed = [job.stdout.readline().strip() for job in jobs]
        assert sorted(claimed) == ["0", "1", "2"]
    finally:
        for job in jobs:
            job.kill()
            job.wait()


def test_a_killed_job_releases_its_device(tmp_path):
    first = start_job(["0", "1"], tmp_path)
    second = start_job(["0", "1"], tmp_path)
    try:
        first_device, second_device = first.stdout.readline().strip(), second.stdout.readline().strip()
        assert {first_device, second_device} == {"0", "1"}
        waiting = start_job(["0", "1"], tmp_path)
        # Both devices busy: it says it waits (after trying both) rather than doubling up. Read
        # from its log, not after a sleep: no guess at how long a machine takes to get there.
        said = waiting.stderr.readline()
        assert "are busy" in said and "waiting" in said, said
        assert waiting.poll() is None
        os.kill(first.pid, signal.SIGKILL)  # dies without any clean-up
        first.wait()
        assert waiting.stdout.readline().strip() == first_device
        waiting.kill()
        waiting.wait()
    finally:
        for job in (first, second):
            job.kill()
            job.wait()


def test_a_finished_job_releases_its_device(tmp_path):
    claim = claim_gpu(["7"], tmp_path)
    with pytest.raises(TimeoutError):
        claim_gpu(["7"], tmp_path, poll_seconds=0.05, timeout=0.2)
    claim.release()
    assert claim_gpu(["7"], tmp_path, timeout=0).device_id == "7"


def test_claiming_sets_cuda_visible_devices(tmp_path, monkeypatch):
    # Simulate a machine with 4 GPUs of which the scheduler gave this job "2,3".
    monkeypatch.setattr(gpu_slots, "visible_gpu_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    holder = claim_gpu(["2"], tmp_path)  # another job has GPU 2
    claim = gpu_slots.claim_gpu_for_this_process(tmp_path)
    assert claim.device_id == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    claim.release()
    holder.release()


def test_visible_ids_follow_the_environment(monkeypatch):
    monkeypatch.setattr(gpu_slots, "visible_gpu_count", lambda: 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_slots.visible_device_ids() == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa, GPU-bb,GPU-cc")
    assert gpu_slots.visible_device_ids() == ["GPU-aa", "GPU-bb", "GPU-cc"]


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
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Fake (UUID: GPU-a)'\necho 'GPU 1: Fake (UUID: GPU-b)'\n")
    smi.chmod(0o755)
    cmd = ["snakemake", "--cores", "16", "--resources", "gpu=2", "--dry-run", "--forceall"]
    jobs = train_jobs(run(cmd, workspace, path_first=fake_bin).stdout)
    assert jobs and all("threads: 3" in job and "gpu=1" in job for job in jobs)
