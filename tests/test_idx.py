"""IDX parsing: each way a damaged file can be wrong is caught and named."""

import gzip

import numpy as np
import pytest
from idx_files import idx_bytes

from lenet_compare.core.errors import PipelineError
from lenet_compare.data.idx import gunzip, parse_images, parse_labels


def test_valid_images_and_labels_round_trip():
    images = np.random.default_rng(1).integers(0, 256, (7, 28, 28)).astype(np.uint8)
    labels = np.array([0, 9, 3, 3, 1, 2, 8])
    np.testing.assert_array_equal(parse_images(idx_bytes(images), "img"), images)
    parsed = parse_labels(idx_bytes(labels), "lbl")
    np.testing.assert_array_equal(parsed, labels)
    assert parsed.dtype == np.int64


@pytest.mark.parametrize("magic", [b"\x00\x00\x08\x01", b"\x00\x00\x0d\x03", b"\x01\x00\x08\x03", b"\x00\x00\x08\x04"])
def test_wrong_magic_is_rejected(magic):
    payload = idx_bytes(np.zeros((2, 28, 28)), magic=magic)
    with pytest.raises(PipelineError, match=r"img: wrong IDX magic number 0x" + magic.hex()):
        parse_images(payload, "img")


def test_wrong_image_size_is_rejected():
    with pytest.raises(PipelineError, match="images are 27x28, expected 28x28"):
        parse_images(idx_bytes(np.zeros((2, 27, 28))), "img")


@pytest.mark.parametrize("cut", [1, 100, 28 * 28])
def test_truncated_payload_is_rejected(cut):
    payload = idx_bytes(np.zeros((3, 28, 28)))[:-cut]
    with pytest.raises(PipelineError, match=r"header says shape \(3, 28, 28\).*truncated"):
        parse_images(payload, "img")


def test_extra_bytes_are_rejected():
    with pytest.raises(PipelineError, match="holds 12 bytes"):
        parse_labels(idx_bytes(np.zeros(3)) + b"\x00", "lbl")


def test_header_too_short():
    with pytest.raises(PipelineError, match="too short"):
        parse_labels(b"\x00\x00", "lbl")


def test_labels_out_of_range_are_rejected():
    with pytest.raises(PipelineError, match=r"lbl: 2 label\(s\) outside 0-9, first at index 1 \(value 10\)"):
        parse_labels(idx_bytes(np.array([0, 10, 3, 255])), "lbl")


def test_truncated_gzip_names_the_file():
    blob = gzip.compress(idx_bytes(np.zeros((5, 28, 28))))
    with pytest.raises(PipelineError, match="train.gz: not a valid gzip file"):
        gunzip(blob[: len(blob) // 2], "train.gz")
    with pytest.raises(PipelineError, match="x.gz: not a valid gzip file"):
        gunzip(b"this is not gzip", "x.gz")
