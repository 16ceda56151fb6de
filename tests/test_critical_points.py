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
    for run in summary["runs"]:
        assert run["status"] == "ok"
        assert 0.0 <= run["minimal_ratio"] <= run["minimal_ratio_strict"] <= 1.0
        assert 0.0 <= run["sampling_ratio"] <= 1.0
        assert run["num_negative"] + run["num_near_zero"] + run["num_positive"] == summary["num_params"]
        # phase 2 lowers the gradient norm below what ordinary training left
        assert run["grad_norm"] < run["grad_norm_after_training"]
        assert run["top_eigenvalues"][0] >= run["bottom_eigenvalues"][0]
    assert (run_dir / "figures" / "minimal_ratio_vs_loss.png").stat().st_size > 1000
    rho, p_value = summary["spearman_loss_vs_minimal_ratio"], summary["spearman_loss_vs_minimal_ratio_p"]
    assert (rho is None) == (p_value is None) and (p_value is None or 0 < p_value <= 1)
    if rho is not None:  # 4 runs: exact permutation p-value, never small enough to call a trend
        from dlprobe.analysis.stats import rank_correlation
        good = [r for r in summary["runs"] if r["status"] == "ok"]
        assert (rho, p_value) == rank_correlation([r["loss"] for r in good], [r["minimal_ratio"] for r in good])
        assert p_value >= 1 / 12


def test_three_estimates_are_recorded_and_cross_checked(smoke):
    _, summary = smoke
    settings = summary["settings"]
    assert settings["sampling_radii"] == [1e-3, 1e-2, 1e-1] and settings["probe_radius"] == 1e-3
    for run in summary["runs"]:
        assert len(run["sampling_ratios"]) == 3 and run["sampling_ratio"] == run["sampling_ratios"][0]
        assert all(0.0 <= ratio <= 1.0 for ratio in run["sampling_ratios"])
        assert 0.0 <= run["probed_ratio"] <= 1.0
        outside = run["num_negative"] + run["num_positive"]
        assert run["probe_agreement"] == pytest.approx(1 - run["probe_disagreements"] / outside)
        # The smoke runs stop at gradient norms ~1e-4 (10 LM steps), so the probe does not always match the
        # eigenvalue sign outside the band (agreement 0.56-0.87 per run): every such direction is one where the
        # measured slope |v.g| is at least r |lambda| / 2, i.e. the second-order model predicts the mismatch.
        assert run["probe_unexplained"] == 0
    estimates = summary["estimates"]
    good = summary["runs"]
    outside = sum(r["num_negative"] + r["num_positive"] for r in good)
    assert estimates["probe_directions_outside_band"] == outside
    agreeing = sum(r["probe_agreement"] * (r["num_negative"] + r["num_positive"]) for r in good)
    assert estimates["probe_agreement"] == pytest.approx(agreeing / outside)
    assert estimates["sampling_ratio_means"] == pytest.approx([sum(r["sampling_ratios"][i] for r in good) / 4 for i in range(3)])
    assert estimates["num_near_zero_mean"] == pytest.approx(sum(r["num_near_zero"] for r in good) / 4)
    sentence = next(s for s in critical_points_report.observe(summary, {}) if s.startswith("Three minimal-ratio estimates"))
    assert f"{estimates['probe_disagreements']} disagree, {estimates['probe_disagreements']} of them" in sentence
    assert all(f"at radius {radius:g}" in sentence for radius in settings["sampling_radii"])
    columns, rows = critical_points_report.table(summary)
    assert "sampling ratio (r=0.1)" in columns and "probe agreement" in columns and all(len(row) == len(columns) for row in rows)


def test_sampling_radii_replaces_radius():
    config = build_config(critical_points.Config, {}, {}, {"sampling_radii": "0.001,0.1"}, "critical-points")
    assert config.sampling_radii == (1e-3, 0.1)
    with pytest.raises(ConfigError, match="unknown config file key 'radius'.*sampling_radii"):
        build_config(critical_points.Config, {}, {"radius": 1e-3}, {}, "critical-points")
    with pytest.raises(ConfigError, match="at least one radius"):
        critical_points.Config(sampling_radii=())
    with pytest.raises(ConfigError):
        critical_points.Config(sampling_radii=(1e-3, 0.0))
