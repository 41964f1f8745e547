"""The frameworks build the same LeNet-5 from one spec and take the same first Adam step.

torch, tensorflow and jax never share a process, so each framework runs in its own subprocess:
this file run as a script (`python test_lenet_frameworks.py FRAMEWORK CACHE OUT`) is that
subprocess. It writes what it measured to an .npz that the tests compare.

Every tolerance here comes from float32 rounding measured in the test itself, never from what
one machine printed (CPUs differ in kernels and instruction sets, so their last bits differ):
- logits: a float64 evaluation of the spec in numpy is the exact answer; the same evaluation in
  float32, summing every dot product one term after another, is the control that shows how far
  float32 rounding alone moves these logits. Each framework must be within MARGIN times that.
- training: the control is the same step or epoch with the images inside each minibatch in
  another order. The mean over a minibatch does not depend on the order, so whatever that
  changes is float32 rounding of this very computation; the two frameworks must agree within
  MARGIN times it. Over several steps Keras's Adam really differs where gradients are near eps
  (the epsilon hat); a second control, PyTorch run with Keras's lowest effective eps, measures
  how far that can move each weight. JAX's optax.adam adds eps where PyTorch does: its steps and
  epochs must match PyTorch's within float32 rounding alone, with no such allowance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CUSTOM_MODEL, run_probes

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "tensorflow", "jax")
N_IMAGES = 64  # images whose logits are compared
BATCH = 32  # one Adam step on the first 32 training images
N_EPOCH_IMAGES = 80  # a short epoch at batch 32: two full minibatches, then a partial one of 16
# Keras's Adam is PyTorch's with eps_t = eps_keras / sqrt(1 - b2^t) (the tensorflow backend's make_optimizer).
# Set for step 1 (eps_keras = eps * sqrt(1 - b2)), Keras trains steps 2 and 3 of the short epoch
# with eps_t between eps and eps * sqrt((1 - b2) / (1 - b2^3)) = 0.577 eps. The control
# "low_eps" is PyTorch with that lowest eps in every step: how far such an eps moves each weight.
EPOCH_STEPS = 3
# The frameworks sum in orders of their own (conv algorithms, blocked matrix products, reduction
# trees); the controls measure one other order. 10x over a control leaves room for orders that
# round a few times worse; each test also checks that its tolerance stays far below the effect
# of the mistakes it is there to catch (a wrong layout moves logits by ~1e-2, a wrong optimizer
# setting weights by a good part of lr = 1e-3).
MARGIN = 10

pytestmark = pytest.mark.slow


def in_batch_reversed(order: np.ndarray, batch: int) -> np.ndarray:
    """``order`` with the images inside each minibatch reversed: the same minibatches, in the same
    sequence, so the same training step mathematically; only float32 rounding can differ."""
    return np.concatenate([order[i : i + batch][::-1] for i in range(0, len(order), batch)])


def probe(framework: str, cache: Path, out: Path) -> None:
    """Run in a subprocess: build, predict and take one training step with one framework."""
    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.train import init_weights, minibatches
    from lenet_compare.train.import_backend import import_backend

    backend = import_backend(framework)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    train = {**params["train"], "order": "shared", "init": "shared"}
    device, _ = backend.configure("cpu", deterministic=True, tf32=False, seed=0)
    data = np.load(cache)
    result = {}
    for tag, model in (("default", params["model"]), ("custom", CUSTOM_MODEL)):
        spec = LeNetSpec.from_params(model)
        trainer = backend.Trainer(spec, train, 0, device, init_weights.initial_weights(spec, seed=0))
        result[f"{tag}_n_parameters"] = np.int64(trainer.n_parameters)
        result[f"{tag}_logits"] = trainer.predict(data["x_test"][:N_IMAGES])

    spec = LeNetSpec.from_params(params["model"])
    steps = {"step": train}
    if framework == "tensorflow":
        # Keras adds eps to sqrt(v) before bias correction; at step 1 its eps * sqrt(1 - b2)
        # is exactly PyTorch's eps (the tensorflow backend's make_optimizer). Also record the raw eps.
        steps = {"step": {**train, "eps": train["eps"] * np.sqrt(1 - train["betas"][1])}, "raw_eps_step": train}
    x, y = data["x_train"][:BATCH], data["y_train"][:BATCH]
    # The control of the one-step comparison: the same 32 images fed in reverse order, so the
    # trainer's shared permutation puts them in another order inside the one minibatch.
    inputs = {tag: (x, y) for tag in steps} | {"step_reordered": (x[::-1].copy(), y[::-1].copy())}
    for tag, (xs, ys) in inputs.items():
        trainer = backend.Trainer(
            spec, steps.get(tag, steps["step"]), 0, device, init_weights.initial_weights(spec, seed=0)
        )
        trainer.set_training_data(xs, ys)
        trainer.train_epoch(1)  # one epoch of one batch: one Adam step through the training code
        for name, value in trainer.canonical_weights().items():
            result[f"{tag}/{name}"] = value

    # A short epoch through the real training code: order across minibatches and the partial
    # last batch's weight in the epoch's mean loss must match too. Controls: "reordered" (each
    # minibatch's images in another order: the same epoch, float32 rounding aside), "reversed"
    # (the images in another order across minibatches must give another epoch, or the
    # comparison proves nothing) and, for PyTorch, "low_eps" (see EPOCH_STEPS).
    epoch_train = steps["step"]
    x, y = data["x_train"][:N_EPOCH_IMAGES], data["y_train"][:N_EPOCH_IMAGES]
    shared_order = minibatches.epoch_permutation(0, 1, N_EPOCH_IMAGES)
    runs = {
        "epoch": (shared_order, epoch_train),
        "reordered": (in_batch_reversed(shared_order, epoch_train["batch_size"]), epoch_train),
        "reversed": (shared_order[::-1], epoch_train),
    }
    if framework == "torch":
        b2 = train["betas"][1]
        low_eps = train["eps"] * np.sqrt((1 - b2) / (1 - b2**EPOCH_STEPS))
        runs["low_eps"] = (shared_order, {**epoch_train, "eps": low_eps})
    for tag, (order, run_train) in runs.items():
        trainer = backend.Trainer(spec, run_train, 0, device, init_weights.initial_weights(spec, seed=0))
        # Fed pre-permuted so that the trainer's own shared permutation is applied on top of
        # `order`'s inverse: the minibatches are exactly x[order] in consecutive slices.
        inverse = np.argsort(shared_order)
        trainer.set_training_data(x[order][inverse], y[order][inverse])
        loss, accuracy, _ = trainer.train_epoch(1)
        result[f"{tag}_loss"] = np.float64(loss)
        result[f"{tag}_accuracy"] = np.float64(accuracy)
        for name, value in trainer.canonical_weights().items():
            result[f"{tag}/{name}"] = value
    np.savez(out, **result)


@pytest.fixture(scope="module")
def probes(small_cache, tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Every framework's probe, run side by side, one subprocess each."""
    return run_probes(__file__, FRAMEWORKS, [str(small_cache)], tmp_path_factory.mktemp("probes"))


def spec_of(model: dict):
    from lenet_compare.core.spec import LeNetSpec

    return LeNetSpec.from_params(model)


def model_of(tag: str) -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())["model"] if tag == "default" else CUSTOM_MODEL


def max_gap(a: dict, a_prefix: str, b: dict, b_prefix: str, names: list[str]) -> float:
    return max(float(np.abs(a[f"{a_prefix}/{n}"] - b[f"{b_prefix}/{n}"]).max()) for n in names)


# --- A float64 reference of the spec (core/spec.py's docstring), and its float32 control ------


def windows(a: np.ndarray, k: int, pad: int) -> np.ndarray:
    """(N, C, H, W) -> (N, H', W', C*k*k): each output pixel's inputs in (c, i, j) order, as OIHW."""
    a = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(2, 3))  # (N, C, H', W', k, k)
    n, c, h, w = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, h, w, c * k * k)


def dot(inputs: np.ndarray, weight: np.ndarray, bias: np.ndarray, sequential_float32: bool) -> np.ndarray:
    """inputs (..., n) @ weight (out, n).T + bias, exactly enough in float64, or in float32 with
    every product rounded and the n + 1 terms added one after another (np.cumsum is sequential)."""
    if not sequential_float32:
        return inputs @ weight.T + bias
    terms = inputs[..., None, :] * weight  # (..., out, n), each product rounded to float32
    terms = np.concatenate([terms, np.broadcast_to(bias[:, None], (*terms.shape[:-1], 1))], axis=-1)
    return np.cumsum(terms, axis=-1, dtype=np.float32)[..., -1]


def reference_logits(spec, weights: dict[str, np.ndarray], x: np.ndarray, dtype) -> np.ndarray:
    """The spec's network on images x (N, 28, 28), computed in numpy in ``dtype``."""
    sequential = dtype == np.float32
    w = {name: value.astype(dtype) for name, value in weights.items()}
    activation = {
        "relu": lambda v: np.maximum(v, dtype(0)),
        "tanh": np.tanh,
        "sigmoid": lambda v: dtype(1) / (dtype(1) + np.exp(-v)),
    }[spec.activation]
    a = x[:, None].astype(dtype)
    for conv in spec.conv_layers:
        weight = w[f"{conv.name}.weight"].reshape(conv.out_channels, -1)
        z = dot(windows(a, spec.kernel_size, conv.padding), weight, w[f"{conv.name}.bias"], sequential)
        a = activation(z.transpose(0, 3, 1, 2))  # (N, O, H', W')
        n, c, h, wd = a.shape
        quads = a[:, :, : h // 2 * 2, : wd // 2 * 2].reshape(n, c, h // 2, 2, wd // 2, 2)
        if spec.pooling == "max":
            a = quads.max(axis=(3, 5))
        else:  # the mean of 4, added one after another in float32
            quads = quads.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, wd // 2, 4)
            a = np.cumsum(quads, axis=-1, dtype=dtype)[..., -1] * dtype(0.25)
    a = a.reshape(len(a), -1)  # channel-first flatten, the canonical order of fc1's inputs
    dense = spec.dense_layers
    for j, (name, _n_in, _n_out) in enumerate(dense, start=1):
        a = dot(a, w[f"{name}.weight"], w[f"{name}.bias"], sequential)
        if j < len(dense):
            a = activation(a)
    return a


@pytest.mark.parametrize("tag", ["default", "custom"])
def test_parameter_counts_equal_the_spec(probes, tag):
    expected = spec_of(model_of(tag)).n_parameters
    assert [int(probes[fw][f"{tag}_n_parameters"]) for fw in FRAMEWORKS] == [expected] * len(FRAMEWORKS)
    if tag == "default":
        assert expected == 61_706


@pytest.mark.parametrize("tag", ["default", "custom"])
def test_shared_weights_give_the_same_logits(probes, small_cache, tag):
    from lenet_compare.train.init_weights import initial_weights

    spec = spec_of(model_of(tag))
    weights = initial_weights(spec, seed=0)
    x = np.load(small_cache)["x_test"][:N_IMAGES]
    # float64 carries 29 more bits than float32: its own rounding (~1e-16 relative) is far
    # below the float32 errors compared here, so it stands for the exact logits.
    exact = reference_logits(spec, weights, x, np.float64)
    assert exact.shape == (N_IMAGES, 10)
    assert exact.std() > 1e-3  # real, image-dependent outputs, not a degenerate match
    # The control: how far float32 rounding alone takes these logits (one term after another,
    # the order with the largest typical rounding error of the usual ones). Never below half a
    # float32 ulp of the largest logit, the rounding of the output itself.
    float32_error = float(np.abs(reference_logits(spec, weights, x, np.float32) - exact).max())
    tolerance = MARGIN * max(float32_error, 2.0**-24 * float(np.abs(exact).max()))
    assert tolerance < 1e-3 * exact.std()  # still far below a wrong layout's effect
    for fw in FRAMEWORKS:
        logits = probes[fw][f"{tag}_logits"]
        assert logits.shape == (N_IMAGES, 10)
        np.testing.assert_allclose(logits, exact, rtol=0, atol=tolerance, err_msg=f"{fw} vs float64 reference")
    # Each within `tolerance` of the exact logits, so within twice that of each other.
    torch_logits = probes["torch"][f"{tag}_logits"]
    for fw in FRAMEWORKS[1:]:
        np.testing.assert_allclose(probes[fw][f"{tag}_logits"], torch_logits, rtol=0, atol=2 * tolerance, err_msg=fw)


def test_one_adam_step_gives_the_same_weights(probes):
    torch_side, keras_side = probes["torch"], probes["tensorflow"]
    names = [k.removeprefix("step/") for k in torch_side if k.startswith("step/")]
    assert len(names) == 10
    spec = spec_of(model_of("default"))
    from lenet_compare.train.init_weights import initial_weights

    init = initial_weights(spec, seed=0)
    lr = yaml.safe_load((REPO / "params.yaml").read_text())["train"]["lr"]
    moved = max(np.abs(torch_side[f"step/{n}"] - init[n]).max() for n in names)
    # Adam's first step moves a weight by exactly lr * |g| / (|g| + eps): about lr wherever the
    # gradient is far above eps = 1e-8, as the largest gradients here are.
    assert moved > lr / 2
    # The control: the same step with the 32 images in another order inside the minibatch.
    rounding = max(max_gap(side, "step", side, "step_reordered", names) for side in probes.values())
    max_weight = max(float(np.abs(init[n]).max()) for n in names)
    # ...never below one float32 ulp of the largest weight: w - update is rounded to float32.
    tolerance = MARGIN * max(rounding, float(np.spacing(np.float32(max_weight))))
    assert tolerance < lr / 10  # far below the size of one step
    for fw in FRAMEWORKS[1:]:
        for name in names:
            np.testing.assert_allclose(
                probes[fw][f"step/{name}"], torch_side[f"step/{name}"], rtol=0, atol=tolerance, err_msg=f"{fw} {name}"
            )
    # With the same raw eps the two Adams differ where gradients are tiny (the epsilon hat):
    # the comparison above sees that difference, so it would catch a wrong eps.
    assert max_gap(keras_side, "raw_eps_step", torch_side, "step", names) > tolerance


def test_an_epoch_with_a_partial_last_batch_matches(probes):
    torch_side = probes["torch"]
    sides = list(probes.values())
    losses = [float(side[f"{tag}_loss"]) for side in sides for tag in ("epoch", "reordered")]
    # The control: the same epoch with each minibatch's images in another order. Never below one
    # float32 ulp of the loss: each framework reports its mean loss in float32.
    rounding = max(abs(float(side["epoch_loss"]) - float(side["reordered_loss"])) for side in sides)
    loss_tolerance = MARGIN * max(rounding, float(np.spacing(np.float32(max(losses)))))
    for fw in FRAMEWORKS[1:]:
        assert abs(float(torch_side["epoch_loss"]) - float(probes[fw]["epoch_loss"])) <= loss_tolerance, fw
        # Accuracy is a count of 80 images: 1e-6 is far below one image (1/80) and far above
        # float32's rounding of the fraction (2^-24), so this asks for the same count.
        assert float(torch_side["epoch_accuracy"]) == pytest.approx(float(probes[fw]["epoch_accuracy"]), abs=1e-6)
    # The other control: the same images in reversed order across minibatches give another
    # epoch in every framework, a difference the loss comparison above would see.
    for side in sides:
        assert abs(float(side["reversed_loss"]) - float(side["epoch_loss"])) > loss_tolerance

    names = [k.removeprefix("epoch/") for k in torch_side if k.startswith("epoch/")]
    # The weights: float32 rounding as measured by the reordered control, plus, for Keras, the
    # epsilon-hat difference of steps 2 and 3, which can only move a weight whose gradients are
    # near eps. Per weight, that is bounded by the low_eps control, twice over: the first-order
    # picture (Keras's weights between PyTorch's at eps and at 0.577 eps) leaves out that each
    # step's gradients depend on the earlier steps' updates. JAX's Adam is PyTorch's: rounding only.
    rounding = max(max_gap(side, "epoch", side, "reordered", names) for side in sides)
    max_weight = max(float(np.abs(torch_side[f"epoch/{n}"]).max()) for n in names)
    weight_tolerance = MARGIN * max(rounding, float(np.spacing(np.float32(max_weight))))
    for fw in FRAMEWORKS[1:]:
        reversed_outside = 0
        for name in names:
            torch_weights = torch_side[f"epoch/{name}"]
            eps_hat = 2 * np.abs(torch_side[f"low_eps/{name}"] - torch_weights) if fw == "tensorflow" else 0
            bound = np.broadcast_to(eps_hat + weight_tolerance, torch_weights.shape)
            gap = np.abs(probes[fw][f"epoch/{name}"] - torch_weights)
            worst = np.unravel_index(np.argmax(gap - bound), gap.shape)
            where = f"{fw} {name}{[int(i) for i in worst]}"
            assert np.all(gap <= bound), f"{where}: gap {gap[worst]:.3g} > bound {bound[worst]:.3g}"
            reversed_outside += int(np.sum(np.abs(torch_side[f"reversed/{name}"] - torch_weights) > bound))
        # ...and the weights after the reversed epoch are outside those bounds: the check sees order.
        assert reversed_outside > 0, fw


if __name__ == "__main__":
    probe(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
