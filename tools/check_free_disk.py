"""Stop `make setup` before pip starts when the disk cannot hold the environment.

The venv of requirements.txt is large (torch's and TensorFlow's CUDA libraries; sizes in
docs/development.md). When the disk fills, pip stops half-way with "[Errno 28] No space left on
device" and leaves a broken .venv/; this check fails at once instead, says how much is needed and
free, and where space usually goes. Standard library only: it runs before the venv exists.

    python tools/check_free_disk.py PATH NEED_GIB
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

GIB = 1024**3


def nearest_existing(path: Path) -> Path:
    """``path`` or the closest folder above it that exists (the venv may not exist yet)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def problem(path: Path, need_gib: float) -> str | None:
    """Why the filesystem holding ``path`` is too full, or None when it has room."""
    where = nearest_existing(path)
    free = shutil.disk_usage(where).free
    if free >= need_gib * GIB:
        return None
    return (
        f"error: make setup needs about {need_gib:g} GiB free on the disk of {where}, "
        f"and only {free / GIB:.1f} GiB are free.\n"
        "       pip would stop half-way with 'No space left on device' and leave a broken "
        ".venv/.\n"
        "       Free some space first: old clones of this repository (each has its own .venv/), "
        "pytest's and torch.compile's folders in /tmp (pytest-of-*, torchinductor_*), "
        "~/.cache/pip.\n"
        "       Then run make setup again."
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    message = problem(Path(argv[0]), float(argv[1]))
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
