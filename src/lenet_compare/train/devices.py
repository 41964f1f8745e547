"""Which device a training job will use, decided without importing a framework.

Snakemake asks this at parse time (the train rule requests ``gpu=1`` only when the job will
use a GPU), and the train step asks it first, so ``train.device: cuda`` on a machine without a
GPU fails at once, before a framework is even imported.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from lenet_compare.core.errors import PipelineError

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")
DEVICES = ("auto", "cpu", "cuda")


def cpu_name() -> str:
    """The CPU model (for run records), e.g. "AMD EPYC 9B14"; "cpu" when it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def physical_gpu_count() -> int:
    """NVIDIA GPUs the driver knows: /proc/driver/nvidia/gpus, else `nvidia-smi -L`, else 0."""
    try:
        return sum(1 for _ in NVIDIA_PROC.iterdir())
    except OSError:
        pass
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return 0
    try:
        listing = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if listing.returncode != 0:
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def visible_gpu_count() -> int:
    """GPUs this process may use: the physical ones, limited by CUDA_VISIBLE_DEVICES when set.

    CUDA reads CUDA_VISIBLE_DEVICES up to its first invalid entry, so "" and "-1" hide all GPUs.
    """
    physical = physical_gpu_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return physical
    visible = 0
    for entry in listed.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-") or not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        visible += 1
    return min(visible, physical)


def uses_gpu(device: str) -> bool:
    """Whether a job with ``train.device = device`` will run on a GPU (cuda: it must)."""
    if device not in DEVICES:
        raise PipelineError(f"train.device = {device!r}; allowed: {', '.join(DEVICES)}")
    return device == "cuda" or (device == "auto" and visible_gpu_count() > 0)


def resolve_device(device: str) -> str:
    """The device a job with ``train.device = device`` must train on: "cuda" or "cpu".

    Decided here, from the driver's view, and never by the framework: a framework that cannot
    see the GPU this job was scheduled on must stop (gpu_not_seen), not fall back to the CPU.
    """
    return "cuda" if uses_gpu(device) else "cpu"


def gpu_not_seen(framework: str, sees: str, device: str) -> PipelineError:
    """The error for a job that will use a GPU whose framework sees none.

    ``sees`` is the framework's own account (backend.gpu_view()). Silently training on the CPU
    instead would compare one framework on a GPU with the other on a CPU: the article's mistake.
    """
    if device == "cuda":
        why = "train.device is 'cuda'"
    else:
        why = f"train.device is 'auto' and the driver shows {visible_gpu_count()} GPU(s) to this job"
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    return PipelineError(
        f"{framework} sees no GPU, but this job must use one ({why}). {framework} reports: {sees}. "
        f"Fix one of: the NVIDIA driver (nvidia-smi must work on this node and {framework} must load "
        "its CUDA libraries: `make setup` installs them, docs/slurm-and-gpus.md); CUDA_VISIBLE_DEVICES "
        f"(now {listed!r}); or set train.device: cpu in params.yaml to train on the CPU. Nothing was written."
    )


def require_gpu_if_asked(device: str) -> None:
    """Stop with a clear message when ``train.device: cuda`` but no GPU is visible."""
    if device == "cuda" and visible_gpu_count() == 0:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = (
            f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU"
            if hidden is not None and physical_gpu_count() > 0
            else "no NVIDIA GPU is visible (no /proc/driver/nvidia/gpus, no `nvidia-smi -L` output)"
        )
        raise PipelineError(
            f"train.device is 'cuda' but {why}; set train.device to 'auto' or 'cpu' in params.yaml, "
            "or run on a machine with a GPU"
        )
