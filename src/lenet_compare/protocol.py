"""The controlled protocol, framework-free: shared initial weights, shared data order, metrics.

Everything random here is drawn with numpy from the training seed, so PyTorch and Keras can
consume exactly the same numbers. Each use draws from its own stream (``np.random.SeedSequence``
of [seed, stream, ...]), so changing the number of epochs never changes the initial weights.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import PipelineError
from .lenet_spec import LeNetSpec, check_weights

# history.csv, one row per epoch: DESIGN.md's six columns, then the validation pass's time.
HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_seconds",  # the training pass alone
    "val_seconds",  # predicting the validation split, timed separately
)

INIT_STREAM = 1
ORDER_STREAM = 2
NATIVE_ORDER_STREAM = 3


def initial_weights(spec: LeNetSpec, seed: int) -> dict[str, np.ndarray]:
    """Canonical float32 weights drawn like PyTorch's defaults for Conv2d and Linear.

    PyTorch initializes weights with kaiming_uniform_(a=sqrt(5)), whose bound
    gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)) is exactly 1 / sqrt(fan_in), and
    biases with U(-1/sqrt(fan_in), 1/sqrt(fan_in)). So every tensor here is
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in float64 and rounded to float32, in the order
    of ``spec.parameter_shapes()``.
    """
    rng = np.random.default_rng([seed, INIT_STREAM])
    weights = {}
    for name, shape in spec.parameter_shapes().items():
        bound = 1.0 / np.sqrt(spec.fan_in(name))
        weights[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return weights


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order (int64 indices) in which epoch ``epoch`` (1-based) visits the n training images."""
    return np.random.default_rng([seed, ORDER_STREAM, epoch]).permutation(n).astype(np.int64)


def native_epoch_seed(seed: int, epoch: int) -> int:
    """A 31-bit seed for a framework's own shuffle of epoch ``epoch`` under ``train.order: native``."""
    return int(np.random.SeedSequence([seed, NATIVE_ORDER_STREAM, epoch]).generate_state(1)[0] >> 1)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive minibatches of an epoch; the last one is partial when batch_size does not divide n."""
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def non_finite_loss(epoch: int, step: int, steps: int, value: float, at_most: bool = False) -> PipelineError:
    """The error that stops a run whose training loss became NaN or infinite (``step`` is 1-based).

    ``at_most``: the framework only reports the loss every few steps, so ``step`` is the first
    report that showed it, and the loss went bad at that step or up to the previous report.
    """
    where = f"by step {step}" if at_most else f"at step {step}"
    return PipelineError(
        f"the training loss became {value} in epoch {epoch}, {where} of {steps}; training stopped and "
        "no model was written. The optimisation diverged: lower train.lr, check the data (data.normalize, "
        "a damaged cache: rerun prepare) or try another seed"
    )


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax cross-entropy of float logits (N, classes), computed in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction (0..1) of argmax predictions equal to the labels, never rounded."""
    return float((logits.argmax(axis=1) == labels).mean())


def save_initial_weights(path: str | Path, spec: LeNetSpec, seed: int) -> dict[str, np.ndarray]:
    """Write ``initial_weights(spec, seed)`` as an .npz (one array per canonical name) plus ``meta``."""
    weights = initial_weights(spec, seed)
    meta = {
        "seed": seed,
        "model": spec.as_params(),
        "n_parameters": spec.n_parameters,
        "layout": "canonical (PyTorch): conv OIHW, dense (out, in), fc1 inputs in (C, H, W) order",
        "distribution": "U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases (PyTorch's defaults)",
    }
    with atomic_write(path) as f:
        np.savez(f, **weights, meta=np.array(json.dumps(meta)))
    return weights


def load_initial_weights(path: str | Path, spec: LeNetSpec, seed: int) -> dict[str, np.ndarray]:
    """Read an init .npz and check that it was written for this seed and this model spec."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise PipelineError(f"cannot read initial weights {path}: {e}; rerun the init step") from e
    meta = json.loads(str(arrays.pop("meta", "{}")))
    if meta.get("seed") != seed:
        raise PipelineError(f"{path} holds the initial weights of seed {meta.get('seed')}, not of seed {seed}")
    try:
        check_weights(spec, arrays, str(path))
    except ValueError as e:
        raise PipelineError(f"{e}; rerun the init step") from e
    return {name: value.astype(np.float32, copy=False) for name, value in arrays.items()}
