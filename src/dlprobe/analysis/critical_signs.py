"""Which Hessian eigenvalue signs can be trusted at a near-critical point, and what kind of point it is.

    verdict = classify_by_signs(eigenvalues, slopes, curvature_gradients)   # numpy (P,), (P,), (P, P)
    verdict.classification     # "saddle" | "minimum" | "undetermined"
    verdict.minimal_ratio, (verdict.minimal_ratio_low, verdict.minimal_ratio_high)

The point reached has a residual gradient g, so it is not the critical point itself. A first-order
perturbation argument bounds how far each eigenvalue can move on the way to the critical point:
- The Newton step to the critical point, taken in the eigen-directions we trust (set K), is
  s = -sum_{i in K} (v_i . g / lambda_i) v_i. Along s, eigenvalue j changes to first order by
  d lambda_j = grad(lambda_j) . s, where grad(lambda_j) = grad(v_j^T H v_j) (Hellmann-Feynman: the
  eigenvector held fixed; third derivatives of the loss, `curvature_gradients`).
- float64 rounding: an eigenvalue computed by a backward-stable eigensolver of a P x P symmetric matrix is
  accurate to about P * eps * max|lambda| (`rounding_bound`); below that, no sign is trusted at all.
- So eigenvalue j has uncertainty u_j = |d lambda_j| + rounding_bound, and its sign is trusted when
  |lambda_j| > u_j. K must be self-consistent: we take the largest k such that the k largest |lambda|
  (all above the rounding bound) each exceed their own uncertainty under the step s_k they define. The
  eigen-directions outside K are undetermined: the step along them is not known (their lambda is too small
  for the linear model to place the critical point), and so is their sign.
Classification by measured signs, never by a tolerance: "saddle" when a trusted eigenvalue is negative;
"minimum" when no eigenvalue at all is negative beyond rounding; "undetermined" otherwise (negative
eigenvalues exist, but none is trusted). The minimal ratio is the assignment's fraction of eigenvalues > 0;
its range counts every undetermined eigenvalue as negative (low) or positive (high).

When the Hessian is too large to form, `classify_by_extremes` makes the same three-way call from the smallest
Lanczos Ritz pair alone (its docstring states the bound), and `sampled_forms` takes the quadratic forms u^T H u
from Hessian-vector products.

What kind of point (Frye et al. 2021, "critical point-finding methods reveal gradient-flat regions"):
`gradient_flat_share` is the share of ||g||^2 along the undetermined directions. Near 0: the residual
gradient lies where the Newton step is determined, so the point is close to a true critical point. Near 1:
the gradient lies in near-flat directions; the search stopped in a gradient-flat region, not at a critical
point. `hg_ratio` = ||H g|| / (max|lambda| ||g||) says the same from the other side (small: g is nearly in
the null space of H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .critical import random_unit_directions


@dataclass(frozen=True)
class SignVerdict:
    """The signs of one Hessian spectrum at a near-critical point (see the module docstring)."""

    classification: str        # "saddle", "minimum" or "undetermined"
    num_negative: int          # trusted negative eigenvalues
    num_positive: int          # trusted positive eigenvalues
    num_undetermined: int
    minimal_ratio: float       # fraction of eigenvalues > 0 (the assignment's definition)
    minimal_ratio_low: float   # undetermined ones counted as negative
    minimal_ratio_high: float  # undetermined ones counted as positive
    index: float               # trusted negatives / P
    rounding_bound: float      # P * eps * max|lambda|
    largest_uncertainty: float  # max u_j over the trusted eigenvalues (0 when none is trusted)
    newton_step_norm: float    # ||s|| of the step in the trusted directions
    gradient_flat_share: float  # share of ||g||^2 along undetermined directions (0 when g = 0)
    hg_ratio: float            # ||H g|| / (max|lambda| ||g||) (0 when g = 0)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def rounding_bound(eigenvalues: np.ndarray) -> float:
    """P * float64 eps * max|lambda|: below this an eigenvalue's sign is rounding noise."""
    values = np.asarray(eigenvalues, dtype=np.float64)
    return float(values.size * np.finfo(np.float64).eps * np.abs(values).max())


def classify_by_signs(eigenvalues, slopes, curvature_gradients) -> SignVerdict:
    """eigenvalues (P,) of the Hessian at theta; slopes (P,) = V^T g (the gradient in the eigenbasis, same order);
    curvature_gradients (P, P): row j = V^T grad(v_j^T H v_j), the first-order change of eigenvalue j per unit
    step along each eigenvector. Returns the SignVerdict (module docstring)."""
    values = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    slopes = np.asarray(slopes, dtype=np.float64).reshape(-1)
    derivatives = np.asarray(curvature_gradients, dtype=np.float64)
    size = values.size
    if size == 0 or slopes.shape != values.shape or derivatives.shape != (size, size):
        raise ValueError(f"classify_by_signs: need eigenvalues (P,), slopes (P,), curvature_gradients (P, P); got "
                         f"{values.shape}, {slopes.shape}, {derivatives.shape}")
    rounding = rounding_bound(values)
    order = np.argsort(-np.abs(values), kind="stable")  # largest |lambda| first
    trusted = np.zeros(size, dtype=bool)
    uncertainty = np.full(size, np.inf)
    step = np.zeros(size)
    for k in range(1, size + 1):
        kept = order[:k]
        if np.abs(values[kept[-1]]) <= rounding:
            break
        candidate = np.zeros(size)
        candidate[kept] = -slopes[kept] / values[kept]  # Newton step in the eigenbasis, trusted directions only
        change = np.abs(derivatives @ candidate) + rounding
        if np.all(np.abs(values[kept]) > change[kept]):
            trusted[:] = False
            trusted[kept] = True
            uncertainty, step = change, candidate
    negative = int(np.sum(trusted & (values < 0)))
    positive = int(np.sum(trusted & (values > 0)))
    undetermined = size - negative - positive
    if negative:
        classification = "saddle"
    elif np.all(values >= -rounding):
        classification = "minimum"
    else:
        classification = "undetermined"
    energy = float(np.sum(slopes**2))
    scale = float(np.abs(values).max())
    return SignVerdict(
        classification=classification, num_negative=negative, num_positive=positive, num_undetermined=undetermined,
        minimal_ratio=float(np.mean(values > 0)), minimal_ratio_low=positive / size,
        minimal_ratio_high=(positive + undetermined) / size, index=negative / size, rounding_bound=rounding,
        largest_uncertainty=float(uncertainty[trusted].max()) if trusted.any() else 0.0,
        newton_step_norm=float(np.linalg.norm(step)),
        gradient_flat_share=float(np.sum(slopes[~trusted] ** 2) / energy) if energy > 0 else 0.0,
        hg_ratio=float(np.linalg.norm(values * slopes) / (scale * np.sqrt(energy))) if energy > 0 and scale > 0 else 0.0,
    )


@dataclass(frozen=True)
class ExtremeVerdict:
    """The sign of the smallest eigenvalue from Lanczos alone (`classify_by_extremes`)."""

    classification: str      # "saddle", "minimum" or "undetermined"
    lambda_min: float        # v^T H v for the smallest Ritz vector v: an upper bound of the smallest eigenvalue
    residual: float          # ||H v - lambda_min v||
    uncertainty: float       # |grad(v^T H v) . s| + rounding_bound: how far lambda_min may move to the critical point
    rounding_bound: float    # P * eps * scale
    newton_step_norm: float  # ||s||

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def classify_by_extremes(lambda_min: float, residual: float, curvature_change: float, newton_step_norm: float,
                         scale: float, num_params: int) -> ExtremeVerdict:
    """Saddle / minimum / undetermined from the smallest Lanczos Ritz pair, when the Hessian is too large to form.

    lambda_min = v^T H v and residual = ||H v - lambda_min v|| for the unit Ritz vector v of the smallest Ritz value;
    curvature_change = grad(v^T H v) . s (one triple backprop, v held fixed) for the Newton step s towards the
    critical point, of norm newton_step_norm; scale = max|eigenvalue| found (both ends); num_params = P. s is the
    Newton step in the directions at least as curved as v, s = -sum_{|l_i| >= |lambda_min|} (y_i . g / l_i) y_i over
    the Ritz pairs (l_i, y_i) of Lanczos from the gradient g (critical_lanczos.py): the exact path's step with its
    trusted set K taken as every direction with |lambda| >= |lambda_min| (along flatter ones the linear model does
    not place the critical point, as there), exact once the Krylov space is exhausted. The rules, the analogue of
    `classify_by_signs` with what Lanczos gives:
    - rounding: P * eps * scale, as for the exact spectrum (a product H v carries about that much float64 error);
    - saddle needs no convergence of Lanczos: by Courant-Fischer the smallest eigenvalue is <= v^T H v for any unit
      v, and to first order v^T H(theta + s) v = lambda_min + grad(v^T H v) . s at the critical point theta + s.
      With u = |grad(v^T H v) . s| + rounding, lambda_min < -u means a negative eigenvalue at the point reached and
      at that critical point (first order, like the exact path's bound): "saddle";
    - minimum: some eigenvalue lies within the residual of lambda_min (for any unit v); if that is the smallest one,
      every eigenvalue is >= lambda_min - residual. "minimum" when lambda_min - residual >= -rounding: the exact
      path's rule (no eigenvalue negative beyond rounding at the point reached) with the residual added. It assumes
      Lanczos found the bottom of the spectrum: from a random start it misses an eigenvalue only if the start is
      nearly orthogonal to its eigenvector, unlikely but not excluded, so a "minimum" here is not a certificate;
    - "undetermined" otherwise (a negative Rayleigh quotient the residual gradient could flip, or a positive one the
      residual does not vouch for)."""
    rounding = float(num_params * np.finfo(np.float64).eps * scale)
    uncertainty = abs(curvature_change) + rounding
    if lambda_min < -uncertainty:
        classification = "saddle"
    elif lambda_min - residual >= -rounding:
        classification = "minimum"
    else:
        classification = "undetermined"
    return ExtremeVerdict(classification=classification, lambda_min=float(lambda_min), residual=float(residual),
                          uncertainty=float(uncertainty), rounding_bound=rounding, newton_step_norm=float(newton_step_norm))


def curvature_gradients(loss, thetas: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """(R, P, P): for each run r, row j = V_r^T grad(v_j^T H(theta_r) v_j), by triple backprop.

    loss: a batched loss with `second_directional(thetas, steps)` (critical_batch.BatchedMLPLoss);
    thetas (R, P) float64; bases (R, P, P) eigenvectors as columns (torch.linalg.eigh)."""
    runs, size = thetas.shape
    repeated = thetas.detach().repeat_interleave(size, dim=0)  # (R*P, P): run r's theta once per eigenvector
    directions = bases.transpose(1, 2).reshape(runs * size, size)  # row (r, j) = v_j of run r
    gradients = loss.second_directional(repeated, directions).reshape(runs, size, size)  # (R, j, params)
    return gradients @ bases  # into each run's eigenbasis: (R, j, i)


def sampled_curvatures(hessian: torch.Tensor, num_samples: int, generator: torch.Generator) -> dict:
    """u^T H u over the random unit directions u that `sampling_minimal_ratios` draws from the same generator state:
    {mean, min, fraction_negative} of those quadratic forms and trace_over_params = tr(H) / P, their expectation.

    Why the sampling ratio is ~1 near a critical point: L(theta + r u) - L(theta) ~ r u.g + r^2 u^T H u / 2,
    and u^T H u concentrates around tr(H) / P; it is negative only if the negative eigenvalues outweigh the
    positive ones along u, which a random u almost never does when a few large positive eigenvalues dominate
    the trace."""
    forms = sampled_forms(lambda directions: directions @ hessian, hessian.shape[0], num_samples, generator, like=hessian)
    return {**forms, "trace_over_params": float(torch.diagonal(hessian).sum() / hessian.shape[0])}


def sampled_forms(products, num_params: int, num_samples: int, generator: torch.Generator, like=None) -> dict:
    """{mean, min, fraction_negative} of u^T H u over the random unit directions u (num_samples, num_params) that
    `sampling_minimal_ratios` draws from the same generator state; products maps (k, P) directions to H times each
    row (a dense matmul, or `dlprobe.Hessian.hvp` when H is too large to form); like: a tensor whose dtype and
    device the directions take."""
    directions = random_unit_directions(num_samples, num_params, generator)
    if like is not None:
        directions = directions.to(like)
    forms = (products(directions) * directions).sum(dim=1)
    return {"mean": float(forms.mean()), "min": float(forms.min()), "fraction_negative": float((forms < 0).double().mean())}
