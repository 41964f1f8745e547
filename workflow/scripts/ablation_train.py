"""Step `ablation_train`: train and test one framework's ablation runs for one seed.

The runs are the distinct training configurations of the ablation's steps for this framework
(lenet_compare.ablation.runs_to_train; the last step is the main runs and is not trained
here). One process trains them one after the other with the main protocol's code
(lenet_compare.training), saves each model, tests it on the test set and writes one JSON
(reports/ablation/runs/{framework}/seed{seed}.json, read by the `ablation` step).

Each run checkpoints every epoch under --checkpoint-dir/{run}; the checkpoints stay until the
whole job has succeeded, so a rerun after an interruption resumes where it stopped, finished
runs included.
"""

import platform
import statistics
import time
from pathlib import Path

from lenet_compare import ablation, cli, protocol, training
from lenet_compare.atomic import write_json
from lenet_compare.backends import FRAMEWORKS, import_backend
from lenet_compare.config import load_params
from lenet_compare.dataset import load_prepared
from lenet_compare.devices import require_gpu_if_asked, uses_gpu
from lenet_compare.gpu_slots import claim_gpu_for_this_process
from lenet_compare.lenet_spec import LeNetSpec


def train_and_test(backend, framework: str, seed: int, device: str, params: dict, run: str, data: dict, args) -> dict:
    model_params, train = ablation.training_config(params, framework, run)
    spec = LeNetSpec.from_params(model_params)
    # Shared initial weights are drawn as the init step draws them (protocol.initial_weights),
    # for this run's spec: under the article's padding the network has other shapes.
    init = protocol.initial_weights(spec, seed) if train["init"] == "shared" else None
    trainer = backend.Trainer(spec, train, seed, device, init)
    if trainer.n_parameters != spec.n_parameters:
        raise AssertionError(f"{framework} built {trainer.n_parameters} parameters, spec {spec.n_parameters}")
    trainer.set_training_data(data["x_train"], data["y_train"])
    steps = len(protocol.batch_slices(len(data["y_train"]), train["batch_size"]))
    key = training.fingerprint(framework, seed, model_params, train, data["x_train"], data["y_train"], backend)
    checkpoints = training.Checkpoints(args.checkpoint_dir / run, key, backend.CHECKPOINT_SUFFIX)
    rows = training.run_epochs(
        trainer, train, data["x_val"], data["y_val"], steps, checkpoints, label=f"{framework} seed {seed} {run}: "
    )
    trainer.save(args.models_dir / run)
    logits = trainer.predict(data["x_test"])
    n_correct = int((logits.argmax(axis=1) == data["y_test"]).sum())
    n_test = len(data["y_test"])
    result = {
        "settings": ablation.settings(params, framework, run),
        "n_parameters": trainer.n_parameters,
        "n_correct": n_correct,
        "n_test": n_test,
        "test_accuracy": n_correct / n_test,
        "test_loss": protocol.cross_entropy(logits, data["y_test"]),
        "train_seconds": sum(r["epoch_seconds"] for r in rows),
        "seconds_per_epoch": statistics.median(r["epoch_seconds"] for r in rows),
        "resumed_after_epoch": checkpoints.resumed_after,
        "framework_details": trainer.details(),
        "history": rows,
    }
    cli.log.info(
        "%s seed %d %s: test accuracy %.4f (%d / %d), %d parameters",
        framework,
        seed,
        run,
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
    require_gpu_if_asked(train["device"])
    if uses_gpu(train["device"]):
        gpu_claim = claim_gpu_for_this_process()  # noqa: F841 (held while this process lives)
    backend = import_backend(args.framework)
    device, device_name = backend.configure(
        train["device"], train["deterministic"], train["tf32"], args.seed, threads=train["threads"]
    )
    runs = ablation.runs_to_train(params, args.framework)
    cli.log.info("%s on %s (%s), seed %d: runs %s", args.framework, device, device_name, args.seed, ", ".join(runs))
    data, _ = load_prepared(args.data)
    results = {run: train_and_test(backend, args.framework, args.seed, device, params, run, data, args) for run in runs}
    record = {
        "framework": args.framework,
        "framework_version": backend.VERSION,
        "python_version": platform.python_version(),
        "seed": args.seed,
        "device": device,
        "device_name": device_name,
        "epochs": train["epochs"],
        "batch_size": train["batch_size"],
        "n_train": len(data["y_train"]),
        "steps": {step: ablation.run_id(params, args.framework, step) for step in ablation.step_names(params)},
        "wall_seconds": time.perf_counter() - wall_start,
        "runs": results,
    }
    write_json(args.out, record)
    for run in runs:
        training.Checkpoints(args.checkpoint_dir / run, "", "").remove()
    cli.log.info("wrote %s (%d runs) in %.0f s", args.out, len(runs), record["wall_seconds"])


if __name__ == "__main__":
    p = cli.parser(__doc__.split("\n", 1)[0])
    p.add_argument("--framework", choices=FRAMEWORKS, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--data", type=Path, required=True, help="the prepared .npz cache")
    p.add_argument("--models-dir", type=Path, required=True, help="one sub-folder per run for its model file")
    p.add_argument("--checkpoint-dir", type=Path, required=True, help="per-epoch checkpoints of each run")
    p.add_argument("--out", type=Path, required=True, help="the runs' results (JSON)")
    cli.run(main, p.parse_args())
