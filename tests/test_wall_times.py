"""The wall-time summary: numbers checked by hand on made-up records, and the committed summary
(reports/wall_times.{json,md}, the table in docs/performance.md) recomputed from the committed
run records.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, default_params, run

from lenet_compare.ablation import factors
from lenet_compare.bench import wall_times
from lenet_compare.core import layout
from lenet_compare.core.article import PAIR
from lenet_compare.core.errors import PipelineError

# tools/wall_times.py, the command that writes the summary, loaded by path (tools/ is no package).
_spec = importlib.util.spec_from_file_location("wall_times_tool", REPO / "tools/wall_times.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def make_params() -> dict:
    params = default_params()
    params["frameworks"] = list(PAIR)  # the made-up records are the pair's; a third framework has its own test
    params["seeds"], params["ablation"]["seeds"] = [0, 1, 2], [0, 1]
    return params


PARAMS = make_params()
# The runs each framework's ablation trains with params.yaml's ablation: one job each, per seed.
ABLATION_RUNS = {"torch": ["article", "init"], "tensorflow": ["article", "eps", "padding", "init"]}
# Made-up wall seconds per (job, framework, seed, run).
SECONDS = {
    ("train", "torch", 0, "main"): 300.0,
    ("train", "torch", 1, "main"): 310.0,
    ("train", "torch", 2, "main"): 290.0,
    ("train", "tensorflow", 0, "main"): 250.0,
    ("train", "tensorflow", 1, "main"): 240.0,
    ("train", "tensorflow", 2, "main"): 270.0,
    ("evaluate", "torch", 0, ""): 40.0,
    ("evaluate", "torch", 1, ""): 44.0,
    ("evaluate", "torch", 2, ""): 42.0,
    ("evaluate", "tensorflow", 0, ""): 30.0,
    ("evaluate", "tensorflow", 1, ""): 36.0,
    ("evaluate", "tensorflow", 2, ""): 33.0,
    ("ablation_train", "torch", 0, "article"): 300.0,
    ("ablation_train", "torch", 1, "article"): 320.0,
    ("ablation_train", "torch", 0, "init"): 310.0,
    ("ablation_train", "torch", 1, "init"): 290.0,
    **{("ablation_train", "tensorflow", s, rid): 250.0 + 10 * s + k for k, rid in enumerate(ABLATION_RUNS["tensorflow"])
       for s in (0, 1)},
}  # fmt: skip


def write_records(root: Path, resumed: tuple = (), times: dict = SECONDS) -> tuple[Path, Path]:
    """Made-up records with these wall seconds (``times``, like SECONDS) where the layout puts them."""
    runs, ablation = root / "runs", root / "ablation"
    for (job, f, s, rid), seconds in times.items():
        if job == "ablation_train":
            path = layout.ablation_run_file(f, s, rid, ablation)
            record = {"framework": f, "seed": s, "run": rid, "device_name": "Test CPU", "wall_seconds": seconds,
                      "resumed_after_epoch": 3 if (job, f, s, rid) in resumed else 0}  # fmt: skip
        else:
            path = layout.run_file("run" if job == "train" else "metrics", f, s, runs)
            record = {"framework": f, "seed": s, "wall_seconds": seconds}
            if job == "train":
                record |= {"device_name": "Test CPU", "resumed_after_epoch": 7 if (job, f, s, rid) in resumed else 0}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return runs, ablation


def test_the_summary_by_hand(tmp_path):
    runs, ablation = write_records(tmp_path)
    summary = wall_times.summarize(wall_times.collect(PARAMS, runs, ablation))
    groups = {(g["job"], g["framework"], tuple(g["trained_runs"])): g for g in summary["groups"]}
    # One group per job kind and framework, and per run for the ablation: each of its jobs trains one.
    assert list(groups) == [
        ("train", "torch", ("main",)),
        ("train", "tensorflow", ("main",)),
        ("evaluate", "torch", ()),
        ("evaluate", "tensorflow", ()),
        *(("ablation_train", f, (rid,)) for f in ("torch", "tensorflow") for rid in ABLATION_RUNS[f]),
    ]
    for (job, f, trained), g in groups.items():
        values = [v for (j, fw, _, rid), v in SECONDS.items() if (j, fw) == (job, f) and (rid,) == (trained or ("",))]
        assert g["jobs"] == len(values) == (3 if job != "ablation_train" else 2)
        assert g["median_seconds"] == statistics.median(values)
        assert (g["min_seconds"], g["max_seconds"], g["total_seconds"]) == (min(values), max(values), sum(values))
    assert groups[("train", "torch", ("main",))]["median_seconds"] == 300.0  # 290, 300, 310
    assert len(summary["jobs"]) == 6 + 6 + 2 * 6  # every ablation run of every seed is a job
    t = summary["total_seconds"]
    assert t["train"] == 1660.0 and t["evaluate"] == 225.0 and t["ablation_train"] == 1220.0 + 2052.0
    assert t["main_runs"] == 1885.0 and t["all"] == 1885.0 + 3272.0
    assert summary["ablation_share"] == pytest.approx(3272 / 5157)
    assert summary["ablation_per_main"] == pytest.approx(3272 / 1885)
    assert summary["resumed_jobs"] == [] and summary["devices"] == ["Test CPU"]
    md = wall_times.render_markdown(summary)
    assert "| `train` | PyTorch | 3 | main | 300 | 290-310 | 15.0 |" in md
    assert "| `ablation_train` | PyTorch | 2 | init | 300 | 290-310 | 10.0 |" in md
    assert "| `ablation_train` | TensorFlow/Keras | 2 | padding | 257 | 252-262 | 8.6 |" in md
    assert "| all jobs | | | | | | 86.0 |" in md
    assert "The ablation took 63 % of all job time, 1.74 times the main runs'." in md
    assert "No job resumed from a checkpoint" in md
    # The ablation's share is a paragraph of its own, the notes after it another.
    assert "1.74 times the main runs'.\n\nTotals are sums of job wall times" in md


def test_a_framework_outside_the_article_has_main_jobs_and_no_ablation_jobs(tmp_path):
    """The ablation explains the article's gap: it trains the article's pair only, whatever
    params.yaml's frameworks say (JAX has no article settings to ablate)."""
    params = make_params()
    params["frameworks"] = [*PAIR, "jax"]
    jax = {(job, "jax", s, rid): 100.0 + s for job, rid in (("train", "main"), ("evaluate", "")) for s in (0, 1, 2)}
    runs, ablation = write_records(tmp_path, times=SECONDS | jax)
    rows = wall_times.collect(params, runs, ablation)
    assert [(r["job"], r["seed"]) for r in rows if r["framework"] == "jax"] == [
        (job, s) for s in (0, 1, 2) for job in ("train", "evaluate")
    ]
    assert len([r for r in rows if r["job"] == "ablation_train"]) == 2 * 6  # as without JAX


def test_resumed_jobs_are_named(tmp_path):
    resumed = (("train", "tensorflow", 1, "main"), ("ablation_train", "torch", 0, "init"))
    runs, ablation = write_records(tmp_path, resumed=resumed)
    summary = wall_times.summarize(wall_times.collect(PARAMS, runs, ablation))
    assert summary["resumed_jobs"] == ["train tensorflow seed 1", "ablation_train torch seed 0 init"]
    assert "resumed from a checkpoint (their time covers only the rest): train tensorflow seed 1, " in (
        wall_times.render_markdown(summary)
    )


def test_missing_records_are_listed_at_once(tmp_path):
    runs, ablation = write_records(tmp_path)
    (runs / "torch/seed2/metrics.json").unlink()
    (ablation / "tensorflow/seed1/padding.json").unlink()
    with pytest.raises(PipelineError) as e:
        wall_times.collect(PARAMS, runs, ablation)
    assert "torch/seed2/metrics.json" in str(e.value) and "tensorflow/seed1/padding.json" in str(e.value)


ABSENT = object()  # the record has no wall_seconds at all


@pytest.mark.parametrize("value", [ABSENT, None, "12", -1.0, True], ids=["absent", "null", "text", "negative", "bool"])
@pytest.mark.parametrize(
    ("record", "rerun"),
    [
        ("tensorflow/seed0/metrics.json", "the evaluate step"),  # e.g. an evaluate step older than the field
        ("torch/seed1/article.json", "the ablation's training"),  # every ablation job records its own
    ],
)
def test_a_record_without_a_usable_wall_time_names_the_step_to_rerun(tmp_path, value, record, rerun):
    runs, ablation = write_records(tmp_path)
    path = (runs if record.endswith("metrics.json") else ablation) / record
    kept = {k: v for k, v in json.loads(path.read_text()).items() if k != "wall_seconds"}
    path.write_text(json.dumps(kept if value is ABSENT else kept | {"wall_seconds": value}))
    with pytest.raises(PipelineError, match=rf"{record} has no usable wall_seconds.*rerun {rerun}"):
        wall_times.collect(PARAMS, runs, ablation)


def test_the_docs_block_is_replaced_between_its_markers():
    text = f"# Speed\n\nbefore\n{tool.BEGIN}\nold table\n{tool.END}\nafter\n"
    assert tool.quote_in_docs(text, "| new |") == f"# Speed\n\nbefore\n{tool.BEGIN}\n| new |\n{tool.END}\nafter\n"
    for broken in ("no markers", f"{tool.END}\n{tool.BEGIN}", f"{tool.BEGIN}{tool.END}{tool.BEGIN}{tool.END}"):
        with pytest.raises(PipelineError, match="markers"):
            tool.quote_in_docs(broken, "| new |")


def test_the_committed_summary_is_that_of_the_committed_records(tmp_path):
    """tools/wall_times.py on the committed run records writes exactly the committed summary files,
    and docs/performance.md quotes exactly its table: none of those numbers was copied by hand."""
    docs = tmp_path / "performance.md"
    docs.write_text((REPO / "docs/performance.md").read_text())
    out_json, out_md = tmp_path / "wall_times.json", tmp_path / "wall_times.md"
    run(
        [sys.executable, REPO / "tools/wall_times.py", "--out-json", out_json, "--out-md", out_md, "--docs", docs],
        cwd=tmp_path,
    )
    assert json.loads(out_json.read_text()) == json.loads((REPO / "reports/wall_times.json").read_text())
    assert out_md.read_text() == (REPO / "reports/wall_times.md").read_text()
    assert docs.read_text() == (REPO / "docs/performance.md").read_text()
    # The summary covers every job of the committed baseline: train and evaluate per framework and
    # seed, and one job per ablation run of the article's pair, each with its own wall time.
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    summary = json.loads(out_json.read_text())
    n_main = 2 * len(params["frameworks"]) * len(params["seeds"])  # train and evaluate
    ablation = [
        (f, s, rid) for f in PAIR for s in params["ablation"]["seeds"] for rid in factors.runs_to_train(params, f)
    ]
    assert len(summary["jobs"]) == n_main + len(ablation)
    rows = [r for r in summary["jobs"] if r["job"] == "ablation_train"]
    assert [(r["framework"], r["seed"], r["run"]) for r in rows] == ablation
    for r in rows:
        record = json.loads((REPO / layout.ablation_run_file(r["framework"], r["seed"], r["run"])).read_text())
        assert record["wall_seconds"] == r["wall_seconds"] and r["trained"] == [r["run"]]
