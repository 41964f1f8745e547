"""Fetch the four Fashion-MNIST .gz files from the first source that has a verified copy.

A source is a URL prefix or a local folder. Each file is accepted only when the sha256 of its
decompressed payload matches (see fashion_mnist.PAYLOAD_SHA256); nothing is written until all
four files are verified, and then each is written atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import socket
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from lenet_compare.core.atomic import atomic_write
from lenet_compare.core.errors import PipelineError
from lenet_compare.data.fashion_mnist import DEBIAN_PACKAGE, FILES, PAYLOAD_SHA256
from lenet_compare.data.idx import GZIP_ERRORS

log = logging.getLogger(__name__)


class SourceFailed(Exception):
    """One source could not deliver one file; the next source is tried."""


class SourceUnreachable(SourceFailed):
    """The source did not answer (no connection, or timed out after every retry).

    Later files skip it: waiting out the same dead mirror four times helps nobody.
    """


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _http_get(url: str, timeout: float, retries: int) -> bytes:
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            # 4xx will not change on retry; 5xx might.
            if e.code < 500 or attempt == retries:
                raise SourceFailed(f"HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            # A host that does not resolve is offline or misspelled: retrying only wastes time.
            if isinstance(e.reason, socket.gaierror) or attempt == retries:
                raise SourceUnreachable(f"cannot connect: {e.reason}") from e
        except (TimeoutError, OSError) as e:
            if attempt == retries:
                raise SourceUnreachable(f"{type(e).__name__}: {e or 'timed out'} (timeout {timeout} s)") from e
        time.sleep(2**attempt)  # back off before the next attempt
    raise AssertionError("unreachable")


def _read_local(folder: str, name: str) -> bytes:
    path = Path(folder) / name
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise SourceFailed(f"{path} does not exist") from e
    except OSError as e:
        raise SourceFailed(f"cannot read {path}: {e.strerror}") from e


def _verify(blob: bytes, name: str, expected: dict[str, str]) -> str:
    """Return the payload sha256 of a .gz blob, or raise SourceFailed saying what is wrong."""
    payload_name = name.removesuffix(".gz")
    try:
        payload = gzip.decompress(blob)
    except GZIP_ERRORS as e:
        raise SourceFailed(f"not a valid gzip file ({e}): truncated or corrupt") from e
    digest = hashlib.sha256(payload).hexdigest()
    if digest != expected[payload_name]:
        raise SourceFailed(
            f"wrong checksum: sha256 of the decompressed {payload_name} is {digest}, "
            f"expected {expected[payload_name]} (corrupt, or not Fashion-MNIST)"
        )
    return digest


def fetch_all(
    sources: list[str],
    out_dir: str | Path,
    timeout: float = 30,
    retries: int = 2,
    expected: dict[str, str] = PAYLOAD_SHA256,
) -> dict:
    """Get every file from the first source that delivers a verified copy; return provenance."""
    if not sources:
        raise PipelineError("data.sources is empty: list at least one URL prefix or folder")
    out_dir = Path(out_dir)
    dead: dict[str, str] = {}  # URL sources that failed to connect: not retried for later files
    verified: dict[str, bytes] = {}
    files: dict[str, dict] = {}
    skipped: list[str] = []  # failures before the source that worked, for the record
    for name in FILES:
        failures = []
        for source in sources:
            if source in dead:
                failures.append(f"{source}: {dead[source]} (skipped after an earlier failure)")
                continue
            where = source.rstrip("/") + "/" + name if is_url(source) else str(Path(source) / name)
            try:
                started = time.perf_counter()
                blob = _http_get(where, timeout, retries) if is_url(source) else _read_local(source, name)
                digest = _verify(blob, name, expected)
            except SourceFailed as e:
                log.warning("%s: %s", where, e)
                failures.append(f"{where}: {e}")
                if isinstance(e, SourceUnreachable):
                    dead[source] = str(e)
                continue
            log.info("%s: verified (%d bytes, %.2f s)", where, len(blob), time.perf_counter() - started)
            verified[name] = blob
            files[name] = {
                "source": source,
                "location": where,
                "gz_bytes": len(blob),
                "gz_sha256": hashlib.sha256(blob).hexdigest(),
                "payload_sha256": digest,
            }
            skipped += failures
            break
        else:
            tried = "\n".join(f"  - {f}" for f in failures)
            raise PipelineError(
                f"could not get a verified copy of {name} from any source in data.sources:\n{tried}\n"
                f"Offline? Debian's package {DEBIAN_PACKAGE} ships the real files: "
                f"sudo apt-get install {DEBIAN_PACKAGE}"
            )
    # Only now, with all four verified, does anything reach out_dir.
    for name, blob in verified.items():
        with atomic_write(out_dir / name) as f:
            f.write(blob)
    return {
        "dataset": "Fashion-MNIST",
        "retrieved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
        "failed_attempts": skipped,
    }
