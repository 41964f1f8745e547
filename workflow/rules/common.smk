# Shared by every rule: validated params and the file names of DESIGN.md.
from pathlib import Path

from lenet_compare.core.config import check_engine_config
from lenet_compare.data.fashion_mnist import FILES as RAW_FILES

# Stops at parse time, naming the bad key, before any job starts.
check_engine_config(config)


# Run on the machine that runs Snakemake, never submitted as cluster jobs (docs/snakemake.md,
# "Where each step runs"). `download` needs the internet, which cluster nodes often lack. The
# others are short, measured at full size on 2 CPU cores: `prepare` 5 s and 0.3 GB, `init` 2 s
# and 0.04 GB (numpy only), `report` 18 s and 0.45 GB, `ablation` (its report) 8 s and 0.2 GB;
# as Slurm jobs they would wait in the queue longer than they run. Training, evaluation (it
# times inference) and the benchmark stay cluster jobs. Snakemake only warns about a name here
# that is no rule; tests/test_localrules.py fails on it.
localrules:
    download,
    prepare,
    init,
    ablation,
    report,


RAW = expand("data/raw/{name}", name=RAW_FILES)
PREPARED = "data/prepared/fashion_mnist.npz"


def raw_dir(wildcards, input, output):
    """The folder of the raw .gz files, as the download and prepare steps take it."""
    files = output.raw if "raw" in output.keys() else input.raw
    return Path(files[0]).parent.as_posix()


# The report step takes folders; they are derived from the rule's own files, so nothing is said twice.
def runs_dir(wildcards, input):
    """reports/runs, from reports/runs/{framework}/seed{seed}/metrics.json."""
    return Path(input.metrics[0]).parents[2].as_posix()


def ablation_runs_dir(wildcards, input):
    """reports/ablation/runs, from reports/ablation/runs/{framework}/seed{seed}.json."""
    return Path(input.runs[0]).parents[1].as_posix()


def predictions_dir(wildcards, input):
    """data/predictions, from data/predictions/{framework}/seed{seed}.npz."""
    return Path(input.predictions[0]).parents[1].as_posix()


def figures_dir(wildcards, output):
    return Path(output.figures[0]).parent.as_posix()


def plots_dir(wildcards, output):
    return Path(output.confusion[0]).parent.as_posix()
