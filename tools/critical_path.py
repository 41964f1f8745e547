"""How long the default pipeline takes on N job slots, from the last full run's own job records.

Reads reports/wall_times.json (every train, evaluate and ablation_train job's wall time;
tools/wall_times.py writes it) and the ablation's per-run records, and schedules the jobs
after `init` on N slots: longest job first whenever a slot frees, each `evaluate` after its
`train`. The data steps, `init` and the two report steps take seconds and are left out.

Each ablation run is one job now. A record written by such a job has its own ``wall_seconds``.
A record split from an older job that trained several runs in a row
(tools/split_ablation_records.py) has only that job's ``job_wall_seconds``: its run is then
costed as its own epochs (training and validation passes, from its history) plus the whole old
job's other time (framework import, data, testing), which each one-run job pays again: an upper
bound. ``--per-job`` schedules the ablation as the old jobs instead, for comparison.

    python tools/critical_path.py [--slots 2 10 30 50] [--per-job]
"""

from __future__ import annotations

import argparse
import heapq
import json
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main_jobs(wall_times: dict) -> tuple[dict, dict]:
    """(framework, seed) -> train seconds, and -> evaluate seconds."""
    train, evaluate = {}, {}
    for job in wall_times["jobs"]:
        if job["job"] in ("train", "evaluate"):
            (train if job["job"] == "train" else evaluate)[(job["framework"], job["seed"])] = job["wall_seconds"]
    return train, evaluate


def ablation_jobs(runs_dir: Path, per_job: bool) -> list[tuple[float, str]]:
    """(seconds, name) of each ablation job: one per run, or (``per_job``) the old jobs' own times."""
    records = [json.loads(p.read_text()) for p in sorted(runs_dir.glob("*/seed*/*.json"))]
    shared = defaultdict(list)
    jobs = []
    for r in records:
        name = f"{r['framework']} seed {r['seed']} {r['run']}"
        if r.get("wall_seconds") is not None:
            jobs.append((r["wall_seconds"], name))
        else:
            shared[(r["framework"], r["seed"], r["job_wall_seconds"])].append(r)
    for (framework, seed, wall), runs in shared.items():
        if per_job:
            jobs.append((wall, f"{framework} seed {seed} ({', '.join(r['run'] for r in runs)})"))
            continue
        epochs = {r["run"]: r["train_seconds"] + sum(h.get("val_seconds") or 0 for h in r["history"]) for r in runs}
        other = wall - sum(epochs.values())
        jobs += [(seconds + other, f"{framework} seed {seed} {run}") for run, seconds in epochs.items()]
    return jobs


def schedule(slots: int, train: dict, evaluate: dict, ablation: list) -> float:
    """Seconds until the last job ends, on ``slots`` slots, longest ready job first."""
    ready = sorted([(s, ("train", k)) for k, s in train.items()] + [(s, ("ablation", n)) for s, n in ablation])
    running: list = []
    now = end = 0.0
    while ready or running:
        while ready and len(running) < slots:
            seconds, job = ready.pop()
            heapq.heappush(running, (now + seconds, job))
        now, job = heapq.heappop(running)
        end = max(end, now)
        if job[0] == "train":
            ready.append((evaluate[job[1]], ("evaluate", job[1])))
            ready.sort()
    return end


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slots", type=int, nargs="+", default=[2, 10, 30, 50])
    p.add_argument("--per-job", action="store_true", help="the ablation as the old jobs (several runs each)")
    args = p.parse_args()
    wall_times = json.loads((REPO / "reports" / "wall_times.json").read_text())
    train, evaluate = main_jobs(wall_times)
    ablation = ablation_jobs(REPO / "reports" / "ablation" / "runs", args.per_job)
    chain = max(train[k] + evaluate[k] for k in train)
    longest = max(ablation)
    print(f"longest main chain (train + evaluate): {chain:.0f} s")
    print(f"longest ablation job: {longest[0]:.0f} s ({longest[1]})")
    print(f"jobs after init: {len(train)} train, {len(evaluate)} evaluate, {len(ablation)} ablation_train")
    for slots in args.slots:
        print(f"{slots} slots: {schedule(slots, train, evaluate, ablation) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
