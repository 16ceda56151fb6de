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
