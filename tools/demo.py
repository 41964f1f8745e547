"""`make demo`: the whole pipeline on a small subset, in a throwaway copy, in a few minutes.

Every step of the default target runs for real (download, prepare, init, every framework the
project knows on 2 seeds, their evaluation, the ablation, the report), on few images for few
epochs, so the numbers mean little but every file and figure of the full run is there to look
at. It then builds Snakemake's own report of the run (workflow/report/), and ends with the run's
one-line answer (the report step's headline) and then the path of report.html, the last line
on stdout.

The run happens in a new folder (default: a fresh one under $TMPDIR, kept for you to look at):
a copy of this checkout's tracked and untracked, not ignored files, without the committed
reports/ and dvc.lock (lenet_compare.bench.pipeline.make_workspace). Nothing in the checkout is
written: not reports/, not data/, not .snakemake/. The download step copies the four .gz files
(checksums verified) from the checkout's data/raw when a run put them there, else from Debian's
offline copy (/usr/share/datasets/fashion-mnist, `make data-source`); only without either does it
download them, from the mirrors of params.yaml.

    python tools/demo.py [--dest DIR] [--cores 2]
"""

from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lenet_compare.bench.pipeline import environment, make_workspace
from lenet_compare.core.frameworks import DEFAULT_FRAMEWORKS
from lenet_compare.data.fashion_mnist import FILES as RAW_FILES
from lenet_compare.report.common import headline, print_line

REPO = Path(__file__).resolve().parents[1]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# The subset: small enough that the whole DAG, every training job of the ablation included, takes
# a few minutes on 2 CPU cores (docs/snakemake.md, "make demo", says what it runs). The report's
# statistics need two seeds or more.
DEMO = {
    "limit_train": 3000,  # of which val_size for validation
    "val_size": 500,
    "limit_test": 1000,
    "epochs": 1,
    "seeds": [0, 1],
    "ablation_seeds": [0],  # its 6 runs are one job each: one seed keeps the demo short
}
SNAKEMAKE_REPORT = "reports/snakemake-report.zip"
# Snakemake's progress lines, echoed while the rest goes to the log file.
PROGRESS = re.compile(r"^\d+ of \d+ steps \(\d+%\) done$")


def local_source(repo: Path = REPO) -> Path | None:
    """A folder holding the four .gz files: the checkout's data/raw, else Debian's; None if neither."""
    for folder in (repo / "data" / "raw", DEBIAN_DIR):
        if all((folder / name).is_file() for name in RAW_FILES):
            return folder.resolve()
    return None


def demo_params(base: dict, source: Path | None, demo: dict = DEMO) -> dict:
    """``base`` (the checkout's params.yaml) with the demo's subset and seeds, reading ``source`` if given."""
    params = copy.deepcopy(base)
    # The download step verifies every file's checksum, whichever source it came from.
    sources = [str(source)] if source is not None else params["data"]["sources"]
    params["data"].update(
        sources=sources, limit_train=demo["limit_train"], val_size=demo["val_size"], limit_test=demo["limit_test"]
    )
    params["train"]["epochs"] = demo["epochs"]
    params["frameworks"] = list(DEFAULT_FRAMEWORKS)  # the study's frameworks (the reference backend only checks)
    params["seeds"] = list(demo["seeds"])
    params["ablation"]["seeds"] = list(demo["ablation_seeds"])
    return params


def snakemake(args: list[str], cwd: Path, log_file: Path) -> None:
    """Run Snakemake in ``cwd``, its output to ``log_file``; echo its progress; exit on failure."""
    with log_file.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            ["snakemake", *args],
            cwd=cwd,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for line in proc.stdout:
            log.write(line)
            if PROGRESS.match(line.strip()):
                print(f"  {line.strip()}", flush=True)
        returncode = proc.wait()
    if returncode != 0:
        tail = "".join(log_file.read_text(encoding="utf-8").splitlines(keepends=True)[-40:])
        sys.exit(f"{tail}\nerror: `snakemake {' '.join(args)}` failed (exit {returncode}); its log: {log_file}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n", 1)[0])
    p.add_argument("--dest", type=Path, help="a new or empty folder (default: a new one in $TMPDIR)")
    p.add_argument("--cores", type=int, default=2, help="Snakemake's --cores (default: 2)")
    args = p.parse_args(argv)
    if args.dest is not None and args.dest.exists() and any(args.dest.iterdir()):
        p.error(f"--dest {args.dest} is not empty; give a new folder")
    dest = (args.dest or Path(tempfile.mkdtemp(prefix="lenet-demo-"))).resolve()

    start = time.perf_counter()
    source = local_source()
    base = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params = demo_params(base, source)
    print(f"demo: copying the checkout to {dest}", flush=True)
    make_workspace(REPO, dest, params)
    log = dest / "logs" / "demo.log"
    log.parent.mkdir(exist_ok=True)
    print(
        f"demo: the whole pipeline on {DEMO['limit_train']:,} training images ({DEMO['val_size']:,} of them for "
        f"validation), {DEMO['limit_test']:,} test images, {DEMO['epochs']} epoch(s), seeds {DEMO['seeds']}, "
        f"the ablation on seeds {DEMO['ablation_seeds']}",
        flush=True,
    )
    print(f"demo: data from {source or 'the internet (no local copy: `make data-source`)'}; log: {log}", flush=True)
    # --resources gpu=1: on a machine with a GPU, one training job on it at a time, as `make run`.
    snakemake(["--cores", str(args.cores), "--resources", "gpu=1"], dest, log)
    snakemake(["--report", SNAKEMAKE_REPORT], dest, dest / "logs" / "demo-report.log")
    print(f"demo: Snakemake's report of the run (unzip, open report.html): {dest / SNAKEMAKE_REPORT}", flush=True)
    print(f"demo: done in {time.perf_counter() - start:.0f} s; remove {dest} when done with it", flush=True)
    # The answer, as the report step printed it into the log (Snakemake's output went there).
    print_line(headline(dest / "reports" / "metrics.json", "reports/report.html"))
    print(dest / "reports" / "report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
