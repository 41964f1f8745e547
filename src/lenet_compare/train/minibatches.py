"""The order of the training data: the shared order, the frameworks' own shuffles, minibatches.

Drawn with numpy from the training seed, so both frameworks can walk exactly the same
minibatches. Each epoch's order depends only on (seed, epoch): a run resumed from a
checkpoint continues with the order an uninterrupted run would have had.
"""

from __future__ import annotations

import numpy as np

# Streams of np.random.SeedSequence([seed, stream, ...]); the initial weights draw from stream 1.
ORDER_STREAM = 2
NATIVE_ORDER_STREAM = 3


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order (int64 indices) in which epoch ``epoch`` (1-based) visits the n training images."""
    return np.random.default_rng([seed, ORDER_STREAM, epoch]).permutation(n).astype(np.int64)


def native_epoch_seed(seed: int, epoch: int) -> int:
    """A 31-bit seed for a framework's own shuffle of epoch ``epoch`` under ``train.order: native``."""
    return int(np.random.SeedSequence([seed, NATIVE_ORDER_STREAM, epoch]).generate_state(1)[0] >> 1)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive minibatches of an epoch; the last one is partial when batch_size does not divide n."""
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
