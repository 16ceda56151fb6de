"""`dlprobe inspect` on a trained user model: its numbers against independent references, the card, the errors.

A small CNN with BatchNorm, dropout and a residual connection is written into tmp_path (in a folder whose name
holds HTML, with HTML in the factory's docstring), trained a few steps on `digits` and saved twice: as a plain
state dict and as a dlprobe checkpoint (training/state.py's TrainState.save). The references: the loaded model
evaluated directly, a dense Hessian from torch.autograd.functional.hessian (eigvalsh, and the Hutchinson mean of
the same probes), the loss at moved weights computed by hand, BatchNorm statistics by torch's update_bn,
per-example input gradients and softmax Jacobians by torch.func.
"""

import base64
import importlib.util
import json
import re
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

import dlprobe
from dlprobe.cli import main
from dlprobe.data.images import load_dataset, stratified_indices
from dlprobe.training.state import TrainState

from test_bad_input import assert_rejected, run_cli
from user_model_files import RESIDUAL_HEADER

MODEL = RESIDUAL_HEADER + textwrap.dedent('''


    def make_cnn(input_shape, num_outputs, seed):
        """A tiny CNN with <b>BatchNorm</b> & <script>alert(1)</script> in its docstring."""
        channels, height, width = input_shape
        return nn.Sequential(nn.Conv2d(channels, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), Residual(2), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * (height // 2) * (width // 2), num_outputs))


    def make_wider(input_shape, num_outputs):
        channels, height, width = input_shape
        return nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), Residual(3), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Dropout(0.2), nn.Linear(3 * (height // 2) * (width // 2), num_outputs))


    def raises(input_shape, num_outputs):
        raise ValueError("no model today")


    def three_outputs(input_shape, num_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
''')
EXAMPLES, SEED = 96, 0
SIZES = ["--max-examples", EXAMPLES, "--eigenvalues", 2, "--probes", 6, "--density-steps", 8, "--grid", 5, "--line-points", 5,
         "--span", 0.5, "--sharpness-steps", 2, "--batch-size", 64, "--device", "cpu", "--seed", SEED, "--quiet"]


def _module(path):
    spec = importlib.util.spec_from_file_location("inspect_test_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(folder, model file, trained model in eval mode, digits dataset) with model.pt (state dict) and dlprobe.pt."""
    folder = tmp_path_factory.mktemp("inspect") / "my <b>models & co"
    folder.mkdir()
    (folder / "models.py").write_text(MODEL)
    data = load_dataset("digits")
    model = _module(folder / "models.py").make_cnn(tuple(data.x_train.shape[1:]), 10, 0)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(8):  # a few steps: BatchNorm running statistics move away from (0, 1)
        batch = slice(64 * step, 64 * step + 64)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch]).backward()
        optimizer.step()
    model.eval()
    torch.save(model.state_dict(), folder / "model.pt")
    state = TrainState(model, optimizer)  # the checkpoint dlprobe's trainers write
    state.epoch, state.step = 1, 8
    state.save(folder / "dlprobe.pt")
    return folder, folder / "models.py", model, data


def inspect(capsys, folder, checkpoint, out_name):
    """Run `dlprobe inspect` on folder/models.py:make_cnn with small sizes: (out folder, inspect.json's record)."""
    out = folder / out_name
    code, err = run_cli(capsys, ["inspect", "--model", f"{folder / 'models.py'}:make_cnn", "--checkpoint", checkpoint,
                                 "--dataset", "digits", "--out", out, *SIZES])
    assert code == 0, err
    assert err == ""  # --quiet: no progress bar
    return out, json.loads((out / "inspect.json").read_text())


@pytest.fixture(scope="module")
def plain(trained):
    """The run on the plain state dict (stderr is checked on the dlprobe checkpoint's run, which has capsys)."""
    folder = trained[0]
    assert main(["inspect", "--model", f"{folder / 'models.py'}:make_cnn", "--checkpoint", str(folder / "model.pt"),
                 "--dataset", "digits", "--out", str(folder / "out"), *map(str, SIZES)]) == 0
    return folder / "out", json.loads((folder / "out" / "inspect.json").read_text())


def subset(labels, size=EXAMPLES):
    return stratified_indices(labels.numpy(), size, SEED)[0]


def mean_loss(model, x, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item()


def test_loss_accuracy_and_layer_table(trained, plain):
    _, _, model, data = trained
    _, record = plain
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        with torch.no_grad():
            outputs = model(x)
        assert record["evaluation"][split]["examples"] == len(y)
        assert record["evaluation"][split]["loss"] == pytest.approx(nn.functional.cross_entropy(outputs, y).item(), rel=1e-5)
        assert record["evaluation"][split]["accuracy"] == pytest.approx((outputs.argmax(1) == y).double().mean().item(), abs=1e-12)
    table = record["layer_table"]
    assert table["total"] == sum(p.numel() for p in model.parameters()) == record["hessian"]["num_params"]
    assert sum(row["params"] for row in table["rows"]) == table["total"]
    assert record["checkpoint"]["format"] == "state_dict" and record["model"]["function"] == "make_cnn"


def test_hessian_against_a_dense_autograd_hessian(trained, plain):
    _, _, model, data = trained
    record = plain[1]["hessian"]
    chosen = subset(data.y_train)
    x, y = data.x_train[chosen].double(), data.y_train[chosen]
    reference = _module(trained[1]).make_cnn((1, 8, 8), 10, 0)
    reference.load_state_dict(model.state_dict())
    reference = reference.double().eval()
    names = [name for name, _ in reference.named_parameters()]
    shapes = [p.shape for _, p in reference.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in reference.named_parameters()])

    def loss(vector):
        pieces = dict(zip(names, (part.view(shape) for part, shape in zip(vector.split([s.numel() for s in shapes]), shapes))))
        return nn.functional.cross_entropy(functional_call(reference, pieces, (x,)), y)

    dense = torch.autograd.functional.hessian(loss, flat).numpy()
    spectrum = np.linalg.eigvalsh((dense + dense.T) / 2)
    scale = abs(spectrum).max()
    assert record["examples"] == EXAMPLES and record["loss"] == pytest.approx(loss(flat).item(), rel=1e-5)
    np.testing.assert_allclose(record["top_eigenvalues"], spectrum[::-1][:2], rtol=2e-3, atol=1e-4 * scale)
    np.testing.assert_allclose(record["bottom_eigenvalues"], spectrum[:2], atol=2e-3 * scale)
    probes = dlprobe.rademacher_probes(6, len(flat), SEED).numpy()
    samples = np.einsum("ip,pq,iq->i", probes, dense, probes)
    assert record["trace"]["estimate"] == pytest.approx(samples.mean(), rel=1e-4)
    assert record["trace"]["standard_error"] == pytest.approx(samples.std(ddof=1) / np.sqrt(6), rel=1e-3)
    assert record["trace"]["probes"] == 6
    weights = np.array(record["density"]["weights"])
    assert weights.sum() == pytest.approx(1.0) and min(record["density"]["nodes"]) >= spectrum[0] - 1e-3 * scale


def test_landscapes_sharpness_and_sensitivities(trained, plain):
    _, _, model, data = trained
    record = plain[1]
    chosen = subset(data.y_train)
    x, y = data.x_train[chosen], data.y_train[chosen]
    centre = mean_loss(model, x, y)
    line, plane = record["landscape"]["line"], record["landscape"]["surface"]
    assert line["alphas"] == pytest.approx([-0.5, -0.25, 0.0, 0.25, 0.5]) and plane["coordinates"] == pytest.approx(line["alphas"])
    assert line["loss"][2] == pytest.approx(centre, rel=1e-5) and plane["loss"][2][2] == pytest.approx(centre, rel=1e-5)
    d1, d2 = dlprobe.filter_directions(model, seed=SEED)

    def moved_loss(a, b):
        copy = _module(trained[1]).make_cnn((1, 8, 8), 10, 0)
        copy.load_state_dict(model.state_dict())
        with torch.no_grad():
            for name, parameter in copy.named_parameters():
                parameter.add_(a * d1[name] + b * d2[name])
        return mean_loss(copy.eval(), x, y)

    assert line["loss"][4] == pytest.approx(moved_loss(0.5, 0.0), rel=1e-4)
    assert plane["loss"][0][4] == pytest.approx(moved_loss(-0.5, 0.5), rel=1e-4)
    sharp = record["sharpness"]
    assert sharp["loss"] == pytest.approx(centre, rel=1e-5) and sharp["loss_at_maximum"] >= sharp["loss"]
    assert sharp["percent"] == pytest.approx(100 * (sharp["loss_at_maximum"] - sharp["loss"]) / (1 + sharp["loss"]))
    test_chosen = subset(data.y_test)
    xt, yt = data.x_test[test_chosen], data.y_test[test_chosen]

    def example_loss(example, target):
        return nn.functional.cross_entropy(model(example[None]), target[None])

    gradients = vmap(torch.func.grad(example_loss))(xt, yt)
    jacobians = vmap(jacrev(lambda example: torch.softmax(model(example[None])[0], 0)))(xt)
    assert record["sensitivity"]["examples"] == EXAMPLES
    assert record["sensitivity"]["input_gradient"] == pytest.approx(gradients.flatten(1).norm(dim=1).mean().item(), rel=1e-4)
    assert record["sensitivity"]["jacobian"] == pytest.approx(jacobians.flatten(1).norm(dim=1).mean().item(), rel=1e-4)


def test_a_dlprobe_checkpoint_gives_the_same_numbers(trained, plain, capsys):
    folder = trained[0]
    _, record = inspect(capsys, folder, folder / "dlprobe.pt", "out-dlprobe")
    assert record["checkpoint"]["format"] == "dlprobe" and record["checkpoint"]["epoch"] == 1 and record["checkpoint"]["step"] == 8
    for key in ("evaluation", "hessian", "landscape", "sharpness", "sensitivity", "layer_table"):
        assert record[key] == plain[1][key], key


def test_bn_train_recomputes_the_statistics_as_update_bn_does(trained, capsys):
    folder, _, model, data = trained
    code, err = run_cli(capsys, ["inspect", "--model", f"{folder / 'models.py'}:make_cnn", "--checkpoint", folder / "model.pt",
                                 "--dataset", "digits", "--out", folder / "out-bn", *SIZES, "--bn", "train"])
    assert code == 0, err
    landscape = json.loads((folder / "out-bn" / "inspect.json").read_text())["landscape"]
    chosen = subset(data.y_train)
    x, y = data.x_train[chosen], data.y_train[chosen]
    reference = _module(trained[1]).make_cnn((1, 8, 8), 10, 0)
    reference.load_state_dict(model.state_dict())
    torch.optim.swa_utils.update_bn([x[i:i + 64] for i in range(0, len(x), 64)], reference)  # PyTorch's rule, same batches
    recomputed = mean_loss(reference.eval(), x, y)
    assert landscape["bn"] == "recomputed" and recomputed != pytest.approx(mean_loss(model, x, y), rel=1e-3)
    assert landscape["line"]["loss"][2] == pytest.approx(recomputed, rel=1e-4)
    assert landscape["surface"]["loss"][2][2] == pytest.approx(recomputed, rel=1e-4)


def test_the_card_is_self_contained_and_escaped(plain):
    out, record = plain
    html = (out / "inspect.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4 and all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    assert "<script" not in html and "<b>" not in html and "http://" not in html and "https://" not in html
    assert "&lt;b&gt;BatchNorm&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "my &lt;b&gt;models &amp; co" in html  # the folder name in the model's path
    assert f"{record['hessian']['num_params']:,}" in html


@pytest.mark.parametrize("case, fragment", [
    ("missing", "does not exist"),
    ("garbage", "damaged or not a torch checkpoint"),
    ("truncated", "damaged or not a torch checkpoint (RuntimeError: PytorchStreamReader failed"),
    ("empty", "damaged or not a torch checkpoint (EOFError"),
    ("module", "pickled Python objects (torch.nn.modules.container.Sequential), which torch.load(weights_only=True) refuses"),
    ("neither", "holds a dict with keys epoch, weights: expected a state dict"),
    ("wider", "does not fit model"),
    ("key-missing", "the model's 7.bias (10) is missing from the checkpoint"),
    ("key-extra", "the checkpoint's extra (2) is not in the model"),
])
def test_checkpoint_errors_are_one_line(trained, capsys, tmp_path, case, fragment):
    folder, _, model, _ = trained
    state = model.state_dict()
    path = tmp_path / f"{case}.pt"
    model_name = "make_wider" if case == "wider" else "make_cnn"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif case == "truncated":
        data = (folder / "model.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "module":  # torch.save(model) instead of its state_dict()
        torch.save(nn.Sequential(nn.Linear(64, 10)), path)
    elif case == "neither":
        torch.save({"epoch": 3, "weights": [1, 2]}, path)
    elif case == "wider":
        torch.save(state, path)
    elif case == "key-missing":
        torch.save({k: v for k, v in state.items() if k != "7.bias"}, path)
    elif case == "key-extra":
        torch.save({**state, "extra": torch.zeros(2)}, path)
    code, err = run_cli(capsys, ["inspect", "--model", f"{folder / 'models.py'}:{model_name}", "--checkpoint", path,
                                 "--dataset", "digits", "--out", tmp_path / "out", "--quiet"])
    assert_rejected(code, err, fragment)
    if case == "wider":
        assert "0.weight is (2, 1, 3, 3) in the checkpoint but (3, 1, 3, 3) in the model" in err
    assert not (tmp_path / "out" / "inspect.json").exists()


@pytest.mark.parametrize("change, fragment", [
    (["--dataset", "no-such-data"], "unknown dataset"),
    (["--model", "nowhere.py:make_cnn"], "model file nowhere.py does not exist"),
    (["--model", "{folder}/models.py:no_such"], "has no function 'no_such'"),
    (["--model", "{folder}/models.py:raises"], "ValueError: no model today"),
    (["--model", "{folder}/models.py:three_outputs"], "gives output shape (2, 3) on a batch of 2 inputs"),
    (["--grid", "1"], "grid must be >= 2"),
    (["--max-examples", "many"], "invalid value 'many' for max_examples"),
    (["--bn", "sometimes"], "choose one of keep, train"),
    (["--device", "cuda"], "no CUDA GPU is available"),
    (["--out", "{folder}/model.pt/card"], "cannot write to --out"),
])
def test_other_mistakes_are_one_line(trained, capsys, tmp_path, change, fragment):
    if change[0] == "--device" and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    folder = trained[0]
    argv = {"--model": f"{folder / 'models.py'}:make_cnn", "--checkpoint": str(folder / "model.pt"), "--dataset": "digits",
            "--out": str(tmp_path / "out")}
    argv[change[0]] = change[1].format(folder=folder)
    code, err = run_cli(capsys, ["inspect", *[item for pair in argv.items() for item in pair], "--quiet"])
    assert_rejected(code, err, fragment)


def test_help_says_the_model_file_runs_in_process(capsys):
    with pytest.raises(SystemExit):
        main(["inspect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "runs in this process" in text and "weights_only=True" in text and "--max-examples" in text


BROWSER = None
try:
    from test_report_browser import BROWSER, load_status
except ImportError:  # pragma: no cover
    pass


@pytest.mark.skipif(BROWSER is None, reason="no chromium binary on PATH (apt-get install chromium)")
def test_the_card_loads_cleanly_in_chromium(plain, tmp_path):
    status, console = load_status(tmp_path, (plain[0] / "inspect.html").read_text(encoding="utf-8"))
    assert status == {"images": 4, "broken": 0, "errors": 0} and console == []


def test_the_readme_factory_and_command(tmp_path, capsys):
    """The README's models.py runs through inspect (no checkpoint: the fresh model), and its inspect line parses."""
    from pathlib import Path

    from dlprobe.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    factory = re.search(r"```python\n(# models\.py.*?)```", readme, re.S).group(1)
    (tmp_path / "models.py").write_text(factory)
    code, err = run_cli(capsys, ["inspect", "--model", f"{tmp_path / 'models.py'}:make_cnn", "--dataset", "digits",
                                 "--out", tmp_path / "out", *SIZES])
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "inspect.json").read_text())
    assert record["checkpoint"] is None and record["layer_table"]["total"] == 8 * 9 + 8 + 16 + 8 * 4 * 4 * 10 + 10
    assert record["model"]["arguments"] == {"input_shape": [1, 8, 8], "num_outputs": 10}  # what its signature takes
    line = re.search(r"^dlprobe (inspect .*?)$", readme, re.M).group(1).split()
    args = build_parser().parse_args(line)
    assert args.checkpoint == Path("model.pt") and args.setting__max_examples is None


def test_inspect_on_your_own_npz(tmp_path, capsys):
    """--dataset PATH: a generated .npz with 3 classes; the factory gets num_outputs=3, the record the data's sha256."""
    import hashlib

    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (60, 8, 8), dtype=np.uint8), "y_train": np.arange(60) % 3,
              "x_test": rng.integers(0, 256, (30, 8, 8), dtype=np.uint8), "y_test": np.arange(30) % 3}
    np.savez(tmp_path / "mine.npz", **arrays)
    (tmp_path / "models.py").write_text(MODEL)
    code, err = run_cli(capsys, ["inspect", "--model", f"{tmp_path / 'models.py'}:make_cnn", "--dataset", tmp_path / "mine.npz",
                                 "--out", tmp_path / "out", *SIZES])
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "inspect.json").read_text())
    assert record["model"]["arguments"] == {"input_shape": [1, 8, 8], "num_outputs": 3, "seed": SEED}
    assert record["dataset"]["sha256"] == hashlib.sha256((tmp_path / "mine.npz").read_bytes()).hexdigest()
    assert record["evaluation"]["train"]["examples"] == 60 and record["hessian"]["examples"] == 60  # max_examples > 60: all


def test_an_end_that_does_not_converge_is_reported(trained, capsys, monkeypatch):
    """ARPACK stopped after one restart: the card and inspect.json say so instead of a traceback or a silent number."""
    from dlprobe.inspection import measure

    monkeypatch.setattr(measure, "MAX_RESTARTS", 1)
    monkeypatch.setattr(measure, "EIGEN_TOL", 1e-12)
    folder = trained[0]
    out, record = inspect(capsys, folder, folder / "model.pt", "out-unconverged")
    converged = record["hessian"]["converged"]
    assert converged["max_restarts"] == 1 and not (converged["top"] and converged["bottom"])
    assert "not converged within 1 Lanczos restarts" in (out / "inspect.html").read_text()
