"""Give each concurrently running GPU job a GPU of its own.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but never tells a job
which GPU to use (an open upstream request since 2020), so N jobs would all land on GPU 0.
Here each job claims a device before it imports a framework: an exclusive, non-blocking
``flock`` on a lock file named after the device, then ``CUDA_VISIBLE_DEVICES`` set to it. The
kernel releases a flock when its process exits or is killed, so a job that dies frees its GPU
with no clean-up. The same code serves DVC (one stage at a time, or parallel `dvc queue`
workers) and a cluster (Slurm already narrows CUDA_VISIBLE_DEVICES; the lock is then per GPU).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lenet_compare.train.devices import visible_gpu_count

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "LENET_COMPARE_GPU_LOCK_DIR"


def default_lock_dir() -> Path:
    """One folder per user and machine, shared by every job that could pick the same GPU."""
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"lenet-compare-gpus-{os.getuid()}")


def visible_device_ids() -> list[str]:
    """The ids CUDA would show this process, as CUDA_VISIBLE_DEVICES entries ("0", "GPU-uuid", ...)."""
    count = visible_gpu_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    return [entry.strip() for entry in listed.split(",")][:count]


@dataclass
class GpuClaim:
    """A claimed device; the claim lasts as long as this object's file descriptor is open."""

    device_id: str
    lock_path: Path
    _fd: int = field(repr=False)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # for people wondering who holds it
    return fd


def claim_gpu(
    device_ids: list[str],
    lock_dir: Path | None = None,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
) -> GpuClaim:
    """Claim the first free device of ``device_ids``, waiting while all are taken.

    Waiting happens only when more GPU jobs run than there are GPUs (e.g. `--resources gpu`
    set higher than the GPU count); then jobs take turns instead of sharing a device.
    """
    if not device_ids:
        raise ValueError("no GPU to claim")
    lock_dir = lock_dir or default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    announced = False
    while True:
        for device_id in device_ids:
            path = lock_dir / f"gpu-{device_id}.lock"
            fd = _try_lock(path)
            if fd is not None:
                return GpuClaim(device_id, path, fd)
        if timeout is not None and time.monotonic() - started >= timeout:
            raise TimeoutError(f"every GPU in {device_ids} stayed busy for {timeout} s")
        if not announced:
            log.info("all %d GPU(s) are busy with other jobs; waiting for one to free up", len(device_ids))
            announced = True
        time.sleep(poll_seconds)


def claim_gpu_for_this_process(lock_dir: Path | None = None) -> GpuClaim:
    """Claim a visible GPU and make it this process's only CUDA device.

    Call before importing torch or tensorflow: both read CUDA_VISIBLE_DEVICES once, at start.
    """
    claim = claim_gpu(visible_device_ids(), lock_dir)
    os.environ["CUDA_VISIBLE_DEVICES"] = claim.device_id
    log.info("claimed GPU %s (lock %s)", claim.device_id, claim.lock_path)
    return claim
