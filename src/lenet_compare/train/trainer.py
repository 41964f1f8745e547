"""What every backend's Trainer shares (``BaseTrainer``), and the shared helpers of the backends.

A backend's Trainer holds only what its framework does differently (Keras 3's trainers are
built the same way): building the model, one epoch, prediction, its state as named arrays, its
saved model. Here, once:
- the parameter count, from the canonical weights;
- the epoch's data order for train.order "shared" and "fixed" (a backend adds its "native");
- the end of an epoch: a non-finite loss stops the run, the loss and accuracy are averaged over
  the images;
- the checkpoints: the trainer's state as an ``.npz`` of named arrays, written atomically, no
  pickle;
- the saved model's path, the "model file missing" error, and a saved model as an ``.npz`` of
  canonical weights (JAX's, the reference's);
- ``load_for_inference``: start the framework on the CPU, then load its saved model.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from lenet_compare.core.atomic import write_npz
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import get as framework
from lenet_compare.core.spec import LeNetSpec, check_weights
from lenet_compare.train import divergence, minibatches
from lenet_compare.train.protocol import Arrays, Backend

CHECKPOINT_SUFFIX = ".npz"  # every backend's checkpoint: its state() as named arrays


def head(train: dict) -> str:
    """The output head; only the ablation's article steps set "softmax" (ablation.factors)."""
    return train.get("head", "logits")


def require_logits_head(train: dict, framework_key: str) -> None:
    """Refuse the softmax head where a backend trains logits only: that head is the article's
    Keras model (ablation.factors), not a setting of every framework."""
    if head(train) != "logits":
        name = framework(framework_key).name
        raise PipelineError(
            f"head = {head(train)!r}: {name} trains logits with softmax cross-entropy only; the softmax head "
            f"is the article's Keras model (ablation.article.tensorflow), not a setting of {name}"
        )


class BaseTrainer:
    """The shared half of a Trainer (train.protocol.Trainer); ``FRAMEWORK`` is the registry key."""

    FRAMEWORK: str

    def __init__(self, spec: LeNetSpec, train: dict, seed: int, device: str):
        self.spec, self.train, self.seed, self.device = spec, train, seed, device

    # --- the weights -----------------------------------------------------------------------

    def canonical_weights(self) -> Arrays:
        raise NotImplementedError

    @property
    def n_parameters(self) -> int:
        return sum(int(w.size) for w in self.canonical_weights().values())

    # --- the data order --------------------------------------------------------------------

    def epoch_order(self, epoch: int, n: int) -> np.ndarray | None:
        """The order (indices into the training split) in which epoch ``epoch`` visits its ``n``
        images: train.order "shared" draws it from (seed, epoch), "fixed" is the data set's own
        order every epoch (the article's ``DataLoader(shuffle=False)``); "native" is the
        framework's own shuffle (``native_order``)."""
        if self.train["order"] == "shared":
            return minibatches.epoch_permutation(self.seed, epoch, n)
        if self.train["order"] == "fixed":
            return np.arange(n)
        return self.native_order(epoch, n)

    def native_order(self, epoch: int, n: int) -> np.ndarray | None:
        """The framework's own shuffle, seeded with ``minibatches.native_epoch_seed(seed, epoch)`` so
        that it never reuses the random numbers that drew the initial weights; None where the
        framework's training call shuffles by itself (Keras's fit)."""
        raise PipelineError(f"train.order: native has no meaning for {framework(self.FRAMEWORK).name}")

    # --- the end of an epoch ---------------------------------------------------------------

    def epoch_result(self, epoch: int, step_losses: np.ndarray, n_correct: int, n: int) -> tuple[float, float]:
        """(mean loss, accuracy) of an epoch from its minibatches' losses, in order, and its correct
        predictions; a non-finite loss stops the run (divergence.non_finite_loss).

        Loss and accuracy are those of each minibatch at the time it was trained on, averaged
        over all images (what Keras's fit reports too).
        """
        slices = minibatches.batch_slices(n, self.train["batch_size"])
        bad = np.flatnonzero(~np.isfinite(step_losses))
        if bad.size:
            raise divergence.non_finite_loss(epoch, int(bad[0]) + 1, len(slices), float(step_losses[bad[0]]))
        sizes = np.array([s.stop - s.start for s in slices], np.float64)
        return float(np.asarray(step_losses, np.float64) @ sizes / n), n_correct / n

    # --- checkpoints -----------------------------------------------------------------------

    def state(self) -> Arrays:
        raise NotImplementedError

    def load_state(self, state: Arrays) -> None:
        raise NotImplementedError

    def save_checkpoint(self, path: Path) -> None:
        """The state as named arrays, atomically (no pickle): what resuming after this epoch needs."""
        write_npz(path, self.state())

    def load_checkpoint(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as npz:
            self.load_state({k: npz[k] for k in npz.files})

    # --- the saved model -------------------------------------------------------------------

    def model_path(self, model_dir: Path) -> Path:
        return model_path(self.FRAMEWORK, model_dir)

    def peak_gpu_memory_mb(self) -> float | None:
        return None


def model_path(framework_key: str, model_dir: Path) -> Path:
    """Where a framework's saved model lives in a run's model folder (the registry's model_file)."""
    return Path(model_dir) / framework(framework_key).model_file


def saved_model(framework_key: str, model_dir: Path) -> Path:
    """The saved model's path; a PipelineError saying what to run when it is not there."""
    path = model_path(framework_key, model_dir)
    if not path.is_file():
        raise PipelineError(f"{path} is missing; run the train step for this framework and seed first")
    return path


def unreadable(path: Path, error: Exception) -> PipelineError:
    """The error of a saved model that cannot be loaded: whatever the cause, the fix is to retrain."""
    return PipelineError(
        f"cannot load {path}: {type(error).__name__}: {error}. The file is corrupt or from another model spec; "
        "delete it and rerun the train step"
    )


CANONICAL_LAYOUT = "canonical (PyTorch): conv OIHW, dense (out, in), fc1 inputs in (C, H, W) order"


def write_model_npz(path: Path, spec: LeNetSpec, weights: Arrays, libraries: dict[str, str]) -> Path:
    """A saved model as the canonical weights and ``meta`` (JSON: the spec, the layout, the
    libraries that trained it), atomically; ``np.load`` reads it without this package."""
    meta = {
        "model": spec.as_params(),
        "n_parameters": spec.n_parameters,
        "layout": CANONICAL_LAYOUT,
        "libraries": libraries,
    }
    write_npz(path, weights, meta)
    return Path(path)


def read_model_npz(framework_key: str, model_dir: Path, spec: LeNetSpec) -> Arrays:
    """The canonical weights of a saved ``.npz`` model of ``spec``; a missing or corrupt file, or
    one of another spec, is a PipelineError."""
    path = saved_model(framework_key, model_dir)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("model") != spec.as_params():
            raise ValueError(f"it holds the model spec {meta.get('model')}, the run record {spec.as_params()}")
        check_weights(spec, arrays, str(path))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise unreadable(path, e) from e
    return arrays


def load_for_inference(backend: Backend, model_dir: Path, spec: LeNetSpec, threads: int | None = None) -> Any:
    """A trained model on the CPU, its framework started there as the evaluate step runs it
    (deterministic, no TF32); the whole test set then takes about a second."""
    backend.configure("cpu", deterministic=True, tf32=False, seed=0, threads=threads)
    return backend.load_model(model_dir, spec)
