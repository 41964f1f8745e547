"""Step `ablation_train`: train and test one framework's ablation runs for one seed.

The runs are the distinct training configurations of the ablation's steps for this framework
(lenet_compare.ablation.factors.runs_to_train; the last step is the main runs and is not trained
here). One process trains them one after the other with the main protocol's code
(lenet_compare.train.job), saves each model, tests it on the test set and writes one JSON
(reports/ablation/runs/{framework}/seed{seed}.json, read by the `ablation` step).

Each run checkpoints every epoch under --checkpoint-dir/{run}; the checkpoints stay until the
whole job has succeeded, so a rerun after an interruption resumes where it stopped, finished
runs included. While they train, each run's epochs go to the DVCLive folder --live-dir, under
plots/metrics/{run}/ (lenet_compare.train.live, docs/live-metrics.md).
"""

import platform
import statistics
import time
from pathlib import Path

from lenet_compare.ablation import factors
from lenet_compare.core import cli
from lenet_compare.core.atomic import write_json
from lenet_compare.core.config import load_params
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.data.dataset import load_prepared
from lenet_compare.train import checkpoints, init_weights, job, live, scores


def train_and_test(
    framework: job.Framework, seed: int, params: dict, run: str, data: dict, args, live_metrics: live.LiveMetrics | None
) -> dict:
    model_params, train = factors.training_config(params, framework.name, run)
    # Shared initial weights are drawn as the init step draws them (init_weights.initial_weights),
    # for this run's spec: under the article's padding the network has other shapes.
    spec = LeNetSpec.from_params(model_params)
    init = init_weights.initial_weights(spec, seed) if train["init"] == "shared" else None
    label = f"{framework.name} seed {seed} {run}: "
    live_run = live_metrics.run(run) if live_metrics else None
    trained = job.train_run(
        framework, seed, model_params, train, data, init, args.checkpoint_dir / run, label, live=live_run
    )
    trainer, rows = trained.trainer, trained.rows
    trainer.save(args.models_dir / run)
    logits = trainer.predict(data["x_test"])
    n_correct = int((logits.argmax(axis=1) == data["y_test"]).sum())
    n_test = len(data["y_test"])
    result = {
        "settings": factors.settings(params, framework.name, run),
        "n_parameters": trainer.n_parameters,
        "n_correct": n_correct,
        "n_test": n_test,
        "test_accuracy": n_correct / n_test,
        "test_loss": scores.cross_entropy(logits, data["y_test"]),
        "train_seconds": sum(r["epoch_seconds"] for r in rows),
        "seconds_per_epoch": statistics.median(r["epoch_seconds"] for r in rows),
        "resumed_after_epoch": trained.checkpoints.resumed_after,
        "framework_details": trainer.details(),
        "history": rows,
    }
    cli.log.info(
        "%s: test accuracy %.4f (%d / %d), %d parameters",
        label.rstrip(": "),
        result["test_accuracy"],
        n_correct,
        n_test,
        result["n_parameters"],
    )
    return result


def main(args) -> None:
    wall_start = time.perf_counter()
    params = load_params(args.params)
    train = params["train"]
    framework = job.start_framework(args.framework, train, args.seed, params["scheduling"]["gpu_wait_seconds"])
    runs = factors.runs_to_train(params, args.framework)
    job.log_start(framework, args.seed, f"runs {', '.join(runs)}")
    data, _ = load_prepared(args.data)
    with live.logging_to(args.live_dir) as live_metrics:
        results = {run: train_and_test(framework, args.seed, params, run, data, args, live_metrics) for run in runs}
    record = {
        "framework": args.framework,
        "framework_version": framework.backend.VERSION,
        "python_version": platform.python_version(),
        "seed": args.seed,
        "device": framework.device,
        "device_name": framework.device_name,
        "epochs": train["epochs"],
        "batch_size": train["batch_size"],
        "n_train": len(data["y_train"]),
        "steps": {step: factors.run_id(params, args.framework, step) for step in factors.step_names(params)},
        "wall_seconds": time.perf_counter() - wall_start,
        "runs": results,
    }
    write_json(args.out, record)
    for run in runs:
        checkpoints.Checkpoints(args.checkpoint_dir / run, "", "").remove()
    cli.log.info("wrote %s (%d runs) in %.0f s", args.out, len(runs), record["wall_seconds"])


if __name__ == "__main__":
    p = cli.parser(__doc__, one_run=True)
    p.add_argument("--models-dir", type=Path, required=True, help="one sub-folder per run for its model file")
    p.add_argument("--checkpoint-dir", type=Path, required=True, help="per-epoch checkpoints of each run")
    p.add_argument("--out", type=Path, required=True, help="the runs' results (JSON)")
    p.add_argument("--live-dir", type=Path, help="DVCLive folder for each run's epochs as they end (none: not logged)")
    cli.run(main, p.parse_args())
