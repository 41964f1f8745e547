"""Write files so that a reader never sees half of one: temp file in the same folder, then rename.

A crash or a kill leaves at worst a hidden ``.*.tmp`` file, never a truncated artifact under
the real name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from lenet_compare.core.errors import PipelineError


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp file's path beside ``path``, for a writer that takes a path, not a file object (Keras's
    ``model.save`` insists on a name ending in ``.keras``: pass ``suffix=".tmp.keras"``). On success
    the file is fsynced and renamed over ``path``; on failure removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise PipelineError(f"cannot write {path}: {e.strerror}; check that {path.parent} is writable") from e
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success fsync and rename it over ``path``."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], meta: dict | None = None) -> None:
    """Named arrays as an .npz (readable with ``allow_pickle=False``); ``meta``, when given, as a
    0-d string array ``meta`` holding its JSON."""
    named = dict(arrays) if meta is None else {**arrays, "meta": np.array(json.dumps(meta))}
    with atomic_write(path) as f:
        # numpy's stubs type allow_pickle among the keyword names, as if a name could clash with it
        np.savez(f, **named)  # type: ignore[arg-type]


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)
