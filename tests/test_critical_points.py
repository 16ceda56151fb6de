"""critical-points end to end (smoke) and the batched double-backprop phase against per-model references."""

import json

import torch
import torch.nn.functional as F

from dlprobe.analysis.critical_ensemble import ensemble_grad_norms, minimize_grad_norm_ensemble
from dlprobe.analysis.params import flatten_params, make_flat_loss
from dlprobe.cli import main
from dlprobe.models.mlp import MLPSpec
from dlprobe.training.ensemble import EnsembleMLP


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


def test_ensemble_grad_norms_match_each_model_alone():
    spec = MLPSpec(1, (5, 4), 1, "tanh")
    ensemble = EnsembleMLP(spec, [0, 1, 2]).double()
    x = torch.linspace(-1, 1, 30, dtype=torch.float64).unsqueeze(1)
    y = torch.sin(3 * x)
    norms = ensemble_grad_norms(ensemble, x, y, "mse")
    for index in range(3):
        member = ensemble.member(index)
        loss = make_flat_loss(member, F.mse_loss, x, y)
        reference = torch.func.grad(loss)(flatten_params(member)).norm()
        assert torch.allclose(norms[index], reference, rtol=1e-10)


def test_batched_grad_norm_minimisation_uses_second_order_gradients():
    spec = MLPSpec(1, (6,), 1, "tanh")
    ensemble = EnsembleMLP(spec, [0, 1]).double()
    x = torch.linspace(-1, 1, 40, dtype=torch.float64).unsqueeze(1)
    y = torch.sin(3 * x)
    history = minimize_grad_norm_ensemble(ensemble, x, y, steps=200, lr=1e-2)
    assert history.shape == (201, 2)
    # the objective ||grad L||^2 falls for every model: it has a nonzero gradient only through double backprop
    assert torch.all(history[-1] < 0.5 * history[0])
