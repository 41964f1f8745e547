"""The framework-specific module of each framework; importing one imports that framework only.

Framework ``f`` lives in ``lenet_compare/train/{f}_backend.py``, so the Snakemake rules and DVC
stages can name a job's own backend as a dependency from the framework wildcard alone.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lenet_compare.core.frameworks import FRAMEWORKS


def import_backend(framework: str) -> ModuleType:
    """lenet_compare.train.torch_backend or lenet_compare.train.tensorflow_backend (Keras); never both."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    return importlib.import_module(f"lenet_compare.train.{framework}_backend")
