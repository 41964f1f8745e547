"""The report's inputs (lenet_compare.report.inputs): every run's files read where the layout puts them,
and each kind of stale, missing or mismatched file refused with a message that says what to rerun."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import write_params
from report_helpers import FRAMEWORKS, THREE, outputs, report_step
from synthetic_runs import params_for, write_runs

from lenet_compare.core import layout
from lenet_compare.core.errors import PipelineError
from lenet_compare.report.compare import build
from lenet_compare.report.inputs import load_inputs

pytest_plugins = ["report_builds"]


def test_every_run_is_read_where_the_layout_puts_it(tmp_path, fake_cache):
    params = params_for(THREE, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    inp = load_inputs(params, runs, preds, fake_cache)
    assert list(inp.runs) == [(f, s) for f in THREE for s in (0, 1)]
    for (f, s), r in inp.runs.items():
        assert r.files == layout.run_files(f, s, runs, preds)
        assert r.metrics == json.loads(layout.run_file("metrics", f, s, runs).read_text())


def test_missing_run_files_are_named(tmp_path, built):
    root = tmp_path / "copy"
    shutil.copytree(built.root / "reports" / "runs", root / "runs")
    shutil.copytree(built.preds, root / "preds")
    (root / "runs" / "tensorflow" / "seed1" / "history.csv").unlink()
    (root / "preds" / "torch" / "seed2.npz").unlink()
    write_params(root / "params.yaml", built.params)
    out = {"out_md": "r.md", "out_html": "r.html", "out_metrics": "m.json", "figures_dir": "fig", "plots_dir": "plots"}
    result = report_step(root, "runs", "preds", built.cache, out, check=False)
    assert result.returncode == 1
    assert "runs/tensorflow/seed1/history.csv" in result.stderr
    assert "preds/torch/seed2.npz" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "r.md").exists()


def test_metrics_from_another_run_are_caught(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    path = runs / "torch" / "seed1" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["test_accuracy"] += 0.01
    path.write_text(json.dumps(metrics))
    with pytest.raises(PipelineError, match="different runs"):
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


def test_metrics_without_inference_timings_are_refused(tmp_path, fake_cache):
    """The evaluate step times inference in every run: a metrics.json without it is stale."""
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    path = runs / "tensorflow" / "seed1" / "metrics.json"
    metrics = json.loads(path.read_text())
    del metrics["inference"]
    path.write_text(json.dumps(metrics))
    with pytest.raises(PipelineError, match=r"tensorflow/seed1/metrics.json lacks the inference timings .*evaluate"):
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


def test_runs_trained_with_other_params_are_caught(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0,))
    other = {"model": dict(params["model"]), "train": dict(params["train"], lr=params["train"]["lr"] * 2)}
    other["model"].pop("conv_padding")
    runs, preds = write_runs(tmp_path, fake_cache, params, extra_run={"params": other})
    with pytest.raises(PipelineError) as e:
        build(params, runs, preds, fake_cache, **outputs(tmp_path))
    message = str(e.value)
    assert str(runs / "torch" / "seed0" / "run.json") in message
    assert "model.conv_padding" in message and "train.lr" in message and "train.epochs" not in message
    assert "rerun the train step (dvc repro / snakemake)" in message


def test_runs_trained_on_another_cache_are_caught(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0,))
    runs, preds = write_runs(tmp_path, fake_cache, params, extra_run={"n_train": 123})
    with pytest.raises(PipelineError, match=r"n_train = 123 but the prepared cache holds 500 .*dvc repro / snakemake"):
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


def test_a_stale_protocol_is_caught(tmp_path, fake_cache):
    """A run trained under another train.order: its recorded params say so (the one check of them all)."""
    params = params_for(FRAMEWORKS, (0,))
    recorded = {"model": params["model"], "train": dict(params["train"], order="native")}
    runs, preds = write_runs(tmp_path, fake_cache, params, extra_run={"params": recorded})
    with pytest.raises(PipelineError, match=r"differ from params.yaml in train.order; the run is stale"):
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


def test_runs_on_different_kinds_of_device_are_refused(tmp_path, fake_cache):
    """PyTorch on a GPU against Keras on a CPU (the article's setup) is no comparison: refused, naming both."""
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    for s in (0, 1):
        path = runs / "torch" / f"seed{s}" / "run.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"device": "cuda", "device_name": "NVIDIA H200"}))
    with pytest.raises(PipelineError) as e:
        build(params, runs, preds, fake_cache, **outputs(tmp_path))
    assert "different kinds of device: PyTorch on cuda (2 seeds: 0, 1); TensorFlow/Keras on cpu (2 seeds: 0, 1)" in str(
        e.value
    )
    assert "set train.device to cpu or cuda" in str(e.value)
    assert not (tmp_path / "reports" / "metrics.json").exists()


def test_one_framework_on_two_kinds_of_device_is_refused(tmp_path, fake_cache):
    params = params_for(FRAMEWORKS, (0, 1))
    runs, preds = write_runs(tmp_path, fake_cache, params)
    path = runs / "tensorflow" / "seed1" / "run.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"device": "cuda"}))
    with pytest.raises(PipelineError, match=r"PyTorch on cpu \(2 seeds: 0, 1\); TensorFlow/Keras on cpu \(1 seed: 0\), "
                       r"cuda \(1 seed: 1\)"):  # fmt: skip
        build(params, runs, preds, fake_cache, **outputs(tmp_path))


@pytest.mark.parametrize(
    "content",
    [
        {"summary": ["One sentence."], "markdown": "ablation.md"},
        {"summary": ["One.", "Two."], "markdown": "javascript:alert(1).md"},
        {"summary": ["One.", "Two."], "markdown": "/etc/ablation.md"},
        {"summary": ["One.", "Two."]},
    ],
)
def test_a_malformed_ablation_json_is_refused(tmp_path, fake_cache, content):
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PipelineError, match="rerun the ablation step"):
        build(params_for(FRAMEWORKS, (0,)), tmp_path / "runs", tmp_path / "preds", fake_cache,
              **outputs(tmp_path), ablation=path)  # fmt: skip
