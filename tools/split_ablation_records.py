"""Split the ablation's old per-job records into one record per run: a one-off migration, kept to show how.

Before, one `ablation_train` job trained all of a (framework, seed)'s ablation runs in a row and
wrote one record, ``reports/ablation/runs/{framework}/seed{seed}.json``: the job's own fields
(framework, framework_version, python_version, seed, device, device_name, epochs, batch_size,
n_train, ``steps``, ``wall_seconds``) and ``runs``, run id -> that run's results (settings,
n_parameters, n_correct, n_test, test_accuracy, test_loss, train_seconds, seconds_per_epoch,
resumed_after_epoch, framework_details, history). Its DVCLive folder
``reports/ablation/live/{framework}/seed{seed}/`` held every run under ``plots/metrics/{run}/`` and
one ``metrics.json`` with each run's latest values under its run id.

Now each job trains one run (lenet_compare.core.layout): its record is
``reports/ablation/runs/{framework}/seed{seed}/{run}.json`` and its DVCLive folder
``reports/ablation/live/{framework}/seed{seed}/{run}/``. This tool rewrites the old files into that
layout, changing no measured value:

- Each run's record is the job's fields, ``run``, then the run's own fields, all copied as they
  were. ``steps`` (which run each ablation step used, under the params of that job) is kept.
- Wall time: the old ``wall_seconds`` is the whole job's, all its runs one after the other, plus
  the framework's start; nothing recorded tells how it divides among the runs (``train_seconds``
  covers the epochs only). So each split record has ``wall_seconds: null``, and keeps the job's
  time as ``job_wall_seconds`` with ``job_runs``, the runs that shared that job, in the order they
  trained. tools/wall_times.py (lenet_compare.bench.wall_times) counts the records that share a job
  as that one job, as before; a record written by the one-run job has its own ``wall_seconds`` and
  neither of the two keys.
- Live: ``plots/metrics/{run}/*`` moves to ``{run}/plots/metrics/*``, and ``{run}/metrics.json`` is
  written as DVCLive writes a one-run folder: the run's latest values from the old metrics.json,
  then ``step``, the last step of its .tsv files (each value is checked against the last line of
  its .tsv file first). The old metrics.json is removed.

Nothing is written unless every old record and live folder found is consistent (the same runs
in the record, the live folder and its metrics.json; no new file already there). The old files are
removed once their replacements are written. Plain moves: commit the result (git sees renames).

    python tools/split_ablation_records.py [--runs-dir reports/ablation/runs] [--live-dir reports/ablation/live]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

from lenet_compare.core import layout
from lenet_compare.core.atomic import write_json, write_text
from lenet_compare.core.errors import PipelineError

REPO = Path(__file__).resolve().parents[1]
OLD_RECORD = re.compile(r"seed(\d+)\.json")
# The file names of a run's live metrics under plots/metrics/, and the key of each in metrics.json.
LIVE_FILES = {
    "train/loss.tsv": ("train", "loss"),
    "train/accuracy.tsv": ("train", "accuracy"),
    "val/loss.tsv": ("val", "loss"),
    "val/accuracy.tsv": ("val", "accuracy"),
    "epoch_seconds.tsv": ("epoch_seconds",),
}


def old_records(runs_dir: Path) -> list[tuple[str, int, Path]]:
    """(framework, seed, path) of every old per-job record under ``runs_dir``."""
    found = []
    for path in sorted(runs_dir.glob("*/seed*.json")):
        match = OLD_RECORD.fullmatch(path.name)
        if match and path.is_file():
            found.append((path.parent.name, int(match.group(1)), path))
    return found


def split_record(old: dict, where: Path) -> dict[str, dict]:
    """Run id -> its record in the per-run layout (module docstring)."""
    runs = old.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise PipelineError(f"{where} has no runs: not an old per-job ablation record")
    if "wall_seconds" not in old:
        raise PipelineError(f"{where} has no wall_seconds")
    records = {}
    for rid, result in runs.items():
        record: dict = {}
        for key, value in old.items():
            if key == "runs":
                continue
            if key == "wall_seconds":
                record |= {"wall_seconds": None, "job_wall_seconds": value, "job_runs": list(runs)}
            else:
                record[key] = value
            if key == "seed":
                record["run"] = rid
        clash = sorted(set(record) & set(result))
        if clash:
            raise PipelineError(f"{where}: run {rid!r} has fields of the job's own: {', '.join(clash)}")
        records[rid] = record | result
    return records


def _tsv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def live_summary(summary: dict, run_folder: Path, rid: str) -> dict:
    """The one-run metrics.json of ``rid``: its latest values from the old ``summary``, then its step."""
    latest = summary.get(rid)
    if not isinstance(latest, dict):
        raise PipelineError(f"{run_folder.parent.parent.parent / 'metrics.json'} has no values of run {rid!r}")
    steps = set()
    for name, keys in LIVE_FILES.items():
        rows = _tsv_rows(run_folder / name)
        if not rows:
            raise PipelineError(f"{run_folder / name} is empty")
        value = latest
        for key in keys:
            value = value[key]
        if float(rows[-1][keys[-1]]) != value:
            raise PipelineError(f"{run_folder / name}: its last line is not the latest value in metrics.json")
        steps.add(int(rows[-1]["step"]))
    if len(steps) != 1:
        raise PipelineError(f"{run_folder}: the .tsv files end at different steps {sorted(steps)}")
    return latest | {"step": steps.pop()}


def plan(runs_dir: Path, live_dir: Path) -> list[tuple[Path, dict[Path, dict], Path | None, dict[str, dict]]]:
    """Per old record: its path, the new records, its live folder (None: none) and each run's live summary."""
    work = []
    for framework, seed, path in old_records(runs_dir):
        old = json.loads(path.read_text(encoding="utf-8"))
        if (old.get("framework"), old.get("seed")) != (framework, seed):
            raise PipelineError(f"{path} records framework {old.get('framework')!r}, seed {old.get('seed')!r}")
        records = split_record(old, path)
        new = {layout.ablation_run_file(framework, seed, rid, runs_dir): r for rid, r in records.items()}
        folder = live_dir / framework / f"seed{seed}"
        summaries = {}
        if (folder / "metrics.json").is_file():
            summary = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            live_runs = sorted(p.name for p in (folder / "plots" / "metrics").iterdir())
            if sorted(records) != live_runs or sorted(k for k in summary if k != "step") != live_runs:
                raise PipelineError(f"{folder} holds the runs {live_runs}, {path} the runs {sorted(records)}")
            for rid in live_runs:
                summaries[rid] = live_summary(summary, folder / "plots" / "metrics" / rid, rid)
        taken = [p for p in [*new, *(folder / rid for rid in summaries)] if p.exists()]
        if taken:
            raise PipelineError(f"already there, not overwritten: {', '.join(map(str, taken))}")
        work.append((path, new, folder if summaries else None, summaries))
    return work


def migrate(runs_dir: Path, live_dir: Path) -> list[Path]:
    """Split every old record and live folder (module docstring); returns the records written."""
    work = plan(runs_dir, live_dir)
    written = []
    for path, new, folder, summaries in work:
        for target, record in new.items():
            write_json(target, record)
            written.append(target)
        path.unlink()
        if folder is None:
            continue
        for rid, summary in summaries.items():
            (folder / rid / "plots").mkdir(parents=True)
            (folder / "plots" / "metrics" / rid).rename(folder / rid / "plots" / "metrics")
            write_text(folder / rid / "metrics.json", json.dumps(summary, indent=4) + "\n")  # as DVCLive does
        (folder / "metrics.json").unlink()
        (folder / "plots" / "metrics").rmdir()
        (folder / "plots").rmdir()
    return written


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", type=Path, default=REPO / layout.ABLATION_RUNS_DIR)
    p.add_argument("--live-dir", type=Path, default=REPO / Path(layout.ABLATION_LIVE).parents[2])
    args = p.parse_args()
    try:
        written = migrate(args.runs_dir, args.live_dir)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} run records under {args.runs_dir}" if written else "no old records found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
