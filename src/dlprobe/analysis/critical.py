"""Critical points: driving the gradient to ~0 and classifying the point reached.

    theta_c, norms = damped_newton(f, theta_trained, steps=50)     # any critical point, |g| -> 0
    eigenvalues, eigenvectors = torch.linalg.eigh(dense_hessian(f, theta_c))  # hessian.py
    ratio = minimal_ratio(eigenvalues)                             # fraction of eigenvalues > 0
    sampled = sampling_minimal_ratios(f, theta_c, radii=(1e-3, 1e-1), generator=g)  # higher random neighbours
    rising = probe_eigen_directions(f, theta_c, eigenvectors, radius=1e-3)  # f(theta_c ± r v_i) both higher
    check = check_probe(rising, eigenvalues, eigenvectors.T @ grad(f)(theta_c), radius=1e-3)  # vs the signs

f maps a flat (P,) theta to a 0-D loss (e.g. `make_flat_loss`); theta may be float32 or
float64 (float64 is needed to get gradient norms much below ~1e-6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.func import grad, grad_and_value, vjp, vmap

from dlprobe.analysis.hessian import dense_hessian
from dlprobe.errors import ConfigError

Loss = Callable[[torch.Tensor], torch.Tensor]


class SpectrumSigns(NamedTuple):
    """Signs of a Hessian spectrum; the band |eig| <= rel_tol * max|eig| counts as zero."""

    index: float          # fraction of eigenvalues below the band (the Hessian index)
    num_negative: int
    num_near_zero: int
    num_positive: int


def _threshold(eigenvalues: np.ndarray, rel_tol: float) -> float:
    return rel_tol * float(np.max(np.abs(eigenvalues)))


def _as_array(eigenvalues) -> np.ndarray:
    values = np.asarray(eigenvalues.detach().cpu() if isinstance(eigenvalues, torch.Tensor)
                        else eigenvalues, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ConfigError("minimal ratio: the eigenvalue list is empty")
    return values


def minimal_ratio(eigenvalues, rel_tol: float = 1e-6) -> float:
    """Fraction of eigenvalues > rel_tol * max|eig| (the assignment's "minimal ratio").

    Eigenvalues inside the band [-rel_tol * max|eig|, +rel_tol * max|eig|] count as not
    positive, so flat directions lower the ratio; 1.0 means a strict local minimum.
    """
    values = _as_array(eigenvalues)
    return float(np.mean(values > _threshold(values, rel_tol)))


def hessian_index(eigenvalues, rel_tol: float = 1e-6) -> SpectrumSigns:
    """Fraction and count of eigenvalues < -rel_tol * max|eig|, plus near-zero and positive counts."""
    values = _as_array(eigenvalues)
    band = _threshold(values, rel_tol)
    negative, positive = int(np.sum(values < -band)), int(np.sum(values > band))
    near_zero = values.size - negative - positive
    return SpectrumSigns(negative / values.size, negative, near_zero, positive)


def sampling_minimal_ratio(f: Loss, theta: torch.Tensor, num_samples: int = 1000,
                           radius: float = 1e-3, generator: torch.Generator | None = None,
                           chunk_size: int = 256, vectorize: bool = True) -> float:
    """Fraction of random neighbours theta + radius * u with f strictly higher than f(theta).

    One radius of `sampling_minimal_ratios` (which see: directions, vectorisation, precision).
    """
    return sampling_minimal_ratios(f, theta, num_samples, (radius,), generator, chunk_size, vectorize)[0]


def sampling_minimal_ratios(f: Loss, theta: torch.Tensor, num_samples: int = 1000,
                            radii: Sequence[float] = (1e-3,), generator: torch.Generator | None = None,
                            chunk_size: int = 256, vectorize: bool = True) -> list[float]:
    """For each radius r in radii, the fraction of neighbours theta + r * u with f strictly higher than f(theta).

    u is uniform on the unit sphere in R^P (a normalised standard Gaussian); the same `num_samples`
    directions serve every radius, so the ratios differ only through the radius. Points are
    evaluated `chunk_size` at a time with vmap(f); `vectorize=False` evaluates them one by one for
    closures vmap cannot handle. Loss differences are ~r^2 * curvature, so use float64 theta; and
    a ratio only reflects curvature where ||grad f|| << r * |eigenvalues| (otherwise the linear
    term wins and any point gives ~0.5), i.e. after driving the gradient to ~0.
    generator: torch.Generator for u (None: a fresh one seeded with 0).
    """
    if num_samples < 1 or len(radii) == 0 or min(radii) <= 0:
        raise ConfigError("sampling_minimal_ratios: num_samples and at least one radius, all positive, are needed")
    theta = theta.detach()
    directions = random_unit_directions(num_samples, theta.numel(), generator).to(theta)
    scale = torch.tensor(radii, dtype=theta.dtype, device=theta.device).view(-1, 1, 1)
    points = theta + scale * directions  # (len(radii), num_samples, P)
    higher = _higher_than_centre(f, theta, points.reshape(-1, theta.numel()), chunk_size, vectorize)
    return higher.reshape(len(radii), num_samples).double().mean(dim=1).tolist()


def random_unit_directions(num_samples: int, num_params: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(num_samples, num_params) float64 rows uniform on the unit sphere (normalised standard Gaussians), the
    directions `sampling_minimal_ratios` draws; generator None: a fresh one seeded with 0."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    directions = torch.randn(num_samples, num_params, generator=generator, dtype=torch.float64)
    return directions / directions.norm(dim=1, keepdim=True)


def probe_eigen_directions(f: Loss, theta: torch.Tensor, eigenvectors: torch.Tensor, radius: float = 1e-3,
                           chunk_size: int = 256, vectorize: bool = True) -> np.ndarray:
    """(K,) bool: direction i "rises" when f(theta + radius v_i) and f(theta - radius v_i) are both > f(theta).

    eigenvectors: (P, K), unit columns v_i (as torch.linalg.eigh returns them). A loss-only check of
    the Hessian's eigenvalue signs: with gradient g, f(theta ± r v) - f(theta) = ±r v.g + r^2 lambda / 2
    + O(r^3), so for lambda clearly above zero (and |v.g| < r lambda / 2) both sides rise, for lambda
    clearly below zero they do not; along near-zero eigenvalues the higher-order terms decide.
    Evaluation as in `sampling_minimal_ratios` (2K points, vmap in chunks); use float64 theta.
    """
    if radius <= 0 or eigenvectors.dim() != 2 or eigenvectors.shape[0] != theta.numel():
        raise ConfigError(f"probe_eigen_directions: need radius > 0 and eigenvectors of shape ({theta.numel()}, K), "
                          f"got radius {radius} and shape {tuple(eigenvectors.shape)}")
    theta = theta.detach()
    directions = eigenvectors.detach().T.to(theta)  # (K, P)
    points = theta + radius * torch.stack([directions, -directions])  # (2, K, P)
    higher = _higher_than_centre(f, theta, points.reshape(-1, theta.numel()), chunk_size, vectorize)
    return higher.reshape(2, -1).all(dim=0).cpu().numpy()


def _higher_than_centre(f: Loss, theta: torch.Tensor, points: torch.Tensor, chunk_size: int,
                        vectorize: bool) -> torch.Tensor:
    """(N,) bool: f(point) > f(theta) for each row of points (N, P)."""
    with torch.no_grad():
        centre = f(theta)
        if vectorize:
            values = torch.cat([vmap(f)(points[i:i + chunk_size]) for i in range(0, len(points), chunk_size)])
        else:
            values = torch.stack([f(point) for point in points])
    return values > centre


class ProbeCheck(NamedTuple):
    """Eigen-direction probing against the Hessian's eigenvalue signs (`check_probe`)."""

    probed_ratio: float      # fraction of probed directions that rise
    agreement: float | None  # outside the band: share of directions where "rises" == (eigenvalue > 0); None if none
    disagreements: int       # outside-band directions where the two differ
    unexplained: int         # of those, the ones the second-order model with the measured gradient does not predict


def check_probe(rising, eigenvalues, slopes, radius: float, rel_tol: float = 1e-6) -> ProbeCheck:
    """Compare `probe_eigen_directions`' verdicts with the signs of the eigenvalues, outside the band.

    rising (K,) bool, eigenvalues (K,) and slopes (K,) = v_i . grad f(theta) for the same directions;
    the band is |eigenvalue| <= rel_tol * max|eigenvalue|, as in `minimal_ratio`. The second-order model
    f(theta ± r v_i) - f(theta) = ±r slope_i + r^2 lambda_i / 2 rises iff r lambda_i / 2 > |slope_i|: a
    residual gradient with |slope_i| >= r lambda_i / 2 makes one side lower even for lambda_i > 0, so such
    a disagreement is predicted ("explained"); unexplained ones come from third and higher orders (or rounding).
    """
    rising = np.asarray(rising, dtype=bool).reshape(-1)
    values = _as_array(eigenvalues)
    slopes = np.asarray(slopes, dtype=np.float64).reshape(-1)
    if not rising.size == values.size == slopes.size:
        raise ConfigError(f"check_probe: rising, eigenvalues and slopes differ in length "
                          f"({rising.size}, {values.size}, {slopes.size})")
    outside = np.abs(values) > _threshold(values, rel_tol)
    differs = outside & (rising != (values > 0))
    modelled = radius * values / 2 > np.abs(slopes)
    agreement = float(1 - differs.sum() / outside.sum()) if outside.any() else None
    return ProbeCheck(float(rising.mean()), agreement, int(differs.sum()), int((differs & (rising != modelled)).sum()))


def grad_norm(f: Loss, theta: torch.Tensor) -> float:
    """Euclidean norm of the gradient of f at theta."""
    return float(grad(f)(theta.detach()).norm())


def _grad_norm_squared(f: Loss) -> Loss:
    # The objective ||grad f||^2 as a function of theta; differentiating it differentiates
    # through the gradient itself (torch.func nests the backward passes, i.e. true double
    # backprop): its gradient is 2 H grad f, not the zero one would get from a detached norm.
    return lambda theta: grad(f)(theta).pow(2).sum()


def minimize_grad_norm(f: Loss, theta: torch.Tensor, steps: int = 1000, lr: float = 1e-3,
                       method: str = "adam", tol: float = 0.0) -> tuple[torch.Tensor, list[float]]:
    """Minimise g(theta) = ||grad f(theta)||^2 by Adam or L-BFGS, starting from a copy of theta.

    Every local minimum of g with g = 0 is a critical point of f (minimum, saddle or maximum).
    Stops after `steps` iterations or once ||grad f|| < tol. Returns (theta reached (P,),
    history of ||grad f|| at the start and after each iteration).
    """
    if method not in ("adam", "lbfgs"):
        raise ConfigError(f"minimize_grad_norm: method must be 'adam' or 'lbfgs', got {method!r}")
    objective = grad_and_value(_grad_norm_squared(f))
    current = theta.detach().clone().requires_grad_(True)
    optimizer = (torch.optim.Adam([current], lr=lr) if method == "adam"
                 else torch.optim.LBFGS([current], lr=lr, max_iter=1, max_eval=25, history_size=50,
                                        line_search_fn="strong_wolfe", tolerance_grad=0.0,
                                        tolerance_change=0.0))

    def closure() -> torch.Tensor:
        gradient, value = objective(current.detach())
        current.grad = gradient
        return value

    history = [grad_norm(f, current)]
    for _ in range(steps):
        if history[-1] < tol:
            break
        optimizer.step(closure)
        history.append(grad_norm(f, current))
    return current.detach(), history


def _second_directional_derivative(f: Loss, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # d^2/dt^2 grad f(theta + t v) at t = 0, exactly: it is grad_theta (v^T H(theta) v) because
    # the third-derivative tensor is symmetric (one more reverse pass through the HVP).
    return grad(lambda t: torch.dot(v, vjp(grad(f), t)[1](v)[0]))(theta)


def damped_newton(f: Loss, theta: torch.Tensor, steps: int = 100, damping: float = 1e-6,
                  tol: float = 1e-10, acceleration: bool = True, max_retries: int = 40,
                  krylov_steps: int | None = None) -> tuple[torch.Tensor, list[float]]:
    """Levenberg-Marquardt on the gradient equation grad f(theta) = 0, with the exact Hessian H.

    The residual is g = grad f and its Jacobian is H, so the step is
    v = -(H^2 + mu I)^{-1} H g, computed from H = Q diag(l) Q^T as -Q diag(l / (l^2 + mu)) Q^T g.
    As mu -> 0 this is the Newton step -H^{-1} g, which converges to *any* nearby critical point
    (saddles included), which is the point: we want grad ~ 0, not a minimum. Unlike the shifted
    (H + mu I)^{-1} g it stays well defined for indefinite H.
    mu starts at damping * max(l^2); a step is accepted only if ||g|| falls (then mu /= 10),
    otherwise rejected (mu *= 2, up to max_retries times, reusing the eigendecomposition). The
    small start, fast decrease and slow increase were the fastest of the schedules we tried: the
    useful mu is often ~min(l^2), 1e-12 or less relative to max(l^2).
    acceleration: add the geodesic correction a/2 with a = -(H^2 + mu I)^{-1} H D^2g[v, v]
    (Transtrum & Sethna 2012; D^2g by a third reverse pass), rejected when |a| > 0.75 |v|. Trained
    networks are "sloppy" (eigenvalues spread over 7-15 decades) and the nearest critical point
    often lies far along flat directions (distance ~|theta| after Adam), where plain LM crawls;
    the correction measured 3-10x fewer steps. Expect tens to hundreds of steps from an Adam
    end point; quadratic convergence only in the last few.
    krylov_steps None: H from `dense_hessian`, small P only (P ~ 600 takes ~0.2 s a step). An int m:
    no P x P matrix; each step's Q diag(l) Q^T is the Ritz decomposition of m Lanczos steps on
    Hessian-vector products started at g (`_curvature_model`), so the step is the same formula
    evaluated in the Krylov space K_m(H, g), which holds the exact step once m reaches the number of
    distinct eigenvalues g excites (and is the damped step MINRES/CG would approach); D^2g[v, v] of
    the correction is projected onto that space too. Cost per step: m + 1 products and one third
    derivative per try, so any P; the acceptance test (||g|| falls, measured exactly) is the same.
    Stops when ||g|| < tol. Returns (theta reached, ||g|| at the start and after every accepted
    step); the last entry is the gradient norm reached.
    """
    current = theta.detach().clone()
    gradient_of = grad(f)
    gradient = gradient_of(current)
    history = [float(gradient.norm())]
    mu = None
    for _ in range(steps):
        if history[-1] < tol or history[-1] == 0.0:
            break
        curvature, basis = _curvature_model(f, current, gradient, krylov_steps)
        projected = basis.T @ gradient.to(torch.float64)
        if mu is None:
            mu = damping * float(curvature.pow(2).max()) or damping
        for _ in range(max_retries):
            solve = lambda r: -(basis @ (curvature / (curvature.pow(2) + mu) * r))  # noqa: E731
            step = solve(projected).to(current)
            if acceleration:
                correction = solve(basis.T @ _second_directional_derivative(
                    f, current, step).to(torch.float64)).to(current)
                if correction.norm() > 0.75 * step.norm():
                    mu *= 2
                    continue
                step = step + correction / 2
            trial_gradient = gradient_of(current + step)
            trial_norm = float(trial_gradient.norm())
            if trial_norm < history[-1]:
                current, gradient = current + step, trial_gradient
                history.append(trial_norm)
                mu /= 10
                break
            mu *= 2
        else:
            break  # no damping level lowers ||g||: at the precision floor or stuck
    return current, history


def _curvature_model(f: Loss, theta: torch.Tensor, gradient: torch.Tensor,
                     krylov_steps: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues (K,), orthonormal eigenvectors (P, K) as columns), float64, of the curvature a
    Levenberg-Marquardt step uses: the exact Hessian's eigendecomposition (K = P; float64 even for
    float32 theta, so the step is exact for H), or the Ritz pairs of krylov_steps Lanczos steps from
    the gradient (K <= krylov_steps; fewer when the Krylov space is exhausted, T then exact on it)."""
    if krylov_steps is None:
        return torch.linalg.eigh(dense_hessian(f, theta).to(torch.float64))
    from dlprobe.library.hessian import lanczos_runs  # the library's Lanczos (it imports this module)

    _, pullback = vjp(grad(f), theta.detach())  # grad(f) linearised once at theta; v -> H v in theta's dtype
    steps = max(1, min(krylov_steps, theta.numel()))
    products = lambda block: torch.stack([pullback(row.to(theta.dtype))[0].to(torch.float64) for row in block])
    ((alphas, betas, lanczos),) = lanczos_runs(products, gradient.detach().to(torch.float64)[None], steps, return_basis=True)
    tridiagonal = torch.as_tensor(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
    ritz_values, ritz_vectors = torch.linalg.eigh(tridiagonal)
    return ritz_values, lanczos.T @ ritz_vectors  # (K,), (P, K)
