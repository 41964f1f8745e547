"""The float64 NumPy reference (train/backends/numpy/backend.py) checked against definitions, not
against a framework: the forward pass against a direct evaluation of the spec, every gradient
against central finite differences, Adam against its formula written out, and its checkpoints
and saved model against themselves. No framework is imported: these are fast tests.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import CUSTOM_MODEL

from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.evaluate.inference_timing import float32_tolerance
from lenet_compare.train import minibatches
from lenet_compare.train.backends.numpy import backend as ref
from lenet_compare.train.init_weights import initial_weights

TRAIN = {
    "epochs": 2,
    "batch_size": 32,
    "lr": 1e-3,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "init": "shared",
    "order": "shared",
    "fast": True,
}


def tiny_spec(**model) -> LeNetSpec:
    """3x3 kernels, 2 and 3 channels, one hidden layer of 5, 4 classes: a few hundred parameters."""
    defaults = {
        "conv_channels": [2, 3],
        "kernel_size": 3,
        "conv_padding": [1, 0],
        "pooling": "avg",
        "activation": "tanh",
        "hidden": [5],
        "classes": 4,
    }
    return LeNetSpec.from_params(defaults | model)


def images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 images in [0, 1) and labels; random, so no symmetry hides a transposed axis."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 4, n)


def weights64(spec: LeNetSpec, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """The shared initial weights in float64; ``scale`` enlarges them so that activations leave
    their linear range (tanh and sigmoid then curve, max pooling picks clear winners)."""
    return {k: scale * v.astype(np.float64) for k, v in initial_weights(spec, seed).items()}


# --- the forward pass against a direct evaluation of the spec --------------------------------


def direct_logits(spec: LeNetSpec, w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The spec's definition evaluated another way: each conv as a sum over the k*k kernel
    offsets of shifted maps (no im2col), pooling as a reduction over reshaped 2x2 windows."""
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}
    f = act[spec.activation]
    a = x[:, None].astype(np.float64)
    k = spec.kernel_size
    for conv in spec.conv_layers:
        p = conv.padding
        padded = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))
        side = conv.side_conv
        z = np.zeros((len(a), conv.out_channels, side, side)) + w[f"{conv.name}.bias"][:, None, None]
        kernel = w[f"{conv.name}.weight"]
        for i, j in itertools.product(range(k), range(k)):
            # out[y, x] += W[o, c, i, j] * in[y + i, x + j]: cross-correlation, row offset i first.
            z += np.einsum("oc,ncyx->noyx", kernel[:, :, i, j], padded[:, :, i : i + side, j : j + side])
        h = f(z)
        s = conv.side_out  # floor: the windows of the first 2s rows and columns
        windows = h[:, :, : 2 * s, : 2 * s].reshape(len(h), conv.out_channels, s, 2, s, 2)
        a = windows.max(axis=(3, 5)) if spec.pooling == "max" else windows.mean(axis=(3, 5))
    a = a.reshape(len(a), -1)  # (C, H, W)
    for j, (name, _, _) in enumerate(spec.dense_layers, start=1):
        a = a @ w[f"{name}.weight"].T + w[f"{name}.bias"]
        if j < len(spec.dense_layers):
            a = f(a)
    return a


CONFIGS = [
    # (pooling, activation, conv_padding): every activation and pooling; padding on the first
    # conv, on the second (col2im must drop it), on both; [0, 1] gives an odd side (13) before
    # the second pooling, whose floor drops a row and a column.
    ("avg", "tanh", [1, 0]),
    ("max", "relu", [0, 1]),
    ("avg", "sigmoid", [2, 2]),
    ("max", "tanh", [1, 1]),
    ("avg", "relu", [0, 0]),
    ("max", "sigmoid", [2, 0]),
]


@pytest.mark.parametrize(("pooling", "activation", "padding"), CONFIGS)
def test_forward_is_the_spec(pooling, activation, padding):
    spec = tiny_spec(pooling=pooling, activation=activation, conv_padding=padding)
    w = weights64(spec, scale=3.0)
    x, _ = images(4)
    got = ref.forward(spec, w, x)
    assert got.dtype == np.float64 and got.shape == (4, spec.classes)
    expected = direct_logits(spec, w, x)
    assert expected.std() > 1e-2  # image-dependent outputs, not a degenerate match
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_forward_of_the_default_spec_with_three_convs():
    spec = LeNetSpec.from_params(CUSTOM_MODEL)
    w = weights64(spec)
    x, _ = images(3)
    np.testing.assert_allclose(ref.forward(spec, w, x), direct_logits(spec, w, x), rtol=1e-12, atol=1e-12)


# --- the gradients against central finite differences ----------------------------------------


def finite_difference(f, value: np.ndarray, h: float) -> np.ndarray:
    """Central differences (f(v + h e_i) - f(v - h e_i)) / 2h for every element i of ``value``
    (perturbed in place and restored). Its error is O(h^2) from truncation plus about
    1e-16 |f| / h from float64 rounding: ~1e-10 at h = 1e-6 and a loss of order 1."""
    out = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        old = value[i]
        value[i] = old + h
        up = f()
        value[i] = old - h
        down = f()
        value[i] = old
        out[i] = (up - down) / (2 * h)
    return out


@pytest.mark.parametrize(("pooling", "activation", "padding"), CONFIGS)
def test_every_gradient_matches_finite_differences(pooling, activation, padding):
    spec = tiny_spec(pooling=pooling, activation=activation, conv_padding=padding)
    w = weights64(spec, scale=3.0)
    x, y = images(3, seed=1)
    loss, grads, logits = ref.loss_and_gradients(spec, w, x, y)
    assert set(grads) == set(spec.parameter_shapes())
    assert loss == pytest.approx(ref.softmax_cross_entropy(ref.forward(spec, w, x), y)[0], abs=0)
    np.testing.assert_array_equal(logits, ref.forward(spec, w, x))

    def loss_now() -> float:
        return ref.softmax_cross_entropy(ref.forward(spec, w, x), y)[0]

    for name, value in w.items():
        numeric = finite_difference(loss_now, value, h=1e-6)
        assert np.abs(numeric).max() > 1e-6, name  # the parameter does move the loss
        # 1e-7 relative to the tensor's largest gradient: 1,000x the finite differences' own
        # error (~1e-10), far below what a wrong index, sign or factor changes (order 1 relative).
        np.testing.assert_allclose(
            grads[name], numeric, rtol=0, atol=1e-7 * np.abs(numeric).max() + 1e-10, err_msg=name
        )


def test_softmax_cross_entropy_and_its_gradient():
    rng = np.random.default_rng(3)
    logits, y = rng.normal(0, 3, (5, 7)), rng.integers(0, 7, 5)
    loss, d = ref.softmax_cross_entropy(logits, y)
    # The definition: -log(exp(z_y) / sum exp(z)), averaged over the 5 rows.
    by_row = [-math.log(math.exp(z[t]) / sum(math.exp(v) for v in z)) for z, t in zip(logits, y, strict=True)]
    assert loss == pytest.approx(sum(by_row) / 5, rel=1e-13)
    numeric = finite_difference(lambda: ref.softmax_cross_entropy(logits, y)[0], logits, h=1e-6)
    np.testing.assert_allclose(d, numeric, rtol=0, atol=1e-9)
    # Huge logits: the max is subtracted before exp, so nothing overflows.
    big_loss, big_d = ref.softmax_cross_entropy(logits + 1e4, y)
    assert big_loss == pytest.approx(loss, rel=1e-9) and np.isfinite(big_d).all()


def test_max_pooling_ties_go_to_the_first_element_like_pytorch():
    # One 2x2 window per map; maxima tied at (0, 1) and (1, 0): the first in row-major order
    # (0, 1) wins, as in PyTorch's CPU kernel (a later value replaces the max only if greater).
    h = np.array([[[[0.0, 2.0], [2.0, 1.0]]], [[[5.0, 5.0], [5.0, 5.0]]]])
    pooled, idx = ref.pool(h, "max")
    assert pooled.ravel().tolist() == [2.0, 5.0]
    back = ref.unpool(np.array([[[[1.0]]], [[[1.0]]]]), h.shape, idx)
    assert back[0, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert back[1, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_pooling_floors_an_odd_side():
    h = np.arange(2 * 25, dtype=np.float64).reshape(1, 2, 5, 5)
    for kind in ("avg", "max"):
        pooled, idx = ref.pool(h, kind)
        assert pooled.shape == (1, 2, 2, 2)
        back = ref.unpool(np.ones_like(pooled), h.shape, idx)
        assert back.shape == h.shape and not back[:, :, 4].any() and not back[:, :, :, 4].any()
        assert back.sum() == pytest.approx(8.0)  # each of the 8 outputs passes its gradient on once
    assert ref.pool(h, "avg")[0][0, 0, 0, 0] == (0 + 1 + 5 + 6) / 4


# --- Adam ----------------------------------------------------------------------------------


def test_adam_matches_pytorchs_formula_written_out():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-3
    adam = ref.Adam(lr, (b1, b2), eps)
    w = {"p": np.array([0.5, -0.25, 0.0])}
    gradients = [np.array([0.2, -3e-4, 0.0]), np.array([-0.1, 5e-4, 1.0]), np.array([0.3, 0.0, -2.0])]
    theta, m, v = [0.5, -0.25, 0.0], [0.0] * 3, [0.0] * 3
    for t, g in enumerate(gradients, start=1):
        adam.step(w, {"p": g.copy()})
        for i in range(3):  # torch.optim.Adam, one scalar at a time
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            theta[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        np.testing.assert_allclose(w["p"], theta, rtol=1e-14, atol=1e-17, err_msg=f"step {t}")
        np.testing.assert_allclose(adam.m["p"], m, rtol=1e-14)
        np.testing.assert_allclose(adam.v["p"], v, rtol=1e-14)
    assert adam.t == 3


def test_adams_first_step_reveals_the_gradient():
    # The oracle (tests/test_reference_oracle.py) reads gradients from a first step with
    # lr = eps = 1: theta moves by exactly -g / (|g| + 1).
    g = np.array([0.3, -2e-5, 0.0, 7.0])
    w = {"p": np.zeros(4)}
    ref.Adam(1.0, (0.9, 0.999), 1.0).step(w, {"p": g})
    np.testing.assert_allclose(w["p"], -g / (np.abs(g) + 1), rtol=1e-15, atol=0)


# --- the Trainer: order, checkpoints, saved model ------------------------------------------


def trainer(spec=None, init="shared", **train):
    spec = spec or tiny_spec()
    weights = initial_weights(spec, 0) if init == "shared" else None
    t = ref.Trainer(spec, TRAIN | train, 0, "cpu", weights)
    x, y = images(70, seed=2)  # two full minibatches of 32 and a partial one of 6
    t.set_training_data(x, y)
    return t


def test_an_epoch_reports_the_mean_of_its_steps():
    t = trainer()
    assert t.n_parameters == t.spec.n_parameters
    assert all(v.dtype == np.float64 for v in t.canonical_weights().values())
    loss, accuracy, seconds = t.train_epoch(1)
    assert len(t.step_losses) == 3 and seconds >= 0 and 0 <= accuracy <= 1
    assert loss == pytest.approx((32 * t.step_losses[0] + 32 * t.step_losses[1] + 6 * t.step_losses[2]) / 70)
    # The first step's loss is that of the first minibatch of the shared order at the initial weights.
    order = minibatches.epoch_permutation(0, 1, 70)
    x, y = images(70, seed=2)
    w0 = weights64(t.spec)
    assert t.step_losses[0] == ref.loss_and_gradients(t.spec, w0, x[order[:32]], y[order[:32]])[0]


def test_a_resumed_run_continues_bit_for_bit(tmp_path):
    straight = trainer()
    straight.train_epoch(1)
    after_one = straight.state()
    straight.train_epoch(2)

    from_state = trainer()
    from_state.load_state(after_one)
    from_state.train_epoch(2)

    path = tmp_path / "epoch1.npz"
    first = trainer()
    first.train_epoch(1)
    first.save_checkpoint(path)
    from_file = trainer()
    from_file.load_checkpoint(path)
    from_file.train_epoch(2)

    for resumed in (from_state, from_file):
        np.testing.assert_array_equal(resumed.step_losses, straight.step_losses)
        for name, value in straight.canonical_weights().items():
            np.testing.assert_array_equal(resumed.canonical_weights()[name], value, err_msg=name)
    # The control: the weights alone, without Adam's moments and step count, continue otherwise.
    weights_only = trainer()
    weights_only.load_state({**trainer().state(), **{k: v for k, v in after_one.items() if k.startswith("model.")}})
    weights_only.train_epoch(2)
    assert not np.array_equal(weights_only.step_losses, straight.step_losses)
    with pytest.raises(ValueError, match="differ"):
        trainer().load_state({k: v for k, v in after_one.items() if k != "optimizer.step"})


def test_the_saved_model_loads_back(tmp_path):
    t = trainer()
    t.train_epoch(1)
    path = t.save(tmp_path)
    assert path == tmp_path / "model.npz"
    model = ref.load_model(tmp_path, t.spec)
    for name, value in t.canonical_weights().items():
        np.testing.assert_array_equal(model.weights[name], value)  # float64 kept, bit for bit
    x, _ = images(5, seed=9)
    logits = ref.predict(model, x)
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(logits, t.predict(x))
    np.testing.assert_array_equal(logits, ref.forward(t.spec, t.weights, x).astype(np.float32))
    with pytest.raises(PipelineError, match="another model spec"):
        ref.load_model(tmp_path, tiny_spec(hidden=[6]))


def test_a_missing_or_corrupt_model_is_a_pipeline_error(tmp_path):
    with pytest.raises(PipelineError, match="missing; run the train step"):
        ref.load_model(tmp_path, tiny_spec())
    (tmp_path / "model.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PipelineError, match="cannot load .*corrupt"):
        ref.load_model(tmp_path, tiny_spec())


def test_inference_paths_agree_within_float32_rounding():
    t = trainer(spec=tiny_spec(classes=10))
    paths = ref.inference_paths(ref.Model(t.spec, t.weights))
    assert paths[0].kind == "naive" and "idiomatic" in [p.kind for p in paths]
    x, _ = images(50, seed=4)
    naive = paths[0].run(x)
    np.testing.assert_array_equal(naive, t.predict(x))
    for path in paths[1:]:
        out = path.run(x)
        assert out.dtype == np.float32 and 0 < np.abs(out - naive).max() <= float32_tolerance(t.spec, naive)


def test_native_order_is_a_permutation_of_its_own():
    t = trainer(order="native")
    first, second = t.epoch_order(1, 500), t.epoch_order(2, 500)
    assert sorted(first.tolist()) == list(range(500))
    assert not np.array_equal(first, second) and not np.array_equal(first, np.arange(500))
    np.testing.assert_array_equal(first, trainer(order="native").epoch_order(1, 500))  # seeded
    assert not np.array_equal(first, minibatches.epoch_permutation(0, 1, 500))  # not the shared one
    np.testing.assert_array_equal(trainer(order="fixed").epoch_order(1, 500), np.arange(500))


def test_native_init_draws_pytorchs_distribution_from_the_seed():
    spec = tiny_spec()
    a, b = trainer(init="native").canonical_weights(), trainer(init="native").canonical_weights()
    shared = initial_weights(spec, 0)
    for name, value in a.items():
        bound = 1 / math.sqrt(spec.fan_in(name))
        np.testing.assert_array_equal(value, b[name])
        assert np.abs(value).max() <= bound and (value.size < 50 or np.abs(value).max() > 0.8 * bound)
        assert not np.allclose(value, shared[name])


def test_what_the_reference_refuses():
    assert ref.sees_gpu() is False and "CPU only" in ref.gpu_view()
    assert set(ref.thread_counts()) == {"intra_op", "inter_op"}
    ref.preflight("cpu", TRAIN)
    with pytest.raises(PipelineError, match="softmax"):
        ref.preflight("cpu", TRAIN | {"head": "softmax"})
    with pytest.raises(PipelineError, match="softmax"):
        ref.Trainer(tiny_spec(), TRAIN | {"head": "softmax"}, 0, "cpu", None)
    with pytest.raises(PipelineError, match="CPU only"):
        ref.Trainer(tiny_spec(), TRAIN, 0, "cuda", None)
    assert "no effect" in trainer().details()["train_path"]
