"""What the framework-free code calls on a framework: the ``Backend`` (a module) and its ``Trainer``.

Each framework's ``train/backends/{key}/backend.py`` is a module that follows ``Backend``; its
``Trainer`` class follows ``Trainer``, usually by subclassing ``train.trainer.BaseTrainer``, which
holds what every backend shares. Every backend module ends with a check that it follows
``Backend`` (seen only by the type checker), so the type checker in ``make lint`` fails on a backend that drifts
from this protocol: a renamed method, a missing function, another signature.

The words, one per concept across all backends:
- ``configure``: set threads, device, determinism and TF32, start the framework; ``preflight``:
  refuse the params the chosen path cannot run, before any work.
- ``sees_gpu`` / ``gpu_view``: whether the framework sees a GPU, and what it sees, in words.
- ``thread_counts``: the threads the framework runs with (intra-op, inter-op), for the records.
- ``load_model`` / ``predict``: a saved model back on the CPU, and its logits.
- ``inference_paths``: the naive and the idiomatic ways of calling a loaded model
  (evaluate.inference_timing times them).
- A Trainer's ``train_epoch`` trains one epoch; ``state`` / ``load_state`` are all that the next
  step depends on, as named arrays (the checkpoints are ``.npz`` files of them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lenet_compare.core.spec import LeNetSpec

# Named arrays: weights, a checkpoint's state.
Arrays = dict[str, np.ndarray]

# The kinds of inference path (evaluate.inference_timing).
NAIVE, IDIOMATIC = "naive", "idiomatic"


@dataclass(frozen=True)
class InferencePath:
    """One way of calling a loaded model, from numpy images to numpy logits."""

    kind: str  # NAIVE: the call a first attempt makes; IDIOMATIC: the framework's own way of serving
    call: str  # the exact call, as the report names it
    run: Callable[[np.ndarray], np.ndarray]  # images (N, 28, 28) float32 -> logits (N, classes)


class Progress(Protocol):
    """A progress bar (tqdm's update)."""

    def update(self, n: float | None = 1) -> bool | None: ...


class Trainer(Protocol):
    """One training run of one framework: the model, its optimizer and the training data."""

    @property
    def n_parameters(self) -> int: ...

    def canonical_weights(self) -> Arrays:
        """The weights in the canonical layout (PyTorch's names and shapes; core.spec)."""
        ...

    def details(self) -> dict[str, Any]:
        """How this framework ran, for the run record."""
        ...

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None: ...

    def train_epoch(self, epoch: int, progress: Progress | None = None) -> tuple[float, float, float]:
        """One pass over the training data: (mean loss, accuracy, seconds)."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, classes) float32 of images (N, 28, 28)."""
        ...

    def save(self, model_dir: Path) -> Path:
        """The trained model, in the framework's own file (the registry's model_file)."""
        ...

    def state(self) -> Arrays: ...

    def load_state(self, state: Arrays) -> None: ...

    def save_checkpoint(self, path: Path) -> None: ...

    def load_checkpoint(self, path: Path) -> None: ...

    def peak_gpu_memory_mb(self) -> float | None: ...


class TrainerClass(Protocol):
    """How a backend builds a Trainer: the spec, the train params, the seed, the device, and the
    initial weights (None: the framework's own initializers)."""

    def __call__(self, spec: LeNetSpec, train: dict, seed: int, device: str, init: Arrays | None) -> Trainer: ...


class Backend(Protocol):
    """A framework's backend module (``train/backends/{key}/backend.py``)."""

    VERSION: str  # the framework's version(s): run.json and the checkpoints' fingerprint

    @property
    def Trainer(self) -> TrainerClass: ...

    def configure(
        self, device: str, deterministic: bool, tf32: bool, seed: int, threads: int | None = None
    ) -> tuple[str, str]:
        """Set threads (when given), device, determinism and TF32; (device, the device's name)."""
        ...

    def preflight(self, device: str, train: dict) -> None: ...

    def sees_gpu(self) -> bool: ...

    def gpu_view(self) -> str: ...

    def thread_counts(self) -> dict[str, int | None]: ...

    def load_model(self, model_dir: Path, spec: LeNetSpec) -> Any:
        """The saved model on the CPU; a PipelineError when it is missing, corrupt or of another spec."""
        ...

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray: ...

    def inference_paths(self, model: Any) -> list[InferencePath]: ...
