"""critical-points without the P x P Hessian: Levenberg-Marquardt in a Krylov space against the dense steps, the
quadrature's bounds and the Lanczos sign rule on hand-built cases, and a user model above the exact limit end to end
with a dense Hessian computed here as the independent reference."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dlprobe.analysis.critical import damped_newton, hessian_index
from dlprobe.analysis.hessian import dense_hessian, hessian_eigenvalues
from dlprobe.analysis.params import flatten_params, make_flat_loss


@pytest.fixture(scope="module")
def trained():
    """1-6-6-1 tanh MLP (61 params) after 3000 full-batch Adam steps on 40 points of sin(3x), float64."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    inputs = torch.linspace(-1, 1, 40, dtype=torch.float64).unsqueeze(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3000):
        optimizer.zero_grad()
        F.mse_loss(model(inputs), torch.sin(3 * inputs)).backward()
        optimizer.step()
    return make_flat_loss(model, F.mse_loss, inputs, torch.sin(3 * inputs)), flatten_params(model)


@pytest.mark.parametrize("acceleration", [False, True])
def test_krylov_levenberg_marquardt_takes_the_dense_steps_once_its_space_holds_the_gradient(trained, acceleration):
    """With as many Lanczos steps as parameters the Krylov space from g is H's whole invariant subspace around g, so
    the step formula gives the dense step (measured: 1e-10 apart without the correction, 1e-8 with it, whose
    D^2g[v, v] is projected onto that space); with 10 steps the steps differ, each still accepted only if ||g|| falls."""
    f, theta = trained
    _, dense = damped_newton(f, theta, steps=15, acceleration=acceleration)
    _, full = damped_newton(f, theta, steps=15, acceleration=acceleration, krylov_steps=61)
    np.testing.assert_allclose(full, dense, rtol=1e-6)
    _, short = damped_newton(f, theta, steps=15, acceleration=acceleration, krylov_steps=10)
    assert all(later < earlier for earlier, later in zip(short, short[1:]))
    assert short[-1] < 2 * dense[-1] and short[-1] < 0.1 * short[0]


def test_krylov_levenberg_marquardt_finds_the_saddle():
    f = lambda t: t[0] ** 2 - t[1] ** 2 + 0.5 * t[0] ** 3 * t[1]  # saddle at 0, non-quadratic
    reached, history = damped_newton(f, torch.tensor([0.2, -0.15], dtype=torch.float64), steps=50, krylov_steps=2)
    assert history[-1] < 1e-10 and reached.abs().max() < 1e-9
    assert hessian_index(hessian_eigenvalues(dense_hessian(f, reached))).index == 0.5


def test_quadrature_bounds_on_a_hand_solved_measure():
    """Nodes -1, 0.5, 2 with weights 0.5, 0.3, 0.2 (given out of order): the weight above the threshold, and the
    Chebyshev-Markov-Stieltjes bracket that drops the first node above it (low) or adds the last one below (high)."""
    from dlprobe.library.hessian import quadrature_fraction_above

    nodes, weights = np.array([2.0, -1.0, 0.5]), np.array([0.4, 1.0, 0.6])  # normalised: 0.2, 0.5, 0.3
    assert quadrature_fraction_above(nodes, weights, 0.0) == pytest.approx((0.5, 0.2, 1.0))
    assert quadrature_fraction_above(nodes, weights, 1.0) == pytest.approx((0.2, 0.0, 0.5))
    assert quadrature_fraction_above(nodes, weights, -2.0) == pytest.approx((1.0, 0.5, 1.0))
    assert quadrature_fraction_above(nodes, weights, 3.0) == pytest.approx((0.0, 0.0, 0.2))


def test_quadrature_bounds_hold_for_every_start_vector_and_length():
    """Diagonal H with a known spectrum (half of it a cluster of +-1e-3 around zero, as at a near-critical point of an
    over-parametrised net): for Rademacher starts z and any number of Lanczos steps, the share of z's spectral
    measure above 0 (exactly sum z_i^2 / P over lambda_i > 0) lies in the bracket."""
    from dlprobe.library.hessian import lanczos_runs, quadrature_fraction_above

    rng = np.random.default_rng(1)
    checked = 0
    for trial in range(40):
        spectrum = np.concatenate([rng.normal(0, 1e-3, 150), rng.exponential(5, 50), -rng.exponential(0.1, 10)])
        start = torch.as_tensor(rng.choice([-1.0, 1.0], spectrum.size))
        diagonal = torch.as_tensor(spectrum)
        steps = int(rng.integers(2, 60))
        ((alphas, betas),) = lanczos_runs(lambda block: block * diagonal, start[None], steps)
        nodes, vectors = np.linalg.eigh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
        for threshold in (0.0, 1e-3, -1e-2):
            _, low, high = quadrature_fraction_above(nodes, vectors[0] ** 2, threshold)
            exact = float(np.mean(spectrum > threshold))  # z_i^2 = 1
            assert low - 1e-12 <= exact <= high + 1e-12
            checked += 1
    assert checked == 120


def test_the_density_minimal_ratio_comes_with_an_interval_that_holds_the_exact_one():
    """A 1-8-8-1 tanh MLP (97 parameters) on 30 points: the dense path's interval is the value itself; the density
    path's interval (quadrature bracket +- 2 / sqrt(P R)) holds the exact fraction for every seed tried."""
    from dlprobe import Hessian

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    inputs = torch.linspace(-1, 1, 30, dtype=torch.float64).unsqueeze(1)
    hessian = Hessian(model, F.mse_loss, (inputs, torch.sin(4 * inputs)), progress=False)
    exact = np.linalg.eigvalsh(hessian.dense())
    dense = hessian.minimal_ratio(rel_tol=0.0)
    assert dense.method == "dense" and dense.low == dense.value == dense.high
    # Eigenvalues at rounding level (P eps max|lambda|) take either sign from one product ordering to the next
    # (Hessian times its batched or looped products); the interval must hold the fraction for either.
    rounding = exact.size * np.finfo(np.float64).eps * np.abs(exact).max()
    for seed in range(4):
        density = hessian.density(steps=20, runs=3, seed=seed)
        assert density.run_lengths == (20, 20, 20)
        for rel_tol in (0.0, 1e-6, 1e-2):
            estimate = hessian.minimal_ratio(rel_tol=rel_tol, dense_limit=0, density=density)
            assert estimate.method == "density" and estimate.low <= estimate.value <= estimate.high
            threshold = rel_tol * np.abs(exact).max()
            assert estimate.low <= np.mean(exact > threshold + rounding) <= np.mean(exact > threshold - rounding) <= estimate.high


@pytest.mark.parametrize("case, expected", [
    # lambda_min, residual, curvature change along s, ||s||, scale, P
    ((-1e-3, 1e-12, 1e-6, 1e-4, 10.0, 2000), "saddle"),
    # Courant-Fischer: a negative Rayleigh quotient needs no convergence, a residual of 0.5 changes nothing
    ((-1e-3, 0.5, 1e-6, 1e-4, 10.0, 2000), "saddle"),
    # inside a 1e-6 * max|lambda| tolerance band (3e-6), which would call it a minimum; the step moves it by 1e-9
    ((-2e-6, 1e-14, 1e-9, 1e-8, 3.0, 2000), "saddle"),
    # the residual gradient's Newton step could move it past zero
    ((-1e-3, 1e-12, 2e-3, 1.0, 10.0, 2000), "undetermined"),
    ((1e-4, 1e-9, 0.0, 0.0, 10.0, 2000), "minimum"),
    # a rounding-level negative value (rounding bound 2000 eps 10 = 4.4e-12) at the point reached: the exact path's rule
    ((-1e-13, 0.0, 1.0, 1.0, 10.0, 2000), "minimum"),
    # positive, but an eigenvalue within the residual could be negative
    ((1e-4, 1e-3, 0.0, 0.0, 10.0, 2000), "undetermined"),
])
def test_the_lanczos_sign_rule_on_hand_built_cases(case, expected):
    from dlprobe.analysis.critical_signs import classify_by_extremes

    lambda_min, residual, change, step, scale, size = case
    verdict = classify_by_extremes(lambda_min, residual, change, step, scale, size)
    assert verdict.classification == expected
    assert verdict.rounding_bound == pytest.approx(size * np.finfo(np.float64).eps * scale)
    assert verdict.uncertainty == pytest.approx(abs(change) + verdict.rounding_bound)
    assert verdict.as_dict()["newton_step_norm"] == step and verdict.lambda_min == lambda_min


def test_eigenvalues_take_a_basis_size():
    from dlprobe import Hessian
    from dlprobe.errors import UsageError

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    inputs = torch.linspace(-1, 1, 20, dtype=torch.float64).unsqueeze(1)
    hessian = Hessian(model, F.mse_loss, (inputs, inputs ** 2), progress=False)
    exact = np.linalg.eigvalsh(hessian.dense())
    for which, expected in (("smallest", exact[:3]), ("largest", exact[::-1][:3])):
        values = hessian.eigenvalues(3, which, basis_size=12).values
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-10 * np.abs(exact).max())
    with pytest.raises(UsageError, match="basis_size"):
        hessian.eigenvalues(3, "smallest", basis_size=3)


def test_quadratic_forms_from_products_are_those_of_the_dense_hessian():
    from dlprobe import Hessian
    from dlprobe.analysis.critical_signs import sampled_curvatures, sampled_forms

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    inputs = torch.linspace(-1, 1, 20, dtype=torch.float64).unsqueeze(1)
    hessian = Hessian(model, F.mse_loss, (inputs, inputs ** 2), progress=False)
    dense = sampled_curvatures(torch.as_tensor(hessian.dense()), 64, torch.Generator().manual_seed(3))
    products = sampled_forms(hessian.hvp, hessian.num_params, 64, torch.Generator().manual_seed(3), like=hessian.parameters())
    assert products.keys() == {"mean", "min", "fraction_negative"}
    for key, value in products.items():
        assert value == pytest.approx(dense[key], abs=1e-12)


# 1-32-32-1 tanh MLP, 1153 parameters: above critical-points' exact limit (1000), small enough for a dense reference.
WIDE = '''
import math

import torch
from torch import nn


def make(input_shape, num_outputs, seed):
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(input_shape[0], 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, num_outputs))
    with torch.no_grad():
        for layer in model[::2]:
            bound = 1 / math.sqrt(layer.in_features)
            for p in (layer.weight, layer.bias):
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
    return model
'''


@pytest.fixture(scope="module")
def lanczos_run(tmp_path_factory):
    """(run directory, summary, {seed: (model at the point reached, theta)}) of critical-points --profile smoke with the
    1153-parameter model; the points are captured on their way into phase 3, for the dense reference."""
    import copy
    import json

    from dlprobe.analysis import critical_lanczos
    from dlprobe.cli import main

    folder = tmp_path_factory.mktemp("lanczos")
    (folder / "wide.py").write_text(WIDE)
    points, original = {}, critical_lanczos.lanczos_estimates

    def capture(settings, hessian, theta, gradient, seed):
        points[seed] = (copy.deepcopy(hessian.model), theta.clone())
        return original(settings, hessian, theta, gradient, seed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(critical_lanczos, "lanczos_estimates", capture)
        assert main(["run", "critical-points", "--profile", "smoke", "--out", str(folder / "out"), "--quiet",
                     "--model", f"{folder}/wide.py:make"]) == 0
    (done,) = list((folder / "out").rglob("DONE"))
    return done.parent, json.loads((done.parent / "summary.json").read_text()), points


def test_a_model_above_the_exact_limit_is_measured_by_lanczos_and_agrees_with_its_dense_hessian(lanczos_run):
    """Against the dense Hessian (analysis.hessian.dense_hessian, eigvalsh) at each run's point: the 5 smallest and 5
    largest Lanczos eigenvalues to 1e-9 max|lambda| (their residuals are ~1e-15 max|lambda|; each value is within its
    residual of an eigenvalue, which is checked too), the fraction of eigenvalues > 0 and the banded fraction inside
    the stated intervals, and the classification consistent with the dense lambda_min."""
    from dlprobe.data.functions import function_dataset

    _, summary, points = lanczos_run
    assert summary["hessian_method"] == "lanczos" and summary["num_params"] == 1153
    assert summary["lanczos_settings"] == {"extreme_eigenvalues": 5, "bottom_basis": 100, "max_restarts": 300, "krylov_steps": 100,
                                           "density_steps": 200, "density_runs": 3}
    assert summary["gradient_flat_runs"] is None and sum(summary["classes"].values()) == summary["num_runs"] == 4
    x, y, _, _ = function_dataset("sinc", 50, 12)  # the smoke profile's training set (num_train 50)
    for run in summary["runs"]:
        assert run["status"] == "ok" and run["grad_norm"] < run["grad_norm_at_switch"]
        model, theta = points[run["seed"]]
        f = make_flat_loss(model, F.mse_loss, x.double(), y.double())
        assert float(f(theta)) == pytest.approx(run["loss"], rel=1e-12)  # the reference is taken at the run's point
        exact = hessian_eigenvalues(dense_hessian(f, theta))  # (1153,) ascending
        scale = np.abs(exact).max()
        np.testing.assert_allclose(run["bottom_eigenvalues"], exact[:5], rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(run["top_eigenvalues"], exact[::-1][:5], rtol=0, atol=1e-9 * scale)
        rounding = exact.size * np.finfo(np.float64).eps * scale
        for value, residual in zip(run["bottom_eigenvalues"] + run["top_eigenvalues"], run["bottom_residuals"] + run["top_residuals"]):
            assert np.abs(exact - value).min() <= residual + rounding
        assert run["lambda_min"] == run["bottom_eigenvalues"][0] and run["lambda_max"] == run["top_eigenvalues"][0]
        assert run["minimal_ratio_low"] <= np.mean(exact > rounding) <= np.mean(exact > -rounding) <= run["minimal_ratio_high"]
        assert run["minimal_ratio_low"] <= run["minimal_ratio"] <= run["minimal_ratio_high"]
        assert run["index"] == pytest.approx(1 - run["minimal_ratio_high"])
        banded = 1e-6 * scale
        assert run["minimal_ratio_banded_low"] <= np.mean(exact > banded + rounding) <= np.mean(exact > banded - rounding) \
            <= run["minimal_ratio_banded_high"]
        if run["classification"] == "saddle":
            assert exact[0] < -run["lambda_min_uncertainty"]
        if run["classification"] == "minimum":
            assert exact[0] >= -(run["lambda_min_residual"] + rounding)
        for key in ("num_negative", "num_undetermined", "gradient_flat_share", "probed_ratio"):
            assert run[key] is None  # they need every eigenvector
        assert run["probe_directions"] == 10 and 0.0 <= run["hg_ratio"] and len(run["sampling_ratios"]) == 3
    assert summary["estimates"]["num_undetermined_mean"] is None
    assert summary["estimates"]["probe_directions_outside_band"] == sum(r["probe_directions_outside_band"] for r in summary["runs"])


def test_the_report_says_the_hessian_was_estimated_and_how_far_the_estimates_go(lanczos_run, tmp_path):
    from dlprobe.report import build_report
    from dlprobe.report.experiments import critical_points as critical_points_report

    run_dir, summary, _ = lanczos_run
    sentences = critical_points_report.observe(summary, {})
    assert "estimated by stochastic Lanczos quadrature: with 1153 parameters the Hessian was not formed" in sentences[0]
    assert "The Hessian was measured by products only" in " ".join(sentences)
    assert "needs every eigenvector, which the Lanczos path does not compute" in sentences[1]
    widths = [r["minimal_ratio_high"] - r["minimal_ratio_low"] for r in summary["runs"]]
    assert ("a correlation of estimates from intervals up to" in sentences[0]) == (max(widths) > 0.2)
    dauphin = next(s for s in sentences if s.startswith("Dauphin"))
    assert ("neither confirms nor contradicts theirs" in dauphin) == (max(widths) > 0.2)
    columns, rows = critical_points_report.table(summary)
    assert "interval" in columns and "λ_min residual" in columns and len(rows) == 4
    assert all(len(row) == len(columns) for row in rows)
    html = build_report([run_dir], tmp_path / "report").read_text()
    assert "stochastic Lanczos quadrature" in html and "minimal ratio (estimate)" in html
