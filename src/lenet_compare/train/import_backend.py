"""A framework's backend module, by its registry key (train/backends/{key}/backend.py)."""

from __future__ import annotations

import importlib
from typing import cast

from lenet_compare.core.frameworks import get
from lenet_compare.train.protocol import Backend


def import_backend(framework: str) -> Backend:
    """The backend module of ``framework`` (a registry key); never two frameworks in one process."""
    return cast(Backend, importlib.import_module(get(framework).backend_module))
