"""Which train.xla to default to: Keras training epochs with and without XLA on this machine.

Trains the Keras trainer of the train step (shared init, shared order, the fast path, one
thread) on the full training split of the prepared cache, in a fresh process per variant,
alternating the variants for --rounds rounds, and writes each epoch's seconds and the medians
to reports/xla.json. The first epoch of each process includes tracing and compiling and is
kept apart. XLA needs train.deterministic: false (Keras turns it off under TensorFlow's op
determinism), so the deterministic default is measured too, to show what each switch costs.
Keep the machine otherwise idle while it runs (about 5 minutes on 2 cores).

    python tools/measure_xla.py [--cache data/prepared/fashion_mnist.npz] [--rounds 2] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from lenet_compare.core.atomic import write_json
from lenet_compare.train.devices import cpu_name

REPO = Path(__file__).resolve().parents[1]
# (label, train.deterministic, train.xla)
VARIANTS = (
    ("deterministic, no XLA (the default)", True, False),
    ("non-deterministic, no XLA", False, False),
    ("non-deterministic, XLA", False, True),
)

# One process per variant: TensorFlow's determinism and threads are set once per process.
CHILD = """
import json, sys, time
from lenet_compare.core.config import load_params
from lenet_compare.core.spec import LeNetSpec
from lenet_compare.data.dataset import load_prepared
from lenet_compare.train import init_weights
from lenet_compare.train.backends.tensorflow import backend as b

cache, deterministic, xla, epochs = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", int(sys.argv[4])
params = load_params()
train = dict(params["train"], deterministic=deterministic, xla=xla, threads=1)
spec = LeNetSpec.from_params(params["model"])
b.configure("cpu", deterministic, train["tf32"], 0, threads=1)
data, _ = load_prepared(cache)
trainer = b.Trainer(spec, train, 0, "cpu", init_weights.initial_weights(spec, 0))
trainer.set_training_data(data["x_train"], data["y_train"])
seconds = [trainer.train_epoch(e)[2] for e in range(epochs)]
print(json.dumps({"jit_compile": bool(trainer.model.jit_compile), "seconds": seconds}))
"""


def measure(cache: Path, deterministic: bool, xla: bool, epochs: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(cache), str(int(deterministic)), str(int(xla)), str(epochs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--cache", type=Path, default=REPO / "data" / "prepared" / "fashion_mnist.npz")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "reports" / "xla.json")
    args = p.parse_args()
    runs = {label: [] for label, _, _ in VARIANTS}
    for r in range(args.rounds):
        for label, deterministic, xla in VARIANTS:
            result = measure(args.cache, deterministic, xla, args.epochs)
            if result["jit_compile"] != xla:
                raise SystemExit(f"{label}: Keras used jit_compile={result['jit_compile']}")
            runs[label].append(result["seconds"])
            print(f"round {r + 1}, {label}: {', '.join(f'{s:.2f}' for s in result['seconds'])} s", flush=True)
    variants = []
    for label, deterministic, xla in VARIANTS:
        later = [s for seconds in runs[label] for s in seconds[1:]]
        variants.append(
            {
                "label": label,
                "deterministic": deterministic,
                "xla": xla,
                "first_epoch_seconds": [seconds[0] for seconds in runs[label]],
                "epoch_seconds": later,
                "median_epoch_seconds": statistics.median(later),
            }
        )
    base = variants[0]["median_epoch_seconds"]
    for v in variants:
        v["ratio_to_default"] = v["median_epoch_seconds"] / base
    write_json(
        args.out,
        {
            "what": "Keras training seconds per epoch (55,000 images, batch 32, fast path, 1 thread), "
            "by train.deterministic and train.xla; first epochs (tracing, compiling) kept apart",
            "command": "python tools/measure_xla.py",
            "cpu": cpu_name(),
            "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
            "rounds": args.rounds,
            "variants": variants,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
