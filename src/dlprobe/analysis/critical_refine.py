"""Trained MLPs driven to near-critical points and classified there, R runs at once (critical-points phases 1b-3).

    records = refine_and_classify(settings, spec, thetas, x, y, seeds, statuses)   # one dict per run

For the runs whose training status is "ok", all together (critical_batch.py): an L-BFGS polish of the loss,
L-BFGS on ||grad L||^2 and/or Levenberg-Marquardt on grad L = 0 (settings.phase2), then, at the point
reached, the exact Hessian's eigendecomposition and three estimates of the minimal ratio: the Hessian's
eigenvalue signs (critical.minimal_ratio, hessian_index), probing along every eigenvector
(critical.probe_eigen_directions, check_probe) and random neighbours (critical.sampling_minimal_ratios).
Everything runs in float64. `settings` is the critical-points Config (or anything with its fields
polish_steps, phase2, grad_norm_steps, newton_steps, eigen_rel_tol, probe_radius, num_samples, sampling_radii).
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.mlp import MLPSpec
from .batched_lbfgs import lbfgs
from .critical import check_probe, hessian_index, minimal_ratio, probe_eigen_directions, sampling_minimal_ratios
from .critical_batch import BatchedMLPLoss, levenberg_marquardt


def refine_and_classify(settings, spec: MLPSpec, thetas: torch.Tensor, x: torch.Tensor, y: torch.Tensor, seeds: list[int],
                        statuses: list[str]) -> list[dict]:
    """One record per run: thetas (R, P) trained weights (any float dtype, MLP parameter order), x (N, in) and
    y (N, out) the training data, seeds (R,) (each run's sampling directions are drawn from its seed), statuses
    (R,) from training. A run whose status is not "ok" keeps it: {seed, status}. Every other run gets {seed,
    loss, train_loss_after_adam (at thetas), grad_norm_after_training (after the polish), grad_norm_after_grad_min,
    grad_norm (final), the estimates of `_estimates`, status ("ok", or failed when the loss or gradient is not
    finite)}: plain Python numbers and lists."""
    ok = [index for index, status in enumerate(statuses) if status == "ok"]
    results: list[dict] = [{"seed": seed, "status": status} for seed, status in zip(seeds, statuses)]
    if not ok:
        return results
    loss = BatchedMLPLoss(spec, x.double(), y.double())
    current = thetas[ok].double().clone()
    after_adam = loss(current)
    if settings.polish_steps:
        current, _ = lbfgs(loss.value_and_gradients, current, settings.polish_steps)
    grad_after_training = loss.gradients(current).norm(dim=1)
    grad_after_min = grad_after_training
    if settings.phase2 in ("both", "grad-norm") and settings.grad_norm_steps:
        current, _ = lbfgs(loss.grad_norm_objective, current, settings.grad_norm_steps)
        grad_after_min = loss.gradients(current).norm(dim=1)
    if settings.phase2 in ("both", "newton") and settings.newton_steps:
        current, _ = levenberg_marquardt(loss, current, steps=settings.newton_steps)
    spectra, bases = torch.linalg.eigh(loss.hessians(current))  # (R, P) ascending, (R, P, P) eigenvectors as columns
    final_loss, final_grad = loss.value_and_gradients(current)
    for row, index in enumerate(ok):
        value, grad = float(final_loss[row]), float(final_grad[row].norm())
        status = "ok" if np.isfinite(value) and np.isfinite(grad) else "failed (non-finite loss or gradient)"
        results[index] = {
            "seed": seeds[index], "loss": value, "train_loss_after_adam": float(after_adam[row]),
            "grad_norm_after_training": float(grad_after_training[row]), "grad_norm_after_grad_min": float(grad_after_min[row]),
            "grad_norm": grad, **_estimates(settings, loss, current[row], spectra[row], bases[row], final_grad[row], seeds[index]),
            "status": status,
        }
    return results


def _estimates(settings, loss: BatchedMLPLoss, theta: torch.Tensor, eigenvalues: torch.Tensor, basis: torch.Tensor,
               gradient: torch.Tensor, seed: int) -> dict:
    """The three minimal-ratio estimates at one point theta (P,) float64, from its Hessian's eigenvalues (P,) and
    eigenvectors (P, P columns) and its gradient (P,): Hessian signs, eigen-direction probing, random sampling."""
    values = eigenvalues.numpy()
    signs = hessian_index(values, settings.eigen_rel_tol)
    rising = probe_eigen_directions(loss.single, theta, basis, settings.probe_radius)
    probe = check_probe(rising, values, (basis.T @ gradient).numpy(), settings.probe_radius, settings.eigen_rel_tol)
    sampled = sampling_minimal_ratios(loss.single, theta, settings.num_samples, settings.sampling_radii, torch.Generator().manual_seed(seed))
    return {
        "minimal_ratio": minimal_ratio(values, settings.eigen_rel_tol), "minimal_ratio_strict": float(np.mean(values > 0)),
        "probed_ratio": probe.probed_ratio, "probe_agreement": probe.agreement, "probe_disagreements": probe.disagreements,
        "probe_unexplained": probe.unexplained, "sampling_ratios": sampled, "sampling_ratio": sampled[0], "index": signs.index,
        "num_negative": signs.num_negative, "num_near_zero": signs.num_near_zero, "num_positive": signs.num_positive,
        "top_eigenvalues": values[-5:][::-1].tolist(), "bottom_eigenvalues": values[:5].tolist(),
    }
