"""Step `evaluate`: predict the test set with one trained model; write predictions and metrics.json.

Imports only the chosen framework and runs on the CPU (10,000 images take about a second), so it
never needs a GPU. The model spec comes from the run record the train step wrote; test loss,
accuracy, per-class precision/recall/F1 and the confusion matrix are computed from the logits
with numpy, the same code for every framework. Inference speed is measured by
lenet_compare.evaluate.inference_timing: the framework's naive call beside its idiomatic ones
(compiled, inference mode) at batch 1 and batch 1,000, timed after the test-set predictions.
"""

import json
import time
from pathlib import Path

import numpy as np

from lenet_compare.core import cli
from lenet_compare.core.atomic import atomic_write, write_json
from lenet_compare.core.config import load_params
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.data.dataset import load_prepared
from lenet_compare.data.fashion_mnist import CLASS_NAMES
from lenet_compare.evaluate import inference_timing
from lenet_compare.evaluate.classification import classification_metrics
from lenet_compare.train import scores
from lenet_compare.train.import_backend import import_backend
from lenet_compare.train.trainer import load_for_inference

RECORD_KEYS = ("framework", "seed", "params", "train_seconds")  # what this step reads of run.json


def read_run_record(path: Path, framework: str, seed: int) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PipelineError(f"cannot read {path}: {e.strerror}; run the train step first") from e
    except json.JSONDecodeError as e:
        raise PipelineError(f"{path} is not valid JSON ({e}); rerun the train step") from e
    if (record.get("framework"), record.get("seed")) != (framework, seed):
        raise PipelineError(
            f"{path} records framework {record.get('framework')!r}, seed {record.get('seed')}, "
            f"not {framework!r}, seed {seed}"
        )
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing or "model" not in record.get("params", {}):
        raise PipelineError(f"{path} lacks {', '.join(missing) or 'params.model'}; rerun the train step")
    return record


def main(args) -> None:
    wall_start = time.perf_counter()
    record = read_run_record(args.run_record, args.framework, args.seed)
    spec = LeNetSpec.from_params(record["params"]["model"])
    data, _ = load_prepared(args.data)
    x_test, y_test = data["x_test"], data["y_test"]
    # The same thread count as training (train.threads), whichever engine started this step.
    threads = load_params(args.params)["train"]["threads"]
    backend = import_backend(args.framework)
    model = load_for_inference(backend, args.model_dir, spec, threads=threads)
    logits = backend.predict(model, x_test).astype(np.float32)
    y_pred = logits.argmax(axis=1).astype(np.int64)
    per_class = classification_metrics(y_test, y_pred, CLASS_NAMES)
    n_correct = per_class["n_correct"]
    metrics = {
        "framework": args.framework,
        "seed": args.seed,
        "n_test": len(y_test),
        "n_correct": n_correct,
        "test_accuracy": n_correct / len(y_test),  # a fraction, never rounded
        "test_loss": scores.cross_entropy(logits, y_test),
        "train_seconds": record["train_seconds"],
        "threads": backend.thread_counts(),
        **per_class,
    }
    metrics.update(inference_timing.measure(args.framework, backend.inference_paths(model), x_test, spec))
    # Like train's run.json: from the start of the step (the framework's import included) to the
    # last measurement; reports/wall_times.json reads it.
    metrics["wall_seconds"] = time.perf_counter() - wall_start
    # Both outputs at the end, so a step stopped midway leaves no new file beside an old one.
    with atomic_write(args.predictions) as f:
        np.savez(f, y_pred=y_pred, logits=logits)
    write_json(args.metrics, metrics)
    cli.log.info(
        "%s seed %d: test accuracy %.4f (%d/%d), test loss %.4f; fastest idiomatic inference %.0f images/s "
        "at batch 1,000, %.3f ms per single image; wrote %s and %s",
        args.framework,
        args.seed,
        metrics["test_accuracy"],
        n_correct,
        len(y_test),
        metrics["test_loss"],
        metrics["inference_images_per_second"],
        metrics["latency_ms_single_image"],
        args.predictions,
        args.metrics,
    )


if __name__ == "__main__":
    p = cli.parser(__doc__, one_run=True)
    p.add_argument("--model-dir", type=Path, required=True, help="folder holding the trained model")
    p.add_argument("--run-record", type=Path, required=True, help="run.json written by the train step")
    p.add_argument("--predictions", type=Path, required=True, help="output: y_pred and logits (.npz)")
    p.add_argument("--metrics", type=Path, required=True, help="output: metrics.json")
    cli.run(main, p.parse_args())
