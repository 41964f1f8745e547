"""A job that will use a GPU trains on it or stops before writing anything, and says why.

This machine has no GPU; a fake `nvidia-smi` that lists one makes the driver's view (which
schedules the job on a GPU) disagree with the frameworks' (which see none): the situation of a
node whose framework lacks its CUDA libraries or whose driver is broken.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import env_with_venv, make_workspace, tiny_params

from lenet_compare.core.config import validate_params
from lenet_compare.core.errors import PipelineError

FAKE_SMI = """#!/bin/sh
# A fake nvidia-smi: one H200, as `nvidia-smi -L` lists it.
echo "GPU 0: NVIDIA H200 (UUID: GPU-3c1d6a38-0b0e-4b51-9d1e-2b8e0d1f5a77)"
"""


@pytest.fixture
def fake_gpu(tmp_path: Path) -> dict:
    """An environment whose PATH starts with a fake nvidia-smi, with GPU locks in tmp_path."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(0o755)
    env = env_with_venv(bin_dir)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    for name in [k for k in env if k.startswith("SLURM_")]:
        env.pop(name)
    env["LENET_COMPARE_GPU_LOCK_DIR"] = str(tmp_path / "gpu-locks")
    return env


@pytest.mark.slow
def test_a_gpu_job_whose_framework_sees_no_gpu_stops_for_every_framework(tmp_path: Path, fake_gpu: dict):
    """`snakemake --resources gpu=1` schedules every framework's training job on the (fake) GPU;
    each stops before training, names its framework, what it sees and the fixes, and writes
    nothing. JAX would fall back to the CPU silently unless its platform is named: it stops too."""
    params = tiny_params()
    ws = make_workspace(tmp_path / "ws", params)
    targets = [f"reports/runs/{fw}/seed0/run.json" for fw in params["frameworks"]]
    done = subprocess.run(
        ["snakemake", "--cores", "2", "--resources", "gpu=1", "--keep-going", *targets],
        cwd=ws,
        env=fake_gpu,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    expected = {
        "torch": ("PyTorch sees no GPU", "torch.cuda.is_available() is False"),
        "tensorflow": ("TensorFlow/Keras sees no GPU", "tf.config.list_physical_devices('GPU') = []"),
        "jax": ("JAX sees no GPU", "jax.devices('cuda') with JAX_PLATFORMS=cuda gives"),
    }
    assert set(params["frameworks"]) == set(expected)
    for fw, (headline, sees) in expected.items():
        log = (ws / f"logs/train/{fw}/seed0.log").read_text()
        assert headline in log, log[-3000:]
        assert sees in log
        assert "the driver shows 1 GPU(s)" in log  # train.device: auto, and the driver lists one
        assert "train.device: cpu" in log and "CUDA_VISIBLE_DEVICES" in log  # the fixes
        assert "epoch 1/" not in log and "Traceback" not in log
        assert not (ws / f"reports/runs/{fw}/seed0").exists()  # no run.json, history or live metrics
        assert not (ws / f"data/models/{fw}/seed0").exists()
        assert not list((ws / "data").glob(f"checkpoints/{fw}/seed0/*"))
    assert "jax-cuda12-plugin" in (ws / "logs/train/jax/seed0.log").read_text()  # JAX's fix


def test_the_same_params_on_a_machine_without_gpu_train_on_the_cpu():
    """Control for the test above: without the fake nvidia-smi, train.device: auto resolves to
    the CPU, so the stop above comes from the GPU the driver listed, not from the params."""
    from lenet_compare.train.devices import resolve_device

    env_has_gpu = Path("/proc/driver/nvidia/gpus").exists()
    assert resolve_device("auto") == ("cuda" if env_has_gpu else "cpu")
    assert resolve_device("cpu") == "cpu"


PREFLIGHT = """
import sys
from lenet_compare.core.errors import PipelineError
from lenet_compare.train.backends.torch import backend
try:
    backend.preflight(sys.argv[1], {"fast": sys.argv[2] == "1"})
except PipelineError as e:
    print("STOP", e)
else:
    print("OK")
"""


def preflight(device: str, fast: bool, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PREFLIGHT, device, str(int(fast))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return done.stdout.strip()


def test_the_fast_path_on_cuda_needs_a_c_compiler(tmp_path: Path):
    """Triton builds its kernels with $CC, gcc or clang; with none of them the PyTorch job
    stops before training, naming the fix and the param that avoids it."""
    python_only = tmp_path / "bin"
    python_only.mkdir()
    (python_only / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    env["PATH"] = str(python_only)  # no gcc, no clang
    stop = preflight("cuda", True, env)
    assert stop.startswith("STOP"), stop
    assert "C compiler" in stop and "train.fast: false" in stop and "apt-get install gcc" in stop
    # Only the fast path on a GPU compiles with Triton; the plain loop and the CPU need no C compiler.
    assert preflight("cuda", False, env) == "OK"
    assert preflight("cpu", True, env) == "OK"
    # A compiler named by CC, or found on PATH, is enough; CC naming a missing one is not.
    gcc = Path("/usr/bin/gcc")
    if gcc.exists():
        assert preflight("cuda", True, {**env, "CC": str(gcc)}) == "OK"
        (python_only / "gcc").symlink_to(gcc)
        assert preflight("cuda", True, env) == "OK"
    assert preflight("cuda", True, {**env, "CC": str(tmp_path / "no-such-cc")}).startswith("STOP")


def test_xla_needs_non_deterministic_training():
    """Keras silently drops jit_compile under TensorFlow's op determinism; the params say so first."""
    params = tiny_params(**{"train.xla": True, "train.deterministic": True})
    with pytest.raises(PipelineError, match=r"train.xla = true needs train.deterministic = false"):
        validate_params(params)
    validate_params(tiny_params(**{"train.xla": True, "train.deterministic": False}))


XLA_TRAINER = """
import json, sys
import numpy as np
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.train.backends.tensorflow import backend as b

params = json.loads(sys.argv[1])
b.configure("cpu", params["train"]["deterministic"], False, 0, threads=1)
trainer = b.Trainer(LeNetSpec.from_params(params["model"]), params["train"], 0, "cpu", None)
rng = np.random.default_rng(0)
trainer.set_training_data(rng.random((64, 28, 28), dtype=np.float32), rng.integers(0, 10, 64))
trainer.train_epoch(0)
print(json.dumps(trainer.details()))
"""


@pytest.mark.parametrize("xla", [False, True])
def test_train_xla_sets_keras_jit_compile_and_is_recorded(xla: bool):
    """train.xla is what Keras compiles with, whatever hardware is present, and the run's
    framework details record it (run.json's framework_details.jit_compile)."""
    params = tiny_params(**{"train.xla": xla, "train.deterministic": not xla})
    done = subprocess.run(
        [sys.executable, "-c", XLA_TRAINER, json.dumps(params)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    details = json.loads(done.stdout.strip().splitlines()[-1])
    assert details["jit_compile"] is xla
