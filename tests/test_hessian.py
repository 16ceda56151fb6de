"""Dense Hessians and flat losses (analysis/hessian.py, params.py) against independent references (float64,
tiny smooth nets). Products, Lanczos, trace and density are dlprobe.Hessian's: tests/test_library_hessian.py.

References: torch.func.hessian (forward-over-reverse on the whole vector), central finite
differences of the gradient, a quadratic 1/2 theta^T A theta with a chosen spectrum, eigvalsh.
"""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dlprobe.analysis.hessian import dense_hessian, hessian_eigenvalues
from dlprobe.analysis.params import (FlatLoss, flatten_params, load_flat_params, make_flat_loss,
                                     param_shapes, unflatten_params)
from dlprobe.errors import ConfigError


def tiny_regression(seed: int = 0, num_samples: int = 23):
    """2-4-3-1 tanh/softplus MLP (31 params) with a regression target, float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3), nn.Softplus(),
                          nn.Linear(3, 1)).double()
    inputs = torch.randn(num_samples, 2, dtype=torch.float64)
    targets = torch.sin(inputs.sum(dim=1, keepdim=True))
    return model, inputs, targets


def tiny_classifier(seed: int = 1):
    """3-5-4 tanh classifier (40 params) with cross-entropy, float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    inputs = torch.randn(30, 3, dtype=torch.float64)
    labels = torch.randint(0, 4, (30,))
    return model, inputs, labels


def quadratic(eigenvalues: list[float], seed: int = 0):
    """f(theta) = 1/2 theta^T A theta with A = Q diag(eigenvalues) Q^T, Q a random rotation."""
    generator = torch.Generator().manual_seed(seed)
    size = len(eigenvalues)
    rotation, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    matrix = rotation @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ rotation.T
    theta = torch.randn(size, generator=generator, dtype=torch.float64)
    return (lambda t: 0.5 * t @ matrix @ t), matrix, theta


def finite_difference_hessian(f, theta, step=1e-5):
    gradient = lambda t: torch.func.grad(f)(t)
    columns = []
    for j in range(theta.numel()):
        shift = torch.zeros_like(theta)
        shift[j] = step
        columns.append((gradient(theta + shift) - gradient(theta - shift)) / (2 * step))
    return torch.stack(columns, dim=1)


def test_flatten_unflatten_round_trip_and_load():
    model, _, _ = tiny_regression()
    theta = flatten_params(model)
    assert theta.shape == (31,)
    pieces = unflatten_params(theta, model)
    assert {k: v.shape for k, v in pieces.items()} == param_shapes(model)
    for (name, param), piece in zip(model.named_parameters(), pieces.values()):
        assert torch.equal(param, piece)
    load_flat_params(model, theta * 2)
    assert torch.equal(flatten_params(model), theta * 2)
    with pytest.raises(ConfigError):
        unflatten_params(theta[:-1], model)


def test_flat_loss_equals_model_loss_and_restores_training_mode():
    model, inputs, targets = tiny_regression()
    model.train()
    f = make_flat_loss(model, F.mse_loss, inputs, targets)
    assert isinstance(f, FlatLoss)
    value = f(flatten_params(model))
    assert torch.allclose(value, F.mse_loss(model(inputs), targets), rtol=1e-14)
    assert model.training and all(m.training for m in model.modules())


def test_flat_loss_uses_eval_mode_and_buffers():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Dropout(0.5),
                          nn.Linear(4, 1)).double()
    inputs = torch.randn(16, 2, dtype=torch.float64)
    targets = torch.randn(16, 1, dtype=torch.float64)
    model(inputs * 3 + 1)  # a train-mode pass moves BatchNorm's running statistics off 0 and 1
    f = make_flat_loss(model, F.mse_loss, inputs, targets)
    theta = flatten_params(model)
    value = f(theta)
    assert model.training  # the caller's mode is put back
    model.eval()
    assert torch.allclose(value, F.mse_loss(model(inputs), targets), rtol=1e-14)
    assert torch.equal(f(theta), value)  # dropout off: deterministic
    assert torch.allclose(dense_hessian(f, theta), torch.func.hessian(f)(theta),
                          rtol=1e-10, atol=1e-12)


def test_flat_loss_in_chunks_equals_full_batch_value_and_hessian():
    model, inputs, targets = tiny_regression(num_samples=23)
    theta = flatten_params(model)
    full = make_flat_loss(model, F.mse_loss, inputs, targets)
    chunked = make_flat_loss(model, F.mse_loss, inputs, targets, batch_size=5)  # 5+5+5+5+3
    assert torch.allclose(chunked(theta), full(theta), rtol=1e-13)
    assert torch.allclose(dense_hessian(chunked, theta), torch.func.hessian(full)(theta),
                          rtol=1e-10, atol=1e-12)


def test_flat_loss_casts_float32_model_to_float64_theta():
    model, inputs, targets = tiny_regression()
    model32 = model.float()
    f = make_flat_loss(model32, F.mse_loss, inputs.float(), targets.float())
    value = f(flatten_params(model32).double())
    assert value.dtype == torch.float64


@pytest.mark.parametrize("structured", [True, False])
def test_dense_hessian_matches_func_hessian_and_finite_differences(structured):
    model, inputs, targets = tiny_regression()
    theta = flatten_params(model)
    flat = make_flat_loss(model, F.mse_loss, inputs, targets)
    f = flat if structured else (lambda t: flat(t))  # a plain closure takes the generic path
    hessian = dense_hessian(f, theta, chunk_size=7)
    assert torch.equal(hessian, hessian.T)
    assert torch.allclose(hessian, torch.func.hessian(flat)(theta), rtol=1e-10, atol=1e-12)
    assert torch.allclose(hessian, finite_difference_hessian(flat, theta), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("chunk_size", [1, 16, 1000])
def test_dense_hessian_cross_entropy_any_chunk(chunk_size):
    model, inputs, labels = tiny_classifier()
    theta = flatten_params(model)
    f = make_flat_loss(model, F.cross_entropy, inputs, labels)
    reference = torch.func.hessian(f)(theta)
    assert torch.allclose(dense_hessian(f, theta, chunk_size), reference, rtol=1e-10, atol=1e-12)


def test_dense_hessian_float32_close_to_float64():
    model, inputs, targets = tiny_regression()
    f = make_flat_loss(model, F.mse_loss, inputs, targets)
    theta = flatten_params(model)
    h32 = dense_hessian(f, theta.float())
    assert h32.dtype == torch.float32
    assert torch.allclose(h32.double(), dense_hessian(f, theta), atol=1e-5)


SPECTRUM = [-2.0, -0.5, 0.0, 0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 10.0, 20.0]


def test_quadratic_exact_hessian_and_eigenvalues():
    f, matrix, theta = quadratic(SPECTRUM)
    hessian = dense_hessian(f, theta)
    assert torch.allclose(hessian, matrix, atol=1e-12)
    np.testing.assert_allclose(hessian_eigenvalues(hessian), sorted(SPECTRUM), atol=1e-10)
