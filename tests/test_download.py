"""The download step: verified payloads, falling back across sources, nothing half-written."""

import gzip
import socket
import threading

import pytest
from idx_files import checksums, fake_dataset, write_gz_dir

from lenet_compare.core.errors import PipelineError
from lenet_compare.data.download import fetch_all
from lenet_compare.data.fashion_mnist import FILES


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


class SilentServer:
    """A TCP server that accepts connections and never answers (a hung mirror); it counts them."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/"
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self):
        self.socket.settimeout(0.2)  # how often the thread looks at `stop`
        while not self.stop.is_set():
            try:
                self.accepted.append(self.socket.accept()[0])
            except TimeoutError:
                continue

    def connections(self) -> int:
        """How many connections clients made: stop accepting, then take any still queued."""
        self.stop.set()
        self.thread.join()
        self.socket.setblocking(False)
        while True:
            try:
                self.accepted.append(self.socket.accept()[0])
            except BlockingIOError:
                return len(self.accepted)

    def close(self):
        self.connections()
        for conn in self.accepted:
            conn.close()
        self.socket.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def test_hung_url_times_out_then_falls_back(tmp_path, payloads, silent_server):
    good = write_gz_dir(tmp_path / "good", payloads)
    retries = 1
    record = fetch_all(
        [silent_server.url, str(good)], tmp_path / "raw", timeout=0.5, retries=retries, expected=checksums(payloads)
    )
    assert {f["source"] for f in record["files"].values()} == {str(good)}
    failures = record["failed_attempts"]
    assert "timed out" in failures[0]
    # The hung mirror is waited for once (retries + 1 attempts for the first file), then skipped
    # for the other three: counted as connections it got, not as seconds on a clock.
    assert all("skipped after an earlier failure" in f for f in failures[1:])
    assert len(failures) == 4
    assert silent_server.connections() == retries + 1
