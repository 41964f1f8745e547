"""Which train.threads to default to: N jobs x 1 thread against 1 job x N threads on this machine.

Runs the same training and evaluation jobs (every framework x 2 seeds, 2 epochs of 18,000
images) under `snakemake --cores N` in a copy of the repository, once with train.threads 1
(N jobs side by side) and once with train.threads N (one job at a time), alternating for
--rounds rounds, and writes wall times and each run's own training seconds to reports/threads.json.
Keep the machine otherwise idle while it runs (about 10 minutes on 2 cores).

    python tools/measure_threads.py [--rounds 2] [--out reports/threads.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import yaml

from lenet_compare.bench.pipeline import make_workspace, run
from lenet_compare.core.atomic import write_json
from lenet_compare.core.frameworks import FRAMEWORKS
from lenet_compare.train.devices import cpu_name

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)


def params_for(threads: int) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(limit_train=20000, val_size=2000, limit_test=2000)
    params["data"]["sources"] = ["/usr/share/datasets/fashion-mnist", *params["data"]["sources"]]
    params["train"].update(epochs=2, threads=threads, device="cpu")
    params["seeds"] = list(SEEDS)
    params["ablation"]["seeds"] = [SEEDS[0]]
    return params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "reports" / "threads.json")
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    targets = [f"reports/runs/{fw}/seed{s}/metrics.json" for fw in FRAMEWORKS for s in SEEDS]
    with tempfile.TemporaryDirectory() as tmp:
        ws = make_workspace(REPO, Path(tmp) / "ws", params_for(1))
        # Data and initial weights first: not part of what is compared.
        run(
            [
                "snakemake",
                "--cores",
                str(cores),
                "data/prepared/fashion_mnist.npz",
                *(f"data/init/seed{s}.npz" for s in SEEDS),
            ],
            ws,
        )
        measurements = []
        for _ in range(args.rounds):
            for threads in (1, cores):
                (ws / "params.yaml").write_text(yaml.safe_dump(params_for(threads), sort_keys=False))
                wall, _ = run(["snakemake", "--cores", str(cores), "--forcerun", "train", "evaluate", *targets], ws)
                train_seconds = {
                    f"{fw}/seed{s}": json.loads((ws / f"reports/runs/{fw}/seed{s}/run.json").read_text())[
                        "train_seconds"
                    ]
                    for fw in FRAMEWORKS
                    for s in SEEDS
                }
                measurements.append(
                    {
                        "threads": threads,
                        "jobs_at_once": cores // threads,
                        "wall_seconds": wall,
                        "train_seconds": train_seconds,
                    }
                )
                print(json.dumps(measurements[-1]), flush=True)
    median = {t: statistics.median(m["wall_seconds"] for m in measurements if m["threads"] == t) for t in (1, cores)}
    write_json(
        args.out,
        {
            "what": f"{len(targets)} training + evaluation jobs ({', '.join(FRAMEWORKS)} x seeds {list(SEEDS)}, "
            "2 epochs of 18,000 images) under snakemake --cores N",
            "machine": {"cpu": cpu_name(), "cores": cores, "python": platform.python_version()},
            "median_wall_seconds": {f"{cores // t} jobs x {t} thread(s)": s for t, s in median.items()},
            "ratio_one_thread_per_job": median[cores] / median[1],
            "measurements": measurements,
        },
    )
    print(f"wrote {args.out}: {median}")


if __name__ == "__main__":
    main()
