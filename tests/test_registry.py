"""The dataset registry: names and aliases, where files are looked for and in which order, the error that
names every place tried, the availability check `run` makes first, and `dlprobe data list`'s rows."""

from pathlib import Path

import pytest

from dlprobe.data import registry
from dlprobe.data.images import load_dataset
from dlprobe.errors import DatasetError

from image_files import fake_mnist, isolated_environment  # noqa: F401 (an autouse fixture)


def test_canonical_name_accepts_the_usual_spellings():
    for spelling, name in (("CIFAR-10", "cifar10"), ("fashion_mnist", "fashion-mnist"), (" MNIST ", "mnist"),
                           ("mnist5k", "mnist-5k"), ("FashionMNIST", "fashion-mnist"), ("digits", "digits")):
        assert registry.canonical_name(spelling) == name


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DatasetError, match="known: mnist, fashion-mnist, cifar10, mnist-5k, digits"):
        load_dataset("imagenet")


@pytest.mark.parametrize("layout", ["", "mnist", "MNIST/raw"])
def test_load_mnist_from_environment_variable(tmp_path, monkeypatch, layout):
    fake_mnist(tmp_path / "root" / layout)
    monkeypatch.setenv("DLPROBE_DATA", str(tmp_path / "root"))
    assert load_dataset("mnist").num_train == 60


def test_data_dir_takes_precedence_over_environment(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "env", num_train=30)
    fake_mnist(tmp_path / "cli", num_train=40)
    monkeypatch.setenv("DLPROBE_DATA", str(tmp_path / "env"))
    assert load_dataset("mnist", data_dir=tmp_path / "cli").num_train == 40
    paths = registry.search_paths("fashion-mnist", tmp_path / "cli")
    assert paths[:2] == [tmp_path / "cli", tmp_path / "cli" / "fashion-mnist"]
    assert paths.index(tmp_path / "env") < paths.index(registry.cache_dir("fashion-mnist"))
    assert paths[-1] == Path("/usr/share/datasets/fashion-mnist")
    assert registry.search_paths("mnist-5k", tmp_path / "cli") == []  # built in: nothing to look for


def test_download_folder_is_searched_first_that_is_given(tmp_path, monkeypatch):
    assert registry.download_folder("mnist") == registry.cache_dir("mnist")
    monkeypatch.setenv("DLPROBE_DATA", str(tmp_path / "env"))
    assert registry.download_folder("mnist") == tmp_path / "env"
    assert registry.download_folder("mnist", tmp_path / "cli") == tmp_path / "cli"
    for data_dir in (None, tmp_path / "cli"):
        assert registry.download_folder("mnist", data_dir) in registry.search_paths("mnist", data_dir)


def test_missing_files_error_names_every_path_and_advice(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("DLPROBE_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetError) as raised:
        load_dataset("mnist", data_dir=tmp_path / "partial")
    message = str(raised.value)
    for path in registry.search_paths("mnist", tmp_path / "partial"):
        assert str(path) in message
    assert "missing t10k-labels-idx1-ubyte" in message and "dlprobe data fetch mnist" in message


def test_check_available_knows_the_built_in_datasets_and_reads_nothing(tmp_path):
    assert registry.check_available("mnist-5k").endswith("mnist_5k.csv.gz")
    assert "scikit-learn" in registry.check_available("digits")
    with pytest.raises(DatasetError, match="cifar10 not found; tried: .*dlprobe data fetch cifar10"):
        registry.check_available("CIFAR-10", tmp_path)
    fake_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"not an IDX file")  # not read: still there
    assert registry.check_available("mnist", tmp_path) == str(tmp_path / "mnist")


def test_list_datasets_reads_headers_only(tmp_path):
    fake_mnist(tmp_path / "mnist", num_train=30, num_test=10)
    rows = {row["name"]: row for row in registry.list_datasets(tmp_path)}
    assert set(rows) == set(registry.DATASETS)
    assert rows["mnist"]["available"] and (rows["mnist"]["num_train"], rows["mnist"]["num_test"]) == (30, 10)
    assert rows["mnist"]["location"] == str(tmp_path / "mnist")
    assert not rows["cifar10"]["available"] and "not found" in rows["cifar10"]["note"]
    assert rows["mnist-5k"]["available"] and rows["mnist-5k"]["num_train"] == 4000


def test_fashion_mnist_from_debian_package():
    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    data = load_dataset("fashion-mnist", train_size=1000, test_size=500)
    assert (data.num_train, data.num_test, data.input_shape) == (1000, 500, (1, 28, 28))
    assert data.files[0].startswith(str(folder))
    row = {r["name"]: r for r in registry.list_datasets()}["fashion-mnist"]
    assert row["available"] and (row["num_train"], row["num_test"]) == (60000, 10000)


@pytest.mark.parametrize("name", ["mnist-5k", "digits"])
def test_known_sizes_are_the_built_in_datasets_sizes(name):
    """The sizes `run` checks --train-size/--test-size against before it starts are the loaded ones."""
    data = load_dataset(name)
    info = registry.DATASETS[name]
    assert info.sizes == (len(data.x_train), len(data.x_test))
    assert (info.input_shape, info.num_classes) == (data.input_shape, data.num_classes)
