"""The fast training path trains the same algorithm as the plain one (train.fast), on any CPU.

Two checks, each run in a subprocess per framework (torch, tensorflow, jax; this file as a
script: `python test_fast_path.py FRAMEWORK CACHE OUT [MUTATION]`), on 2,000 images = 63 steps at
batch 32, the last one partial:

- Step by step, from the same state. Before each step k both paths get the plain path's state
  after k-1 steps (weights, Adam's moments and step count); each then takes its own minibatch k
  and makes one step. The two losses and the two updates must agree within bounds derived from
  float32 rounding (see ``loss_tolerance`` and ``update_tolerance``): nothing here depends on how
  a particular CPU rounds, only on how far float32 arithmetic may round at all.
- A whole epoch from the same initial weights. Trajectories are chaotic: last-bit differences
  grow over tens of Adam steps, by an amount that depends on the CPU's kernels. So the bound
  is measured on the machine that runs the test: the plain path against itself with the
  initial weights moved by one ulp (up and down). The fast path may drift from the plain one
  no further than that control (EPOCH_FACTOR).

A deliberately wrong fast path (the next epoch's batch order; a learning rate 10 % off) must
fail both checks: ``test_a_wrong_fast_path_fails_both_checks`` runs the same probe with the
fast trainer broken that way.
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
U = 2.0**-24  # float32's unit roundoff: a correctly rounded operation errs by at most U relative
# Adam's update of one element in float32 is about a dozen roundings (the two moments, the
# bias corrections, sqrt, + eps, the division, * lr): each contributes at most U relative to its
# result, so 16 U bounds their sum to first order.
ADAM_ROUNDINGS = 16
# The epoch-level bound, in units of the one-ulp control measured in the test on the machine
# that runs it: the fast path may drift from the plain one no further than the plain one
# drifts from itself when every initial weight moves by one ulp. Both drifts come from last-bit
# differences amplified by the same 63 steps, so their ratio, not their size, is what carries
# over between CPUs. Measured on an Intel Xeon (AVX-512, 2 cores), gap / control for the loss
# and the weights: torch 0.10 and 0.04, Keras 0 and 0 (its two paths run the same kernels); a
# fast path with the next epoch's order 19-30 and 20, with lr 10 % off 13-127 and 7.8-8.2.
# A factor of 1 leaves 10-25x room below it and 7x above it. JAX (Flax NNX, 2 XLA threads): 0
# and 0 (XLA compiles the same step in both paths and here rounds it alike), the next epoch's
# order 249 and 131, lr 10 % off 110 and 52.
EPOCH_FACTOR = 1.0
MUTATIONS = ("order", "lr")

pytestmark = pytest.mark.slow


def gamma(n: int) -> float:
    """Higham's gamma_n = nU / (1 - nU): a float32 sum or dot product of n terms errs by at most
    gamma_n times the sum of the terms' magnitudes (Higham, Accuracy and Stability of Numerical
    Algorithms, 2nd ed., section 3.1), whatever order or blocking a kernel uses."""
    return n * U / (1 - n * U)


def reduction_lengths(spec, batch: int) -> tuple[int, int]:
    """(forward, gradient): the longest chains of float32 additions in one training step.

    Forward, to the loss: each layer's dot products (a conv's in_channels * k * k, a dense
    layer's inputs), the softmax's sum over classes, the mean over the minibatch. A gradient
    element adds the backward pass: each layer's input gradient sums over its fan-out (a conv's
    out_channels * k * k, a dense layer's outputs), and the weight gradient itself sums over the
    minibatch and, for a conv, every output position; the longest of those ends the chain.
    """
    k2 = spec.kernel_size**2
    convs, dense = spec.conv_layers, spec.dense_layers
    forward = sum(c.in_channels * k2 for c in convs) + sum(n_in for _, n_in, _ in dense) + spec.classes + batch
    backward = sum(c.out_channels * k2 for c in convs) + sum(n_out for _, _, n_out in dense)
    weight_grad = max([batch * c.side_conv**2 for c in convs] + [batch])
    return forward, forward + backward + weight_grad


def loss_tolerance(loss: float, n_forward: int) -> float:
    """Two evaluations of the same loss from the same weights and minibatch, each within
    gamma_n of the exact value (the loss is a mean of positive terms, so no cancellation)."""
    return 2 * gamma(n_forward) * abs(loss)


def update_tolerance(train: dict, keras_eps: bool, t: int, theta_new, m, m_new, v_new, g, n_grad: int):
    """Elementwise bound on |update_fast - update_plain| after one Adam step from one state.

    Adam (PyTorch): delta = lr * m_hat / (s + eps), m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2,
    m_hat = m' / (1 - b1^t), s = sqrt(v' / (1 - b2^t)); Keras adds eps before the bias correction,
    i.e. eps_t = eps / sqrt(1 - b2^t) (the tensorflow backend's make_optimizer). Three sources:
    - the gradients differ by rounding: each is within gamma_n * sum|terms| of the exact one. We
      take max|g| of the tensor for sum|terms|, which is not a bound where terms cancel; what
      makes the product safe is gamma_n, a worst case that grows like nU where real rounding
      errors grow like sqrt(n) U (about 160x less at n = 26,000): room for terms that cancel
      by up to that factor. (A strict bound would need per-example gradient magnitudes.)
      That error moves delta by at most |d delta / dg| * dg, with
      |d delta / dg| <= lr / (1 - b1^t) / (s + eps) * ((1 - b1) + |m_hat| * sqrt((1 - b2) / (1 - b2^t)) / (s + eps))
      (from s >= sqrt((1 - b2) / (1 - b2^t)) |g|);
    - Adam's own arithmetic: ADAM_ROUNDINGS * U relative, m' measured by the magnitudes it sums;
    - each path rounds theta - delta to float32: one ulp of the new weight between the two.
    """
    lr, (b1, b2), eps = train["lr"], train["betas"], train["eps"]
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    s = np.sqrt(v_new / bc2)
    denom = s + (eps / np.sqrt(bc2) if keras_eps else eps)
    m_hat = np.abs(m_new) / bc1
    sensitivity = lr / bc1 / denom * ((1 - b1) + m_hat * np.sqrt((1 - b2) / bc2) / denom)
    gradient_error = 2 * gamma(n_grad) * np.abs(g).max()
    arithmetic = ADAM_ROUNDINGS * U * lr * ((b1 * np.abs(m) + (1 - b1) * np.abs(g)) / bc1 / denom + m_hat / denom)
    return sensitivity * gradient_error + arithmetic + np.spacing(np.abs(theta_new).astype(np.float32))


class TorchSide:
    keras_eps = False

    def __init__(self, backend):
        self.backend, self.torch = backend, backend.torch

    def weights(self, trainer) -> list[np.ndarray]:
        return [p.detach().numpy().astype(np.float64) for p in trainer.model.parameters()]

    def moments(self, trainer) -> tuple[int, list, list]:
        state = [trainer.optimizer.state[p] for p in trainer.model.parameters()]
        if not state[0]:  # before the first step
            zeros = [np.zeros(p.shape) for p in trainer.model.parameters()]
            return 0, zeros, zeros
        t = int(state[0]["step"])
        return (
            t,
            [s["exp_avg"].numpy().astype(np.float64) for s in state],
            [s["exp_avg_sq"].numpy().astype(np.float64) for s in state],
        )

    def gradients(self, trainer, m, m_new, b1) -> list[np.ndarray]:
        return [p.grad.numpy().astype(np.float64) for p in trainer.model.parameters()]

    def batches(self, trainer) -> list[tuple]:
        return [(xb.clone(), yb.clone()) for xb, yb in trainer.batches(1)]

    def same_batch(self, a, b) -> bool:
        return all(self.torch.equal(u, v) for u, v in zip(a, b, strict=True))

    def step(self, trainer, batch) -> float:
        trainer.step_model.train()
        loss, _ = trainer.step(*batch)
        return float(loss)

    def epoch(self, trainer) -> tuple[np.ndarray, np.ndarray]:
        """(steps, the loss reported after each): every step's own loss."""
        trainer.train_epoch(1)
        return np.arange(1, len(trainer.step_losses) + 1), trainer.step_losses.astype(np.float64)

    def set_lr(self, trainer, lr: float) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr

    def break_order(self, trainer) -> None:
        right = trainer.epoch_order
        trainer.epoch_order = lambda epoch, n: right(epoch + 1, n)


class KerasSide:
    keras_eps = True

    def __init__(self, backend):
        self.backend, self.keras = backend, backend.keras

    def weights(self, trainer) -> list[np.ndarray]:
        return [np.asarray(v.numpy(), np.float64) for v in trainer.model.trainable_variables]

    def moments(self, trainer) -> tuple[int, list, list]:
        o = trainer.optimizer
        return (
            int(o.iterations.numpy()),
            [np.asarray(v.numpy(), np.float64) for v in o._momentums],
            [np.asarray(v.numpy(), np.float64) for v in o._velocities],
        )

    def gradients(self, trainer, m, m_new, b1) -> list[np.ndarray]:
        # fit does not expose gradients; Adam's first moment holds them: m' = b1 m + (1 - b1) g.
        return [(mn - b1 * mo) / (1 - b1) for mo, mn in zip(m, m_new, strict=True)]

    def batches(self, trainer) -> list[tuple]:
        from lenet_compare.train import minibatches

        x, y, shuffle = trainer.epoch_arrays(1)
        assert not shuffle
        return [(x[b], y[b]) for b in minibatches.batch_slices(len(y), trainer.train["batch_size"])]

    def same_batch(self, a, b) -> bool:
        return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))

    def step(self, trainer, batch) -> float:
        # One fit over one minibatch: on the fast path, one call of the compiled multi-step
        # train function that finds a single step to run.
        x, y = batch
        return float(trainer.model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0).history["loss"][0])

    def epoch(self, trainer) -> tuple[np.ndarray, np.ndarray]:
        """(steps, loss reported after them): fit reports a running mean after each call of its
        train function, after every step on the plain path, every STEPS_PER_EXECUTION on the fast."""
        means = {}

        class Record(self.keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                means[batch + 1] = logs["loss"]

        x, y, _ = trainer.epoch_arrays(1)
        trainer.model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[Record()])
        steps = sorted(means)
        return np.array(steps), np.array([means[s] for s in steps], np.float64)

    def set_lr(self, trainer, lr: float) -> None:
        trainer.optimizer.learning_rate.assign(lr)

    def break_order(self, trainer) -> None:
        right = trainer.epoch_arrays
        trainer.epoch_arrays = lambda epoch: right(epoch + 1)  # fit's arrays come from epoch_order


class JaxSide:
    """Flax NNX: weights and Adam's moments from the trainer's named state (model.*, optimizer.*)."""

    keras_eps = False  # optax.adam adds eps after the bias correction, as PyTorch does

    def __init__(self, backend):
        self.backend = backend

    def names(self, trainer) -> list[str]:
        return sorted(k for k in trainer.state() if k.startswith("model."))

    def weights(self, trainer) -> list[np.ndarray]:
        state = trainer.state()
        return [state[k].astype(np.float64) for k in self.names(trainer)]

    def moments(self, trainer) -> tuple[int, list, list]:
        state, names = trainer.state(), self.names(trainer)
        adam = "optimizer.opt_state.0."
        return (
            int(state[adam + "count"]),
            [state[k.replace("model.", adam + "mu.")].astype(np.float64) for k in names],
            [state[k.replace("model.", adam + "nu.")].astype(np.float64) for k in names],
        )

    def gradients(self, trainer, m, m_new, b1) -> list[np.ndarray]:
        # As for Keras: m' = b1 m + (1 - b1) g gives the gradient the step used.
        return [(mn - b1 * mo) / (1 - b1) for mo, mn in zip(m, m_new, strict=True)]

    def batches(self, trainer) -> list[np.ndarray]:
        from lenet_compare.train import minibatches

        order = np.asarray(trainer.epoch_order(1, len(trainer.y)), np.int32)
        return [order[b] for b in minibatches.batch_slices(len(order), trainer.train["batch_size"])]

    def same_batch(self, a, b) -> bool:
        return np.array_equal(a, b)

    def step(self, trainer, batch) -> float:
        # The fast path's compiled program, called with a single step to run.
        if trainer.train["fast"]:
            losses, _ = trainer.fast_steps([batch[None]])
            return float(losses[0])
        loss, _ = trainer.plain_step(batch)
        return float(loss)

    def epoch(self, trainer) -> tuple[np.ndarray, np.ndarray]:
        """(steps, the loss of each): every step's own loss, on both paths."""
        trainer.train_epoch(1)
        return np.arange(1, len(trainer.step_losses) + 1), trainer.step_losses.astype(np.float64)

    def set_lr(self, trainer, lr: float) -> None:
        # optax.adam holds its learning rate in the transformation, not in the state.
        trainer.optimizer.tx = self.backend.make_optimizer({**trainer.train, "lr": lr})

    def break_order(self, trainer) -> None:
        right = trainer.epoch_order
        trainer.epoch_order = lambda epoch, n: right(epoch + 1, n)


SIDES = {"torch": TorchSide, "tensorflow": KerasSide, "jax": JaxSide}
FRAMEWORKS = tuple(SIDES)


def probe(framework: str, cache: Path, out: Path, mutation: str | None = None) -> None:
    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.train import init_weights
    from lenet_compare.train.import_backend import import_backend

    backend = import_backend(framework)
    side = SIDES[framework](backend)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    spec = LeNetSpec.from_params(params["model"])
    device, _ = backend.configure("cpu", deterministic=True, tf32=False, seed=0)
    with np.load(cache) as data:
        x, y = data["x_train"][:N_IMAGES], data["y_train"][:N_IMAGES]
    train = {**params["train"], "order": "shared", "init": "shared"}
    init = init_weights.initial_weights(spec, seed=0)
    n_forward, n_grad = reduction_lengths(spec, train["batch_size"])

    def trainer(fast: bool, weights=init):
        t = backend.Trainer(spec, {**train, "fast": fast}, 0, device, weights)
        t.set_training_data(x, y)
        return t

    def broken(t):
        """The fast trainer, deliberately wrong when a mutation is asked for."""
        if mutation == "order":
            side.break_order(t)
        elif mutation == "lr":
            side.set_lr(t, train["lr"] * 1.1)
        return t

    # --- step by step from the plain path's states ---
    fast, plain = broken(trainer(True)), trainer(False)
    fast_batches, plain_batches = side.batches(fast), side.batches(plain)
    b1 = train["betas"][0]
    rows = []
    for k, (fast_batch, plain_batch) in enumerate(zip(fast_batches, plain_batches, strict=True)):
        state = plain.state()
        theta = side.weights(plain)
        _, m, _ = side.moments(plain)
        fast.load_state(state)
        if mutation == "lr":  # the state holds the learning rate: break it again
            side.set_lr(fast, train["lr"] * 1.1)
        loss_fast, loss_plain = side.step(fast, fast_batch), side.step(plain, plain_batch)
        t, m_new, v_new = side.moments(plain)
        g = side.gradients(plain, m, m_new, b1)
        ratios = []
        for w0, wf, wp, *adam in zip(theta, side.weights(fast), side.weights(plain), m, m_new, v_new, g, strict=True):
            tol = update_tolerance(train, side.keras_eps, t, wp, *adam, n_grad=n_grad)
            ratios.append(float((np.abs((wf - w0) - (wp - w0)) / tol).max()))
        rows.append(
            (
                k + 1,
                float(side.same_batch(fast_batch, plain_batch)),
                abs(loss_fast - loss_plain) / loss_tolerance(loss_plain, n_forward),
                max(ratios),
            )
        )
    result = {"steps": np.array(rows)}  # step, same minibatch, loss gap / bound, update gap / bound

    # --- one epoch from the initial weights, against the one-ulp control ---
    def epoch_run(t):
        steps, losses = side.epoch(t)
        return steps, losses, side.weights(t)

    runs = {"fast": epoch_run(broken(trainer(True))), "plain": epoch_run(trainer(False))}
    for name, direction in (("up", np.inf), ("down", -np.inf)):
        moved = {k: np.nextafter(w, np.float32(direction)).astype(np.float32) for k, w in init.items()}
        runs[name] = epoch_run(trainer(False, moved))
    plain_losses = dict(zip(runs["plain"][0], runs["plain"][1], strict=True))

    def gaps(run) -> tuple[float, float]:
        """How far ``run`` ended from the plain run: the root mean square of the loss gaps at the
        steps it reports, and the 2-norm of the gap of all weights after the epoch.

        Norms over everything, not the largest single gap: Adam moves a weight whose gradient
        is near zero by about lr in the direction of the gradient's sign, so a last-bit change
        can flip a few such weights by up to 2 lr per step; a wrong path moves all of them."""
        steps, losses, weights = run
        steps = np.minimum(steps, max(plain_losses))  # Keras numbers a last, partial call as full
        loss_gap = np.sqrt(np.mean([(v - plain_losses[s]) ** 2 for s, v in zip(steps, losses, strict=True)]))
        weight_gap = np.sqrt(sum(((w - p) ** 2).sum() for w, p in zip(weights, runs["plain"][2], strict=True)))
        return float(loss_gap), float(weight_gap)

    control = np.max([gaps(runs[name]) for name in ("up", "down")], axis=0)
    result["epoch_gap"] = np.array(gaps(runs["fast"]))
    result["epoch_control"] = control
    result["details"] = np.array(str(fast.details()) + "\n" + str(plain.details()))
    np.savez(out, **result)


def run_probe(framework: str, cache: Path, out: Path, mutation: str | None = None) -> dict:
    cmd = [sys.executable, __file__, framework, str(cache), str(out), *([mutation] if mutation else [])]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module", params=FRAMEWORKS)
def paths(request, small_cache, tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("fast") / f"{request.param}.npz"
    return request.param, run_probe(request.param, small_cache, out)


def test_the_two_paths_are_what_they_say(paths):
    framework, r = paths
    fast, plain = str(r["details"]).split("\n")
    if framework == "torch":
        assert "torch.compile" in fast and "fused Adam" in fast
        assert "eager step" in plain
    elif framework == "jax":
        assert "jax.jit of 8 unrolled train steps per call on the nnx.split state" in fast
        assert "nnx.jit train step per minibatch" in plain
    else:
        assert "'steps_per_execution': 50" in fast
        assert "'steps_per_execution': 1" in plain


def test_each_step_from_the_same_state_agrees(paths):
    _, r = paths
    steps = r["steps"]
    assert steps.shape == (63, 4)
    assert steps[:, 1].all(), "the paths trained on different minibatches"
    assert steps[:, 2].max() <= 1, f"a loss differs beyond float32 rounding: {steps[:, 2].max():.3g} x the bound"
    assert steps[:, 3].max() <= 1, f"an update differs beyond float32 rounding: {steps[:, 3].max():.3g} x the bound"


def test_the_epoch_stays_within_the_one_ulp_control(paths):
    _, r = paths
    gap, control = r["epoch_gap"], r["epoch_control"]
    # The control is real drift: one ulp at the start must show by the end of 63 chaotic steps
    # (if it did not, the bound would be zero and the check would say nothing).
    assert (control > 0).all(), control
    assert (gap <= EPOCH_FACTOR * control).all(), f"loss, weight gaps {gap} against control {control}"


@pytest.mark.parametrize("mutation", MUTATIONS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_wrong_fast_path_fails_both_checks(framework, mutation, small_cache, tmp_path):
    r = run_probe(framework, small_cache, tmp_path / "broken.npz", mutation)
    steps = r["steps"]
    step_fails = not steps[:, 1].all() or steps[:, 2].max() > 1 or steps[:, 3].max() > 1
    assert step_fails, steps[:5]
    assert (r["epoch_gap"] > EPOCH_FACTOR * r["epoch_control"]).any(), (r["epoch_gap"], r["epoch_control"])


if __name__ == "__main__":
    probe(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
