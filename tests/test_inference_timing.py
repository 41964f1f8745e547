"""Inference timing: each framework's naive call beside its fastest idiomatic one, at batch 1 and 1,000.

The fast tests drive lenet_compare.evaluate.inference_timing with made-up numpy "frameworks" (no
torch, no tensorflow). The slow ones train a tiny model per framework, run the evaluate step on it
and run the real paths in a subprocess per framework (torch and tensorflow never share a process).
Nothing asserts a speed: timings depend on the machine and its load; only the records'
structure and their consistency with each other are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import env_with_venv, table_after, tiny_params, write_params

from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.evaluate import inference_timing
from lenet_compare.evaluate.inference_timing import FASTEST, IDIOMATIC, NAIVE, InferencePath
from lenet_compare.report.common import FRAMEWORK_NAMES
from lenet_compare.report.sentences import fastest_with_fastest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
FRAMEWORKS = ("torch", "tensorflow", "jax")
NAIVE_CALL = {"torch": "model(x)", "tensorflow": "model(x, training=False)", "jax": "model(x)"}
SIGNATURE = "input_signature=[TensorSpec((None, 28, 28, 1))]"
IDIOMATIC_CALLS = {
    "torch": {
        "with torch.inference_mode(): model(x)",
        "with torch.inference_mode(): torch.compile(model, dynamic=False)(x)",
    },
    "tensorflow": {
        f"tf.function(model, {SIGNATURE})(x)",
        f"tf.function(model, {SIGNATURE}, jit_compile=True)(x)",
        "model.predict_on_batch(x)",
    },
    "jax": {
        "nnx.jit(lambda m, x: m(x))(model, x)",
        "nnx.cached_partial(nnx.jit(lambda m, x: m(x)), model)(x)",
        "jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)",
    },
}
DEFAULT_SPEC = LeNetSpec.from_params(tiny_params()["model"])

# ----------------------------------------------------------------------------------------------
# Made-up frameworks: a linear "model" in numpy, so the bookkeeping runs in milliseconds.

WEIGHTS = np.random.default_rng(0).normal(0, 0.05, (28 * 28, 10)).astype(np.float32)


def linear(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1) @ WEIGHTS


def fake_paths(idiomatic_run=linear) -> list[InferencePath]:
    """A made-up backend's inference_paths: the naive call first, then two idiomatic ones."""
    return [
        InferencePath(NAIVE, "naive(x)", linear),
        InferencePath(IDIOMATIC, "fast_a(x)", idiomatic_run),
        InferencePath(IDIOMATIC, "fast_b(x)", lambda x: linear(x.copy())),
    ]


def fake_measure(idiomatic_run=linear, n_images: int = 50) -> dict:
    x = np.random.default_rng(1).random((n_images, 28, 28), dtype=np.float32)
    paths = fake_paths(idiomatic_run)
    return inference_timing.measure("fake", paths, x, DEFAULT_SPEC, calls={1: 5, 1000: 3}, warmup={1: 1, 1000: 1})


def test_every_path_is_recorded_at_batch_1_and_1000():
    # 50 images: the batches of 1,000 wrap around the test set, as they must for a small one.
    result = fake_measure()
    rows = result["inference"]["rows"]
    assert {(r["call"], r["batch_size"]) for r in rows} == {
        (call, size) for call in ("naive(x)", "fast_a(x)", "fast_b(x)") for size in (1, 1000)
    }
    for size in (1, 1000):
        at = [r for r in rows if r["batch_size"] == size]
        assert [r["path"] for r in at if r["call"] == "naive(x)"] == [NAIVE]
        # One idiomatic path per batch size is the fastest: the one with the lowest median.
        labels = sorted(r["path"] for r in at if r["call"] != "naive(x)")
        assert labels == [FASTEST, IDIOMATIC]
        fastest = next(r for r in at if r["path"] == FASTEST)
        assert fastest["median_ms"] == min(r["median_ms"] for r in at if r["path"] != NAIVE)
        for r in at:
            assert r["images_per_second"] == pytest.approx(size / (r["median_ms"] / 1000))
            assert r["timed_calls"] == {1: 5, 1000: 3}[size]
    # The headline numbers are the fastest idiomatic path's, never the naive one's.
    fastest_at = {r["batch_size"]: r for r in rows if r["path"] == FASTEST}
    assert result["latency_ms_single_image"] == fastest_at[1]["median_ms"]
    assert result["inference_images_per_second"] == fastest_at[1000]["images_per_second"]
    assert json.loads(json.dumps(result)) == result  # plain JSON for metrics.json


def test_a_path_that_computes_something_else_is_an_error():
    def off_by_one_image(x):  # the logits of the neighbouring images: plausible numbers, wrong ones
        return linear(np.roll(x, 1, axis=0))

    with pytest.raises(PipelineError, match=r"fast_a\(x\) at batch 1000 gives logits up to .* computes something else"):
        fake_measure(off_by_one_image)


def test_a_path_within_float32_rounding_passes():
    def rounded_differently(x):  # the sum in float64, rounded to float32: last-bit differences
        return (x.reshape(len(x), -1).astype(np.float64) @ WEIGHTS).astype(np.float32)

    rows = fake_measure(rounded_differently)["inference"]["rows"]
    row = next(r for r in rows if r["call"] == "fast_a(x)" and r["batch_size"] == 1000)
    assert 0 < row["max_abs_difference_from_naive"] <= row["float32_tolerance"]


def test_float32_tolerance_by_hand():
    # The default LeNet-5: fan-ins 1*5*5 + 6*5*5 (convs) + 400 + 120 + 84 (dense) = 779; two
    # evaluations may each be n * u * scale off, u = 2**-24 (float32's unit roundoff).
    logits = np.array([[15.0, -3.0]], np.float32)
    assert inference_timing.float32_tolerance(DEFAULT_SPEC, logits) == pytest.approx(2 * 779 * 2**-24 * 15)
    assert inference_timing.float32_tolerance(DEFAULT_SPEC, logits / 100) == pytest.approx(2 * 779 * 2**-24)


def summary_row(framework: str, name: str, size: int, path: str, ms: float) -> dict:
    """A row of lenet_compare.report.analysis.inference_summary."""
    return {"framework": framework, "name": name, "batch_size": size, "path": path, "median_ms": {"mean": ms}}


def test_the_report_sentence_compares_fastest_with_fastest():
    rows = [
        summary_row("torch", "PyTorch", 1, NAIVE, 0.2),
        summary_row("torch", "PyTorch", 1, FASTEST, 0.1),
        summary_row("torch", "PyTorch", 1000, NAIVE, 40.0),
        summary_row("torch", "PyTorch", 1000, FASTEST, 30.0),
        summary_row("tensorflow", "Keras", 1, NAIVE, 5.0),  # eager overhead: never in the sentence
        summary_row("tensorflow", "Keras", 1, FASTEST, 0.4),
        summary_row("tensorflow", "Keras", 1000, NAIVE, 90.0),
        summary_row("tensorflow", "Keras", 1000, FASTEST, 15.0),
    ]
    assert fastest_with_fastest(rows) == (
        "Fastest idiomatic call against fastest idiomatic call: one image takes 0.100 ms in PyTorch and "
        "0.400 ms in Keras (PyTorch 4.0x as fast); a batch of 1,000 takes 30.000 ms in PyTorch and "
        "15.000 ms in Keras (Keras 2.0x as fast)."
    )
    assert fastest_with_fastest([r for r in rows if r["framework"] == "torch"]) is None


# ----------------------------------------------------------------------------------------------
# The real frameworks, on a tiny trained model


def step(root: Path, script: str, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / f"{script}.py"), *args],
        cwd=root,
        env=env_with_venv(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{script} {args} failed:\n{result.stderr}"


@pytest.fixture(scope="module")
def evaluated(small_cache, tmp_path_factory) -> Path:
    """A folder with one epoch of training and the evaluate step, per framework, seed 0."""
    root = tmp_path_factory.mktemp("inference")
    params = tiny_params(**{"train.device": "cpu", "train.epochs": 1}, frameworks=list(FRAMEWORKS))
    write_params(root / "params.yaml", params)
    step(root, "init", "--seed", "0", "--out", "data/init/seed0.npz")
    for f in FRAMEWORKS:
        model, run = f"data/models/{f}/seed0", f"reports/runs/{f}/seed0"
        step(
            root,
            "train",
            *("--framework", f, "--seed", "0", "--data", str(small_cache), "--init", "data/init/seed0.npz"),
            *("--model-dir", model, "--history", f"{run}/history.csv", "--run-record", f"{run}/run.json"),
            *("--checkpoint-dir", f"data/checkpoints/{f}/seed0"),
        )
        step(
            root,
            "evaluate",
            *("--framework", f, "--seed", "0", "--data", str(small_cache), "--model-dir", model),
            *("--run-record", f"{run}/run.json", "--predictions", f"data/predictions/{f}/seed0.npz"),
            *("--metrics", f"{run}/metrics.json"),
        )
    return root


def metrics(root: Path, framework: str) -> dict:
    return json.loads((root / "reports" / "runs" / framework / "seed0" / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_evaluate_step_records_naive_and_fastest_idiomatic(evaluated, framework):
    m = metrics(evaluated, framework)
    rows = m["inference"]["rows"]
    assert m["threads"] == {"intra_op": 1, "inter_op": 1}  # train.threads: the paths ran with the job's threads
    for size in (1, 1000):
        at = {r["call"]: r for r in rows if r["batch_size"] == size}
        assert set(at) == {NAIVE_CALL[framework], *IDIOMATIC_CALLS[framework]}
        assert at[NAIVE_CALL[framework]]["path"] == NAIVE
        assert sorted(r["path"] for c, r in at.items() if c != NAIVE_CALL[framework]) == sorted(
            [FASTEST] + [IDIOMATIC] * (len(IDIOMATIC_CALLS[framework]) - 1)
        )
        for r in at.values():
            assert r["median_ms"] > 0 and r["images_per_second"] == pytest.approx(size / (r["median_ms"] / 1000))
            assert r["max_abs_difference_from_naive"] <= r["float32_tolerance"] < 0.01
    fastest_at = {r["batch_size"]: r for r in rows if r["path"] == FASTEST}
    assert m["latency_ms_single_image"] == fastest_at[1]["median_ms"]
    assert m["inference_images_per_second"] == fastest_at[1000]["images_per_second"]


# Runs every path of one framework on the first test image and on the first 1,000 and saves the
# logits by call; its own process, so it imports that framework only.
RUN_PATHS = """
import sys, numpy as np
from lenet_compare.core.config import load_params
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.data.dataset import load_prepared
from lenet_compare.train.import_backend import import_backend
from lenet_compare.train.trainer import load_for_inference

framework, cache, model_dir, out = sys.argv[1:]
spec = LeNetSpec.from_params(load_params("params.yaml")["model"])
backend = import_backend(framework)
model = load_for_inference(backend, model_dir, spec, threads=1)
x = load_prepared(cache)[0]["x_test"]
saved = {}
for path in backend.inference_paths(model):
    for size in (1, 1000):
        saved[f"{size}:{path.call}"] = path.run(x[:size])
np.savez(out, **saved)
"""


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_idiomatic_paths_compute_the_naive_logits(evaluated, small_cache, framework):
    out = evaluated / f"paths_{framework}.npz"
    result = subprocess.run(
        [sys.executable, "-c", RUN_PATHS, framework, str(small_cache), f"data/models/{framework}/seed0", str(out)],
        cwd=evaluated,
        env=env_with_venv(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    logits = dict(np.load(out))
    # The naive call on the first 1,000 test images is the model the evaluate step scored.
    saved = np.load(evaluated / "data" / "predictions" / framework / "seed0.npz")["logits"][:1000]
    for size in (1, 1000):
        naive = logits[f"{size}:{NAIVE_CALL[framework]}"]
        tolerance = inference_timing.float32_tolerance(DEFAULT_SPEC, naive)
        assert naive.shape == (size, 10)
        np.testing.assert_allclose(naive, saved[:size], rtol=0, atol=tolerance)
        for call in IDIOMATIC_CALLS[framework]:
            np.testing.assert_allclose(logits[f"{size}:{call}"], naive, rtol=0, atol=tolerance, err_msg=call)


@pytest.mark.slow
def test_report_shows_naive_beside_fastest_idiomatic(evaluated, small_cache):
    out = {name: evaluated / "reports" / name for name in ("report.md", "report.html", "metrics.json")}
    step(
        evaluated,
        "report",
        *("--runs-dir", "reports/runs", "--predictions-dir", "data/predictions", "--cache", str(small_cache)),
        *("--out-md", str(out["report.md"]), "--out-html", str(out["report.html"])),
        *("--metrics", str(out["metrics.json"]), "--figures-dir", "reports/figures", "--plots-dir", "reports/plots"),
    )
    md = out["report.md"].read_text()
    table = table_after(md, "### Inference: naive and fastest idiomatic calls")
    expected = []
    for f in FRAMEWORKS:
        for size in (1, 1000):
            for path in (NAIVE, FASTEST):
                r = next(
                    r
                    for r in metrics(evaluated, f)["inference"]["rows"]
                    if (r["batch_size"], r["path"]) == (size, path)
                )
                expected.append(
                    [
                        FRAMEWORK_NAMES[f],
                        f"{size:,}",
                        path,
                        f"`{r['call']}`",
                        f"{r['median_ms']:,.3f}",
                        f"{r['images_per_second']:,.0f}",
                    ]
                )
    assert table == expected
    # The sentence quotes the fastest idiomatic medians (one seed: the means are those medians).
    fastest = {
        r["batch_size"]: r for r in metrics(evaluated, "tensorflow")["inference"]["rows"] if r["path"] == FASTEST
    }
    sentence = next(line for line in md.splitlines() if line.startswith("Fastest idiomatic call against"))
    keras = FRAMEWORK_NAMES["tensorflow"]
    assert f"{fastest[1]['median_ms']:,.3f} ms in {keras}" in sentence
    assert f"{fastest[1000]['median_ms']:,.3f} ms in {keras}" in sentence
