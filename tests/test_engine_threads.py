"""One thread count, whichever engine runs a step (train.threads).

Snakemake exports OMP_NUM_THREADS (the rule's threads) to its jobs; DVC exports nothing, so a
stage inherits the user's shell. The steps set their threads from params.yaml themselves, so
the tiny pipeline under `snakemake` and under `dvc repro` from a shell with another
OMP_NUM_THREADS trains and predicts bit for bit the same: same thread count, same kernels,
same machine (a comparison of this machine with itself, so no tolerance is involved).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import make_workspace, run, tiny_params

from lenet_compare.core import layout
from lenet_compare.core.frameworks import FRAMEWORKS

pytestmark = pytest.mark.slow

TIMING_COLUMNS = {"epoch_seconds", "val_seconds"}


def history_without_timings(path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory):
    """The same tiny workspace run by Snakemake and, in a copy, by DVC with OMP_NUM_THREADS=2."""
    root = tmp_path_factory.mktemp("threads")
    params = tiny_params(frameworks=list(FRAMEWORKS))  # every framework the project knows
    by_snakemake = make_workspace(root / "snakemake", params)
    targets = [layout.run_file("metrics", fw, 0).as_posix() for fw in FRAMEWORKS]
    run(["snakemake", *targets, "--cores", "2"], by_snakemake)
    by_dvc = make_workspace(root / "dvc", params)
    # train.threads is 1 in the tiny params (the default): the shell says otherwise.
    run("OMP_NUM_THREADS=2 dvc repro evaluate", by_dvc)
    return by_snakemake, by_dvc


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_both_engines_train_and_predict_the_same(both_engines, framework):
    by_snakemake, by_dvc = both_engines
    history_csv = layout.run_file("history", framework, 0)
    history = history_without_timings(by_snakemake / history_csv)
    assert len(history) == 2
    assert history == history_without_timings(by_dvc / history_csv)
    predictions = layout.run_files(framework, 0)["predictions"]
    with np.load(by_snakemake / predictions) as a, np.load(by_dvc / predictions) as b:
        assert np.array_equal(a["logits"], b["logits"]) and np.array_equal(a["y_pred"], b["y_pred"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_thread_count_is_recorded(both_engines, framework):
    for workspace in both_engines:
        record = json.loads((workspace / layout.run_file("run", framework, 0)).read_text())
        assert record["threads"] == 1
        assert record["framework_details"]["threads"] == {"intra_op": 1, "inter_op": 1}
        metrics = json.loads((workspace / layout.run_file("metrics", framework, 0)).read_text())
        assert metrics["threads"] == {"intra_op": 1, "inter_op": 1}
