"""Starting JAX in a job's process: its platform, XLA flags and CPU threads, and whether it sees a GPU.

What JAX fixes once per process, and when. Importing jax (and flax, optax) starts nothing; JAX
starts its backend (XLA's client for the CPU or the GPU) at its first use, and reads then, once
for the process: its platform (``jax_platforms``), ``XLA_FLAGS``, and the size of the CPU
client's thread pools (``PJRT_NPROC``, read by XLA's ``DefaultThreadPoolSize``: the intra-op
Eigen pool that also runs independent ops side by side, and the client's dispatch pool).
``configure`` sets all three from the params and then starts JAX; a second ``configure`` in the
same process may only ask for what is already set (an error otherwise). Nothing before it starts
JAX: ``sees_gpu`` asks a fresh Python process (see there), because job.start_framework asks it
before ``configure``, and a GPU job's XLA flags depend on train.deterministic.


How the params that start JAX map onto it:

- ``threads``: ``PJRT_NPROC``: XLA's CPU pools get train.threads threads.
  ``thread_counts`` reports the threads XLA actually started (its "tf_XLAEigen" threads).
- ``deterministic``: on a CPU, XLA's kernels are deterministic for a fixed thread count: a run
  repeats bit for bit at 1 and at 2 threads (tests/test_jax_backend.py; measured on a 2-core
  Xeon: every weight after 2 epochs, 6 runs per count). jax-ml/jax#39741 reports one compiled
  module that rounds differently from call to call with 2+ threads on another CPU; the test
  would show that here, and train.threads: 1 avoids it. The thread count itself changes the
  last bits, as in the other frameworks. On a GPU, true adds ``--xla_gpu_deterministic_ops=true``
  to ``XLA_FLAGS`` (no autotuning, deterministic scatter and reductions); false adds nothing.
- ``device``: "cuda" sets ``jax_platforms`` to "cuda" and "cpu" to "cpu" before JAX starts, so a
  GPU job whose JAX cannot start its GPU backend fails instead of running on the CPU (JAX falls
  back silently only when no platform is named). The GPU is never preallocated
  (``XLA_PYTHON_CLIENT_PREALLOCATE=false``): several jobs may share it.

The GPU settings here follow JAX's and XLA's documentation; no GPU has run this backend yet.
"""

from __future__ import annotations

import os

# Read when JAX starts its CUDA backend: allocate on demand, so that jobs can share a GPU.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import glob
import json
import subprocess
import sys
from importlib import metadata

import jax
from jax._src import xla_bridge  # backends_are_initialized: whether JAX has started

from lenet_compare.core.errors import PipelineError
from lenet_compare.train.devices import cpu_name

PLATFORMS = {"cuda": "cuda", "cpu": "cpu"}  # devices.resolve_device's answer -> jax_platforms
GPU_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops=true"
XLA_THREAD_NAME = "tf_XLAEigen"  # XLA's intra-op pool (xla/pjrt/cpu/cpu_client.cc, "XLAEigen")


_started: dict | None = None  # what configure started JAX with, in this process


def started() -> bool:
    """Whether JAX has started its backend in this process (then platform, flags and threads are fixed)."""
    return xla_bridge.backends_are_initialized()


def xla_threads() -> int | None:
    """The threads of XLA's intra-op pool in this process, counted by name (Linux); None elsewhere."""
    names = glob.glob("/proc/self/task/*/comm")
    if not names:
        return None
    count = 0
    for path in names:
        try:
            with open(path, encoding="utf-8") as f:
                count += f.read().strip() == XLA_THREAD_NAME
        except OSError:  # the thread ended meanwhile
            pass
    return count


def set_threads(threads: int) -> None:
    """XLA's CPU thread pools (intra-op and the client's dispatch pool), read once when JAX starts.

    Set explicitly, not left to XLA's default (one per core the process may use): the thread
    count changes how XLA splits a sum, and so the last bits of its result.
    """
    if started():
        have = _started["threads"] if _started else None
        if have != threads:
            raise PipelineError(
                f"JAX already started in this process with {have or 'its default'} CPU threads; it sizes "
                f"its thread pools once, so it cannot run with train.threads = {threads} here"
            )
        return
    os.environ["PJRT_NPROC"] = str(threads)


def thread_counts() -> dict:
    """XLA's CPU threads: its intra-op pool as counted, and the client's pool (same size, PJRT_NPROC)."""
    if not started() or jax.default_backend() != "cpu":
        return {"intra_op": None, "inter_op": None}
    intra = xla_threads()
    nproc = os.environ.get("PJRT_NPROC")
    inter = int(nproc) if nproc and nproc.isdigit() else len(os.sched_getaffinity(0))
    return {"intra_op": intra, "inter_op": inter}


def _xla_flags(device: str, deterministic: bool) -> str:
    """XLA_FLAGS: the environment's own, then this job's."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if device == "cuda" and deterministic and GPU_DETERMINISM_FLAG not in flags:
        flags.append(GPU_DETERMINISM_FLAG)
    return " ".join(flags)


def start(device: str, deterministic: bool, threads: int | None) -> None:
    """Set JAX's platform, XLA flags and CPU threads, then start it; or check that the JAX already
    started in this process runs as asked (PipelineError otherwise)."""
    platform = PLATFORMS[device]
    wanted = {"platform": platform, "gpu_deterministic": device == "cuda" and deterministic, "threads": threads}
    global _started
    if started():
        if _started is None:
            raise PipelineError(
                "JAX was started in this process before lenet_compare configured it; its platform, XLA "
                "flags and threads are fixed when it starts"
            )
        if threads is not None:
            set_threads(threads)
        if (_started["platform"], _started["gpu_deterministic"]) != (platform, wanted["gpu_deterministic"]):
            raise PipelineError(f"JAX already started in this process as {_started}; it cannot also run as {wanted}")
        return
    if threads is not None:
        set_threads(threads)
    os.environ["XLA_FLAGS"] = _xla_flags(device, deterministic)
    os.environ["JAX_PLATFORMS"] = platform
    jax.config.update("jax_platforms", platform)
    try:
        devices = jax.devices()
    except Exception as e:  # JAX names the platform it could not start; never falls back here
        seen = f" {gpu_view()}" if device == "cuda" else ""
        raise PipelineError(f"JAX could not start its {platform} backend: {type(e).__name__}: {e}.{seen}") from e
    if device == "cuda" and devices[0].platform != "gpu":
        raise PipelineError(f"JAX started on {devices[0].platform}, not on the GPU this job must use")
    _started = {**wanted, "threads": threads}


# What a fresh process with JAX_PLATFORMS=cuda sees: a JSON line, the GPUs' names or the error.
_GPU_PROBE = """
import glob, json, sys
try:
    import jax
    gpus = jax.devices("cuda")
    print(json.dumps({"gpus": [d.device_kind for d in gpus]}))
except BaseException as e:
    why = f"{type(e).__name__}: {e}".strip(": ")
    if not glob.glob("/dev/nvidia[0-9]*") and not glob.glob("/dev/nvidiactl"):
        why += " (no /dev/nvidia* device files: JAX starts its CUDA backend only where they exist)"
    print(json.dumps({"error": why}))
"""
_gpu_probe: dict | None = None


def _probe_gpu() -> dict:
    """jax.devices("cuda") in a fresh Python process with JAX_PLATFORMS=cuda (a few seconds)."""
    global _gpu_probe
    if _gpu_probe is None:
        env = {**os.environ, "JAX_PLATFORMS": "cuda", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
        try:
            done = subprocess.run(
                [sys.executable, "-c", _GPU_PROBE], env=env, capture_output=True, text=True, timeout=300
            )
            lines = done.stdout.strip().splitlines()
            _gpu_probe = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-500:]}
        except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            _gpu_probe = {"error": f"the probe process failed: {type(e).__name__}: {e}"}
    return _gpu_probe


def sees_gpu() -> bool:
    """Whether JAX can start its CUDA backend and finds a GPU there.

    Asked of a fresh process: in this one, JAX must not start before ``configure`` has set its
    platform, XLA flags and threads from the params (job.start_framework asks this first). Once
    this process has started JAX, its own devices answer.
    """
    if started():
        return jax.default_backend() == "gpu"
    return bool(_probe_gpu().get("gpus"))


def _plugin_version() -> str:
    try:
        return metadata.version("jax-cuda12-plugin")
    except metadata.PackageNotFoundError:
        return "not installed"


def gpu_view() -> str:
    """What JAX sees, for the error of a GPU job it cannot run (devices.gpu_not_seen)."""
    if started():
        seen = f"jax.devices() = {jax.devices()}"
    else:
        probe = _probe_gpu()
        seen = f"jax.devices('cuda') with JAX_PLATFORMS=cuda gives {probe.get('gpus') or probe.get('error')}"
    return f"{seen} (jax {jax.__version__}, jaxlib {metadata.version('jaxlib')}, jax-cuda12-plugin {_plugin_version()})"


def configure(device: str, deterministic: bool, tf32: bool, seed: int, threads: int | None = None) -> tuple[str, str]:
    """Set JAX's platform, XLA flags, threads (when given) and matmul precision, then start it;
    returns (device, the device's name).

    ``device`` is "cuda" or "cpu", decided by devices.resolve_device. ``seed`` sets nothing here:
    JAX has no global generator; the Trainer draws native initial weights from ``nnx.Rngs(seed)``.
    """
    start(device, deterministic, threads)
    # Precision of float32 matmuls and convolutions on a GPU (TF32 or not); a CPU ignores it.
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    if device == "cuda":
        return "cuda", jax.devices()[0].device_kind
    return "cpu", cpu_name()
