"""Small IDX / .gz files made by the tests themselves."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray, magic: bytes | None = None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + dims + array.tobytes()


def fake_dataset(n_train: int = 200, n_test: int = 50, seed: int = 0) -> dict[str, bytes]:
    """Decompressed payloads of a tiny, valid Fashion-MNIST look-alike (all 10 classes)."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_bytes(rng.permutation(np.arange(n_test) % 10)),
    }


def write_gz_dir(folder: Path, payloads: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, payload in payloads.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
    return folder


def checksums(payloads: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(p).hexdigest() for name, p in payloads.items()}
