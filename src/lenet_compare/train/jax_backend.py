"""JAX side, through Flax NNX and optax: LeNet-5 from the spec, one training epoch, prediction, saving.

Imports jax, flax and optax (and never torch or tensorflow): only the train and evaluate steps of
framework `jax` import this module.

What JAX fixes once per process, and when. Importing jax (and flax, optax) starts nothing; JAX
starts its backend (XLA's client for the CPU or the GPU) at its first use, and reads then, once
for the process: its platform (``jax_platforms``), ``XLA_FLAGS``, and the size of the CPU
client's thread pools (``PJRT_NPROC``, read by XLA's ``DefaultThreadPoolSize``: the intra-op
Eigen pool that also runs independent ops side by side, and the client's dispatch pool).
``configure`` sets all three from the params and then starts JAX; a second ``configure`` in the
same process may only ask for what is already set (an error otherwise). Nothing before it starts
JAX: ``sees_gpu`` asks a fresh Python process (see there), because job.start_framework asks it
before ``configure``, and a GPU job's XLA flags depend on train.deterministic.

How each ``train`` param maps onto JAX:

- ``threads``: ``PJRT_NPROC`` (above): XLA's CPU pools get train.threads threads.
  ``thread_counts`` reports the threads XLA actually started (its "tf_XLAEigen" threads).
- ``deterministic``: on a CPU, XLA's kernels are deterministic for a fixed thread count: a run
  repeats bit for bit at 1 and at 2 threads (tests/test_jax_backend.py; measured on a 2-core
  Xeon: every weight after 2 epochs, 6 runs per count). jax-ml/jax#39741 reports one compiled
  module that rounds differently from call to call with 2+ threads on another CPU; the test
  would show that here, and train.threads: 1 avoids it. The thread count itself changes the
  last bits, as in the other frameworks. On a GPU, true adds ``--xla_gpu_deterministic_ops=true``
  to ``XLA_FLAGS`` (no autotuning, deterministic scatter and reductions); false adds nothing.
  (The GPU settings here follow JAX's and XLA's documentation; no GPU has run this backend yet.)
- ``tf32``: ``jax_default_matmul_precision``: "highest" (float32 products) when false,
  "tensorfloat32" when true. On a CPU both compute in float32.
- ``xla``: Keras's jit_compile switch (schema: "Keras jit_compile"). JAX has no non-XLA mode:
  both paths here are XLA programs, so the param does not apply and is ignored rather than
  refused. Refusing ``xla: false`` would refuse the default params, and ``xla: true`` comes
  with ``deterministic: false`` (a TensorFlow rule, core/config.py), which would rule out
  repeatable JAX runs. details() records "xla": "always".
- ``fast``: plain (false) is the idiomatic Flax NNX loop: one ``nnx.jit`` train step per
  minibatch on the module and ``nnx.Optimizer``; fast (true) is Flax's "functional training
  loop": ``jax.jit`` of a pure function of the ``nnx.split`` state that runs STEPS_PER_CALL
  steps per call (tests/test_fast_path.py checks that both train the same).
- ``init``: shared loads the canonical weights (conv kernels OIHW -> HWIO, fc1's inputs from
  (C, H, W) to (H, W, C) order, spec.to_channels_last); native keeps Flax's own initializers
  (lecun-normal kernels, zero biases) drawn from ``nnx.Rngs(seed)``.
- ``order``: shared and fixed as for the other frameworks; native is JAX's own shuffle,
  ``jax.random.permutation`` with the key ``minibatches.native_epoch_seed(seed, epoch)``.
- ``head`` (the ablation's key): only "logits"; "softmax" is the article's Keras model and is
  refused (``check_train_params``).
- ``device``: "cuda" sets ``jax_platforms`` to "cuda" and "cpu" to "cpu" before JAX starts, so a
  GPU job whose JAX cannot start its GPU backend fails instead of running on the CPU (JAX falls
  back silently only when no platform is named). The GPU is never preallocated
  (``XLA_PYTHON_CLIENT_PREALLOCATE=false``): several jobs may share it.
- ``epochs``, ``batch_size``, ``lr``, ``betas``, ``eps``: ``optax.adam(lr, b1, b2, eps=eps)``,
  which adds eps to sqrt(v_hat) after the bias correction, like PyTorch.

Checkpoints hold no pickle: the flattened ``nnx.state`` of the model and its ``nnx.Optimizer``
(weights, Adam's count and moments, the optimizer's step) as named arrays in an .npz. Training
draws no random numbers after the initial weights (no dropout; the native order comes from
(seed, epoch)), so there is no RNG state to save.

The saved model, ``model.npz``: the trained weights in the canonical layout (PyTorch's names and
shapes, like the init step's files) and ``meta`` (JSON: the model spec, the library versions).
To use it::

    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.train import jax_backend

    spec = LeNetSpec.from_params(run_record["params"]["model"])  # run.json's model spec
    # JAX started on the CPU (configure), then the Flax NNX module with the trained weights:
    model = jax_backend.load_for_inference("data/models/jax/seed0", spec, threads=1)
    logits = jax_backend.predict(model, images)  # images (N, 28, 28) float32 -> logits (N, 10)
    logits = model(images[..., None])  # the module itself takes (N, 28, 28, 1)

Without this package: ``np.load`` the file, ``to_channels_last`` the weights and assign them to
any NHWC LeNet-5 of that spec.
"""

from __future__ import annotations

import os

# Read when JAX starts its CUDA backend: allocate on demand, so that jobs can share a GPU.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import glob
import json
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax._src import xla_bridge  # backends_are_initialized: whether JAX has started

from lenet_compare.core.atomic import write_npz
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec, check_weights, from_channels_last, to_channels_last
from lenet_compare.train import divergence, minibatches
from lenet_compare.train.devices import cpu_name

CHECKPOINT_SUFFIX = ".npz"
MODEL_FILE = "model.npz"
LIBRARY_VERSIONS = {
    "jax": jax.__version__,
    "jaxlib": metadata.version("jaxlib"),
    "flax": flax.__version__,
    "optax": optax.__version__,
}
# run.json's framework_version, and through backend.VERSION the checkpoint fingerprint
# (train/checkpoints.py): all four libraries decide what a step computes.
VERSION = (
    f"{LIBRARY_VERSIONS['jax']} (jaxlib {LIBRARY_VERSIONS['jaxlib']}, "
    f"Flax {LIBRARY_VERSIONS['flax']}, optax {LIBRARY_VERSIONS['optax']})"
)
ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}
POOLINGS = {"avg": nnx.avg_pool, "max": nnx.max_pool}
PREDICT_BATCH = 1000
# Training steps per call of the fast path's compiled program (train.fast), unrolled in it. On a
# CPU a LeNet step's arithmetic (Eigen's convolutions) dominates, so the gain is Python's and
# Flax's per-call cost, paid once per call, and XLA's optimizing across a call's steps; compile
# time grows with the steps unrolled. Of 1, 4, 8 and 16 steps per call, 8 and 16 were the
# fastest per step and 8 compiled in about half the time (development machine; the resulting
# plain and fast epochs: reports/benchmark.md). One jax.lax.scan over the epoch was several
# times slower per step: XLA's CPU convolutions run far slower inside a loop body
# (jax-ml/jax#12868).
STEPS_PER_CALL = 8
PLATFORMS = {"cuda": "cuda", "cpu": "cpu"}  # devices.resolve_device's answer -> jax_platforms
GPU_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops=true"
XLA_THREAD_NAME = "tf_XLAEigen"  # XLA's intra-op pool (xla/pjrt/cpu/cpu_client.cc, "XLAEigen")


# --- the model -------------------------------------------------------------------------------


class LeNet(nnx.Module):
    """The spec's network, channel-last (NHWC); one attribute per canonical layer name (conv1, ..., fc1, ...)."""

    def __init__(self, spec: LeNetSpec, *, rngs: nnx.Rngs):
        self.spec = spec
        k = spec.kernel_size
        for conv in spec.conv_layers:
            pad = ((conv.padding, conv.padding), (conv.padding, conv.padding))
            setattr(self, conv.name, nnx.Conv(conv.in_channels, conv.out_channels, (k, k), padding=pad, rngs=rngs))
        for name, n_in, n_out in spec.dense_layers:
            setattr(self, name, nnx.Linear(n_in, n_out, rngs=rngs))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits (N, classes) of images x (N, 28, 28, 1)."""
        activation, pool = ACTIVATIONS[self.spec.activation], POOLINGS[self.spec.pooling]
        for conv in self.spec.conv_layers:
            x = pool(activation(getattr(self, conv.name)(x)), (2, 2), strides=(2, 2))  # floor, like the spec
        x = x.reshape(x.shape[0], -1)  # channel-last (H, W, C) order
        dense = self.spec.dense_layers
        for j, (name, _, _) in enumerate(dense, start=1):
            x = getattr(self, name)(x)
            if j < len(dense):
                x = activation(x)
        return x


def build_model(spec: LeNetSpec, seed: int = 0) -> LeNet:
    """The spec's network with Flax's default initializers, drawn from ``nnx.Rngs(seed)``."""
    return LeNet(spec, rngs=nnx.Rngs(seed))


def _layer_names(spec: LeNetSpec) -> list[str]:
    return [conv.name for conv in spec.conv_layers] + [name for name, _, _ in spec.dense_layers]


def count_parameters(model: nnx.Module) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))


def canonical_weights(model: LeNet) -> dict[str, np.ndarray]:
    weights = {}
    for name in _layer_names(model.spec):
        layer = getattr(model, name)
        weights[f"{name}.weight"] = np.asarray(layer.kernel[...])
        weights[f"{name}.bias"] = np.asarray(layer.bias[...])
    return from_channels_last(model.spec, weights)


def load_canonical(model: LeNet, weights: dict[str, np.ndarray]) -> None:
    check_weights(model.spec, weights, "the weights to load")
    channels_last = to_channels_last(model.spec, weights)
    for name in _layer_names(model.spec):
        layer = getattr(model, name)
        layer.kernel[...] = jnp.asarray(channels_last[f"{name}.weight"], jnp.float32)
        layer.bias[...] = jnp.asarray(channels_last[f"{name}.bias"], jnp.float32)


# --- starting JAX: platform, XLA flags, threads ---------------------------------------------


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
    return (
        f"{seen} (jax {LIBRARY_VERSIONS['jax']}, jaxlib {LIBRARY_VERSIONS['jaxlib']}, "
        f"jax-cuda12-plugin {_plugin_version()})"
    )


def head(train: dict) -> str:
    """The output head; only the ablation's article steps name one (ablation.factors)."""
    return train.get("head", "logits")


def check_train_params(train: dict) -> None:
    """Refuse what has no meaning for this backend (the module docstring lists every param)."""
    if head(train) != "logits":
        raise PipelineError(
            f"head = {head(train)!r}: the JAX backend trains logits with softmax cross-entropy only; the "
            "softmax head is the article's Keras model (ablation.article.tensorflow), not a JAX setting"
        )


def preflight(device: str, train: dict) -> None:
    """Stop before training when the params ask for what JAX cannot do (check_train_params)."""
    check_train_params(train)


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


def make_optimizer(train: dict) -> optax.GradientTransformation:
    """Adam with the params' lr, betas and eps; optax adds eps to sqrt(v_hat), as PyTorch does."""
    b1, b2 = train["betas"]
    return optax.adam(learning_rate=train["lr"], b1=b1, b2=b2, eps=train["eps"])


# --- training --------------------------------------------------------------------------------


def _train_step(model: LeNet, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array, idx: jax.Array):
    """One Adam step on the minibatch x[idx], y[idx]; its loss and correct predictions (before the update)."""
    xb, yb = x[idx], y[idx]

    def loss_fn(model):
        logits = model(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), logits

    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return loss, jnp.sum(jnp.argmax(logits, axis=-1) == yb)


# The plain path: Flax NNX's own loop, one compiled step per call on the stateful objects.
_plain_step = nnx.jit(_train_step)


def _chunk_steps(graphdef, state, x: jax.Array, y: jax.Array, batches: jax.Array):
    """The fast path: ``_train_step`` on each row of ``batches`` (k, batch), one after another in
    one XLA program, on the split (pure) state of (model, optimizer); the new state, the k
    losses and the k counts of correct predictions."""
    model, optimizer = nnx.merge(graphdef, state)
    steps = [_train_step(model, optimizer, x, y, batches[i]) for i in range(batches.shape[0])]
    return nnx.state((model, optimizer)), jnp.stack([s[0] for s in steps]), jnp.stack([s[1] for s in steps])


_fast_steps = jax.jit(_chunk_steps, static_argnums=0)


def fast_calls(batches: np.ndarray) -> list[np.ndarray]:
    """How the fast path groups minibatches (rows of ``batches``) into calls: STEPS_PER_CALL at a
    time, the rest one by one (one more compiled program, not one per leftover count)."""
    whole = len(batches) - len(batches) % STEPS_PER_CALL
    return [batches[i : i + STEPS_PER_CALL] for i in range(0, whole, STEPS_PER_CALL)] + [
        batches[i : i + 1] for i in range(whole, len(batches))
    ]


class Trainer:
    """Holds the model, optimizer and training data on the device; one method per epoch.

    Two paths train the same algorithm (same minibatches in the same order, same initial weights,
    same Adam); tests/test_fast_path.py checks their per-step losses and updates agree:
    - plain (train.fast: false): ``nnx.jit`` of the train step on the module and its
      ``nnx.Optimizer``, called once per minibatch, the minibatch gathered on the device.
    - fast (train.fast: true, the default): the state split once per epoch (``nnx.split``), and
      ``jax.jit`` of a pure function that trains STEPS_PER_CALL minibatches per call, the
      steps unrolled in one XLA program (``fast_calls``); the few minibatches left over, and a
      partial last one, one per call. Python's and Flax's per-call costs are paid once per
      STEPS_PER_CALL steps, and XLA optimizes across the steps of a call.
    """

    def __init__(self, spec: LeNetSpec, train: dict, seed: int, device: str, init: dict | None):
        check_train_params(train)
        self.spec, self.train, self.seed, self.device = spec, train, seed, device
        self.model = build_model(spec, seed)  # init: native keeps these
        if init is not None:
            load_canonical(self.model, init)
        self.optimizer = nnx.Optimizer(self.model, make_optimizer(train), wrt=nnx.Param)
        self.x = self.y = None
        self.step_losses = np.zeros(0, np.float32)  # the last epoch's minibatch losses, in order

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.model)

    def canonical_weights(self) -> dict[str, np.ndarray]:
        return canonical_weights(self.model)

    def details(self) -> dict:
        """How this framework ran, for the run record."""
        if self.train["fast"]:
            path = f"fast: jax.jit of {STEPS_PER_CALL} unrolled train steps per call on the nnx.split state, optax.adam"
        else:
            path = "plain: nnx.jit train step per minibatch on the module and nnx.Optimizer, optax.adam"
        return {
            **{f"{name}_version": version for name, version in LIBRARY_VERSIONS.items()},
            "train_path": path,
            "xla": "always (JAX compiles every step with XLA; train.xla is Keras's switch)",
            "platform": jax.default_backend(),
            "matmul_precision": jax.config.jax_default_matmul_precision,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "threads": thread_counts(),
        }

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the whole training split on the device: (N, 28, 28, 1) images, int32 labels."""
        self.x = jnp.asarray(x[..., None], jnp.float32)
        self.y = jnp.asarray(y, jnp.int32)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The order (int32 indices) in which epoch ``epoch`` visits the training images."""
        n = len(self.y)
        if self.train["order"] == "shared":
            return minibatches.epoch_permutation(self.seed, epoch, n).astype(np.int32)
        if self.train["order"] == "fixed":
            return np.arange(n, dtype=np.int32)  # the data set's order every epoch
        # JAX's own shuffle, with a key of its own per epoch (as the other frameworks' native
        # shuffles): never the random numbers that drew the initial weights.
        key = jax.random.key(minibatches.native_epoch_seed(self.seed, epoch))
        return np.asarray(jax.random.permutation(key, n), np.int32)

    def plain_step(self, idx: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """The plain path's step on the minibatch of training images ``idx``."""
        return _plain_step(self.model, self.optimizer, self.x, self.y, jnp.asarray(idx, jnp.int32))

    def fast_steps(self, calls: list[np.ndarray], progress=None) -> tuple[jax.Array, jax.Array]:
        """The fast path's steps: one compiled call per (k, batch) array of ``calls``, in order,
        on the state split once; the losses and correct counts of all steps, in order."""
        graphdef, state = nnx.split((self.model, self.optimizer))
        losses, correct = [], []
        for batches in calls:
            state, call_losses, call_correct = _fast_steps(
                graphdef, state, self.x, self.y, jnp.asarray(batches, jnp.int32)
            )
            losses.append(call_losses)
            correct.append(call_correct)
            if progress is not None:
                progress.update(len(batches))
        nnx.update((self.model, self.optimizer), state)
        return jnp.concatenate(losses), jnp.concatenate(correct)

    def train_epoch(self, epoch: int, progress=None) -> tuple[float, float, float]:
        """One pass over the training data; returns (mean loss, accuracy, seconds).

        Loss and accuracy are those of each minibatch at the time it was trained on, averaged
        over all images. The per-step losses are kept in ``self.step_losses``.
        """
        start_time = time.perf_counter()
        n, batch = len(self.y), self.train["batch_size"]
        order = self.epoch_order(epoch)
        slices = minibatches.batch_slices(n, batch)
        if self.train["fast"]:
            full = n // batch
            calls = fast_calls(order[: full * batch].reshape(full, batch))
            if full * batch < n:
                calls.append(order[full * batch :][None])  # the partial last minibatch: its own shape
            losses, correct = self.fast_steps(calls, progress)
        else:
            step_losses, step_correct = [], []
            for s in slices:
                loss, batch_correct = self.plain_step(order[s])
                step_losses.append(loss)
                step_correct.append(batch_correct)
                if progress is not None:
                    progress.update(1)
            losses, correct = jnp.stack(step_losses), jnp.stack(step_correct)
        # Read back once per epoch: no device-to-host sync per step.
        self.step_losses = np.asarray(losses, np.float32)
        n_correct = int(np.asarray(correct).sum())
        bad = np.flatnonzero(~np.isfinite(self.step_losses))
        if bad.size:
            raise divergence.non_finite_loss(epoch, int(bad[0]) + 1, len(slices), float(self.step_losses[bad[0]]))
        sizes = np.array([s.stop - s.start for s in slices], np.float64)
        loss_mean = float(self.step_losses.astype(np.float64) @ sizes / n)
        return loss_mean, n_correct / n, time.perf_counter() - start_time

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict(self.model, x)

    def save(self, model_dir: Path) -> Path:
        return save_model(self.model, Path(model_dir) / MODEL_FILE)

    def state(self) -> dict[str, np.ndarray]:
        """A copy of the weights and optimizer state (Adam's count and moments, the step): all
        that the next step depends on, as arrays named by their path in (model, optimizer)."""
        return {_path_name(path): np.array(v[...]) for path, v in _flat_state(self.model, self.optimizer)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        flat = _flat_state(self.model, self.optimizer)
        names = {_path_name(path) for path, _ in flat}
        if names != set(state):
            raise ValueError(f"the state and this trainer differ in {sorted(set(state) ^ names)}")
        new = []
        for path, v in flat:
            value = np.asarray(state[_path_name(path)])
            if value.shape != v.shape or value.dtype != v[...].dtype:
                raise ValueError(f"{_path_name(path)}: {value.dtype}{value.shape}, not {v[...].dtype}{v.shape}")
            new.append((path, v.replace(jnp.asarray(value))))
        nnx.update((self.model, self.optimizer), nnx.from_flat_state(new))

    def save_checkpoint(self, path: Path) -> None:
        """The state as arrays, atomically (no pickle): what resuming after this epoch needs."""
        write_npz(path, self.state())

    def load_checkpoint(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as npz:
            self.load_state({k: npz[k] for k in npz.files})

    def peak_gpu_memory_mb(self) -> float | None:
        if self.device != "cuda":
            return None
        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**20


def _flat_state(model: LeNet, optimizer: nnx.Optimizer) -> list:
    return list(nnx.to_flat_state(nnx.state((model, optimizer))))


def _path_name(path: tuple) -> str:
    """(0, "conv1", "kernel") -> "model.conv1.kernel"; (1, "step") -> "optimizer.step"."""
    head_, *rest = path
    return ".".join([("model", "optimizer")[head_], *map(str, rest)])


# --- prediction, saving, loading -------------------------------------------------------------


_forward = nnx.jit(lambda model, x: model(x))


def predict(model: LeNet, x: np.ndarray) -> np.ndarray:
    """Logits (N, classes) float32 of images x (N, 28, 28), PREDICT_BATCH at a time."""
    out = [
        np.asarray(_forward(model, jnp.asarray(x[batch][..., None], jnp.float32)), np.float32)
        for batch in minibatches.batch_slices(len(x), PREDICT_BATCH)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.spec.classes), np.float32)


def save_model(model: LeNet, path: Path) -> Path:
    """The canonical weights and ``meta`` (the spec, the library versions) as an .npz, atomically."""
    meta = {
        "model": model.spec.as_params(),
        "n_parameters": count_parameters(model),
        "layout": "canonical (PyTorch): conv OIHW, dense (out, in), fc1 inputs in (C, H, W) order",
        "libraries": LIBRARY_VERSIONS,
    }
    write_npz(path, canonical_weights(model), meta)
    return Path(path)


def load_model(model_dir: Path, spec: LeNetSpec) -> LeNet:
    """The trained model; a missing or corrupt file, or one of another spec, is a PipelineError."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise PipelineError(f"{path} is missing; run the train step for this framework and seed first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("model") != spec.as_params():
            raise ValueError(f"it holds the model spec {meta.get('model')}, the run record {spec.as_params()}")
        model = build_model(spec)
        load_canonical(model, arrays)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise PipelineError(
            f"cannot load {path}: {type(e).__name__}: {e}. The file is corrupt or from another model spec; "
            "delete it and rerun the train step"
        ) from e
    return model


def load_for_inference(model_dir: Path, spec: LeNetSpec, threads: int | None = None) -> LeNet:
    """The trained model on the CPU (the whole test set takes about a second)."""
    configure("cpu", deterministic=True, tf32=False, seed=0, threads=threads)
    return load_model(model_dir, spec)
