"""fetch_dataset against a local HTTP server on 127.0.0.1 (never the real network).

Generated MNIST/CIFAR files are served from a temporary folder; checks: a verified download that
load_dataset then reads, an intact file not downloaded twice, mirror fallback, a checksum
mismatch (error, nothing left behind), HTTP 404, and a refused connection.
"""

import gzip
import hashlib
import http.server
import io
import pickle
import socket
import struct
import tarfile
import threading
from functools import partial

import numpy as np
import pytest

from dlprobe.data import fetch, registry
from dlprobe.data.fetch import describe_fetch, fetch_dataset
from dlprobe.data.images import load_dataset
from dlprobe.errors import DatasetError

MNIST_FILES = [f"{name}.gz" for name in registry.IDX_FILES]


def write_mnist(folder, num_train=30, num_test=10) -> dict[str, str]:
    """Write the four gzipped IDX files; return file name -> md5."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (num_train, 28, 28)), np.arange(num_train) % 10,
              rng.integers(0, 256, (num_test, 28, 28)), np.arange(num_test) % 10]
    checksums = {}
    for name, array in zip(MNIST_FILES, arrays):
        header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        data = gzip.compress(header + array.astype(np.uint8).tobytes())
        (folder / name).write_bytes(data)
        checksums[name] = hashlib.md5(data).hexdigest()
    return checksums


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        QuietHandler.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base URL, served folder): a threaded HTTP server on 127.0.0.1, stopped after the test."""
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)  # 127.0.0.1 must never go through a proxy
    served = tmp_path / "served"
    served.mkdir()
    QuietHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_verifies_and_loads(server, tmp_path):
    url, served = server
    checksums = write_mnist(served)
    dest = tmp_path / "dest"
    paths = fetch_dataset("mnist", dest, mirrors=[url], checksums=checksums, progress=False)
    assert [p.name for p in paths] == MNIST_FILES
    assert sorted(p.name for p in dest.iterdir()) == sorted(MNIST_FILES)  # no .part left
    for path in paths:
        assert path.read_bytes() == (served / path.name).read_bytes()
    data = load_dataset("mnist", data_dir=dest)
    assert (data.num_train, data.num_test) == (30, 10)
    # Intact files are kept, not downloaded again.
    count = len(QuietHandler.requests)
    fetch_dataset("mnist", dest, mirrors=[url], checksums=checksums, progress=False)
    assert len(QuietHandler.requests) == count


def test_sha256_and_fallback_to_second_mirror(server, tmp_path):
    url, served = server
    (served / "good").mkdir()
    write_mnist(served / "good")
    checksums = {name: hashlib.sha256((served / "good" / name).read_bytes()).hexdigest()
                 for name in MNIST_FILES}
    paths = fetch_dataset("mnist", tmp_path / "dest", mirrors=[url + "missing/", url + "good/"],
                          checksums=checksums, progress=False)
    assert len(paths) == 4 and f"/missing/{MNIST_FILES[0]}" in QuietHandler.requests


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    url, served = server
    checksums = write_mnist(served)
    checksums[MNIST_FILES[0]] = "0" * 32
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match=r"checksum mismatch \(md5 expected 0{32}, got [0-9a-f]{32}\)"):
        fetch_dataset("mnist", dest, mirrors=[url], checksums=checksums, progress=False)
    assert list(dest.iterdir()) == []


def test_wrong_file_in_place_is_replaced(server, tmp_path):
    url, served = server
    checksums = write_mnist(served)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / MNIST_FILES[0]).write_bytes(b"stale partial copy")
    fetch_dataset("mnist", dest, mirrors=[url], checksums=checksums, progress=False)
    assert (dest / MNIST_FILES[0]).read_bytes() == (served / MNIST_FILES[0]).read_bytes()


def test_http_404_is_a_clear_error(server, tmp_path):
    url, _ = server
    with pytest.raises(DatasetError) as raised:
        fetch_dataset("fashion-mnist", tmp_path / "dest", mirrors=[url], progress=False)
    message = str(raised.value)
    assert f"{url}train-images-idx3-ubyte.gz (HTTP 404" in message
    assert "--data-dir" in message
    assert not any((tmp_path / "dest").iterdir())


def test_connection_refused_is_a_clear_error(tmp_path, monkeypatch):
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    with socket.socket() as probe:  # a port that was free a moment ago and is closed now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(DatasetError, match=rf"could not download cifar-10-python.tar.gz for cifar10: "
                                           rf"tried {url}cifar-10-python.tar.gz \(.*refused"):
        fetch_dataset("cifar10", tmp_path / "dest", mirrors=[url], timeout=5, progress=False)


def test_cifar_archive_fetch_then_load(server, tmp_path):
    url, served = server
    rng = np.random.default_rng(2)
    with tarfile.open(served / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [3, 7],
                     b"batch_label": b"batch", b"filenames": [b"a.png", b"b.png"]}
            payload = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    md5 = hashlib.md5((served / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    fetch_dataset("cifar10", tmp_path / "dest", mirrors=[url],
                  checksums={"cifar-10-python.tar.gz": md5}, progress=False)
    data = load_dataset("cifar10", data_dir=tmp_path / "dest")
    assert (data.num_train, data.num_test, data.input_shape) == (10, 2, (3, 32, 32))


def test_builtin_and_unknown_names(tmp_path):
    assert fetch_dataset("mnist-5k", tmp_path / "x") == [] and not (tmp_path / "x").exists()
    assert "nothing to download" in describe_fetch("digits")
    assert "ossci-datasets" in describe_fetch("mnist")
    with pytest.raises(DatasetError, match="unknown dataset"):
        fetch_dataset("svhn", tmp_path)


def test_checksum_table_is_well_formed():
    for name, resource in fetch.RESOURCES.items():
        assert name in registry.DATASETS and resource["mirrors"]
        for file_name, digest in resource["checksums"].items():
            assert len(digest) == 32 and int(digest, 16) >= 0
    assert list(fetch.RESOURCES["mnist"]["checksums"]) == MNIST_FILES
    assert list(fetch.RESOURCES["fashion-mnist"]["checksums"]) == MNIST_FILES
