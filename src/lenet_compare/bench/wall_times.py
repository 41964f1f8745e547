"""What a baseline cost: each job's wall time, read from the records the jobs wrote themselves.

Three kinds of job train for long or measure, and each records its own wall time, from the start
of the step (the framework's import included) to its last write (paths: lenet_compare.core.layout):

- ``train``: ``reports/runs/{framework}/seed{seed}/run.json`` (``wall_seconds``),
- ``evaluate``: ``reports/runs/{framework}/seed{seed}/metrics.json`` (``wall_seconds``),
- ``ablation_train``: ``reports/ablation/runs/{framework}/seed{seed}/{run}.json`` (``wall_seconds``;
  one job per run of lenet_compare.ablation.factors.runs_to_train, for the article's pair only:
  the ablation explains the article's gap, whatever params.yaml's frameworks say).

The data steps (download, prepare, init) and the two report steps take seconds and keep no such
record; they are left out and the summary says so. ``tools/wall_times.py`` writes the summary
to ``reports/wall_times.{json,md}`` and quotes the table in docs/performance.md; the tests
recompute both from the committed records.

The sum of the jobs' wall times is what the run costs one job slot; the elapsed time of a run
depends on how many jobs ran side by side, which the records cannot tell.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from lenet_compare.ablation import factors
from lenet_compare.core import layout
from lenet_compare.core.article import PAIR
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import name as framework_name
from lenet_compare.report.common import read_json, require_files

JOBS = ("train", "evaluate", "ablation_train")
RERUN = {
    "train": "rerun the train step",
    "evaluate": "rerun the evaluate step",
    "ablation_train": "rerun the ablation's training",
}


def record_files(params: dict, runs_dir: Path, ablation_runs_dir: Path) -> list[tuple[str, str, int, str, Path]]:
    """(job, framework, seed, run, record) for every job of the default pipeline that params.yaml asks for.

    ``run`` is the run the job trained: "main" for the train step, "" for evaluate.
    """
    files = []
    for f in params["frameworks"]:
        for s in params["seeds"]:
            files.append(("train", f, s, "main", layout.run_file("run", f, s, runs_dir)))
            files.append(("evaluate", f, s, "", layout.run_file("metrics", f, s, runs_dir)))
    for f in PAIR:
        for s in params["ablation"]["seeds"]:
            for rid in factors.runs_to_train(params, f):
                files.append(("ablation_train", f, s, rid, layout.ablation_run_file(f, s, rid, ablation_runs_dir)))
    return files


def _seconds(value, path: Path, key: str, job: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PipelineError(f"{path} has no usable {key} ({value!r}); {RERUN[job]} with this code")
    return float(value)


def collect(params: dict, runs_dir: Path, ablation_runs_dir: Path) -> list[dict]:
    """One row per job: what it was, its wall time, and what it trained (runs, resumes, device)."""
    files = record_files(params, runs_dir, ablation_runs_dir)
    require_files(
        [path for *_, path in files],
        "the wall-time summary",
        "run the whole default pipeline first (dvc repro, or snakemake --cores 2 --resources gpu=1)",
    )
    records = {(job, f, s, rid): (path, read_json(path, RERUN[job])) for job, f, s, rid, path in files}
    rows = []
    for (job, f, s, rid), (path, record) in records.items():
        row = {"job": job, "framework": f, "seed": s} | ({"run": rid} if job == "ablation_train" else {})
        row["wall_seconds"] = _seconds(record.get("wall_seconds"), path, "wall_seconds", job)
        if job != "evaluate":
            row["trained"] = [rid]
            row["resumed"] = bool(record.get("resumed_after_epoch"))
            row["device_name"] = record.get("device_name")
        rows.append(row)
    return rows


def _stats(values: list[float]) -> dict:
    return {
        "jobs": len(values),
        "median_seconds": statistics.median(values),
        "min_seconds": min(values),
        "max_seconds": max(values),
        "total_seconds": sum(values),
    }


def summarize(rows: list[dict]) -> dict:
    """Per job kind, framework and runs trained: count, median, min, max and total; totals per kind and in all.

    Each ablation run is a job of its own, so its runs get a group each.
    """
    groups = []
    for job in JOBS:
        mine = [r for r in rows if r["job"] == job]
        for f, trained in dict.fromkeys((r["framework"], tuple(r.get("trained", []))) for r in mine):
            alike = [r for r in mine if (r["framework"], tuple(r.get("trained", []))) == (f, trained)]
            stats = _stats([r["wall_seconds"] for r in alike])
            groups.append({"job": job, "framework": f, "trained_runs": list(trained)} | stats)
    totals = {job: sum(r["wall_seconds"] for r in rows if r["job"] == job) for job in JOBS}
    main = totals["train"] + totals["evaluate"]
    everything = sum(totals.values())
    return {
        "groups": groups,
        "total_seconds": totals | {"main_runs": main, "all": everything},
        # The ablation's cost, against the main runs' (train + evaluate) it explains.
        "ablation_share": totals["ablation_train"] / everything if everything else None,
        "ablation_per_main": totals["ablation_train"] / main if main else None,
        "resumed_jobs": [
            " ".join([r["job"], r["framework"], f"seed {r['seed']}", *([r["run"]] if "run" in r else [])])
            for r in rows
            if r.get("resumed")
        ],
        "devices": sorted({r["device_name"] for r in rows if r.get("device_name")}),
        "jobs": rows,
    }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def table(summary: dict) -> str:
    """The Markdown table docs/performance.md quotes."""
    lines = [
        "| job | framework | jobs | runs trained per job | median (s) | min-max (s) | total (min) |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for g in summary["groups"]:
        lines.append(
            f"| `{g['job']}` | {framework_name(g['framework'])} | {g['jobs']} | "
            f"{', '.join(g['trained_runs']) or '-'} | {g['median_seconds']:.0f} | "
            f"{g['min_seconds']:.0f}-{g['max_seconds']:.0f} | {_minutes(g['total_seconds'])} |"
        )
    t = summary["total_seconds"]
    lines.append(f"| main runs (train + evaluate) | | | | | | {_minutes(t['main_runs'])} |")
    lines.append(f"| ablation | | | | | | {_minutes(t['ablation_train'])} |")
    lines.append(f"| all jobs | | | | | | {_minutes(t['all'])} |")
    return "\n".join(lines)


def render_markdown(summary: dict) -> str:
    resumed = summary["resumed_jobs"]
    share = summary["ablation_share"]
    per_main = summary["ablation_per_main"]
    return "\n".join(
        [
            "# Wall time of each job",
            "",
            "From the jobs' own records (`wall_seconds` in `reports/runs/*/seed*/run.json`, "
            "`reports/runs/*/seed*/metrics.json` and `reports/ablation/runs/*/seed*/*.json`), written by "
            "`python tools/wall_times.py`. Each time runs from the start of the step, the framework's "
            "import included, to its last write. The data steps and the two report steps take seconds "
            "and are not listed.",
            "",
            table(summary),
            "",
            f"The ablation took {100 * share:.0f} % of all job time, {per_main:.2f} times the main runs'."
            if share is not None and per_main is not None
            else "",
            "",
            "Totals are sums of job wall times (one job slot's cost); how long the run took from start "
            "to end depends on how many jobs ran side by side.",
            f"Jobs that resumed from a checkpoint (their time covers only the rest): {', '.join(resumed)}."
            if resumed
            else "No job resumed from a checkpoint: each time covers the whole job.",
            f"Machine, from the records: {', '.join(summary['devices']) or 'n/a'}.",
            "",
        ]
    )
