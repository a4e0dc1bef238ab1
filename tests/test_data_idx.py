import gzip
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffnn.data import read_idx, write_idx
from ffnn.errors import DataError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
SHAPES = [(7,), (3, 5), (4, 28, 28), (2, 3, 4, 5), (0, 3)]


def idx_bytes(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / f"a-idx{len(shape)}{suffix}"
    write_idx(path, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype)
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)


def test_matches_the_published_layout(tmp_path):
    # bytes written by hand, big-endian int16: magic 0x00000B02, dims 2 x 2
    path = tmp_path / "hand"
    path.write_bytes(idx_bytes(0x0B, (2, 2), struct.pack(">4h", 1, -2, 300, -32768)))
    np.testing.assert_array_equal(read_idx(path), [[1, -2], [300, -32768]])
    write_idx(tmp_path / "again", read_idx(path))
    assert (tmp_path / "again").read_bytes() == path.read_bytes()


def test_gzip_detected_by_content_not_name(tmp_path):
    path = tmp_path / "labels.bin"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (3,), b"\x01\x02\x03")))
    np.testing.assert_array_equal(read_idx(path), [1, 2, 3])
    write_idx(tmp_path / "forced", np.arange(3, dtype=np.uint8), compress=True)
    assert (tmp_path / "forced").read_bytes()[:2] == b"\x1f\x8b"


def test_wrong_magic(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.compress(idx_bytes(0x08, (1,), b"\x00"), mtime=0)))  # gzipped twice
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: not an IDX file \(magic 0x1f8b0800;"):
        read_idx(path)
    path = tmp_path / "raw"
    path.write_bytes(b"\x01\x00\x08\x01" + bytes(5))
    with pytest.raises(DataError, match=r"raw: not an IDX file \(magic 0x01000801;"):
        read_idx(path)


def test_unknown_type_code_and_dimension_count(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(0x07, (1,), b"\x00"))
    with pytest.raises(DataError, match="type code 0x07"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(DataError, match="0 dimensions"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 9]) + bytes(36))
    with pytest.raises(DataError, match="9 dimensions"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated(tmp_path, compress):
    data = idx_bytes(0x08, (4, 4), bytes(15))
    path = tmp_path / "t"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError, match=r"^.*t: truncated: header says 4x4 uint8 = 16 data bytes, file has 15$"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(idx_bytes(0x08, (4, 4), b"")[:10])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_bytes(tmp_path, compress):
    data = idx_bytes(0x0C, (2,), bytes(9))
    path = tmp_path / "t"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(path)


def test_named_gz_but_not_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(idx_bytes(0x08, (3,), b"\x01\x02\x03"))
    with pytest.raises(DataError, match=r"labels\.gz: named \.gz but not gzip-compressed"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(0x08, (1000,), bytes(range(250)) * 4))
    path = tmp_path / "c.gz"
    path.write_bytes(good[:-30])  # stream cut short
    with pytest.raises(DataError, match="c.gz: corrupt gzip stream"):
        read_idx(path)
    flipped = bytearray(good)
    flipped[-6] ^= 0xFF  # CRC trailer no longer matches
    path.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="c.gz: corrupt gzip stream"):
        read_idx(path)
    path.write_bytes(good[:10] + b"\xff" * 40)  # garbage deflate data
    with pytest.raises(DataError, match="c.gz: corrupt gzip stream"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.gz: cannot read"):
        read_idx(tmp_path / "nope.gz")


@pytest.mark.parametrize("compress", [False, True])
def test_huge_dims_do_not_allocate(tmp_path, compress):
    # the header claims 2**32-1 cubed doubles; only 64 bytes follow
    data = idx_bytes(0x0E, (2**32 - 1,) * 3, bytes(64))
    path = tmp_path / "huge"
    path.write_bytes(gzip.compress(data) if compress else data)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="truncated"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_write_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(DataError, match="dtype int64"):
        write_idx(tmp_path / "a", np.arange(3, dtype=np.int64))
    with pytest.raises(DataError, match="5-dimensional"):
        write_idx(tmp_path / "a", np.zeros((1,) * 5, dtype=np.uint8))
    assert not (tmp_path / "a").exists()


def _check_random(path, blob):
    try:
        a = read_idx(path)
    except DataError as e:
        assert "\n" not in str(e)
        assert str(path) in str(e)
        return
    # the rare random input that is a well-formed IDX file must read back exactly
    out = path.with_name("rewritten")
    write_idx(out, a, compress=False)
    assert out.read_bytes() == blob


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=64), prefix=st.sampled_from([b"", b"\x00\x00", b"\x00\x00\x08", b"\x1f\x8b"]))
def test_random_bytes_raw(tmp_path, blob, prefix):
    blob = prefix + blob
    path = tmp_path / "random"
    path.write_bytes(blob)
    _check_random(path, blob)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=64), prefix=st.sampled_from([b"", b"\x00\x00", b"\x00\x00\x08", b"\x00\x00\x0d\x02"]))
def test_random_bytes_gzipped(tmp_path, blob, prefix):
    blob = prefix + blob
    path = tmp_path / "random.gz"
    path.write_bytes(gzip.compress(blob))
    _check_random(path, blob)


@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_reading_with_a_dtype_converts_while_reading(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    path = tmp_path / name
    write_idx(path, images)
    converted = read_idx(path, dtype=np.float32)
    assert converted.dtype == np.float32 and converted.shape == images.shape
    np.testing.assert_array_equal(converted, images.astype(np.float32))


def test_a_gzip_trailer_that_disagrees_with_the_header_is_not_trusted(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x.idx.gz"
    write_idx(path, images)
    data = bytearray(path.read_bytes())
    data[-4:] = (10 ** 9).to_bytes(4, "little")  # a lying uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(DataError):
        read_idx(path, dtype=np.float32)  # gzip's own length check catches it on the slow path


def test_truncated_data_read_with_a_dtype_is_a_data_error(tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.zeros((10, 5), np.uint8))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="x.idx"):
        read_idx(path, dtype=np.float32)
