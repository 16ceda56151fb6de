"""The interpolation experiment end to end (smoke profile through the CLI) and its small helpers."""

import json

import pytest
import torch
import torch.nn.functional as F

from dlprobe.cli import main
from dlprobe.data.images import load_dataset
from dlprobe.experiments.interpolation import PROFILES, Config, alpha_grid, flatter
from dlprobe.models.mlp import MLP, MLPSpec
from smoke import assert_rerun_is_skipped, run_smoke

NAME = "interpolation"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return out, run_smoke(NAME, out)


def test_smoke_run_writes_figures_and_summary(smoke_run):
    _, run_dir = smoke_run  # run_smoke checked the exit code and DONE
    assert (run_dir / "DONE").exists()
    for pair in ("batch_size", "learning_rate"):
        for extension in ("png", "svg"):
            figure = run_dir / "figures" / f"interpolation_{pair}.{extension}"
            assert figure.stat().st_size > 1000
    summary = json.loads((run_dir / "summary.json").read_text())
    alphas = summary["alphas"]
    assert len(alphas) >= 50 and min(alphas) == -1.0 and max(alphas) == 2.0 and 0.0 in alphas and 1.0 in alphas
    assert set(summary["pairs"]) == {"batch_size", "learning_rate"}
    batch_pair = summary["pairs"]["batch_size"]
    assert (batch_pair["m1"]["batch_size"], batch_pair["m2"]["batch_size"]) == (64, 1024)
    assert batch_pair["m1"]["label"] == "m1 (batch 64)" and batch_pair["m2"]["label"] == "m2 (batch 1024)"
    rate_pair = summary["pairs"]["learning_rate"]
    assert (rate_pair["m1"]["learning_rate"], rate_pair["m2"]["learning_rate"]) == (1e-3, 1e-2)
    for pair in summary["pairs"].values():
        assert pair["parameter_distance"] > 0
        for split in ("train", "test"):
            ends = pair["endpoints"][split]
            # The barrier is measured against the worse endpoint on a grid containing both: never negative.
            assert pair["barrier"][split] >= 0
            assert pair["minimum"][split]["loss"] <= min(ends["loss_at_0"], ends["loss_at_1"])
            assert 0 <= pair["midpoint"][split]["accuracy"] <= 1
            assert pair["flatness"][split]["flatter"] in ("m1", "m2", "similar", "not measurable")
    # m1 of both pairs is the same model (batch 64, lr 1e-3), trained once.
    assert batch_pair["endpoints"]["train"]["loss_at_0"] == rate_pair["endpoints"]["train"]["loss_at_0"]
    assert len(list((run_dir / "trials").glob("model_*.pt"))) == 3


def test_endpoints_equal_the_trained_models_own_losses(smoke_run):
    """alpha = 0 and 1 of the vmapped line reproduce m1 and m2, evaluated here with a plain forward pass."""
    _, run_dir = smoke_run
    config = Config(**PROFILES["smoke"])
    data = load_dataset(config.dataset, train_size=config.train_size)
    spec = MLPSpec(784, config.widths, 10, config.activation)
    summary = json.loads((run_dir / "summary.json").read_text())
    pair = summary["pairs"]["batch_size"]
    for name, alpha in (("m1", 0), ("m2", 1)):
        key = f"model_bs{pair[name]['batch_size']}_lr{pair[name]['learning_rate']:g}_seed0.pt"
        state = torch.load(run_dir / "trials" / key, weights_only=True)["result"]["state"]
        model = MLP(spec)
        model.load_state_dict(state)
        model.eval()
        for split, (x, y) in {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}.items():
            with torch.no_grad():
                logits = model(x)  # float32, one plain forward: the model's own evaluation
                exact = F.cross_entropy(model.double()(x.double()), y).item()
                model.float()
            losses = F.cross_entropy(logits, y, reduction="none").double()
            accuracy = (logits.argmax(1) == y).double().mean().item()
            assert pair["endpoints"][split][f"loss_at_{alpha}"] == pytest.approx(losses.mean().item(), rel=1e-6)
            assert pair["endpoints"][split][f"accuracy_at_{alpha}"] == pytest.approx(accuracy, abs=1.5 / len(y))
            assert pair[name][f"{split}_loss"] == pytest.approx(losses.mean().item(), rel=1e-6)
            # float64 is only as close as float32 rounding of near-zero per-example losses allows.
            assert pair["endpoints"][split][f"loss_at_{alpha}"] == pytest.approx(exact, rel=1e-4)


def test_metrics_hold_the_line_and_the_training_curves(smoke_run):
    _, run_dir = smoke_run
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0] == "run,step,name,value"
    names = {tuple(line.split(",")[0:3:2]) for line in lines[1:]}
    assert ("batch_size/line", "alpha") in names and ("learning_rate/line", "test_accuracy") in names
    assert ("batch_size/m2", "train_loss") in names


def test_second_invocation_is_skipped(smoke_run):
    out, run_dir = smoke_run
    assert_rerun_is_skipped(["run", NAME, "--profile", "smoke", "--out", str(out), "--quiet"], run_dir)


def test_alpha_grid_contains_exact_endpoints_and_probe_points():
    grid = alpha_grid(Config(num_alphas=50))  # 50 points on [-1, 2] do not hit 0 or 1 by themselves
    values = grid.tolist()
    for alpha in (0.0, 1.0, -0.25, 1.25, -1.0, 2.0):
        assert alpha in values
    assert values == sorted(values) and len(values) == len(set(values)) >= 50
    assert len(alpha_grid(Config())) == 61  # the default grid already holds all four


def test_flatter_needs_a_clear_ratio_and_rising_loss():
    assert flatter(0.1, 0.5) == "m1"
    assert flatter(0.5, 0.1) == "m2"
    assert flatter(0.1, 0.12) == "similar"
    assert flatter(-0.01, 0.3) == "not measurable"


def test_bad_config_is_a_one_line_error(tmp_path, capsys):
    code = main(["run", NAME, "--profile", "smoke", "--out", str(tmp_path), "--set", "batch_sizes=16,64,256", "--quiet"])
    assert code == 2
    assert "exactly two" in capsys.readouterr().err


def test_observations_say_falls_for_a_negative_rise(smoke_run):
    """A loss that drops beyond an endpoint is reported as falling (never "rises by -x") and as not measurable."""
    import copy

    from dlprobe.experiments.interpolation import observe

    _, run_dir = smoke_run
    summary = copy.deepcopy(json.loads((run_dir / "summary.json").read_text()))
    config = json.loads((run_dir / "config.json").read_text())
    numbers = summary["pairs"]["batch_size"]["flatness"]["train"]
    numbers.update(rise_beyond_m1=-0.00074, rise_beyond_m2=0.0352, flatter=flatter(-0.00074, 0.0352))
    text = " ".join(observe(summary, config))
    assert "the train loss falls by 7.40e-04 beyond m1" in text and "rises by 0.0352 beyond m2" in text, text
    assert "rises by -" not in text and "falls beyond m1, which is therefore no minimum" in text
