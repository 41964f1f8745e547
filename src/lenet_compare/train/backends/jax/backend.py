"""JAX's backend, through Flax NNX and optax (train.protocol.Backend): LeNet-5 from the spec, one
training epoch, prediction, saving and loading, and its inference paths.

Imports jax, flax and optax (and no other framework): only the jobs of framework `jax` import
this module.

Starting JAX in the job's process (its platform, XLA flags, threads, the GPU probe): start.py.

How each ``train`` param maps onto JAX:

- ``threads``, ``deterministic``, ``device``: set before JAX starts (start.py says how).
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
  refused (``trainer.require_logits_head``).
- ``epochs``, ``batch_size``, ``lr``, ``betas``, ``eps``: ``optax.adam(lr, b1, b2, eps=eps)``,
  which adds eps to sqrt(v_hat) after the bias correction, like PyTorch.

Checkpoints hold no pickle: the flattened ``nnx.state`` of the model and its ``nnx.Optimizer``
(weights, Adam's count and moments, the optimizer's step) as named arrays in an .npz. Training
draws no random numbers after the initial weights (no dropout; the native order comes from
(seed, epoch)), so there is no RNG state to save.

The saved model, ``model.npz``: the trained weights in the canonical layout (PyTorch's names and
shapes, like the init step's files) and ``meta`` (JSON: the model spec, the library versions);
docs/design.md shows how to load it, with this package or without.
"""

from __future__ import annotations

import os
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lenet_compare.core.spec import LeNetSpec, check_weights, from_channels_last, to_channels_last
from lenet_compare.train import minibatches

# The protocol's configure, sees_gpu, gpu_view and thread_counts are start.py's, re-exported.
from lenet_compare.train.backends.jax.start import configure as configure
from lenet_compare.train.backends.jax.start import gpu_view as gpu_view
from lenet_compare.train.backends.jax.start import sees_gpu as sees_gpu
from lenet_compare.train.backends.jax.start import thread_counts as thread_counts
from lenet_compare.train.protocol import IDIOMATIC, NAIVE, Arrays, InferencePath, Progress
from lenet_compare.train.trainer import BaseTrainer, read_model_npz, require_logits_head, write_model_npz

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


def count_parameters(model: nnx.Module) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))


def canonical_weights(model: LeNet) -> Arrays:
    weights = {}
    for name in model.spec.layer_names:
        layer = getattr(model, name)
        weights[f"{name}.weight"] = np.asarray(layer.kernel[...])
        weights[f"{name}.bias"] = np.asarray(layer.bias[...])
    return from_channels_last(model.spec, weights)


def load_canonical(model: LeNet, weights: Arrays) -> None:
    check_weights(model.spec, weights, "the weights to load")
    channels_last = to_channels_last(model.spec, weights)
    for name in model.spec.layer_names:
        layer = getattr(model, name)
        layer.kernel[...] = jnp.asarray(channels_last[f"{name}.weight"], jnp.float32)
        layer.bias[...] = jnp.asarray(channels_last[f"{name}.bias"], jnp.float32)


def preflight(device: str, train: dict) -> None:
    """Stop before training when the params ask for what JAX cannot do (the softmax head)."""
    require_logits_head(train, Trainer.FRAMEWORK)


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


class Trainer(BaseTrainer):
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

    FRAMEWORK = "jax"

    def __init__(self, spec: LeNetSpec, train: dict, seed: int, device: str, init: Arrays | None):
        require_logits_head(train, Trainer.FRAMEWORK)
        super().__init__(spec, train, seed, device)
        self.model = build_model(spec, seed)  # init: native keeps these
        if init is not None:
            load_canonical(self.model, init)
        self.optimizer = nnx.Optimizer(self.model, make_optimizer(train), wrt=nnx.Param)
        self.x = self.y = jnp.zeros(0)
        self.step_losses = np.zeros(0, np.float32)  # the last epoch's minibatch losses, in order

    def canonical_weights(self) -> Arrays:
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
            "matmul_precision": jax.config.jax_default_matmul_precision,  # type: ignore[attr-defined]
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "threads": thread_counts(),
        }

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the whole training split on the device: (N, 28, 28, 1) images, int32 labels."""
        self.x = jnp.asarray(x[..., None], jnp.float32)
        self.y = jnp.asarray(y, jnp.int32)

    def native_order(self, epoch: int, n: int) -> np.ndarray:
        """JAX's own shuffle, with a key of its own per epoch."""
        key = jax.random.key(minibatches.native_epoch_seed(self.seed, epoch))
        return np.asarray(jax.random.permutation(key, n))

    def plain_step(self, idx: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """The plain path's step on the minibatch of training images ``idx``."""
        return _plain_step(self.model, self.optimizer, self.x, self.y, jnp.asarray(idx, jnp.int32))

    def fast_steps(self, calls: list[np.ndarray], progress: Progress | None = None) -> tuple[jax.Array, jax.Array]:
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

    def train_epoch(self, epoch: int, progress: Progress | None = None) -> tuple[float, float, float]:
        """One pass over the training data; returns (mean loss, accuracy, seconds)
        (BaseTrainer.epoch_result). The per-step losses are kept in ``self.step_losses``."""
        start_time = time.perf_counter()
        n, batch = len(self.y), self.train["batch_size"]
        order = np.asarray(self.epoch_order(epoch, n), np.int32)
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
        loss_mean, acc = self.epoch_result(epoch, self.step_losses, int(np.asarray(correct).sum()), n)
        return loss_mean, acc, time.perf_counter() - start_time

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict(self.model, x)

    def save(self, model_dir: Path) -> Path:
        return save_model(self.model, self.model_path(model_dir))

    def state(self) -> Arrays:
        """A copy of the weights and optimizer state (Adam's count and moments, the step): all
        that the next step depends on, as arrays named by their path in (model, optimizer)."""
        return {_path_name(path): np.array(v[...]) for path, v in _flat_state(self.model, self.optimizer)}

    def load_state(self, state: Arrays) -> None:
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
    return write_model_npz(path, model.spec, canonical_weights(model), LIBRARY_VERSIONS)


def load_model(model_dir: Path, spec: LeNetSpec) -> LeNet:
    """The trained model; a missing or corrupt file, or one of another spec, is a PipelineError."""
    model = build_model(spec)
    load_canonical(model, read_model_npz(Trainer.FRAMEWORK, model_dir, spec))
    return model


def inference_paths(model: LeNet) -> list[InferencePath]:
    """The Flax NNX module called eagerly, op by op; then compiled: ``nnx.jit`` of a call of the
    module (Flax traverses the module's object graph on every call), the same with
    ``nnx.cached_partial`` (the traversal cached), and ``jax.jit`` of a pure function of the
    ``nnx.split`` state (no Flax at call time)."""
    graphdef, state = nnx.split(model)
    nnx_jitted = nnx.jit(lambda m, x: m(x))
    cached = nnx.cached_partial(nnx_jitted, model)
    pure = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))

    def images(x: np.ndarray) -> Any:
        return jnp.asarray(x[..., None])  # (N, 28, 28) -> (N, 28, 28, 1), channels last

    return [
        InferencePath(NAIVE, "model(x)", lambda x: np.asarray(model(images(x)))),
        InferencePath(
            IDIOMATIC, "nnx.jit(lambda m, x: m(x))(model, x)", lambda x: np.asarray(nnx_jitted(model, images(x)))
        ),
        InferencePath(
            IDIOMATIC,
            "nnx.cached_partial(nnx.jit(lambda m, x: m(x)), model)(x)",
            lambda x: np.asarray(cached(images(x))),
        ),
        InferencePath(
            IDIOMATIC,
            "jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)",
            lambda x: np.asarray(pure(state, images(x))),
        ),
    ]


if TYPE_CHECKING:  # the type checker holds this module to the protocol (make lint)
    from lenet_compare.train.backends.jax import backend as _this
    from lenet_compare.train.protocol import Backend

    _conforms: Backend = _this
