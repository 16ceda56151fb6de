"""Your own dataset, given as a PATH wherever a dataset name goes: what it is, its content digest, its arrays.

    key = dataset_key("./my_images")         # '/home/me/my_images' (absolute, symlinks resolved); 'MNIST' -> 'mnist'
    is_user_dataset(key)                     # True: a path, not a registry name
    data = read_user_dataset(key)            # UserDataset: info (format, sha256, classes, input_shape, sizes) + arrays
    dataset_identity(key)                    # {"path": key, "sha256": ...}: what the run identity hashes for it

A PATH is an ImageFolder-style folder (`train/<class>/*.png|jpg|jpeg`, `test/<class>/...`) or an `.npz` with
`x_train, y_train, x_test, y_test` (user_readers.py reads and validates both). A registry name always wins:
write `./mnist` for a folder called mnist. The digest is sha256 over the .npz file's bytes, or over every image
of the folder (relative path and bytes, in sorted order); it is computed while the files are decoded, so
each file is read once, and the result is kept for the process under the files' (relative path, size, mtime,
ctime): the run identity, the check before a run and the experiment's own loading share that one read, and an
edited file is read again (and gives a new digest, hence a new run directory).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlprobe.data.registry import DATASETS, canonical_name
from dlprobe.data.user_readers import read_image_folder, read_npz
from dlprobe.errors import DatasetError

CACHED_DATASETS = 2  # decoded datasets kept per process (most recently used): one run's, or fit-task's pair
_infos: dict[tuple, "UserDatasetInfo"] = {}  # signature -> info of every dataset read in this process
_cache: OrderedDict[tuple, "UserDataset"] = OrderedDict()


@dataclass(frozen=True)
class UserDatasetInfo:
    """What a user dataset turned out to be. input_shape: (C, H, W) of one image; classes: the class folder
    names (sorted) or the .npz `classes` (else "0".."C-1"); pixels: "uint8 0..255" or "<float dtype> in [0, 1]"."""

    path: str
    format: str  # "imagefolder" or "npz"
    sha256: str
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    num_train: int
    num_test: int
    pixels: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        """The record summary.json keeps (under `user_datasets`, keyed by path)."""
        return {"path": self.path, "format": self.format, "sha256": self.sha256, "num_classes": self.num_classes,
                "classes": list(self.classes), "input_shape": list(self.input_shape), "num_train": self.num_train,
                "num_test": self.num_test, "pixels": self.pixels}

    @property
    def note(self) -> str:
        """One line for the report: '.npz /data/my.npz (sha256 0123456789ab): 3 classes (a, b, c), 1x8x8 ...'."""
        kind = "ImageFolder" if self.format == "imagefolder" else ".npz"
        names = ", ".join(self.classes[:10]) + (", ..." if self.num_classes > 10 else "")
        shape = "x".join(map(str, self.input_shape))
        return (f"your {kind} {self.path} (sha256 {self.sha256[:12]}): {self.num_classes} classes ({names}), {shape} "
                f"images ({self.pixels}), {self.num_train} train / {self.num_test} test")


@dataclass(frozen=True)
class UserDataset:
    """info and [x_train, y_train, x_test, y_test]: images (N, H, W) or (N, H, W, C), labels int64 (N,)."""

    info: UserDatasetInfo
    arrays: tuple[np.ndarray, ...]


def _looks_like_path(text: str) -> bool:
    return ("/" in text or os.sep in text or text.startswith(("~", ".")) or text.lower().endswith(".npz")
            or os.path.exists(text))


def dataset_key(text: str) -> str:
    """The registry name of a known dataset ('CIFAR-10' -> 'cifar10'); for anything else naming an existing
    folder or .npz file, its absolute path with symlinks resolved (so two spellings are one dataset, one run).
    DatasetError for an unknown name or a path that is not there."""
    try:
        return canonical_name(text)
    except DatasetError as unknown:
        if not _looks_like_path(text):
            raise DatasetError(f"{unknown}; or the PATH of your own dataset (an ImageFolder folder or an .npz)") from None
    try:
        path = Path(text).expanduser().resolve()
    except (OSError, RuntimeError) as error:
        raise DatasetError(f"cannot resolve dataset path {text}: {error}") from None
    shown = text if str(path) == text else f"{text} ({path})"
    if not path.exists():
        raise DatasetError(f"no such dataset file or folder: {shown}")
    if path.is_file() and path.suffix.lower() != ".npz":
        raise DatasetError(f"dataset file {shown} is not an .npz: give an .npz holding x_train, y_train, x_test, "
                           "y_test, or a folder with train/<class>/ and test/<class>/ images")
    if not path.is_file() and not path.is_dir():
        raise DatasetError(f"dataset path {shown} is neither a file nor a folder")
    return str(path)


def is_user_dataset(key: str | None) -> bool:
    """Whether a dataset_key result is a path (your own data) rather than a registry name."""
    return key is not None and key not in DATASETS and os.path.isabs(key)


def _signature(path: Path) -> tuple:
    """(relative path, size, mtime, ctime) of every visible file and folder under `path` (or of the file)."""
    def stat(entry: Path, relative: str) -> tuple:
        info = entry.stat()
        return relative, info.st_size, info.st_mtime_ns, info.st_ctime_ns

    try:
        if path.is_file():
            return (str(path), stat(path, ""))
        entries = [str(path)]
        for folder, subfolders, names in os.walk(path, followlinks=True):  # class folders may be links
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
            for name in subfolders + sorted(name for name in names if not name.startswith(".")):
                entry = Path(folder) / name
                entries.append(stat(entry, entry.relative_to(path).as_posix()))
        return tuple(entries)
    except OSError as error:
        raise DatasetError(f"cannot read dataset {path}: {error.strerror or error}") from None


def _read(path: Path) -> UserDataset:
    hasher = hashlib.sha256()
    if path.is_dir():
        raw, kind = read_image_folder(path, hasher), "imagefolder"
    else:
        raw, kind = read_npz(path, hasher), "npz"
    x_train = raw.arrays[0]
    height, width = x_train.shape[1:3]
    channels = 1 if x_train.ndim == 3 else x_train.shape[3]
    pixels = "uint8 0..255" if x_train.dtype == np.uint8 else f"{x_train.dtype} in [0, 1]"
    info = UserDatasetInfo(str(path), kind, hasher.hexdigest(), raw.classes, (channels, height, width),
                           len(raw.arrays[1]), len(raw.arrays[3]), pixels)
    return UserDataset(info, tuple(raw.arrays))


def _located(key: str) -> tuple[Path, tuple]:
    """The dataset's path and the signature of its files (stat only; nothing is read)."""
    path = Path(key)
    if not path.exists():
        raise DatasetError(f"no such dataset file or folder: {key}")
    return path, _signature(path)


def _cached(key: str) -> UserDataset:
    """The dataset at path `key`, read when its files are new to this process (the cache's arrays are never
    handed out: read_user_dataset copies them). The last CACHED_DATASETS datasets keep their arrays; every
    dataset read keeps its (small) info, so identities and records never read the files again."""
    path, signature = _located(key)
    if signature in _cache:
        _cache.move_to_end(signature)
        return _cache[signature]
    dataset = _cache[signature] = _read(path)
    _infos[signature] = dataset.info
    while len(_cache) > CACHED_DATASETS:
        _cache.popitem(last=False)
    return dataset


def read_user_dataset(key: str) -> UserDataset:
    """The dataset at path `key` (a dataset_key result), read and validated once per process and content;
    the arrays are fresh copies (callers may modify them)."""
    cached = _cached(key)
    return UserDataset(cached.info, tuple(array.copy() for array in cached.arrays))


def user_dataset_info(key: str) -> UserDatasetInfo:
    """What read_user_dataset(key).info says, without copying the arrays (nor reading the files again once they
    were read with the same signature, even after their arrays left the cache)."""
    info = _infos.get(_located(key)[1])
    return info if info is not None else _cached(key).info


def dataset_identity(value):
    """What the run identity hashes for a dataset field's value: a registry name as it is (so every existing run
    keeps its directory), a path as {"path", "sha256"} (so new content means a new run); lists item by item."""
    if isinstance(value, (tuple, list)):
        return [dataset_identity(item) for item in value]
    if is_user_dataset(value):
        return {"path": value, "sha256": user_dataset_info(value).sha256}
    return value


def user_dataset_records(config) -> dict:
    """{"user_datasets": {path: describe()}} for the paths among config.dataset / config.datasets; {} if none."""
    keys = list(getattr(config, "datasets", None) or ()) + [getattr(config, "dataset", None)]
    records = {key: user_dataset_info(key).describe() for key in keys if is_user_dataset(key)}
    return {"user_datasets": records} if records else {}
