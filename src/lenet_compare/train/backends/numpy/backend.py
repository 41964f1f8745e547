"""A float64 NumPy reference (train.protocol.Backend): the spec computed by hand, forward and
backward, with PyTorch's Adam; no framework wrote any of it.

It is there to check the frameworks, not to race them (core.frameworks: not in the default
study): float64 carries 29 more bits than float32, so its logits, losses and gradients stand
for the exact values that the float32 frameworks round (tests/test_reference_oracle.py), and
its backward is checked against central finite differences (tests/test_numpy_backend.py).

The network (core/spec.py): each conv is an im2col GEMM (zero padding p on every side, stride 1,
k x k cross-correlation like PyTorch's Conv2d), then the activation, then 2x2 pooling, stride 2,
floor (an odd last row or column is dropped); the last feature maps flattened channel-first
(C, H, W), the canonical order of fc1's inputs; dense layers; logits. Loss: softmax
cross-entropy, the mean over the minibatch. Everything in float64, the weights included.

How each ``train`` param maps here: ``init`` shared loads the canonical weights (cast to
float64), native draws PyTorch's default distribution U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
every tensor from ``np.random.default_rng(seed)``; ``order`` shared and fixed as everywhere,
native a NumPy permutation seeded with ``minibatches.native_epoch_seed``; ``lr``, ``betas``,
``eps``: torch.optim.Adam's update; ``fast``, ``xla``, ``tf32``, ``deterministic``: no effect
(one path, no compiler, no GPU; NumPy on a CPU repeats itself for a fixed BLAS thread count);
``head``: only "logits"; ``device``: the CPU only (``sees_gpu`` is False, so a GPU job stops in
job.check_can_run); ``threads``: the BLAS threads, through threadpoolctl.

Checkpoints and the saved model keep float64: rounding them to float32 would make the reference
a float32 model after a resume or at evaluation. ``model.npz`` holds the canonical weights
(PyTorch's names and shapes) and ``meta`` (JSON: the spec); ``np.load`` reads it anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import threadpoolctl  # the one way to set the BLAS threads of a process that has loaded NumPy
from numpy.lib.stride_tricks import sliding_window_view

from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec, check_weights
from lenet_compare.train import minibatches
from lenet_compare.train.devices import cpu_name
from lenet_compare.train.protocol import IDIOMATIC, NAIVE, Arrays, InferencePath, Progress
from lenet_compare.train.trainer import BaseTrainer, read_model_npz, require_logits_head, write_model_npz

VERSION = np.__version__
PREDICT_BATCH = 1000
_threads: dict[str, int | None] = {"requested": None}

# Each activation with its derivative, written in terms of its output a (all three allow it).
# ReLU's derivative at 0 is 0, as in PyTorch (threshold_backward passes grad where a > 0).
# The sigmoid as 0.5 (1 + tanh(z / 2)): the same function, and no overflow of exp(-z).
Elementwise = Callable[[np.ndarray], np.ndarray]
ACTIVATIONS: dict[str, tuple[Elementwise, Elementwise]] = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda a: (a > 0).astype(a.dtype)),
    "tanh": (np.tanh, lambda a: 1.0 - a * a),
    "sigmoid": (lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)), lambda a: a * (1.0 - a)),
}


# --- the layers, forward and backward ------------------------------------------------------


def pad(a: np.ndarray, p: int) -> np.ndarray:
    """Zero padding of p pixels on every side of (N, C, H, W) maps (a test breaks this on purpose)."""
    return np.pad(a, ((0, 0), (0, 0), (p, p), (p, p))) if p else a


def im2col(padded: np.ndarray, k: int) -> np.ndarray:
    """(N, C, Hp, Wp) -> (N, H', W', C*k*k): each output pixel's inputs in (c, i, j) order, the
    order of an OIHW kernel's (I, H, W), so that a conv is one GEMM with the (O, I*k*k) kernel."""
    win = sliding_window_view(padded, (k, k), axis=(2, 3))  # (N, C, H', W', k, k): win[..., i, j] = a[y+i, x+j]
    n, c, h, w = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, h, w, c * k * k)


def gemm(a: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """a (..., n) @ weight (out, n).T as one 2-D GEMM: matmul of an n-d array by a matrix would
    loop over the leading axes in small products."""
    return (a.reshape(-1, a.shape[-1]) @ weight.T).reshape(*a.shape[:-1], len(weight))


def col2im(dcols: np.ndarray, padded_shape: tuple[int, ...], k: int, p: int) -> np.ndarray:
    """The adjoint of im2col after pad: (N, H', W', C*k*k) gradients back onto the unpadded
    (N, C, H, W) input; a pixel that fed several windows collects all their gradients."""
    n, h, w, _ = dcols.shape
    c = padded_shape[1]
    windows = dcols.reshape(n, h, w, c, k, k).transpose(0, 3, 1, 2, 4, 5)  # (N, C, H', W', k, k)
    out = np.zeros(padded_shape, dcols.dtype)
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + h, j : j + w] += windows[..., i, j]
    return out[:, :, p : padded_shape[2] - p, p : padded_shape[3] - p]


def corners(a: np.ndarray) -> list[np.ndarray]:
    """The four inputs of every 2x2 window, as strided views (N, C, H//2, W//2), in row-major
    order (0, 0), (0, 1), (1, 0), (1, 1); an odd last row or column is in none (floor)."""
    h2, w2 = a.shape[2] // 2, a.shape[3] // 2
    return [a[:, :, di : 2 * h2 : 2, dj : 2 * w2 : 2] for di in (0, 1) for dj in (0, 1)]


def pool(a: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """2x2 pooling, stride 2, floor; for max also the argmax of each window (0..3, row-major):
    np.argmax takes the first of equal maxima, as PyTorch's CPU kernel does (it replaces the
    running max only when a value is strictly greater), so ties route the gradient alike."""
    c00, c01, c10, c11 = corners(a)
    if kind == "avg":
        return (c00 + c01 + c10 + c11) * 0.25, None
    quads = np.stack([c00, c01, c10, c11], axis=-1)
    idx = quads.argmax(axis=-1)
    return np.take_along_axis(quads, idx[..., None], axis=-1)[..., 0], idx


def unpool(d: np.ndarray, shape: tuple[int, ...], idx: np.ndarray | None) -> np.ndarray:
    """pool's backward: avg spreads each gradient over its 4 inputs (/4), max gives it all to
    the argmax; the dropped last row or column gets none."""
    out = np.zeros(shape, d.dtype)
    for k, view in enumerate(corners(out)):  # views: writing them fills ``out``
        view[...] = d * 0.25 if idx is None else np.where(idx == k, d, 0.0)
    return out


def forward(spec: LeNetSpec, w: Arrays, x: np.ndarray, tape: list | None = None) -> np.ndarray:
    """Logits (N, classes) of images x (N, 28, 28), in the weights' dtype; with a ``tape``, also
    what the backward pass needs, layer by layer."""
    activation = ACTIVATIONS[spec.activation][0]
    k = spec.kernel_size
    dtype = w[f"{spec.layer_names[0]}.weight"].dtype
    a = np.asarray(x, dtype)[:, None]  # (N, 1, 28, 28)
    for conv in spec.conv_layers:
        padded = pad(a, conv.padding)
        cols = im2col(padded, k)
        weight = w[f"{conv.name}.weight"].reshape(conv.out_channels, -1)
        z = (gemm(cols, weight) + w[f"{conv.name}.bias"]).transpose(0, 3, 1, 2)  # (N, O, H', W')
        h = activation(z)
        a, idx = pool(h, spec.pooling)
        if tape is not None:
            tape.append((cols, padded.shape, h, idx))
    a = a.reshape(len(a), -1)  # channel-first (C, H, W): the canonical order of fc1's inputs
    dense = spec.dense_layers
    for j, (name, _, _) in enumerate(dense, start=1):
        inputs = a
        a = inputs @ w[f"{name}.weight"].T + w[f"{name}.bias"]
        if j < len(dense):
            a = activation(a)
        if tape is not None:
            tape.append((inputs, a))
    return a


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean cross-entropy of softmax(logits) against labels y, and its gradient in the logits:
    (softmax - one_hot) / N. The max is subtracted first: exp never overflows."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    loss = -float(log_p[rows, y].mean())
    d = np.exp(log_p)
    d[rows, y] -= 1.0
    return loss, d / len(y)


def loss_and_gradients(spec: LeNetSpec, w: Arrays, x: np.ndarray, y: np.ndarray) -> tuple[float, Arrays, np.ndarray]:
    """(loss, the gradient of every parameter by canonical name, logits) of one minibatch."""
    derivative = ACTIVATIONS[spec.activation][1]
    tape: list = []
    logits = forward(spec, w, x, tape)
    loss, d = softmax_cross_entropy(logits, y)
    grads: Arrays = {}
    dense = spec.dense_layers
    for j in range(len(dense), 0, -1):
        name = dense[j - 1][0]
        inputs, out = tape.pop()
        if j < len(dense):
            d = d * derivative(out)
        grads[f"{name}.weight"] = d.T @ inputs
        grads[f"{name}.bias"] = d.sum(axis=0)
        d = d @ w[f"{name}.weight"]
    convs = spec.conv_layers
    d = d.reshape(len(d), *spec.feature_shape)  # back to (N, C, H, W), the flatten's inverse
    for i in range(len(convs) - 1, -1, -1):
        conv = convs[i]
        cols, padded_shape, h, idx = tape.pop()
        dz = unpool(d, h.shape, idx) * derivative(h)
        dz = dz.transpose(0, 2, 3, 1).reshape(-1, conv.out_channels)  # (N*H'*W', O), im2col's rows
        weight = w[f"{conv.name}.weight"]
        grads[f"{conv.name}.weight"] = (dz.T @ cols.reshape(len(dz), -1)).reshape(weight.shape)
        grads[f"{conv.name}.bias"] = dz.sum(axis=0)
        if i:  # the images need no gradient
            dcols = (dz @ weight.reshape(conv.out_channels, -1)).reshape(cols.shape)
            d = col2im(dcols, padded_shape, spec.kernel_size, conv.padding)
    return loss, grads, logits


# --- Adam ----------------------------------------------------------------------------------


@dataclass
class Adam:
    """torch.optim.Adam (no weight decay, no amsgrad), in float64: at step t
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    theta -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    eps is added after the bias correction, as PyTorch and optax do (Keras adds it before:
    tensorflow backend's make_optimizer)."""

    lr: float
    betas: tuple[float, float]
    eps: float
    m: Arrays = field(default_factory=dict)
    v: Arrays = field(default_factory=dict)
    t: int = 0

    def step(self, w: Arrays, g: Arrays) -> None:
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for name, grad in g.items():
            m = self.m[name] = b1 * self.m.get(name, 0.0) + (1.0 - b1) * grad
            v = self.v[name] = b2 * self.v.get(name, 0.0) + (1.0 - b2) * grad * grad
            w[name] = w[name] - self.lr * (m / bc1) / (np.sqrt(v / bc2) + self.eps)


def make_optimizer(train: dict) -> Adam:
    b1, b2 = train["betas"]
    return Adam(float(train["lr"]), (float(b1), float(b2)), float(train["eps"]))


# --- the framework's functions ------------------------------------------------------------


def thread_counts() -> dict[str, int | None]:
    """The BLAS threads (intra-op) as threadpoolctl sees them; NumPy runs one op at a time, so
    inter-op is 1."""
    blas = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
    return {"intra_op": max(blas) if blas else None, "inter_op": 1}


def sees_gpu() -> bool:
    return False


def gpu_view() -> str:
    return f"NumPy {VERSION} runs on the CPU only: the float64 reference has no GPU path"


def preflight(device: str, train: dict) -> None:
    """Refuse the softmax head; a GPU job never gets here (sees_gpu is False, job.check_can_run)."""
    require_logits_head(train, Trainer.FRAMEWORK)


def configure(device: str, deterministic: bool, tf32: bool, seed: int, threads: int | None = None) -> tuple[str, str]:
    """The BLAS threads (when given); nothing else to set: no
    global generator is used, float64 has no TF32, the CPU is the only device."""
    if device != "cpu":
        raise PipelineError(f"device {device!r}: {gpu_view()}; set train.device: cpu for framework numpy")
    if threads is not None:
        threadpoolctl.threadpool_limits(limits=threads, user_api="blas")
    _threads["requested"] = threads
    return "cpu", cpu_name()


def native_initial_weights(spec: LeNetSpec, seed: int) -> Arrays:
    """PyTorch's default initializers' distribution: kaiming_uniform_(a=sqrt(5)) gives weights
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and biases use the same bound; drawn in float64 from
    np.random.default_rng(seed) in the order of spec.parameter_shapes()."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in spec.parameter_shapes().items():
        bound = 1.0 / np.sqrt(spec.fan_in(name))
        weights[name] = rng.uniform(-bound, bound, size=shape)
    return weights


class Trainer(BaseTrainer):
    """The weights and Adam's state as float64 arrays; one plain loop over the minibatches."""

    FRAMEWORK = "numpy"

    def __init__(self, spec: LeNetSpec, train: dict, seed: int, device: str, init: Arrays | None):
        require_logits_head(train, Trainer.FRAMEWORK)
        if device != "cpu":
            raise PipelineError(f"device {device!r}: {gpu_view()}")
        super().__init__(spec, train, seed, device)
        source = native_initial_weights(spec, seed) if init is None else init
        check_weights(spec, source, "the initial weights")
        self.weights = {name: np.array(source[name], np.float64) for name in spec.parameter_shapes()}
        self.optimizer = make_optimizer(train)
        self.x, self.y = np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64)
        self.step_losses = np.zeros(0)  # the last epoch's minibatch losses (float64), in order

    def canonical_weights(self) -> Arrays:
        """Copies, in float64: the reference's own weights, not rounded to float32."""
        return {name: value.copy() for name, value in self.weights.items()}

    def details(self) -> dict:
        return {
            "train_path": "float64 NumPy: im2col GEMMs, backward by hand, PyTorch's Adam; train.fast has no effect",
            "dtype": "float64",
            "blas": np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {}).get("name"),
            "threads": thread_counts(),
            "threads_requested": _threads["requested"],
        }

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Kept as given (float32 images): each minibatch is cast to float64 (exactly) when used."""
        self.x, self.y = x, np.asarray(y, np.int64)

    def native_order(self, epoch: int, n: int) -> np.ndarray:
        return np.random.default_rng(minibatches.native_epoch_seed(self.seed, epoch)).permutation(n)

    def train_epoch(self, epoch: int, progress: Progress | None = None) -> tuple[float, float, float]:
        start = time.perf_counter()
        n = len(self.y)
        order = self.epoch_order(epoch, n)
        assert order is not None  # numpy draws its own native order
        slices = minibatches.batch_slices(n, self.train["batch_size"])
        losses, correct = np.empty(len(slices)), 0
        for i, s in enumerate(slices):
            idx = order[s]
            yb = self.y[idx]
            losses[i], grads, logits = loss_and_gradients(self.spec, self.weights, self.x[idx], yb)
            self.optimizer.step(self.weights, grads)
            correct += int((logits.argmax(axis=1) == yb).sum())
            if progress is not None:
                progress.update(1)
        self.step_losses = losses
        loss_mean, acc = self.epoch_result(epoch, losses, correct, n)
        return loss_mean, acc, time.perf_counter() - start

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict(Model(self.spec, self.weights), x)

    def save(self, model_dir: Path) -> Path:
        return save_model(Model(self.spec, self.weights), self.model_path(model_dir))

    def state(self) -> Arrays:
        """Weights, Adam's moments and step count: all that the next step depends on."""
        adam = self.optimizer
        arrays = {f"model.{k}": v.copy() for k, v in self.weights.items()}
        for name in self.weights:
            arrays[f"optimizer.m.{name}"] = np.array(adam.m.get(name, np.zeros_like(self.weights[name])))
            arrays[f"optimizer.v.{name}"] = np.array(adam.v.get(name, np.zeros_like(self.weights[name])))
        arrays["optimizer.step"] = np.array(adam.t, np.int64)
        return arrays

    def load_state(self, state: Arrays) -> None:
        names = set(self.state())
        if names != set(state):
            raise ValueError(f"the state and this trainer differ in {sorted(names ^ set(state))}")
        for name, value in self.weights.items():
            for key in (f"model.{name}", f"optimizer.m.{name}", f"optimizer.v.{name}"):
                if state[key].shape != value.shape:
                    raise ValueError(f"{key}: shape {state[key].shape}, not {value.shape}")
        self.weights = {name: np.array(state[f"model.{name}"], np.float64) for name in self.weights}
        self.optimizer.m = {name: np.array(state[f"optimizer.m.{name}"], np.float64) for name in self.weights}
        self.optimizer.v = {name: np.array(state[f"optimizer.v.{name}"], np.float64) for name in self.weights}
        self.optimizer.t = int(state["optimizer.step"])


# --- prediction, saving, loading -----------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A loaded model: the spec and its canonical float64 weights."""

    spec: LeNetSpec
    weights: Arrays


def predict(model: Model, x: np.ndarray) -> np.ndarray:
    """Logits (N, classes) float32 of images x (N, 28, 28), computed in float64, PREDICT_BATCH at a time."""
    out = [forward(model.spec, model.weights, x[s]) for s in minibatches.batch_slices(len(x), PREDICT_BATCH)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.spec.classes), np.float32)


def save_model(model: Model, path: Path) -> Path:
    return write_model_npz(path, model.spec, model.weights, {"numpy": VERSION})


def load_model(model_dir: Path, spec: LeNetSpec) -> Model:
    """The saved weights (float64); a missing or corrupt file, or one of another spec, is a PipelineError."""
    arrays = read_model_npz(Trainer.FRAMEWORK, model_dir, spec)
    return Model(spec, {name: arrays[name].astype(np.float64) for name in spec.parameter_shapes()})


def inference_paths(model: Model) -> list[InferencePath]:
    """naive: the reference's own float64 forward, the whole batch in one call; idiomatic: the
    same forward with the weights cast to float32 once, NumPy's float32 GEMMs (what one would
    serve with; within float32 rounding of the float64 logits by construction)."""
    weights32 = {name: value.astype(np.float32) for name, value in model.weights.items()}

    def naive(x: np.ndarray) -> np.ndarray:
        return forward(model.spec, model.weights, x).astype(np.float32)

    def float32(x: np.ndarray) -> np.ndarray:
        return forward(model.spec, weights32, x)

    return [
        InferencePath(NAIVE, "forward(spec, weights, x) in float64", naive),
        InferencePath(IDIOMATIC, "forward(spec, float32 weights, x): float32 GEMMs", float32),
    ]


if TYPE_CHECKING:  # the type checker holds this module to the protocol (make lint)
    from lenet_compare.train.backends.numpy import backend as _this
    from lenet_compare.train.protocol import Backend

    _conforms: Backend = _this
