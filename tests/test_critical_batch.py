"""Batched critical-point tools against one-run references: dense autograd Hessians, damped_newton, closed forms."""

import pytest
import torch
import torch.nn.functional as F

from dlprobe.analysis.critical import damped_newton
from dlprobe.analysis.batched_lbfgs import lbfgs
from dlprobe.analysis.critical_batch import BatchedMLPLoss, levenberg_marquardt
from dlprobe.analysis.hessian import dense_hessian
from dlprobe.analysis.params import make_flat_loss
from dlprobe.models.mlp import MLP, MLPSpec


def _problem(spec, runs=4, points=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.linspace(-2, 2, points, dtype=torch.float64).view(-1, 1).repeat(1, spec.in_features)
    x = x + 0.3 * torch.randn(x.shape, dtype=torch.float64, generator=generator)
    y = torch.sin(2 * x[:, :1]) + 0.1 * torch.randn(points, 1, dtype=torch.float64, generator=generator)
    thetas = 0.7 * torch.randn(runs, spec.num_params, dtype=torch.float64, generator=generator)
    return BatchedMLPLoss(spec, x, y), thetas, make_flat_loss(MLP(spec).double(), F.mse_loss, x, y)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "relu"])
@pytest.mark.parametrize("widths, in_features", [((6,), 1), ((4,), 3), ((3, 4), 2)])
def test_losses_gradients_and_hessians_match_dense_autograd_per_run(activation, widths, in_features):
    spec = MLPSpec(in_features, widths, 1, activation)
    loss, thetas, flat = _problem(spec)
    values, gradients = loss.value_and_gradients(thetas)
    hessians = loss.hessians(thetas)
    for run in range(len(thetas)):
        assert values[run].item() == pytest.approx(flat(thetas[run]).item(), rel=1e-12)
        reference_gradient = torch.func.grad(flat)(thetas[run])
        assert torch.allclose(gradients[run], reference_gradient, rtol=0, atol=1e-12)
        assert torch.allclose(hessians[run], dense_hessian(flat, thetas[run]), rtol=0, atol=1e-10)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus"])
def test_closed_form_hessian_equals_reverse_passes(activation):
    loss, thetas, _ = _problem(MLPSpec(2, (5,), 1, activation), runs=6, seed=1)
    assert torch.allclose(loss.hessians(thetas), loss.autograd_hessians(thetas), rtol=0, atol=1e-11)


def test_grad_norm_objective_gradient_is_two_h_g_and_second_directional_matches_finite_differences():
    loss, thetas, _ = _problem(MLPSpec(1, (5,), 1, "tanh"), runs=3, seed=2)
    values, gradient = loss.grad_norm_objective(thetas)
    g = loss.gradients(thetas)
    hessians = loss.hessians(thetas)
    assert torch.allclose(values, g.square().sum(dim=1), rtol=1e-12, atol=0)
    assert torch.allclose(gradient, 2 * torch.einsum("rpq,rq->rp", hessians, g), rtol=0, atol=1e-10)
    v = torch.randn(thetas.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    h = 1e-4
    plus = torch.einsum("rpq,rq->rp", loss.hessians(thetas + h * v), v)
    minus = torch.einsum("rpq,rq->rp", loss.hessians(thetas - h * v), v)
    assert torch.allclose(loss.second_directional(thetas, v), (plus - minus) / (2 * h), rtol=1e-5, atol=1e-7)


def test_batched_levenberg_marquardt_takes_the_steps_of_damped_newton_run_by_run():
    loss, thetas, flat = _problem(MLPSpec(1, (5,), 1, "tanh"), runs=3, points=30, seed=4)
    batched, history = levenberg_marquardt(loss, thetas, steps=25)
    for run in range(len(thetas)):
        single, norms = damped_newton(flat, thetas[run], steps=25)
        assert history[-1][run].item() == pytest.approx(norms[-1], rel=1e-5, abs=1e-13)
        assert torch.allclose(batched[run], single, rtol=0, atol=1e-7)
    assert (history[-1] < history[0] * 1e-3).all()


def test_batched_lbfgs_minimises_a_quadratic_from_every_start_and_runs_do_not_interact():
    generator = torch.Generator().manual_seed(5)
    factor = torch.randn(6, 6, dtype=torch.float64, generator=generator)
    matrix = factor @ factor.T + 0.05 * torch.eye(6, dtype=torch.float64)  # SPD, condition number ~1e3
    target = torch.randn(6, dtype=torch.float64, generator=generator)

    def objective(thetas):  # the same function for every row, as lbfgs requires
        offset = thetas - target
        return 0.5 * ((offset @ matrix) * offset).sum(dim=1), offset @ matrix

    starts = 3 * torch.randn(4, 6, dtype=torch.float64, generator=generator)
    solution, values = lbfgs(objective, starts, iterations=200)
    assert torch.allclose(solution, target.expand(4, 6), rtol=0, atol=1e-6)
    assert (values < 1e-12).all()
    alone, _ = lbfgs(objective, starts[2:3], iterations=200)
    assert torch.allclose(alone[0], solution[2], rtol=0, atol=1e-12)


def test_batched_lbfgs_polish_lowers_the_loss_of_every_run():
    loss, thetas, _ = _problem(MLPSpec(1, (6,), 1, "tanh"), runs=5, seed=6)
    polished, values = lbfgs(loss.value_and_gradients, thetas, iterations=200)
    assert (values < loss(thetas)).all()
    assert torch.allclose(values, loss(polished), rtol=1e-12, atol=0)
    assert (loss.gradients(polished).norm(dim=1) < 0.1 * loss.gradients(thetas).norm(dim=1)).all()
