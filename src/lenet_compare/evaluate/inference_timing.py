"""Inference speed of a trained model, measured the same way for both frameworks.

Throughput: the whole test set in batches of 1,000 (the framework's own batched predict),
median of several passes after a warm-up pass. Latency: one image per call (a direct model
call, as a served model would make it), median over many calls after warm-up. Medians,
because a shared machine is noisy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np


def measure(
    predict: Callable[[np.ndarray], np.ndarray],
    predict_one: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    batch_size: int,
    passes: int = 3,
    single_calls: int = 200,
) -> dict:
    """Time ``predict`` (which runs ``batch_size`` images at a time) and ``predict_one``."""
    predict(x)  # warm-up: graph tracing, allocator, caches
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        predict(x)
        seconds.append(time.perf_counter() - start)
    for image in x[:10]:
        predict_one(image)
    latencies = []
    for image in x[:single_calls]:
        start = time.perf_counter()
        predict_one(image)
        latencies.append(time.perf_counter() - start)
    return {
        "inference_images_per_second": len(x) / statistics.median(seconds),
        "latency_ms_single_image": 1000 * statistics.median(latencies),
        "inference_timing": {
            "batch_size": batch_size,
            "passes": passes,
            "images_per_pass": len(x),
            "pass_seconds": seconds,
            "single_image_calls": len(latencies),
            "latency_ms_p90": 1000 * float(np.percentile(latencies, 90)),
        },
    }
