"""PyTorch's backend (train.protocol.Backend): LeNet-5 from the spec, one training epoch,
prediction, saving and loading, and its inference paths.

Imports torch (and no other framework): only the jobs of framework `torch` import this module.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from lenet_compare.core.atomic import atomic_write
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.train import minibatches
from lenet_compare.train.devices import cpu_name
from lenet_compare.train.protocol import IDIOMATIC, NAIVE, Arrays, InferencePath, Progress
from lenet_compare.train.trainer import BaseTrainer, saved_model, unreadable

VERSION = str(torch.__version__)
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
POOLINGS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
PREDICT_BATCH = 1000
CPU = torch.device("cpu")


def build_model(spec: LeNetSpec) -> nn.Sequential:
    """The spec's network; its state_dict keys are the canonical names (conv1.weight, ...)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, conv in enumerate(spec.conv_layers, start=1):
        layers[conv.name] = nn.Conv2d(conv.in_channels, conv.out_channels, spec.kernel_size, padding=conv.padding)
        layers[f"act{i}"] = ACTIVATIONS[spec.activation]()
        layers[f"pool{i}"] = POOLINGS[spec.pooling](2)
    layers["flatten"] = nn.Flatten()  # channel-first (C, H, W): the canonical order of fc1's inputs
    dense = spec.dense_layers
    for j, (name, n_in, n_out) in enumerate(dense, start=1):
        layers[name] = nn.Linear(n_in, n_out)
        if j < len(dense):
            layers[f"fc_act{j}"] = ACTIVATIONS[spec.activation]()
    return nn.Sequential(layers)


def canonical_weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: t.detach().cpu().numpy().copy() for name, t in model.state_dict().items()}


def load_canonical(model: nn.Module, weights: dict[str, np.ndarray]) -> None:
    model.load_state_dict({name: torch.from_numpy(np.asarray(w)) for name, w in weights.items()})


def set_threads(threads: int) -> None:
    """The CPU threads of this process's kernels (intra-op) and of ops run side by side (inter-op).

    Set explicitly, not left to OMP_NUM_THREADS, which Snakemake exports and DVC does not: the
    thread count can change how a kernel splits a sum, and so the last bits of its result.
    """
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        # Allowed once per process, before any inter-op parallel work (load_for_inference
        # after training, in one process, asks again for the same count).
        torch.set_num_interop_threads(threads)


def thread_counts() -> dict:
    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


def sees_gpu() -> bool:
    return torch.cuda.is_available()


def gpu_view() -> str:
    """What PyTorch sees, for the error of a GPU job it cannot run (devices.gpu_not_seen)."""
    return (
        f"torch.cuda.is_available() is {torch.cuda.is_available()}, "
        f"torch.cuda.device_count() = {torch.cuda.device_count()} "
        f"(torch {VERSION}, built for CUDA {torch.version.cuda})"
    )


def find_c_compiler() -> str | None:
    """The C compiler Triton would build its GPU kernels with: $CC, else gcc, else clang
    (triton/runtime/build.py, _find_compiler); None when there is none."""
    cc = os.environ.get("CC")
    if cc is not None:
        return shutil.which(cc)
    return shutil.which("gcc") or shutil.which("clang")


def preflight(device: str, train: dict) -> None:
    """Stop before training when the chosen path cannot run here.

    The fast path's torch.compile generates Triton kernels on a GPU, and Triton compiles a small
    C launcher for them the first time a kernel runs: without a C compiler the job would fail
    minutes in, at its first step, with an error that names neither the param nor the fix.
    """
    if device == "cuda" and train["fast"] and find_c_compiler() is None:
        raise PipelineError(
            "train.fast: true compiles PyTorch's training step with torch.compile, and on a GPU Triton "
            "builds its kernels with a C compiler; none was found "
            f"(CC={os.environ.get('CC')!r}, no gcc or clang on PATH). Install one (e.g. apt-get install gcc), "
            "set CC to its path, or set train.fast: false in params.yaml (the plain loop: the same "
            "training, slower). Nothing was written."
        )


def configure(device: str, deterministic: bool, tf32: bool, seed: int, threads: int | None = None) -> tuple[str, str]:
    """Set the threads (when given), the device, determinism and TF32; returns (device, the
    device's name).

    ``device`` is "cuda" or "cpu", decided by devices.resolve_device; the caller has checked
    that PyTorch sees the GPU (job.start_framework).
    """
    if threads is not None:
        set_threads(threads)
    if deterministic:
        # cuBLAS needs this before its first call to be deterministic (PyTorch docs, "Reproducibility").
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    # TF32 off unless asked: PyTorch allows it for cuDNN convolutions by default.
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(seed)
    if device == "cuda":
        return "cuda", torch.cuda.get_device_name(0)
    return "cpu", cpu_name()


def make_optimizer(model: nn.Module, train: dict) -> torch.optim.Adam:
    """Adam with the params' lr, betas and eps.

    PyTorch's Adam adds eps to the bias-corrected sqrt(v_hat); Keras's Adam does not, see
    tensorflow_backend.make_optimizer for what that changes. The fast path uses the fused
    implementation (one kernel for all parameters instead of a loop of small ops per
    parameter): the same update, in float32, up to rounding.
    """
    fused = True if train["fast"] else None
    return torch.optim.Adam(
        model.parameters(), lr=train["lr"], betas=tuple(train["betas"]), eps=train["eps"], fused=fused
    )


class Trainer(BaseTrainer):
    """Holds the model, optimizer and training data on the device; one method per epoch.

    Two paths train the same algorithm (same minibatches in the same order, same initial
    weights, same Adam); tests/test_fast_path.py checks their per-step losses agree:
    - plain (train.fast: false): the whole training split as one resident tensor,
      index_select of each minibatch, eager forward/backward, Adam's per-parameter loop.
    - fast (train.fast: true, the default): the epoch's permutation applied once, so each
      minibatch is a contiguous view (no gather per step); the model under torch.compile
      (its forward and backward become a few fused kernels: C++ on a CPU, Triton on a GPU);
      fused Adam. Python's per-op overhead, not arithmetic, dominates a batch-32 LeNet step.
    """

    FRAMEWORK = "torch"

    def __init__(self, spec: LeNetSpec, train: dict, seed: int, device: str, init: Arrays | None):
        super().__init__(spec, train, seed, device)
        self.torch_device = torch.device(device)
        if init is None:
            torch.manual_seed(seed)  # init: native, PyTorch's own initializers, seeded
        self.model = build_model(spec)
        if init is not None:
            load_canonical(self.model, init)
        self.model.to(device)
        self.optimizer = make_optimizer(self.model, train)
        # The compiled module shares self.model's parameters; predict and save use self.model.
        self.step_model: nn.Module = torch.compile(self.model) if train["fast"] else self.model  # type: ignore[assignment]
        self.loss_fn = nn.CrossEntropyLoss()
        self.x = self.y = torch.zeros(0)
        self.step_losses = np.zeros(0, np.float32)  # the last epoch's minibatch losses, in order

    def canonical_weights(self) -> dict[str, np.ndarray]:
        return canonical_weights(self.model)

    def details(self) -> dict:
        """How this framework ran, for the run record."""
        if self.train["fast"]:
            path = "fast: per-epoch permuted resident tensor, contiguous minibatches, torch.compile, fused Adam"
        else:
            path = "plain: index_select minibatches of resident tensors, eager step, Adam"
        return {
            "train_path": path,
            "threads": thread_counts(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_version": torch.backends.cudnn.version() if self.device == "cuda" else None,
        }

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the whole training split on the device as one tensor: no per-batch DataLoader."""
        self.x = torch.from_numpy(x).unsqueeze(1).to(self.torch_device)  # (N, 1, 28, 28)
        self.y = torch.from_numpy(y).to(self.torch_device)

    def native_order(self, epoch: int, n: int) -> np.ndarray:
        """Like a DataLoader(shuffle=True) with a seeded generator: one randperm per epoch."""
        generator = torch.Generator().manual_seed(minibatches.native_epoch_seed(self.seed, epoch))
        return torch.randperm(n, generator=generator).numpy()

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This path's minibatches of epoch ``epoch``, in training order, as device tensors."""
        order = torch.from_numpy(self.epoch_order(epoch, len(self.y))).to(self.torch_device)
        slices = minibatches.batch_slices(len(order), self.train["batch_size"])
        if self.train["fast"]:
            x, y = self.x.index_select(0, order), self.y.index_select(0, order)
            for batch in slices:
                yield x[batch], y[batch]
        else:
            for batch in slices:
                idx = order[batch]
                yield self.x.index_select(0, idx), self.y.index_select(0, idx)

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on one minibatch; its loss and number of correct predictions
        (before the update), left on the device."""
        logits = self.step_model(xb)
        loss = self.loss_fn(logits, yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            return loss.detach(), (logits.argmax(1) == yb).sum()

    def train_epoch(self, epoch: int, progress: Progress | None = None) -> tuple[float, float, float]:
        """One pass over the training data; returns (mean loss, accuracy, seconds)
        (BaseTrainer.epoch_result). The per-step losses are kept in ``self.step_losses``."""
        self.step_model.train()
        start = time.perf_counter()
        n = len(self.y)
        slices = minibatches.batch_slices(n, self.train["batch_size"])
        # Collected on the device: no GPU-to-CPU sync per step.
        losses = torch.empty(len(slices), device=self.torch_device)
        correct = torch.zeros((), dtype=torch.int64, device=self.torch_device)
        for i, (xb, yb) in enumerate(self.batches(epoch)):
            losses[i], batch_correct = self.step(xb, yb)
            correct += batch_correct
            if progress is not None:
                progress.update(1)
        self.step_losses = losses.cpu().numpy()
        loss_mean, acc = self.epoch_result(epoch, self.step_losses, int(correct.item()), n)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return loss_mean, acc, time.perf_counter() - start

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict(self.model, x, self.torch_device)

    def save(self, model_dir: Path) -> Path:
        path = self.model_path(model_dir)
        with atomic_write(path) as f:
            torch.save(self.model.state_dict(), f)
        return path

    def state(self) -> Arrays:
        """A copy of the weights ("model.conv1.weight", ...) and of Adam's state per parameter
        ("optimizer.0.exp_avg", ...; step, moments): all that the next step depends on."""
        arrays = {f"model.{k}": v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}
        for i, param_state in self.optimizer.state_dict()["state"].items():
            for k, v in param_state.items():
                arrays[f"optimizer.{i}.{k}"] = v.detach().cpu().numpy().copy()
        return arrays

    def load_state(self, state: Arrays) -> None:
        self.model.load_state_dict(
            {
                k.removeprefix("model."): torch.from_numpy(np.array(v))
                for k, v in state.items()
                if k.startswith("model.")
            }
        )
        # This optimizer's own param groups (lr, betas, eps and its implementation: fused or not)
        # with the saved numbers, so a plain path's state loads into a fast trainer as numbers only.
        optimizer = self.optimizer.state_dict()
        optimizer["state"] = {}
        for k, v in state.items():
            if k.startswith("optimizer."):
                _, i, name = k.split(".", 2)
                optimizer["state"].setdefault(int(i), {})[name] = torch.from_numpy(np.array(v))
        self.optimizer.load_state_dict(optimizer)

    def peak_gpu_memory_mb(self) -> float | None:
        if self.device != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.torch_device) / 2**20


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, device: torch.device = CPU) -> np.ndarray:
    """Logits (N, classes) float32 of images x (N, 28, 28), in evaluation mode, PREDICT_BATCH at a time."""
    model.eval()
    out = []
    for batch in minibatches.batch_slices(len(x), PREDICT_BATCH):
        xb = torch.from_numpy(x[batch]).unsqueeze(1).to(device)
        out.append(model(xb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


def load_model(model_dir: Path, spec: LeNetSpec) -> nn.Module:
    """The trained model on the CPU, in evaluation mode; a missing or corrupt file is a PipelineError."""
    path = saved_model(Trainer.FRAMEWORK, model_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(spec)
        model.load_state_dict(state)
    except Exception as e:  # a truncated zip, foreign pickle or other tensors: all mean "retrain"
        raise unreadable(path, e) from e
    return model.eval()


def inference_paths(model: nn.Module) -> list[InferencePath]:
    """PyTorch's naive call and its idiomatic inference paths, on the model's device (the CPU)."""
    model.eval()
    # dynamic=False: one static graph per batch size. The default (dynamic=None) would recompile
    # with symbolic shapes at the second size, and time a more general kernel at both.
    compiled = torch.compile(model, dynamic=False)

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28), no copy

    def naive(x: np.ndarray) -> np.ndarray:
        return model(tensor(x)).detach().numpy()  # autograd records the graph; detach to read it

    def inference_mode(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(tensor(x)).numpy()

    def compiled_call(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return compiled(tensor(x)).numpy()

    return [
        InferencePath(NAIVE, "model(x)", naive),
        InferencePath(IDIOMATIC, "with torch.inference_mode(): model(x)", inference_mode),
        InferencePath(IDIOMATIC, "with torch.inference_mode(): torch.compile(model, dynamic=False)(x)", compiled_call),
    ]


if TYPE_CHECKING:  # the type checker holds this module to the protocol (make lint)
    from lenet_compare.train.backends.torch import backend as _this
    from lenet_compare.train.protocol import Backend

    _conforms: Backend = _this
