"""tools/critical_path.py: the schedule of the pipeline's jobs on N slots, and its reading of the records."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("critical_path", REPO / "tools" / "critical_path.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def test_an_evaluate_waits_for_its_train_and_jobs_share_the_slots():
    train = {("torch", 0): 10.0, ("torch", 1): 10.0}
    evaluate = {("torch", 0): 1.0, ("torch", 1): 1.0}
    ablation = [(20.0, "a"), (5.0, "b")]
    # One slot: everything in a row. Two: the 20 s job beside both trains (0-20), then the 5 s job
    # beside both evaluates (20-25).
    assert tool.schedule(1, train, evaluate, ablation) == pytest.approx(47.0)
    assert tool.schedule(2, train, evaluate, ablation) == pytest.approx(25.0)
    # Enough slots: the longest chain, train then its evaluate, or the longest job.
    assert tool.schedule(10, train, evaluate, ablation) == pytest.approx(20.0)


def test_a_split_record_costs_its_epochs_plus_the_old_jobs_other_time(tmp_path):
    history = [{"val_seconds": 1.0}, {"val_seconds": 1.0}]
    old = {"framework": "tensorflow", "seed": 0, "job_wall_seconds": 100.0, "wall_seconds": None}
    for run, seconds in (("article", 40.0), ("eps", 50.0)):
        folder = tmp_path / "tensorflow" / "seed0"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{run}.json").write_text(
            json.dumps(old | {"run": run, "train_seconds": seconds, "history": history})
        )
    new = {"framework": "torch", "seed": 0, "run": "init", "wall_seconds": 33.0, "train_seconds": 30.0, "history": []}
    (tmp_path / "torch" / "seed0").mkdir(parents=True)
    (tmp_path / "torch" / "seed0" / "init.json").write_text(json.dumps(new))
    # The old job: 100 s = 42 + 52 s of epochs + 6 s of the rest, which each one-run job pays again.
    assert sorted(tool.ablation_jobs(tmp_path, per_job=False)) == [
        (33.0, "torch seed 0 init"),
        (48.0, "tensorflow seed 0 article"),
        (58.0, "tensorflow seed 0 eps"),
    ]
    assert sorted(tool.ablation_jobs(tmp_path, per_job=True)) == [
        (33.0, "torch seed 0 init"),
        (100.0, "tensorflow seed 0 (article, eps)"),
    ]
