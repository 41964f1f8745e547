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
from conftest import REPO, run

from lenet_compare.bench import wall_times
from lenet_compare.core.errors import PipelineError

# tools/wall_times.py, the command that writes the summary, loaded by path (tools/ is no package).
_spec = importlib.util.spec_from_file_location("wall_times_tool", REPO / "tools/wall_times.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

PARAMS = {"frameworks": ["torch", "tensorflow"], "seeds": [0, 1, 2], "ablation": {"seeds": [0, 1]}}
# Made-up wall seconds per (job, framework, seed).
SECONDS = {
    ("train", "torch", 0): 300.0,
    ("train", "torch", 1): 310.0,
    ("train", "torch", 2): 290.0,
    ("train", "tensorflow", 0): 250.0,
    ("train", "tensorflow", 1): 240.0,
    ("train", "tensorflow", 2): 270.0,
    ("evaluate", "torch", 0): 40.0,
    ("evaluate", "torch", 1): 44.0,
    ("evaluate", "torch", 2): 42.0,
    ("evaluate", "tensorflow", 0): 30.0,
    ("evaluate", "tensorflow", 1): 36.0,
    ("evaluate", "tensorflow", 2): 33.0,
    ("ablation_train", "torch", 0): 600.0,
    ("ablation_train", "torch", 1): 620.0,
    ("ablation_train", "tensorflow", 0): 1000.0,
    ("ablation_train", "tensorflow", 1): 1100.0,
}
ABLATION_RUNS = {"torch": ["article", "init"], "tensorflow": ["article", "eps", "padding", "init"]}


def write_records(root: Path, resumed: tuple = ()) -> tuple[Path, Path]:
    runs, ablation = root / "runs", root / "ablation"
    for (job, f, s), seconds in SECONDS.items():
        if job == "ablation_train":
            path = ablation / f / f"seed{s}.json"
            record = {
                "framework": f,
                "seed": s,
                "device_name": "Test CPU",
                "wall_seconds": seconds,
                "runs": {rid: {"resumed_after_epoch": 3 if (job, f, s) in resumed else 0} for rid in ABLATION_RUNS[f]},
            }
        else:
            path = runs / f / f"seed{s}" / ("run.json" if job == "train" else "metrics.json")
            record = {"framework": f, "seed": s, "wall_seconds": seconds}
            if job == "train":
                record |= {"device_name": "Test CPU", "resumed_after_epoch": 7 if (job, f, s) in resumed else 0}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return runs, ablation


def test_the_summary_by_hand(tmp_path):
    runs, ablation = write_records(tmp_path)
    summary = wall_times.summarize(wall_times.collect(PARAMS, runs, ablation))
    groups = {(g["job"], g["framework"]): g for g in summary["groups"]}
    assert list(groups) == [(job, f) for job in wall_times.JOBS for f in ("torch", "tensorflow")]
    for (job, f), g in groups.items():
        values = [v for (j, fw, _), v in SECONDS.items() if (j, fw) == (job, f)]
        assert g["jobs"] == len(values)
        assert g["median_seconds"] == statistics.median(values)
        assert (g["min_seconds"], g["max_seconds"], g["total_seconds"]) == (min(values), max(values), sum(values))
    assert groups[("train", "torch")]["median_seconds"] == 300.0  # 290, 300, 310
    assert groups[("ablation_train", "tensorflow")]["trained_runs"] == ["article", "eps", "init", "padding"]
    t = summary["total_seconds"]
    assert t["train"] == 1660.0 and t["evaluate"] == 225.0 and t["ablation_train"] == 3320.0
    assert t["main_runs"] == 1885.0 and t["all"] == 5205.0
    assert summary["ablation_share"] == pytest.approx(3320 / 5205)
    assert summary["ablation_per_main"] == pytest.approx(3320 / 1885)
    assert summary["resumed_jobs"] == [] and summary["devices"] == ["Test CPU"]
    md = wall_times.render_markdown(summary)
    assert "| `train` | PyTorch | 3 | main | 300 | 290-310 | 15.0 |" in md
    assert "| `ablation_train` | TensorFlow/Keras | 2 | article, eps, init, padding | 1050 | 1000-1100 | 35.0 |" in md
    assert "| all jobs | | | | | | 86.8 |" in md
    assert "The ablation took 64 % of all job time, 1.76 times the main runs'." in md
    assert "No job resumed from a checkpoint" in md


def test_resumed_jobs_are_named(tmp_path):
    runs, ablation = write_records(tmp_path, resumed=(("train", "tensorflow", 1), ("ablation_train", "torch", 0)))
    summary = wall_times.summarize(wall_times.collect(PARAMS, runs, ablation))
    assert summary["resumed_jobs"] == ["train tensorflow seed 1", "ablation_train torch seed 0"]
    assert "resumed from a checkpoint (their time covers only the rest): train tensorflow seed 1, " in (
        wall_times.render_markdown(summary)
    )


def test_missing_records_are_listed_at_once(tmp_path):
    runs, ablation = write_records(tmp_path)
    (runs / "torch/seed2/metrics.json").unlink()
    (ablation / "tensorflow/seed1.json").unlink()
    with pytest.raises(PipelineError) as e:
        wall_times.collect(PARAMS, runs, ablation)
    assert "torch/seed2/metrics.json" in str(e.value) and "tensorflow/seed1.json" in str(e.value)


@pytest.mark.parametrize("value", [None, "12", -1.0, True])
def test_a_record_without_a_usable_wall_time_names_the_step_to_rerun(tmp_path, value):
    runs, ablation = write_records(tmp_path)
    path = runs / "tensorflow/seed0/metrics.json"  # e.g. written by an evaluate step older than the field
    path.write_text(json.dumps({"framework": "tensorflow", "seed": 0, "wall_seconds": value}))
    with pytest.raises(PipelineError, match=r"tensorflow/seed0/metrics.json has no usable wall_seconds.*evaluate"):
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
    # The summary covers every job of the committed baseline.
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    summary = json.loads(out_json.read_text())
    n_main = len(params["frameworks"]) * len(params["seeds"])
    assert len(summary["jobs"]) == 2 * n_main + len(params["frameworks"]) * len(params["ablation"]["seeds"])
