"""Your own model (`--model FILE.py:FUNCTION`) through the experiments, its mistakes as one-line errors, and the
layer tables (models/describe.py) against hand-counted parameters.

The model files are written into tmp_path: a small CNN with BatchNorm, dropout and a residual connection, a 1 -> 1
MLP, and a factory with a size argument for param-count. Runs use the smoke profiles on `digits` (8x8 images,
always available) with small training sets and 1-2 epochs, so each takes seconds.
"""

import json
import math
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from dlprobe.cli import main
from dlprobe.models.describe import layer_table
from dlprobe.models.user import build_user_model, model_digest, parse_model_spec

from test_bad_input import assert_rejected, run_cli
from user_model_files import RESIDUAL_HEADER

MODELS = RESIDUAL_HEADER + textwrap.dedent('''


    def make_cnn(input_shape, num_outputs, seed):
        channels, (_, height, width) = 4, input_shape
        return nn.Sequential(nn.Conv2d(input_shape[0], channels, 3, padding=1), nn.ReLU(), Residual(channels), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels * (height // 2) * (width // 2), num_outputs))


    def make_mlp(input_shape, num_outputs, generator):
        model = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 8), nn.Tanh(), nn.Linear(8, num_outputs))
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        return model


    def make_sized(size, input_shape, num_outputs):
        inputs = input_shape[0] * input_shape[1] * input_shape[2] if len(input_shape) == 3 else input_shape[0]
        return nn.Sequential(nn.Flatten(), nn.Linear(inputs, size), nn.ReLU(), nn.Linear(size, num_outputs))
''')

BROKEN = textwrap.dedent('''
    import torch
    from torch import nn


    def raises(input_shape, num_outputs):
        return helper(input_shape)


    def helper(shape):
        raise ValueError("width must be positive")


    def not_a_module(input_shape, num_outputs):
        return [nn.Linear(1, 1)]


    def frozen(input_shape, num_outputs):
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, num_outputs))
        model.requires_grad_(False)
        return model


    def wrong_shape(input_shape, num_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, num_outputs + 1))


    def needs_depth(input_shape, num_outputs, depth):
        return nn.Linear(1, 1)


    def forward_fails(input_shape, num_outputs):
        return nn.Linear(3, num_outputs)
''')


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


@pytest.fixture
def broken_file(tmp_path) -> Path:
    path = tmp_path / "broken.py"
    path.write_text(BROKEN)
    return path


def run_ok(capsys, argv) -> Path:
    """Run the CLI; returns the run directory it printed (asserting exit 0)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return next(Path(line.split(": ", 1)[1]) for line in captured.out.splitlines() if line.startswith("run directory: "))


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# ---------------------------------------------------------------- layer tables


def test_layer_table_counts_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 10))
    model[1].weight.requires_grad_(False)
    table = layer_table(model, torch.zeros(2, 1, 8, 8))
    by_layer = {row["layer"]: row for row in table["rows"]}
    assert by_layer["0"]["params"] == 4 * 1 * 9 + 4  # conv weights + biases
    assert by_layer["1"]["params"] == 8 and by_layer["1"]["trainable"] == 4  # BatchNorm: weight (frozen) + bias
    assert by_layer["5"]["params"] == 64 * 10 + 10
    assert by_layer["3"]["output_shape"] == [4, 4, 4] and by_layer["5"]["output_shape"] == [10]
    assert [row["type"] for row in table["rows"]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert table["total"] == 40 + 8 + 650 == sum(p.numel() for p in model.parameters())
    assert table["trainable"] == table["total"] - 4
    assert model.training  # mode put back


def test_layer_table_of_user_cnn_sums_to_numel(model_file):
    model = build_user_model(parse_model_spec(f"{model_file}:make_cnn"), input_shape=(1, 8, 8), num_outputs=10, seed=0)
    table = layer_table(model, torch.zeros(2, 1, 8, 8))
    assert table["total"] == sum(p.numel() for p in model.parameters()) == sum(row["params"] for row in table["rows"])
    assert table["total"] == (4 * 9 + 4) + (4 * 4 * 9 + 4) + 8 + (4 * 4 * 4 * 10 + 10)
    assert "BatchNorm2d" in {row["type"] for row in table["rows"]} and table["output_shape"] == [10]


def test_layer_table_tied_weights_root_parameters_and_a_single_module():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act = nn.Linear(4, 4), nn.Linear(4, 4), nn.ReLU()
            self.b.weight = self.a.weight  # one tensor, counted once (at its first owner)
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return self.act(self.b(self.act(self.a(x)))) * self.scale

    model = Tied()
    table = layer_table(model, torch.zeros(2, 4))
    assert [(row["layer"], row["params"]) for row in table["rows"]] == [("(model)", 1), ("a", 20), ("act", 0), ("b", 4)]
    assert table["total"] == sum(p.numel() for p in model.parameters()) == 25 == sum(row["params"] for row in table["rows"])
    single = layer_table(nn.Linear(3, 2), torch.zeros(2, 3))
    assert single["rows"] == [{"layer": "Linear", "type": "Linear", "output_shape": [2], "params": 8, "trainable": 8}]


# ---------------------------------------------------------------- mistakes: one line naming the file


def test_user_model_errors(capsys, tmp_path, model_file, broken_file):
    base = ["run", "sensitivity", "--profile", "smoke", "--dataset", "digits", "--out", tmp_path / "out", "--quiet"]
    cases = [
        (f"{tmp_path}/missing.py:make", "model file"),
        (f"{model_file}:nope", "has no function 'nope'; it defines: Residual, make_cnn, make_mlp, make_sized"),
        (f"{broken_file}:raises", "raised ValueError: width must be positive (broken.py line 7 in raises: return helper(input_shape); "
                                  "broken.py line 11 in helper: raise ValueError(\"width must be positive\"))"),
        (f"{broken_file}:not_a_module", "returned list, not a torch.nn.Module"),
        (f"{broken_file}:frozen", "with no trainable parameters"),
        (f"{broken_file}:wrong_shape", "gives output shape (2, 11) on a batch of 2 inputs (2, 1, 8, 8); this task needs (2, 10)"),
        (f"{broken_file}:needs_depth", "needs argument 'depth', which dlprobe does not pass"),
        (f"{broken_file}:forward_fails", "failed on a batch of 2 inputs of shape (2, 1, 8, 8): RuntimeError"),
        ("models_without_colon", "expected FILE.py:FUNCTION"),
        ("no_such_package_xyz.models:make", "model module no_such_package_xyz.models cannot be found"),
    ]
    for spec, fragment in cases:
        code, err = run_cli(capsys, [*base, "--model", spec])
        assert_rejected(code, err, fragment, tmp_path / "out")
        assert "dlprobe/models/user.py" not in err  # the user's frames only, not dlprobe's


def test_import_errors_show_the_users_lines(capsys, tmp_path):
    (tmp_path / "syntax.py").write_text("def make(input_shape, num_outputs)\n    return None\n")
    (tmp_path / "imports.py").write_text("import torch\nraise RuntimeError('no GPU here')\n")
    base = ["run", "sensitivity", "--profile", "smoke", "--dataset", "digits", "--out", tmp_path / "out", "--quiet", "--model"]
    code, err = run_cli(capsys, [*base, f"{tmp_path / 'syntax.py'}:make"])
    assert_rejected(code, err, "syntax.py failed to import: SyntaxError")
    assert "line 1" in err
    code, err = run_cli(capsys, [*base, f"{tmp_path / 'imports.py'}:make"])
    assert_rejected(code, err, "failed to import: RuntimeError: no GPU here (")
    assert "imports.py line 2 in <module>: raise RuntimeError('no GPU here')" in err


def test_a_package_whose_init_raises_is_one_line(capsys, tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("raise RuntimeError('boom in init')\n")
    (tmp_path / "pkg" / "m.py").write_text("def make(**arguments):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = run_cli(capsys, ["run", "sensitivity", "--profile", "smoke", "--out", tmp_path / "out", "--quiet", "--model", "pkg.m:make"])
    assert_rejected(code, err, "a parent package failed to import (from --model pkg.m:make): RuntimeError: boom in init (")
    assert "__init__.py line 1 in <module>" in err


def test_two_spellings_of_one_model_file_are_one_run(capsys, tmp_path, model_file, monkeypatch):
    monkeypatch.chdir(model_file.parent)
    argv = ["run", "error-surface", "--profile", "smoke", "--out", tmp_path / "out", "--quiet", "--model"]
    first = run_ok(capsys, [*argv, f"{model_file.name}:make_mlp"])
    assert run_ok(capsys, [*argv, f"./{model_file.name}:make_mlp"]) == first
    assert run_ok(capsys, [*argv, f"{model_file}:make_mlp"]) == first


def test_one_model_experiments_take_one_model(capsys, tmp_path, model_file):
    code, err = run_cli(capsys, ["run", "sensitivity", "--profile", "smoke", "--out", tmp_path / "out", "--quiet",
                                 "--model", f"{model_file}:make_cnn", "--model", f"{model_file}:make_cnn"])
    assert_rejected(code, err, "sensitivity trains one architecture: give --model once, got 2")


# ---------------------------------------------------------------- identity


def test_editing_the_model_file_makes_a_new_run(capsys, tmp_path, model_file):
    argv = ["run", "error-surface", "--profile", "smoke", "--out", tmp_path / "out", "--quiet", "--model", f"{model_file}:make_mlp"]
    first = run_ok(capsys, argv)
    digest = model_digest(parse_model_spec(f"{model_file}:make_mlp"))
    config = json.loads((first / "config.json").read_text())
    assert config["user_models"] == [{"model": f"{model_file}:make_mlp", "file": str(model_file), "sha256": digest}]
    assert run_ok(capsys, argv) == first  # unchanged file: the same (finished) run
    model_file.write_text(MODELS.replace("nn.Linear(input_shape[0], 8), nn.Tanh(), nn.Linear(8,", "nn.Linear(input_shape[0], 6), nn.Tanh(), nn.Linear(6,"))
    second = run_ok(capsys, argv)
    assert second != first and second.parent == first.parent
    assert (summary_of(first)["num_params"], summary_of(second)["num_params"]) == (25, 19)


# ---------------------------------------------------------------- experiments


def test_sensitivity_with_user_cnn(capsys, tmp_path, model_file):
    run_dir = run_ok(capsys, ["run", "sensitivity", "--profile", "smoke", "--dataset", "digits", "--train-size", "200",
                              "--out", tmp_path / "out", "--quiet", "--model", f"{model_file}:make_cnn", "--set", "epochs=1",
                              "--set", "batch_sizes=50,200", "--set", "hessian_top_k=1", "--set", "sharpness_steps=1"])
    summary = summary_of(run_dir)
    table = summary["layer_tables"]["model"]
    assert table["source"] == "user" and table["training"] == "loop" and summary["num_params"] == table["total"] == 846
    assert "ordinary training loop" in summary["training_path"]
    assert all(len(m["hessian_top_eigenvalues"]) == 1 for m in summary["models"])
    assert all(m["status"] == ["ok"] for m in summary["models"])


def smoke(experiment, out, *options):
    return ["run", experiment, "--profile", "smoke", "--out", out, "--quiet", *map(str, options)]


def test_interpolation_with_user_cnn(capsys, tmp_path, model_file):
    run_dir = run_ok(capsys, smoke("interpolation", tmp_path, "--dataset", "digits", "--train-size", 200, "--model", f"{model_file}:make_cnn",
                                   "--set", "epochs=1", "--set", "pairs=batch_size", "--seeds", 1))
    summary = summary_of(run_dir)
    assert summary["model"] == f"{model_file}:make_cnn" and summary["num_params"] == 846
    assert summary["layer_tables"]["model"]["training"] == "loop"
    line = summary["pairs"]["batch_size"]["per_seed"][0]
    assert line["m1"]["status"] == "ok" and line["parameter_distance"] > 0


def test_random_labels_with_user_cnn(capsys, tmp_path, model_file):
    run_dir = run_ok(capsys, smoke("random-labels", tmp_path, "--dataset", "digits", "--train-size", 100, "--model", f"{model_file}:make_cnn",
                                   "--set", "epochs=2", "--set", "test_size=100", "--set", "size_sweep=", "--set", "label_noise=1.0",
                                   "--seeds", 1))
    summary = summary_of(run_dir)
    assert summary["model"]["user_model"] == f"{model_file}:make_cnn" and summary["model"]["num_params"] == 846
    assert summary["runs"]["1"]["per_seed"]["0"]["labels_changed"] > 0.5


def test_fit_task_user_models_at_one_count_or_not(capsys, tmp_path):
    from dlprobe.report.experiments.fit_task import observe

    (tmp_path / "pair.py").write_text(textwrap.dedent('''
        from torch import nn

        def wide(input_shape, num_outputs):      # 64*10 + 10 = 650
            return nn.Sequential(nn.Flatten(), nn.Linear(64, num_outputs))

        def deep(input_shape, num_outputs):      # 64*9 + 9 + 9*3 + 3 + 3*10 + 10 = 655 (0.77% more)
            return nn.Sequential(nn.Flatten(), nn.Linear(64, 9), nn.ReLU(), nn.Linear(9, 3), nn.ReLU(), nn.Linear(3, num_outputs))

        def big(input_shape, num_outputs):       # 64*12 + 12 + 12*10 + 10 = 910
            return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, num_outputs))
    '''))
    base = smoke("fit-task", tmp_path / "out", "--dataset", "digits", "--train-size", 100, "--set", "test_size=100", "--set", "epochs=1")
    same = summary_of(run_ok(capsys, [*base, "--model", f"{tmp_path}/pair.py:wide", "--model", f"{tmp_path}/pair.py:deep"]))
    digits = same["datasets"]["digits"]
    assert digits["same_parameter_count"] == {"counts": [650, 655], "relative_spread": 5 / 650, "within_1_percent": True}
    assert [digits["models"][m]["num_params"] for m in ("model-1", "model-2")] == [650, 655]
    assert {t["total"] for t in same["layer_tables"].values()} == {650, 655}
    assert any("are within 1% of each other" in sentence for sentence in observe(same, {}))
    differ = summary_of(run_ok(capsys, [*base, "--model", f"{tmp_path}/pair.py:wide", "--model", f"{tmp_path}/pair.py:big"]))
    assert differ["datasets"]["digits"]["same_parameter_count"] == {"counts": [650, 910], "relative_spread": 260 / 650,
                                                                    "within_1_percent": False}
    assert any("are NOT within 1% of each other" in sentence for sentence in observe(differ, {}))


def test_trajectory_with_user_mlp_on_the_function(capsys, tmp_path, model_file):
    run_dir = run_ok(capsys, smoke("trajectory", tmp_path, "--model", f"{model_file}:make_mlp", "--seeds", 3, "--set", "layer=1"))
    summary = summary_of(run_dir)
    assert summary["num_params"] == 1 * 8 + 8 + 8 * 1 + 1 == summary["layer_tables"]["model"]["total"]
    assert summary["layer"] == {"index": 1, "name": "3", "type": "Linear", "shape": [1, 8], "num_params": 9}
    assert summary["num_runs"] == 3 and summary["num_snapshots"] == len(summary["snapshot_epochs"]) >= 3
    assert summary["distances"]["whole"]["init_to_final"]["mean"] > 0


def test_trajectory_layer_out_of_range(capsys, tmp_path, model_file):
    code, err = run_cli(capsys, smoke("trajectory", tmp_path / "out", "--model", f"{model_file}:make_mlp", "--set", "layer=2"))
    assert_rejected(code, err, "layer 2 does not exist: the model has 2 modules with parameters (0..1)", tmp_path / "out")


def test_grad_norm_with_user_mlp(capsys, tmp_path, model_file):
    run_dir = run_ok(capsys, smoke("grad-norm", tmp_path, "--model", f"{model_file}:make_mlp", "--set", "dataset=none"))
    summary = summary_of(run_dir)
    task = summary["tasks"]["sinc"]
    assert task["architecture"] == f"{model_file}:make_mlp" and task["num_params"] == 25
    assert task["iterations"] == 8 * 4  # smoke: 8 epochs of 200 points in batches of 64
    assert "ordinary training loop" in task["training_path"] and task["grad_norm_min"]["min"] > 0


def test_grad_norm_keeps_the_healthy_seeds_whole_when_one_diverges(capsys, tmp_path):
    # seed 1's model starts with a NaN weight, so its first loss is NaN: it diverges at step 0; seed 0 trains all 32 steps
    (tmp_path / "nan.py").write_text(textwrap.dedent('''
        import math
        from torch import nn

        def make(input_shape, num_outputs, seed):
            model = nn.Sequential(nn.Linear(input_shape[0], 8), nn.Tanh(), nn.Linear(8, num_outputs))
            if seed == 1:
                model[0].weight.data[0, 0] = math.nan
            return model
    '''))
    run_dir = run_ok(capsys, smoke("grad-norm", tmp_path / "out", "--model", f"{tmp_path}/nan.py:make", "--set", "dataset=none"))
    task = summary_of(run_dir)["tasks"]["sinc"]
    assert task["status"] == ["ok", "diverged at step 0"] and task["iterations"] == 8 * 4
    assert task["grad_norm_max"]["n"] == 1 and task["grad_norm_max"]["values"][0] > 0  # seed 0's whole run


def test_error_surface_with_user_mlp(capsys, tmp_path, model_file):
    run_dir = run_ok(capsys, smoke("error-surface", tmp_path, "--model", f"{model_file}:make_mlp"))
    summary = summary_of(run_dir)
    assert summary["num_params"] == 25 and summary["user_model"] == f"{model_file}:make_mlp"
    # the line's alpha = 1 is the trained model: its loss is the loop's final training loss (float64 vs float32)
    assert summary["line"]["loss_at_1"] == pytest.approx(summary["final_train_loss"], rel=1e-4)


def test_param_count_with_a_size_factory(capsys, tmp_path, model_file):
    run_dir = run_ok(capsys, smoke("param-count", tmp_path, "--dataset", "digits", "--train-size", 100, "--set", "test_size=100",
                                   "--model", f"{model_file}:make_sized", "--set", "widths=1,30,300", "--set", "epochs=1",
                                   "--set", "eval_every=1", "--seeds", 1))
    summary = summary_of(run_dir)
    counts = [m["num_params"] for m in summary["models"]]
    assert counts == [64 * w + w + w * 10 + 10 for w in (1, 30, 300)] and counts[-1] / counts[0] >= 100
    assert [summary["layer_tables"][f"width{w}"]["total"] for w in (1, 30, 300)] == counts


def test_param_count_needs_a_size_argument(capsys, tmp_path, model_file):
    code, err = run_cli(capsys, smoke("param-count", tmp_path / "out", "--dataset", "digits", "--model", f"{model_file}:make_cnn"))
    assert_rejected(code, err, "takes no 'size' argument, which param-count needs", tmp_path / "out")


def test_fit_function_with_user_mlps(capsys, tmp_path, model_file):
    from dlprobe.report.experiments.fit_function import observe

    (tmp_path / "wider.py").write_text(textwrap.dedent('''
        from torch import nn

        def make(input_shape, num_outputs):      # 1*8 + 8 + 8*1 + 1 = 25, the same as models.py:make_mlp
            return nn.Sequential(nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, num_outputs))
    '''))
    run_dir = run_ok(capsys, smoke("fit-function", tmp_path / "out", "--model", f"{model_file}:make_mlp", "--model", f"{tmp_path}/wider.py:make",
                                   "--set", "max_epochs=40", "--set", "search_epochs=10", "--set", "learning_rates=1e-2"))
    summary = summary_of(run_dir)
    assert summary["same_parameter_count"] == {"counts": [25, 25], "relative_spread": 0.0, "within_1_percent": True}
    models = summary["functions"]["sinc"]["models"]
    assert [models[k]["model"] for k in ("1", "2")] == [f"{model_file}:make_mlp", f"{tmp_path}/wider.py:make"]
    assert all(m["epochs_trained"] == 40 and m["status"] == ["ok", "ok"] for m in models.values())
    assert "ordinary training loop" in summary["training_path"] and summary["layer_tables"]["model-2"]["total"] == 25
    assert summary["stopping_rule"]["patience"] == 0 and summary["stopping_rule"]["max_lr_decays"] == 0  # the loop has none
    assert "are within 1% of each other" in observe(summary, {})[0]


def test_config_file_takes_the_model(capsys, tmp_path, model_file, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "models.py:make_mlp" is relative to the working directory
    (tmp_path / "run.toml").write_text('model = "models.py:make_mlp"\n[error-surface]\nepochs = 4\n')
    run_dir = run_ok(capsys, smoke("error-surface", tmp_path / "out", "--config", tmp_path / "run.toml"))
    record = json.loads((run_dir / "config.json").read_text())
    # the relative spelling is resolved against the working directory and stored absolute (one run per file)
    assert record["config"]["model"] == [f"{model_file}:make_mlp"] and record["config"]["epochs"] == 4
    assert record["user_models"][0]["file"] == str(model_file)
    assert summary_of(run_dir)["num_params"] == 25


def test_critical_points_with_user_mlp(capsys, tmp_path, model_file):
    run_dir = run_ok(capsys, smoke("critical-points", tmp_path, "--model", f"{model_file}:make_mlp", "--set", "num_runs=2",
                                   "--set", "train_epochs=50", "--set", "num_samples=50"))
    summary = summary_of(run_dir)
    assert summary["user_model"] == f"{model_file}:make_mlp" and summary["num_params"] == 25 and summary["num_runs"] == 2
    assert "ordinary training loop" in summary["training_path"]
    for run in summary["runs"]:
        assert run["status"] == "ok" and run["grad_norm"] < run["grad_norm_at_switch"]
        assert run["classification"] in ("saddle", "minimum", "undetermined")
        assert run["num_negative"] + run["num_positive"] + run["num_undetermined"] == 25
        assert run["minimal_ratio_low"] <= run["minimal_ratio"] <= run["minimal_ratio_high"]


def test_package_module_form_and_the_report_shows_the_layer_table(capsys, tmp_path, monkeypatch):
    from dlprobe.report import build_report

    package = tmp_path / "site" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    run_dir = run_ok(capsys, smoke("error-surface", tmp_path / "out", "--model", "mypkg.nets:make_mlp"))
    record = json.loads((run_dir / "config.json").read_text())
    assert record["user_models"][0]["file"] == str(package / "nets.py")
    report = build_report([run_dir], tmp_path / "report")
    markdown = (report.parent / "report.md").read_text()
    assert "#### Models" in markdown and "your model mypkg.nets:make\\_mlp, trained with the ordinary training loop" in markdown
    assert "| 1 (Linear) | (N, 8) | 16 |" in markdown and "| total |  | 25 |" in markdown
    html = report.read_text()
    assert "<h4>Models</h4>" in html and "mypkg.nets:make_mlp" in html


def test_user_model_runs_are_reproducible(capsys, tmp_path, model_file):
    """Dropout draws from torch's global RNG, seeded per model: two runs give the same numbers."""
    argv = ["--dataset", "digits", "--train-size", 100, "--model", f"{model_file}:make_cnn", "--set", "epochs=2", "--set", "test_size=100",
            "--set", "size_sweep=", "--set", "label_noise=0.0", "--seeds", 1]
    first = summary_of(run_ok(capsys, smoke("random-labels", tmp_path / "a", *argv)))
    torch.manual_seed(12345)  # whatever the global RNG held before
    second = summary_of(run_ok(capsys, smoke("random-labels", tmp_path / "b", *argv)))
    assert first["runs"] == second["runs"]


def test_builtin_models_get_layer_tables(capsys, tmp_path):
    summary = summary_of(run_ok(capsys, smoke("grad-norm", tmp_path, "--set", "dataset=none")))
    table = summary["layer_tables"]["sinc"]
    assert table["source"] == "dlprobe" and table["training"] == "ensemble"
    assert [row["params"] for row in table["rows"] if row["type"] == "Linear"] == [1 * 16 + 16, 16 * 1 + 1]  # smoke: widths (16,)
    assert table["total"] == summary["tasks"]["sinc"]["num_params"] == 49


def test_dropout_model_resumes_to_the_same_weights(tmp_path, model_file):
    """A user model with dropout, stopped after 2 epochs and resumed to 4, ends where a straight 4-epoch run does."""
    from dlprobe.data.tensors import TensorData
    from dlprobe.experiments.model_choice import train_seeded, user_or_builtin
    from dlprobe.training.loop import TrainSpec

    generator = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(40, 1, 8, 8, generator=generator), torch.randint(0, 10, (40,), generator=generator),
                      torch.randn(10, 1, 8, 8, generator=generator), torch.randint(0, 10, (10,), generator=generator))
    spec = parse_model_spec(f"{model_file}:make_cnn")

    def trained(epochs, checkpoint=None):
        model = user_or_builtin(spec, None, input_shape=(1, 8, 8), num_outputs=10, seed=3)
        train_seeded(model, data, TrainSpec(loss="cross_entropy", epochs=epochs, batch_size=8), seed=3, checkpoint_path=checkpoint)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    straight = trained(4)
    trained(2, tmp_path / "ckpt.pt")
    resumed = trained(4, tmp_path / "ckpt.pt")
    assert torch.equal(straight, resumed)
    assert not torch.equal(straight, trained(2))  # the check can fail: training moves the weights


def test_a_diverged_seed_has_no_final_value():
    from dlprobe.experiments.model_choice import final_value
    assert final_value([2.0, 1.0], "ok") == 1.0
    assert math.isnan(final_value([2.0, 1.0], "diverged at step 7"))  # its last logged loss is not a result
    assert math.isnan(final_value([], "ok"))
