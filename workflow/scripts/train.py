"""Step `train`: train one framework's LeNet-5 for one seed under the protocol of params.yaml.

Imports only the chosen framework (two frameworks in one process can crash here). Writes the
model (data/models/{framework}/seed{seed}/, the registry's model_file), history.csv (one row
per epoch) and run.json (versions, device, timing, memory, the params used), each atomically,
run.json last. While it trains, each epoch's metrics go to --live-dir in DVCLive's format
(lenet_compare.train.live, docs/live-metrics.md), to watch the run with `dvc plots show`.
"""

import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from lenet_compare.core import cli
from lenet_compare.core.atomic import write_json, write_text
from lenet_compare.core.config import load_params
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.data.dataset import load_prepared
from lenet_compare.train import init_weights, job, live
from lenet_compare.train.history import history_csv


def main(args) -> None:
    wall_start = time.perf_counter()
    params = load_params(args.params)
    train = params["train"]
    framework = job.start_framework(args.framework, train, args.seed, params["scheduling"]["gpu_wait_seconds"])
    job.log_start(framework, args.seed, f"init {train['init']}, order {train['order']}")
    data, _ = load_prepared(args.data)
    spec = LeNetSpec.from_params(params["model"])
    init = init_weights.load_initial_weights(args.init, spec, args.seed) if train["init"] == "shared" else None
    with live.logging_to(args.live_dir) as live_metrics:
        live_run = live_metrics.run() if live_metrics else None
        run = job.train_run(
            framework, args.seed, params["model"], train, data, init, args.checkpoint_dir, live=live_run
        )

    model_path = run.trainer.save(args.model_dir)
    write_text(args.history, history_csv(run.rows))
    record = run_record(args, params, framework, run, data, model_path)
    record["wall_seconds"] = time.perf_counter() - wall_start  # from start of the step: imports included
    write_json(args.run_record, record)
    run.checkpoints.remove()  # the run is complete: its outputs replace the checkpoint
    cli.log.info(
        "wrote %s, %s and %s: %.1f s training, %.2f s per epoch, %.0f images/s",
        model_path,
        args.history,
        args.run_record,
        record["train_seconds"],
        record["seconds_per_epoch"],
        record["images_per_second"],
    )


def run_record(args, params: dict, framework: job.Framework, run: job.Run, data: dict, model_path: Path) -> dict:
    """run.json: versions, device, timing, memory and the params of one finished run."""
    train, rows, trainer = params["train"], run.rows, run.trainer
    n_train = len(data["y_train"])
    train_seconds = sum(r["epoch_seconds"] for r in rows)
    return {
        "framework": args.framework,
        "framework_version": framework.backend.VERSION,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "platform": platform.platform(),
        "cpu_count": len(os.sched_getaffinity(0)),  # cores this process may use
        "device": framework.device,
        "device_name": framework.device_name,
        "model_file": str(model_path),
        "n_parameters": trainer.n_parameters,
        "seed": args.seed,
        "epochs": train["epochs"],
        "batch_size": train["batch_size"],
        "steps_per_epoch": run.steps_per_epoch,
        "n_train": n_train,
        "n_val": len(data["y_val"]),
        "train_seconds": train_seconds,
        "val_seconds": sum(r["val_seconds"] for r in rows),
        "resumed_after_epoch": run.checkpoints.resumed_after,  # 0: one uninterrupted process
        "wall_seconds": None,  # set last, when the step is done
        "seconds_per_epoch": statistics.median(r["epoch_seconds"] for r in rows),
        "images_per_second": n_train * train["epochs"] / train_seconds,
        # ru_maxrss is in KiB on Linux
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_memory_mb": trainer.peak_gpu_memory_mb(),
        "init": train["init"],
        "order": train["order"],
        "deterministic": train["deterministic"],
        "threads": train["threads"],  # set inside this step for both frameworks; details: framework_details
        "tf32": train["tf32"],
        "framework_details": trainer.details(),
        "params": {"model": params["model"], "train": train},
    }


if __name__ == "__main__":
    p = cli.parser(__doc__, one_run=True)
    p.add_argument("--init", type=Path, required=True, help="shared initial weights (read when train.init: shared)")
    p.add_argument("--model-dir", type=Path, required=True, help="folder for the framework-native model file")
    p.add_argument("--history", type=Path, required=True, help="history.csv: one row per epoch")
    p.add_argument("--run-record", type=Path, required=True, help="run.json: versions, device, timing, memory")
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        required=True,
        help="per-epoch checkpoints (not an output: survives a failed job)",
    )
    p.add_argument("--live-dir", type=Path, help="DVCLive folder for each epoch's metrics (none: not logged)")
    cli.run(main, p.parse_args())
