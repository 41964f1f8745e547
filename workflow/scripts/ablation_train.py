"""Step `ablation_train`: train and test one run of the ablation, for one framework and seed.

The runs of a framework are the distinct training configurations of the ablation's steps
(lenet_compare.ablation.factors.runs_to_train; the last step is the main runs and is not trained
here); --run names one of them, anything else is refused before the framework starts. The job
trains it with the main protocol's code (lenet_compare.train.job), saves the model in
--model-dir, tests it on the test set and writes its record --out
(reports/ablation/runs/{framework}/seed{seed}/{run}.json, lenet_compare.core.layout), atomically;
the `ablation` step reads it.

The run checkpoints every epoch under --checkpoint-dir; the checkpoints stay until the record is
written, so a rerun after an interruption resumes where it stopped. While it trains, its epochs
go to its own DVCLive folder --live-dir (lenet_compare.train.live, docs/live-metrics.md).

The record: framework, framework_version, python_version, seed, run, device, device_name,
epochs, batch_size, n_train, wall_seconds (this job's, from its start, the framework's import
included), settings (the run's factor values), n_parameters, n_correct, n_test, test_accuracy
(n_correct / n_test), test_loss, train_seconds, seconds_per_epoch (median), resumed_after_epoch,
framework_details and history (one row per epoch, as history.csv's).
"""

import platform
import statistics
import time
from pathlib import Path

from lenet_compare.ablation import factors
from lenet_compare.core import cli
from lenet_compare.core.atomic import write_json
from lenet_compare.core.config import load_params
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.data.dataset import load_prepared
from lenet_compare.train import checkpoints, init_weights, job, live, scores


def check_run(params: dict, framework: str, run: str) -> None:
    """Stop unless ``run`` is one of the runs the ablation trains for ``framework``."""
    runs = factors.runs_to_train(params, framework)
    if run not in runs:
        raise PipelineError(
            f"--run {run!r} is not a run the ablation trains for {framework}: with params.yaml's ablation "
            f"its runs are {', '.join(runs)} (the last step's runs are the main pipeline's)"
        )


def train_and_test(
    framework: job.Framework, params: dict, data: dict, args, live_run: live.LiveRun | None
) -> tuple[dict, checkpoints.Checkpoints]:
    """Train run ``args.run``, save its model, test it: the run's part of the record, and its checkpoints."""
    model_params, train = factors.training_config(params, framework.name, args.run)
    # Shared initial weights are drawn as the init step draws them (init_weights.initial_weights),
    # for this run's spec: under the article's padding the network has other shapes.
    spec = LeNetSpec.from_params(model_params)
    init = init_weights.initial_weights(spec, args.seed) if train["init"] == "shared" else None
    label = f"{framework.name} seed {args.seed} {args.run}: "
    trained = job.train_run(
        framework, args.seed, model_params, train, data, init, args.checkpoint_dir, label, live=live_run
    )
    trainer, rows = trained.trainer, trained.rows
    trainer.save(args.model_dir)
    logits = trainer.predict(data["x_test"])
    n_correct = int((logits.argmax(axis=1) == data["y_test"]).sum())
    n_test = len(data["y_test"])
    return {
        "settings": factors.settings(params, framework.name, args.run),
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
    }, trained.checkpoints


def main(args) -> None:
    wall_start = time.perf_counter()
    params = load_params(args.params)
    check_run(params, args.framework, args.run)
    train = params["train"]
    framework = job.start_framework(args.framework, train, args.seed, params["scheduling"]["gpu_wait_seconds"])
    job.log_start(framework, args.seed, f"run {args.run}")
    data, _ = load_prepared(args.data)
    with live.logging_to(args.live_dir) as live_metrics:
        result, saved = train_and_test(framework, params, data, args, live_metrics.run() if live_metrics else None)
    record = {
        "framework": args.framework,
        "framework_version": framework.backend.VERSION,
        "python_version": platform.python_version(),
        "seed": args.seed,
        "run": args.run,
        "device": framework.device,
        "device_name": framework.device_name,
        "epochs": train["epochs"],
        "batch_size": train["batch_size"],
        "n_train": len(data["y_train"]),
    }
    record["wall_seconds"] = time.perf_counter() - wall_start  # from the start of the step: imports included
    record |= result
    write_json(args.out, record)
    saved.remove()  # the run is complete: its record and model replace the checkpoint
    cli.log.info(
        "%s seed %d %s: test accuracy %.4f (%d / %d), %d parameters; wrote %s in %.0f s",
        args.framework,
        args.seed,
        args.run,
        record["test_accuracy"],
        record["n_correct"],
        record["n_test"],
        record["n_parameters"],
        args.out,
        record["wall_seconds"],
    )


if __name__ == "__main__":
    p = cli.parser(__doc__, one_run=True)
    p.add_argument("--run", required=True, help="the run id (lenet_compare.ablation.factors.runs_to_train)")
    p.add_argument("--model-dir", type=Path, required=True, help="folder for the run's framework-native model file")
    p.add_argument("--checkpoint-dir", type=Path, required=True, help="the run's per-epoch checkpoints")
    p.add_argument("--out", type=Path, required=True, help="the run's record (JSON)")
    p.add_argument("--live-dir", type=Path, help="the run's DVCLive folder, its epochs as they end (none: not logged)")
    cli.run(main, p.parse_args())
