# Shared by every rule: validated params, the run layout, each step's code and params.
from glob import glob
from pathlib import Path

from lenet_compare.ablation.factors import runs_to_train
from lenet_compare.core import article, frameworks, layout
from lenet_compare.core.config import check_engine_config
from lenet_compare.data.fashion_mnist import FILES as RAW_FILES

# Stops at parse time, naming the bad key, before any job starts.
check_engine_config(config)


# Run on the machine that runs Snakemake, never submitted as cluster jobs (docs/snakemake.md,
# "Where each step runs"): `download` needs the internet, which cluster nodes often lack; the
# others are short, so as Slurm jobs they would wait in the queue longer than they run (their
# wall times: reports/wall_times.md). Training, evaluation (it times inference) and the
# benchmark stay cluster jobs. Snakemake only warns about a name here that is no rule;
# tests/test_localrules.py fails on it.
localrules:
    download,
    prepare,
    init,
    ablation,
    report,


RAW = expand("data/raw/{name}", name=RAW_FILES)
PREPARED = layout.PREPARED


# ----------------------------------------------------------------------------------------------
# Each step's code: every lenet_compare module its script imports, transitively, and the
# templates it renders (docs/design.md, "What a step depends on"). Written once here; dvc.yaml
# holds the same lists for DVC, and tests/test_step_code.py checks both against what each
# script really imports. A job of one framework also depends on its own backend's folder
# (backend_code below; in dvc.yaml the folder itself).


def package(*modules):
    return [f"src/lenet_compare/{m}" for m in modules]


# Every script starts with core.cli, which loads the params (core.config) and what they need.
CLI = package(
    "core/article.py",
    "core/atomic.py",
    "core/cli.py",
    "core/config.py",
    "core/errors.py",
    "core/frameworks.py",
    "core/paths.py",
    "core/spec.py",
)
DATASET = package("data/dataset.py", "data/fashion_mnist.py", "data/idx.py")
# What a training job runs (train/job.py and what it imports), the backend aside.
TRAINING = package(
    "train/checkpoints.py",
    "train/devices.py",
    "train/divergence.py",
    "train/gpu_slots.py",
    "train/import_backend.py",
    "train/init_weights.py",
    "train/job.py",
    "train/live.py",
    "train/loop.py",
    "train/minibatches.py",
    "train/protocol.py",
    "train/scores.py",
    "train/trainer.py",
)


def backend_code(wildcards):
    """A job's own backend: every module in its framework's folder (core.frameworks), read from
    the folder, so that a backend of two modules (JAX's) needs no entry here."""
    return sorted(glob(f"{frameworks.get(wildcards.framework).backend_dir}/*.py"))


# Every backend's modules: the benchmark's child processes import each framework's.
ALL_BACKENDS = sorted(glob("src/lenet_compare/train/backends/*/*.py"))

CODE = {
    "download": CLI
    + package("data/download.py", "data/fashion_mnist.py", "data/idx.py"),
    "prepare": CLI + DATASET,
    "init": CLI + package("train/init_weights.py"),
    "train": CLI + DATASET + TRAINING + package("train/history.py"),
    "evaluate": CLI
    + DATASET
    + package(
        "evaluate/classification.py",
        "evaluate/inference_timing.py",
        "train/devices.py",
        "train/divergence.py",
        "train/import_backend.py",
        "train/minibatches.py",
        "train/protocol.py",
        "train/scores.py",
        "train/trainer.py",
    ),
    "ablation_train": CLI + DATASET + TRAINING + package("ablation/factors.py"),
    "ablation": CLI
    + package(
        "ablation/analysis.py",
        "ablation/factors.py",
        "ablation/figures.py",
        "ablation/inputs.py",
        "ablation/report.py",
        "ablation/sentences.py",
        "core/layout.py",
        "core/numbers.py",
        "core/trained_with.py",
        "report/common.py",
        "report/figures.py",
        "report/render.py",
        "report/stats.py",
        "report/templates/ablation.md.j2",
    ),
    "report": CLI
    + DATASET
    + package(
        "core/layout.py",
        "core/numbers.py",
        "core/trained_with.py",
        "evaluate/classification.py",
        "evaluate/inference_timing.py",
        "report/analysis.py",
        "report/common.py",
        "report/compare.py",
        "report/document.py",
        "report/drawing.py",
        "report/figures.py",
        "report/figures_accuracy.py",
        "report/figures_agreement.py",
        "report/figures_speed.py",
        "report/figures_training.py",
        "report/inputs.py",
        "report/metrics_file.py",
        "report/render.py",
        "report/sentences.py",
        "report/stats.py",
        "train/history.py",
        "train/protocol.py",
        "report/templates/report.md.j2",
        "report/templates/page.html.j2",
    ),
    # The benchmark's script and the processes it starts, one per framework and measurement.
    "benchmark": CLI
    + DATASET
    + TRAINING
    + package(
        "bench/figures.py",
        "bench/measure.py",
        "bench/pipeline.py",
        "bench/report.py",
        "bench/training.py",
        "core/numbers.py",
        "evaluate/inference_timing.py",
        "report/common.py",
        "report/figures.py",
        "report/render.py",
        "report/templates/benchmark.md.j2",
    )
    + ALL_BACKENDS,
}


# Each step's params.yaml keys (dotted), exactly those it reads, as the DVC stage of the same
# name lists them; a change of one reruns the step. tests/test_step_code.py compares them.
PARAMS = {
    "download": ["data.sources"],
    "prepare": [
        "data.val_size",
        "data.split_seed",
        "data.limit_train",
        "data.limit_test",
        "data.normalize",
    ],
    "init": ["model"],
    "train": ["model", "train"],
    "evaluate": ["train.threads"],
    "ablation_train": ["model", "train", "ablation.steps", "ablation.article"],
    "ablation": ["model", "train", "ablation"],
    "report": [
        "frameworks",
        "seeds",
        "model",
        "train",
        "data.val_size",
        "data.split_seed",
        "data.limit_train",
        "data.limit_test",
        "data.normalize",
        "report.equivalence_margin",
    ],
    "benchmark": ["model", "train"],
}


def params_of(step):
    """The step's params.yaml values, each named by its key with _ for . (data_val_size), as rule params."""
    values = {}
    for key in PARAMS[step]:
        node = config
        for part in key.split("."):
            node = node[part]
        values[key.replace(".", "_")] = node
    return values


# ----------------------------------------------------------------------------------------------
# Paths of the run layout (lenet_compare.core.layout), for inputs and outputs.


def main_runs(key, frameworks=None, seeds=None):
    """Every main run's ``key`` record (metrics, history, run): params.yaml's frameworks and seeds by default."""
    return expand(
        layout.RUN[key],
        framework=frameworks or config["frameworks"],
        seed=seeds or config["seeds"],
    )


def all_predictions():
    return expand(
        layout.PREDICTIONS, framework=config["frameworks"], seed=config["seeds"]
    )


def ablation_records(wildcards=None):
    """Every ablation run's record: the article's pair, ablation.seeds, each framework's runs."""
    return [
        layout.ablation_run_file(f, s, run).as_posix()
        for f in article.PAIR
        for s in config["ablation"]["seeds"]
        for run in runs_to_train(config, f)
    ]


# The steps take folders; they are derived from the rule's own files (so nothing is said twice,
# and Snakemake's linter sees that they are the files' prefixes).
def runs_dir(wildcards, input):
    """reports/runs, from the main runs' metrics.json files."""
    return Path(input.metrics[0]).parents[2].as_posix()


def ablation_runs_dir(wildcards, input):
    """reports/ablation/runs, from the ablation's per-run records."""
    return Path(input.runs[0]).parents[2].as_posix()


def predictions_dir(wildcards, input):
    """data/predictions, from the predictions files."""
    return Path(input.predictions[0]).parents[1].as_posix()


def raw_dir(wildcards, input, output):
    """The folder of the raw .gz files, as the download and prepare steps take it."""
    files = output.raw if "raw" in output.keys() else input.raw
    return Path(files[0]).parent.as_posix()


def figures_dir(wildcards, output):
    return Path(output.figures[0]).parent.as_posix()


def plots_dir(wildcards, output):
    return Path(output.confusion[0]).parent.as_posix()
