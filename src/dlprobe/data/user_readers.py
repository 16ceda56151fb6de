"""Readers for your own image datasets: an ImageFolder-style folder (Pillow) and an `.npz` (no pickles).

    images = read_image_folder(Path("my_images"), hasher)   # RawUserData: arrays, class names, files read
    arrays = read_npz(Path("my.npz"), hasher)

A folder holds `train/<class>/*.png|jpg|jpeg` and `test/<class>/...` (the class folders, sorted by name, give
the labels 0..C-1; train and test must name the same classes). An `.npz` holds `x_train, y_train, x_test,
y_test` (and optionally `classes`, a string array of C class names); x is uint8 pixels 0..255 or floats in
[0, 1], laid out (N, H, W), (N, H, W, C) or (N, C, H, W); y holds integer labels 0..C-1. Every file is read
once: its bytes feed `hasher` (the dataset's content digest) and are decoded from the same buffer. Files and
folders whose names start with "." (.DS_Store, .ipynb_checkpoints) are not data and are skipped.

Every problem raises a one-line `DatasetError` naming the file. Images come back as numpy arrays (N, H, W)
(one channel) or (N, H, W, C) with the dtype they were stored in (uint8, or float32/float64 in [0, 1]); labels
int64 (N,), as the built-in readers return them.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlprobe.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
SPLITS = ("train", "test")
MAX_CHANNELS = 4  # an .npz's channel axis is the one of length <= 4, its image sides are longer
# Pillow modes read as one 8-bit channel, or converted to three (palette, CMYK and YCbCr JPEGs).
GRAY_MODES = ("1", "L")
COLOR_MODES = ("RGB", "P", "CMYK", "YCbCr")


@dataclass
class RawUserData:
    """[x_train, y_train, x_test, y_test] (images (N, H, W[, C]), labels int64 (N,)), the class names (C,)
    and the files read (the folder's images or the one .npz)."""

    arrays: list[np.ndarray]
    classes: tuple[str, ...]
    files: list[Path]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def image_folder_files(root: Path) -> dict[str, dict[str, list[Path]]]:
    """{"train"|"test": {class name: [image files, sorted by name]}} of an ImageFolder, class names sorted,
    the layout checked (train/ and test/ present, class folders non-empty, image files only, same classes)."""
    layout = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            raise DatasetError(f"dataset folder {root} has no {split}/ folder: expected {root}/train/<class>/*.png "
                               f"and {root}/test/<class>/*.png (an ImageFolder layout)")
        entries = sorted(filter(_visible, folder.iterdir()))
        strays = [entry for entry in entries if not entry.is_dir()]
        if strays:
            raise DatasetError(f"{strays[0]} is not inside a class folder: images go in {folder}/<class>/")
        if not entries:
            raise DatasetError(f"{folder} holds no class folders: images go in {folder}/<class>/")
        layout[split] = {entry.name: _class_files(entry) for entry in entries}
    train, test = sorted(layout["train"]), sorted(layout["test"])
    if train != test:
        only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
        raise DatasetError(f"train/ and test/ of {root} name different classes (only in train/: "
                           f"{', '.join(only_train) or 'none'}; only in test/: {', '.join(only_test) or 'none'})")
    if len(train) < 2:
        raise DatasetError(f"{root} has {len(train)} class folder ({', '.join(train)}); a classifier needs at least 2")
    return layout


def _class_files(folder: Path) -> list[Path]:
    files = sorted(filter(_visible, folder.iterdir()))
    if not files:
        raise DatasetError(f"class folder {folder} is empty")
    for path in files:
        if path.is_dir():
            raise DatasetError(f"{path} is a folder inside class folder {folder}: images must lie directly in it")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DatasetError(f"{path} is not an image file (expected {', '.join(IMAGE_SUFFIXES)}); "
                               "move it out of the class folder")
    return files


def _decode_image(path: Path, data: bytes) -> np.ndarray:
    """One PNG/JPEG as uint8 (H, W) (grayscale) or (H, W, 3) (colour); alpha only when fully opaque."""
    from PIL import Image  # imported here: only your own image datasets need Pillow

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes everything: a truncated or corrupt file fails here, not later
            if image.format not in ("PNG", "JPEG"):
                raise DatasetError(f"{path} is a {image.format} image; dlprobe reads PNG and JPEG")
            mode = image.mode
            if mode in GRAY_MODES:
                return np.asarray(image.convert("L"), dtype=np.uint8)
            if mode in COLOR_MODES:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
            if mode in ("RGBA", "LA", "PA"):
                pixels = np.asarray(image.convert("RGBA" if mode != "LA" else "LA"), dtype=np.uint8)
                if pixels[..., -1].min() < 255:
                    raise DatasetError(f"{path} has transparent pixels (mode {mode}); dlprobe reads grayscale or "
                                       "RGB images: save it without an alpha channel")
                return np.ascontiguousarray(pixels[..., 0] if mode == "LA" else pixels[..., :3])
            raise DatasetError(f"{path} has image mode {mode} (e.g. 16-bit or float pixels); dlprobe reads 8-bit "
                               "grayscale or RGB PNG/JPEG")
    except DatasetError:
        raise
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DatasetError(f"cannot read image {path}: {_one_line(error)}") from None


def _describe_pixels(image: np.ndarray) -> str:
    channels = "grayscale" if image.ndim == 2 else "RGB"
    return f"{image.shape[1]}x{image.shape[0]} {channels}"


def read_image_folder(root: Path, hasher) -> RawUserData:
    """Decode every image of an ImageFolder (layout as `image_folder_files` checks it); hasher.update gets each
    file's relative path and bytes, in sorted order. All images must share one size and channel count."""
    layout = image_folder_files(root)
    classes = tuple(sorted(layout["train"]))
    arrays, files, first = [], [], None
    for split in SPLITS:
        images, labels = [], []
        for label, name in enumerate(classes):
            for path in layout[split][name]:
                try:
                    data = path.read_bytes()
                except OSError as error:
                    raise DatasetError(f"cannot read image {path}: {error.strerror or _one_line(error)}") from None
                relative = path.relative_to(root).as_posix().encode()
                hasher.update(len(relative).to_bytes(8, "little") + relative + len(data).to_bytes(8, "little"))
                hasher.update(data)
                image = _decode_image(path, data)
                if first is None:
                    first = (path, image)
                elif image.shape != first[1].shape:
                    raise DatasetError(f"image {path} is {_describe_pixels(image)} but {first[0]} is "
                                       f"{_describe_pixels(first[1])}: all images must have one size and channel count")
                images.append(image)
                labels.append(label)
                files.append(path)
        arrays += [np.stack(images), np.array(labels, dtype=np.int64)]
    return RawUserData(arrays, classes, files)


# --- .npz -----------------------------------------------------------------------------------------


def _load_npz(path: Path, data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz read with allow_pickle=False: pickled objects are refused, never unpickled."""
    pickled = (f"{path} holds pickled Python objects; dlprobe loads .npz files with allow_pickle=False: "
               "store plain numeric arrays (np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...))")
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error):
            raise DatasetError(pickled) from None
        raise DatasetError(f"cannot read {path}: {_one_line(error)}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetError(f"cannot read {path}: not a valid .npz archive ({_one_line(error)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path} holds a single array, not an .npz archive with {', '.join(NPZ_KEYS)}")
    with archive:
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise DatasetError(f"{path} lacks {', '.join(missing)} (it holds: {', '.join(archive.files) or 'nothing'}); "
                               f"an .npz dataset holds {', '.join(NPZ_KEYS)}")
        arrays = {}
        for key in NPZ_KEYS + (("classes",) if "classes" in archive.files else ()):
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                if "pickle" in str(error) or "Object arrays" in str(error):
                    raise DatasetError(f"{pickled} ({key} is an object array)") from None
                raise DatasetError(f"cannot read {key} of {path}: {_one_line(error)}") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                raise DatasetError(f"cannot read {key} of {path}: {_one_line(error)}") from None
    return arrays


def _channels_last(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """(N, H, W) stays; (N, H, W, C) stays; (N, C, H, W) becomes (N, H, W, C). C is 1..4 and H, W > 4, which
    tells the layouts apart; anything else is an error."""
    if x.ndim == 3:
        return x
    if x.ndim == 4:
        first, last = x.shape[1] <= MAX_CHANNELS, x.shape[3] <= MAX_CHANNELS
        if last and not first:
            return x
        if first and not last:
            return x.transpose(0, 2, 3, 1)
    raise DatasetError(f"{key} in {path} has shape {x.shape}: store images as (N, H, W), (N, H, W, C) or "
                       f"(N, C, H, W) with 1 to {MAX_CHANNELS} channels and sides of more than {MAX_CHANNELS} pixels")


def _check_pixels(path: Path, key: str, x: np.ndarray) -> None:
    if x.dtype == np.uint8:
        return
    if not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(f"{key} in {path} has dtype {x.dtype}; store uint8 pixels (0..255) or floats in [0, 1]")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise DatasetError(f"{key} in {path} holds {bad} NaN or infinite values")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise DatasetError(f"{key} in {path} holds floats in [{x.min():g}, {x.max():g}]; float pixels must lie in "
                           "[0, 1] (or store uint8 0..255)")


def _check_labels(path: Path, key: str, y: np.ndarray, count: int, x_key: str) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{key} in {path} must be a 1-D array of integer labels, got {y.dtype} {y.shape}")
    if y.shape[0] != count:
        raise DatasetError(f"{path} holds {count} images in {x_key} but {y.shape[0]} labels in {key}")
    if count == 0:
        raise DatasetError(f"{x_key} in {path} holds no images")
    return y.astype(np.int64)


def _class_names(path: Path, arrays: dict, y_train: np.ndarray, y_test: np.ndarray) -> tuple[str, ...]:
    """The class names: the `classes` array when given (C = its length), else "0".."C-1" with C = 1 + the
    largest training label. Labels outside 0..C-1, a test label no training image has, and a class without a
    training image are errors."""
    named = "classes" in arrays
    for key, labels in (("y_train", y_train), ("y_test", y_test)):
        if labels.min() < 0:
            raise DatasetError(f"{key} in {path} holds label {labels.min()}: labels must be 0..C-1")
    if named:
        names = arrays["classes"]
        if names.ndim != 1 or names.dtype.kind not in "US" or len(set(names.tolist())) != names.size:
            raise DatasetError(f"classes in {path} must be a 1-D array of distinct strings, got {names.dtype} {names.shape}")
        classes = tuple(name.decode() if isinstance(name, bytes) else str(name) for name in names.tolist())
    else:
        classes = tuple(str(label) for label in range(int(y_train.max()) + 1))
    count = len(classes)
    for key, labels in (("y_train", y_train), ("y_test", y_test)):
        if named and labels.max() >= count:
            raise DatasetError(f"{key} in {path} holds label {labels.max()}, outside 0..{count - 1} (the {count} "
                               "names in classes)")
    if y_test.max() >= count:
        raise DatasetError(f"y_test in {path} holds label {y_test.max()} but y_train only 0..{count - 1}: train and "
                           "test must have the same classes")
    absent = np.setdiff1d(np.arange(count), y_train)
    if absent.size:
        raise DatasetError(f"y_train in {path} has no image of class {', '.join(map(str, absent[:5].tolist()))}: labels "
                           f"must be 0..{count - 1} with every class in the training set")
    if count < 2:
        raise DatasetError(f"{path} has {count} class; a classifier needs at least 2")
    return classes


def read_npz(path: Path, hasher) -> RawUserData:
    """x_train, y_train, x_test, y_test (and optional classes) of an .npz, validated; images channels-last."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error.strerror or _one_line(error)}") from None
    hasher.update(data)
    arrays = _load_npz(path, data)
    x_train, x_test = (_channels_last(path, key, arrays[key]) for key in ("x_train", "x_test"))
    for key, x in (("x_train", x_train), ("x_test", x_test)):
        _check_pixels(path, key, x)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"{path}: x_train images are {x_train.shape[1:]} but x_test images {x_test.shape[1:]} "
                           "(after channels-last): both must have one size and channel count")
    if x_train.dtype != x_test.dtype:
        raise DatasetError(f"{path}: x_train is {x_train.dtype} but x_test {x_test.dtype}; store both alike")
    y_train = _check_labels(path, "y_train", arrays["y_train"], x_train.shape[0], "x_train")
    y_test = _check_labels(path, "y_test", arrays["y_test"], x_test.shape[0], "x_test")
    classes = _class_names(path, arrays, y_train, y_test)
    return RawUserData([np.ascontiguousarray(x_train), y_train, np.ascontiguousarray(x_test), y_test], classes, [path])
