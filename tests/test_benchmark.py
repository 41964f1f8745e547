"""The benchmark harness: a tiny real run of every variant, and the numbers derived from its raw timings.

The real run (1,000 images per epoch, 2 timed epochs per variant, no pipeline runs) checks that
each median, ratio and target flag in benchmark.json follows from the raw seconds it records,
and that benchmark.md shows them. The pipeline measurements take minutes, so their pieces are
tested on their own: the tiny params, the workspace, the job count, and the targets they feed.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEBIAN_DIR, REPO, default_params, env_with_venv, tiny_params, write_params

from lenet_compare.bench import pipeline, report
from lenet_compare.core.article import PAIR
from lenet_compare.core.config import validate_params
from lenet_compare.core.frameworks import BY_KEY, DEFAULT_FRAMEWORKS, FRAMEWORK_NAMES, FRAMEWORKS, OURS, PLAIN

IMAGES, REPEATS = 1000, 2
# Each framework's variants, in the order measured: the registry's.
VARIANTS = {f: list(BY_KEY[f].variants) for f in FRAMEWORKS}


@pytest.fixture(scope="module")
def tiny_benchmark(small_cache, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("benchmark")
    params = out / "params.yaml"
    write_params(params, tiny_params())
    files = {"json": out / "benchmark.json", "md": out / "benchmark.md", "figure": out / "figures" / "benchmark.png"}
    cmd = [
        sys.executable,
        "workflow/scripts/benchmark.py",
        "--params", str(params),
        "--cache", str(small_cache),
        "--raw-dir", str(DEBIAN_DIR),
        "--out-json", str(files["json"]),
        "--out-md", str(files["md"]),
        "--figure", str(files["figure"]),
        "--images", str(IMAGES),
        "--repeats", str(REPEATS),
        "--skip-pipeline",
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, env=env_with_venv(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    return files


@pytest.mark.slow
def test_medians_ratios_and_targets_follow_from_the_raw_timings(tiny_benchmark):
    result = json.loads(tiny_benchmark["json"].read_text())
    assert result["settings"]["images"] == IMAGES
    frameworks = result["frameworks"]
    assert set(frameworks) == set(DEFAULT_FRAMEWORKS)  # the study's frameworks, by default
    for framework, fw in frameworks.items():
        assert list(fw["variants"]) == VARIANTS[framework]
        assert fw["run_order"] == VARIANTS[framework] * REPEATS  # the variants took turns
        for p in fw["variants"].values():
            assert len(p["seconds"]) == REPEATS and len(p["warmup_seconds"]) == 1
            assert p["median_seconds_per_epoch"] == statistics.median(p["seconds"])
            assert p["images_per_second"] == pytest.approx(IMAGES / p["median_seconds_per_epoch"])
            assert 100 * 2**20 < p["peak_rss_bytes"] < 8 * 2**30
            assert p["peak_gpu_memory_mb"] is None  # CPU here
        if OURS in fw["variants"]:
            ours = fw["variants"][OURS]["median_seconds_per_epoch"]
            for baseline in BY_KEY[framework].baselines:
                expected = fw["variants"][baseline]["median_seconds_per_epoch"] / ours
                assert fw["speedup"][baseline] == pytest.approx(expected)
        else:  # a reference without a fast path: timings, no ratios
            assert fw["speedup"] == {}
        assert fw["evaluation"]["inference_images_per_second"] > 0
        assert fw["evaluation"]["latency_ms_single_image"] > 0
    # The other frameworks' fast paths against the article's PyTorch DataLoader loop, across processes.
    article = frameworks[PAIR[0]]["variants"]["article"]["median_seconds_per_epoch"]
    for other in frameworks:
        if other != PAIR[0] and OURS in frameworks[other]["variants"]:
            ours = frameworks[other]["variants"][OURS]["median_seconds_per_epoch"]
            assert frameworks[other]["speedup"]["article"] == pytest.approx(article / ours)

    targets = {t["id"]: t for t in result["targets"]}
    assert set(targets) == {t[0] for t in report.TARGETS}
    assert targets["torch_speedup_vs_plain"]["value"] == frameworks["torch"]["speedup"]["plain"]
    assert targets["torch_peak_rss_gb"]["value"] == frameworks["torch"]["variants"]["ours"]["peak_rss_bytes"] / 1e9
    expected_60k = frameworks["torch"]["variants"]["ours"]["median_seconds_per_epoch"] * 60000 / IMAGES
    assert targets["torch_seconds_per_epoch"]["value"] == pytest.approx(expected_60k)
    for t in result["targets"]:
        if t["id"].startswith("noop_"):
            assert t["value"] is None and t["met"] is None  # --skip-pipeline
        else:
            met = t["value"] <= t["threshold"] if t["comparison"] == "<=" else t["value"] >= t["threshold"]
            assert t["met"] is met, t
    assert result["pipeline"] is None
    assert result["machine"]["cores_usable"] >= 1 and result["machine"]["cpu_model"]


@pytest.mark.slow
def test_markdown_shows_the_tables_and_the_figure(tiny_benchmark):
    result = json.loads(tiny_benchmark["json"].read_text())
    md = tiny_benchmark["md"].read_text()
    for framework, fw in result["frameworks"].items():
        name = FRAMEWORK_NAMES[framework]
        for variant, p in fw["variants"].items():
            row = f"| {name} {fw['framework_version']} | {report.VARIANT_LABELS[variant]} | "
            row += f"{p['median_seconds_per_epoch']:.3f} | {p['images_per_second']:,.0f} |"
            assert row in md
    for t in result["targets"]:
        assert f"| {t['description']} |" in md
    assert "![" in md and "(figures/benchmark.png)" in md
    assert "Not measured in this run (`--skip-pipeline`)" in md
    assert "python workflow/scripts/benchmark.py" in md and "--images 1000" in md
    assert tiny_benchmark["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The page is what the package renders from the JSON file alone.
    again = tiny_benchmark["md"].with_name("again.md")
    report.write_markdown(tiny_benchmark["json"], again, tiny_benchmark["figure"])
    assert again.read_text() == md


def test_committed_markdown_is_rendered_from_the_committed_json(tmp_path):
    """reports/benchmark.md is bench_report's rendering of reports/benchmark.json, nothing edited by hand."""
    out = tmp_path / "reports" / "benchmark.md"
    report.write_markdown(REPO / "reports/benchmark.json", out, tmp_path / "reports/figures/benchmark.png")
    assert out.read_text() == (REPO / "reports/benchmark.md").read_text()


def fake_measurement(seconds: dict[str, dict[str, list[float]]], device: str = "cpu") -> dict:
    measured = {}
    for framework, variants in seconds.items():
        measured[framework] = {
            "timing": {
                "framework_version": "x",
                "device": device,
                "device_name": "d",
                "batch_size": 32,
                "run_order": list(variants) * 3,
                "variants": {
                    name: {"description": name, "warmup_seconds": [9.0], "seconds": s} for name, s in variants.items()
                },
            },
            "memory": {
                name: {"peak_rss_bytes": 2_000_000_000, "peak_gpu_memory_mb": None, "epoch_seconds": 1.0}
                for name in variants
            },
            "evaluation": {"inference_images_per_second": 1.0},
        }
    return measured


def test_targets_are_judged_from_the_numbers():
    measured = fake_measurement(
        {
            "torch": {"article": [10.0, 12.0, 11.0], "plain": [6.0, 6.5, 7.0], "ours": [4.0, 5.5, 4.5]},
            "tensorflow": {"plain": [8.0, 8.0, 8.0], "ours": [6.5, 6.0, 7.0]},
        }
    )
    pipeline = {"noop": {"median_seconds": {"snakemake": 2.0, "dvc_repro": 3.5}}}
    result = report.summarize(measured, pipeline, {"images": 60000}, "cmd")
    targets = {t["id"]: t for t in result["targets"]}
    assert targets["torch_seconds_per_epoch"]["value"] == 4.5 and targets["torch_seconds_per_epoch"]["met"]
    assert targets["tensorflow_seconds_per_epoch"]["value"] == 6.5
    assert targets["tensorflow_seconds_per_epoch"]["met"] is False
    assert targets["torch_speedup_vs_plain"]["value"] == pytest.approx(6.5 / 4.5)
    assert targets["torch_speedup_vs_plain"]["met"] is True
    assert targets["torch_speedup_vs_article"]["value"] == pytest.approx(11.0 / 4.5)
    assert targets["tensorflow_speedup_vs_plain"]["value"] == pytest.approx(8.0 / 6.5)
    assert targets["tensorflow_speedup_vs_article"]["value"] == pytest.approx(11.0 / 6.5)
    assert targets["tensorflow_speedup_vs_article"]["met"] is False
    assert targets["torch_peak_rss_gb"]["value"] == 2.0 and targets["torch_peak_rss_gb"]["met"]
    assert targets["noop_snakemake_seconds"]["met"] is True
    assert targets["noop_dvc_repro_seconds"]["met"] is False


def test_cpu_targets_are_not_judged_on_a_gpu():
    measured = fake_measurement({"torch": {"plain": [1.0], "ours": [0.5]}}, device="cuda")
    result = report.summarize(measured, None, {"images": 60000}, "cmd")
    targets = {t["id"]: t for t in result["targets"]}
    assert targets["torch_speedup_vs_plain"]["value"] == 2.0
    assert targets["torch_speedup_vs_plain"]["met"] is None
    assert "CPU target" in targets["torch_speedup_vs_plain"]["note"]
    assert targets["tensorflow_seconds_per_epoch"]["value"] is None  # not measured


def test_a_framework_without_a_fast_path_has_timings_and_no_ratios(monkeypatch):
    """A registry row with only a plain variant (a reference that only checks): its rows, no speedups."""
    reference = dataclasses.replace(BY_KEY["jax"], key="ref", name="Reference", variants={PLAIN: "x"}, baselines=())
    monkeypatch.setitem(BY_KEY, "ref", reference)
    measured = fake_measurement(
        {
            "torch": {"article": [10.0, 12.0, 11.0], "plain": [6.0, 6.5, 7.0], "ours": [4.0, 5.5, 4.5]},
            "ref": {"plain": [20.0, 21.0, 22.0]},
        }
    )
    result = report.summarize(measured, None, {"images": 60000}, "cmd")
    assert result["frameworks"]["ref"]["speedup"] == {}
    assert result["frameworks"]["torch"]["speedup"] == pytest.approx({"plain": 6.5 / 4.5, "article": 11.0 / 4.5})
    rows = [r for r in report.training_rows(result["frameworks"]) if r["framework"].startswith("Reference")]
    assert [(r["variant"], r["median"], r["speedup"]) for r in rows] == [("plain", "21.000", "")]


def test_tiny_params_are_valid_and_keep_the_ablation_seeds_a_subset():
    base = default_params()
    for seeds in ([0], [0, 1], list(range(8)), base["seeds"]):
        params = pipeline.tiny_params(base, DEBIAN_DIR, seeds=seeds, ablation_seeds=[0])
        validate_params(params)
        assert params["seeds"] == seeds and params["train"]["epochs"] == 1
        if "ablation" in params:
            assert set(params["ablation"]["seeds"]) <= set(seeds)
    same_dag = pipeline.tiny_params(base, DEBIAN_DIR, seeds=base["seeds"])
    if "ablation" in base:
        assert same_dag["ablation"]["seeds"] == base["ablation"]["seeds"]
    assert base == default_params()  # not modified


def test_workspace_has_tiny_params_no_reports_and_no_benchmark_stage(tmp_path):
    params = pipeline.tiny_params(default_params(), DEBIAN_DIR, seeds=[0])
    ws = pipeline.make_workspace(REPO, tmp_path / "ws", params)
    assert yaml.safe_load((ws / "params.yaml").read_text()) == params
    assert not (ws / "reports").exists() and not (ws / "dvc.lock").exists()
    assert "benchmark" not in yaml.safe_load((ws / "dvc.yaml").read_text())["stages"]
    assert (ws / "Snakefile").is_file() and (ws / ".git").is_dir()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=ws, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_jobs_done_reads_snakemakes_last_progress_line():
    log = "1 of 3 steps (33%) done\n...\n3 of 3 steps (100%) done\n"
    assert pipeline.jobs_done(log) == 3
    assert pipeline.jobs_done("Nothing to be done") is None


def test_the_benchmark_stage_is_dropped_wherever_it_is_defined(tmp_path):
    stage = {"cmd": "python workflow/scripts/benchmark.py", "outs": ["reports/benchmark.json"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"report": {"cmd": "x"}, "benchmark": stage}}))
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"benchmark": {**stage, "wdir": ".."}}}))
    pipeline.drop_excluded_stages(tmp_path)
    assert yaml.safe_load((tmp_path / "dvc.yaml").read_text()) == {"stages": {"report": {"cmd": "x"}}}
    assert not (tmp_path / "bench" / "dvc.yaml").exists()
