"""What both training steps (train, ablation_train) do around the epoch loop.

Start the framework: claim a GPU when the job will use one, import the one framework, set its
threads, device, determinism and TF32 from the params. Then train one run: build the
trainer, load the data, resume from a matching checkpoint, run the epochs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lenet_compare.core import cli, spec
from lenet_compare.core.frameworks import get
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.train import checkpoints, divergence, init_weights, loop, minibatches, protocol, scores
from lenet_compare.train import trainer as base_trainer
from lenet_compare.train.devices import gpu_not_seen, require_gpu_if_asked, resolve_device
from lenet_compare.train.gpu_slots import claim_gpu_for_this_process
from lenet_compare.train.import_backend import import_backend

if TYPE_CHECKING:
    from lenet_compare.train.live import LiveRun
    from lenet_compare.train.protocol import Backend, Trainer

# The modules besides the framework's backend whose code decides what a training step computes.
TRAINING_CODE = (loop, minibatches, init_weights, scores, divergence, spec, base_trainer, protocol)


def training_code(framework: str) -> list[Path]:
    """The files whose bytes a checkpoint's fingerprint covers: the framework's backend folder
    and TRAINING_CODE (checkpoints.fingerprint)."""
    found = importlib.util.find_spec(get(framework).backend_module)  # found, not imported
    assert found is not None and found.origin is not None, framework
    own = sorted(Path(found.origin).parent.glob("*.py"))
    return own + [Path(str(module.__file__)) for module in TRAINING_CODE]


@dataclass
class Framework:
    """One framework, started in this process."""

    name: str
    backend: Backend
    device: str  # "cuda" or "cpu"
    device_name: str
    gpu_claim: object | None  # the GPU's lock, held as long as this object lives


def start_framework(name: str, train: dict, seed: int, gpu_wait_seconds: float) -> Framework:
    """Fails before anything is written when the params ask for a GPU that is not there, or
    when the job will use a GPU that its framework cannot see (no silent CPU fallback)."""
    require_gpu_if_asked(train["device"])
    device = resolve_device(train["device"])
    # Concurrent GPU jobs each take a GPU of their own (CUDA_VISIBLE_DEVICES, set before the
    # framework is imported); the lock lasts as long as the claim.
    gpu_claim = claim_gpu_for_this_process(gpu_wait_seconds) if device == "cuda" else None
    backend = import_backend(name)
    check_can_run(name, backend, device, train)
    device, device_name = backend.configure(
        device, train["deterministic"], train["tf32"], seed, threads=train["threads"]
    )
    return Framework(name, backend, device, device_name, gpu_claim)


def check_can_run(name: str, backend: Backend, device: str, train: dict) -> None:
    """The framework must see the GPU the job was scheduled on, and the chosen training path
    must have what it needs there (backend.preflight), before any work starts."""
    if device == "cuda" and not backend.sees_gpu():
        raise gpu_not_seen(get(name).name, backend.gpu_view(), train["device"])
    backend.preflight(device, train)


@dataclass
class Run:
    """A finished training run: the trained trainer, one history row per epoch, its checkpoints."""

    trainer: Trainer
    rows: list[dict]
    checkpoints: checkpoints.Checkpoints
    steps_per_epoch: int


def train_run(
    framework: Framework,
    seed: int,
    model: dict,
    train: dict,
    data: dict[str, np.ndarray],
    init: dict[str, np.ndarray] | None,
    checkpoint_dir: Path,
    label: str = "",
    live: LiveRun | None = None,
) -> Run:
    """Train ``train["epochs"]`` epochs of LeNet-5 ``model`` from ``init`` (None: the
    framework's own initializers), resuming from ``checkpoint_dir`` when it matches."""
    spec = LeNetSpec.from_params(model)
    backend = framework.backend
    trainer = backend.Trainer(spec, train, seed, framework.device, init)
    if trainer.n_parameters != spec.n_parameters:
        raise AssertionError(f"{framework.name} built {trainer.n_parameters} parameters, spec {spec.n_parameters}")
    trainer.set_training_data(data["x_train"], data["y_train"])
    steps = len(minibatches.batch_slices(len(data["y_train"]), train["batch_size"]))
    key = checkpoints.fingerprint(
        framework.name,
        seed,
        model,
        train,
        data["x_train"],
        data["y_train"],
        backend.VERSION,
        training_code(framework.name),
    )
    saved = checkpoints.Checkpoints(checkpoint_dir, key)
    rows = loop.run_epochs(trainer, train, data["x_val"], data["y_val"], steps, saved, label=label, live=live)
    return Run(trainer, rows, saved, steps)


def log_start(framework: Framework, seed: int, what: str) -> None:
    cli.log.info(
        "%s %s on %s (%s), seed %d: %s",
        framework.name,
        framework.backend.VERSION,
        framework.device,
        framework.device_name,
        seed,
        what,
    )
