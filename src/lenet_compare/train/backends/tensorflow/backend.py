"""TensorFlow's backend, through Keras (train.protocol.Backend): LeNet-5 from the spec, one
training epoch, prediction, saving and loading, and its inference paths.

Imports tensorflow and keras (and no other framework): only the jobs of framework `tensorflow`
import this module.
"""

from __future__ import annotations

import os

# Keras 3 can run on several backends; this process must never load torch.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ info and warnings off; errors still show

import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from lenet_compare.core.atomic import atomic_path
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import IMAGE_SIDE, IN_CHANNELS, LeNetSpec, from_channels_last, to_channels_last
from lenet_compare.train import divergence, minibatches
from lenet_compare.train.devices import cpu_name
from lenet_compare.train.protocol import IDIOMATIC, NAIVE, Arrays, InferencePath, Progress
from lenet_compare.train.trainer import BaseTrainer, head, saved_model, unreadable

VERSION = tf.__version__
POOLINGS = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}
PREDICT_BATCH = 1000
# Training steps per call of Keras's compiled train function on the fast path (train.fast;
# the plain path is fit's default, 1). Python's overhead per call is the largest cost of a
# LeNet step on a CPU; the benchmark measures what this saves (reports/benchmark.md, Keras's
# plain and fast rows). The losses are bit-identical, and fit's reported loss/accuracy still
# cover every step; only callbacks fire once per call.
STEPS_PER_EXECUTION = 50


def build_model(spec: LeNetSpec, head: str = "logits") -> keras.Sequential:
    """The spec's network, channel-last; layer names are the canonical ones (conv1, ..., fc1, ...).

    head "logits": the last Dense layer outputs logits (the controlled protocol); "softmax": it
    applies a softmax, as the article's Keras model did.
    """
    layers: list = [keras.Input((IMAGE_SIDE, IMAGE_SIDE, IN_CHANNELS))]
    k = spec.kernel_size
    for i, conv in enumerate(spec.conv_layers, start=1):
        if 2 * conv.padding == k - 1:
            # For an odd kernel at stride 1, "same" pads (k - 1) / 2 zeros on every side: exactly
            # the explicit padding, without a separate layer.
            mode = "same"
        else:
            mode = "valid"
            if conv.padding:
                layers.append(keras.layers.ZeroPadding2D(conv.padding, name=f"pad{i}"))
        layers.append(
            keras.layers.Conv2D(conv.out_channels, k, padding=mode, activation=spec.activation, name=conv.name)
        )
        layers.append(POOLINGS[spec.pooling](2, name=f"pool{i}"))
    layers.append(keras.layers.Flatten(name="flatten"))  # channel-last (H, W, C) order
    dense = spec.dense_layers
    for j, (name, _, n_out) in enumerate(dense, start=1):
        activation = spec.activation if j < len(dense) else (None if head == "logits" else "softmax")
        layers.append(keras.layers.Dense(n_out, activation=activation, name=name))
    return keras.Sequential(layers, name="lenet")


def count_parameters(model: keras.Model) -> int:
    return int(model.count_params())


def canonical_weights(model: keras.Model, spec: LeNetSpec) -> Arrays:
    weights = {}
    for name in spec.layer_names:
        layer = model.get_layer(name)
        weights[f"{name}.weight"] = np.asarray(layer.kernel.numpy())
        weights[f"{name}.bias"] = np.asarray(layer.bias.numpy())
    return from_channels_last(spec, weights)


def load_canonical(model: keras.Model, spec: LeNetSpec, weights: Arrays) -> None:
    keras_weights = to_channels_last(spec, weights)
    for name in spec.layer_names:
        layer = model.get_layer(name)
        layer.kernel.assign(keras_weights[f"{name}.weight"])
        layer.bias.assign(keras_weights[f"{name}.bias"])


def set_threads(threads: int) -> None:
    """The CPU threads of one op (intra-op) and of ops run side by side (inter-op).

    Set explicitly, not left to TensorFlow's default (all cores) or the environment: the thread
    count can change how a kernel splits a sum, and so the last bits of its result. TensorFlow
    takes them only before its runtime starts; a second call with the same counts is a no-op.
    """
    if thread_counts() != {"intra_op": threads, "inter_op": threads}:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def thread_counts() -> dict:
    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def sees_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def gpu_view() -> str:
    """What TensorFlow sees, for the error of a GPU job it cannot run (devices.gpu_not_seen)."""
    build = tf.sysconfig.get_build_info()
    return (
        f"tf.config.list_physical_devices('GPU') = {tf.config.list_physical_devices('GPU')} "
        f"(TensorFlow {tf.__version__}, built for CUDA {build.get('cuda_version', 'none')}, "
        f"cuDNN {build.get('cudnn_version', 'none')})"
    )


def preflight(device: str, train: dict) -> None:
    """Nothing to check: XLA (train.xla) brings its own compiler."""


def configure(device: str, deterministic: bool, tf32: bool, seed: int, threads: int | None = None) -> tuple[str, str]:
    """Set the threads (when given), the device, determinism and TF32, all before TensorFlow
    initializes its runtime; returns (device, the device's name for the record).

    ``device`` is "cuda" or "cpu", decided by devices.resolve_device; the caller has checked
    that TensorFlow sees the GPU (job.start_framework).
    """
    if threads is not None:
        set_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cuda":
        for gpu in gpus:
            # Allocate on demand instead of grabbing the whole GPU, so jobs can share it.
            tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.set_visible_devices(gpus[:1], "GPU")
    else:
        tf.config.set_visible_devices([], "GPU")
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow generators
    if device == "cuda":
        details = tf.config.experimental.get_device_details(gpus[0])
        return "cuda", details.get("device_name", gpus[0].name)
    return "cpu", cpu_name()


def make_optimizer(train: dict) -> keras.optimizers.Adam:
    """Adam with the params' lr, betas and eps: the one place the two frameworks still differ.

    PyTorch:  theta -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
    Keras:    theta -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
                     = lr * m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t))
    Keras adds epsilon to sqrt(v) before bias correction ("epsilon hat" of the Adam paper), so
    Keras with eps = e behaves like PyTorch with a step-dependent eps_t = e / sqrt(1 - b2^t):
    with b2 = 0.999 that is 31.6 e at step 1, 10 e at step 10, 3.2 e at step 100, 1.26 e at step
    1,000 and within 1 % of e after about 3,925 steps (2.3 epochs of 55,000 images at batch
    32). Early in training a parameter whose gradient is not much larger than eps_t takes a
    smaller step in Keras; once |g| >> eps_t (nearly all parameters, with e = 1e-8) the two
    updates agree to float32 rounding. The article's Keras run also kept Keras's default
    eps = 1e-7, ten times larger again.
    """
    beta_1, beta_2 = train["betas"]
    return keras.optimizers.Adam(learning_rate=train["lr"], beta_1=beta_1, beta_2=beta_2, epsilon=train["eps"])


def compile_model(model: keras.Model, train: dict) -> None:
    if head(train) == "logits":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    else:
        # The article's head: probabilities out, categorical_crossentropy on one-hot labels
        # (Keras clips the probabilities to [1e-7, 1 - 1e-7] before the log).
        loss = keras.losses.CategoricalCrossentropy()
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    model.compile(
        optimizer=make_optimizer(train),
        loss=loss,
        metrics=[accuracy],
        steps_per_execution=STEPS_PER_EXECUTION if train["fast"] else 1,
        # Set, never "auto": Keras 3 resolves "auto" to XLA whenever any GPU is physically
        # present, even for a CPU job, so the hardware rather than the params would decide.
        jit_compile=train["xla"],
    )


class _Progress(keras.callbacks.Callback):
    """Moves a tqdm bar to the last step Keras finished (it reports once per execution)."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(batch + 1 - self.bar.n)


class _NonFiniteLoss(keras.callbacks.Callback):
    """Stops fit at the first report of a NaN or infinite loss (reports come once per execution)."""

    def __init__(self):
        super().__init__()
        self.bad_step: int | None = None
        self.value = float("nan")

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss) and self.bad_step is None:
            self.bad_step, self.value = batch + 1, float(loss)
            self.model.stop_training = True


class Trainer(BaseTrainer):
    """Holds the compiled model and the training data; one method per epoch.

    Both paths are `model.fit` over the same arrays in the same order: plain (train.fast:
    false) is fit's default, one step per call of the compiled train function; fast runs
    STEPS_PER_EXECUTION steps per call. XLA (jit_compile) is train.xla, off by default: on
    CPU it made an epoch slower (reports/xla.json).
    """

    FRAMEWORK = "tensorflow"

    def __init__(self, spec: LeNetSpec, train: dict, seed: int, device: str, init: Arrays | None):
        super().__init__(spec, train, seed, device)
        if init is None:
            # init: native, Keras's own initializers (glorot-uniform kernels, zero biases), drawn
            # from the seed: reseeded here so that a second Trainer in one process draws the same.
            keras.utils.set_random_seed(seed)
        self.model = build_model(spec, head(train))
        if init is not None:
            load_canonical(self.model, spec, init)
        compile_model(self.model, train)
        if bool(self.model.jit_compile) != train["xla"]:
            # Keras overrides jit_compile with a warning when the model or settings cannot use XLA.
            raise PipelineError(
                f"train.xla is {train['xla']} but Keras set jit_compile={self.model.jit_compile}; see the warning above"
            )
        self.x = self.y = np.zeros(0)

    def canonical_weights(self) -> Arrays:
        return canonical_weights(self.model, self.spec)

    def details(self) -> dict:
        """How this framework ran, for the run record."""
        return {
            "keras_version": keras.__version__,
            "train_path": "model.fit, one call per epoch" + ("" if self.train["fast"] else ", fit's defaults"),
            "steps_per_execution": int(self.model.steps_per_execution),
            "head": head(self.train),
            "jit_compile": bool(self.model.jit_compile),  # train.xla
            "threads": thread_counts(),
        }

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = x[..., None]  # (N, 28, 28, 1): channel-last
        # categorical_crossentropy (the softmax head) takes one-hot labels
        self.y = y if head(self.train) == "logits" else np.eye(self.spec.classes, dtype=np.float32)[y]

    def native_order(self, epoch: int, n: int) -> None:
        """fit's own shuffle (None: fit shuffles). Each fit call builds a new dataset whose shuffle
        op takes its seed from the global seed, so without a new global seed per epoch every
        epoch would repeat the first one's order."""
        tf.random.set_seed(minibatches.native_epoch_seed(self.seed, epoch))
        return None

    def epoch_arrays(self, epoch: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """The arrays fit walks in epoch ``epoch`` (the epoch's order applied: fit then walks them
        in order), and whether fit shuffles them itself."""
        order = self.epoch_order(epoch, len(self.y))
        if order is None:
            return self.x, self.y, True
        return self.x[order], self.y[order], False

    def train_epoch(self, epoch: int, progress: Progress | None = None) -> tuple[float, float, float]:
        """One pass over the training data; returns (mean loss, accuracy, seconds).

        Loss and accuracy are fit's: those of each minibatch at the time it was trained on,
        averaged over all images.
        """
        start = time.perf_counter()
        x, y, shuffle = self.epoch_arrays(epoch)
        watch = _NonFiniteLoss()
        callbacks = [watch] + ([_Progress(progress)] if progress is not None else [])
        history = self.model.fit(
            x, y, batch_size=self.train["batch_size"], epochs=1, shuffle=shuffle, verbose=0, callbacks=callbacks
        ).history
        seconds = time.perf_counter() - start
        if watch.bad_step is not None:
            steps = len(minibatches.batch_slices(len(y), self.train["batch_size"]))
            at_most = int(self.model.steps_per_execution) > 1
            raise divergence.non_finite_loss(epoch, watch.bad_step, steps, watch.value, at_most=at_most)
        return float(history["loss"][0]), float(history["accuracy"][0]), seconds

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits; under the softmax head the log-probabilities (logits of the same softmax)."""
        out = predict(self.model, x)
        if head(self.train) == "softmax":
            return np.log(np.clip(out, 1e-7, 1.0), dtype=np.float32)
        return out

    def save(self, model_dir: Path) -> Path:
        return save_model(self.model, self.model_path(model_dir))

    @property
    def optimizer(self) -> keras.optimizers.Optimizer:
        """The compiled Adam with its variables (moments, step count) created: fit creates them on
        its first step, a checkpoint needs them before."""
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        return optimizer

    def state(self) -> Arrays:
        """A copy of the weights and optimizer variables (moments, step count): all that the
        next step depends on."""
        optimizer = self.optimizer
        arrays = {f"w{i}": np.array(v.numpy()) for i, v in enumerate(self.model.weights)}
        arrays.update({f"o{i}": np.array(v.numpy()) for i, v in enumerate(optimizer.variables)})
        return arrays

    def load_state(self, state: Arrays) -> None:
        optimizer = self.optimizer
        for i, v in enumerate(self.model.weights):
            v.assign(state[f"w{i}"])
        for i, v in enumerate(optimizer.variables):
            v.assign(state[f"o{i}"])

    def peak_gpu_memory_mb(self) -> float | None:
        if self.device != "cuda":
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def save_model(model: keras.Model, path: Path) -> Path:
    """Save atomically (core.atomic); Keras insists on a file name ending in .keras."""
    with atomic_path(path, suffix=".tmp.keras") as tmp:
        model.save(tmp)
    return path


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Logits (N, classes) float32 of images x (N, 28, 28), in inference mode."""
    if len(x) == 0:
        return np.zeros((0, 10), np.float32)
    return np.asarray(model.predict(x[..., None], batch_size=PREDICT_BATCH, verbose=0), dtype=np.float32)


def load_model(model_dir: Path, spec: LeNetSpec) -> keras.Model:
    """The trained model; a missing or corrupt file, or one of another spec, is a PipelineError."""
    path = saved_model(Trainer.FRAMEWORK, model_dir)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # a truncated zip, a foreign file: all mean "retrain"
        raise unreadable(path, e) from e
    # The .keras file holds its own architecture; check it is the spec's (run.json) network.
    if count_parameters(model) != spec.n_parameters:
        raise PipelineError(
            f"{path} has {count_parameters(model)} parameters, its run record's "
            f"model spec {spec.n_parameters}; rerun the train step"
        )
    return model


def inference_paths(model: keras.Model) -> list[InferencePath]:
    """Keras's naive (eager) call and its compiled inference paths, on the CPU."""
    # The serving signature: any batch size, one image channel last. One trace serves both sizes.
    signature = [tf.TensorSpec((None, IMAGE_SIDE, IMAGE_SIDE, 1), tf.float32)]
    graph = tf.function(model, input_signature=signature)
    xla = tf.function(model, input_signature=signature, jit_compile=True)
    # predict_on_batch runs Keras's own predict function, which Keras compiles with XLA when it
    # sees a GPU (jit_compile "auto"), even one this CPU-only step hides. Off, so the path is
    # what its label says; XLA has a path of its own above. force: rebuild a cached one.
    model.jit_compile = False
    model.make_predict_function(force=True)

    def channel_last(x: np.ndarray) -> np.ndarray:
        return x[..., None]  # (N, 28, 28) -> (N, 28, 28, 1), a view

    def naive(x: np.ndarray) -> np.ndarray:
        return np.asarray(model(channel_last(x), training=False))

    def graph_call(x: np.ndarray) -> np.ndarray:
        return graph(channel_last(x)).numpy()

    def xla_call(x: np.ndarray) -> np.ndarray:
        return xla(channel_last(x)).numpy()

    def predict_on_batch(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(channel_last(x)))

    sig = "input_signature=[TensorSpec((None, 28, 28, 1))]"
    return [
        InferencePath(NAIVE, "model(x, training=False)", naive),
        InferencePath(IDIOMATIC, f"tf.function(model, {sig})(x)", graph_call),
        InferencePath(IDIOMATIC, f"tf.function(model, {sig}, jit_compile=True)(x)", xla_call),
        InferencePath(IDIOMATIC, "model.predict_on_batch(x)", predict_on_batch),
    ]


if TYPE_CHECKING:  # the type checker holds this module to the protocol (make lint)
    from lenet_compare.train.backends.tensorflow import backend as _this
    from lenet_compare.train.protocol import Backend

    _conforms: Backend = _this
