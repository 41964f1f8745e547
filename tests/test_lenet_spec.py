"""The framework-free half of issue 3: model spec, weight layouts, protocol, device detection.

Fast: no framework is imported here (the framework tests are in test_lenet_frameworks.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CUSTOM_MODEL, default_params

from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec, check_weights, from_channels_last, to_channels_last
from lenet_compare.train import devices, init_weights, minibatches, scores

DEFAULT = LeNetSpec.from_params(default_params()["model"])
CUSTOM = LeNetSpec.from_params(CUSTOM_MODEL)


def test_default_spec_is_the_articles_pytorch_lenet():
    assert [(c.side_conv, c.side_out) for c in DEFAULT.conv_layers] == [(28, 14), (10, 5)]
    assert DEFAULT.feature_shape == (16, 5, 5)
    assert DEFAULT.dense_layers == [("fc1", 400, 120), ("fc2", 120, 84), ("fc3", 84, 10)]
    assert DEFAULT.n_parameters == 61_706


def test_parameter_count_of_the_articles_keras_variant():
    # The article's Keras code padded the second conv "same": 16 x 7 x 7 inputs to fc1.
    spec = LeNetSpec.from_params({**default_params()["model"], "conv_padding": [2, 2]})
    assert spec.n_parameters == 107_786


def test_custom_spec_shapes():
    assert [(c.side_in, c.side_conv, c.side_out) for c in CUSTOM.conv_layers] == [
        (28, 26, 13),
        (13, 15, 7),
        (7, 7, 3),
    ]
    assert CUSTOM.flatten_size == 16 * 3 * 3
    expected = (4 * 9 + 4) + (8 * 4 * 9 + 8) + (16 * 8 * 9 + 16) + (144 * 32 + 32) + (32 * 10 + 10)
    assert CUSTOM.n_parameters == expected


@pytest.mark.parametrize("spec", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_channels_last_layout(spec):
    weights = init_weights.initial_weights(spec, seed=3)
    keras_layout = to_channels_last(spec, weights)
    c, h, w = spec.feature_shape
    # fc1 input (c, i, j) of the canonical layout is row (i, j, c) of the Keras kernel.
    for ci, i, j in [(0, 0, 0), (c - 1, h - 1, w - 1), (1, h // 2, 0)]:
        np.testing.assert_array_equal(
            keras_layout["fc1.weight"][(i * w + j) * c + ci], weights["fc1.weight"][:, (ci * h + i) * w + j]
        )
    k = spec.kernel_size
    assert keras_layout["conv1.weight"].shape == (k, k, 1, spec.conv_channels[0])
    back = from_channels_last(spec, keras_layout)
    for name, value in weights.items():
        np.testing.assert_array_equal(back[name], value)


def test_initial_weights_follow_pytorch_default_bounds():
    weights = init_weights.initial_weights(DEFAULT, seed=0)
    check_weights(DEFAULT, weights, "test")
    for name, value in weights.items():
        bound = 1 / np.sqrt(DEFAULT.fan_in(name))
        assert value.dtype == np.float32
        assert np.abs(value).max() <= bound
        if value.size >= 400:  # a uniform sample this large reaches near both ends
            assert value.min() < -0.9 * bound and value.max() > 0.9 * bound
    assert DEFAULT.fan_in("conv2.bias") == 6 * 25
    again = init_weights.initial_weights(DEFAULT, seed=0)
    other = init_weights.initial_weights(DEFAULT, seed=1)
    assert all(np.array_equal(weights[n], again[n]) for n in weights)
    assert not np.array_equal(weights["fc1.weight"], other["fc1.weight"])


def test_init_file_round_trip_and_checks(tmp_path):
    path = tmp_path / "seed7.npz"
    written = init_weights.save_initial_weights(path, DEFAULT, seed=7)
    loaded = init_weights.load_initial_weights(path, DEFAULT, seed=7)
    assert loaded.keys() == written.keys()
    assert all(np.array_equal(loaded[n], written[n]) for n in written)
    with pytest.raises(PipelineError, match="seed 7, not of seed 8"):
        init_weights.load_initial_weights(path, DEFAULT, seed=8)
    with pytest.raises(PipelineError, match="model spec"):
        init_weights.load_initial_weights(path, CUSTOM, seed=7)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PipelineError, match="rerun the init step"):
        init_weights.load_initial_weights(tmp_path / "bad.npz", DEFAULT, seed=7)


def test_epoch_permutations_are_seeded_per_epoch():
    n = 1000
    first = minibatches.epoch_permutation(seed=0, epoch=1, n=n)
    assert first.dtype == np.int64
    assert np.array_equal(np.sort(first), np.arange(n))
    assert np.array_equal(first, minibatches.epoch_permutation(seed=0, epoch=1, n=n))
    assert not np.array_equal(first, minibatches.epoch_permutation(seed=0, epoch=2, n=n))
    assert not np.array_equal(first, minibatches.epoch_permutation(seed=1, epoch=1, n=n))
    assert minibatches.native_epoch_seed(0, 1) != minibatches.native_epoch_seed(0, 2)


def test_batches_cover_the_epoch_with_a_partial_last_batch():
    batches = minibatches.batch_slices(55_000, 32)
    assert len(batches) == 1719
    assert batches[0] == slice(0, 32)
    assert batches[-1] == slice(54_976, 55_000)  # 24 images
    assert minibatches.batch_slices(64, 32) == [slice(0, 32), slice(32, 64)]


def test_cross_entropy_and_accuracy():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 50.0]], dtype=np.float32)
    labels = np.array([0, 1])
    expected = (np.log((np.exp(2) + 2) / np.exp(2)) + 50 + np.log1p(2 * np.exp(-50))) / 2
    # cross_entropy works in float64 (the float32 logits here are exact small integers): a few
    # roundings of 2^-53 = 1.1e-16 each, so 1e-12 is a loose float64 tolerance, not a fit.
    assert scores.cross_entropy(logits, labels) == pytest.approx(expected, rel=1e-12)
    assert scores.accuracy(logits, labels) == 0.5


def test_visible_gpu_count_honors_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(devices, "physical_gpu_count", lambda: 2)
    for value, expected in [(None, 2), ("", 0), ("-1", 0), ("0", 1), ("1,0", 2), ("0,-1,1", 1), ("0,1,2,3", 2)]:
        if value is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert devices.visible_gpu_count() == expected, value
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not devices.uses_gpu("auto")
    assert devices.uses_gpu("cuda")
    with pytest.raises(PipelineError, match="hides every GPU"):
        devices.require_gpu_if_asked("cuda")
    devices.require_gpu_if_asked("auto")  # no error: auto falls back to the CPU
