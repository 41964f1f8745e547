"""The fast training path trains the same algorithm as the plain one (train.fast, issue "Speed").

Same initial weights, same minibatches in the same order, same optimizer: the first epoch's
per-step losses of both paths must agree to floating-point tolerance on a CPU, and so must the
weights after it. Each framework runs in its own subprocess (this file run as a script:
`python test_fast_path.py FRAMEWORK CACHE OUT`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
N_IMAGES = 2000  # 63 steps at batch 32, the last one partial (16 images)

pytestmark = pytest.mark.slow


def probe(framework: str, cache: Path, out: Path) -> None:
    from lenet_compare import protocol
    from lenet_compare.backends import import_backend
    from lenet_compare.lenet_spec import LeNetSpec

    backend = import_backend(framework)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    spec = LeNetSpec.from_params(params["model"])
    device, _ = backend.configure("cpu", deterministic=True, tf32=False, seed=0)
    data = np.load(cache)
    x, y = data["x_train"][:N_IMAGES], data["y_train"][:N_IMAGES]
    result = {}
    for path, fast in (("fast", True), ("plain", False)):
        train = {**params["train"], "order": "shared", "init": "shared", "fast": fast}
        trainer = backend.Trainer(spec, train, 0, device, protocol.initial_weights(spec, seed=0))
        trainer.set_training_data(x, y)
        if framework == "torch":
            loss, _, _ = trainer.train_epoch(1)
            result[f"{path}/step_losses"] = trainer.step_losses
        else:
            # Keras reports a running mean of the loss after each call of its train function:
            # after every step on the plain path, after every STEPS_PER_EXECUTION on the fast one.
            class Record(backend.keras.callbacks.Callback):
                def __init__(self):
                    super().__init__()
                    self.means = {}

                def on_train_batch_end(self, batch, logs=None):
                    self.means[batch + 1] = logs["loss"]

            order = protocol.epoch_permutation(0, 1, len(y))
            history = trainer.model.fit(
                x[order][..., None],
                y[order],
                batch_size=32,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[record := Record()],
            ).history
            means = record.means
            loss = history["loss"][0]
            result[f"{path}/steps"] = np.array(sorted(means))
            result[f"{path}/running_mean"] = np.array([means[k] for k in sorted(means)])
        result[f"{path}/loss"] = np.float64(loss)
        result[f"{path}/details"] = np.array(str(trainer.details()))
        for name, value in trainer.canonical_weights().items():
            result[f"{path}/w/{name}"] = value
    np.savez(out, **result)


@pytest.fixture(scope="module", params=["torch", "tensorflow"])
def paths(request, small_cache, tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("fast") / f"{request.param}.npz"
    result = subprocess.run(
        [sys.executable, __file__, request.param, str(small_cache), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as npz:
        return request.param, {k: npz[k] for k in npz.files}


def test_the_two_paths_are_what_they_say(paths):
    framework, r = paths
    fast, plain = str(r["fast/details"]), str(r["plain/details"])
    if framework == "torch":
        assert "torch.compile" in fast and "fused Adam" in fast
        assert "eager step" in plain
    else:
        assert "'steps_per_execution': 50" in fast
        assert "'steps_per_execution': 1" in plain


def test_per_step_losses_agree(paths):
    framework, r = paths
    if framework == "torch":
        fast, plain = r["fast/step_losses"], r["plain/step_losses"]
        assert fast.shape == plain.shape == (63,)
        # compiled kernels and fused Adam round differently: agreement to float32 noise that
        # grows slowly over the epoch, far below the step-to-step change of the loss
        np.testing.assert_allclose(fast, plain, rtol=2e-4, atol=2e-5)
        assert np.abs(np.diff(plain)).mean() > 100 * np.abs(fast - plain).max()
    else:
        # Every fast report is also a plain report: the running means there must agree.
        # (Keras numbers the report after the last, partial execution as if it were full.)
        steps = np.minimum(r["fast/steps"], 63)
        assert list(steps) == [50, 63]
        plain_means = dict(zip(r["plain/steps"], r["plain/running_mean"], strict=True))
        assert len(plain_means) == 63
        np.testing.assert_allclose(r["fast/running_mean"], [plain_means[s] for s in steps], rtol=1e-6)
    np.testing.assert_allclose(r["fast/loss"], r["plain/loss"], rtol=1e-5)


def test_weights_after_the_epoch_agree(paths):
    _, r = paths
    names = [k.split("/", 2)[2] for k in r if k.startswith("fast/w/")]
    assert names
    for name in names:
        np.testing.assert_allclose(r[f"fast/w/{name}"], r[f"plain/w/{name}"], atol=5e-5, err_msg=name)
    # ...and training moved them: identical weights because nothing trained would prove nothing
    init_change = max(np.abs(r[f"fast/w/{n}"]).sum() for n in names)
    assert init_change > 0


if __name__ == "__main__":
    probe(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
