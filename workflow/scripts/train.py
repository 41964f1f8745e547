"""Step `train`: train one framework's LeNet-5 for one seed under the protocol of params.yaml.

Imports only the chosen framework (torch and tensorflow in one process crash here). Writes
the model (data/models/{framework}/seed{seed}/model.pt or model.keras), history.csv (one row
per epoch) and run.json (versions, device, timing, memory, the params used), each atomically,
run.json last.
"""

import csv
import io
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from lenet_compare import cli, protocol, training
from lenet_compare.atomic import write_json, write_text
from lenet_compare.backends import FRAMEWORKS, import_backend
from lenet_compare.config import load_params
from lenet_compare.dataset import load_prepared
from lenet_compare.devices import require_gpu_if_asked, uses_gpu
from lenet_compare.gpu_slots import claim_gpu_for_this_process
from lenet_compare.lenet_spec import LeNetSpec


def history_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=protocol.HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    # repr: the shortest text that reads back as the same float, so reruns compare exactly
    writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    return out.getvalue()


def main(args) -> None:
    wall_start = time.perf_counter()
    params = load_params(args.params)
    train, spec = params["train"], LeNetSpec.from_params(params["model"])
    # Fails before a framework is imported and before anything is written.
    require_gpu_if_asked(train["device"])
    if uses_gpu(train["device"]):
        # Concurrent GPU jobs each take a GPU of their own (CUDA_VISIBLE_DEVICES, set before
        # the framework is imported); the lock lasts as long as this process.
        gpu_claim = claim_gpu_for_this_process()  # noqa: F841
    backend = import_backend(args.framework)
    device, device_name = backend.configure(
        train["device"], train["deterministic"], train["tf32"], args.seed, threads=train["threads"]
    )
    cli.log.info(
        "%s %s on %s (%s), seed %d, init %s, order %s",
        args.framework,
        backend.VERSION,
        device,
        device_name,
        args.seed,
        train["init"],
        train["order"],
    )

    data, _ = load_prepared(args.data)
    init = protocol.load_initial_weights(args.init, spec, args.seed) if train["init"] == "shared" else None
    trainer = backend.Trainer(spec, train, args.seed, device, init)
    if trainer.n_parameters != spec.n_parameters:
        raise AssertionError(f"{args.framework} built {trainer.n_parameters} parameters, spec {spec.n_parameters}")
    trainer.set_training_data(data["x_train"], data["y_train"])
    n_train = len(data["y_train"])
    steps = len(protocol.batch_slices(n_train, train["batch_size"]))
    key = training.fingerprint(
        args.framework, args.seed, params["model"], train, data["x_train"], data["y_train"], backend
    )
    checkpoints = training.Checkpoints(args.checkpoint_dir, key, backend.CHECKPOINT_SUFFIX)
    rows = training.run_epochs(trainer, train, data["x_val"], data["y_val"], steps, checkpoints)

    model_path = trainer.save(args.model_dir)
    write_text(args.history, history_csv(rows))
    train_seconds = sum(r["epoch_seconds"] for r in rows)
    record = {
        "framework": args.framework,
        "framework_version": backend.VERSION,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "platform": platform.platform(),
        "cpu_count": len(os.sched_getaffinity(0)),  # cores this process may use
        "device": device,
        "device_name": device_name,
        "model_file": str(model_path),
        "n_parameters": trainer.n_parameters,
        "seed": args.seed,
        "epochs": train["epochs"],
        "batch_size": train["batch_size"],
        "steps_per_epoch": steps,
        "n_train": n_train,
        "n_val": len(data["y_val"]),
        "train_seconds": train_seconds,
        "val_seconds": sum(r["val_seconds"] for r in rows),
        "resumed_after_epoch": checkpoints.resumed_after,  # 0: one uninterrupted process
        "wall_seconds": time.perf_counter() - wall_start,  # from start of the step: imports included
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
    write_json(args.run_record, record)
    checkpoints.remove()  # the run is complete: its outputs replace the checkpoint
    cli.log.info(
        "wrote %s, %s and %s: %.1f s training, %.2f s per epoch, %.0f images/s",
        model_path,
        args.history,
        args.run_record,
        train_seconds,
        record["seconds_per_epoch"],
        record["images_per_second"],
    )


if __name__ == "__main__":
    p = cli.parser(__doc__.split("\n", 1)[0])
    p.add_argument("--framework", choices=FRAMEWORKS, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--data", type=Path, required=True, help="the prepared .npz cache")
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
    cli.run(main, p.parse_args())
