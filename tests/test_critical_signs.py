"""Sign classification at near-critical points: hand-built spectra, the third-derivative term against finite
differences, and the sampled quadratic forms against the sampling ratio they explain."""

import numpy as np
import pytest
import torch

from dlprobe.analysis.critical import sampling_minimal_ratios
from dlprobe.analysis.critical_batch import BatchedMLPLoss
from dlprobe.analysis.critical_signs import classify_by_signs, curvature_gradients, rounding_bound, sampled_curvatures
from dlprobe.models.mlp import MLPSpec


def test_a_tiny_negative_eigenvalue_the_gradient_cannot_flip_makes_a_saddle():
    """lambda_min = -2e-6 lies inside a 1e-6 * max|lambda| tolerance band (3e-6), which would call this a minimum;
    with a residual gradient of 1e-14 the Newton step moves it by ~1e-9 at most, so its sign is measured."""
    eigenvalues = np.array([-2e-6, 1.0, 2.0, 3.0])
    slopes = np.full(4, 1e-14)
    derivatives = np.full((4, 4), 0.1)
    verdict = classify_by_signs(eigenvalues, slopes, derivatives)
    assert verdict.classification == "saddle"
    assert (verdict.num_negative, verdict.num_positive, verdict.num_undetermined) == (1, 3, 0)
    assert verdict.minimal_ratio == 0.75 and verdict.minimal_ratio_low == verdict.minimal_ratio_high == 0.75
    assert verdict.index == 0.25 and verdict.largest_uncertainty < 2e-6
    assert verdict.gradient_flat_share == 0.0


def test_rounding_level_negative_eigenvalues_of_a_positive_semidefinite_hessian_make_a_minimum():
    """H = A A^T with A of rank 3 in R^6: three exact zeros, which eigh returns as +-1e-16-ish values."""
    generator = torch.Generator().manual_seed(0)
    factor = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    eigenvalues = torch.linalg.eigvalsh(factor @ factor.T).numpy()
    assert np.sum(np.abs(eigenvalues) < 1e-12) == 3
    verdict = classify_by_signs(eigenvalues, np.zeros(6), np.zeros((6, 6)))
    assert verdict.classification == "minimum"
    assert verdict.num_negative == 0 and verdict.num_positive == 3 and verdict.num_undetermined == 3
    assert verdict.minimal_ratio_low == 0.5 and verdict.minimal_ratio_high == 1.0
    assert np.all(np.abs(eigenvalues[np.abs(eigenvalues) < 1e-12]) <= rounding_bound(eigenvalues))


def test_a_negative_eigenvalue_the_residual_gradient_can_flip_is_undetermined_in_a_gradient_flat_region():
    """The gradient lies along the two small eigen-directions (1e-3 each); a Newton step along them would be
    ~100 long and change them far more than their size: neither sign is known, and the point is gradient-flat."""
    eigenvalues = np.array([-1e-5, 1e-5, 1.0, 2.0])
    slopes = np.array([1e-3, 1e-3, 0.0, 0.0])
    derivatives = 0.1 * np.eye(4) + 0.01
    verdict = classify_by_signs(eigenvalues, slopes, derivatives)
    assert verdict.classification == "undetermined"
    assert (verdict.num_negative, verdict.num_positive, verdict.num_undetermined) == (0, 2, 2)
    assert verdict.minimal_ratio == 0.75 and (verdict.minimal_ratio_low, verdict.minimal_ratio_high) == (0.5, 1.0)
    assert verdict.gradient_flat_share == pytest.approx(1.0)
    assert verdict.hg_ratio == pytest.approx(1e-5 / 2.0)


def test_the_trusted_set_is_the_largest_self_consistent_one():
    """Trusting lambda = 0.01 would put its Newton step at 1 (slope 0.01), which moves lambda = 0.5 by 0.6 (row 1
    of the derivatives): inconsistent. Without it, the other three are consistent."""
    eigenvalues = np.array([2.0, 0.5, 0.01, -1.0])
    slopes = np.array([0.0, 0.0, 0.01, 0.0])
    derivatives = np.zeros((4, 4))
    derivatives[1, 2] = 0.6
    verdict = classify_by_signs(eigenvalues, slopes, derivatives)
    assert (verdict.num_negative, verdict.num_positive, verdict.num_undetermined) == (1, 2, 1)
    assert verdict.classification == "saddle" and verdict.newton_step_norm == 0.0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="classify_by_signs"):
        classify_by_signs(np.ones(3), np.ones(2), np.ones((3, 3)))


def test_curvature_gradients_match_finite_differences_of_the_eigenvalues():
    """d lambda_j / d step along eigenvector i, by triple backprop, against central differences of eigvalsh of the
    exact Hessian (1-3-1 tanh net, float64, distinct eigenvalues)."""
    spec = MLPSpec(1, (3,), 1, "tanh")
    x = torch.linspace(-1, 1, 20, dtype=torch.float64).unsqueeze(1)
    loss = BatchedMLPLoss(spec, x, torch.sin(3 * x))
    theta = torch.randn(1, spec.num_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eigenvalues, basis = torch.linalg.eigh(loss.hessians(theta))
    assert torch.diff(eigenvalues[0]).min() > 1e-4  # simple eigenvalues: the derivative is defined
    derivatives = curvature_gradients(loss, theta, basis)[0]  # (j, i)
    h = 1e-5
    for i in range(spec.num_params):
        step = h * basis[0, :, i]
        plus = torch.linalg.eigvalsh(loss.hessians(theta + step))[0]
        minus = torch.linalg.eigvalsh(loss.hessians(theta - step))[0]
        assert torch.allclose(derivatives[:, i], (plus - minus) / (2 * h), rtol=1e-4, atol=1e-6)


def test_sampled_curvatures_explain_the_sampling_ratio_of_a_quadratic():
    """For f = theta^T H theta / 2 at 0, L(r u) - L(0) = r^2 u^T H u / 2 exactly: the sampling ratio is the share of
    positive quadratic forms over the same directions, and their mean is near tr(H) / P."""
    values = torch.tensor([-0.5, 0.2, 1.0, 3.0, 4.0], dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64))[0]
    hessian = rotation @ torch.diag(values) @ rotation.T
    f = lambda theta: 0.5 * theta @ hessian @ theta  # noqa: E731
    ratio = sampling_minimal_ratios(f, torch.zeros(5, dtype=torch.float64), 4000, (1e-2,), torch.Generator().manual_seed(7))[0]
    forms = sampled_curvatures(hessian, 4000, torch.Generator().manual_seed(7))
    assert ratio == pytest.approx(1 - forms["fraction_negative"], abs=1e-12)
    assert forms["trace_over_params"] == pytest.approx(float(values.mean()))
    assert forms["mean"] == pytest.approx(forms["trace_over_params"], abs=0.05)
    assert forms["min"] >= float(values.min()) - 1e-12
