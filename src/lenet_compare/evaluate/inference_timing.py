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
  ``nnx.cached_partial``, and ``jax.jit`` of the split state.

Each backend lists its own paths (``inference_paths``, train.protocol.Backend); this module
times any list of them.

Per batch size, the idiomatic path with the lowest median is labelled "fastest idiomatic"; the
choice comes from the measurement, not from a rule (which one wins depends on the machine and
the batch size). Every call is timed from a numpy batch in to numpy logits out, so each path
pays the same conversions. The paths take turns call by call, so a load spike from other jobs
on a shared machine hits all of them alike; medians, because such a machine is noisy. Before
any timing, every idiomatic path's logits are checked against the naive path's: a path that
computes something else is an error, never a speed.

The module imports no framework: the evaluate step imports exactly one, its backend.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec

# The path kinds, as the reports read them here.
from lenet_compare.train.protocol import IDIOMATIC as IDIOMATIC
from lenet_compare.train.protocol import NAIVE as NAIVE
from lenet_compare.train.protocol import InferencePath

BATCH_SIZES = (1, 1000)
# Timed calls per path and batch size, and untimed warm-up calls before them (the first call
# traces or compiles; the next few fill the allocator's caches).
CALLS = {1: 200, 1000: 20}
WARMUP = {1: 10, 1000: 2}

FASTEST = "fastest idiomatic"

# float32's unit roundoff: half the distance from 1.0 to the next float32 (2**-24).
UNIT_ROUNDOFF = float(np.finfo(np.float32).eps) / 2


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
    paths: list[InferencePath],
    x: np.ndarray,
    spec: LeNetSpec,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    calls: dict[int, int] | None = None,
    warmup: dict[int, int] | None = None,
) -> dict:
    """The keys the evaluate step adds to metrics.json: every path (a backend's inference_paths,
    the naive one first) at every batch size.

    ``inference_images_per_second`` (the largest batch) and ``latency_ms_single_image`` (batch
    1) are the fastest idiomatic path's; ``inference.rows`` holds every path, naive included.
    Raises PipelineError when an idiomatic path's logits differ from the naive path's by more than
    float32 rounding allows.
    """
    calls, warmup = calls or CALLS, warmup or WARMUP
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


def _check(framework: str, path: InferencePath, size: int, out: np.ndarray, reference, tolerance) -> float:
    """The largest difference of ``out`` from the naive path's logits; an error beyond ``tolerance``."""
    difference = float(np.max(np.abs(np.asarray(out, np.float32) - reference)))
    if not difference <= tolerance:  # written so that NaN fails too
        raise PipelineError(
            f"{framework}: {path.call} at batch {size} gives logits up to {difference:.3g} away from the "
            f"naive call's ({tolerance:.3g} allowed by float32 rounding): it computes something else"
        )
    return difference
