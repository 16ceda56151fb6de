"""dlprobe.critical_point on a user's model: the point reached is checked with plain autograd on a loaded copy."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

import dlprobe
from dlprobe.errors import UsageError


def trained_classifier():
    """3-3-2 tanh MLP (20 parameters) fitted by L-BFGS to 60 random labels, float32 (the search copies to float64);
    from there Levenberg-Marquardt reaches ||grad|| < 1e-10 in about 25 steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    x, y = torch.randn(60, 3), torch.randint(0, 2, (60,))
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return model, x, y


def test_newton_reaches_a_critical_point_whose_gradient_and_hessian_check_out_independently():
    model, x, y = trained_classifier()
    before = copy.deepcopy(model.state_dict())
    point = dlprobe.critical_point(model, nn.CrossEntropyLoss(), DataLoader(TensorDataset(x, y), batch_size=16), steps=40)
    assert all(torch.equal(t, before[name]) for name, t in model.state_dict().items())  # the model is untouched
    assert point.grad_norms[-1] < 1e-9 < point.grad_norms[0]
    there = copy.deepcopy(model).double()
    there.load_state_dict(point.state, strict=False)
    loss = nn.functional.cross_entropy(there(x.double()), y)
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(there.parameters()))])
    assert gradient.norm().item() < 1e-8 and point.loss == pytest.approx(loss.item(), rel=1e-10)
    names = [name for name, _ in there.named_parameters()]

    def full_loss(*tensors):
        return nn.functional.cross_entropy(functional_call(there, dict(zip(names, tensors)), (x.double(),)), y)

    blocks = torch.autograd.functional.hessian(full_loss, tuple(p.detach() for p in there.parameters()))
    sizes = [p.numel() for p in there.parameters()]
    dense = torch.cat([torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(sizes))], 1) for i in range(len(sizes))])
    exact = np.linalg.eigvalsh(dense.numpy())
    np.testing.assert_allclose(point.eigenvalues, exact, atol=1e-10)
    threshold = 1e-6 * np.abs(exact).max()
    assert point.minimal_ratio == pytest.approx(np.mean(exact > threshold)) and point.index == pytest.approx(np.mean(exact < -threshold))


def test_gradient_norm_descent_lowers_the_gradient_and_bad_calls_are_one_line():
    model, x, y = trained_classifier()
    with torch.no_grad():
        model[0].weight.add_(0.5)  # away from the minimum
    point = dlprobe.critical_point(model, nn.CrossEntropyLoss(), (x, y), method="lbfgs", steps=50)
    assert point.method == "lbfgs" and point.grad_norms[-1] < 0.1 * point.grad_norms[0]
    with pytest.raises(UsageError, match="method must be one of"):
        dlprobe.critical_point(model, nn.CrossEntropyLoss(), (x, y), method="sgd")
    with pytest.raises(UsageError, match="more than max_params=5"):
        dlprobe.critical_point(model, nn.CrossEntropyLoss(), (x, y), max_params=5)
