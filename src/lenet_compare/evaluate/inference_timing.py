"""Inference speed of a trained model: each framework's naive call beside its fastest idiomatic one.

A plain eager call measures mostly the framework's per-call overhead, not inference: an eager
Keras ``model(x)`` dispatches every layer from Python (about 5 ms for one image), PyTorch's
``model(x)`` far less (about 0.2 ms). So each framework is timed on several paths, all at
batch 1 and at batch 1,000, on the same images, in the evaluate step's process (its threads,
train.threads, already set):

- naive: the call a first attempt makes. PyTorch ``model(x)`` (evaluation mode, autograd on),
  Keras ``model(x, training=False)`` (eager), Flax NNX ``model(x)`` (eager, op by op).
- idiomatic: the framework's own ways of serving a model. PyTorch: ``torch.inference_mode()``,
  eager and ``torch.compile``-d; Keras: ``tf.function`` with a fixed input signature, the same
  with XLA (``jit_compile=True``), and ``predict_on_batch``; JAX: ``nnx.jit``, the same with
  ``nnx.cached_partial``, and ``jax.jit`` of the split state (``jax_paths``).

Per batch size, the idiomatic path with the lowest median is labelled "fastest idiomatic"; the
choice comes from the measurement, not from a rule (which one wins depends on the machine and
the batch size). Every call is timed from a numpy batch in to numpy logits out, so each path
pays the same conversions. The paths take turns call by call, so a load spike from other jobs
on a shared machine hits all of them alike; medians, because such a machine is noisy. Before
any timing, every idiomatic path's logits are checked against the naive path's: a path that
computes something else is an error, never a speed.

The module imports no framework at the top: ``torch_paths``, ``tensorflow_paths`` and
``jax_paths`` import theirs when called, so the evaluate step still imports exactly one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import IMAGE_SIDE, LeNetSpec

BATCH_SIZES = (1, 1000)
# Timed calls per path and batch size, and untimed warm-up calls before them (the first call
# traces or compiles; the next few fill the allocator's caches).
CALLS = {1: 200, 1000: 20}
WARMUP = {1: 10, 1000: 2}

NAIVE, IDIOMATIC, FASTEST = "naive", "idiomatic", "fastest idiomatic"

# float32's unit roundoff: half the distance from 1.0 to the next float32 (2**-24).
UNIT_ROUNDOFF = float(np.finfo(np.float32).eps) / 2


@dataclass(frozen=True)
class InferencePath:
    kind: str  # NAIVE or IDIOMATIC
    call: str  # the exact call, as the report names it
    run: Callable[[np.ndarray], np.ndarray]  # images (N, 28, 28) float32 -> logits (N, classes)


def torch_paths(model) -> list[InferencePath]:
    """PyTorch's naive call and its idiomatic inference paths, on the model's device (the CPU)."""
    import torch  # here, not at the top: see the module docstring

    model.eval()
    # dynamic=False: one static graph per batch size. The default (dynamic=None) would recompile
    # with symbolic shapes at the second size, and time a more general kernel at both.
    compiled = torch.compile(model, dynamic=False)

    def tensor(x: np.ndarray):
        return torch.from_numpy(x).unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28), no copy

    def naive(x):
        return model(tensor(x)).detach().numpy()  # autograd records the graph; detach to read it

    def inference_mode(x):
        with torch.inference_mode():
            return model(tensor(x)).numpy()

    def compiled_call(x):
        with torch.inference_mode():
            return compiled(tensor(x)).numpy()

    return [
        InferencePath(NAIVE, "model(x)", naive),
        InferencePath(IDIOMATIC, "with torch.inference_mode(): model(x)", inference_mode),
        InferencePath(IDIOMATIC, "with torch.inference_mode(): torch.compile(model, dynamic=False)(x)", compiled_call),
    ]


def tensorflow_paths(model) -> list[InferencePath]:
    """Keras's naive (eager) call and its compiled inference paths, on the CPU."""
    import tensorflow as tf  # here, not at the top: see the module docstring

    # The serving signature: any batch size, one image channel last. One trace serves both sizes.
    signature = [tf.TensorSpec((None, IMAGE_SIDE, IMAGE_SIDE, 1), tf.float32)]
    graph = tf.function(model, input_signature=signature)
    xla = tf.function(model, input_signature=signature, jit_compile=True)
    # predict_on_batch runs Keras's own predict function, which Keras compiles with XLA when it
    # sees a GPU (jit_compile "auto"), even one this CPU-only step hides. Off, so the path is
    # what its label says; XLA has a path of its own above. force: rebuild a cached one.
    model.jit_compile = False
    model.make_predict_function(force=True)

    def channel_last(x: np.ndarray) -> np.ndarray:
        return x[..., None]  # (N, 28, 28) -> (N, 28, 28, 1), a view

    def naive(x):
        return np.asarray(model(channel_last(x), training=False))

    def graph_call(x):
        return graph(channel_last(x)).numpy()

    def xla_call(x):
        return xla(channel_last(x)).numpy()

    def predict_on_batch(x):
        return np.asarray(model.predict_on_batch(channel_last(x)))

    sig = "input_signature=[TensorSpec((None, 28, 28, 1))]"
    return [
        InferencePath(NAIVE, "model(x, training=False)", naive),
        InferencePath(IDIOMATIC, f"tf.function(model, {sig})(x)", graph_call),
        InferencePath(IDIOMATIC, f"tf.function(model, {sig}, jit_compile=True)(x)", xla_call),
        InferencePath(IDIOMATIC, "model.predict_on_batch(x)", predict_on_batch),
    ]


def jax_paths(model) -> list[InferencePath]:
    """The Flax NNX module called eagerly, op by op; then compiled: ``nnx.jit`` of a call of the
    module (Flax traverses the module's object graph on every call), the same with
    ``nnx.cached_partial`` (the traversal cached), and ``jax.jit`` of a pure function of the
    ``nnx.split`` state (no Flax at call time)."""
    import jax  # here, not at the top: see the module docstring
    import jax.numpy as jnp
    from flax import nnx

    graphdef, state = nnx.split(model)
    nnx_jitted = nnx.jit(lambda m, x: m(x))
    cached = nnx.cached_partial(nnx_jitted, model)
    pure = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))

    def images(x: np.ndarray):
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


PATHS = {"torch": torch_paths, "tensorflow": tensorflow_paths, "jax": jax_paths}


def float32_tolerance(spec: LeNetSpec, logits: np.ndarray) -> float:
    """How far two float32 evaluations of the same network may differ, in logits, by rounding alone.

    A dot product of length n summed in float32, in any order, is within about n * u * sum|a_i * b_i|
    of the exact value (u = 2**-24; gamma_n = n u / (1 - n u) in Higham, Accuracy and Stability of
    Numerical Algorithms, 2nd ed., section 3.1), so two orders differ by at most twice that. A
    compiled path may reorder every layer's sums, and each layer passes its error on, so n here is
    the sum of all layers' fan-ins (conv: in_channels * k * k; dense: inputs), and the largest
    logit magnitude (at least 1) stands in for the sum of products. For the default LeNet-5
    (fan-ins 25 + 150 + 400 + 120 + 84 = 779) and logits up to ~15 that is ~1.4e-3: far above what
    reordering does (measured up to ~6e-6, XLA), far below a wrong computation (wrong weights or
    images change logits by ~1).
    """
    fan_in = sum(c.in_channels * spec.kernel_size**2 for c in spec.conv_layers)
    fan_in += sum(n_in for _, n_in, _ in spec.dense_layers)
    scale = max(1.0, float(np.max(np.abs(logits))) if logits.size else 1.0)
    return 2 * fan_in * UNIT_ROUNDOFF * scale


def _batches(x: np.ndarray, batch_size: int, count: int) -> list[np.ndarray]:
    """``count`` batches of consecutive test images, wrapping around (a small test set still
    fills a batch of 1,000)."""
    n = len(x)
    return [np.take(x, np.arange(i * batch_size, (i + 1) * batch_size) % n, axis=0) for i in range(count)]


def _time_round_robin(paths: list[InferencePath], batches: list[np.ndarray]) -> list[dict]:
    """Each path once per batch, taking turns (the order rotates every round); seconds per call."""
    seconds: list[list[float]] = [[] for _ in paths]
    cpu = [0.0] * len(paths)
    for i, batch in enumerate(batches):
        for k in (np.arange(len(paths)) + i) % len(paths):
            cpu_start, start = time.process_time(), time.perf_counter()
            paths[k].run(batch)
            seconds[k].append(time.perf_counter() - start)
            cpu[k] += time.process_time() - cpu_start
    return [{"seconds": s, "cpu_seconds": c} for s, c in zip(seconds, cpu, strict=True)]


def measure(
    framework: str,
    model,
    x: np.ndarray,
    spec: LeNetSpec,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    calls: dict[int, int] | None = None,
    warmup: dict[int, int] | None = None,
) -> dict:
    """The keys the evaluate step adds to metrics.json: every path at every batch size.

    ``inference_images_per_second`` (the largest batch) and ``latency_ms_single_image`` (batch
    1) are the fastest idiomatic path's; ``inference.rows`` holds every path, naive included.
    Raises PipelineError when an idiomatic path's logits differ from the naive path's by more than
    float32 rounding allows.
    """
    calls, warmup = calls or CALLS, warmup or WARMUP
    paths = PATHS[framework](model)
    rows = []
    for size in batch_sizes:
        batches = _batches(x, size, calls[size])
        first_seconds, differences = [], []
        reference = tolerance = None
        for path in paths:  # the naive path comes first
            start = time.perf_counter()
            out = path.run(batches[0])  # the first call traces or compiles: timed apart
            first_seconds.append(time.perf_counter() - start)
            if path.kind == NAIVE:
                reference, tolerance = out, float32_tolerance(spec, out)
            differences.append(_check(framework, path, size, out, reference, tolerance))
        for batch in batches[: warmup[size]]:
            for path in paths:
                path.run(batch)
        timed = _time_round_robin(paths, batches)
        size_rows = [
            {
                "path": path.kind,
                "call": path.call,
                "batch_size": size,
                "median_ms": 1000 * statistics.median(t["seconds"]),
                "images_per_second": size / statistics.median(t["seconds"]),
                "p90_ms": 1000 * float(np.percentile(t["seconds"], 90)),
                "timed_calls": len(t["seconds"]),
                "first_call_ms": 1000 * first,  # includes tracing / compilation
                # Above train.threads would mean the path ran more threads than the job has.
                "cpu_per_wall": t["cpu_seconds"] / sum(t["seconds"]),
                "max_abs_difference_from_naive": difference,
                "float32_tolerance": tolerance,
            }
            for path, t, first, difference in zip(paths, timed, first_seconds, differences, strict=True)
        ]
        fastest = min((r for r in size_rows if r["path"] == IDIOMATIC), key=lambda r: r["median_ms"])
        fastest["path"] = FASTEST
        rows += size_rows
    fastest_at = {r["batch_size"]: r for r in rows if r["path"] == FASTEST}
    return {
        "inference_images_per_second": fastest_at[max(batch_sizes)]["images_per_second"],
        "latency_ms_single_image": fastest_at[min(batch_sizes)]["median_ms"],
        "inference": {
            "timed": "numpy images in, numpy logits out; median over calls after warm-up, the paths taking turns",
            "rows": rows,
        },
    }


def _check(framework: str, path: InferencePath, size: int, out, reference, tolerance) -> float:
    """The largest difference of ``out`` from the naive path's logits; an error beyond ``tolerance``."""
    difference = float(np.max(np.abs(np.asarray(out, np.float32) - reference)))
    if not difference <= tolerance:  # written so that NaN fails too
        raise PipelineError(
            f"{framework}: {path.call} at batch {size} gives logits up to {difference:.3g} away from the "
            f"naive call's ({tolerance:.3g} allowed by float32 rounding): it computes something else"
        )
    return difference
