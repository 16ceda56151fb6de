"""Your own dataset (`--dataset PATH`): ImageFolder folders (PNG/JPEG, grayscale/RGB) and .npz files generated here.

Good cases load with the pixels, labels, classes and shapes written; one experiment's smoke profile runs end to end
on each kind and records what was inferred (and the content digest) in summary.json. Every broken case is one line
on stderr naming the file, with nothing trusted left under --out. The run identity: a path's content digest joins
the config hash (an edited file is a new run directory, two spellings of one path are one), while a built-in name
hashes exactly as before (no existing run directory moves).
"""

import hashlib
import json
import pickle
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlprobe.cli import main
from dlprobe.config import build_config, load_config_file
from dlprobe.config_resolution import RunRequest, resolve_configs
from dlprobe.data.images import load_dataset
from dlprobe.data.tasks import image_task
from dlprobe.data.user import dataset_key
from dlprobe.errors import ConfigError, DatasetError
from dlprobe.experiments import all_experiments, get_experiment
from dlprobe.experiments.runner import run_directory_for

from image_files import isolated_environment  # noqa: F401 (an autouse fixture)
from test_bad_input import assert_rejected, run_cli

CLASSES = ("zebra", "ant", "moth")  # created in this order; the labels follow the sorted folder names


def write_folder(root: Path, mode="L", suffix=".png", size=(6, 5), counts=(4, 2), classes=CLASSES, seed=0) -> dict:
    """train/<class>/NN.png and test/<class>/NN.png with random pixels; {(split, class, file name): pixels written}."""
    rng = np.random.default_rng(seed)
    shape = size[::-1] + ((3,) if mode == "RGB" else ())  # Pillow sizes are (width, height); arrays (H, W[, C])
    written = {}
    for split, count in zip(("train", "test"), counts):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(pixels, mode).save(folder / f"{index:02d}{suffix}", quality=95)
                written[split, name, f"{index:02d}{suffix}"] = pixels
    return written


def npz_arrays(num_train=12, num_test=6, shape=(5, 4), classes=3, dtype=np.uint8, seed=0) -> dict:
    rng = np.random.default_rng(seed)

    def images(count):
        if dtype == np.uint8:
            return rng.integers(0, 256, (count, *shape), dtype=np.uint8)
        return rng.random((count, *shape)).astype(dtype)

    return {"x_train": images(num_train), "y_train": np.arange(num_train) % classes,
            "x_test": images(num_test), "y_test": np.arange(num_test) % classes}


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def expected_folder_arrays(written: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The images of one split in the order dlprobe promises: classes by sorted folder name, files by name."""
    keys = sorted((key for key in written if key[0] == split), key=lambda key: (key[1], key[2]))
    names = sorted(CLASSES)
    return np.stack([written[key] for key in keys]), np.array([names.index(key[1]) for key in keys])


# ---------------------------------------------------------------- good cases: what is loaded


def test_grayscale_png_folder_loads_the_pixels_labels_and_classes_written(tmp_path):
    written = write_folder(tmp_path / "gray", mode="L")
    data = load_dataset(str(tmp_path / "gray"), normalize="none")
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        pixels, labels = expected_folder_arrays(written, split)
        assert x.shape == (len(labels), 1, 5, 6) and x.dtype == torch.float32
        assert torch.equal(x[:, 0], torch.from_numpy(pixels).float())
        assert torch.equal(y, torch.from_numpy(labels))
    assert data.user.classes == ("ant", "moth", "zebra") and data.num_classes == 3
    assert data.input_shape == (1, 5, 6) and data.user.format == "imagefolder"
    assert (data.num_train, data.num_test) == (12, 6)
    train_pixels = expected_folder_arrays(written, "train")[0].astype(np.float64)
    test_pixels = expected_folder_arrays(written, "test")[0]
    standard = load_dataset(str(tmp_path / "gray"))  # the default: training-set mean and std
    expected = (test_pixels - train_pixels.mean()) / train_pixels.std()
    assert torch.allclose(standard.x_test[:, 0], torch.from_numpy(expected).float(), atol=1e-5)


def test_rgb_png_folder_is_channels_first_and_unit_scales_to_0_1(tmp_path):
    written = write_folder(tmp_path / "rgb", mode="RGB", size=(7, 4))
    data = load_dataset(str(tmp_path / "rgb"), normalize="unit")
    pixels, labels = expected_folder_arrays(written, "train")
    assert data.input_shape == (3, 4, 7)
    assert torch.allclose(data.x_train, torch.from_numpy(pixels.transpose(0, 3, 1, 2)).float() / 255.0)
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    assert torch.equal(data.y_train, torch.from_numpy(labels))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_folder_matches_what_pillow_decodes(tmp_path, mode):
    written = write_folder(tmp_path / "jpg", mode=mode, suffix=".jpg")
    data = load_dataset(str(tmp_path / "jpg"), normalize="none")
    keys = sorted((key for key in written if key[0] == "test"), key=lambda key: (key[1], key[2]))
    decoded = np.stack([np.asarray(Image.open(tmp_path / "jpg" / split / name / file)) for split, name, file in keys])
    channels_first = decoded[:, None] if mode == "L" else decoded.transpose(0, 3, 1, 2)
    assert data.x_test.shape == channels_first.shape
    assert torch.equal(data.x_test, torch.from_numpy(channels_first).float())
    # lossy, but the same images in the same order: each is closer to its own original than to the others
    original = np.stack([written[key] for key in keys]).astype(float).reshape(len(keys), -1)
    distances = np.abs(decoded.astype(float).reshape(len(keys), 1, -1) - original[None]).mean(axis=2)
    assert (distances.argmin(axis=1) == np.arange(len(keys))).all()


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_uint8_layouts(tmp_path, layout):
    arrays = npz_arrays(shape={"NHW": (5, 6), "NHWC": (5, 6, 3), "NCHW": (3, 5, 6)}[layout])
    data = load_dataset(str(write_npz(tmp_path / "d.npz", **arrays)), normalize="none")
    x = arrays["x_train"]
    expected = x[:, None] if layout == "NHW" else x.transpose(0, 3, 1, 2) if layout == "NHWC" else x
    assert data.input_shape == expected.shape[1:]
    assert torch.equal(data.x_train, torch.from_numpy(expected).float())
    assert torch.equal(data.y_test, torch.from_numpy(arrays["y_test"]))
    assert data.user.classes == ("0", "1", "2") and data.user.pixels == "uint8 0..255"


def test_npz_float_pixels_keep_their_values_and_standardize_per_channel(tmp_path):
    arrays = npz_arrays(num_train=40, shape=(6, 5, 2), dtype=np.float32)
    path = str(write_npz(tmp_path / "f.npz", **arrays, classes=np.array(["no", "maybe", "yes"])))
    unit = load_dataset(path, normalize="unit")
    assert torch.equal(unit.x_train, torch.from_numpy(arrays["x_train"].transpose(0, 3, 1, 2)))
    assert unit.user.classes == ("no", "maybe", "yes") and unit.user.pixels == "float32 in [0, 1]"
    standard = load_dataset(path)
    channels = arrays["x_train"].astype(np.float64).reshape(-1, 2)
    expected = (arrays["x_test"] - channels.mean(axis=0)) / channels.std(axis=0)
    assert torch.allclose(standard.x_test, torch.from_numpy(expected.transpose(0, 3, 1, 2)).float(), atol=1e-5)
    assert torch.allclose(standard.x_train.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)


def test_subsets_are_stratified_and_loading_twice_gives_equal_unmodified_data(tmp_path):
    arrays = npz_arrays(num_train=60, num_test=30, dtype=np.float32)
    path = str(write_npz(tmp_path / "s.npz", **arrays))
    first = load_dataset(path, train_size=30, test_size=15)
    assert torch.bincount(first.y_train).tolist() == [10, 10, 10] and torch.bincount(first.y_test).tolist() == [5, 5, 5]
    second = load_dataset(path, train_size=30, test_size=15)  # from the process cache: must not see the first's in-place work
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_train, second.y_train)
    with pytest.raises(ConfigError, match="more than the 60 train images of"):
        load_dataset(path, train_size=61)


def test_opaque_alpha_and_palette_pngs_read_as_rgb(tmp_path):
    written = write_folder(tmp_path / "d", mode="RGB")
    rgba = np.concatenate([written["train", "ant", "00.png"], np.full((5, 6, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "d" / "train" / "ant" / "00.png")
    palette = Image.fromarray(written["train", "ant", "01.png"]).convert("P")  # the palette decides the colours
    palette.save(tmp_path / "d" / "train" / "ant" / "01.png")
    data = load_dataset(str(tmp_path / "d"), normalize="none")
    assert torch.equal(data.x_train[0], torch.from_numpy(written["train", "ant", "00.png"].transpose(2, 0, 1)).float())
    assert torch.equal(data.x_train[1], torch.from_numpy(np.array(palette.convert("RGB")).transpose(2, 0, 1)).float())


def test_hidden_files_are_not_data(tmp_path):
    write_folder(tmp_path / "d")
    (tmp_path / "d" / "train" / "ant" / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "d" / "test" / ".ipynb_checkpoints").mkdir()
    assert load_dataset(str(tmp_path / "d")).num_train == 12


# ---------------------------------------------------------------- end to end: a smoke run records what was inferred


def smoke(capsys, out: Path, dataset, *extra):
    return run_cli(capsys, ["run", "random-labels", "--profile", "smoke", "--dataset", dataset, "--train-size", "24",
                            "--set", "test_size=12", "--out", out, "--quiet", *extra])


@pytest.mark.parametrize("kind", ["gray png folder", "rgb jpeg folder", "float npz"])
def test_random_labels_smoke_runs_on_your_dataset_and_records_it(capsys, tmp_path, kind):
    if kind == "float npz":
        arrays = npz_arrays(num_train=30, num_test=15, shape=(2, 6, 5), dtype=np.float64)  # (N, C, H, W)
        dataset, shape, classes = write_npz(tmp_path / "mine.npz", **arrays), [2, 6, 5], ["0", "1", "2"]
    else:
        mode, suffix = ("L", ".png") if kind.startswith("gray") else ("RGB", ".jpeg")
        write_folder(tmp_path / "mine", mode=mode, suffix=suffix, counts=(10, 5))
        dataset, shape, classes = tmp_path / "mine", [1 if mode == "L" else 3, 5, 6], sorted(CLASSES)
    code, err = smoke(capsys, tmp_path / "out", dataset)
    assert code == 0, err
    (summary_path,) = (tmp_path / "out").rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    record = summary["user_datasets"][str(dataset)]
    assert record["input_shape"] == shape and record["classes"] == classes and record["num_classes"] == 3
    assert (record["num_train"], record["num_test"]) == (30, 15)
    assert summary["dataset"] == str(dataset) and summary["num_classes"] == 3 and summary["num_train"] == 24
    assert record["sha256"][:12] in summary["dataset_note"]
    assert json.loads((summary_path.parent / "config.json").read_text())["user_datasets"][str(dataset)] == record
    if kind == "float npz":  # the digest of an .npz is the sha256 of its bytes
        assert record["sha256"] == hashlib.sha256(dataset.read_bytes()).hexdigest()
    # label randomisation worked on it: all labels shuffled at noise 1, none at noise 0
    assert summary["runs"]["0"]["labels_changed"]["mean"] == 0.0 and summary["runs"]["1"]["labels_changed"]["mean"] > 0.3
    code, err = smoke(capsys, tmp_path / "out", dataset)
    assert code == 0 and len(list((tmp_path / "out").rglob("summary.json"))) == 1  # the rerun is skipped: done


# ---------------------------------------------------------------- identity


def config_for(dataset, experiment="random-labels"):
    spec = get_experiment(experiment)
    key = "datasets" if experiment == "fit-task" else "dataset"
    return build_config(spec.config_class, spec.profiles["smoke"], {}, {key: dataset}, "test")


def test_editing_a_file_makes_a_new_run_directory_and_restoring_it_the_old_one(tmp_path):
    write_folder(tmp_path / "d")
    image = tmp_path / "d" / "test" / "moth" / "01.png"
    before = image.read_bytes()
    hash_before = config_for(str(tmp_path / "d")).identity_hash()
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(image)
    assert config_for(str(tmp_path / "d")).identity_hash() != hash_before
    image.write_bytes(before)
    assert config_for(str(tmp_path / "d")).identity_hash() == hash_before  # content, not the file's dates


def test_editing_an_npz_makes_a_new_run_directory_from_the_command_line(capsys, tmp_path):
    arrays = npz_arrays(num_train=30, num_test=15)
    path = write_npz(tmp_path / "mine.npz", **arrays)
    short = ["--epochs", "1", "--seeds", "1", "--set", "size_sweep=", "--set", "label_noise=1"]
    assert smoke(capsys, tmp_path / "out", path, *short)[0] == 0
    arrays["y_test"] = arrays["y_test"][::-1].copy()
    write_npz(path, **arrays)
    code, err = smoke(capsys, tmp_path / "out", path, *short)
    assert code == 0, err
    assert len({p.parent for p in (tmp_path / "out").rglob("DONE")}) == 2


def test_two_spellings_of_one_path_are_one_run(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write_npz(tmp_path / "data" / "mine.npz", **npz_arrays())
    (tmp_path / "link").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    spellings = ["data/mine.npz", "./data/../data/mine.npz", str(tmp_path / "data" / "mine.npz"), "link/mine.npz"]
    configs = [config_for(spelling) for spelling in spellings]
    assert {config.dataset for config in configs} == {str((tmp_path / "data" / "mine.npz").resolve())}
    assert len({config.identity_hash() for config in configs}) == 1
    spec = get_experiment("random-labels")
    assert len({run_directory_for(spec, config, "smoke", tmp_path / "out") for config in configs}) == 1
    # a copy elsewhere holds the same bytes (same digest) but is another dataset path: another run
    (tmp_path / "copy.npz").write_bytes((tmp_path / "data" / "mine.npz").read_bytes())
    assert config_for("copy.npz").identity_hash() != configs[0].identity_hash()


@pytest.mark.parametrize("experiment, key, value, canonical", [
    ("random-labels", "dataset", "DIGITS", "digits"), ("sensitivity", "dataset", "mnist", "mnist"),
    ("interpolation", "dataset", "fashion_mnist", "fashion-mnist"), ("grad-norm", "dataset", "CIFAR-10", "cifar10"),
    ("fit-task", "datasets", ("digits", "mnist-5k"), ["digits", "mnist-5k"])])
def test_built_in_names_hash_exactly_as_before(experiment, key, value, canonical):
    """The identity of a named dataset is the name itself: sha256 of {field: name} as the hash always was."""
    config = get_experiment(experiment).config_class(**{key: value})
    assert config.identity_hash() == hashlib.sha256(json.dumps({key: canonical}, sort_keys=True).encode()).hexdigest()[:8]


def test_a_path_hash_holds_path_and_digest(tmp_path):
    path = write_npz(tmp_path / "mine.npz", **npz_arrays())
    config = get_experiment("random-labels").config_class(dataset=str(path))
    identity = {"dataset": {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}}
    assert config.identity_hash() == hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def test_a_config_file_names_a_path_like_the_command_line(tmp_path, monkeypatch):
    write_folder(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text('dataset = "mine"\n[fit-task]\ndatasets = ["./mine/", "digits"]\n')
    experiments = [get_experiment("random-labels"), get_experiment("fit-task")]
    request = RunRequest(profile="smoke", file_data=load_config_file(tmp_path / "run.toml"))
    random_labels, fit_task = resolve_configs(experiments, request, {"random-labels", "fit-task"})
    assert random_labels.dataset == str(tmp_path / "mine") and fit_task.datasets == (str(tmp_path / "mine"), "digits")
    assert random_labels.identity_hash() == config_for("mine").identity_hash()


def test_tasks_of_trajectory_grad_norm_and_error_surface_take_a_path(tmp_path):
    path = write_npz(tmp_path / "mine.npz", **npz_arrays(shape=(5, 6, 3)))
    task = image_task(str(path), train_size=6)
    assert task.kind == "images" and task.name == str(path) and task.in_features == 90 and task.out_features == 3
    assert task.data.x_train.shape == (6, 3, 5, 6) and "sha256" in task.note


DATASET_EXPERIMENTS = [e.name for e in all_experiments() if {"dataset", "datasets"} & {f.name for f in fields(e.config_class)}]


@pytest.mark.parametrize("experiment", DATASET_EXPERIMENTS)
def test_every_experiment_with_a_dataset_takes_a_path_from_run(capsys, tmp_path, experiment):
    """`dlprobe run NAME --dataset PATH` is accepted and checked by every experiment that has a dataset: a broken
    file is refused before anything is written (the good file's end-to-end runs are the smoke tests above)."""
    assert len(DATASET_EXPERIMENTS) >= 8  # fit-task, trajectory, grad-norm, error-surface, random-labels, ...
    path = write_npz(tmp_path / "mine.npz", **npz_arrays())
    config = config_for(str(path), experiment)
    assert (config.datasets if experiment == "fit-task" else (config.dataset,)) == (str(path),)
    np.savez(path, **{**npz_arrays(num_train=30, num_test=15), "y_test": np.arange(15) % 3 + 5})  # classes 5..7: not in y_train
    code, err = run_cli(capsys, ["run", experiment, "--profile", "smoke", "--dataset", path, "--out", tmp_path / "out",
                                 "--quiet"])
    assert_rejected(code, err, f"y_test in {path} holds label", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fit_task_takes_a_path_among_its_datasets(tmp_path):
    path = write_npz(tmp_path / "mine.npz", **npz_arrays())
    config = config_for([str(path), "digits"], "fit-task")
    assert config.datasets == (str(path), "digits")
    assert config.identity_hash() != config_for(["digits"], "fit-task").identity_hash()


def test_dataset_key_keeps_names_and_rejects_what_is_not_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()  # a folder called mnist: the registry name still wins, ./mnist is the folder
    assert dataset_key("MNIST") == "mnist" and dataset_key("./mnist") == str(tmp_path / "mnist")
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'; known: .* or the PATH of your own"):
        dataset_key("imagenet")
    with pytest.raises(DatasetError, match="no such dataset file or folder: nothing.npz"):
        dataset_key("nothing.npz")


# ---------------------------------------------------------------- broken cases: one line naming the file


def png(path: Path, pixels: np.ndarray, mode=None) -> None:
    Image.fromarray(pixels, mode).save(path)


def first_image(root):
    return root / "train" / "ant" / "00.png"


def odd_image(root):  # compared with the first image (train/ant/00.png) when it is read
    return root / "test" / "moth" / "01.png"


def remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    path.rmdir()


FOLDER_CASES = {
    "corrupt image": (lambda root: first_image(root).write_bytes(b"\x89PNG\r\n\x1a\nnot really"), "cannot read image {file}",
                      first_image),
    "truncated image": (lambda root: first_image(root).write_bytes(first_image(root).read_bytes()[:60]),
                        "cannot read image {file}", first_image),
    "mixed sizes": (lambda root: png(odd_image(root), np.zeros((7, 6), np.uint8)), "{file} is 6x7 grayscale but",
                    odd_image),
    "mixed channels": (lambda root: png(odd_image(root), np.zeros((5, 6, 3), np.uint8)), "{file} is 6x5 RGB but",
                       odd_image),
    "empty class folder": (lambda root: [p.unlink() for p in (root / "test" / "moth").iterdir()],
                           "class folder {file} is empty", lambda root: root / "test" / "moth"),
    "missing test": (lambda root: remove_tree(root / "test"), "{file} has no test/ folder", lambda root: root),
    "missing train": (lambda root: remove_tree(root / "train"), "{file} has no train/ folder", lambda root: root),
    "class mismatch": (lambda root: (root / "test" / "moth").rename(root / "test" / "bee"),
                       "train/ and test/ of {file} name different classes (only in train/: moth; only in test/: bee)",
                       lambda root: root),
    "non-image file": (lambda root: (root / "train" / "ant" / "notes.txt").write_text("hi"), "{file} is not an image file",
                       lambda root: root / "train" / "ant" / "notes.txt"),
    "file outside a class folder": (lambda root: (root / "train" / "x.png").write_bytes(first_image(root).read_bytes()),
                                    "{file} is not inside a class folder", lambda root: root / "train" / "x.png"),
    "one class": (lambda root: [remove_tree(root / split / name) for split in ("train", "test") for name in ("moth", "zebra")],
                  "has 1 class folder", lambda root: root),
    "transparent pixels": (lambda root: png(first_image(root), np.zeros((5, 6, 4), np.uint8), "RGBA"),
                           "{file} has transparent pixels", first_image),
    "16-bit image": (lambda root: Image.fromarray(np.zeros((5, 6), np.uint16)).save(first_image(root)),
                     "{file} has image mode I;16", first_image),
    "gif named png": (lambda root: Image.fromarray(np.zeros((5, 6), np.uint8)).save(first_image(root), format="GIF"),
                      "{file} is a GIF image", first_image),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_broken_image_folders(capsys, tmp_path, case):
    damage, fragment, named = FOLDER_CASES[case]
    root = tmp_path / "mine"
    write_folder(root)
    damage(root)
    code, err = smoke(capsys, tmp_path / "out", root)
    assert_rejected(code, err, fragment.format(file=named(root)), tmp_path / "out")
    with pytest.raises(DatasetError):  # the library call raises the same error
        load_dataset(str(root))


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _npz_with(**changes):
    def write(path: Path):
        arrays = npz_arrays(num_train=30, num_test=15)
        arrays.update(changes)
        write_npz(path, **{key: value for key, value in arrays.items() if value is not None})
    return write


NPZ_CASES = {
    "object array": (_npz_with(x_train=np.array([{"a": 1}] * 30, dtype=object)), "holds pickled Python objects"),
    "a pickle named .npz": (lambda path: path.write_bytes(pickle.dumps(Exploit(path.parent / "pwned"))),
                            "holds pickled Python objects"),
    "missing key": (_npz_with(y_test=None), "lacks y_test"),
    "x/y length mismatch": (_npz_with(y_train=np.arange(29) % 3), "holds 30 images in x_train but 29 labels in y_train"),
    "negative label": (_npz_with(y_test=np.r_[-1, np.arange(14) % 3]), "y_test in {file} holds label -1"),
    "label outside the named classes": (_npz_with(classes=np.array(["a", "b"])), "holds label 2, outside 0..1"),
    "test class the training set lacks": (_npz_with(y_test=np.r_[5, np.arange(14) % 3]),
                                          "y_test in {file} holds label 5 but y_train only 0..2"),
    "class missing from training": (_npz_with(y_train=np.arange(30) % 3 * 2), "has no image of class 1, 3"),
    "a huge label": (_npz_with(y_train=np.r_[10**15, np.arange(29) % 3]), "has no image of class 3, 4, 5, 6, 7"),
    "one class": (_npz_with(y_train=np.zeros(30, np.int64), y_test=np.zeros(15, np.int64)), "has 1 class"),
    "int64 pixels": (_npz_with(x_train=np.zeros((30, 5, 4), np.int64)), "x_train in {file} has dtype int64"),
    "NaN pixels": (_npz_with(x_train=np.full((30, 5, 4), np.nan, np.float32), x_test=np.zeros((15, 5, 4), np.float32)),
                   "x_train in {file} holds 600 NaN or infinite values"),
    "floats beyond 1": (_npz_with(x_train=np.full((30, 5, 4), 2.0), x_test=np.zeros((15, 5, 4))), "must lie in [0, 1]"),
    "float labels": (_npz_with(y_train=np.arange(30) % 3 * 1.0), "y_train in {file} must be a 1-D array of integer labels"),
    "train and test shapes differ": (_npz_with(x_test=np.zeros((15, 5, 5), np.uint8)), "x_train images are (5, 4)"),
    "train and test dtypes differ": (_npz_with(x_test=np.zeros((15, 5, 4), np.float32)), "x_train is uint8 but x_test float32"),
    "layout cannot be told": (_npz_with(x_train=np.zeros((30, 3, 5, 3), np.uint8)), "has shape (30, 3, 5, 3)"),
    "no test images": (_npz_with(x_test=np.zeros((0, 5, 4), np.uint8), y_test=np.zeros(0, np.int64)),
                       "x_test in {file} holds no images"),
    "not a zip": (lambda path: path.write_bytes(b"PK\x03\x04garbage" * 10), "cannot read {file}"),
    "a single .npy": (lambda path: np.save(open(path, "wb"), np.zeros(3)), "{file} holds a single array"),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_broken_npz_files(capsys, tmp_path, case):
    write, fragment = NPZ_CASES[case]
    path = tmp_path / "mine.npz"
    write(path)
    code, err = smoke(capsys, tmp_path / "out", path)
    assert_rejected(code, err, fragment.format(file=path), tmp_path / "out")
    assert str(path) in err
    assert not (tmp_path / "pwned").exists()  # a pickle is refused, never run
    with pytest.raises(DatasetError):
        load_dataset(str(path))


@pytest.mark.parametrize("name, fragment", [("nothing.npz", "no such dataset file or folder: nothing.npz"),
                                            ("notes.csv", "is not an .npz")])
def test_paths_that_are_not_datasets(capsys, tmp_path, monkeypatch, name, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.csv").write_text("1,2\n")
    code, err = smoke(capsys, tmp_path / "out", name)
    assert_rejected(code, err, fragment, tmp_path / "out")


def test_help_mentions_path(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "random-labels", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0 and "--dataset NAME|PATH" in text and "x_train, y_train, x_test, y_test" in text


def test_many_datasets_are_described_without_reading_them_again(tmp_path, monkeypatch):
    # more datasets than CACHED_DATASETS keep their arrays: their infos (identity, records) are still not re-read
    from dlprobe.data import user
    keys = []
    for index in range(user.CACHED_DATASETS + 2):
        path = tmp_path / f"d{index}.npz"
        rng = np.random.default_rng(index)
        np.savez(path, x_train=rng.integers(0, 256, (20, 4, 4), dtype=np.uint8), y_train=np.arange(20) % 2,
                 x_test=rng.integers(0, 256, (6, 4, 4), dtype=np.uint8), y_test=np.arange(6) % 2)
        keys.append(user.dataset_key(str(path)))
    first = [user.user_dataset_info(key).sha256 for key in keys]
    reads = []
    monkeypatch.setattr(user, "_read", lambda path: reads.append(path) or pytest.fail(f"{path} read again"))
    assert [user.user_dataset_info(key).sha256 for key in keys] == first and reads == []
