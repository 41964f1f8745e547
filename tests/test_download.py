"""The download step: verified payloads, falling back across sources, nothing half-written."""

import gzip
import socket
import threading
import time

import pytest
from idx_files import checksums, fake_dataset, write_gz_dir

from lenet_compare.download import fetch_all
from lenet_compare.errors import PipelineError
from lenet_compare.fashion_mnist import FILES


@pytest.fixture
def payloads():
    return fake_dataset()


def test_local_source_is_copied_verbatim(tmp_path, payloads):
    src = write_gz_dir(tmp_path / "src", payloads)
    out = tmp_path / "raw"
    record = fetch_all([str(src)], out, expected=checksums(payloads))
    for name in FILES:
        assert (out / name).read_bytes() == (src / name).read_bytes()
        assert record["files"][name]["source"] == str(src)
        assert record["files"][name]["payload_sha256"] == checksums(payloads)[name.removesuffix(".gz")]
    assert record["failed_attempts"] == []


def test_wrong_checksum_fails_and_writes_nothing(tmp_path, payloads):
    src = write_gz_dir(tmp_path / "src", payloads)
    expected = checksums(payloads) | {"t10k-images-idx3-ubyte": "0" * 64}
    with pytest.raises(PipelineError) as err:
        fetch_all([str(src)], tmp_path / "raw", expected=expected)
    message = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert f"{src}/t10k-images-idx3-ubyte.gz: wrong checksum" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_corrupt_gzip_falls_back_to_the_next_source(tmp_path, payloads):
    bad = write_gz_dir(tmp_path / "bad", payloads)
    blob = (bad / "train-labels-idx1-ubyte.gz").read_bytes()
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(blob[:-20])  # truncated download
    good = write_gz_dir(tmp_path / "good", payloads)
    out = tmp_path / "raw"
    record = fetch_all([str(bad), str(good)], out, expected=checksums(payloads))
    assert record["files"]["train-labels-idx1-ubyte.gz"]["source"] == str(good)
    assert record["files"]["train-images-idx3-ubyte.gz"]["source"] == str(bad)
    assert any("not a valid gzip file" in f for f in record["failed_attempts"])
    assert gzip.decompress((out / "train-labels-idx1-ubyte.gz").read_bytes()) == payloads["train-labels-idx1-ubyte"]


def test_every_failure_is_listed(tmp_path, payloads):
    missing = tmp_path / "nowhere"
    refused = "http://127.0.0.1:9/"  # discard port: nothing listens, the connection is refused
    with pytest.raises(PipelineError) as err:
        fetch_all([refused, str(missing)], tmp_path / "raw", timeout=2, retries=0, expected=checksums(payloads))
    message = str(err.value)
    assert "could not get a verified copy of train-images-idx3-ubyte.gz" in message
    assert "http://127.0.0.1:9/train-images-idx3-ubyte.gz: cannot connect" in message
    assert f"{missing}/train-images-idx3-ubyte.gz does not exist" in message


def test_empty_source_list():
    with pytest.raises(PipelineError, match="data.sources is empty"):
        fetch_all([], "unused")


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers (a hung mirror)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_hung_url_times_out_then_falls_back(tmp_path, payloads, silent_server):
    good = write_gz_dir(tmp_path / "good", payloads)
    started = time.monotonic()
    record = fetch_all(
        [silent_server, str(good)], tmp_path / "raw", timeout=0.5, retries=1, expected=checksums(payloads)
    )
    elapsed = time.monotonic() - started
    assert {f["source"] for f in record["files"].values()} == {str(good)}
    failures = record["failed_attempts"]
    assert "timed out" in failures[0]
    # The hung mirror is waited for once (2 attempts x 0.5 s + 1 s back-off), then skipped.
    assert all("skipped after an earlier failure" in f for f in failures[1:])
    assert len(failures) == 4
    assert elapsed < 10
