"""The float64 NumPy reference (train/backends/numpy/backend.py) as the oracle of the frameworks.

Each framework runs in its own subprocess (this file as a script: `python
test_reference_oracle.py FRAMEWORK DATA OUT`), through its backend's Trainer only: on the shared
initial weights and the first minibatch it reports (a) logits (``predict``), (b) the loss and
(c, d) the weights after one Adam step (``set_training_data`` of that one minibatch,
``train_epoch(1)`` with train.order "fixed", ``canonical_weights``). The test process computes
the same in float64 with the reference; float64 carries 29 more bits than float32, so its own
rounding (~1e-16 relative) is nothing beside the float32 errors allowed here, and it stands for
the exact values.

(c) The gradients come through the protocol too: at Adam's first step m_hat = g and
sqrt(v_hat) = |g|, so with lr = eps = 1 a weight moves by exactly -g / (|g| + 1) (PyTorch,
optax), and g = -delta / (1 - |delta|). Keras adds eps to sqrt(v) before the bias correction
(the "epsilon hat"; tensorflow backend's make_optimizer): its step t is PyTorch's with
eps / sqrt(1 - b2^t), so Keras is given eps * sqrt(1 - b2), and its first step is then
PyTorch's with eps: Keras is compared with the reference under that placement.

Tolerances come from float32 rounding of each quantity (derivations at ``logit_tolerance``,
``loss_tolerance``, ``gradient_tolerance``, ``step_tolerance``), never from what one machine
printed. U = 2^-24 is float32's unit roundoff; gamma(n) = nU / (1 - nU) bounds the relative
error of a float32 sum of n terms, in any order (Higham, Accuracy and Stability of Numerical
Algorithms, 2nd ed., section 3.1).

The oracle must also catch wrong details: a transposed conv kernel, a padding on the wrong
side, Adam's epsilon in Keras's place, a flatten in (H, W, C) order (``test_the_oracle_catches_*``:
each breaks one detail, on PyTorch's side or the reference's, and the comparison must fail).
And the reference must train like PyTorch: same weights, same minibatches, one epoch, nearly
the same predictions.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CUSTOM_MODEL, DEBIAN_DIR, run_probes

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "tensorflow", "jax")
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
MODELS = {"default": PARAMS["model"], "custom": CUSTOM_MODEL}  # avg/relu/[2, 0]; max/tanh/[0, 2, 1], 3 convs
# The pipeline's own training params (train.fast as in params.yaml), the data set's order: the
# trainer's first minibatch is then exactly the images it was given.
TRAIN = {**PARAMS["train"], "order": "fixed", "init": "shared"}
LR, (B1, B2), EPS = TRAIN["lr"], TRAIN["betas"], TRAIN["eps"]
N_LOGITS = 64  # test images whose logits are compared
BATCH = TRAIN["batch_size"]  # the first minibatch: 32 training images
# An eps comparable to the gradients, where Adam's epsilon placement changes the first step
# (Keras's is 31.6 times larger there: eps / sqrt(1 - b2)).
EPS_MATTERS = 1e-2
# The training comparison: one epoch of 2,000 images (63 steps), 1,000 test images.
N_TRAIN, N_TEST = 2000, 1000

U = 2.0**-24
# Adam's update of one element in float32 is about a dozen roundings (two moments, two bias
# corrections, sqrt, + eps, the division, * lr, the subtraction): 16 U relative bounds them.
ADAM_ROUNDINGS = 16
# Keras and optax hold b1, b2 in float32: float32(0.999) is 1.3e-5 relative off in 1 - b2. In
# general a rounded b moves 1 - b by up to U b / (1 - b) relative; v_hat enters through a square
# root (half of that), m_hat directly. Their step is PyTorch's with eps and |g| rescaled by that
# much: HYPER relative in the step.
HYPER = U * (B1 / (1 - B1) + B2 / (1 - B2) / 2)

pytestmark = pytest.mark.slow


def gamma(n: int) -> float:
    return n * U / (1 - n * U)


def keras_eps(framework: str, train: dict) -> dict:
    """Keras's eps for PyTorch's first step at train["eps"] (module docstring)."""
    if framework != "tensorflow":
        return train
    return {**train, "eps": train["eps"] * np.sqrt(1 - train["betas"][1])}


# --- the wrong details the oracle must catch ---------------------------------------------------


def transposed_kernels(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every conv kernel with its H and W axes swapped: OIWH read as OIHW."""
    return {k: v.transpose(0, 1, 3, 2).copy() if v.ndim == 4 else v for k, v in weights.items()}


def hwc_flatten(spec, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """fc1's columns in (H, W, C) order where the spec has (C, H, W): Keras's flatten order
    mistaken for PyTorch's."""
    c, h, w = spec.feature_shape
    fc1 = weights["fc1.weight"].reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(-1, c * h * w)
    return {**weights, "fc1.weight": np.ascontiguousarray(fc1)}


def one_sided_pad(a: np.ndarray, p: int) -> np.ndarray:
    """A padding with one more row on top and one fewer at the bottom (the same output size): the
    usual mistake of a framework that pads an odd total asymmetrically."""
    return np.pad(a, ((0, 0), (0, 0), (p + 1, p - 1), (p, p))) if p else a


# --- the subprocess --------------------------------------------------------------------------


def probe(framework: str, data_path: Path, out: Path) -> None:
    """Run in a subprocess: one framework's logits, losses and first Adam steps, through its Trainer."""
    from lenet_compare.core.frameworks import get
    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.train.init_weights import initial_weights

    backend = importlib.import_module(get(framework).backend_module)
    device, _ = backend.configure("cpu", deterministic=True, tf32=False, seed=0, threads=1)
    with np.load(data_path) as npz:
        data = {k: npz[k] for k in npz.files}
    runs = {"grad": {**TRAIN, "lr": 1.0, "eps": 1.0}, "step": TRAIN}
    if framework == "torch":
        runs["eps_step"] = {**TRAIN, "eps": EPS_MATTERS}
    result = {}
    for tag, model in MODELS.items():
        spec = LeNetSpec.from_params(model)
        init = initial_weights(spec, seed=0)
        for run, train in runs.items():
            trainer = backend.Trainer(spec, keras_eps(framework, train), 0, device, init)
            if run == "step":  # the logits before any step (a trainer fewer: JAX compiles its initializers)
                result[f"{tag}/logits"] = trainer.predict(data["x_logits"])
            trainer.set_training_data(data["x_batch"], data["y_batch"])
            loss, _, _ = trainer.train_epoch(1)  # one minibatch: one Adam step
            result[f"{tag}/{run}/loss"] = np.float64(loss)
            for name, value in trainer.canonical_weights().items():
                result[f"{tag}/{run}/{name}"] = value
        if framework == "torch" and tag == "default":
            for broken, weights in (("transposed", transposed_kernels(init)), ("hwc", hwc_flatten(spec, init))):
                result[f"broken/{broken}"] = backend.Trainer(spec, TRAIN, 0, device, weights).predict(data["x_logits"])
    if framework == "torch" and "x_train" in data:
        spec = LeNetSpec.from_params(PARAMS["model"])
        trainer = backend.Trainer(spec, {**TRAIN, "order": "shared"}, 0, device, initial_weights(spec, seed=0))
        trainer.set_training_data(data["x_train"], data["y_train"])
        result["trained/loss"] = np.float64(trainer.train_epoch(1)[0])
        result["trained/logits"] = trainer.predict(data["x_test"])
    np.savez(out, **result)


# --- fixtures ----------------------------------------------------------------------------------


def synthetic_images(n: int, seed: int) -> np.ndarray:
    """Deterministic stand-ins for Fashion-MNIST when it is not installed: a few soft blobs per
    image, in [0, 1] and quantized to k / 255 like the real images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28))
    for _ in range(3):
        cy, cx = rng.uniform(6, 22, (2, n, 1, 1))
        sy, sx = rng.uniform(2, 7, (2, n, 1, 1))
        out += rng.uniform(0.3, 1, (n, 1, 1)) * np.exp(-((yy - cy) ** 2) / (2 * sy**2) - (xx - cx) ** 2 / (2 * sx**2))
    return (np.round(np.clip(out, 0, 1) * 255) / 255).astype(np.float32)


@pytest.fixture(scope="module")
def data(request, tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """The first minibatch and test images: Fashion-MNIST (small_cache) when installed, else
    synthetic images (then the training comparison, which needs real classes, is skipped)."""
    if DEBIAN_DIR.is_dir():
        with np.load(request.getfixturevalue("small_cache")) as npz:
            arrays = {
                "x_logits": npz["x_test"][:N_LOGITS],
                "x_batch": npz["x_train"][:BATCH],
                "y_batch": npz["y_train"][:BATCH],
                "x_train": npz["x_train"][:N_TRAIN],
                "y_train": npz["y_train"][:N_TRAIN],
                "x_test": npz["x_test"][:N_TEST],
                "y_test": npz["y_test"][:N_TEST],
            }
    else:
        labels = np.random.default_rng(2).integers(0, 10, BATCH)
        arrays = {"x_logits": synthetic_images(N_LOGITS, 0), "x_batch": synthetic_images(BATCH, 1), "y_batch": labels}
    path = tmp_path_factory.mktemp("oracle") / "data.npz"
    np.savez(path, **arrays)
    return path, arrays


@pytest.fixture(scope="module")
def probes(data, tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Every framework's probe, side by side, one subprocess each."""
    return run_probes(__file__, FRAMEWORKS, [str(data[0])], tmp_path_factory.mktemp("oracle-probes"))


class Reference:
    """The float64 reference of one model spec on the same weights and images."""

    def __init__(self, tag: str, data: dict[str, np.ndarray]):
        from lenet_compare.core.spec import LeNetSpec
        from lenet_compare.train.backends.numpy import backend as ref
        from lenet_compare.train.init_weights import initial_weights

        self.ref, self.spec = ref, LeNetSpec.from_params(MODELS[tag])
        self.init32 = initial_weights(self.spec, seed=0)
        self.init = {k: v.astype(np.float64) for k, v in self.init32.items()}
        self.logits = ref.forward(self.spec, self.init, data["x_logits"])
        self.loss, self.grads, self.batch_logits = ref.loss_and_gradients(
            self.spec, self.init, data["x_batch"], data["y_batch"]
        )

    def step(self, train: dict, data: dict) -> dict[str, np.ndarray]:
        """The weights after the first Adam step, through the reference's own Trainer."""
        trainer = self.ref.Trainer(self.spec, train, 0, "cpu", self.init32)
        trainer.set_training_data(data["x_batch"], data["y_batch"])
        trainer.train_epoch(1)
        return trainer.canonical_weights()


@pytest.fixture(scope="module")
def references(data) -> dict[str, Reference]:
    return {tag: Reference(tag, data[1]) for tag in MODELS}


# --- tolerances from float32 rounding ------------------------------------------------------------


def logit_tolerance(spec, logits: np.ndarray) -> float:
    """evaluate.inference_timing.float32_tolerance: a float32 dot product of n terms errs by at
    most gamma_n times the sum of its terms' magnitudes; each layer passes its error on, so n is
    the sum of all layers' fan-ins, and the largest logit (at least 1) stands in for the sum of
    magnitudes; twice that (it bounds two float32 evaluations; here one is exact)."""
    from lenet_compare.evaluate.inference_timing import float32_tolerance

    return float32_tolerance(spec, logits)


def loss_tolerance(spec, logits: np.ndarray, loss: float) -> float:
    """loss = mean over B images of logsumexp(z) - z_y. Its derivative in the logits is
    (softmax - one_hot) / B, whose absolute values sum to at most 2 / B per image: logits each
    within tol_z move the loss by at most 2 tol_z. Its own float32 arithmetic: the max shift and
    z_y (each rounded by U relative), a sum of K positive exps (gamma_K relative, which the log
    turns into gamma_K absolute), the log and the subtraction (U each): gamma(K + 3) (1 + 2 max|z|);
    then the mean of B positive terms, gamma_B relative."""
    k, b = logits.shape[1], len(logits)
    own = gamma(k + 3) * (1 + 2 * float(np.abs(logits).max())) + gamma(b) * loss
    return 2 * logit_tolerance(spec, logits) + own


def gradient_chain(spec, batch: int) -> int:
    """The longest chain of float32 additions behind one gradient element (tests/test_fast_path.py's
    reduction_lengths): the forward pass to the loss (each layer's fan-in, the softmax's sum, the
    mean over the minibatch), the backward pass (each layer's input gradient sums over its
    fan-out) and the weight gradient's own sum over the minibatch and, for a conv, every output
    position."""
    k2 = spec.kernel_size**2
    convs, dense = spec.conv_layers, spec.dense_layers
    forward = sum(c.in_channels * k2 for c in convs) + sum(n_in for _, n_in, _ in dense) + spec.classes + batch
    backward = sum(c.out_channels * k2 for c in convs) + sum(n_out for _, _, n_out in dense)
    return forward + backward + max([batch * c.side_conv**2 for c in convs] + [batch])


def gradient_tolerance(spec, grads: dict[str, np.ndarray], batch: int) -> dict[str, float]:
    """Per tensor: gamma(n) of the longest chain times the tensor's largest gradient. max|g|
    stands in for the sum of the terms' magnitudes, which it is not where terms cancel; what
    makes that safe is gamma_n, a worst case that grows like n U where rounding errors grow like
    sqrt(n) U (over 100x less at these n of 4,000 to 27,000): room for terms that cancel by that
    much. Twice that, as for the logits."""
    n = gradient_chain(spec, batch)
    return {name: 2 * gamma(n) * float(np.abs(g).max()) for name, g in grads.items()}


def read_gradient(w0: np.ndarray, w1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gradient a first Adam step with lr = eps = 1 took, delta = -g / (|g| + 1), and how far
    reading it back can be off: w1 is rounded to float32 (half an ulp), the step itself carries
    Adam's float32 roundings and the float32 betas (ADAM_ROUNDINGS U + HYPER relative); g =
    -delta / (1 - |delta|) multiplies an error in delta by 1 / (1 - |delta|)^2."""
    delta = w1.astype(np.float64) - w0.astype(np.float64)  # exact: both are float32
    g = -delta / (1 - np.abs(delta))
    delta_error = 0.5 * ulp(w1) + (ADAM_ROUNDINGS * U + HYPER) * np.abs(delta)
    return g, delta_error / (1 - np.abs(delta)) ** 2


def step_tolerance(w1_ref: np.ndarray, g_ref: np.ndarray, g_tol: float, lr: float, eps: float) -> np.ndarray:
    """Per element, how far a float32 first Adam step may land from the float64 one.

    The step is delta(g) = lr g / (|g| + eps) (m_hat = g, sqrt(v_hat) = |g|). The framework's
    gradient is within g_tol of g_ref, and |d delta / dg| = lr eps / (|g| + eps)^2 is largest
    at the smallest |g| in reach, g_lo = max(|g_ref| - g_tol, 0); a step never differs by more
    than 2 lr (where g_ref may change sign within g_tol: Adam's first step is about lr either
    way). Then Adam's own float32 roundings and float32 betas (ADAM_ROUNDINGS U + HYPER relative
    to the step) and the new weight's rounding to float32 (one ulp, rounded up from half)."""
    g_lo = np.maximum(np.abs(g_ref) - g_tol, 0)
    sensitivity = np.minimum(2 * lr, lr * eps * g_tol / (g_lo + eps) ** 2)
    delta = lr * np.abs(g_ref) / (np.abs(g_ref) + eps)
    return sensitivity + (ADAM_ROUNDINGS * U + HYPER) * delta + ulp(w1_ref)


def ulp(w: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(np.asarray(w)).astype(np.float32)).astype(np.float64)


def assert_close(what: str, actual, expected, tolerance) -> float:
    """|actual - expected| <= tolerance everywhere (NaN fails); the largest gap / tolerance."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    tolerance = np.broadcast_to(np.asarray(tolerance, np.float64), expected.shape)
    gap = np.abs(actual - expected)
    bad = ~(gap <= tolerance)
    if bad.any():
        worst = np.unravel_index(np.argmax(np.where(bad, gap / tolerance, -1)), gap.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {gap.size} values outside float32 rounding; worst at "
            f"{[int(i) for i in worst]}: {actual[worst]:.9g} vs reference {expected[worst]:.9g}, "
            f"gap {gap[worst]:.3g} > tolerance {tolerance[worst]:.3g} ({gap[worst] / tolerance[worst]:.3g}x)"
        )
    return float((gap / tolerance).max())


# --- (a) logits, (b) loss, (c) gradients, (d) the first Adam step ----------------------------


@pytest.mark.parametrize("tag", list(MODELS))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_logits(probes, references, framework, tag):
    r = references[tag]
    assert r.logits.std() > 1e-3  # real, image-dependent logits, not a degenerate match
    tol = logit_tolerance(r.spec, r.logits)
    assert tol < 1e-2 * r.logits.std()  # far below a wrong layout's effect
    assert_close(f"{framework} {tag} logits", probes[framework][f"{tag}/logits"], r.logits, tol)


@pytest.mark.parametrize("tag", list(MODELS))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_loss(probes, references, framework, tag):
    r = references[tag]
    tol = loss_tolerance(r.spec, r.batch_logits, r.loss)
    assert tol < 1e-3 * r.loss
    for run in ("grad", "step"):  # both runs take their loss at the initial weights
        assert_close(f"{framework} {tag} loss ({run} run)", probes[framework][f"{tag}/{run}/loss"], r.loss, tol)


@pytest.mark.parametrize("tag", list(MODELS))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_gradients(probes, references, framework, tag):
    r = references[tag]
    tolerances = gradient_tolerance(r.spec, r.grads, BATCH)
    for name, g_ref in r.grads.items():
        assert np.abs(g_ref).max() > 1e-4, name  # every tensor has gradients to compare
        g, read_error = read_gradient(r.init32[name], probes[framework][f"{tag}/grad/{name}"])
        assert_close(f"{framework} {tag} gradient of {name}", g, g_ref, tolerances[name] + read_error)


@pytest.mark.parametrize("tag", list(MODELS))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_first_adam_step(probes, references, data, framework, tag):
    r = references[tag]
    stepped = r.step(TRAIN, data[1])
    tolerances = gradient_tolerance(r.spec, r.grads, BATCH)
    tight = total = 0
    for name, w1_ref in stepped.items():
        tol = step_tolerance(w1_ref, r.grads[name], tolerances[name], LR, EPS)
        # the reference's step is Adam's formula (tests/test_numpy_backend.py): -lr g / (|g| + eps)
        np.testing.assert_allclose(w1_ref - r.init[name], -LR * r.grads[name] / (np.abs(r.grads[name]) + EPS))
        assert_close(f"{framework} {tag} first Adam step, {name}", probes[framework][f"{tag}/step/{name}"], w1_ref, tol)
        tight, total = tight + int((tol < LR / 10).sum()), total + tol.size
    # Where a gradient is within float32 rounding of zero, the first step may go either way (the
    # 2 lr allowance): ReLU leaves many units dead at initialization (their gradients exactly
    # zero: 40 % of fc1's in the default model, none with tanh), so not every weight binds. More
    # than a third of the weights are still held to a tenth of a step: the check is not vacuous.
    assert tight > total / 3, f"{tight} of {total}"


# --- the oracle catches wrong details --------------------------------------------------------------


def test_the_oracle_catches_a_transposed_kernel(probes, references):
    r = references["default"]
    with pytest.raises(AssertionError, match="outside float32 rounding"):
        assert_close(
            "torch logits, kernels transposed",
            probes["torch"]["broken/transposed"],
            r.logits,
            logit_tolerance(r.spec, r.logits),
        )


def test_the_oracle_catches_a_padding_on_the_wrong_side(probes, references, data, monkeypatch):
    r = references["default"]
    assert r.spec.conv_padding[0] > 0  # the default's first conv pads (2 on every side)
    monkeypatch.setattr(r.ref, "pad", one_sided_pad)  # the reference broken: 3 rows on top, 1 at the bottom
    broken = r.ref.forward(r.spec, r.init, data[1]["x_logits"])
    assert broken.shape == r.logits.shape
    with pytest.raises(AssertionError, match="outside float32 rounding"):
        assert_close(
            "torch logits vs a one-sided padding",
            probes["torch"]["default/logits"],
            broken,
            logit_tolerance(r.spec, broken),
        )


def test_the_oracle_catches_adams_epsilon_in_keras_place(probes, references, data):
    r = references["default"]
    tolerances = gradient_tolerance(r.spec, r.grads, BATCH)
    right = r.step({**TRAIN, "eps": EPS_MATTERS}, data[1])
    for name, w1_ref in right.items():  # PyTorch's placement: the comparison passes
        tol = step_tolerance(w1_ref, r.grads[name], tolerances[name], LR, EPS_MATTERS)
        assert_close(f"torch eps {EPS_MATTERS} step, {name}", probes["torch"][f"default/eps_step/{name}"], w1_ref, tol)
    # Keras's placement, eps added to sqrt(v) before the bias correction: at step 1 that is
    # PyTorch's with eps / sqrt(1 - b2), so the reference takes delta = lr g / (|g| + eps / sqrt(1 - b2)).
    name = "conv1.weight"
    g = r.grads[name]
    keras = r.init[name] - LR * g / (np.abs(g) + EPS_MATTERS / np.sqrt(1 - B2))
    tol = step_tolerance(keras, g, tolerances[name], LR, EPS_MATTERS / np.sqrt(1 - B2))
    with pytest.raises(AssertionError, match="outside float32 rounding"):
        assert_close(
            "torch step vs a reference with Keras's epsilon", probes["torch"][f"default/eps_step/{name}"], keras, tol
        )


def test_the_oracle_catches_a_channel_last_flatten(probes, references):
    r = references["default"]
    with pytest.raises(AssertionError, match="outside float32 rounding"):
        assert_close(
            "torch logits, fc1 columns in (H, W, C) order",
            probes["torch"]["broken/hwc"],
            r.logits,
            logit_tolerance(r.spec, r.logits),
        )


# --- the reference trains like PyTorch ------------------------------------------------------------


def test_the_reference_trains_like_pytorch(probes, data):
    """One epoch of 2,000 images (63 steps) from the same weights over the same minibatches.

    Bit-for-bit agreement is not to be had: the float32 and float64 trajectories part by
    rounding, and Adam's early steps (about lr whatever |g|) amplify it where a gradient is near
    zero. But rounding alone keeps them close, so the bounds are coarse on purpose ("the same
    training", not "the same bits"): the two models classify at least 98 % of the 1,000 test
    images alike (an image changes class only if its two top logits are nearly tied), their
    accuracies are within 1 point and the epoch's mean losses within 0.1 %. Accuracy far above
    chance (10 %) keeps the agreement from being that of two untrained models. The control: the
    reference with lr 10 % off, a real difference of the same size as a wrong optimizer
    setting, must break at least one bound.
    """
    arrays = data[1]
    if "x_train" not in arrays:
        pytest.skip(f"{DEBIAN_DIR} missing: the training comparison needs Fashion-MNIST's classes")
    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.train.backends.numpy import backend as ref
    from lenet_compare.train.init_weights import initial_weights

    spec = LeNetSpec.from_params(PARAMS["model"])
    torch_side = probes["torch"]
    theirs = torch_side["trained/logits"].argmax(1)

    def outside_bounds(lr: float) -> list[str]:
        trainer = ref.Trainer(spec, {**TRAIN, "order": "shared", "lr": lr}, 0, "cpu", initial_weights(spec, seed=0))
        trainer.set_training_data(arrays["x_train"], arrays["y_train"])
        loss, _, _ = trainer.train_epoch(1)
        ours = trainer.predict(arrays["x_test"]).argmax(1)
        accuracy = {"numpy": (ours == arrays["y_test"]).mean(), "torch": (theirs == arrays["y_test"]).mean()}
        agree = (ours == theirs).mean()
        checks = {
            f"accuracy far above chance: {accuracy}": min(accuracy.values()) > 0.3,
            f"accuracies within 1 point: {accuracy}": abs(accuracy["numpy"] - accuracy["torch"]) <= 0.01,
            f"the same class for at least 98 % of the images: {agree:.1%}": agree >= 0.98,
            f"mean losses within 0.1 %: {loss:.6f} vs {float(torch_side['trained/loss']):.6f}": (
                abs(loss - float(torch_side["trained/loss"])) <= 1e-3 * loss
            ),
        }
        return [what for what, ok in checks.items() if not ok]

    assert outside_bounds(LR) == []
    assert outside_bounds(1.1 * LR) != []  # the bounds see a wrong learning rate


if __name__ == "__main__":
    probe(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
