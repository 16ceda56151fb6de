"""Tiny MNIST files in the exact IDX format, for the loader and registry tests (imported as `image_files`:
tests/ is on sys.path under pytest), and the fixture that keeps a developer's real data out of them."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from dlprobe.data import readers
from dlprobe.data.registry import IDX_FILES


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: 0, 0, type code, ndim, big-endian uint32 dims, big-endian data."""
    big_endian = array.astype(readers.IDX_DTYPES[type_code])
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big_endian.tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def fake_mnist(folder: Path, num_train=60, num_test=20, compress=True, seed=0) -> list[np.ndarray]:
    """Write the four MNIST files (random pixels, balanced labels); return the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8), np.arange(num_train) % 10,
              rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8), np.arange(num_test) % 10]
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for name, array in zip(IDX_FILES, arrays):
        write_idx(folder / f"{name}{suffix}", array.astype(np.uint8), compress)
    return arrays


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """Autouse in every module that imports it: never pick up a developer's real data or cache."""
    monkeypatch.delenv("DLPROBE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
