"""Parse the IDX format of (Fashion-)MNIST, checking everything a damaged file could get wrong.

IDX: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each
dimension as a big-endian uint32, then the data in C order.
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np

from lenet_compare.core.errors import PipelineError

UBYTE = 0x08
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
# What gzip raises for a truncated or corrupt stream.
GZIP_ERRORS = (OSError, EOFError, zlib.error)


def gunzip(blob: bytes, name: str) -> bytes:
    """Decompress a .gz payload; a truncated or corrupt file is a PipelineError naming it."""
    try:
        return gzip.decompress(blob)
    except GZIP_ERRORS as e:
        raise PipelineError(
            f"{name}: not a valid gzip file ({e}); the download is truncated or corrupt, delete it and fetch it again"
        ) from e


def parse_idx(payload: bytes, name: str, ndim: int) -> np.ndarray:
    """Return the array in an IDX payload after checking magic, dimensions and length."""
    if len(payload) < 4:
        raise PipelineError(f"{name}: {len(payload)} bytes is too short for an IDX header")
    zero, dtype, dims = int.from_bytes(payload[:2], "big"), payload[2], payload[3]
    if zero != 0 or dtype != UBYTE or dims != ndim:
        raise PipelineError(
            f"{name}: wrong IDX magic number 0x{payload[:4].hex()} "
            f"(expected 0x0000{UBYTE:02x}{ndim:02x}: unsigned bytes, {ndim} dimension(s))"
        )
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise PipelineError(f"{name}: IDX header is truncated ({len(payload)} bytes)")
    shape = tuple(int.from_bytes(payload[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(payload) != expected:
        raise PipelineError(
            f"{name}: header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(payload)} bytes; the file is truncated or corrupt"
        )
    return np.frombuffer(payload, dtype=np.uint8, offset=header).reshape(shape)


def parse_images(payload: bytes, name: str) -> np.ndarray:
    images = parse_idx(payload, name, ndim=3)
    if images.shape[1:] != IMAGE_SHAPE:
        raise PipelineError(f"{name}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    return images


def parse_labels(payload: bytes, name: str) -> np.ndarray:
    labels = parse_idx(payload, name, ndim=1)
    if labels.size and labels.max() >= N_CLASSES:
        bad = np.flatnonzero(labels >= N_CLASSES)
        raise PipelineError(
            f"{name}: {bad.size} label(s) outside 0-{N_CLASSES - 1}, first at index {bad[0]} (value {labels[bad[0]]})"
        )
    return labels.astype(np.int64)
