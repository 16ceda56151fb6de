"""The interpolation experiment end to end (smoke profile through the CLI) and its small helpers."""

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlprobe.cli import main
from dlprobe.data.images import load_dataset
from dlprobe.analysis.line_profile import flatter_endpoint
from dlprobe.experiments.interpolation import FLATNESS_RATIO, PROFILES, Config, _seed_summary, alpha_grid
from dlprobe.models.mlp import MLP, MLPSpec
from dlprobe.plotting.flatness import plot_interpolation
from dlprobe.report.experiments.interpolation import observe
from smoke import assert_rerun_is_skipped, run_smoke

NAME = "interpolation"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return out, run_smoke(NAME, out)


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_smoke_run_writes_figures_and_summary(smoke_run):
    _, run_dir = smoke_run  # run_smoke checked the exit code and DONE
    assert (run_dir / "DONE").exists()
    for pair in ("batch_size", "learning_rate"):
        for extension in ("png", "svg"):
            figure = run_dir / "figures" / f"interpolation_{pair}.{extension}"
            assert figure.stat().st_size > 1000
    summary = summary_of(run_dir)
    assert summary["seeds"] == [0, 1] == list(PROFILES["smoke"]["seeds"])
    alphas = summary["alphas"]
    assert len(alphas) >= 50 and min(alphas) == -1.0 and max(alphas) == 2.0 and 0.0 in alphas and 1.0 in alphas
    assert set(summary["pairs"]) == {"batch_size", "learning_rate"}
    batch_pair = summary["pairs"]["batch_size"]
    assert (batch_pair["m1"]["batch_size"], batch_pair["m2"]["batch_size"]) == (64, 1024)
    assert batch_pair["m1"]["label"] == "m1 (batch 64)" and batch_pair["m2"]["label"] == "m2 (batch 1024)"
    rate_pair = summary["pairs"]["learning_rate"]
    assert (rate_pair["m1"]["learning_rate"], rate_pair["m2"]["learning_rate"]) == (1e-3, 1e-2)
    for pair in summary["pairs"].values():
        assert [run["seed"] for run in pair["per_seed"]] == [0, 1]
        for run in pair["per_seed"]:
            assert run["m1"]["init_seed"] == run["m2"]["init_seed"] == run["seed"]  # shared_init, per seed
            assert run["parameter_distance"] > 0
            for split in ("train", "test"):
                ends = run["endpoints"][split]
                # The barrier is measured against the worse endpoint on a grid containing both: never negative.
                assert run["barrier"][split] >= 0
                assert run["minimum"][split]["loss"] <= min(ends["loss_at_0"], ends["loss_at_1"])
                assert 0 <= run["midpoint"][split]["accuracy"] <= 1
                assert run["flatness"][split]["flatter"] in ("m1", "m2", "similar", "not measurable")
        # Two seeds are two trainings: their models differ.
        assert pair["per_seed"][0]["m2"]["train_loss"] != pair["per_seed"][1]["m2"]["train_loss"]
    # m1 of both pairs is the same model (batch 64, lr 1e-3), trained once per seed.
    for batch_run, rate_run in zip(batch_pair["per_seed"], rate_pair["per_seed"]):
        assert batch_run["endpoints"]["train"]["loss_at_0"] == rate_run["endpoints"]["train"]["loss_at_0"]
    assert len(list((run_dir / "trials").glob("model_*.pt"))) == 3 * 2
    assert len(list((run_dir / "trials").glob("line_*.pt"))) == 2 * 2


def test_seed_stats_are_the_per_seed_values_statistics(smoke_run):
    """Every headline stat equals numpy's mean/std/min/max of the per-seed numbers it summarizes."""
    _, run_dir = smoke_run
    for pair in summary_of(run_dir)["pairs"].values():
        runs, stats = pair["per_seed"], pair["stats"]
        checked = [(stats["parameter_distance"], [r["parameter_distance"] for r in runs])]
        for split in ("train", "test"):
            checked.append((stats["barrier"][split], [r["barrier"][split] for r in runs]))
            checked.append((stats["midpoint"][split]["loss"], [r["midpoint"][split]["loss"] for r in runs]))
            for rise in ("rise_beyond_m1", "rise_beyond_m2"):
                checked.append((stats["flatness"][split][rise], [r["flatness"][split][rise] for r in runs]))
            assert stats["flatness"][split]["flatter"] == [r["flatness"][split]["flatter"] for r in runs]
        for name in ("m1", "m2"):
            checked.append((stats[name]["test_accuracy"], [r[name]["test_accuracy"] for r in runs]))
        for stat, values in checked:
            assert stat["values"] == values and stat["n"] == 2
            assert stat["mean"] == pytest.approx(np.mean(values), rel=1e-12)
            assert stat["std"] == pytest.approx(np.std(values), rel=1e-9, abs=1e-15)
            assert (stat["min"], stat["max"]) == (min(values), max(values))


def test_seed_0_of_two_seeds_equals_a_single_seed_run(smoke_run, tmp_path):
    """The seeds are independent trials: seed 0's numbers do not depend on which other seeds ran."""
    _, run_dir = smoke_run
    single = summary_of(run_smoke(NAME, tmp_path, "--seeds", "1"))
    assert single["seeds"] == [0]
    both = summary_of(run_dir)
    for name, pair in both["pairs"].items():
        (alone,) = single["pairs"][name]["per_seed"]
        assert alone == pair["per_seed"][0]
        assert single["pairs"][name]["stats"]["barrier"]["train"]["values"] == [alone["barrier"]["train"]]
    assert "one training run per model (seed 0)" in " ".join(observe(single, {}))
    assert "one training run per model" not in " ".join(observe(both, {}))


def test_endpoints_equal_the_trained_models_own_losses(smoke_run):
    """alpha = 0 and 1 of the vmapped line reproduce m1 and m2, evaluated here with a plain forward pass."""
    _, run_dir = smoke_run
    config = Config(**PROFILES["smoke"])
    data = load_dataset(config.dataset, train_size=config.train_size)
    spec = MLPSpec(784, config.widths, 10, config.activation)
    pair = summary_of(run_dir)["pairs"]["batch_size"]
    for run in pair["per_seed"]:  # both seeds
        check_endpoints(run_dir, pair, run, spec, data)


def check_endpoints(run_dir, pair, run, spec, data):
    """One seed's line endpoints and final metrics against its saved models' own forward passes."""
    for name, alpha in (("m1", 0), ("m2", 1)):
        key = f"model_bs{pair[name]['batch_size']}_lr{pair[name]['learning_rate']:g}_seed{run[name]['init_seed']}.pt"
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
            assert run["endpoints"][split][f"loss_at_{alpha}"] == pytest.approx(losses.mean().item(), rel=1e-6)
            assert run["endpoints"][split][f"accuracy_at_{alpha}"] == pytest.approx(accuracy, abs=1.5 / len(y))
            assert run[name][f"{split}_loss"] == pytest.approx(losses.mean().item(), rel=1e-6)
            # float64 is only as close as float32 rounding of near-zero per-example losses allows.
            assert run["endpoints"][split][f"loss_at_{alpha}"] == pytest.approx(exact, rel=1e-4)


def test_metrics_hold_the_line_and_the_training_curves(smoke_run):
    _, run_dir = smoke_run
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0] == "run,step,name,value"
    names = {tuple(line.split(",")[0:3:2]) for line in lines[1:]}
    for seed in (0, 1):
        assert (f"batch_size/seed{seed}/line", "alpha") in names and (f"learning_rate/seed{seed}/line", "test_accuracy") in names
        assert (f"batch_size/seed{seed}/m2", "train_loss") in names


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


def test_bad_config_is_a_one_line_error(tmp_path, capsys):
    code = main(["run", NAME, "--profile", "smoke", "--out", str(tmp_path), "--set", "batch_sizes=16,64,256", "--quiet"])
    assert code == 2
    assert "exactly two" in capsys.readouterr().err


def with_rises(summary: dict, pair: str, split: str, rises: list[tuple[float, float]]) -> dict:
    """A copy of summary whose pair's per-seed rises (one (m1, m2) per seed) and verdicts are replaced; stats recomputed."""
    summary = copy.deepcopy(summary)
    runs = summary["pairs"][pair]["per_seed"][: len(rises)]
    for run, (rise1, rise2) in zip(runs, rises):
        run["flatness"][split].update(rise_beyond_m1=rise1, rise_beyond_m2=rise2, flatter=flatter_endpoint(rise1, rise2, FLATNESS_RATIO))
    summary["pairs"][pair].update(per_seed=runs, stats=_seed_summary(runs))
    summary["seeds"] = [run["seed"] for run in runs]
    return summary


def test_observations_say_falls_for_a_negative_rise(smoke_run):
    """A loss that drops beyond an endpoint is reported as falling (never "rises by -x") and as not measurable."""
    _, run_dir = smoke_run
    summary = with_rises(summary_of(run_dir), "batch_size", "train", [(-0.00074, 0.0352)])
    text = " ".join(observe(summary, {}))
    assert "the train loss falls by 7.40e-04 beyond m1" in text and "rises by 0.0352 beyond m2" in text, text
    assert "rises by -" not in text and "falls beyond m1, which is therefore no minimum" in text
    assert "one training run per model (seed 0)" in text


def test_a_verdict_that_holds_in_one_of_two_seeds_is_not_called_clear(smoke_run):
    _, run_dir = smoke_run
    summary = with_rises(summary_of(run_dir), "learning_rate", "test", [(0.1, 0.5), (0.1, 0.12)])
    (sentence,) = [s for s in observe(summary, {}) if s.startswith("m1 (lr 0.001)") and "the test loss" in s]
    assert "m1 (lr 0.001) flatter in 1 of 2 seeds" in sentence and "similar rises in 1 of 2 seeds" in sentence, sentence
    assert "no flatness difference is called clear" in sentence and "is flatter along this line" not in sentence
    assert "rises by 0.1 ± 0 beyond m1" in sentence and "rises by 0.31 ± 0.19 beyond m2" in sentence, sentence
    unanimous = with_rises(summary_of(run_dir), "learning_rate", "test", [(0.1, 0.5), (0.2, 0.9)])
    (sentence,) = [s for s in observe(unanimous, {}) if s.startswith("m1 (lr 0.001)") and "the test loss" in s]
    assert "m1 (lr 0.001) is flatter along this line in each of the 2 seeds (the other's rise is 4.5 to 5× larger)" in sentence
    mixed_sign = with_rises(summary_of(run_dir), "learning_rate", "test", [(-0.1, 0.5), (0.3, 0.9)])
    (sentence,) = [s for s in observe(mixed_sign, {}) if s.startswith("m1 (lr 0.001)") and "the test loss" in s]
    assert "changes by 0.1 ± 0.2 (falls in 1 of 2 seeds) beyond m1" in sentence, sentence


def test_figure_draws_a_band_only_for_several_seeds():
    alphas = np.linspace(-1, 2, 7)
    runs = {"train": np.ones((2, 7)) + np.arange(2)[:, None], "test": np.ones((2, 7))}
    ax = plot_interpolation(alphas, runs, {"train": np.full((2, 7), 0.5), "test": np.full((2, 7), 0.4)}, ("m1", "m2"), "t")
    assert len(ax.collections) == 2 and len(ax.right_axis.collections) == 2  # train and test bands on both axes
    assert np.allclose(ax.lines[0].get_ydata(), 1.5)  # the mean of the seeds' rows
    single = plot_interpolation(alphas, {k: v[0] for k, v in runs.items()}, {"train": np.full(7, 0.5), "test": np.full(7, 0.4)},
                                ("m1", "m2"), "t")
    assert len(single.collections) == 0 and len(single.right_axis.collections) == 0


def test_first_observation_answers_barrier_and_flatness_per_pair(smoke_run):
    _, run_dir = smoke_run
    summary = with_rises(summary_of(run_dir), "learning_rate", "train", [(0.1, 0.5), (0.2, 0.9)])
    summary = with_rises(summary, "batch_size", "train", [(0.1, 0.5), (0.1, 0.12)])
    first = observe(summary, {})[0]
    assert first.startswith("On the straight line between the two trained models, m1 (batch 64) vs m2 (batch 1024): "), first
    assert "m1 (lr 0.001) flatter along the line in each seed" in first, first
    assert "m1 (batch 64) vs m2 (batch 1024): no loss barrier in any of the 2 seeds, a flatness verdict that differs between seeds" in first, first
    run = summary["pairs"]["batch_size"]["per_seed"][1]
    run["barrier"]["train"] = max(run["endpoints"]["train"]["loss_at_0"], run["endpoints"]["train"]["loss_at_1"])  # a clear barrier
    summary["pairs"]["batch_size"]["stats"] = _seed_summary(summary["pairs"]["batch_size"]["per_seed"])
    assert "m2 (batch 1024): a loss barrier in 1 of 2 seeds (train " in observe(summary, {})[0]
