"""`make demo` (tools/demo.py): the whole pipeline on a small subset, in a throwaway copy.

Run from a copy of the checkout (a git repository like the real one, with a data/raw as a real
run leaves it), so that "nothing in the checkout was written" can be checked file by file,
ignored files included, without other work in the real checkout getting in the way.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import DEBIAN_DIR, REPO, run

from lenet_compare.ablation.factors import runs_to_train
from lenet_compare.bench.pipeline import commit_all, copy_checkout
from lenet_compare.core import layout
from lenet_compare.core.article import PAIR
from lenet_compare.core.frameworks import DEFAULT_FRAMEWORKS
from lenet_compare.data.fashion_mnist import FILES as RAW_FILES
from lenet_compare.report.common import FIGURES, headline

pytestmark = pytest.mark.slow

SEEDS = (0, 1)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` but .git/, by relative path: its SHA-256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def job_stats(log: str) -> dict[str, int]:
    """Snakemake's "Job stats" table: rule -> jobs."""
    table = log.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table.split("\n\n", 1)[0], re.MULTILINE)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path, dict, dict, str]:
    if not DEBIAN_DIR.is_dir():
        pytest.skip(f"{DEBIAN_DIR} missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    tmp = tmp_path_factory.mktemp("demo")
    checkout = copy_checkout(REPO, tmp / "checkout")
    commit_all(checkout, "checkout", "tests")
    # data/ is ignored by git, as in the real checkout after `make run`: the demo's source.
    (checkout / "data" / "raw").mkdir(parents=True)
    for name in RAW_FILES:
        shutil.copy2(DEBIAN_DIR / name, checkout / "data" / "raw" / name)
    before = snapshot(checkout)
    dest = tmp / "demo"
    result = run(["python", "tools/demo.py", "--dest", str(dest)], checkout, timeout=900)
    return checkout, dest, before, snapshot(checkout), result.stdout


def test_it_ends_with_the_answer_and_the_path_of_its_report(demo):
    _, dest, _, _, stdout = demo
    *_, answer, last = stdout.strip().splitlines()
    assert last == str(dest / "reports" / "report.html")
    assert "</html>" in Path(last).read_text()
    # The run's one-line answer, as the report step wrote it into the demo's log.
    assert answer == headline(dest / "reports" / "metrics.json", "reports/report.html")
    assert answer in (dest / "logs" / "demo.log").read_text()


def test_it_ran_the_whole_pipeline_on_the_subset(demo):
    checkout, dest, _, _, _ = demo
    params = yaml.safe_load((dest / "params.yaml").read_text())
    assert params["seeds"] == list(SEEDS) and params["ablation"]["seeds"] == [0]
    assert params["data"]["sources"] == [str(checkout / "data" / "raw")]

    frameworks = params["frameworks"]
    assert frameworks == list(DEFAULT_FRAMEWORKS)  # the study's frameworks, jax too
    n = len(frameworks) * len(SEEDS)
    ablation_runs = sum(len(runs_to_train(params, f)) for f in PAIR)
    stats = job_stats((dest / "logs" / "demo.log").read_text())
    expected = {
        "download": 1,
        "prepare": 1,
        "init": len(SEEDS),
        "train": n,
        "evaluate": n,
        "ablation_train": ablation_runs,  # one job per trained run, on one seed
        "ablation": 1,
        "report": 1,
        "all": 1,
    }
    assert stats == {**expected, "total": sum(expected.values())}
    assert json.loads((dest / "reports" / "metrics.json").read_text())["n_seeds"] == len(SEEDS)
    for f in frameworks:
        for seed in SEEDS:
            with np.load(dest / layout.run_files(f, seed)["predictions"]) as predictions:
                assert predictions["y_pred"].size == params["data"]["limit_test"]
    for name in ["report.md", "ablation.md", "ablation.json", *(f"figures/{f}.png" for f in FIGURES)]:
        assert (dest / "reports" / name).stat().st_size > 0, name
    with zipfile.ZipFile(dest / "reports" / "snakemake-report.zip") as archive:
        assert "snakemake-report/report.html" in archive.namelist()


def test_the_checkout_is_left_as_it_was(demo):
    checkout, _, before, after, _ = demo
    # Not one file written, added or removed: not reports/, not data/raw, no .snakemake/ or logs/.
    assert after == before
    assert not (checkout / ".snakemake").exists() and not (checkout / "logs").exists()
