"""Phase 3 of critical-points for a model whose Hessian is too large to form: everything from Hessian-vector products.

    hessian = dlprobe.Hessian(model, loss_fn, (x, y))          # float64 model at the point reached, eval mode
    record = lanczos_estimates(settings, hessian, theta, gradient, seed)

The counterpart of critical_refine._estimates (the exact path: P x P Hessian, eigh, the per-eigenvalue sign bound),
with the same record keys where the quantity exists without the full spectrum. At the point theta (P,) float64 with
gradient g (P,), from `hessian` (a `dlprobe.Hessian` there: its products, Lanczos and quadrature) and its flat loss:
- the EXTREMES smallest and largest eigenvalues by implicitly restarted Lanczos (Hessian.eigenvalues), each
  recomputed as the Rayleigh quotient v^T H v of its Ritz vector, with its residual ||H v - lambda v|| (an
  eigenvalue lies within the residual of each value);
- the classification by the smallest one (critical_signs.classify_by_extremes: Courant-Fischer for "saddle", the
  residual for "minimum"), with the Newton step s towards the critical point in the directions at least as curved
  as it, from the Ritz pairs of KRYLOV_STEPS Lanczos steps on g (critical._curvature_model, the pairs the Krylov
  Levenberg-Marquardt steps of phase 2 use);
- the minimal ratio (fraction of eigenvalues > 0) and the banded ratio (> eigen_rel_tol * max|lambda|) from
  stochastic Lanczos quadrature (Hessian.density, DENSITY_RUNS runs of DENSITY_STEPS steps; Hessian.minimal_ratio),
  each with its interval: the quadrature's Chebyshev-Markov-Stieltjes bounds, widened by twice the start vectors'
  worst-case standard deviation. minimal_ratio_low / _high are that interval (on the exact path: the undetermined
  signs counted negative / positive) and index = 1 - minimal_ratio_high (the least share of negative eigenvalues
  the interval allows; on the exact path too index = 1 - minimal_ratio_high, trusted negatives / P);
- probing along the 2 * EXTREMES Ritz vectors (critical.probe_eigen_directions, check_probe), random-neighbour
  sampling (critical.sampling_minimal_ratios) with u^T H u of the same directions by products
  (critical_signs.sampled_forms), tr(H)/P as the quadrature's first moment (Hutchinson over its start vectors) and
  ||H g|| / (max|lambda| ||g||).
Not available without every eigenvector, so None in the record: the counts of negative / positive / undetermined
eigenvalues, gradient_flat_share, largest_uncertainty, the banded counts and the probed ratio over all P directions.
`settings` has eigen_rel_tol, probe_radius, num_samples and sampling_radii (the critical-points Config).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence

from .critical import (_curvature_model, _second_directional_derivative, check_probe, probe_eigen_directions,
                       sampling_minimal_ratios)
from .critical_signs import classify_by_extremes, sampled_forms

EXTREMES = 5  # eigenvalues at each end: summary.json's top_eigenvalues / bottom_eigenvalues, as on the exact path
# Lanczos vectors kept by eigsh for the bottom end, and its restarts. The bottom of a near-critical Hessian sits in
# a cluster around zero: on 8 points of a 1153-parameter MLP, eigsh's default basis (20) took 83-3326 products
# within 300 restarts, and on one point none of the 5 converged (1 in 52 s with eigsh's own limit, 10 P restarts);
# a basis of 100 took 101 products everywhere, all 5 converged, values equal to the dense Hessian's.
BOTTOM_BASIS = 100
MAX_RESTARTS = 300
KRYLOV_STEPS = 100  # Lanczos steps from g for each LM step and the sign bound's Newton step (measured: the step of
#                     1-20-20-1 near-critical points matched the exact eigenbasis' to 3 digits from 50 steps on)
DENSITY_STEPS = 200  # per quadrature run: the banded ratio's interval of a 1153-parameter MLP narrowed from 0.9 wide
#                      at 80 steps to 0.07 at 200 (0.07 at 400); the interval of the fraction > 0 stays wide when
#                      half the eigenvalues are a cluster around zero, which no affordable number of steps splits
DENSITY_RUNS = 3  # start vectors: the stochastic part of the interval, 2 / sqrt(P * runs), is 0.034 at P = 1153
SETTINGS = {"extreme_eigenvalues": EXTREMES, "bottom_basis": BOTTOM_BASIS, "max_restarts": MAX_RESTARTS,
            "krylov_steps": KRYLOV_STEPS, "density_steps": DENSITY_STEPS, "density_runs": DENSITY_RUNS}


class LanczosFailure(RuntimeError):
    """Lanczos found no converged eigenvalue at one end of the spectrum."""


def lanczos_estimates(settings, hessian, theta: torch.Tensor, gradient: torch.Tensor, seed: int) -> dict:
    """The record of one point (module docstring): hessian a dlprobe.Hessian at theta (P,) float64, gradient (P,) the
    loss's gradient there, seed for the Lanczos start vectors, the quadrature and the sampled directions. Raises
    LanczosFailure when an end of the spectrum has no converged Ritz value."""
    f = hessian.flat_loss()
    num_params = hessian.num_params
    bottom, top = _extremes(hessian, "smallest", seed), _extremes(hessian, "largest", seed)
    vectors = torch.cat([bottom, top])  # (k_bottom + k_top, P) unit rows: bottom ascending, then top descending
    products = hessian.hvp(vectors)
    values = (vectors * products).sum(dim=1)  # Rayleigh quotients
    residuals = (products - values[:, None] * vectors).norm(dim=1)
    count = len(bottom)
    lambda_min, scale = float(values[0]), float(values.abs().max())
    step = _newton_step(f, theta, gradient, abs(lambda_min))
    change = float(_second_directional_derivative(f, theta, vectors[0]) @ step)
    verdict = classify_by_extremes(lambda_min, float(residuals[0]), change, float(step.norm()), scale, num_params)

    density = hessian.density(steps=DENSITY_STEPS, runs=DENSITY_RUNS, seed=seed)
    ratio = hessian.minimal_ratio(rel_tol=0.0, dense_limit=0, density=density)
    banded = hessian.minimal_ratio(rel_tol=settings.eigen_rel_tol, dense_limit=0, density=density)

    spectrum, slopes = values.numpy(), (vectors @ gradient).numpy()
    rising = probe_eigen_directions(f, theta, vectors.T, settings.probe_radius)
    probe = check_probe(rising, spectrum, slopes, settings.probe_radius, settings.eigen_rel_tol)
    sampled = sampling_minimal_ratios(f, theta, settings.num_samples, settings.sampling_radii,
                                      torch.Generator().manual_seed(seed))
    forms = sampled_forms(hessian.hvp, num_params, settings.num_samples, torch.Generator().manual_seed(seed), like=theta)
    gradient_norm = float(gradient.norm())
    hg = float(hessian.hvp(gradient).norm())
    return {
        "classification": verdict.classification, "num_negative": None, "num_positive": None, "num_undetermined": None,
        "minimal_ratio": ratio.value, "minimal_ratio_low": ratio.low, "minimal_ratio_high": ratio.high,
        "index": 1.0 - ratio.high, "rounding_bound": verdict.rounding_bound, "largest_uncertainty": None,
        "lambda_min_uncertainty": verdict.uncertainty, "lambda_min_residual": verdict.residual,
        "newton_step_norm": verdict.newton_step_norm, "gradient_flat_share": None,
        "hg_ratio": hg / (scale * gradient_norm) if scale > 0 and gradient_norm > 0 else 0.0,
        "minimal_ratio_banded": banded.value, "minimal_ratio_banded_low": banded.low, "minimal_ratio_banded_high": banded.high,
        "index_banded": None, "num_negative_banded": None, "num_near_zero_banded": None, "num_positive_banded": None,
        "probed_ratio": None, "probe_directions": len(rising),
        "probe_directions_outside_band": int(np.sum(np.abs(spectrum) > settings.eigen_rel_tol * np.abs(spectrum).max())),
        "probe_agreement": probe.agreement, "probe_disagreements": probe.disagreements, "probe_unexplained": probe.unexplained,
        "sampling_ratios": sampled, "sampled_curvature_mean": forms["mean"], "sampled_curvature_min": forms["min"],
        "sampled_curvature_negative_share": forms["fraction_negative"],
        "trace_over_params": float(np.sum(density.weights * density.nodes)),
        "lambda_min": lambda_min, "lambda_max": float(values[count]),
        "top_eigenvalues": values[count:].tolist(), "bottom_eigenvalues": values[:count].tolist(),
        "top_residuals": residuals[count:].tolist(), "bottom_residuals": residuals[:count].tolist(),
    }


def _extremes(hessian, which: str, seed: int) -> torch.Tensor:
    """(k, P) float64 unit Ritz vectors of the EXTREMES eigenvalues at one end (sorted as `which` says), or of those
    that converged when ARPACK gives up after MAX_RESTARTS."""
    basis = min(hessian.num_params, BOTTOM_BASIS) if which == "smallest" else None
    try:
        vectors = hessian.eigenvalues(EXTREMES, which, vectors=True, seed=seed, basis_size=basis,
                                      max_iterations=MAX_RESTARTS).vectors
    except ArpackNoConvergence as error:
        if not len(error.eigenvalues):
            raise LanczosFailure(f"no {which} eigenvalue converged") from error
        order = np.argsort(np.real(error.eigenvalues) * (1 if which == "smallest" else -1), kind="stable")
        vectors = np.real(error.eigenvectors[:, order]).T
    return torch.as_tensor(np.ascontiguousarray(vectors), dtype=torch.float64)


def _newton_step(f, theta: torch.Tensor, gradient: torch.Tensor, cut: float) -> torch.Tensor:
    """(P,) the Newton step -sum (y_i . g / l_i) y_i over the Ritz pairs (l_i, y_i) of KRYLOV_STEPS Lanczos steps from
    g with |l_i| >= cut (zero when g = 0)."""
    if float(gradient.norm()) == 0.0:
        return torch.zeros_like(theta)
    ritz_values, ritz_vectors = _curvature_model(f, theta, gradient, KRYLOV_STEPS)
    kept = (ritz_values.abs() >= cut) & (ritz_values != 0)
    return -(ritz_vectors[:, kept] @ ((ritz_vectors[:, kept].T @ gradient.double()) / ritz_values[kept]))
