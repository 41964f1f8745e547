"""Write the facts that the docs quote from the code and from the committed artifacts.

A number in the docs is a fact written twice, and the copy drifts. So the docs hold a default
of params.yaml, a count the code derives from them (the ablation's runs, the demo's jobs, a
Slurm study's jobs), the registry's list of frameworks (lenet_compare.core.frameworks) or a
number measured in a committed artifact (reports/*.json) only inside a marked block that this
tool writes (the wall-time table has its own tool, tools/wall_times.py):

    <!-- facts:NAME: written by tools/docs_facts.py from SOURCES -->
    ...
    <!-- /facts:NAME -->

Everything else in the docs links the artifact or says it in words. Edit the wording of a block
here, never in the page; a new params.yaml key in a table's section stops this tool until it
has a meaning below. Run it after changing params.yaml, the ablation's factors, the demo's
subset, the registry or a committed artifact, and commit the pages; tests/test_docs_facts.py fails while a
block differs from what this tool would write now.

    python tools/docs_facts.py            # rewrite every block
    python tools/docs_facts.py --check    # exit 1 and name each block that differs
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from scipy import stats

from lenet_compare.ablation import factors
from lenet_compare.core import article, doc_blocks, layout
from lenet_compare.core.atomic import write_text
from lenet_compare.core.config import load_params
from lenet_compare.core.errors import PipelineError
from lenet_compare.core.frameworks import FRAMEWORK_NAMES, REGISTRY, Framework
from lenet_compare.report.common import headline

REPO = Path(__file__).resolve().parents[1]
PREFIX = "facts:"
MINUS = "\u2212"

# What each key of a params table means. The defaults come from params.yaml; a key there without
# a meaning here (or a meaning for a key that is gone) stops the tool.
MEANINGS = {
    "model": {
        "conv_channels": "output channels of each conv layer",
        "kernel_size": "side of the square kernels",
        "conv_padding": "zero padding of each conv layer",
        "pooling": "`avg` or `max`, 2x2 with stride 2 after each conv",
        "activation": "`relu`, `tanh` or `sigmoid`",
        "hidden": "dense layers before the output layer",
        "classes": "fixed by Fashion-MNIST",
    },
    "train": {
        "epochs": "passes over the training split",
        "batch_size": "images per step; the last batch of an epoch is partial",
        "lr": "Adam's learning rate, the same in every framework",
        "betas": "Adam's beta1 and beta2, the same in every framework",
        "eps": "Adam's epsilon, the same in every framework (Keras adds it before the bias correction: "
        "[design.md](design.md#the-articles-differences))",
        "init": "`shared`: every framework starts from the `init` step's weights for the seed; `native`: each "
        "framework's own initializers, seeded",
        "order": "`shared`: identical minibatches in every framework; `native`: each framework shuffles its own way; "
        "`fixed`: the data set's order every epoch, as the article's PyTorch `DataLoader(shuffle=False)`",
        "device": "`auto` uses a GPU when one is visible; `cpu`; `cuda` stops at once when no GPU is visible",
        "deterministic": "deterministic kernels in every framework (see [Determinism](#determinism))",
        "tf32": "TensorFloat-32 matmuls on Ampere and later GPUs; off, no framework lowers float32 matmuls to TF32",
        "fast": "each framework's fastest path that trains the same algorithm (see [Fast paths](#fast-paths)); "
        "`false`: the plain loop",
        "threads": "CPU threads per training and evaluation job, set inside each step for every framework; "
        "also the `threads:` of those Snakemake rules ([performance.md](performance.md#threads-per-job))",
        "xla": "Keras's `jit_compile` (XLA) for training; every other framework ignores it (PyTorch has no such "
        "switch, JAX always compiles with XLA). It needs "
        "`train.deterministic: false`; on a CPU it made Keras's epochs slower "
        "([performance.md](performance.md#why-the-fast-paths-are-faster))",
    },
}


class Sources(NamedTuple):
    """What the blocks are written from: the params, the committed artifacts, the demo's subset, the registry."""

    params: dict
    artifacts: dict[str, dict]  # reports/<name>.json by name
    accuracies: dict[str, list[float]]  # the committed main runs' test accuracies, per framework, by seed
    demo: dict  # tools/demo.py's DEMO
    demo_params: Callable[[dict], dict]
    metrics_path: Path  # reports/metrics.json, which the headline reads itself
    registry: tuple[Framework, ...] = REGISTRY  # lenet_compare.core.frameworks: one row per framework


class Block(NamedTuple):
    name: str
    page: str
    sources: str
    render: Callable[[Sources], str]


# Formatting ---------------------------------------------------------------------------------


def value(v) -> str:
    """A params.yaml value as YAML writes it: true, null, 1e-8, [2, 0]."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float) and v != 0 and abs(v) < 1e-3:
        return article.as_written(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return str(v)


def signed(x: float, digits: int = 3) -> str:
    text = f"{x:+.{digits}f}"
    return text.replace("-", MINUS)


def words(items: list) -> str:
    """a, b and c."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def code_list(items: list) -> str:
    return ", ".join(f"`{i}`" for i in items)


# The blocks ---------------------------------------------------------------------------------


def params_table(params: dict, section: str) -> str:
    keys, meanings = list(params[section]), MEANINGS[section]
    if missing := [k for k in keys if k not in meanings]:
        raise PipelineError(f"params.yaml's {section}.{missing[0]} has no meaning in tools/docs_facts.py's MEANINGS")
    if gone := [k for k in meanings if k not in keys]:
        raise PipelineError(f"tools/docs_facts.py's MEANINGS has {section}.{gone[0]}, which params.yaml lacks")
    rows = [f"| `{section}.{k}` | `{value(params[section][k])}` | {meanings[k]} |" for k in keys]
    return "\n".join(["| key | default | meaning |", "|---|---|---|", *rows])


def model_params(src: Sources) -> str:
    return params_table(src.params, "model")


def train_params(src: Sources) -> str:
    train = src.params["train"]
    theirs = {"epochs": article.EPOCHS, "batch_size": article.BATCH_SIZE, "lr": article.LR}
    shown = f"{article.EPOCHS} epochs, batch {article.BATCH_SIZE}, Adam with lr {article.as_written(article.LR)}"
    differ = [k for k, v in theirs.items() if train[k] != v]
    if differ:
        head = f"The article's hyperparameters were {shown}; the defaults differ in {code_list(differ)}."
    else:
        head = f"The defaults follow the article's hyperparameters: {shown}."
    return head + "\n\n" + params_table(src.params, "train")


def ablation_runs(src: Sources) -> str:
    params = src.params
    pair = [f for f in article.PAIR if f in params["frameworks"]]
    steps = factors.step_names(params)
    seeds = params["ablation"]["seeds"]
    runs = {f: factors.runs_to_train(params, f) for f in pair}

    def run_name(f: str, step: str) -> str:
        rid = factors.run_id(params, f, step)
        return "the main run" if rid == factors.MAIN else f"`{rid}`"

    rows = [f"| `{s}` | " + " | ".join(run_name(f, s) for f in pair) + " |" for s in steps]
    per_seed = sum(len(r) for r in runs.values())
    counts = words([f"{len(runs[f])} for {FRAMEWORK_NAMES[f]} ({code_list(runs[f])})" for f in pair])
    return "\n".join(
        [
            f"With the default params (`ablation.steps`: {code_list(params['ablation']['steps'])}), "
            "each step uses these runs:",
            "",
            "| step | " + " | ".join(FRAMEWORK_NAMES[f] for f in pair) + " |",
            "|---|" + "---|" * len(pair),
            *rows,
            "",
            f"So the ablation trains {per_seed} runs per seed, {counts}, one job each: "
            f"{per_seed * len(seeds)} jobs for the {len(seeds)} seeds of `ablation.seeds` ({words(seeds)}).",
        ]
    )


def equivalence_reach(src: Sources) -> str:
    summary = src.artifacts["metrics"]
    eq, n = summary["equivalence"], summary["n_seeds"]
    pt, tf = (src.accuracies[f] for f in article.PAIR)
    if not len(pt) == len(tf) == n:
        raise PipelineError(f"reports/metrics.json has {n} seeds, the committed runs {len(pt)} and {len(tf)}")
    diffs = [100 * (b - a) for a, b in zip(pt, tf, strict=True)]
    sd = statistics.stdev(diffs)
    t = float(stats.t.ppf(0.95, n - 1))
    half = t * sd / math.sqrt(n)
    if not math.isclose(half, (eq["ci90_high"] - eq["ci90_low"]) / 2, abs_tol=1e-9):
        raise PipelineError("reports/metrics.json's 90 % CI is not that of the committed runs: rerun the report step")
    margin = eq["margin"]
    return (
        f"In the committed run ({n} seeds) the per-seed differences have sd {sd:.3f} points, so the 90 % CI of "
        f"their mean is ±t(0.95, {n - 1}) · sd / sqrt({n}) = ±{t:.3f} · {sd:.3f} / {math.sqrt(n):.3f} = "
        f"±{half:.3f} points wide: {signed(eq['ci90_low'])} to {signed(eq['ci90_high'])} around a mean of "
        f"{signed(statistics.mean(diffs))} ([reports/metrics.json](../reports/metrics.json), `equivalence`). "
        f"A margin of ±{float(margin)!r} leaves room for a mean difference of up to {margin - half:.3f} points either "
        f"way; one of ±{half:.3f} or less could not be shown with {n} seeds even if the mean difference were zero."
    )


def baseline_headline(src: Sources) -> str:
    """The committed baseline's answer line, as the report step prints it (report.common.headline)."""
    return f"```\n{headline(src.metrics_path)}\n```"


def machine(src: Sources) -> str:
    a = src.artifacts
    names = ("benchmark", "threads", "xla", "wall_times")
    # (artifact, CPU, cores) as each records them; wall_times.json lists the CPUs of its jobs' records.
    seen = [
        ("benchmark", a["benchmark"]["machine"]["cpu_model"], a["benchmark"]["machine"]["cores_usable"]),
        ("threads", a["threads"]["machine"]["cpu"], a["threads"]["machine"]["cores"]),
        ("xla", a["xla"]["cpu"], a["xla"]["cores"]),
        *(("wall_times", cpu, None) for cpu in a["wall_times"]["devices"]),
    ]
    links = ", ".join(f"[{name}.json](../reports/{name}.json)" for name in names)
    cpus = {cpu for _, cpu, _ in seen}
    cores = {c for _, _, c in seen if c is not None}
    if len(cpus) == 1 and len(cores) == 1:
        where = f"{cores.pop()} cores of an {cpus.pop()}"
    else:
        where = "; ".join(f"{name}: {cpu}" + (f", {c} cores" if c else "") for name, cpu, c in seen)
    memory, gpus = a["benchmark"]["machine"]["ram_gib"], a["benchmark"]["machine"]["gpus"]
    gpu = "no GPU" if not gpus else f"GPUs: {', '.join(map(str, gpus))}"
    return (
        f"The committed measurements ({links}) ran on {where}, with {memory:g} GiB of memory and {gpu} "
        "(as recorded in reports/benchmark.json)."
    )


def demo_jobs(src: Sources) -> str:
    d = src.demo
    p = src.demo_params(src.params)
    frameworks, seeds, ablation_seeds = p["frameworks"], p["seeds"], p["ablation"]["seeds"]
    pair = [f for f in article.PAIR if f in frameworks]
    n_train = len(frameworks) * len(seeds)
    runs_per_seed = sum(len(factors.runs_to_train(p, f)) for f in pair)
    n_ablation = runs_per_seed * len(ablation_seeds)
    epochs = p["train"]["epochs"]
    return (
        f"The subset (`DEMO` in [tools/demo.py](../tools/demo.py)): {d['limit_train']:,} training images of which "
        f"{d['val_size']:,} for validation, {d['limit_test']:,} test images, {epochs} epoch{'s' * (epochs != 1)}, "
        f"seeds {words(seeds)}, the ablation on seeds {words(ablation_seeds)}; the model and protocol of "
        f"`params.yaml` otherwise. Besides download, prepare, {len(seeds)} init jobs, the two reports and `all`, "
        f"that is {n_train + n_train + n_ablation} jobs that each start a framework: {n_train} `train`, "
        f"{n_train} `evaluate` and {n_ablation} `ablation_train` ({runs_per_seed} runs per seed)."
    )


def framework_table(src: Sources) -> str:
    """The registry, one row per framework: what a page that lists the frameworks shows."""
    default = src.params["frameworks"]
    rows = [
        f"| `{f.key}` | {f.name} | `{f.backend_dir}/` | `{f.model_file}` | {'yes' if f.key in default else 'no'} |"
        for f in src.registry
    ]
    return "\n".join(
        [
            "| key | name | backend folder | saved model | in params.yaml's `frameworks` |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def readme_frameworks(src: Sources) -> str:
    """The README's one sentence on which frameworks there are and which the defaults train."""
    default = [f for f in src.registry if f.key in src.params["frameworks"]]
    others = [f for f in src.registry if f.key not in src.params["frameworks"]]
    known = words([f"{f.name} (`{f.key}`)" for f in src.registry])
    if not others:
        return f"The frameworks: {known}; `params.yaml`'s `frameworks` trains every one of them by default."
    return (
        f"The frameworks: {known}. `params.yaml`'s `frameworks` trains {words([f.name for f in default])} by "
        f"default; {words([f'`{f.key}`' for f in others])} only when listed there."
    )


# The Slurm page's example: a study of this many seeds on a cluster.
SLURM_SEEDS = 12


def slurm_jobs(src: Sources) -> str:
    """The Slurm page's example: how many jobs a study of SLURM_SEEDS seeds submits with today's params."""
    p = src.params
    frameworks = p["frameworks"]
    pair = [f for f in article.PAIR if f in frameworks]
    runs_per_seed = sum(len(factors.runs_to_train(p, f)) for f in pair)
    n_train = SLURM_SEEDS * len(frameworks)
    seeds = ", ".join(str(s) for s in range(SLURM_SEEDS))
    return "\n".join(
        [
            "```bash",
            f"# in params.yaml: seeds: [{seeds}]   (ablation.seeds: any subset of them)",
            "source .venv/bin/activate           # the jobs inherit this environment",
            "snakemake --profile profiles/slurm  # in tmux or screen: it must stay up until the last job ends",
            "```",
            "",
            f"With {SLURM_SEEDS} seeds and the {len(frameworks)} frameworks of params.yaml's `frameworks` "
            f"({code_list(frameworks)}) that is {n_train} training jobs of one GPU each and {n_train} evaluation "
            f"jobs, plus the ablation's training jobs, one GPU each: {runs_per_seed} per seed of `ablation.seeds` "
            "with the default `ablation.steps`, one per run of the article's two frameworks "
            "([protocol.md](protocol.md#the-articles-setup-explained)).",
        ]
    )


def benchmark_dag(src: Sources) -> str:
    """Which DAG the benchmark's pipeline measurements ran: its frameworks, read off its job counts.

    Each seed adds one `init` job and a `train` and an `evaluate` job per framework; the rest
    (download, prepare, the ablation's runs on its fixed seeds, the two reports, `all`) does not
    grow with the seeds. So the counts are fixed + (1 + 2 F) N for N seeds and F frameworks.
    """
    bench = src.artifacts["benchmark"]
    runs = sorted(bench["pipeline"]["seeds_scaling"]["runs"], key=lambda r: r["seeds"])
    if len(runs) < 2:
        raise PipelineError("reports/benchmark.json's seeds_scaling has fewer than two seed counts")
    slopes = {(b["jobs"] - a["jobs"]) / (b["seeds"] - a["seeds"]) for a, b in itertools.pairwise(runs)}
    per_seed = slopes.pop() if len(slopes) == 1 else None
    if per_seed is None or per_seed != int(per_seed) or per_seed < 3 or int(per_seed) % 2 != 1:
        raise PipelineError(
            "reports/benchmark.json's seeds_scaling job counts do not grow by 1 + 2 x frameworks per seed: "
            "tools/docs_facts.py's benchmark_dag needs a new reading"
        )
    per_seed = int(per_seed)
    n = (per_seed - 1) // 2
    fixed = runs[0]["jobs"] - per_seed * runs[0]["seeds"]
    now = src.params["frameworks"]
    counts = words([f"{r['jobs']} for {r['seeds']} seed{'s' * (r['seeds'] != 1)}" for r in runs])
    text = (
        f"The engines' overhead and the scaling with seeds in [reports/benchmark.md](../reports/benchmark.md) "
        f"(measured {bench['created'][:10]}) ran tiny copies of the pipeline whose DAG had the default "
        f"`frameworks` of that time. Its job counts ({counts}) are {fixed} jobs plus {per_seed} per seed, one "
        f"`init` and a `train` and an `evaluate` per framework: a DAG of {n} framework{'s' * (n != 1)}."
    )
    if n == len(now):
        return text + f" That is today's default too ({code_list(now)})."
    return (
        text + f" Today's default trains {len(now)} ({code_list(now)}), whose DAG adds {1 + 2 * len(now)} jobs per "
        "seed; those numbers have not been measured again for it (`make benchmark` would)."
    )


BLOCKS = (
    Block("model-params", "docs/protocol.md", "params.yaml", model_params),
    Block("train-params", "docs/protocol.md", "params.yaml and lenet_compare.core.article", train_params),
    Block("equivalence-reach", "docs/protocol.md", "reports/metrics.json and reports/runs", equivalence_reach),
    Block("ablation-runs", "docs/protocol.md", "params.yaml and lenet_compare.ablation.factors", ablation_runs),
    Block("headline", "docs/experiments.md", "reports/metrics.json", baseline_headline),
    Block("machine", "docs/performance.md", "reports/{benchmark,threads,xla,wall_times}.json", machine),
    Block("demo", "docs/snakemake.md", "tools/demo.py, params.yaml and lenet_compare.ablation.factors", demo_jobs),
    Block("frameworks", "docs/design.md", "lenet_compare.core.frameworks and params.yaml", framework_table),
    Block("readme-frameworks", "README.md", "lenet_compare.core.frameworks and params.yaml", readme_frameworks),
    Block("slurm-jobs", "docs/slurm-and-gpus.md", "params.yaml and lenet_compare.ablation.factors", slurm_jobs),
    Block("benchmark-dag", "docs/performance.md", "reports/benchmark.json and params.yaml", benchmark_dag),
)
# Pages that may hold blocks: a facts: block anywhere else, or one this tool does not know, fails the check.
PAGES = ("README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")))


# Reading the sources, writing and checking the pages -----------------------------------------


def load_sources(repo: Path = REPO) -> Sources:
    params = load_params(repo / "params.yaml")
    artifacts = {
        name: json.loads((repo / "reports" / f"{name}.json").read_text(encoding="utf-8"))
        for name in ("metrics", "benchmark", "threads", "xla", "wall_times")
    }
    accuracies = {
        f: [
            json.loads((repo / layout.run_file("metrics", f, s)).read_text(encoding="utf-8"))["test_accuracy"]
            for s in params["seeds"]
        ]
        for f in params["frameworks"]
    }
    spec = importlib.util.spec_from_file_location("demo_tool", repo / "tools" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return Sources(
        params,
        artifacts,
        accuracies,
        dict(demo.DEMO),
        lambda base: demo.demo_params(base, None),
        repo / "reports" / "metrics.json",
    )


def note(block: Block) -> str:
    """What the block's opening marker says after its name."""
    return f"written by tools/docs_facts.py from {block.sources}"


def rewrite(pages: dict[str, str], src: Sources) -> dict[str, str]:
    """``pages`` (path -> text) with every block rewritten; a misplaced or unknown block is an error."""
    known = {PREFIX + b.name: b for b in BLOCKS}
    out = dict(pages)
    for path, text in pages.items():
        for name in doc_blocks.names(text):
            if name.startswith(PREFIX) and (name not in known or known[name].page != path):
                raise PipelineError(f"{path}: the block {name!r} is not one tools/docs_facts.py writes there")
    for b in BLOCKS:
        if b.page not in out:
            raise PipelineError(f"{b.page} is missing: it holds the block {PREFIX + b.name!r}")
        try:
            out[b.page] = doc_blocks.replace(out[b.page], PREFIX + b.name, b.render(src), note(b))
        except PipelineError as e:
            raise PipelineError(f"{b.page}: {e}") from e
    return out


def differing(pages: dict[str, str], src: Sources) -> list[str]:
    """'page: block' for each block that differs from what this tool would write now."""
    new = rewrite(pages, src)
    return [
        f"{b.page}: {PREFIX}{b.name}"
        for b in BLOCKS
        if doc_blocks.block(pages[b.page], PREFIX + b.name) != doc_blocks.block(new[b.page], PREFIX + b.name)
    ]


def read_pages(root: Path) -> dict[str, str]:
    return {p: (root / p).read_text(encoding="utf-8") for p in PAGES if (root / p).is_file()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a block differs")
    p.add_argument("--docs-root", type=Path, default=REPO, help="the folder holding README.md and docs/")
    args = p.parse_args()
    try:
        src = load_sources(REPO)
        pages = read_pages(args.docs_root)
        if args.check:
            if stale := differing(pages, src):
                print("these blocks differ from what tools/docs_facts.py writes now:", file=sys.stderr)
                for line in stale:
                    print(f"  {line}", file=sys.stderr)
                print("run `python tools/docs_facts.py` and commit the pages", file=sys.stderr)
                return 1
            print(f"every block is up to date ({len(BLOCKS)} blocks)")
            return 0
        new = rewrite(pages, src)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path, text in new.items():
        if text != pages[path]:
            write_text(args.docs_root / path, text)
            print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
