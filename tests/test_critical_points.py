"""critical-points end to end (smoke). The batched refinement is checked against references in test_critical_batch.py."""

import json

import pytest

from dlprobe.cli import main
from dlprobe.config import build_config
from dlprobe.errors import ConfigError
from dlprobe.experiments import critical_points
from dlprobe.report.experiments import critical_points as critical_points_report


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """(run directory, summary) of one smoke run."""
    out = tmp_path_factory.mktemp("critical")
    assert main(["run", "critical-points", "--profile", "smoke", "--out", str(out), "--quiet"]) == 0
    (done,) = list(out.rglob("DONE"))
    return done.parent, json.loads((done.parent / "summary.json").read_text())


def test_smoke_run_reports_every_run(smoke):
    run_dir, summary = smoke
    assert summary["num_runs"] == 4 and len(summary["runs"]) == 4
    assert [r["switch_epoch"] for r in summary["runs"]] == critical_points.stage_epochs(4, 200, "log") == [0, 5, 33, 200]
    for run in summary["runs"]:
        assert run["status"] == "ok"
        assert run["minimal_ratio_low"] <= run["minimal_ratio"] <= run["minimal_ratio_high"]
        assert run["minimal_ratio_banded"] <= run["minimal_ratio"]  # the band only removes positives
        assert run["num_negative"] + run["num_undetermined"] + run["num_positive"] == summary["num_params"]
        assert run["minimal_ratio_low"] == run["num_positive"] / summary["num_params"]
        assert run["classification"] == ("saddle" if run["num_negative"] else run["classification"])
        assert run["classification"] != "minimum" or run["lambda_min"] >= -run["rounding_bound"]
        assert 0.0 <= run["gradient_flat_share"] <= 1.0 and 0.0 <= run["sampled_curvature_negative_share"] <= 1.0
        assert run["sampled_curvature_min"] <= run["sampled_curvature_mean"]
        # phase 2 lowers the gradient norm below what ordinary training left
        assert run["grad_norm"] < run["grad_norm_at_switch"]
        assert run["top_eigenvalues"][0] == run["lambda_max"] >= run["bottom_eigenvalues"][0] == run["lambda_min"]
    assert sum(summary["classes"].values()) == 4
    assert summary["gradient_flat_runs"] == sum(r["gradient_flat_share"] > 0.5 for r in summary["runs"])
    assert (run_dir / "figures" / "minimal_ratio_vs_loss.png").stat().st_size > 1000
    from dlprobe.analysis.stats import rank_correlation
    good = [r for r in summary["runs"] if r["status"] == "ok"]
    for name, x, y in (("loss_vs_minimal_ratio", "loss", "minimal_ratio"), ("loss_vs_index", "loss", "index"),
                       ("switch_epoch_vs_loss", "switch_epoch", "loss")):
        rho, p_value = summary[f"spearman_{name}"], summary[f"spearman_{name}_p"]
        assert (rho, p_value) == rank_correlation([r[x] for r in good], [r[y] for r in good])
        assert p_value is None or p_value >= 1 / 12  # 4 runs: exact permutation p-value, never small enough for a trend


def test_stage_epochs_spread_the_switch_points():
    assert critical_points.stage_epochs(5, 10000, "log") == [0, 9, 99, 999, 10000]
    assert critical_points.stage_epochs(3, 10, "linear") == [0, 5, 10]
    assert critical_points.stage_epochs(3, 10, "end") == [10, 10, 10]
    assert critical_points.stage_epochs(1, 10, "log") == [10]
    epochs = critical_points.stage_epochs(100, 20000, "log")
    assert epochs[0] == 0 and epochs[-1] == 20000 and epochs == sorted(epochs)


def test_the_estimates_are_recorded_and_the_sampling_ratio_is_explained(smoke):
    _, summary = smoke
    settings = summary["settings"]
    assert settings["sampling_radii"] == [1e-3, 1e-2, 1e-1] and settings["probe_radius"] == 1e-3
    for run in summary["runs"]:
        assert len(run["sampling_ratios"]) == 3 and all(0.0 <= ratio <= 1.0 for ratio in run["sampling_ratios"])
        assert 0.0 <= run["probed_ratio"] <= 1.0
        outside = run["num_negative_banded"] + run["num_positive_banded"]
        assert run["probe_agreement"] == pytest.approx(1 - run["probe_disagreements"] / outside)
    estimates = summary["estimates"]
    good = summary["runs"]
    outside = sum(r["num_negative_banded"] + r["num_positive_banded"] for r in good)
    assert estimates["probe_directions_outside_band"] == outside
    assert estimates["sampling_ratio_means"] == pytest.approx([sum(r["sampling_ratios"][i] for r in good) / 4 for i in range(3)])
    assert estimates["num_undetermined_mean"] == pytest.approx(sum(r["num_undetermined"] for r in good) / 4)
    assert estimates["sampled_curvature_negative_max"] == max(r["sampled_curvature_negative_share"] for r in good)
    assert estimates["lambda_min_min"] == min(r["lambda_min"] for r in good)
    sentences = critical_points_report.observe(summary, {})
    assert sentences[0].startswith("Driven to a small gradient from points of training log-spaced between epoch 0 and 200")
    classes = summary["classes"]
    assert f"{classes['saddle']} saddle points" in sentences[0] and f"{classes['minimum']} minima" in sentences[0]
    sampling = next(s for s in sentences if s.startswith("The sampling ratio"))
    assert all(f"at radius {radius:g}" in sampling for radius in settings["sampling_radii"])
    assert f"{estimates['sampled_curvature_negative_max']:.1%}" in sampling
    assert "checks" not in sampling and "does not check the Hessian's ratio" in sampling or classes["saddle"] == 0
    columns, rows = critical_points_report.table(summary)
    assert "sampling ratio (r=0.1)" in columns and "class" in columns and all(len(row) == len(columns) for row in rows)


def test_the_first_sentence_says_plainly_when_there_is_no_relation():
    runs = [{"status": "ok", "loss": loss, "classification": "saddle", "gradient_flat_share": 0.0,
             "minimal_ratio_low": 0.4, "minimal_ratio_high": 0.6, "sampling_ratios": [1.0], "minimal_ratio": 0.5}
            for loss in (0.1, 0.2, 0.3)]
    summary = {"runs": runs, "settings": {"stages": "end", "train_epochs": 100, "gradient_flat_threshold": 0.5,
               "eigen_rel_tol": 1e-6, "sampling_radii": [0.1], "probe_radius": 1e-3},
               "classes": {"saddle": 3, "minimum": 0, "undetermined": 0}, "spearman_loss_vs_minimal_ratio": None,
               "spearman_loss_vs_minimal_ratio_p": None, "spearman_loss_vs_index": 0.5, "spearman_loss_vs_index_p": 1.0,
               "gradient_flat_runs": 0, "grad_norm_reached": {"min": 1e-9, "max": 1e-7}, "grad_norm_median": 1e-8,
               "fraction_below_1e-6": 1.0, "num_params": 10,
               "estimates": {"num_undetermined_mean": 2.0, "minimal_ratio_mean": 0.5, "minimal_ratio_banded_mean": 0.4,
                             "sampling_ratio_means": [1.0], "sampled_curvature_mean_mean": 0.3, "trace_over_params_mean": 0.3,
                             "sampled_curvature_negative_max": 0.0, "lambda_min_min": -1e-3, "saddle_sampling_ratio_means": [1.0],
                             "saddle_minimal_ratio_mean": 0.5, "probe_agreement": None, "probe_directions_outside_band": 0,
                             "probe_disagreements": 0, "probe_unexplained": 0}}
    sentences = critical_points_report.observe(summary, {})
    assert "not measurable" in sentences[0] and "the end of 100 Adam epochs" in sentences[0]
    assert "no relation that this number of runs can establish" in sentences[3]
    assert "close to true critical points" in sentences[1]


def test_sampling_radii_is_a_list_of_positive_radii():
    config = build_config(critical_points.Config, {}, {}, {"sampling_radii": "0.001,0.1"}, "critical-points")
    assert config.sampling_radii == (1e-3, 0.1)
    with pytest.raises(ConfigError, match="unknown config file key 'radius'.*sampling_radii"):
        build_config(critical_points.Config, {}, {"radius": 1e-3}, {}, "critical-points")
    with pytest.raises(ConfigError, match="at least one radius"):
        critical_points.Config(sampling_radii=())
    with pytest.raises(ConfigError):
        critical_points.Config(sampling_radii=(1e-3, 0.0))
