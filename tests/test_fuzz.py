"""Fuzzing the dataset readers with Hypothesis: damaged or hostile files give a DatasetError, never a crash.

The IDX reader is checked against an independent parser written here (Python integers, so no overflow):
for any bytes, `read_idx` returns exactly the array the reference finds, or raises DatasetError where the
reference finds the file invalid. Valid arrays of every IDX type round-trip through a writer written here.
The CIFAR batch reader gets valid batches (every pickle protocol), mutated batches, random bytes and
random pickle programs that call os.system & co. with a command creating a marker file: the result is a
valid batch or a DatasetError, and the marker never appears (no code from the file ran).
"""

import gzip
import io
import math
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from dlprobe.data import readers
from dlprobe.errors import DatasetError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# IDX type code -> big-endian dtype, written out here rather than taken from the reader under test.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    # Module-scoped: Hypothesis re-runs the test body many times and refuses function-scoped fixtures.
    return tmp_path_factory.mktemp("fuzz")


# ---------------------------------------------------------------- IDX


def write_idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    """An IDX file: two zero bytes, the type code, ndim, big-endian uint32 sizes, big-endian data."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", size) for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[type_code]).tobytes()


def reference_idx(raw: bytes) -> np.ndarray | None:
    """The array a well-formed IDX file (raw or gzip) holds, or None when it is not well formed."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except Exception:
            return None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        return None
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        return None
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_TYPES[raw[2]])
    payload = raw[4 + 4 * ndim:]
    if len(payload) != math.prod(dims) * dtype.itemsize:  # Python ints: exact for any header
        return None
    return np.frombuffer(payload, dtype).reshape(dims)


def check_idx(path: Path, raw: bytes) -> None:
    """The property: read_idx agrees with the reference, and its only failure is a one-line DatasetError."""
    path.write_bytes(raw)
    expected = reference_idx(raw)
    try:
        result = readers.read_idx(path)
    except DatasetError as error:
        event("DatasetError")  # shown by pytest --hypothesis-show-statistics
        assert "\n" not in str(error) and str(path) in str(error)
        assert expected is None, f"valid file rejected: {error}"
        return
    event("valid array")
    assert expected is not None, f"invalid file accepted as {result.dtype} {result.shape}"
    assert result.shape == expected.shape and result.dtype == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(result, expected)


SMALL_DIMS = st.lists(st.integers(0, 5), min_size=1, max_size=4)


@st.composite
def idx_files(draw) -> bytes:
    """Mostly-well-formed IDX files: any type code, small dims, payload of about the right length,
    optionally gzipped, then perhaps damaged (bytes flipped, cut, extended)."""
    type_code = draw(st.sampled_from(sorted(IDX_TYPES) + [0x00, 0x07, 0x0A, 0x0F, 0xFF]))
    dims = draw(SMALL_DIMS)
    itemsize = np.dtype(IDX_TYPES.get(type_code, ">u1")).itemsize
    length = max(0, math.prod(dims) * itemsize + draw(st.sampled_from([0, 0, 0, -1, 1, -itemsize, 7])))
    raw = bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + draw(st.binary(min_size=length, max_size=length))
    if draw(st.booleans()):
        raw = gzip.compress(raw, mtime=0)
    return draw(mutated(raw))


@st.composite
def mutated(draw, raw: bytes) -> bytes:
    """`raw` unchanged, or with a few bytes overwritten, a piece cut out, a cut end, or bytes appended."""
    raw = bytearray(raw)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "truncate", "append", "none"]))
        if kind == "flip" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif kind == "cut" and raw:
            start = draw(st.integers(0, len(raw) - 1))
            del raw[start: start + draw(st.integers(1, 8))]
        elif kind == "truncate":
            raw = raw[: draw(st.integers(0, len(raw)))]
        elif kind == "append":
            raw += draw(st.binary(min_size=1, max_size=8))
    return bytes(raw)


@FUZZ
@given(raw=st.binary(max_size=64))
def test_idx_random_bytes(scratch, raw):
    check_idx(scratch / "random-idx", raw)


@FUZZ
@given(raw=st.binary(max_size=64).map(lambda b: gzip.compress(b, mtime=0)).flatmap(mutated))
def test_idx_random_gzip_streams(scratch, raw):
    check_idx(scratch / "random-idx.gz", raw)


@FUZZ
@given(raw=idx_files())
def test_idx_structured_and_mutated_files(scratch, raw):
    check_idx(scratch / "mutated-idx", raw)


@FUZZ
@given(type_code=st.sampled_from(sorted(IDX_TYPES)), data=st.data(), compress=st.booleans())
def test_idx_round_trip(scratch, type_code, data, compress):
    dtype = np.dtype(IDX_TYPES[type_code]).newbyteorder("=")
    # conftest flushes subnormals to zero (torch.set_flush_denormal), so Hypothesis must not draw them.
    elements = st.floats(width=8 * dtype.itemsize, allow_subnormal=False) if dtype.kind == "f" else None
    array = data.draw(hnp.arrays(dtype, SMALL_DIMS.map(tuple), elements=elements))
    raw = write_idx_bytes(array, type_code)
    path = scratch / "round-trip-idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    result = readers.read_idx(path)
    assert result.dtype == array.dtype and result.shape == array.shape
    np.testing.assert_array_equal(result, array)  # NaN == NaN here, as a round trip should keep it
    assert readers.read_idx_header(path) == (np.dtype(IDX_TYPES[type_code]), array.shape)


# Headers whose element count overflows int64: found by hand, kept as explicit regressions.
OVERFLOW_HEADERS = {
    "2**64 elements, empty payload": bytes([0, 0, 0x08, 4]) + struct.pack(">4I", *[65536] * 4),
    "4e9**3 elements": bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *[4_000_000_000] * 3),
}


@pytest.mark.parametrize("name", sorted(OVERFLOW_HEADERS))
def test_idx_header_with_overflowing_element_count(tmp_path, name):
    path = tmp_path / "overflow-idx"
    path.write_bytes(OVERFLOW_HEADERS[name])
    with pytest.raises(DatasetError, match="truncated") as raised:
        readers.read_idx(path)
    assert "-" not in str(raised.value).split("declares")[-1]  # no negative byte counts


# ---------------------------------------------------------------- CIFAR batches


def batch_bytes(data: np.ndarray, labels: list[int], protocol: int) -> bytes:
    """A CIFAR python batch as Python 3 writes one: a dict with byte-string keys."""
    batch = {b"batch_label": b"fuzz batch", b"labels": labels, b"data": data,
             b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    return pickle.dumps(batch, protocol=protocol)


@st.composite
def cifar_batches(draw) -> tuple[np.ndarray, list[int]]:
    count = draw(st.integers(0, 3))
    data = draw(hnp.arrays(np.uint8, (count, readers.CIFAR_IMAGE_BYTES), elements=st.integers(0, 255),
                           fill=st.integers(0, 255)))
    return data, draw(st.lists(st.integers(0, 9), min_size=count, max_size=count))


def read_batch(path: Path, raw: bytes):
    """read_cifar10_batch on `raw`: (images, labels) or None after a DatasetError (one line or not: pickle's
    own messages can span lines, see test_reader_errors_are_one_line)."""
    path.write_bytes(raw)
    try:
        images, labels = readers.read_cifar10_batch(path)
    except DatasetError as error:
        event(f"DatasetError: {str(error).split(' from ')[0].split(' (')[0][:40]}")
        return None
    event("valid batch")
    # Whatever was accepted has the documented shape and value ranges.
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == (32, 32, 3)
    assert labels.dtype == np.int64 and labels.shape == (images.shape[0],)
    assert labels.size == 0 or (labels.min() >= 0 and labels.max() <= 9)
    return images, labels


@FUZZ
@given(batch=cifar_batches(), protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_cifar_valid_batches_round_trip(scratch, batch, protocol):
    data, labels = batch
    result = read_batch(scratch / "valid_batch", batch_bytes(data, labels, protocol))
    # The originals are protocol 2; 3 and 4 use the same numpy reduction. An empty array pickles its empty
    # bytes as builtins.bytes() below protocol 3, which the reader refuses: no genuine batch is empty.
    if protocol in (3, 4) or (protocol == 2 and labels):
        assert result is not None
    if result is not None:  # protocol 5 names numpy's _frombuffer, which may be refused: that is fine
        images, loaded = result
        assert loaded.tolist() == labels
        np.testing.assert_array_equal(images.transpose(0, 3, 1, 2).reshape(len(labels), readers.CIFAR_IMAGE_BYTES), data)


@FUZZ
@given(batch=cifar_batches(), protocol=st.sampled_from([0, 2, 4]), data=st.data())
def test_cifar_mutated_batches(scratch, batch, protocol, data):
    raw = data.draw(mutated(batch_bytes(*batch, protocol)))
    read_batch(scratch / "mutated_batch", raw)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_cifar_random_bytes(scratch, raw):
    read_batch(scratch / "random_batch", raw)


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _unicode(text: str) -> bytes:
    encoded = text.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(encoded)) + encoded


def hostile_fragments(marker: Path) -> list[bytes]:
    """Pieces of pickle programs: callables that run code, the reader's allowed globals, and the glue."""
    command = f"touch {marker}"
    return [
        _global("os", "system"), _global("posix", "system"), _global("builtins", "eval"),
        _global("builtins", "exec"), _global("subprocess", "check_call"), _global("builtins", "getattr"),
        _global("numpy", "load"), _global("numpy.testing._private.utils", "runstring"),
        _global("numpy.core.multiarray", "_reconstruct"), _global("numpy", "ndarray"), _global("numpy", "dtype"),
        _global("_codecs", "encode"),
        _unicode(command), _unicode(f"__import__('os').system({command!r})"), _unicode("latin1"), _unicode("u1"),
        pickle.SHORT_BINBYTES + b"\x04data", pickle.SHORT_BINBYTES + b"\x06labels",
        pickle.MARK, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.EMPTY_TUPLE, pickle.EMPTY_DICT,
        pickle.EMPTY_LIST, pickle.REDUCE, pickle.BUILD, pickle.SETITEM, pickle.SETITEMS, pickle.APPEND,
        pickle.APPENDS, pickle.BININT1 + b"\x03", pickle.BININT1 + b"\x00", pickle.NONE, pickle.NEWTRUE,
        pickle.OBJ, pickle.INST + b"os\nsystem\n", pickle.STACK_GLOBAL, pickle.MEMOIZE,
        pickle.BINGET + b"\x00", pickle.POP, pickle.DUP,
    ]


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_cifar_hostile_pickle_programs_never_run_code(scratch, data):
    marker = scratch / "PWNED"
    fragments = hostile_fragments(marker)
    body = data.draw(st.lists(st.sampled_from(fragments), max_size=12))
    # Half the programs are the classic shape: callable, (command,), REDUCE, with random glue around.
    if data.draw(st.booleans()):
        callable_ = data.draw(st.sampled_from(fragments[:8]))
        body = body[: len(body) // 2] + [callable_, fragments[12], pickle.TUPLE1, pickle.REDUCE] + body[len(body) // 2:]
    raw = pickle.PROTO + bytes([data.draw(st.sampled_from([2, 4]))]) + b"".join(body) + pickle.STOP
    read_batch(scratch / "hostile_batch", raw)
    assert not marker.exists(), f"code ran while reading {raw!r}"


# ---------------------------------------------------------------- CIFAR archives


def archive_bytes(batches: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


VALID_ARCHIVE = archive_bytes({name: batch_bytes(np.full((1, 3072), index, np.uint8), [index], 2) for index, name in
                               enumerate(readers.CIFAR_TRAIN_BATCHES + (readers.CIFAR_TEST_BATCH,))})


@settings(max_examples=150, deadline=None)
@given(raw=mutated(VALID_ARCHIVE))
def test_cifar_mutated_archives(scratch, raw):
    path = scratch / "cifar-10-python.tar.gz"
    path.write_bytes(raw)
    try:
        x_train, y_train, x_test, y_test = readers.read_cifar10(path)
    except DatasetError:
        return  # (one-line messages: see test_reader_errors_are_one_line)
    assert x_train.shape[1:] == (32, 32, 3) and len(x_train) == len(y_train)
    assert x_test.shape[1:] == (32, 32, 3) and len(x_test) == len(y_test)


ONE_LINE_CASES = {  # what the fuzzers found: a DatasetError whose message spans several lines
    "archive, empty": ("cifar-10-python.tar.gz", b""),
    "archive, garbage": ("cifar-10-python.tar.gz", b"not an archive at all"),
    "batch, persistent id opcode": ("data_batch_1", b"P"),
}


@pytest.mark.parametrize("case", sorted(ONE_LINE_CASES))
def test_reader_errors_are_one_line(tmp_path, case):
    name, raw = ONE_LINE_CASES[case]
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(DatasetError) as raised:
        readers.read_cifar10(path) if name.endswith(".tar.gz") else readers.read_cifar10_batch(path)
    assert "\n" not in str(raised.value)
