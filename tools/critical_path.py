"""How long the default pipeline takes on N job slots, from the last full run's own job records.

Reads reports/wall_times.json (every train, evaluate and ablation_train job's wall time;
tools/wall_times.py writes it) and schedules the jobs after `init` on N slots: longest job
first whenever a slot frees, each `evaluate` after its `train`. The data steps, `init` and the
two report steps take seconds and are left out.

Each ablation run is a job of its own. ``--per-job`` schedules the ablation as it ran before,
for comparison: one job per framework and seed, training that framework's runs in a row, costed
as the sum of those runs' job times. That is an upper bound on such a job: each one-run job pays
the framework's import and the data loading again, which one shared job paid once.

    python tools/critical_path.py [--slots 2 10 30 50] [--per-job]
"""

from __future__ import annotations

import argparse
import heapq
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main_jobs(wall_times: dict) -> tuple[dict, dict]:
    """(framework, seed) -> train seconds, and -> evaluate seconds."""
    train, evaluate = {}, {}
    for job in wall_times["jobs"]:
        if job["job"] in ("train", "evaluate"):
            (train if job["job"] == "train" else evaluate)[(job["framework"], job["seed"])] = job["wall_seconds"]
    return train, evaluate


def ablation_jobs(wall_times: dict, per_job: bool) -> list[tuple[float, str]]:
    """(seconds, name) of each ablation job: one per run, or (``per_job``) one per framework and seed."""
    runs = [job for job in wall_times["jobs"] if job["job"] == "ablation_train"]
    if not per_job:
        return [(r["wall_seconds"], f"{r['framework']} seed {r['seed']} {r['run']}") for r in runs]
    grouped: dict[tuple[str, int], list[dict]] = {}
    for r in runs:
        grouped.setdefault((r["framework"], r["seed"]), []).append(r)
    return [
        (sum(r["wall_seconds"] for r in mine), f"{framework} seed {seed} ({', '.join(r['run'] for r in mine)})")
        for (framework, seed), mine in grouped.items()
    ]


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
    p.add_argument("--per-job", action="store_true", help="the ablation as one job per framework and seed")
    args = p.parse_args()
    wall_times = json.loads((REPO / "reports" / "wall_times.json").read_text())
    train, evaluate = main_jobs(wall_times)
    ablation = ablation_jobs(wall_times, args.per_job)
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
