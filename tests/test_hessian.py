"""Hessians, HVPs and spectra against independent references (float64, tiny smooth nets).

References: torch.func.hessian (forward-over-reverse on the whole vector), central finite
differences of the gradient, a quadratic 1/2 theta^T A theta with a chosen spectrum, eigvalsh.
"""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dlprobe.analysis.hessian import dense_hessian, hessian_eigenvalues, hessian_vector_product, hvp_batch
from dlprobe.analysis.spectrum import hutchinson_trace, lanczos_eigenvalues, spectral_density, top_hessian_eigenvalues
from dlprobe.analysis.params import (FlatLoss, flatten_params, load_flat_params, make_flat_loss,
                                     param_shapes, unflatten_params)
from dlprobe.errors import ConfigError
from dlprobe.models.mlp import MLPSpec, build_mlp


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


def test_hvp_and_batched_hvp_match_dense_hessian():
    model, inputs, targets = tiny_regression()
    theta = flatten_params(model)
    f = make_flat_loss(model, F.mse_loss, inputs, targets)
    hessian = torch.func.hessian(f)(theta)
    vectors = torch.randn(5, theta.numel(), dtype=torch.float64)
    assert torch.allclose(hessian_vector_product(f, theta, vectors[0]), hessian @ vectors[0],
                          rtol=1e-10, atol=1e-12)
    assert torch.allclose(hvp_batch(f, theta, vectors, chunk_size=2), vectors @ hessian,
                          rtol=1e-10, atol=1e-12)


def test_lanczos_extremes_match_eigvalsh():
    model, inputs, targets = tiny_regression()
    theta = flatten_params(model)
    f = make_flat_loss(model, F.mse_loss, inputs, targets)
    exact = hessian_eigenvalues(dense_hessian(f, theta))
    assert np.all(np.diff(exact) >= 0)
    top = lanczos_eigenvalues(f, theta, k=3, which="LA")
    bottom = lanczos_eigenvalues(f, theta, k=3, which="SA")
    both = lanczos_eigenvalues(f, theta, k=2, which="both")
    scale = np.abs(exact).max()
    np.testing.assert_allclose(top, exact[-3:], atol=1e-8 * scale)
    np.testing.assert_allclose(bottom, exact[:3], atol=1e-8 * scale)
    np.testing.assert_allclose(both, np.concatenate([exact[:2], exact[-2:]]), atol=1e-8 * scale)
    with pytest.raises(ConfigError):
        lanczos_eigenvalues(f, theta, k=theta.numel())


SPECTRUM = [-2.0, -0.5, 0.0, 0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 10.0, 20.0]


def test_quadratic_exact_hessian_and_eigenvalues():
    f, matrix, theta = quadratic(SPECTRUM)
    hessian = dense_hessian(f, theta)
    assert torch.allclose(hessian, matrix, atol=1e-12)
    np.testing.assert_allclose(hessian_eigenvalues(hessian), sorted(SPECTRUM), atol=1e-10)
    np.testing.assert_allclose(lanczos_eigenvalues(f, theta, k=2, which="both"),
                               [-2.0, -0.5, 10.0, 20.0], atol=1e-8)
    # largest magnitude: 20, 10, 10, 5, 3, then |-2| = |2| (the smaller positive 1, 0.3, 0.1 are left out)
    np.testing.assert_allclose(lanczos_eigenvalues(f, theta, k=7, which="LM"), [-2.0, 2.0, 3.0, 5.0, 10.0, 10.0, 20.0], atol=1e-8)
    negative_first, _, point = quadratic([-30.0, -0.5, 0.0, 1.0, 4.0])
    np.testing.assert_allclose(lanczos_eigenvalues(negative_first, point, k=2, which="LM"),
                               [-30.0, 4.0], atol=1e-8)


def test_hutchinson_trace_within_a_few_standard_errors():
    f, _, theta = quadratic(SPECTRUM)
    generator = torch.Generator().manual_seed(3)
    estimate, stderr = hutchinson_trace(f, theta, num_samples=400, generator=generator)
    assert stderr > 0
    assert abs(estimate - sum(SPECTRUM)) < 4 * stderr
    again = hutchinson_trace(f, theta, num_samples=400, generator=torch.Generator().manual_seed(3))
    assert again == (estimate, stderr)  # same generator seed, same numbers


def test_slq_density_integrates_to_one_and_has_mean_trace_over_p():
    f, _, theta = quadratic(SPECTRUM)
    grid, density = spectral_density(f, theta, num_runs=20, lanczos_steps=12,
                                     generator=torch.Generator().manual_seed(0))
    assert grid.shape == density.shape and np.all(density >= 0)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)
    # Full Lanczos (steps = P) makes each run's quadrature exact for the polynomial x, so the mean
    # of the density is the average of v^T A v / |v|^2 over Rademacher v: trace / P in expectation.
    mean = np.trapezoid(grid * density, grid)
    assert mean == pytest.approx(sum(SPECTRUM) / len(SPECTRUM), abs=0.6)
    # Ritz values of a full Krylov space are the eigenvalues: the peaks sit on the spectrum.
    peak = grid[np.argmax(density)]
    assert min(abs(peak - value) for value in SPECTRUM) < 0.3


def test_sequential_hvp_equals_the_vectorized_one_for_flat_losses_and_plain_closures():
    import torch.nn.functional as F

    from dlprobe.analysis.hessian import _hvp_function
    from dlprobe.analysis.params import flatten_params, make_flat_loss
    from dlprobe.models.mlp import MLPSpec, build_mlp

    model = build_mlp(MLPSpec(3, (5,), 2, "tanh"), torch.Generator().manual_seed(0)).double()
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 3, dtype=torch.float64, generator=generator), torch.randint(0, 2, (20,), generator=generator)
    flat = make_flat_loss(model, F.cross_entropy, x, y)
    theta = flatten_params(model)
    vectors = torch.randn(3, theta.numel(), dtype=torch.float64, generator=generator)
    for f in (flat, lambda t: flat(t)):  # FlatLoss (per-parameter path) and a plain closure (flat path)
        sequential, vectorized = _hvp_function(f, theta, vectorized=False), _hvp_function(f, theta)
        for v in vectors:
            assert torch.allclose(sequential(v), vectorized(v), rtol=0, atol=1e-12)
    # f linear in theta: zero Hessian, no error
    linear = _hvp_function(lambda t: (t * 2.0).sum(), theta, vectorized=False)
    assert torch.count_nonzero(linear(vectors[0])) == 0


def _hand_written_loss(x, y, widths):
    """Mean cross-entropy of a tanh MLP as a function of its flat parameters (nn.Linear order), written out by hand."""
    def loss(theta):
        hidden, offset = x, 0
        for index, (fan_in, fan_out) in enumerate(widths):
            weight = theta[offset: offset + fan_in * fan_out].reshape(fan_out, fan_in)
            bias = theta[offset + fan_in * fan_out: offset + fan_in * fan_out + fan_out]
            offset += fan_in * fan_out + fan_out
            hidden = hidden @ weight.T + bias
            if index < len(widths) - 1:
                hidden = torch.tanh(hidden)
        return torch.nn.functional.cross_entropy(hidden, y)
    return loss


def test_top_hessian_eigenvalues_are_the_top_of_the_dense_spectrum():
    spec = MLPSpec(6, (5,), 3, "tanh")  # P = 6*5 + 5 + 5*3 + 3 = 53
    model = build_mlp(spec, torch.Generator().manual_seed(0))  # float32, as in the experiment
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 6, generator=generator), torch.randint(0, 3, (12,), generator=generator)
    recorded = top_hessian_eigenvalues(model, x, y, k=3, seed=0)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    dense = torch.autograd.functional.hessian(_hand_written_loss(x.double(), y, spec.layer_sizes), theta)
    reference = torch.linalg.eigvalsh(dense).flip(0)[:3].numpy()  # float64, descending
    # float32 Hessian-vector products and eigsh's relative tolerance 1e-5: agreement to 1e-4 of lambda_max.
    assert np.abs(np.array(recorded) - reference).max() <= 1e-4 * reference[0]
    assert reference[0] - reference[1] > 1e-3 * reference[0]  # distinct eigenvalues: the order is meaningful
    assert top_hessian_eigenvalues(model, x, y, k=3, seed=0) == recorded  # the seeded start vector: same result
