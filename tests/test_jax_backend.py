"""What is particular to the JAX backend (lenet_compare.train.backends.jax: backend.py and start.py): when JAX takes its
threads, platform and flags, which params it refuses, repeatability, checkpoints without pickle,
the saved model, native initializers and order, the inference calls.

JAX is configured once per process, so every check runs in a subprocess: this file as a script
(`python test_jax_backend.py CHECK [ARGS]`) prints one JSON line that the tests read. Nothing
here needs the Fashion-MNIST files: the data are random images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CUSTOM_MODEL, default_params

REPO = Path(__file__).resolve().parents[1]


def run_check(*args: str, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=900, env=env, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the checks, run in a subprocess ----------------------------------------------------------


def random_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n)


def check_threads(threads: int) -> dict:
    """Import, then configure with ``threads``; what JAX started with; a second configure."""
    import os

    from lenet_compare.core.errors import PipelineError
    from lenet_compare.train.backends.jax import start
    from lenet_compare.train.import_backend import import_backend

    backend = import_backend("jax")
    out = {"started_after_import": start.started(), "xla_threads_after_import": start.xla_threads()}
    out["device"] = backend.configure("cpu", deterministic=True, tf32=False, seed=0, threads=threads)
    import jax  # already imported by the backend

    out["platform"] = jax.default_backend()
    out["env"] = {k: os.environ.get(k) for k in ("JAX_PLATFORMS", "PJRT_NPROC", "XLA_PYTHON_CLIENT_PREALLOCATE")}
    out["thread_counts"] = backend.thread_counts()
    out["matmul_precision"] = jax.config.jax_default_matmul_precision
    backend.configure("cpu", deterministic=True, tf32=False, seed=0, threads=threads)  # the same: fine
    try:
        backend.configure("cpu", deterministic=True, tf32=False, seed=0, threads=threads + 1)
        out["other_threads"] = "accepted"
    except PipelineError as e:
        out["other_threads"] = str(e)
    out["frameworks_loaded"] = sorted(m for m in ("torch", "tensorflow", "keras") if m in sys.modules)
    return out


def check_repeat(threads: int) -> dict:
    """Two fresh trainers in this process, 2 epochs each on the fast path: a digest of their weights."""
    import hashlib

    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.train import init_weights
    from lenet_compare.train.backends.jax import backend as jax_backend

    jax_backend.configure("cpu", deterministic=True, tf32=False, seed=0, threads=threads)
    params = default_params()
    spec = LeNetSpec.from_params(params["model"])
    x, y = random_data(500)
    digests, losses = [], []
    for _ in range(2):
        trainer = jax_backend.Trainer(spec, params["train"], 0, "cpu", init_weights.initial_weights(spec, 0))
        trainer.set_training_data(x, y)
        losses.append([trainer.train_epoch(epoch)[0] for epoch in (1, 2)])
        weights = trainer.canonical_weights()
        digests.append(hashlib.sha256(b"".join(weights[k].tobytes() for k in sorted(weights))).hexdigest())
    return {"digests": digests, "losses": losses, "threads": jax_backend.thread_counts()}


def check_backend(tmp: str) -> dict:
    """Everything else, on one configured JAX: params, models, checkpoints, orders, inference."""
    import zipfile

    from lenet_compare.core.errors import PipelineError
    from lenet_compare.core.spec import LeNetSpec
    from lenet_compare.train import init_weights
    from lenet_compare.train.backends.jax import backend as jax_backend

    tmp_path = Path(tmp)
    jax_backend.configure("cpu", deterministic=True, tf32=False, seed=0, threads=1)
    params = default_params()
    train, spec = params["train"], LeNetSpec.from_params(params["model"])
    out: dict = {}

    def refusal(fn) -> str:
        try:
            fn()
        except PipelineError as e:
            return str(e)
        return "accepted"

    # Params: the softmax head is refused, both before training and by the trainer; xla is ignored.
    softmax = {**train, "head": "softmax"}
    out["preflight_softmax"] = refusal(lambda: jax_backend.preflight("cpu", softmax))
    out["trainer_softmax"] = refusal(lambda: jax_backend.Trainer(spec, softmax, 0, "cpu", None))
    out["preflight_logits"] = refusal(lambda: jax_backend.preflight("cpu", {**train, "head": "logits"}))
    out["xla_true"] = refusal(lambda: jax_backend.preflight("cpu", {**train, "xla": True, "deterministic": False}))

    # Parameter counts of the spec, in Flax's own tally of its nnx.Param leaves.
    keras_variant = {**params["model"], "conv_padding": [2, 2]}
    out["n_parameters"] = {
        tag: [jax_backend.count_parameters(jax_backend.build_model(s)), s.n_parameters]
        for tag, s in (
            ("default", spec),
            ("custom", LeNetSpec.from_params(CUSTOM_MODEL)),
            ("keras_variant", LeNetSpec.from_params(keras_variant)),
        )
    }

    # Shared initial weights: loaded and read back exactly; the module holds them channel-last.
    init = init_weights.initial_weights(spec, seed=0)
    shared = jax_backend.Trainer(spec, train, 0, "cpu", init)
    back = shared.canonical_weights()
    out["canonical_round_trip"] = all(np.array_equal(back[k], init[k]) for k in init)
    out["conv1_kernel_shape"] = list(shared.model.conv1.kernel.shape)
    out["fc1_kernel_shape"] = list(shared.model.fc1.kernel.shape)

    # Native initial weights: Flax's defaults (zero biases, lecun-normal kernels), drawn from the seed.
    native = [
        jax_backend.Trainer(spec, {**train, "init": "native"}, s, "cpu", None).canonical_weights() for s in (0, 0, 1)
    ]
    out["native_zero_biases"] = all(not native[0][k].any() for k in native[0] if k.endswith(".bias"))
    out["native_same_seed_same"] = all(np.array_equal(native[0][k], native[1][k]) for k in init)
    out["native_other_seed_differs"] = not np.array_equal(native[0]["fc1.weight"], native[2]["fc1.weight"])
    out["native_not_shared"] = not np.array_equal(native[0]["fc1.weight"], init["fc1.weight"])
    # lecun_normal: variance 1 / fan_in (a truncated normal): fc1's 48,000 draws give its std closely.
    out["native_fc1_std_times_sqrt_fan_in"] = float(native[0]["fc1.weight"].std() * np.sqrt(spec.fan_in("fc1.weight")))

    # Orders: shared is minibatches' permutation; native JAX's own, new each epoch; fixed the data's.
    x, y = random_data(300)
    orders = {}
    for order in ("shared", "native", "fixed"):
        t = jax_backend.Trainer(spec, {**train, "order": order}, 0, "cpu", init)
        t.set_training_data(x, y)
        orders[order] = [t.epoch_order(e, len(y)).tolist() for e in (1, 2)]
    from lenet_compare.train import minibatches

    out["shared_order_is_minibatches"] = orders["shared"][0] == minibatches.epoch_permutation(0, 1, 300).tolist()
    out["native_order_is_permutation"] = sorted(orders["native"][0]) == list(range(300))
    out["native_order_changes"] = orders["native"][0] != orders["native"][1]
    out["native_order_not_shared"] = orders["native"][0] != orders["shared"][0]
    out["fixed_order"] = orders["fixed"][0] == list(range(300)) == orders["fixed"][1]

    # Checkpoints: arrays only, no pickle; loading one into a fresh trainer restores every array,
    # and training on from there matches training on without the round trip, bit for bit.
    trainer = jax_backend.Trainer(spec, train, 0, "cpu", init)
    trainer.set_training_data(x, y)
    trainer.train_epoch(1)
    ckpt = tmp_path / "state.npz"
    trainer.save_checkpoint(ckpt)
    with zipfile.ZipFile(ckpt) as z:
        out["checkpoint_members"] = sorted(z.namelist())
    with np.load(ckpt, allow_pickle=False) as npz:  # raises on any pickled (object) array
        saved = {k: npz[k] for k in npz.files}
    out["checkpoint_dtypes"] = sorted({str(v.dtype) for v in saved.values()})
    out["checkpoint_adam_count"] = int(saved["optimizer.opt_state.0.count"])
    out["checkpoint_step"] = int(saved["optimizer.step"])
    resumed = jax_backend.Trainer(spec, train, 0, "cpu", None)  # other initial weights
    resumed.set_training_data(x, y)
    resumed.load_checkpoint(ckpt)
    state = trainer.state()
    out["checkpoint_restores_all"] = sorted(state) == sorted(resumed.state()) and all(
        np.array_equal(state[k], resumed.state()[k]) for k in state
    )
    out["resumed_epoch_identical"] = trainer.train_epoch(2)[:2] == resumed.train_epoch(2)[:2]
    broken = dict(saved)
    broken.pop("optimizer.step")
    try:
        resumed.load_state(broken)
        out["incomplete_state"] = "accepted"
    except ValueError as e:
        out["incomplete_state"] = str(e)

    # The saved model: canonical weights and the spec; loads back to the same logits.
    model_dir = tmp_path / "model"
    path = trainer.save(model_dir)
    out["model_file"] = path.name
    with np.load(path, allow_pickle=False) as npz:
        out["model_members"] = sorted(npz.files)
        meta = json.loads(str(npz["meta"]))
    out["model_meta_spec"] = meta["model"] == spec.as_params()
    from lenet_compare.train.trainer import load_for_inference

    loaded = load_for_inference(jax_backend, model_dir, spec, threads=1)
    x_test, _ = random_data(1500, seed=1)  # more than PREDICT_BATCH: a partial second batch
    logits = jax_backend.predict(loaded, x_test)
    out["predict_shape_dtype"] = [list(logits.shape), str(logits.dtype)]
    out["loaded_logits_equal"] = bool(np.array_equal(logits, trainer.predict(x_test)))
    out["empty_predict_shape"] = list(jax_backend.predict(loaded, x_test[:0]).shape)
    custom = LeNetSpec.from_params(CUSTOM_MODEL)
    out["other_spec"] = refusal(lambda: jax_backend.load_model(model_dir, custom))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / path.name).write_bytes(b"not a zip")
    out["corrupt"] = refusal(lambda: jax_backend.load_model(tmp_path / "bad", spec))
    out["missing"] = refusal(lambda: jax_backend.load_model(tmp_path / "none", spec))

    # Inference calls (the evaluate step's): the naive eager call and the compiled ones give the same logits.
    calls = [(path.kind, path.call, path.run) for path in jax_backend.inference_paths(loaded)]
    out["inference_calls"] = [[kind, call] for kind, call, _ in calls]
    naive = calls[0][2](x_test[:1000])
    out["inference_max_gap"] = max(float(np.abs(run(x_test[:1000]) - naive).max()) for _, _, run in calls[1:])
    out["inference_naive_vs_predict"] = float(np.abs(naive - logits[:1000]).max())
    out["inference_batch1_shape"] = [list(run(x_test[:1]).shape) for _, _, run in calls]
    out["max_logit"] = float(np.abs(logits).max())
    out["details"] = trainer.details()
    return out


def check_cuda(deterministic: int) -> dict:
    """configure("cuda") where JAX finds no GPU (this machine; a fake nvidia-smi does not matter)."""
    import os

    from lenet_compare.core.errors import PipelineError
    from lenet_compare.train.backends.jax import backend as jax_backend
    from lenet_compare.train.backends.jax import start

    out = {"sees_gpu": jax_backend.sees_gpu(), "started_after_sees_gpu": start.started()}
    try:
        jax_backend.configure("cuda", deterministic=bool(deterministic), tf32=False, seed=0, threads=1)
        out["configure"] = "accepted"
    except PipelineError as e:
        out["configure"] = str(e)
    out["started"] = start.started()  # never on the CPU instead
    out["env"] = {k: os.environ.get(k) for k in ("JAX_PLATFORMS", "XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE")}
    return out


CHECKS = {"threads": check_threads, "repeat": check_repeat, "backend": check_backend, "cuda": check_cuda}


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_are_set_before_jax_starts(threads):
    """Importing the backend starts nothing; configure sizes XLA's CPU pool to train.threads.

    3 is more than this machine's cores on purpose: XLA's default (one per core) can never
    produce it, so only PJRT_NPROC set before JAX started can. A second configure may not change it.
    """
    r = run_check("threads", str(threads))
    assert r["started_after_import"] is False and r["xla_threads_after_import"] == 0
    assert r["device"][0] == "cpu" and r["platform"] == "cpu"
    assert r["env"] == {"JAX_PLATFORMS": "cpu", "PJRT_NPROC": str(threads), "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert r["thread_counts"] == {"intra_op": threads, "inter_op": threads}
    assert r["matmul_precision"] == "highest"  # train.tf32: false
    assert "cannot run with train.threads" in r["other_threads"]
    assert r["frameworks_loaded"] == []  # one framework per process


@pytest.mark.skipif(Path("/proc/driver/nvidia/gpus").exists(), reason="this machine has a GPU")
@pytest.mark.parametrize("deterministic", [1, 0])
def test_a_cuda_job_without_a_gpu_stops_and_never_runs_on_the_cpu(deterministic):
    """JAX falls back to the CPU silently unless told its platform: configure("cuda") names it, so
    without a GPU it stops, with what JAX saw, before JAX has started anything."""
    r = run_check("cuda", str(deterministic))
    assert r["sees_gpu"] is False and r["started_after_sees_gpu"] is False  # asked of another process
    assert r["configure"].startswith("JAX could not start its cuda backend"), r["configure"]
    assert "jax.devices('cuda') with JAX_PLATFORMS=cuda gives" in r["configure"]
    assert r["started"] is False
    assert r["env"]["JAX_PLATFORMS"] == "cuda" and r["env"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    # train.deterministic on a GPU: XLA's deterministic ops, set before JAX reads its flags.
    assert ("--xla_gpu_deterministic_ops=true" in r["env"]["XLA_FLAGS"]) is bool(deterministic)


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_training_repeats_bit_for_bit(threads):
    """train.deterministic on a CPU: two trainers in one process and two processes end with the
    same weights, to the last bit, at 1 and at 2 XLA threads (jax-ml/jax#39741 reports a CPU where
    2+ threads do not; this is where such a CPU would show it)."""
    first, second = run_check("repeat", str(threads)), run_check("repeat", str(threads))
    assert first["threads"]["intra_op"] == threads
    digests = first["digests"] + second["digests"]
    assert len(set(digests)) == 1, digests
    assert first["losses"][0][0] != first["losses"][0][1]  # it trained: epoch 2 differs from epoch 1


@pytest.fixture(scope="module")
def backend_check(tmp_path_factory) -> dict:
    return run_check("backend", str(tmp_path_factory.mktemp("jax")))


@pytest.mark.slow  # backend_check trains (a few epochs on a small set)
def test_unsupported_params_are_refused(backend_check):
    r = backend_check
    for key in ("preflight_softmax", "trainer_softmax"):
        assert "head = 'softmax'" in r[key] and "logits" in r[key], r[key]
    assert r["preflight_logits"] == "accepted"
    assert r["xla_true"] == "accepted"  # Keras's switch: JAX always compiles with XLA
    assert r["details"]["xla"].startswith("always")


@pytest.mark.slow  # backend_check trains (a few epochs on a small set)
def test_parameter_counts_and_layout(backend_check):
    r = backend_check
    assert r["n_parameters"]["default"] == [61_706, 61_706]
    assert r["n_parameters"]["keras_variant"] == [107_786, 107_786]
    assert r["n_parameters"]["custom"][0] == r["n_parameters"]["custom"][1]
    assert r["canonical_round_trip"]
    assert r["conv1_kernel_shape"] == [5, 5, 1, 6]  # HWIO
    assert r["fc1_kernel_shape"] == [400, 120]  # (in, out), inputs in (H, W, C) order


@pytest.mark.slow  # backend_check trains (a few epochs on a small set)
def test_native_init_is_flax_default_and_seeded(backend_check):
    r = backend_check
    assert r["native_zero_biases"] and r["native_same_seed_same"] and r["native_other_seed_differs"]
    assert r["native_not_shared"]
    # lecun_normal draws with variance 1 / fan_in; PyTorch's U(-1/sqrt(n), 1/sqrt(n)) would give 1/sqrt(3).
    assert r["native_fc1_std_times_sqrt_fan_in"] == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow  # backend_check trains (a few epochs on a small set)
def test_orders(backend_check):
    r = backend_check
    assert r["shared_order_is_minibatches"]
    assert r["native_order_is_permutation"] and r["native_order_changes"] and r["native_order_not_shared"]
    assert r["fixed_order"]


@pytest.mark.slow  # backend_check trains (a few epochs on a small set)
def test_checkpoints_are_arrays_without_pickle_and_resume_exactly(backend_check):
    r = backend_check
    # Weights, Adam's count and moments, the optimizer's step: plain .npy members, numeric dtypes.
    members = r["checkpoint_members"]
    assert "model.fc1.kernel.npy" in members and "optimizer.step.npy" in members
    assert "optimizer.opt_state.0.mu.conv1.kernel.npy" in members and "optimizer.opt_state.0.nu.fc3.bias.npy" in members
    assert len(members) == 3 * 10 + 2
    assert r["checkpoint_dtypes"] == ["float32", "int32", "uint32"]
    assert r["checkpoint_adam_count"] == r["checkpoint_step"] == 10  # 300 images at batch 32
    assert r["checkpoint_restores_all"] and r["resumed_epoch_identical"]
    assert "optimizer.step" in r["incomplete_state"]


@pytest.mark.slow  # backend_check trains (a few epochs on a small set)
def test_saved_model_loads_back(backend_check):
    r = backend_check
    assert r["model_file"] == "model.npz"
    assert r["model_members"] == sorted(
        ["meta"]
        + [f"{layer}.{kind}" for layer in ("conv1", "conv2", "fc1", "fc2", "fc3") for kind in ("weight", "bias")]
    )
    assert r["model_meta_spec"]
    assert r["predict_shape_dtype"] == [[1500, 10], "float32"]
    assert r["loaded_logits_equal"]
    assert r["empty_predict_shape"] == [0, 10]
    assert "another model spec" in r["other_spec"] and "model spec" in r["other_spec"]
    assert "corrupt" in r["corrupt"] and "is missing" in r["missing"]


@pytest.mark.slow  # backend_check trains (a few epochs on a small set)
def test_inference_calls_compute_the_same_logits(backend_check):
    r = backend_check
    assert r["inference_calls"] == [
        ["naive", "model(x)"],
        ["idiomatic", "nnx.jit(lambda m, x: m(x))(model, x)"],
        ["idiomatic", "nnx.cached_partial(nnx.jit(lambda m, x: m(x)), model)(x)"],
        ["idiomatic", "jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)"],
    ]
    assert r["inference_batch1_shape"] == [[1, 10]] * 4
    # inference_timing.float32_tolerance: 2 * sum of fan-ins (779 for the default spec) * 2**-24
    # * the largest logit (at least 1): two float32 evaluations in any order differ by at most that.
    tolerance = 2 * 779 * 2.0**-24 * max(1.0, r["max_logit"])
    assert r["inference_max_gap"] <= tolerance
    assert r["inference_naive_vs_predict"] <= tolerance


if __name__ == "__main__":
    check = CHECKS[sys.argv[1]]
    arg = sys.argv[2]
    print(json.dumps(check(int(arg) if arg.isdigit() else arg), default=str))
