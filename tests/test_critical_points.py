"""critical-points end to end (smoke). The batched refinement is checked against references in test_critical_batch.py."""

import json

from dlprobe.cli import main


def test_smoke_run_reports_every_run(tmp_path):
    assert main(["run", "critical-points", "--profile", "smoke", "--out", str(tmp_path), "--quiet"]) == 0
    (done,) = list(tmp_path.rglob("DONE"))
    summary = json.loads((done.parent / "summary.json").read_text())
    assert summary["num_runs"] == 4 and len(summary["runs"]) == 4
    for run in summary["runs"]:
        assert run["status"] == "ok"
        assert 0.0 <= run["minimal_ratio"] <= run["minimal_ratio_strict"] <= 1.0
        assert 0.0 <= run["sampling_ratio"] <= 1.0
        assert run["num_negative"] + run["num_near_zero"] + run["num_positive"] == summary["num_params"]
        # phase 2 lowers the gradient norm below what ordinary training left
        assert run["grad_norm"] < run["grad_norm_after_training"]
        assert run["top_eigenvalues"][0] >= run["bottom_eigenvalues"][0]
    assert (done.parent / "figures" / "minimal_ratio_vs_loss.png").stat().st_size > 1000
    rho, p_value = summary["spearman_loss_vs_minimal_ratio"], summary["spearman_loss_vs_minimal_ratio_p"]
    assert (rho is None) == (p_value is None) and (p_value is None or 0 < p_value <= 1)
    if rho is not None:  # 4 runs: exact permutation p-value, never small enough to call a trend
        from dlprobe.experiments.observe import rank_correlation
        good = [r for r in summary["runs"] if r["status"] == "ok"]
        assert (rho, p_value) == rank_correlation([r["loss"] for r in good], [r["minimal_ratio"] for r in good])
        assert p_value >= 1 / 12
