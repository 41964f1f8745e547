"""PyTorch side: LeNet-5 from the spec, one training epoch, prediction, saving and loading.

Imports torch (and never tensorflow): only the train and evaluate steps of framework `torch`
import this module.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lenet_compare.core.atomic import atomic_write
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.train import divergence, minibatches
from lenet_compare.train.devices import cpu_name

CHECKPOINT_SUFFIX = ".pt"
MODEL_FILE = "model.pt"
VERSION = torch.__version__
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
POOLINGS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
PREDICT_BATCH = 1000
CPU = torch.device("cpu")
# Adam's param-group settings that choose how it computes, not what.
IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")


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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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


class Trainer:
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

    def __init__(self, spec: LeNetSpec, train: dict, seed: int, device: str, init: dict | None):
        self.spec, self.train, self.seed, self.device = spec, train, seed, torch.device(device)
        if init is None:
            torch.manual_seed(seed)  # init: native, PyTorch's own initializers, seeded
        self.model = build_model(spec)
        if init is not None:
            load_canonical(self.model, init)
        self.model.to(device)
        self.optimizer = make_optimizer(self.model, train)
        # The compiled module shares self.model's parameters; predict and save use self.model.
        self.step_model = torch.compile(self.model) if train["fast"] else self.model
        self.loss_fn = nn.CrossEntropyLoss()
        self.x = self.y = None
        self.step_losses = np.zeros(0, np.float32)  # the last epoch's minibatch losses, in order

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.model)

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
            "cudnn_version": torch.backends.cudnn.version() if self.device.type == "cuda" else None,
        }

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the whole training split on the device as one tensor: no per-batch DataLoader."""
        self.x = torch.from_numpy(x).unsqueeze(1).to(self.device)  # (N, 1, 28, 28)
        self.y = torch.from_numpy(y).to(self.device)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        n = len(self.y)
        if self.train["order"] == "shared":
            return torch.from_numpy(minibatches.epoch_permutation(self.seed, epoch, n)).to(self.device)
        if self.train["order"] == "fixed":
            # DataLoader(shuffle=False), the article's PyTorch code: the data set's order every epoch.
            return torch.arange(n, device=self.device)
        # Like a DataLoader(shuffle=True) with a seeded generator: one randperm per epoch. The
        # generator gets its own seed per epoch (minibatches.native_epoch_seed, as on the Keras
        # side), so the order never reuses the random numbers that drew the initial weights.
        generator = torch.Generator().manual_seed(minibatches.native_epoch_seed(self.seed, epoch))
        return torch.randperm(n, generator=generator).to(self.device)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This path's minibatches of epoch ``epoch``, in training order, as device tensors."""
        order = self.epoch_order(epoch)
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

    def train_epoch(self, epoch: int, progress=None) -> tuple[float, float, float]:
        """One pass over the training data; returns (mean loss, accuracy, seconds).

        Loss and accuracy are those of each minibatch at the time it was trained on, averaged
        over all images (what Keras's fit reports too). The per-step losses are kept in
        ``self.step_losses``.
        """
        self.step_model.train()
        start = time.perf_counter()
        n = len(self.y)
        slices = minibatches.batch_slices(n, self.train["batch_size"])
        # Collected on the device: no GPU-to-CPU sync per step.
        losses = torch.empty(len(slices), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for i, (xb, yb) in enumerate(self.batches(epoch)):
            losses[i], batch_correct = self.step(xb, yb)
            correct += batch_correct
            if progress is not None:
                progress.update(1)
        self.step_losses = losses.cpu().numpy()
        bad = np.flatnonzero(~np.isfinite(self.step_losses))
        if bad.size:
            raise divergence.non_finite_loss(epoch, int(bad[0]) + 1, len(slices), float(self.step_losses[bad[0]]))
        sizes = np.array([b.stop - b.start for b in slices], np.float64)
        loss_mean = float(self.step_losses.astype(np.float64) @ sizes / n)
        acc = correct.item() / n
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return loss_mean, acc, time.perf_counter() - start

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict(self.model, x, self.device)

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / MODEL_FILE
        with atomic_write(path) as f:
            torch.save(self.model.state_dict(), f)
        return path

    def state(self) -> dict:
        """A copy of the weights and optimizer state: all that the next step depends on."""
        return copy.deepcopy({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()})

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        # load_state_dict takes every setting of the saved param groups, the implementation
        # (fused or not) included; that stays this trainer's, so a plain path's state loads
        # into a fast trainer as numbers only.
        implementation = [{k: g[k] for k in IMPLEMENTATION_KEYS if k in g} for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        for group, keep in zip(self.optimizer.param_groups, implementation, strict=True):
            group.update(keep)

    def save_checkpoint(self, path: Path) -> None:
        """Weights and optimizer state, atomically: what resuming after this epoch needs."""
        with atomic_write(path) as f:
            torch.save(self.state(), f)

    def load_checkpoint(self, path: Path) -> None:
        self.load_state(torch.load(path, map_location=self.device, weights_only=True))

    def peak_gpu_memory_mb(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, device: torch.device = CPU) -> np.ndarray:
    """Logits (N, classes) float32 of images x (N, 28, 28), in evaluation mode, PREDICT_BATCH at a time."""
    model.eval()
    out = []
    for batch in minibatches.batch_slices(len(x), PREDICT_BATCH):
        xb = torch.from_numpy(x[batch]).unsqueeze(1).to(device)
        out.append(model(xb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


@torch.no_grad()
def load_for_inference(model_dir: Path, spec: LeNetSpec, threads: int | None = None) -> nn.Module:
    """The trained model on the CPU in evaluation mode (10,000 test images take ~1 s)."""
    configure("cpu", deterministic=True, tf32=False, seed=0, threads=threads)
    return load_model(model_dir, spec).eval()


def load_model(model_dir: Path, spec: LeNetSpec) -> nn.Module:
    """The trained model on the CPU; a missing or corrupt file is a PipelineError."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise PipelineError(f"{path} is missing; run the train step for this framework and seed first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(spec)
        model.load_state_dict(state)
    except Exception as e:  # a truncated zip, foreign pickle or other tensors: all mean "retrain"
        raise PipelineError(
            f"cannot load {path}: {type(e).__name__}: {e}. The file is corrupt or from another model "
            "spec; delete it and rerun the train step"
        ) from e
    return model
