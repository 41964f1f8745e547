"""Both frameworks build the same LeNet-5 from one spec and take the same first Adam step.

torch and tensorflow must never share a process, so each framework runs in its own subprocess:
this file run as a script (`python test_lenet_frameworks.py FRAMEWORK CACHE OUT`) is that
subprocess. It writes what it measured to an .npz that the tests compare.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CUSTOM_MODEL

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "tensorflow")
N_IMAGES = 64  # images whose logits are compared
BATCH = 32  # one Adam step on the first 32 training images
N_EPOCH_IMAGES = 80  # a short epoch at batch 32: two full minibatches, then a partial one of 16

pytestmark = pytest.mark.slow


def probe(framework: str, cache: Path, out: Path) -> None:
    """Run in a subprocess: build, predict and take one training step with one framework."""
    from lenet_compare import protocol
    from lenet_compare.backends import import_backend
    from lenet_compare.lenet_spec import LeNetSpec

    backend = import_backend(framework)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    train = {**params["train"], "order": "shared", "init": "shared"}
    device, _ = backend.configure("cpu", deterministic=True, tf32=False, seed=0)
    data = np.load(cache)
    result = {}
    for tag, model in (("default", params["model"]), ("custom", CUSTOM_MODEL)):
        spec = LeNetSpec.from_params(model)
        trainer = backend.Trainer(spec, train, 0, device, protocol.initial_weights(spec, seed=0))
        result[f"{tag}_n_parameters"] = np.int64(trainer.n_parameters)
        result[f"{tag}_logits"] = trainer.predict(data["x_test"][:N_IMAGES])

    spec = LeNetSpec.from_params(params["model"])
    steps = {"step": train}
    if framework == "tensorflow":
        # Keras adds eps to sqrt(v) before bias correction; at step 1 its eps * sqrt(1 - b2)
        # is exactly PyTorch's eps (tensorflow_backend.make_optimizer). Also record the raw eps.
        steps = {"step": {**train, "eps": train["eps"] * np.sqrt(1 - train["betas"][1])}, "raw_eps_step": train}
    for tag, step_train in steps.items():
        trainer = backend.Trainer(spec, step_train, 0, device, protocol.initial_weights(spec, seed=0))
        trainer.set_training_data(data["x_train"][:BATCH], data["y_train"][:BATCH])
        trainer.train_epoch(1)  # one epoch of one batch: one Adam step through the training code
        for name, value in trainer.canonical_weights().items():
            result[f"{tag}/{name}"] = value

    # A short epoch through the real training code: order across minibatches and the partial
    # last batch's weight in the epoch's mean loss must match too. "reversed" is the control:
    # the same images in another order must give another loss, or the comparison proves nothing.
    epoch_train = steps["step"]
    x, y = data["x_train"][:N_EPOCH_IMAGES], data["y_train"][:N_EPOCH_IMAGES]
    shared_order = protocol.epoch_permutation(0, 1, N_EPOCH_IMAGES)
    for tag, order in (("epoch", shared_order), ("reversed", shared_order[::-1])):
        trainer = backend.Trainer(spec, epoch_train, 0, device, protocol.initial_weights(spec, seed=0))
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
    """Both frameworks' probes, run side by side in two subprocesses."""
    out_dir = tmp_path_factory.mktemp("probes")
    procs = {
        fw: subprocess.Popen(
            [sys.executable, __file__, fw, str(small_cache), str(out_dir / f"{fw}.npz")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for fw in FRAMEWORKS
    }
    for fw, proc in procs.items():
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{fw} probe failed:\n{output}"
    return {fw: dict(np.load(out_dir / f"{fw}.npz")) for fw in FRAMEWORKS}


def spec_of(model: dict):
    from lenet_compare.lenet_spec import LeNetSpec

    return LeNetSpec.from_params(model)


@pytest.mark.parametrize("tag", ["default", "custom"])
def test_parameter_counts_equal_the_spec(probes, tag):
    model = yaml.safe_load((REPO / "params.yaml").read_text())["model"] if tag == "default" else CUSTOM_MODEL
    expected = spec_of(model).n_parameters
    assert [int(probes[fw][f"{tag}_n_parameters"]) for fw in FRAMEWORKS] == [expected, expected]
    if tag == "default":
        assert expected == 61_706


@pytest.mark.parametrize("tag", ["default", "custom"])
def test_shared_weights_give_the_same_logits(probes, tag):
    torch_logits, keras_logits = (probes[fw][f"{tag}_logits"] for fw in FRAMEWORKS)
    assert torch_logits.shape == keras_logits.shape == (N_IMAGES, 10)
    assert torch_logits.std() > 1e-3  # real, image-dependent outputs, not a degenerate match
    np.testing.assert_allclose(keras_logits, torch_logits, rtol=0, atol=1e-5)


def test_one_adam_step_gives_the_same_weights(probes):
    torch_side, keras_side = probes["torch"], probes["tensorflow"]
    names = [k.removeprefix("step/") for k in torch_side if k.startswith("step/")]
    assert len(names) == 10
    spec = spec_of(yaml.safe_load((REPO / "params.yaml").read_text())["model"])
    from lenet_compare.protocol import initial_weights

    init = initial_weights(spec, seed=0)
    moved = max(np.abs(torch_side[f"step/{n}"] - init[n]).max() for n in names)
    assert moved > 5e-4  # Adam's first step moves weights by about lr = 1e-3
    for name in names:
        np.testing.assert_allclose(
            keras_side[f"step/{name}"], torch_side[f"step/{name}"], rtol=0, atol=1e-5, err_msg=name
        )
    # With the same raw eps the two Adams differ where gradients are tiny (the epsilon hat).
    raw_gap = max(np.abs(keras_side[f"raw_eps_step/{n}"] - torch_side[f"step/{n}"]).max() for n in names)
    assert raw_gap > 1e-5


def test_an_epoch_with_a_partial_last_batch_matches(probes):
    torch_side, keras_side = probes["torch"], probes["tensorflow"]
    assert float(torch_side["epoch_loss"]) == pytest.approx(float(keras_side["epoch_loss"]), abs=1e-5)
    assert float(torch_side["epoch_accuracy"]) == pytest.approx(float(keras_side["epoch_accuracy"]), abs=1e-6)
    names = [k.removeprefix("epoch/") for k in torch_side if k.startswith("epoch/")]
    # After 3 Adam steps the epsilon-hat difference (steps 2, 3) only moves near-zero-gradient
    # weights; nearly all weights still agree to float32 rounding.
    gaps = np.concatenate([np.abs(keras_side[f"epoch/{n}"] - torch_side[f"epoch/{n}"]).ravel() for n in names])
    assert np.median(gaps) < 1e-6 and np.quantile(gaps, 0.99) < 1e-4
    # The control: the same images in reversed order give a different epoch in both frameworks.
    for side in (torch_side, keras_side):
        assert abs(float(side["reversed_loss"]) - float(side["epoch_loss"])) > 1e-4


if __name__ == "__main__":
    probe(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
