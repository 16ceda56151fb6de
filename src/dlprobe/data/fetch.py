"""Download MNIST, Fashion-MNIST and CIFAR-10 from their usual mirrors, verifying checksums.

    fetch_dataset("mnist", registry.download_folder("mnist"))     # what `dlprobe data fetch mnist` does

Each file is streamed to a hidden temporary file in the destination folder, hashed on the way,
and renamed into place only when its checksum matches, so a folder never holds a partial or
corrupt copy under the real name. Files already present with the right checksum are kept.
mnist-5k and digits ship inside Python packages and need no download (`describe_fetch` says so).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from dlprobe.data.registry import DATASETS, canonical_name
from dlprobe.errors import DatasetError

# Checksums of the published files: MNIST and Fashion-MNIST md5s as listed by torchvision's
# datasets/mnist.py, CIFAR-10's from its home page (and torchvision's datasets/cifar.py).
RESOURCES = {
    "mnist": {
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "http://yann.lecun.com/exdb/mnist/"],
        "checksums": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                      "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                      "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                      "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    },
    "fashion-mnist": {
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "checksums": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                      "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                      "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                      "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    },
    "cifar10": {
        "mirrors": ["https://www.cs.toronto.edu/~kriz/"],
        "checksums": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    },
}
CHUNK_BYTES = 1 << 20


def describe_fetch(name: str) -> str:
    """One line: what `fetch_dataset(name, ...)` would download, or why nothing is needed."""
    name = canonical_name(name)
    if DATASETS[name].ships_with is not None:
        return f"{name} ships inside {DATASETS[name].ships_with}; nothing to download"
    resource = RESOURCES[name]
    return (f"{name}: {', '.join(resource['checksums'])} from {' or '.join(resource['mirrors'])}")


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _algorithm(expected: str) -> str:
    # A 32-digit checksum is md5, a 64-digit one sha256: the table holds bare hex digests.
    algorithms = {32: "md5", 64: "sha256"}
    if len(expected) not in algorithms:
        raise DatasetError(f"checksum {expected!r} is neither an md5 nor a sha256 hex digest")
    return algorithms[len(expected)]


def _download(url: str, target: Path, expected: str, timeout: float, progress: bool) -> None:
    """Stream `url` into a temp file beside `target`, check it, rename; raise OSError-ish on failure."""
    digest = hashlib.new(_algorithm(expected))
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                      disable=not progress, leave=False) as bar:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != expected.lower():
            raise DatasetError(f"checksum mismatch ({_algorithm(expected)} expected {expected}, "
                               f"got {digest.hexdigest()})")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}" if not isinstance(error, DatasetError) else str(error)


def fetch_dataset(name: str, dest_dir: str | Path, *, mirrors: list[str] | None = None,
                  timeout: float = 30, progress: bool = True,
                  checksums: dict[str, str] | None = None) -> list[Path]:
    """Download `name`'s files into `dest_dir` (created if needed); returns their paths.

    mirrors: base URLs tried in order for each file (default: the dataset's usual mirrors).
    checksums: file name -> md5 or sha256 hex digest (default: the published ones); the keys
    are also the files fetched. Returns [] for mnist-5k and digits, which ship with packages.
    A file that cannot be fetched from any mirror raises DatasetError naming each URL and why.
    """
    name = canonical_name(name)
    if DATASETS[name].ships_with is not None:
        return []
    resource = RESOURCES[name]
    mirrors = list(mirrors if mirrors is not None else resource["mirrors"])
    checksums = dict(checksums if checksums is not None else resource["checksums"])
    dest_dir = Path(dest_dir).expanduser()
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"cannot create {dest_dir}: {error}") from error
    fetched = []
    for file_name, expected in checksums.items():
        target = dest_dir / file_name
        if target.is_file() and file_digest(target, _algorithm(expected)) == expected.lower():
            fetched.append(target)  # already there and intact
            continue
        failures = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + file_name
            try:
                _download(url, target, expected, timeout, progress)
                break
            except (DatasetError, OSError, http.client.HTTPException, ValueError) as error:
                failures.append(f"{url} ({_reason(error)})")
        else:
            raise DatasetError(f"could not download {file_name} for {name}: tried "
                               f"{'; '.join(failures) or 'no mirrors'}. Offline? Download it "
                               f"elsewhere and put it in --data-dir or $DLPROBE_DATA")
        fetched.append(target)
    return fetched
