"""The benchmark's training measurements, started from its own framework-free process.

Each measurement runs ``python -m lenet_compare.bench.training ...`` (that module's docstring
says what the modes measure) in a process of its own, one framework per process, since torch
and tensorflow in one process crash; this module builds those command lines and reads back their
JSON results.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from lenet_compare.bench.training import variants
from lenet_compare.core import cli
from lenet_compare.core.errors import PipelineError


def run_child(argv: list[str], what: str) -> dict:
    """Run ``python -m lenet_compare.bench.training ARGV`` and return its JSON result.

    Its log goes straight to this process's stderr, so a long benchmark shows progress.
    """
    out = Path(argv[argv.index("--out") + 1])
    cmd = [sys.executable, "-m", "lenet_compare.bench.training", *argv]
    start = time.perf_counter()
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise PipelineError(f"the {what} process failed with exit status {result.returncode}: {' '.join(cmd)}")
    cli.log.info("%s: done in %.1f s", what, time.perf_counter() - start)
    return json.loads(out.read_text(encoding="utf-8"))


def measure_framework(
    framework: str,
    *,
    params: Path,
    cache: Path,
    raw_dir: Path,
    images: int,
    repeats: int,
    warmup: int,
    workdir: Path,
) -> dict:
    """Timing, memory per variant and evaluation speed of one framework, each in its own process."""
    common = ["--framework", framework, "--params", str(params), "--cache", str(cache), "--raw-dir", str(raw_dir)]
    common += ["--images", str(images)]
    model_dir = workdir / f"{framework}-model"
    timing = run_child(
        [
            *common,
            "--mode",
            "timing",
            "--repeats",
            str(repeats),
            "--warmup",
            str(warmup),
            "--save-model",
            str(model_dir),
            "--out",
            str(workdir / f"{framework}-timing.json"),
        ],
        f"{framework} timing",
    )
    memory = {
        variant: run_child(
            [
                *common,
                "--mode",
                "memory",
                "--variant",
                variant,
                "--out",
                str(workdir / f"{framework}-memory-{variant}.json"),
            ],
            f"{framework} {variant} memory",
        )
        for variant in variants(framework)
    }
    evaluation = run_child(
        [*common, "--mode", "eval", "--save-model", str(model_dir), "--out", str(workdir / f"{framework}-eval.json")],
        f"{framework} evaluation",
    )
    return {"timing": timing, "memory": memory, "evaluation": evaluation}
