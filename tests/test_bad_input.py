"""Bad input of every kind is one line on stderr naming the problem, exit code 2, no traceback, nothing trusted.

Each case runs the CLI in-process (`dlprobe.cli.main`; argparse's SystemExit is caught). "Nothing trusted"
means no DONE marker and no summary.json anywhere under --out: a later run or the report can never pick up
the result of a rejected invocation. Cases already in tests/test_cli.py are not repeated here.

Groups: CLI options, function expressions, config files, dataset files (fake MNIST / CIFAR-10 written in
their on-disk formats, read through `--dataset mnist|cifar10 --data-dir`), run directories (damaged or
foreign config.json, trials and checkpoints).
"""

import gzip
import json
import os
import pickle
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dlprobe.cli import main
from dlprobe.config import build_config
from dlprobe.experiments import get_experiment
from dlprobe.experiments.runner import run_directory_for

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    # Never pick up a developer's real datasets or cache.
    monkeypatch.delenv("DLPROBE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def run_cli(capsys, argv) -> tuple[int, str]:
    """(exit code, stderr) of one in-process invocation; any other exception is a bug and propagates.

    Warnings count as stderr lines: outside pytest, Python prints them there (pytest would swallow them).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code
    printed = "".join(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n" for w in caught)
    return code, printed + capsys.readouterr().err


def assert_rejected(code: int, err: str, fragment: str, out: Path | None = None) -> None:
    """Exit 2, exactly one stderr line `dlprobe: error: ...` containing `fragment`, nothing trusted under out."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"not one line:\n{err}"
    assert lines[0].startswith("dlprobe: error: ") and "Traceback" not in err
    assert fragment in lines[0], lines[0]
    if out is not None and out.exists():
        assert not list(out.rglob("DONE")) and not list(out.rglob("summary.json"))


def check_case(capsys, tmp_path, argv, fragment) -> None:
    out = tmp_path / "out"
    full = list(argv) + (["--out", out, "--quiet"] if argv[0] == "run" else [])
    code, err = run_cli(capsys, full)
    assert_rejected(code, err, fragment, out)


# ---------------------------------------------------------------- CLI options

OPTION_CASES = [
    (["run", "fit-function", "--threads", "0"], "--threads must be >= 1"),
    (["run", "fit-function", "--threads", "two"], "invalid int value: 'two'"),
    (["run", "random-labels", "--train-size", "-5"], "train_size must be >= 1"),
    (["run", "random-labels", "--train-size", "0"], "train_size must be >= 1"),
    (["run", "interpolation", "--profile", "smoke", "--train-size", "999999"], "train_size=999999 (from the profile or your options) is more than the 4000"),
    (["run", "interpolation", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["run", "fit-task", "--dataset", "digits", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["run", "interpolation", "--dataset", "mnist", "--dataset", "cifar10"], "--dataset was given 2 times"),
    (["run", "fit-function", "--seed", "-1"], "seed must be >= 0"),
    (["run", "fit-function", "--seeds", "1,1"], "seeds must list at least one seed, all distinct, got (1, 1)"),
    (["run", "fit-function", "--seeds", "0,-1"], "seeds must be >= 0"),
    (["run", "fit-function", "--seeds", ","], "seeds must list at least one seed, all distinct, got ()"),
    (["run", "interpolation", "--set", "epochs=abc"], "invalid value 'abc' for epochs"),
    (["run", "interpolation", "--epochs", "1.5"], "not an integer"),
    (["run", "interpolation", "--epochs", "1e400"], "not an integer"),
    (["run", "interpolation", "--set", "learning_rate=nan"], "not a finite number"),
    (["run", "interpolation", "--set", "learning_rate=-inf"], "not a finite number"),
    (["run", "interpolation", "--set", "shared_init=maybe"], "not a boolean"),
    (["run", "interpolation", "--set", "activation=swishy"], "choose one of"),
    (["run", "interpolation", "--set", "num_alphas=10"], "num_alphas must be >= 50"),
    (["run", "interpolation", "--set", "alpha_min=0.5"], "alpha_min must be <= 0"),
    (["run", "interpolation", "--set", "batch_sizes=64"], "exactly two values"),
    (["run", "critical-points", "--set", "phase2=magic"], "choose one of both, grad-norm, newton"),
    (["run", "random-labels", "--set", "label_noise=1.5"], "label_noise must be <= 1.0"),
    (["run", "random-labels", "--set", "label_noise=0.5,0.5"], "fractions must be distinct"),
    (["run", "random-labels", "--set", "fit_threshold=2"], "fit_threshold must be <= 1.0"),
    (["run", "random-labels", "--set", "label_mode=permute"], "choose one of shuffle, random"),
    (["run", "sensitivity", "--set", "batch_sizes=0,64"], "batch_sizes must be >= 1"),
    (["run", "param-count", "--set", "widths=4"], "at least two distinct widths"),
    (["run", "fit-function", "--depths", "0"], "depths must be >= 1"),
    (["run", "fit-function", "--depths", ""], "must each list at least one value"),
    (["run", "fit-function", "--device", "cuda" if not torch.cuda.is_available() else "tpu"], "--device"),
    # impossible parameter budgets: no architecture of that depth has so few parameters
    (["run", "fit-function", "--profile", "smoke", "--budget", "10", "--depths", "6"], "no 6-hidden-layer MLP has 10 parameters"),
    (["run", "fit-function", "--profile", "smoke", "--budget", "20", "--depths", "1,6"], "within 1%"),
]


@pytest.mark.parametrize("argv, fragment", OPTION_CASES, ids=[" ".join(a[1:]) for a, _ in OPTION_CASES])
def test_bad_options(capsys, tmp_path, argv, fragment):
    check_case(capsys, tmp_path, argv, fragment)


def test_out_is_a_file(capsys, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    code, err = run_cli(capsys, ["run", "fit-function", "--profile", "smoke", "--out", blocker, "--quiet"])
    assert_rejected(code, err, str(blocker))


# ---------------------------------------------------------------- function expressions

EXPRESSION_CASES = [
    ("fit-function", "sin(x", "syntax error"),
    ("fit-function", "foo(x)", "unknown function 'foo'"),
    ("fit-function", "x.real", "attribute access"),
    ("fit-function", "x.__class__", "attribute access"),
    ("fit-function", "().__class__.__bases__[0].__subclasses__()", "only plain function names can be called"),
    ("fit-function", "x**1e10", "too large"),
    ("fit-function", "10**10**10", "too large"),
    ("fit-function", "x**-200", "too large"),
    ("fit-function", "lambda: 1", "lambdas not allowed"),
    ("fit-function", "'a'*10", "not a real number"),
    ("fit-function", "1j*x", "not a real number"),
    ("fit-function", "x if x else 1", "conditional expressions"),
    ("fit-function", "sin(x, x)", "takes 1 argument"),
    ("fit-function", "x\x00", "null bytes"),
    ("fit-function", "   ", "empty expression"),
    ("fit-function", "x+" * 150 + "x", "characters long, the limit is 300"),
    ("fit-function", "(" * 60 + "x" + ")" * 60, "nests brackets 60 deep"),
    ("fit-function", "-" * 200 + "x", "nests operations more than 50 deep"),
    ("critical-points", "pi(x)", "'pi' is a value, not a function"),
]


@pytest.mark.parametrize("experiment, text, fragment", EXPRESSION_CASES, ids=[repr(t[:30]) for _, t, _ in EXPRESSION_CASES])
def test_bad_expressions(capsys, tmp_path, experiment, text, fragment):
    check_case(capsys, tmp_path, ["run", experiment, f"--function={text}"], fragment)


# Expressions that parse but are not finite on the grid: caught when the data set is built (smoke profile).
GRID_CASES = [
    ("fit-function", "x/0", [], "is -inf at x = -1"),
    ("fit-function", "1/x", ["--set", "num_train=201"], "is inf at x = 0"),  # an odd grid holds x = 0
    ("fit-function", "log(x)", [], "is nan at x = -1"),
    ("fit-function", "exp(exp(exp(10*x)))", [], "is inf at x"),
    ("critical-points", "sqrt(x - 2)", [], "is nan at x"),
]


@pytest.mark.parametrize("experiment, text, extra, fragment", GRID_CASES, ids=[t for _, t, _, _ in GRID_CASES])
def test_expressions_not_finite_on_the_grid(capsys, tmp_path, experiment, text, extra, fragment):
    check_case(capsys, tmp_path, ["run", experiment, "--profile", "smoke", f"--function={text}", *extra], fragment)


# ---------------------------------------------------------------- config files

CONFIG_CASES = [
    ("c.toml", "budget = = 3\n", "is not valid TOML"),
    ("c.json", "{budget: 3}", "is not valid JSON"),
    ("c.json", "[1, 2]", "must hold key = value pairs"),
    ("c.toml", "epochz = 3\n", "unknown config file key 'epochz'"),
    ("c.toml", "learning_rates = {a = 1}\n", "table [learning_rates] is not an experiment"),
    ("c.toml", "budget = 1979-05-27\n", "expected int"),
    ("c.toml", 'budget = "many"\n', "expected int"),
    ("c.toml", "budget = true\n", "expected int"),
    ("c.json", '{"budget": null}', "expected int"),
    ("c.json", '{"learning_rates": [NaN]}', "not a finite number"),
    ("c.toml", "num_train = -3\n", "num_train must be >= 2"),
    ("c.toml", "seeds = [0, 1.5]\n", "not an integer"),
    ("c.toml", "functions = [1, 2]\n", "not a string"),
    ("c.toml", '[fit-function]\ndepths = "1,x"\n', "invalid value '1,x' for depths"),
    ("c.toml", "[fit-function]\nbudget = 10\ndepths = [6]\n", "no 6-hidden-layer MLP has 10 parameters"),
    ("c.toml", '[fit-function]\nfunctions = ["x.__class__"]\n', "attribute access"),
]


@pytest.mark.parametrize("name, text, fragment", CONFIG_CASES, ids=[t.replace("\n", " ")[:30] for _, t, _ in CONFIG_CASES])
def test_bad_config_files(capsys, tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    check_case(capsys, tmp_path, ["run", "fit-function", "--profile", "smoke", "--config", path], fragment)


def test_config_path_is_a_directory(capsys, tmp_path):
    check_case(capsys, tmp_path, ["run", "fit-function", "--config", tmp_path], "cannot read config file")


def test_config_file_not_utf8(capsys, tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"# r\xe9glages\nbudget = 300\n")
    check_case(capsys, tmp_path, ["run", "fit-function", "--config", path], "c.toml")


class RunAllStarted(Exception):
    pass


def test_run_all_config_key_no_experiment_has(capsys, tmp_path, monkeypatch):
    def started(*args, **kwargs):  # keeps the bug cheap: nothing really runs
        raise RunAllStarted("run all started despite an unknown config key")

    monkeypatch.setattr("dlprobe.experiments.runner.run_experiment", started)
    path = tmp_path / "c.toml"
    path.write_text("epochz = 3\n")
    check_case(capsys, tmp_path, ["run", "all", "--profile", "smoke", "--config", path], "epochz")


# ---------------------------------------------------------------- dataset files


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0C: ">i4", 0x0D: ">f4"}
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtypes[type_code]).tobytes()


def write_mnist(folder: Path, num_train=60, num_test=20) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (num_train, 28, 28)), np.arange(num_train) % 10,
              rng.integers(0, 256, (num_test, 28, 28)), np.arange(num_test) % 10]
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(MNIST_FILES, arrays):
        (folder / name).write_bytes(idx_bytes(array))


def _replace(name, data):
    return lambda folder: (folder / name).write_bytes(data(folder / name) if callable(data) else data)


TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = MNIST_FILES
MNIST_CASES = {
    "wrong magic": (_replace(TRAIN_IMAGES, lambda p: b"\x08\x03\x00\x00" + p.read_bytes()[4:]), "bad magic number"),
    "truncated": (_replace(TRAIN_IMAGES, lambda p: p.read_bytes()[:5000]), "is truncated"),
    "trailing bytes": (_replace(TRAIN_IMAGES, lambda p: p.read_bytes() + b"xx"), "2 trailing bytes"),
    "empty file": (_replace(TRAIN_IMAGES, b""), "is empty"),
    "train count mismatch": (_replace(TRAIN_LABELS, idx_bytes(np.arange(50) % 10)), "holds 60 images but"),
    "test count mismatch": (_replace(TEST_LABELS, idx_bytes(np.arange(5) % 10)), "holds 20 images but"),
    "labels out of range": (_replace(TRAIN_LABELS, idx_bytes(np.arange(60) % 13)), "labels must be in 0..9, found 0..12"),
    "negative labels": (_replace(TEST_LABELS, idx_bytes(np.full(20, -1), 0x09)), "labels must be in 0..9"),
    "no images": (lambda f: (_replace(TRAIN_IMAGES, idx_bytes(np.zeros((0, 28, 28))))(f),
                             _replace(TRAIN_LABELS, idx_bytes(np.zeros(0)))(f)), "has no training images"),
    "not gzip inside": (_replace(TRAIN_IMAGES, b"\x1f\x8b" + b"garbage" * 10), "cannot read"),
    "cut gzip": (_replace(TRAIN_IMAGES, lambda p: gzip.compress(p.read_bytes())[:3000]), "cannot read"),
    "int32 images": (_replace(TRAIN_IMAGES, idx_bytes(np.zeros((60, 28, 28)), 0x0C)), "must hold uint8 (N, H, W) images"),
    "2-D labels": (_replace(TRAIN_LABELS, idx_bytes(np.zeros((60, 2)))), "(N,) labels"),
    "1-D images": (_replace(TEST_IMAGES, idx_bytes(np.zeros(20))), "must hold uint8 (N, H, W) images"),
    "folder instead of file": (lambda f: ((f / TEST_LABELS).unlink(), (f / TEST_LABELS).mkdir()), "mnist not found; tried"),
    "float labels": (_replace(TRAIN_LABELS, idx_bytes(np.full(60, 0.5), 0x0D)), "labels"),
}


def dataset_run(capsys, tmp_path, folder, dataset):
    out = tmp_path / "out"
    code, err = run_cli(capsys, ["run", "random-labels", "--profile", "smoke", "--dataset", dataset, "--data-dir", folder,
                                 "--train-size", "50", "--set", "test_size=20", "--out", out, "--quiet"])
    return code, err, out


def test_valid_fake_mnist_runs(capsys, tmp_path):
    """The control: the same invocation on undamaged files succeeds, so each case below tests its damage."""
    write_mnist(tmp_path / "data")
    code, err, out = dataset_run(capsys, tmp_path, tmp_path / "data", "mnist")
    assert code == 0, err
    assert len(list(out.rglob("summary.json"))) == 1


@pytest.mark.parametrize("case", list(MNIST_CASES))
def test_broken_mnist_files(capsys, tmp_path, case):
    damage, fragment = MNIST_CASES[case]
    write_mnist(tmp_path / "data")
    damage(tmp_path / "data")
    code, err, out = dataset_run(capsys, tmp_path, tmp_path / "data", "mnist")
    assert_rejected(code, err, fragment, out)


def cifar_batch(count: int, labels=None) -> bytes:
    data = np.random.default_rng(count).integers(0, 256, (count, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(count)] if labels is None else labels
    return pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"fake"}, protocol=2)


def write_cifar_folder(root: Path, count=20) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in CIFAR_BATCHES:
        (folder / name).write_bytes(cifar_batch(count))
    return folder


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


CIFAR_CASES = {
    "labels out of range": (lambda f, m: (f / "test_batch").write_bytes(cifar_batch(20, [11] * 20)), "labels outside 0..9"),
    "count mismatch": (lambda f, m: (f / "data_batch_2").write_bytes(cifar_batch(20, [1] * 19)), "holds 20 images but 19 labels"),
    "missing batch": (lambda f, m: (f / "test_batch").unlink(), "cifar10 not found; tried"),
    "code execution payload": (lambda f, m: (f / "data_batch_3").write_bytes(pickle.dumps(Exploit(m), protocol=2)),
                               "refusing to unpickle"),
    "truncated batch": (lambda f, m: (f / "data_batch_4").write_bytes(cifar_batch(20)[:900]), "cannot unpickle"),
    "archive cut short": (lambda f, m: _archive(f)[:2000], "cannot read CIFAR-10 archive"),
    "archive empty": (lambda f, m: b"", "cannot read CIFAR-10 archive"),
}


def _archive(folder: Path) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(CIFAR_CASES))
def test_broken_cifar_files(capsys, tmp_path, case):
    damage, fragment = CIFAR_CASES[case]
    marker = tmp_path / "PWNED"
    folder = write_cifar_folder(tmp_path / "data")
    archive = damage(folder, marker)
    if isinstance(archive, bytes):  # the case damages an archive: keep only cifar-10-python.tar.gz
        shutil.rmtree(folder)
        (tmp_path / "data" / "cifar-10-python.tar.gz").write_bytes(archive)
    code, err, out = dataset_run(capsys, tmp_path, tmp_path / "data", "cifar10")
    assert not marker.exists()
    assert_rejected(code, err, fragment, out)


# ---------------------------------------------------------------- run directories

SMALL_FIT = ["run", "fit-function", "--profile", "smoke", "--set", "max_epochs=40", "--set", "search_epochs=10", "--quiet"]


@pytest.fixture(scope="module")
def finished_fit(tmp_path_factory) -> Path:
    """A finished small fit-function run (its --out root); cases copy it and damage the copy."""
    out = tmp_path_factory.mktemp("finished")
    assert main([*SMALL_FIT, "--out", str(out)]) == 0
    return out


def unfinished_copy(source: Path, destination: Path) -> Path:
    """A copy of a finished run with DONE and summary.json removed: the next invocation resumes it."""
    shutil.copytree(source, destination)
    (run_dir,) = [p.parent for p in destination.rglob("DONE")]
    (run_dir / "DONE").unlink()
    (run_dir / "summary.json").unlink()
    return run_dir


def write_trial_exploit(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Exploit(marker)))


RUN_DIR_CASES = {
    "trial: garbage bytes": (lambda d, m: (d / "trials/sinc_depth1.pt").write_bytes(b"garbage"), "cannot load checkpoint"),
    "trial: truncated": (lambda d, m: (d / "trials/sinc_depth1.pt").write_bytes((d / "trials/sinc_depth1.pt").read_bytes()[:300]),
                         "cannot load checkpoint"),
    "trial: a folder": (lambda d, m: ((d / "trials/sinc_depth1.pt").unlink(), (d / "trials/sinc_depth1.pt").mkdir()),
                        "cannot load checkpoint"),
    "config.json: a list": (lambda d, m: (d / "config.json").write_text("[]"), "belongs to another configuration"),
    "config.json: not UTF-8": (lambda d, m: (d / "config.json").write_bytes(b"\xff\xfe\x00"), "cannot read"),
    "config.json: no config key": (lambda d, m: (d / "config.json").write_text('{"experiment": "fit-function"}'),
                                   "belongs to another configuration"),
    "config.json: a folder": (lambda d, m: ((d / "config.json").unlink(), (d / "config.json").mkdir()), "cannot read"),
    # Bugs: the file is loadable, so the run trusts whatever it holds.
    "trial: code execution payload": (lambda d, m: write_trial_exploit(d / "trials/sinc_depth1.pt", m), "sinc_depth1.pt"),
    "trial: wrong structure": (lambda d, m: torch.save([1, 2, 3], d / "trials/sinc_depth1.pt"), "sinc_depth1.pt"),
    "trial: another trial's file": (lambda d, m: shutil.copy(d / "trials/sinc_depth3.pt", d / "trials/sinc_depth1.pt"),
                                    "sinc_depth1.pt"),
}


@pytest.mark.parametrize("case", list(RUN_DIR_CASES))
def test_damaged_run_directories(capsys, tmp_path, finished_fit, case):
    damage, fragment = RUN_DIR_CASES[case]
    marker = tmp_path / "PWNED"
    out = tmp_path / "out"
    damage(unfinished_copy(finished_fit, out), marker)
    code, err = run_cli(capsys, [*SMALL_FIT, "--out", out])
    assert not marker.exists()
    assert_rejected(code, err, fragment, out)


def test_damaged_trial_message_does_not_advise_unsafe_loading(capsys, tmp_path, finished_fit):
    run_dir = unfinished_copy(finished_fit, tmp_path / "out")
    (run_dir / "trials/sinc_depth1.pt").write_bytes(b"garbage")
    code, err = run_cli(capsys, [*SMALL_FIT, "--out", tmp_path / "out"])
    assert_rejected(code, err, "sinc_depth1.pt", tmp_path / "out")
    assert "weights_only" not in err


def test_trial_from_another_config_is_refused(capsys, tmp_path, finished_fit):
    other = tmp_path / "other"
    assert main([*SMALL_FIT, "--budget", "400", "--out", str(other)]) == 0
    run_dir = unfinished_copy(other, tmp_path / "out")
    (foreign,) = [p for p in finished_fit.rglob("sinc_depth1.pt")]
    shutil.copy(foreign, run_dir / "trials" / "sinc_depth1.pt")
    code, err = run_cli(capsys, [*SMALL_FIT, "--budget", "400", "--out", tmp_path / "out"])
    assert_rejected(code, err, "sinc_depth1.pt", tmp_path / "out")


def interpolation_run_dir(out: Path, epochs: int) -> tuple[list[str], Path]:
    """argv of a tiny interpolation run and the run directory it will use (computed as the CLI does)."""
    experiment = get_experiment("interpolation")
    argv = ["run", "interpolation", "--profile", "smoke", "--set", f"epochs={epochs}", "--set", "train_size=100",
            "--out", str(out), "--quiet"]
    config = build_config(experiment.config_class, experiment.profiles["smoke"], {},
                          {"epochs": str(epochs), "train_size": "100"}, context="test")
    return argv, run_directory_for(experiment, config, "smoke", out)


def test_damaged_checkpoint(capsys, tmp_path):
    argv, run_dir = interpolation_run_dir(tmp_path / "out", epochs=2)
    checkpoint = run_dir / "checkpoints" / "model_bs64_lr0.001_seed0.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK\x03\x04 half of a zip file")
    code, err = run_cli(capsys, argv)
    assert_rejected(code, err, "cannot load checkpoint", tmp_path / "out")


def test_checkpoint_from_another_config(capsys, tmp_path):
    from dlprobe.data.tensors import TensorData
    from dlprobe.models.mlp import MLPSpec, build_mlp
    from dlprobe.training.loop import TrainSpec, train

    argv, run_dir = interpolation_run_dir(tmp_path / "out", epochs=2)
    checkpoint = run_dir / "checkpoints" / "model_bs64_lr0.001_seed0.pt"
    checkpoint.parent.mkdir(parents=True)
    # A genuine checkpoint of a 784-8-10 MLP (the run's model is 784-32-10), saved after epoch 1 of 2.
    model = build_mlp(MLPSpec(784, (8,), 10, "relu"), torch.Generator().manual_seed(0))
    data = TensorData(torch.randn(16, 1, 28, 28), torch.arange(16) % 10, torch.randn(4, 1, 28, 28), torch.arange(4))
    train(model, data, TrainSpec(loss="cross_entropy", epochs=2, batch_size=8), seed=0, checkpoint_path=checkpoint)
    assert checkpoint.exists()
    code, err = run_cli(capsys, argv)
    assert_rejected(code, err, "checkpoint", tmp_path / "out")


def test_report_of_finished_run_without_summary(capsys, tmp_path, finished_fit):
    shutil.copytree(finished_fit, tmp_path / "runs")
    (summary,) = list((tmp_path / "runs").rglob("summary.json"))
    summary.unlink()
    code, err = run_cli(capsys, ["report", summary.parent, "--out", tmp_path / "report"])
    assert_rejected(code, err, "summary.json")
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


def test_rejected_runs_leave_later_runs_unaffected(capsys, tmp_path):
    """After a rejected invocation, the corrected one runs normally in the same --out (nothing stale is trusted)."""
    out = tmp_path / "out"
    code, err = run_cli(capsys, ["run", "fit-function", "--profile", "smoke", "--function", "x/0", "--out", out, "--quiet"])
    assert code == 2 and "inf" in err
    fixed = ["run", "fit-function", "--profile", "smoke", "--function", "x/2", "--set", "max_epochs=20", "--set",
             "search_epochs=5", "--out", out, "--quiet"]
    code, err = run_cli(capsys, fixed)
    assert code == 0, err
    (summary,) = list(out.rglob("summary.json"))
    assert json.loads(summary.read_text())["functions"]["x/2"]["formula"] == "x/2"
