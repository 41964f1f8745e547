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
from lenet_compare.core.errors import PipelineError

# tools/wall_times.py, the command that writes the summary, loaded by path (tools/ is no package).
_spec = importlib.util.spec_from_file_location("wall_times_tool", REPO / "tools/wall_times.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def make_params() -> dict:
    params = default_params()
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
# The baseline's ablation jobs, before one job trained one run: per (framework, seed), one job's time.
SHARED_JOB_SECONDS = {("torch", 0): 600.0, ("torch", 1): 620.0, ("tensorflow", 0): 1000.0, ("tensorflow", 1): 1100.0}


def write_records(root: Path, resumed: tuple = (), shared: bool = False) -> tuple[Path, Path]:
    """Made-up records where the layout puts them; ``shared``: the ablation's as
    tools/split_ablation_records.py left the baseline's (one job per framework and seed, split per run)."""
    runs, ablation = root / "runs", root / "ablation"
    for (job, f, s, rid), seconds in SECONDS.items():
        if job == "ablation_train":
            path = layout.ablation_run_file(f, s, rid, ablation)
            record = {"framework": f, "seed": s, "run": rid, "device_name": "Test CPU", "wall_seconds": seconds,
                      "resumed_after_epoch": 3 if (job, f, s, rid) in resumed else 0}  # fmt: skip
            if shared:
                record |= {"wall_seconds": None, "job_wall_seconds": SHARED_JOB_SECONDS[(f, s)],
                           "job_runs": ABLATION_RUNS[f]}  # fmt: skip
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
    assert "several runs" not in md  # no job shared by runs


def test_runs_that_shared_a_job_count_as_that_job(tmp_path):
    """The baseline's ablation records, split per run from one job per framework and seed: each
    job once, with its own time (job_wall_seconds), all its runs together; the note says so."""
    runs, ablation = write_records(tmp_path, shared=True, resumed=(("ablation_train", "tensorflow", 1, "eps"),))
    summary = wall_times.summarize(wall_times.collect(PARAMS, runs, ablation))
    shared = [r for r in summary["jobs"] if r["job"] == "ablation_train"]
    assert [(r["framework"], r["seed"], r["wall_seconds"], r["trained"]) for r in shared] == [
        (f, s, SHARED_JOB_SECONDS[(f, s)], sorted(ABLATION_RUNS[f])) for f in ("torch", "tensorflow") for s in (0, 1)
    ]
    groups = {(g["job"], g["framework"]): g for g in summary["groups"] if g["job"] == "ablation_train"}
    assert groups[("ablation_train", "tensorflow")]["trained_runs"] == ["article", "eps", "init", "padding"]
    assert groups[("ablation_train", "tensorflow")]["jobs"] == 2
    assert summary["total_seconds"]["ablation_train"] == 3320.0
    assert summary["resumed_jobs"] == ["ablation_train tensorflow seed 1"]  # its job, not only its run
    md = wall_times.render_markdown(summary)
    assert "| `ablation_train` | TensorFlow/Keras | 2 | article, eps, init, padding | 1050 | 1000-1100 | 35.0 |" in md
    assert "| all jobs | | | | | | 86.8 |" in md
    assert "4 of the ablation's jobs trained several runs one after the other" in md


@pytest.mark.parametrize("first", [True, False], ids=["first run retrained", "other run retrained"])
def test_runs_that_disagree_on_their_shared_job_are_refused(tmp_path, first):
    """A run of a shared job retrained since by a job of its own: the old job's time would count for
    the runs left, or not at all; so it is refused until the whole job's runs are retrained."""
    runs, ablation = write_records(tmp_path, shared=True)
    path = layout.ablation_run_file("torch", 1, "article" if first else "init", ablation)
    record = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in record.items() if not k.startswith("job_")} | {"wall_seconds": 5.0}))
    with pytest.raises(PipelineError, match=r"seed1/(article|init).json and .*seed1/(article|init).json disagree"):
        wall_times.collect(PARAMS, runs, ablation)


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


@pytest.mark.parametrize("value", [None, "12", -1.0, True])
@pytest.mark.parametrize(
    ("record", "rerun"),
    [
        ("tensorflow/seed0/metrics.json", "the evaluate step"),  # e.g. an evaluate step older than the field
        ("torch/seed1/article.json", "the ablation's training"),  # a one-run job's record
    ],
)
def test_a_record_without_a_usable_wall_time_names_the_step_to_rerun(tmp_path, value, record, rerun):
    runs, ablation = write_records(tmp_path)
    path = (runs if record.endswith("metrics.json") else ablation) / record
    path.write_text(json.dumps(json.loads(path.read_text()) | {"wall_seconds": value}))
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
    # The summary covers every job of the committed baseline. Its ablation ran one job per framework
    # and seed, all of that framework's runs in a row (tools/split_ablation_records.py split the
    # records per run since): each of those jobs counts once.
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    summary = json.loads(out_json.read_text())
    n_main = len(params["frameworks"]) * len(params["seeds"])
    assert len(summary["jobs"]) == 2 * n_main + len(params["frameworks"]) * len(params["ablation"]["seeds"])
    for f in params["frameworks"]:
        for s in params["ablation"]["seeds"]:
            records = [
                json.loads(layout.ablation_run_file(f, s, rid, REPO / layout.ABLATION_RUNS_DIR).read_text())
                for rid in factors.runs_to_train(params, f)
            ]
            assert {r["wall_seconds"] for r in records} == {None}
            assert [r["job_runs"] for r in records] == [factors.runs_to_train(params, f)] * len(records)
            job = next(r for r in summary["jobs"] if (r["job"], r["framework"], r["seed"]) == ("ablation_train", f, s))
            assert {r["job_wall_seconds"] for r in records} == {job["wall_seconds"]}
