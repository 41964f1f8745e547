"""Shared initial weights: drawn with numpy from the training seed, so PyTorch and Keras can
start from exactly the same numbers; written by the init step, read by the train step.

Each use of randomness draws from its own stream (``np.random.SeedSequence`` of [seed, stream,
...]; the data order's streams are in train/minibatches.py), so changing the number of epochs
never changes the initial weights.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from lenet_compare.core.atomic import write_npz
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec, check_weights

INIT_STREAM = 1


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
    write_npz(path, weights, meta)
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
