"""Image classification datasets as tensors: read, validate, subset (stratified) and normalize.

    data = load_dataset("mnist-5k")                      # always offline: 4000 train / 1000 test
    data = load_dataset("mnist", data_dir="~/data", train_size=10000, normalize="unit")
    data.x_train.shape                                   # (10000, 1, 28, 28) float32
    data = load_dataset("./my_images")                   # your own: an ImageFolder folder or an .npz (user.py)

Where the files are looked for, and what each dataset is, is `registry.py`'s business; the file formats
are `readers.py`'s (your own data's: `user.py`, `user_readers.py`); corrupting labels is `labels.py`'s. Subsets and the built-in splits use fixed
generators, so every run and every seed sees the same images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dlprobe.data import readers
from dlprobe.data.registry import DATASETS, check_available, locate
from dlprobe.data.user import UserDatasetInfo, dataset_key, is_user_dataset, read_user_dataset, user_dataset_info
from dlprobe.errors import ConfigError, DatasetError

NORMALIZATIONS = ("standard", "unit", "none")
SPLIT_SEED = 0  # fixed: the built-in splits and subsets never depend on the run seed


@dataclass
class ImageDataset:
    """Images (N, C, H, W) float32 and labels (N,) int64, already normalized and split. name: the registry
    name, or your dataset's absolute path; user: what your own dataset turned out to be (None: built in)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    files: list[str] = field(default_factory=list)
    note: str = ""
    user: UserDatasetInfo | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.x_test.shape[0])


def _read_raw(name: str, data_dir) -> tuple[list[np.ndarray], list[str]]:
    """[x_train, y_train, x_test, y_test] as uint8 images (N, H, W[, C]) and int64 labels."""
    test_count = DATASETS[name].sizes[1]
    if name == "mnist-5k":
        images, labels = readers.read_mnist_5k()
        return _split_builtin(images, labels, test_count), [str(readers.mnist_5k_path())]
    if name == "digits":
        images, labels = readers.read_digits()
        return _split_builtin(images, labels, test_count), ["sklearn.datasets.load_digits"]
    files = locate(name, data_dir)
    if name == "cifar10":
        return list(readers.read_cifar10(files[0])), [str(files[0])]
    arrays = [readers.read_idx(path) for path in files]
    for (images, labels), (image_file, label_file) in ((arrays[0:2], files[0:2]), (arrays[2:4], files[2:4])):
        if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
            raise DatasetError(f"{image_file} must hold uint8 (N, H, W) images and {label_file} "
                               f"(N,) labels; got {images.dtype} {images.shape} and {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DatasetError(f"{label_file} must hold integer labels, got {labels.dtype}")
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{image_file} holds {images.shape[0]} images but {label_file} "
                               f"holds {labels.shape[0]} labels")
    return [arrays[0], arrays[1].astype(np.int64), arrays[2], arrays[3].astype(np.int64)], \
        [str(path) for path in files]


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes in proportion to `counts` (largest remainder), never above counts."""
    exact = counts * (total / counts.sum())
    share = np.minimum(np.floor(exact).astype(np.int64), counts)
    for index in np.argsort(-(exact - share), kind="stable")[: total - share.sum()]:
        share[index] += 1
    return share


def stratified_indices(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, rest): `size` indices with the class proportions of `labels`, both shuffled."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    chosen, rest = [], []
    for label, share in zip(classes, _allocate(counts, size)):
        members = rng.permutation(np.flatnonzero(labels == label))
        chosen.append(members[:share])
        rest.append(members[share:])
    return rng.permutation(np.concatenate(chosen)), rng.permutation(np.concatenate(rest))


def _split_builtin(images, labels, test_count: int) -> list[np.ndarray]:
    # The files are sorted by class: a fixed stratified shuffle gives the same split in every run.
    test, train = stratified_indices(labels, test_count, SPLIT_SEED)
    return [images[train], labels[train], images[test], labels[test]]


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in 0..255 (float images: their values)."""
    array = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std, in pixel units 0..255, of uint8 images (N, H, W[, C]).

    Computed from a 256-bin histogram per channel: exact, and no float copy of a 600 MB CIFAR set.
    """
    channels = images.reshape(-1, 1 if images.ndim == 3 else images.shape[-1])
    levels = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in channels.T:
        counts = np.bincount(channel, minlength=256).astype(np.float64)
        mean = counts @ levels / counts.sum()
        means.append(mean)
        stds.append(np.sqrt(counts @ (levels - mean) ** 2 / counts.sum()))
    return np.array(means), np.array(stds)


def _float_channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std, in float64, of float images (N, H, W[, C])."""
    channels = images.reshape(-1, 1 if images.ndim == 3 else images.shape[-1]).astype(np.float64)
    return channels.mean(axis=0), channels.std(axis=0)


def _normalize(images_train: np.ndarray, images_test: np.ndarray, how: str):
    """uint8 images (0..255; or float images in [0, 1], your own .npz's) -> float32 (N, C, H, W) tensors,
    normalized with training-set statistics only."""
    x_train, x_test = _to_tensor(images_train), _to_tensor(images_test)
    if how == "none":
        return x_train, x_test
    if how == "unit":
        scale = 255.0 if images_train.dtype == np.uint8 else 1.0  # float pixels are in [0, 1] already
        return x_train.div_(scale), x_test.div_(scale)
    if images_train.dtype == np.uint8:
        mean, std = channel_statistics(images_train)
    else:
        mean, std = _float_channel_statistics(images_train)
    # A constant channel (std 0) is only centred: dividing by ~0 would blow it up.
    mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(np.where(std > 0, std, 1.0), dtype=torch.float32).view(1, -1, 1, 1)
    return x_train.sub_(mean).div_(std), x_test.sub_(mean).div_(std)


def _append(note: str, text: str) -> str:
    return f"{note}; {text}" if note else text


def check_subset_size(name: str, split: str, size: int | None, available: int) -> None:
    """A `split` ("train"/"test") subset of `size` images must fit the `available` ones of dataset `name`.
    Checked by `run` before anything starts (with the registry's sizes) and again by `load_dataset`."""
    if size is None:
        return
    if size < 1:
        raise ConfigError(f"{split}_size must be at least 1, got {size}")
    if size > available:
        raise ConfigError(f"{split}_size={size} (from the profile or your options) is more than the {available} {split} "
                          f"images of {name}; give --set {split}_size=N with N <= {available}")


def dataset_sizes(name: str, data_dir: str | Path | None = None) -> tuple[int, int]:
    """(num_train, num_test) of dataset `name` (a registry name or your dataset's PATH) once it is known to be
    there: the registry's sizes, or your dataset's (read and validated, once per process: user.py). DatasetError
    when it cannot be had. `run` asks before anything starts."""
    key = dataset_key(name)
    if is_user_dataset(key):
        info = user_dataset_info(key)
        return info.num_train, info.num_test
    check_available(key, data_dir)
    return DATASETS[key].sizes


def load_dataset(name: str, *, data_dir: str | Path | None = None, train_size: int | None = None,
                 test_size: int | None = None, normalize: str = "standard") -> ImageDataset:
    """Load, validate, subset (stratified, fixed generator) and normalize a dataset: a registry name, or the
    PATH of your own (an ImageFolder folder or an .npz, user.py).

    normalize: "standard" (per-channel mean/std of the training set), "unit" (pixels / 255 in
    [0, 1]; float images as stored, in [0, 1]) or "none" (0..255, or as stored). train_size/test_size: a
    stratified subset of that many images (None: all of the split).
    """
    name = dataset_key(name)
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    user = read_user_dataset(name) if is_user_dataset(name) else None
    if user is not None:
        (x_train, y_train, x_test, y_test), files = user.arrays, [name]
        num_classes, note = user.info.num_classes, user.info.note
    else:
        (x_train, y_train, x_test, y_test), files = _read_raw(name, data_dir)
        num_classes, note = DATASETS[name].num_classes, DATASETS[name].note
    for labels, what in ((y_train, "training"), (y_test, "test")):
        if labels.size == 0:
            raise DatasetError(f"{name} has no {what} images ({', '.join(files)})")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise DatasetError(f"{name} {what} labels must be in 0..{num_classes - 1}, found "
                               f"{labels.min()}..{labels.max()} ({', '.join(files)})")
    check_subset_size(name, "train", train_size, len(y_train))
    check_subset_size(name, "test", test_size, len(y_test))
    if train_size is not None and train_size < len(y_train):
        chosen, _ = stratified_indices(y_train, train_size, SPLIT_SEED)
        x_train, y_train = x_train[chosen], y_train[chosen]
        note = _append(note, f"stratified training subset of {train_size}")
    if test_size is not None and test_size < len(y_test):
        chosen, _ = stratified_indices(y_test, test_size, SPLIT_SEED + 1)
        x_test, y_test = x_test[chosen], y_test[chosen]
        note = _append(note, f"stratified test subset of {test_size}")
    x_train, x_test = _normalize(x_train, x_test, normalize)
    return ImageDataset(name, x_train, torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.int64)), x_test,
                        torch.from_numpy(np.ascontiguousarray(y_test, dtype=np.int64)),
                        num_classes, files, note, user.info if user is not None else None)
