"""Trained MLPs driven to near-critical points and classified there, R runs at once (critical-points phases 1b-3).

    records = refine_and_classify(settings, spec, thetas, x, y, seeds, statuses)   # one dict per run

For the runs whose training status is "ok", all together (critical_batch.py): an optional L-BFGS polish of
the loss, L-BFGS on ||grad L||^2 and/or Levenberg-Marquardt on grad L = 0 (settings.phase2), then, at the
point reached, the exact Hessian's eigendecomposition and
- the signs it can vouch for (critical_signs.classify_by_signs: the minimal ratio as the assignment defines it,
  its range over the undetermined eigenvalues, saddle / minimum / undetermined, the share of the residual
  gradient in undetermined directions);
- the banded ratio (eigenvalues within eigen_rel_tol * max|lambda| counted as not positive; secondary);
- probing along every eigenvector (critical.probe_eigen_directions, check_probe): the loss-only check;
- random neighbours (critical.sampling_minimal_ratios) with the quadratic forms u^T H u of the same
  directions (critical_signs.sampled_curvatures), which say why that ratio is what it is.
Everything runs in float64. `settings` is the critical-points Config (or anything with its fields
polish_steps, phase2, grad_norm_steps, newton_steps, eigen_rel_tol, probe_radius, num_samples, sampling_radii).
"""

from __future__ import annotations

import torch

from ..models.mlp import MLPSpec
from .batched_lbfgs import lbfgs
from .critical import check_probe, hessian_index, minimal_ratio, probe_eigen_directions, sampling_minimal_ratios
from .critical_batch import BatchedMLPLoss, levenberg_marquardt
from .critical_signs import classify_by_signs, curvature_gradients, sampled_curvatures


def refine_and_classify(settings, spec: MLPSpec, thetas: torch.Tensor, x: torch.Tensor, y: torch.Tensor, seeds: list[int],
                        statuses: list[str]) -> list[dict]:
    """One record per run: thetas (R, P) trained weights (any float dtype, MLP parameter order), x (N, in) and
    y (N, out) the training data, seeds (R,) (each run's sampling directions are drawn from its seed), statuses
    (R,) from training. A run whose status is not "ok" keeps it: {seed, status}. Every other run gets {seed,
    loss_at_switch (at thetas), grad_norm_at_switch, grad_norm_after_polish, grad_norm_after_grad_min, loss and
    grad_norm (final), the estimates of `_estimates`, status ("ok", or failed when the loss or gradient is not
    finite)}: plain Python numbers and lists."""
    ok = [index for index, status in enumerate(statuses) if status == "ok"]
    results: list[dict] = [{"seed": seed, "status": status} for seed, status in zip(seeds, statuses)]
    if not ok:
        return results
    loss = BatchedMLPLoss(spec, x.double(), y.double())
    current = thetas[ok].double().clone()
    at_switch, grad_at_switch = loss.value_and_gradients(current)
    if settings.polish_steps:
        current, _ = lbfgs(loss.value_and_gradients, current, settings.polish_steps)
    grad_after_polish = loss.gradients(current).norm(dim=1)
    grad_after_min = grad_after_polish
    if settings.phase2 in ("both", "grad-norm") and settings.grad_norm_steps:
        current, _ = lbfgs(loss.grad_norm_objective, current, settings.grad_norm_steps)
        grad_after_min = loss.gradients(current).norm(dim=1)
    if settings.phase2 in ("both", "newton") and settings.newton_steps:
        current, _ = levenberg_marquardt(loss, current, steps=settings.newton_steps)
    hessians = loss.hessians(current)
    final_loss, final_grad = loss.value_and_gradients(current)
    finite = torch.isfinite(final_loss) & torch.isfinite(final_grad).all(dim=1) & torch.isfinite(hessians).flatten(1).all(dim=1)
    safe = torch.where(finite.view(-1, 1, 1), hessians, torch.eye(hessians.shape[1], dtype=hessians.dtype))  # eigh needs finite input
    spectra, bases = torch.linalg.eigh(safe)  # (R, P) ascending, (R, P, P) eigenvectors as columns
    derivatives = curvature_gradients(loss, torch.where(finite.view(-1, 1), current, 0.0), bases)  # (R, P, P)
    for row, index in enumerate(ok):
        common = {"seed": seeds[index], "loss_at_switch": float(at_switch[row]), "grad_norm_at_switch": float(grad_at_switch[row].norm()),
                  "grad_norm_after_polish": float(grad_after_polish[row]), "grad_norm_after_grad_min": float(grad_after_min[row]),
                  "loss": float(final_loss[row]), "grad_norm": float(final_grad[row].norm())}
        if not finite[row]:
            results[index] = {**common, "status": "failed (non-finite loss, gradient or Hessian)"}
            continue
        estimates = _estimates(settings, loss, current[row], hessians[row], spectra[row], bases[row], final_grad[row],
                               derivatives[row], seeds[index])
        results[index] = {**common, **estimates, "status": "ok"}
    return results


def _estimates(settings, loss: BatchedMLPLoss, theta: torch.Tensor, hessian: torch.Tensor, eigenvalues: torch.Tensor,
               basis: torch.Tensor, gradient: torch.Tensor, derivatives: torch.Tensor, seed: int) -> dict:
    """Everything measured at one point theta (P,) float64 from its Hessian (P, P), eigenvalues (P,), eigenvectors
    (P, P columns), gradient (P,) and curvature gradients (P, P; critical_signs.curvature_gradients)."""
    values = eigenvalues.numpy()
    slopes = (basis.T @ gradient).numpy()
    verdict = classify_by_signs(values, slopes, derivatives.numpy())
    banded = hessian_index(values, settings.eigen_rel_tol)
    rising = probe_eigen_directions(loss.single, theta, basis, settings.probe_radius)
    probe = check_probe(rising, values, slopes, settings.probe_radius, settings.eigen_rel_tol)
    sampled = sampling_minimal_ratios(loss.single, theta, settings.num_samples, settings.sampling_radii, torch.Generator().manual_seed(seed))
    forms = sampled_curvatures(hessian, settings.num_samples, torch.Generator().manual_seed(seed))  # the same directions
    return {
        **verdict.as_dict(),
        "minimal_ratio_banded": minimal_ratio(values, settings.eigen_rel_tol), "index_banded": banded.index,
        "num_negative_banded": banded.num_negative, "num_near_zero_banded": banded.num_near_zero,
        "num_positive_banded": banded.num_positive,
        "probed_ratio": probe.probed_ratio, "probe_agreement": probe.agreement, "probe_disagreements": probe.disagreements,
        "probe_unexplained": probe.unexplained, "sampling_ratios": sampled,
        "sampled_curvature_mean": forms["mean"], "sampled_curvature_min": forms["min"],
        "sampled_curvature_negative_share": forms["fraction_negative"], "trace_over_params": forms["trace_over_params"],
        "lambda_min": float(values[0]), "lambda_max": float(values[-1]),
        "top_eigenvalues": values[-5:][::-1].tolist(), "bottom_eigenvalues": values[:5].tolist(),
    }
