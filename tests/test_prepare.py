"""The prepare step: validated parsing, one normalization, a deterministic stratified split."""

import gzip

import numpy as np
import pytest
from conftest import DEBIAN_DIR, tiny_params
from idx_files import fake_dataset, idx_bytes, write_gz_dir

from lenet_compare.core.errors import PipelineError
from lenet_compare.data.dataset import load_prepared, prepare, save_prepared, stratified_split


def data_params(**overrides):
    params = tiny_params()["data"] | {"limit_train": None, "limit_test": None, "val_size": 50}
    return params | overrides


def raw(payloads, name):
    array = np.frombuffer(payloads[name], dtype=np.uint8)
    return array[16:].reshape(-1, 28, 28) if "images" in name else array[8:]


def test_arrays_equal_the_raw_files(tmp_path):
    payloads = fake_dataset(n_train=200, n_test=50)
    src = write_gz_dir(tmp_path / "raw", payloads)
    arrays, meta = prepare(src, data_params())
    train_images, train_labels = raw(payloads, "train-images-idx3-ubyte"), raw(payloads, "train-labels-idx1-ubyte")
    # x_test: the test images in their original order, scaled by 1/255.
    np.testing.assert_array_equal(arrays["x_test"], raw(payloads, "t10k-images-idx3-ubyte") / np.float32(255))
    np.testing.assert_array_equal(arrays["y_test"], raw(payloads, "t10k-labels-idx1-ubyte"))
    # Every train/val image comes, with its label, from the training set; together they are all of it.
    for split in ("train", "val"):
        index = arrays[f"{split}_index"]
        np.testing.assert_array_equal(arrays[f"x_{split}"] * 255, train_images[index].astype(np.float32))
        np.testing.assert_array_equal(arrays[f"y_{split}"], train_labels[index])
    assert sorted(np.concatenate([arrays["train_index"], arrays["val_index"]]).tolist()) == list(range(200))
    for name in ("x_train", "x_val", "x_test"):
        assert arrays[name].dtype == np.float32 and arrays[name].shape[1:] == (28, 28)
    for name in ("y_train", "y_val", "y_test"):
        assert arrays[name].dtype == np.int64
    assert meta["sizes"] == {"y_train": 150, "y_val": 50, "y_test": 50}


def test_split_is_stratified_exact_and_deterministic():
    labels = np.repeat(np.arange(10), [100, 90, 80, 70, 60, 50, 40, 30, 20, 10])  # 550 images
    train, val = stratified_split(labels, 55, seed=3)
    assert len(val) == 55 and len(train) == 495
    np.testing.assert_array_equal(np.bincount(labels[val], minlength=10), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    again_train, again_val = stratified_split(labels, 55, seed=3)
    np.testing.assert_array_equal(val, again_val)
    np.testing.assert_array_equal(train, again_train)
    assert not np.array_equal(val, stratified_split(labels, 55, seed=4)[1])


def test_split_rounds_to_the_exact_size():
    labels = np.repeat(np.arange(10), 7)  # 70 images, 7 per class: quotas 2.3 each
    _, val = stratified_split(labels, 23, seed=0)
    counts = np.bincount(labels[val], minlength=10)
    assert counts.sum() == 23 and set(counts) == {2, 3}


def test_limits_take_the_first_images(tmp_path):
    payloads = fake_dataset(n_train=200, n_test=50)
    src = write_gz_dir(tmp_path / "raw", payloads)
    arrays, _ = prepare(src, data_params(limit_train=100, limit_test=20, val_size=10))
    assert len(arrays["y_test"]) == 20
    np.testing.assert_array_equal(arrays["y_test"], raw(payloads, "t10k-labels-idx1-ubyte")[:20])
    assert arrays["train_index"].max() < 100 and arrays["val_index"].max() < 100
    assert len(arrays["y_train"]) + len(arrays["y_val"]) == 100


def test_standardize_uses_train_split_constants(tmp_path):
    src = write_gz_dir(tmp_path / "raw", fake_dataset())
    unit, _ = prepare(src, data_params())
    std_arrays, meta = prepare(src, data_params(normalize="standardize"))
    mean, std = meta["normalization"]["mean"], meta["normalization"]["std"]
    assert mean == pytest.approx(unit["x_train"].mean(dtype=np.float64))
    assert std == pytest.approx(unit["x_train"].std(dtype=np.float64))
    # Tolerances from float32 rounding, U = 2^-24 = 6e-8 (nothing here is trained). Each value
    # z = (x - mean) / std, |z| <= 1 / std < 4 here, is within 4 U |z| < 1e-6 of the exact one
    # (the subtraction, the division, the float32 mean and std). numpy sums the 117,600 float32
    # values pairwise (blocks of 128 added 8 wide, then a binary tree): a chain of at most about
    # 16 + 10 additions, so the mean (and std) err by at most ~30 U max|z| < 1e-5.
    assert std_arrays["x_train"].mean() == pytest.approx(0, abs=1e-5)
    assert std_arrays["x_train"].std() == pytest.approx(1, abs=1e-4)
    np.testing.assert_allclose(std_arrays["x_test"], (unit["x_test"] - mean) / std, atol=1e-6)


def test_image_and_label_counts_must_match(tmp_path):
    payloads = fake_dataset() | {"t10k-labels-idx1-ubyte": idx_bytes(np.arange(49) % 10)}
    src = write_gz_dir(tmp_path / "raw", payloads)
    with pytest.raises(PipelineError, match="t10k-\\*: 50 images but 49 labels"):
        prepare(src, data_params())


def test_labels_out_of_range_name_the_file(tmp_path):
    payloads = fake_dataset() | {"train-labels-idx1-ubyte": idx_bytes(np.arange(200) % 11)}
    src = write_gz_dir(tmp_path / "raw", payloads)
    with pytest.raises(PipelineError, match="train-labels-idx1-ubyte.gz: .* outside 0-9"):
        prepare(src, data_params())


def test_truncated_raw_file_is_named(tmp_path):
    src = write_gz_dir(tmp_path / "raw", fake_dataset())
    path = src / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(PipelineError, match="t10k-images-idx3-ubyte.gz: not a valid gzip file"):
        prepare(src, data_params())


def test_cache_round_trip_without_pickle(tmp_path):
    src = write_gz_dir(tmp_path / "raw", fake_dataset())
    arrays, meta = prepare(src, data_params())
    save_prepared(tmp_path / "c.npz", arrays, meta)
    loaded, loaded_meta = load_prepared(tmp_path / "c.npz")
    assert loaded_meta == meta
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_damaged_cache_is_reported(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(PipelineError, match="c.npz is missing or not a prepared cache"):
        load_prepared(tmp_path / "c.npz")


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_real_files_prepare_to_the_known_class_balance(small_cache):
    arrays, meta = load_prepared(small_cache)
    assert meta["payload_sha256"]["t10k-images-idx3-ubyte"].startswith("5b4141f0")
    assert arrays["x_train"].shape == (4000, 28, 28) and arrays["x_test"].shape == (2000, 28, 28)
    # val is 1,000 of the first 5,000 training images, in class proportion (+-1 from rounding).
    pool_counts = np.bincount(np.concatenate([arrays["y_train"], arrays["y_val"]]), minlength=10)
    assert np.all(np.abs(np.bincount(arrays["y_val"], minlength=10) - pool_counts / 5) <= 1)
    assert arrays["x_test"].min() >= 0 and arrays["x_test"].max() <= 1
    with gzip.open(DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz") as f:
        np.testing.assert_array_equal(arrays["y_test"], np.frombuffer(f.read()[8:], np.uint8)[:2000])


def test_an_output_folder_that_cannot_be_written_stops_the_step_cleanly(tmp_path):
    """The prepare step's command line with an output folder that is a file (root ignores
    permission bits, so a read-only folder would not stop the tests' root user)."""
    import subprocess
    import sys

    from conftest import REPO, write_params

    write_gz_dir(tmp_path / "raw", fake_dataset(n_train=40, n_test=10))
    limits = {"data.limit_train": None, "data.limit_test": None, "data.val_size": 10}
    write_params(tmp_path / "params.yaml", tiny_params(**limits))
    (tmp_path / "blocked").write_text("a file where the output folder should be")
    cmd = [sys.executable, str(REPO / "workflow/scripts/prepare.py"), "--raw-dir", "raw"]
    cmd += ["--out", "blocked/fashion_mnist.npz", "--summary", "reports/prepared.json"]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "cannot write blocked/fashion_mnist.npz" in result.stderr
    assert "check that blocked is writable" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "reports" / "prepared.json").exists()  # nothing else written either
