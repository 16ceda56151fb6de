"""The sensitivity experiment end to end (smoke profile through the CLI), its profiles and its trend statistic."""

import json
import math

import pytest

from dlprobe.cli import main
from dlprobe.config import build_config
from dlprobe.experiments.sensitivity import PROFILES, Config
from dlprobe.report.text import format_number
from dlprobe.report.experiments.sensitivity import NAMES, observe
from dlprobe.report.experiments.sensitivity import answer as observe_answer
from dlprobe.report.wording import describe_trend
from smoke import assert_rerun_is_skipped, run_smoke

NAME = "sensitivity"
PER_MODEL = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "loss_gap",
             "input_gradient_sensitivity", "jacobian_sensitivity", "sharpness", "hessian_top_eigenvalue")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return out, run_smoke(NAME, out)


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_every_profile_trains_at_least_five_log_spaced_batch_sizes(profile):
    config = build_config(Config, PROFILES[profile], {}, {}, context=profile)
    sizes = sorted(config.batch_sizes)
    assert config.vary == "batch_size" and len(sizes) >= 5
    assert all(b / a >= 2 for a, b in zip(sizes, sizes[1:]))  # log-spaced: each at least twice the last
    if profile == "full":
        assert len(config.seeds) >= 2


def test_smoke_run_writes_figures_and_summary(smoke_run):
    _, run_dir = smoke_run  # run_smoke checked the exit code and DONE
    for name in ("loss", "accuracy", "sharpness", "hessian"):
        for extension in ("png", "svg"):
            assert (run_dir / "figures" / f"{name}_vs_batch_size.{extension}").stat().st_size > 1000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["vary"] == "batch_size" and summary["dataset"] == "mnist-5k" and summary["dataset_note"]
    assert set(summary["definitions"]) == {"input_gradient_sensitivity", "jacobian_sensitivity", "sharpness", "hessian_top_eigenvalue"}
    assert summary["hessian_examples"] == 200 and summary["hessian_top_k"] == 3
    models = summary["models"]
    assert len(models) >= 5
    assert [m["batch_size"] for m in models] == sorted(m["batch_size"] for m in models)
    # Fixed epochs: steps = epochs * ceil(N / batch).
    for m in models:
        assert m["steps"] == summary["epochs"] * math.ceil(summary["num_train"] / m["batch_size"])
        assert m["status"] == ["ok"]
        for name in PER_MODEL:
            assert m[name]["n"] == len(summary["seeds"]), name
            assert all(math.isfinite(v) for v in m[name]["values"]), name
        for name in ("train_loss", "test_loss", "input_gradient_sensitivity", "jacobian_sensitivity"):
            assert m[name]["min"] > 0, name
        assert m["sharpness"]["min"] >= 0
        # Per seed the top-k eigenvalues, descending; the first is the recorded lambda_max.
        assert len(m["hessian_top_eigenvalues"]) == len(summary["seeds"])
        for top, largest in zip(m["hessian_top_eigenvalues"], m["hessian_top_eigenvalue"]["values"]):
            assert len(top) == summary["hessian_top_k"] and top == sorted(top, reverse=True) and top[0] == largest
        assert m["hessian_top_eigenvalue"]["min"] > 0
        assert 0 <= m["test_accuracy"]["min"] <= m["test_accuracy"]["max"] <= 1
    for quantity, trend in summary["spearman"].items():
        assert trend["n"] == len(models) * len(summary["seeds"]), quantity
        assert trend["rho"] is None or (-1 <= trend["rho"] <= 1 and 0 < trend["p_value"] <= 1), quantity
    assert {"input_gradient_sensitivity", "jacobian_sensitivity", "sharpness", "hessian_top_eigenvalue", "loss_gap"} <= set(summary["spearman"])


def test_observations_word_the_hessian_trend(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    trend = summary["spearman"]["hessian_top_eigenvalue"]
    first, last = summary["models"][0], summary["models"][-1]
    expected = (f"{NAMES['hessian_top_eigenvalue']} vs batch size: {describe_trend(trend['rho'], trend['p_value'])} over {trend['n']} runs "
                f"({first['batch_size']}: {format_number(first['hessian_top_eigenvalue']['mean'])} → {last['batch_size']}: "
                f"{format_number(last['hessian_top_eigenvalue']['mean'])}).")
    assert expected in observe(summary, {})
    assert not any("than the assignment asks for" in s for s in observe(summary, {}))  # smoke: 5 batch sizes
    fewer = observe({**summary, "models": summary["models"][:2]}, {})
    assert fewer[1].startswith("Fewer batch size settings than the assignment asks for (2, at least 5)")


@pytest.mark.parametrize("sensitivity, accuracy, verdict", [
    ((1.0, 0.01), (-1.0, 0.01), "sensitivity rises (ρ = +1.00, p = 0.01) and test accuracy falls (ρ = -1.00, p = 0.01) over 5 runs; "
                                "the more sensitive models generalize worse"),
    ((1.0, 0.01), (1.0, 0.01), "the more sensitive models generalize better, the opposite of the direction Novak"),
    ((0.9, 0.083), (-1.0, 0.01), "sensitivity shows no significant trend (ρ = +0.90, p = 0.083) and test accuracy falls"),
    ((0.1, 0.9), (0.2, 0.8), "over 5 runs; this run does not show sensitivity tracking generalization"),
])
def test_first_observation_answers_whether_sensitivity_tracks_generalization(sensitivity, accuracy, verdict):
    trend = lambda rho_p: {"rho": rho_p[0], "p_value": rho_p[1], "n": 5}
    summary = {"vary": "batch_size", "models": [{"batch_size": 64}, {"batch_size": 4096}],
               "spearman": {"input_gradient_sensitivity": trend(sensitivity), "test_accuracy": trend(accuracy)}}
    first = observe_answer(summary)
    assert first.startswith("As the batch size goes from 64 to 4096, ") and verdict in first


def test_hessian_top_k_not_below_the_parameter_count_is_a_one_line_error(tmp_path, capsys):
    code = main(["run", NAME, "--profile", "smoke", "--out", str(tmp_path), "--set", "hessian_top_k=30000", "--quiet"])
    assert code == 2
    assert "hessian_top_k=30000 must be below the model's 25450 parameters" in capsys.readouterr().err


def test_figures_and_metrics_name_the_definitions(smoke_run):
    _, run_dir = smoke_run
    svg = (run_dir / "figures" / "sharpness_vs_batch_size.svg").read_text()
    assert "Keskar" in svg and "Novak" in svg
    assert "assignment" in (run_dir / "figures" / "loss_vs_batch_size.svg").read_text()
    metrics = (run_dir / "metrics.csv").read_text()
    assert "batch25/seed0" in metrics and ",jacobian_sensitivity," in metrics and ",test_accuracy," in metrics


def test_second_invocation_is_skipped(smoke_run):
    out, run_dir = smoke_run
    assert_rerun_is_skipped(["run", NAME, "--profile", "smoke", "--out", str(out), "--quiet"], run_dir)


def test_batch_size_larger_than_the_training_set_is_a_one_line_error(tmp_path, capsys):
    code = main(["run", NAME, "--profile", "smoke", "--out", str(tmp_path), "--set", "batch_sizes=50,100,1000", "--quiet"])
    assert code == 2
    assert "exceed the 500 training images" in capsys.readouterr().err
