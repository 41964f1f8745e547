"""Step `benchmark`: training speed per variant and framework, memory, evaluation speed and pipeline overhead.

Each framework is measured in processes of its own (lenet_compare.bench.training): its variants
(ours, its plain loop and, for PyTorch, the article's DataLoader loop) take turns after warm-up.
Then the pipeline's no-op overhead and its wall time against the number of seeds are measured
in temporary copies of the repository (lenet_compare.bench.pipeline). Writes benchmark.json
(raw timings, medians, ratios, targets, the machine), then benchmark.md from that JSON and a
figure (lenet_compare.bench.report). Not part of the default target: it takes about 20 minutes
on 2 CPU cores (estimated).
"""

import shlex
import sys
import tempfile
from pathlib import Path

from lenet_compare.bench import measure, pipeline, report
from lenet_compare.core import cli
from lenet_compare.core.atomic import write_json
from lenet_compare.core.config import load_params
from lenet_compare.core.frameworks import DEFAULT_FRAMEWORKS, FRAMEWORKS

REPO = Path(__file__).resolve().parents[2]


def main(args) -> None:
    params = load_params(args.params)
    command = shlex.join(["python", *sys.argv])
    settings = {
        "images": args.images,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "batch_size": params["train"]["batch_size"],
        "frameworks": args.frameworks,
        "skip_pipeline": args.skip_pipeline,
    }
    with tempfile.TemporaryDirectory(prefix="lenet-benchmark-") as tmp:
        workdir = Path(tmp)
        measured = {
            framework: measure.measure_framework(
                framework,
                params=args.params,
                cache=args.cache,
                raw_dir=args.raw_dir,
                images=args.images,
                repeats=args.repeats,
                warmup=args.warmup,
                workdir=workdir,
            )
            for framework in args.frameworks
        }
        engines = None  # the engines' overhead, measured by lenet_compare.bench.pipeline
        if not args.skip_pipeline:
            engines = {
                "noop": pipeline.noop_overhead(REPO, workdir, params, args.raw_dir, args.noop_repeats),
                "seeds_scaling": pipeline.seeds_scaling(REPO, workdir, params, args.raw_dir, args.seed_counts),
            }
    result = report.summarize(measured, engines, settings, command)
    report.figure(result, args.figure)
    write_json(args.out_json, result)
    report.write_markdown(args.out_json, args.out_md, args.figure)
    for t in result["targets"]:
        cli.log.info("target %s: %s %s %s -> %s", t["id"], t["value"], t["comparison"], t["threshold"], t["met"])
    cli.log.info("wrote %s, %s and %s", args.out_json, args.out_md, args.figure)


def counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def frameworks(text: str) -> list[str]:
    chosen = [x.strip() for x in text.split(",") if x.strip()]
    unknown = sorted(set(chosen) - set(FRAMEWORKS))
    if unknown or not chosen:
        raise ValueError(f"unknown frameworks {unknown}")
    return chosen


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--cache", type=Path, required=True, help="the prepared .npz cache")
    p.add_argument("--raw-dir", type=Path, required=True, help="the raw .gz files (torchvision's dataset, pipeline)")
    p.add_argument("--out-json", type=Path, required=True, help="output: benchmark.json")
    p.add_argument("--out-md", type=Path, required=True, help="output: benchmark.md")
    p.add_argument("--figure", type=Path, required=True, help="output: the figure (PNG)")
    p.add_argument("--images", type=int, default=60000, help="training images per epoch (default 60000)")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per variant (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs per variant first (default 1)")
    p.add_argument(
        "--frameworks",
        type=frameworks,
        default=list(DEFAULT_FRAMEWORKS),
        help=f"comma-separated, of {', '.join(FRAMEWORKS)} (default: the study's, {','.join(DEFAULT_FRAMEWORKS)})",
    )
    p.add_argument("--skip-pipeline", action="store_true", help="skip the no-op overhead and seeds scaling runs")
    p.add_argument("--noop-repeats", type=int, default=3, help="runs of each no-op command (default 3)")
    p.add_argument("--seed-counts", type=counts, default=list(pipeline.SEED_COUNTS), help="default 1,2,4,8")
    cli.run(main, p.parse_args())
