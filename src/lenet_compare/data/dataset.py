"""Build the one prepared cache (data/prepared/fashion_mnist.npz) from the raw IDX files.

The cache holds (docs/design.md, "Files"): x_train, y_train, x_val, y_val, x_test, y_test, with x float32
(N, 28, 28) and y int64, plus metadata: class names, normalization constants, the payload
checksums of the raw files, and where each train/val image came from in the training set.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from lenet_compare.core.atomic import write_npz
from lenet_compare.core.errors import PipelineError
from lenet_compare.data.fashion_mnist import CLASS_NAMES
from lenet_compare.data.idx import N_CLASSES, gunzip, parse_images, parse_labels

ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def read_split(raw_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Read ``{prefix}-images`` and ``{prefix}-labels`` (prefix: train or t10k)."""
    checksums = {}
    parsed = []
    for kind, ndim_parser in (("images-idx3", parse_images), ("labels-idx1", parse_labels)):
        name = f"{prefix}-{kind}-ubyte.gz"
        path = raw_dir / name
        try:
            blob = path.read_bytes()
        except OSError as e:
            raise PipelineError(f"cannot read {path}: {e.strerror}; run the download step") from e
        payload = gunzip(blob, str(path))
        checksums[name.removesuffix(".gz")] = hashlib.sha256(payload).hexdigest()
        parsed.append(ndim_parser(payload, str(path)))
    images, labels = parsed
    if len(images) != len(labels):
        raise PipelineError(
            f"{raw_dir}/{prefix}-*: {len(images)} images but {len(labels)} labels; the files do not belong together"
        )
    return images, labels, checksums


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val), each sorted, with val holding ``val_size`` images in class proportion.

    Per-class quotas are val_size * class share, rounded down, with the remainder going to
    the classes with the largest fractional parts (ties: lower class first), so the sizes
    add up exactly. Which images of a class go to val is drawn with ``seed``.
    """
    if not 0 < val_size < len(labels):
        raise PipelineError(f"data.val_size = {val_size} must be between 1 and {len(labels) - 1}")
    counts = np.bincount(labels, minlength=N_CLASSES)
    exact = val_size * counts / len(labels)
    quota = np.floor(exact).astype(np.int64)
    order = sorted(range(N_CLASSES), key=lambda k: (-(exact[k] - quota[k]), k))
    for k in order[: val_size - quota.sum()]:
        quota[k] += 1
    rng = np.random.default_rng(seed)
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == k))[: quota[k]] for k in range(N_CLASSES)])
    val.sort()
    train = np.setdiff1d(np.arange(len(labels)), val, assume_unique=True)
    return train, val


def prepare(raw_dir: str | Path, data_params: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Return the prepared arrays and their metadata (nothing is written)."""
    raw_dir = Path(raw_dir)
    train_images, train_labels, sums_train = read_split(raw_dir, "train")
    test_images, test_labels, sums_test = read_split(raw_dir, "t10k")

    # Limits take the first N images, so a limited run sees a prefix of the full one.
    pool = data_params["limit_train"] or len(train_images)
    n_test = data_params["limit_test"] or len(test_images)
    if pool > len(train_images) or n_test > len(test_images):
        raise PipelineError(
            f"data.limit_train = {pool} / data.limit_test = {n_test} exceed the "
            f"{len(train_images)} / {len(test_images)} images in {raw_dir}"
        )
    train_idx, val_idx = stratified_split(train_labels[:pool], data_params["val_size"], data_params["split_seed"])

    def unit(images: np.ndarray) -> np.ndarray:
        return images.astype(np.float32) / np.float32(255)

    arrays = {
        "x_train": unit(train_images[train_idx]),
        "y_train": train_labels[train_idx],
        "x_val": unit(train_images[val_idx]),
        "y_val": train_labels[val_idx],
        "x_test": unit(test_images[:n_test]),
        "y_test": test_labels[:n_test],
        # Positions in the original training set: lets anyone trace an image back.
        "train_index": train_idx,
        "val_index": val_idx,
    }
    mean, std = 0.0, 1.0
    if data_params["normalize"] == "standardize":
        # Constants from the training split only: val and test must not leak into them.
        mean = float(arrays["x_train"].mean(dtype=np.float64))
        std = float(arrays["x_train"].std(dtype=np.float64))
        for name in ("x_train", "x_val", "x_test"):
            arrays[name] = (arrays[name] - np.float32(mean)) / np.float32(std)
    meta = {
        "class_names": list(CLASS_NAMES),
        "normalize": data_params["normalize"],
        "normalization": {"formula": "(x / 255 - mean) / std", "mean": mean, "std": std},
        "val_size": data_params["val_size"],
        "split_seed": data_params["split_seed"],
        "limit_train": data_params["limit_train"],
        "limit_test": data_params["limit_test"],
        "payload_sha256": {**sums_train, **sums_test},
        "sizes": {name: len(arrays[name]) for name in ("y_train", "y_val", "y_test")},
        "class_counts": {
            name: np.bincount(arrays[name], minlength=N_CLASSES).tolist() for name in ("y_train", "y_val", "y_test")
        },
    }
    return arrays, meta


def save_prepared(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    write_npz(path, arrays, meta)


def load_prepared(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Load the cache written by save_prepared (no pickles: allow_pickle stays off)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name != "meta"}
            meta = json.loads(str(npz["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise PipelineError(f"{path} is missing or not a prepared cache ({e}); rerun the prepare step") from e
    missing = [name for name in ARRAYS if name not in arrays]
    if missing:
        raise PipelineError(f"{path} lacks {', '.join(missing)}; rerun the prepare step")
    return arrays, meta
