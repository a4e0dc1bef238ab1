import functools
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from ffnn.data import datasets, load, read_idx, write_idx
from ffnn.data.download import download
from ffnn.errors import DataError

IDX_NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a folder; paths under /short/ announce more bytes than they send."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/short/"):
            body = b"x" * 100
            self.send_response(200)
            self.send_header("Content-Length", "10000")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base URL, served folder, list of requested paths) of an HTTP server on 127.0.0.1."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, httpd.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_good_file_lands_at_dest(server, tmp_path):
    url, root, _ = server
    data = os.urandom(200_000)
    (root / "blob.bin").write_bytes(data)
    dest = tmp_path / "out" / "blob.bin"
    assert download(url + "blob.bin", dest, sha(data), progress=False) == str(dest)
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["blob.bin"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    url, root, _ = server
    (root / "blob.bin").write_bytes(b"the real bytes")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=f"expected {'0' * 64}, got {sha(b'the real bytes')}"):
        download(url + "blob.bin", out / "blob.bin", "0" * 64)
    assert os.listdir(out) == []


def test_mismatch_keeps_an_existing_dest(server, tmp_path):
    url, root, _ = server
    (root / "blob.bin").write_bytes(b"new")
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"old")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        download(url + "blob.bin", dest, "f" * 64)
    assert dest.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["blob.bin", "served"]


def test_server_closing_early(server, tmp_path):
    url, _, _ = server
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"short/blob\.bin: transfer interrupted after 100 of 10000 bytes"):
        download(url + "short/blob.bin", out / "blob.bin", sha(b"x" * 10000))
    assert os.listdir(out) == []


def test_not_found(server, tmp_path):
    url, _, _ = server
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"missing\.bin: HTTP 404"):
        download(url + "missing.bin", out / "missing.bin", "0" * 64)
    assert os.listdir(out) == []


def test_unreachable_host_names_the_url(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(DataError, match=f"^{url}: "):
        download(url, tmp_path / "x.bin", "0" * 64, timeout=5)
    assert not (tmp_path / "x.bin").exists()


# ---------------------------------------------------------------------------------------------
# load() fetching MNIST from a mirror


def write_mnist(folder, n_train=30, n_test=10, seed=0):
    """Small MNIST-shaped IDX files; returns {file name: array}."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        write_idx(folder / name, a)
    return arrays


@pytest.fixture
def mirror(server, monkeypatch, tmp_path):
    """A mirror serving small MNIST files whose checksums replace the published ones; cache in tmp_path."""
    url, root, requests = server
    arrays = write_mnist(root)
    for name in IDX_NAMES:
        monkeypatch.setitem(datasets.SHA256["mnist"], name, sha((root / name).read_bytes()))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FFNN_DATA_DIR", raising=False)
    monkeypatch.delenv("FFNN_MIRRORS", raising=False)
    return url, root, requests, arrays


def test_load_downloads_into_the_cache(mirror, tmp_path):
    url, root, requests, arrays = mirror
    empty = tmp_path / "empty"
    empty.mkdir()
    ds = load("mnist", data_dir=empty, mirrors=[url])
    cache = tmp_path / "cache" / "ffnn" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(IDX_NAMES)
    for name in IDX_NAMES:
        assert (cache / name).read_bytes() == (root / name).read_bytes()
    assert sorted(requests) == sorted("/" + n for n in IDX_NAMES)
    np.testing.assert_allclose(ds.X_train, arrays["train-images-idx3-ubyte.gz"].reshape(30, 784) / 255, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    # a second load reads the cache and asks the mirror for nothing
    load("mnist", data_dir=empty, mirrors=[url])
    assert len(requests) == 4


def test_mirrors_from_environment_and_fallback(mirror, tmp_path, monkeypatch):
    url, _, requests, _ = mirror
    monkeypatch.setenv("FFNN_MIRRORS", f"{url}nowhere/, {url}")
    ds = load("mnist")
    assert ds.X_train.shape == (30, 784)
    assert "/nowhere/train-images-idx3-ubyte.gz" in requests  # tried first, 404, then the next mirror


def test_wrong_checksum_from_mirror_is_not_kept(mirror, tmp_path, monkeypatch):
    url, _, _, _ = mirror
    monkeypatch.setitem(datasets.SHA256["mnist"], "t10k-images-idx3-ubyte.gz", "0" * 64)
    with pytest.raises(DataError, match="SHA-256 mismatch") as e:
        load("mnist", mirrors=[url])
    assert "\n" not in str(e.value)
    cache = tmp_path / "cache" / "ffnn" / "mnist"
    assert "t10k-images-idx3-ubyte.gz" not in os.listdir(cache)
    assert not [n for n in os.listdir(cache) if n.startswith(".")]


def test_stray_partial_file_in_cache_is_never_used(mirror, tmp_path):
    url, root, _, arrays = mirror
    cache = tmp_path / "cache" / "ffnn" / "mnist"
    cache.mkdir(parents=True)
    # what an interrupted transfer may leave behind: half of the file under temporary names
    half = (root / "train-images-idx3-ubyte.gz").read_bytes()[:500]
    for stray in (".train-images-idx3-ubyte.gz.k2j3h4.tmp", "train-images-idx3-ubyte.gz.part"):
        (cache / stray).write_bytes(half)
    with pytest.raises(DataError, match="files not found"):
        load("mnist", download=False)
    ds = load("mnist", mirrors=[url])
    np.testing.assert_array_equal(ds.X_train * 255, arrays["train-images-idx3-ubyte.gz"].reshape(30, 784))
    assert read_idx(cache / "train-images-idx3-ubyte.gz").shape == (30, 28, 28)


def test_interrupted_mirror_leaves_no_file(mirror, tmp_path):
    url, _, _, _ = mirror
    with pytest.raises(DataError, match="transfer interrupted") as e:
        load("mnist", mirrors=[url + "short/"])
    assert "looked in" in str(e.value)
    cache = tmp_path / "cache" / "ffnn" / "mnist"
    assert os.listdir(cache) == []
