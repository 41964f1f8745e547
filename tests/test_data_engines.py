"""The data steps under both engines, on the real files, in a temporary copy of the repo."""

import hashlib
import shutil

import numpy as np
import pytest
from conftest import DEBIAN_DIR, run, tiny_params, write_params

from lenet_compare.data.dataset import load_prepared

pytestmark = pytest.mark.slow

CACHE = "data/prepared/fashion_mnist.npz"


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_both_engines_build_the_same_cache_and_then_do_nothing(workspace):
    run(["snakemake", "--cores", "2", CACHE], workspace)
    snakemake_cache = digest(workspace / CACHE)
    _arrays, meta = load_prepared(workspace / CACHE)
    assert meta["sizes"] == {"y_train": 4000, "y_val": 1000, "y_test": 2000}
    again = run(["snakemake", "--cores", "2", CACHE], workspace)
    assert "Nothing to be done" in again.stdout + again.stderr

    shutil.rmtree(workspace / "data")
    run(["dvc", "repro", "prepare"], workspace)
    assert digest(workspace / CACHE) == snakemake_cache  # same command line, same bytes
    status = run(["dvc", "status", "prepare"], workspace)
    assert "up to date" in status.stdout
    again = run(["dvc", "repro", "prepare"], workspace)
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout


def corrupt_source(workspace, tmp_path):
    """The only source: Debian's files with the training labels truncated."""
    bad = tmp_path / "bad-source"
    shutil.copytree(DEBIAN_DIR, bad)
    labels = bad / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:5000])
    write_params(workspace / "params.yaml", tiny_params(**{"data.sources": [str(bad)]}))
    run(["git", "commit", "-qam", "corrupt source"], workspace)
    return labels


def assert_nothing_left(workspace):
    for folder in ("data/raw", "data/prepared"):
        left = [p.name for p in (workspace / folder).glob("*")] if (workspace / folder).exists() else []
        assert left == [], f"{folder} kept {left}"


@pytest.mark.parametrize("engine", ["snakemake", "dvc"])
def test_corrupt_source_fails_clearly_and_leaves_nothing(workspace, tmp_path, engine):
    labels = corrupt_source(workspace, tmp_path)
    cmd = ["snakemake", "--cores", "2", CACHE] if engine == "snakemake" else ["dvc", "repro", "prepare"]
    result = run(cmd, workspace, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{labels}: not a valid gzip file" in output
    assert "apt-get install dataset-fashion-mnist" in output
    assert_nothing_left(workspace)


def test_invalid_params_stop_snakemake_at_parse_time(workspace):
    write_params(workspace / "params.yaml", tiny_params(**{"train.epochs": 0}))
    result = run(["snakemake", "--cores", "2", "-n"], workspace, check=False)
    assert result.returncode != 0
    assert "train.epochs = 0 is not allowed" in result.stdout + result.stderr
    assert not (workspace / "data").exists()


def test_invalid_params_stop_the_dvc_stage(workspace):
    write_params(workspace / "params.yaml", tiny_params(**{"data.normalize": "minmax"}))
    result = run(["dvc", "repro", "download"], workspace, check=False)
    assert result.returncode != 0
    assert "data.normalize = 'minmax' is not allowed" in result.stdout + result.stderr
    assert not (workspace / "data" / "raw").exists() or not any((workspace / "data" / "raw").iterdir())


def test_prepared_test_set_is_the_real_test_set_in_order(workspace):
    run(["snakemake", "--cores", "2", CACHE], workspace)
    arrays, _ = load_prepared(workspace / CACHE)
    import gzip

    with gzip.open(DEBIAN_DIR / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 28, 28)[:2000]
    np.testing.assert_array_equal(arrays["x_test"], images / np.float32(255))
