"""Give each concurrently running GPU job a GPU of its own.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but never tells a job
which GPU to use (an open upstream request since 2020), so N jobs would all land on GPU 0.
Here each job claims a device before it imports a framework, unless a scheduler already gave
it one:

- Slurm: a job with exactly one GPU of its own (``SLURM_JOB_ID`` with ``SLURM_STEP_GPUS`` or
  ``SLURM_JOB_GPUS`` naming one GPU, or with a one-entry ``CUDA_VISIBLE_DEVICES``) needs no lock:
  Slurm hands that GPU to no other job. A Slurm job with several GPUs (Snakemake run inside
  ``salloc --gpus=4``) shares them among the jobs it starts, so those claim as below.
- Otherwise: an exclusive, non-blocking ``flock`` on a lock file named after the GPU's UUID
  (from ``nvidia-smi -L``), then ``CUDA_VISIBLE_DEVICES`` set to that UUID. The UUID names the
  physical device (or MIG instance), so jobs that see one GPU under different indices share one
  lock, and jobs on different GPUs never do. The kernel releases a flock when its process exits
  or is killed, so a job that dies frees its GPU with no clean-up.

A job that finds every GPU taken waits, says for which GPUs and which processes, and gives up
after ``scheduling.gpu_wait_seconds`` with a PipelineError.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lenet_compare.core.errors import PipelineError
from lenet_compare.train.devices import visible_gpu_count

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "LENET_COMPARE_GPU_LOCK_DIR"
WAIT_PARAM = "scheduling.gpu_wait_seconds"
POLL_SECONDS = 1.0

# `nvidia-smi -L`: "GPU 0: NVIDIA H200 (UUID: GPU-5f2c...)", and under a GPU in MIG mode one line
# per instance: "  MIG 1g.18gb     Device  0: (UUID: MIG-1a2b...)".
GPU_LINE = re.compile(r"^GPU (\d+):.*\(UUID: (GPU-[^)\s]+)\)")
MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (MIG-[^)\s]+)\)")


def default_lock_dir() -> Path:
    """One folder per user and machine, shared by every job that could pick the same GPU.

    /tmp rather than $TMPDIR: Slurm and other launchers often set TMPDIR per job, which would
    give each job a lock folder of its own.
    """
    return Path(os.environ.get(LOCK_DIR_ENV) or f"/tmp/lenet-compare-gpus-{os.getuid()}")


# --- when the scheduler already chose -------------------------------------------------------


def scheduler_assignment(env: Mapping[str, str]) -> str | None:
    """How Slurm gave this job exactly one GPU, e.g. "SLURM_STEP_GPUS=3"; None when it did not."""
    if not env.get("SLURM_JOB_ID"):
        return None
    for name in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"):
        if env.get(name):
            single = len([entry for entry in env[name].split(",") if entry.strip()]) == 1
            return f"{name}={env[name]}" if single else None  # several: the jobs inside share them
    return None


# --- which GPUs this process sees, and their UUIDs ----------------------------------------------


@dataclass(frozen=True)
class Gpu:
    """A device this process may use: how it is named here, and its UUID when nvidia-smi says."""

    entry: str  # a CUDA_VISIBLE_DEVICES entry: "2", "GPU-5f2c...", "MIG-1a2b..."
    uuid: str | None = None

    @property
    def device_id(self) -> str:
        """The lock's name and this process's CUDA_VISIBLE_DEVICES: the UUID, unambiguous however
        CUDA orders its devices; the entry itself when no UUID is known."""
        return self.uuid or self.entry

    def __str__(self) -> str:
        return self.entry if self.uuid in (None, self.entry) else f"{self.entry} ({self.uuid})"


@dataclass(frozen=True)
class Listing:
    """``nvidia-smi -L`` parsed: GPU UUIDs by index, and the MIG instances of GPUs in MIG mode."""

    gpus: dict[int, str]
    migs: dict[str, list[str]]  # GPU UUID -> its MIG instances' UUIDs

    def lookup(self, entry: str) -> str | None:
        """The UUID a CUDA_VISIBLE_DEVICES entry names: an index, or a UUID or its unique prefix."""
        if entry.isdigit():
            return self.gpus.get(int(entry))
        known = [*self.gpus.values(), *(mig for migs in self.migs.values() for mig in migs)]
        matches = [uuid for uuid in known if uuid.startswith(entry)]
        return matches[0] if len(matches) == 1 else None


def parse_listing(text: str) -> Listing:
    gpus: dict[int, str] = {}
    migs: dict[str, list[str]] = {}
    parent = None
    for line in text.splitlines():
        if match := GPU_LINE.match(line):
            parent = match.group(2)
            gpus[int(match.group(1))] = parent
        elif (match := MIG_LINE.match(line)) and parent:
            migs.setdefault(parent, []).append(match.group(1))
    return Listing(gpus, migs)


def read_listing() -> Listing | None:
    """What ``nvidia-smi -L`` lists; None when it is missing, fails or lists no UUID."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return None
    try:
        done = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    listing = parse_listing(done.stdout) if done.returncode == 0 else None
    return listing if listing and listing.gpus else None


def valid_entries(listed: str) -> list[str]:
    """CUDA_VISIBLE_DEVICES entries as CUDA reads them: up to the first invalid one."""
    valid = []
    for entry in listed.split(","):
        entry = entry.strip()
        if not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        valid.append(entry)
    return valid


def visible_gpus(listing: Listing | None, listed: str | None) -> list[Gpu]:
    """The devices this process may claim, from CUDA_VISIBLE_DEVICES (``listed``) and the listing.

    Without CUDA_VISIBLE_DEVICES: every GPU, or for a GPU in MIG mode each of its instances
    (a CUDA process cannot use a MIG-mode GPU whole). Indices map to UUIDs through nvidia-smi's
    numbering (PCI bus order): what CUDA uses with CUDA_DEVICE_ORDER=PCI_BUS_ID and, on a node of
    identical GPUs, by default. Without a listing, the entries themselves are the lock keys.
    """
    if listing is None:
        count = visible_gpu_count()  # from /proc/driver/nvidia, capped by CUDA_VISIBLE_DEVICES
        names = valid_entries(listed)[:count] if listed is not None else [str(i) for i in range(count)]
        return [Gpu(name, name if name.startswith(("GPU-", "MIG-")) else None) for name in names]
    if listed is None:
        gpus = []
        for index, uuid in sorted(listing.gpus.items()):
            gpus += [Gpu(mig, mig) for mig in listing.migs.get(uuid, [])] or [Gpu(str(index), uuid)]
        return gpus
    gpus = []
    for entry in valid_entries(listed):
        found = listing.lookup(entry)
        if found is None and entry.isdigit():
            break  # an index the driver does not have: CUDA stops reading there too
        gpus.append(Gpu(entry, found or entry))
    return gpus


# --- locks ------------------------------------------------------------------------------------


@dataclass
class GpuClaim:
    """A claimed device; the claim lasts as long as this object's file descriptor is open."""

    gpu: Gpu
    lock_path: Path
    _fd: int = field(repr=False)

    @property
    def device_id(self) -> str:
        return self.gpu.device_id

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def lock_path(lock_dir: Path, gpu: Gpu) -> Path:
    return lock_dir / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu.device_id)}.lock"


def try_lock(path: Path) -> int | None:
    """An open descriptor holding ``path``'s exclusive flock; None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # so that a waiting job can say who holds it
    return fd


def holder(path: Path) -> str:
    """The PID written in a lock file ("?" while its holder has not written it yet)."""
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


def describe_holders(lock_dir: Path, gpus: list[Gpu]) -> str:
    return ", ".join(f"GPU {gpu} held by PID {holder(lock_path(lock_dir, gpu))}" for gpu in gpus)


def claim_gpu(
    gpus: list[Gpu], wait_seconds: float, lock_dir: Path | None = None, poll_seconds: float = POLL_SECONDS
) -> GpuClaim:
    """Claim the first free device of ``gpus``, waiting up to ``wait_seconds`` while all are taken.

    Waiting happens only when more GPU jobs run than there are GPUs (e.g. `--resources gpu` set
    higher than the GPU count, or GPUs used by other work); then jobs take turns, not devices.
    """
    gpus = list({gpu.device_id: gpu for gpu in gpus}.values())  # one GPU named twice: one lock
    if not gpus:
        raise PipelineError("no GPU to claim: none is visible to this process")
    lock_dir = lock_dir or default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    said = ""
    while True:
        for gpu in gpus:
            fd = try_lock(lock_path(lock_dir, gpu))
            if fd is not None:
                return GpuClaim(gpu, lock_path(lock_dir, gpu), fd)
        waited = time.monotonic() - started
        holders = describe_holders(lock_dir, gpus)
        if waited >= wait_seconds:
            raise PipelineError(
                f"no free GPU after waiting {waited:.0f} s: {holders}. Let those jobs finish, run fewer "
                f"GPU jobs at once (snakemake --resources gpu=N), or wait longer: {WAIT_PARAM} in "
                f"params.yaml (now {wait_seconds:g} s)"
            )
        if holders != said:  # once, and again whenever other jobs take over
            log.info("every GPU is busy (%s); waiting up to %g s (%s)", holders, wait_seconds, WAIT_PARAM)
            said = holders
        time.sleep(min(poll_seconds, max(wait_seconds - waited, 0)))


def claim_gpu_for_this_process(wait_seconds: float, lock_dir: Path | None = None) -> GpuClaim | None:
    """Make one GPU this process's only CUDA device; None when Slurm already gave it one.

    Call before importing torch or tensorflow: both read CUDA_VISIBLE_DEVICES once, at start.
    """
    assigned = scheduler_assignment(os.environ)
    if assigned is not None:
        log.info("Slurm assigned this job its GPU (%s); no lock needed", assigned)
        return None
    listing = read_listing()
    if listing is None:
        log.warning(
            "nvidia-smi lists no GPU UUIDs; GPU locks are keyed by CUDA_VISIBLE_DEVICES entries, so jobs "
            "that number one GPU differently could share it"
        )
    claim = claim_gpu(visible_gpus(listing, os.environ.get("CUDA_VISIBLE_DEVICES")), wait_seconds, lock_dir)
    os.environ["CUDA_VISIBLE_DEVICES"] = claim.device_id
    log.info("claimed GPU %s (lock %s)", claim.gpu, claim.lock_path)
    return claim
