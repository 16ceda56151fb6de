"""Hessian spectra of any size from Hessian-vector products: extreme eigenvalues, trace, density.

    top = lanczos_eigenvalues(f, theta, k=5)      # implicitly restarted Lanczos (scipy eigsh)
    top = top_hessian_eigenvalues(model, x, y, k=3, seed=0)   # the same, for a model's mean loss on (x, y)
    trace, stderr = hutchinson_trace(f, theta, num_samples=100, generator=g)
    grid, density = spectral_density(f, theta, num_runs=3, lanczos_steps=80, generator=g)

f and theta as in hessian.py. Lanczos and SLQ ask for one product at a time, so they use the sequential HVP
(`_hvp_function(..., vectorized=False)`: a gradient graph built once and reused); Hutchinson batches its
probe vectors through the vmappable form.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh

from dlprobe.analysis.hessian import Loss, _hvp_function, hvp_batch
from dlprobe.analysis.params import flatten_params, make_flat_loss
from dlprobe.errors import ConfigError


def _linear_operator(f: Loss, theta: torch.Tensor) -> LinearOperator:
    hvp = _hvp_function(f, theta, vectorized=False)
    num_params = theta.numel()

    def matvec(v: np.ndarray) -> np.ndarray:
        tangent = torch.as_tensor(np.ascontiguousarray(v).reshape(-1)).to(theta)
        return hvp(tangent).detach().cpu().to(torch.float64).numpy()

    return LinearOperator((num_params, num_params), matvec=matvec, dtype=np.float64)


def lanczos_eigenvalues(f: Loss, theta: torch.Tensor, k: int = 5, which: str = "LA",
                        tol: float | None = None, maxiter: int | None = None,
                        seed: int = 0) -> np.ndarray:
    """Extreme Hessian eigenvalues by implicitly restarted Lanczos (scipy eigsh) on HVPs.

    which: "LA" the k largest (algebraic), "SA" the k smallest, "LM" the k largest in magnitude (what
    power iteration with deflation, e.g. PyHessian, estimates), "both" the k smallest and the k largest
    (2k values). Returns a float64 array, ascending. tol is eigsh's relative accuracy
    (default 1e-10 for float64 theta, 1e-5 otherwise, since HVPs carry theta's rounding).
    """
    num_params = theta.numel()
    if which not in ("LA", "SA", "LM", "both"):
        raise ConfigError(f"lanczos_eigenvalues: which must be 'LA', 'SA', 'LM' or 'both', got {which!r}")
    if not 1 <= k < num_params:
        raise ConfigError(f"lanczos_eigenvalues: need 1 <= k < P={num_params}, got k={k}")
    if tol is None:
        tol = 1e-10 if theta.dtype == torch.float64 else 1e-5
    operator = _linear_operator(f, theta)
    start = np.random.default_rng(seed).standard_normal(num_params)
    ends = ["SA", "LA"] if which == "both" else [which]
    values = [eigsh(operator, k=k, which=end, tol=tol, maxiter=maxiter, v0=start,
                    return_eigenvectors=False) for end in ends]
    return np.sort(np.concatenate(values))


def top_hessian_eigenvalues(model, x: torch.Tensor, y: torch.Tensor, k: int, seed: int, loss_fn=F.cross_entropy) -> list[float]:
    """The k largest eigenvalues, descending, of the Hessian w.r.t. all parameters of the model's mean loss on
    x (N, ...), y (N,) (loss_fn(outputs, targets) -> mean loss, default cross-entropy): `lanczos_eigenvalues`
    with which="LA" in the model's dtype (so eigsh's tolerance 1e-5 for float32), start vector drawn from seed.
    The model runs in eval mode with its buffers (`make_flat_loss`)."""
    loss = make_flat_loss(model, loss_fn, x, y)
    eigenvalues = lanczos_eigenvalues(loss, flatten_params(model), k=k, which="LA", seed=seed)  # ascending
    return [float(value) for value in eigenvalues[::-1]]


def _rademacher(shape: tuple[int, ...], generator: torch.Generator | None,
                like: torch.Tensor) -> torch.Tensor:
    # Fixed seed 0 when no generator is passed: deterministic, never the global RNG.
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64) * 2 - 1
    return signs.to(dtype=like.dtype, device=like.device)


def hutchinson_trace(f: Loss, theta: torch.Tensor, num_samples: int = 100,
                     generator: torch.Generator | None = None) -> tuple[float, float]:
    """Stochastic trace estimate tr(H) ~ mean of z^T H z over Rademacher probes z (P,).

    Returns (estimate, standard error of the mean over the num_samples >= 2 probes).
    """
    if num_samples < 2:
        raise ConfigError(f"hutchinson_trace: num_samples must be at least 2, got {num_samples}")
    probes = _rademacher((num_samples, theta.numel()), generator, theta)
    quadratic = (probes * hvp_batch(f, theta, probes)).sum(dim=1).to(torch.float64)
    return quadratic.mean().item(), (quadratic.std() / num_samples ** 0.5).item()


def _lanczos_tridiagonal(hvp: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor,
                         steps: int, dtype: torch.dtype, return_basis: bool = False):
    """m-step Lanczos, full reorthogonalisation, float64 basis; HVPs in `dtype`.

    Returns (alpha (m,), beta (m-1,)), the diagonal and off-diagonal of the tridiagonal T, and with
    return_basis also the orthonormal Lanczos vectors Q (m, P) float64 (H ~ Q^T T Q on their span).
    """
    basis = [start / start.norm()]
    alphas, betas = [], []
    for step in range(steps):
        w = hvp(basis[-1].to(dtype)).to(torch.float64)
        alphas.append(torch.dot(w, basis[-1]).item())
        stacked = torch.stack(basis)
        for _ in range(2):  # twice is enough for orthogonality to rounding level
            w = w - stacked.T @ (stacked @ w)
        beta = w.norm().item()
        scale = max(abs(a) for a in alphas) or 1.0
        if step == steps - 1 or beta <= 1e-10 * scale:  # Krylov space exhausted: T is exact
            break
        betas.append(beta)
        basis.append(w / beta)
    if return_basis:
        return np.array(alphas), np.array(betas), torch.stack(basis)
    return np.array(alphas), np.array(betas)


def spectral_density(f: Loss, theta: torch.Tensor, num_runs: int = 3, lanczos_steps: int = 80,
                     generator: torch.Generator | None = None, grid: np.ndarray | None = None,
                     sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Hessian eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019).

    Each run starts Lanczos from a Rademacher vector; the Ritz values theta_i with weights
    tau_i = (first component of the i-th Ritz vector)^2 (sum 1) form a quadrature for the
    spectral measure; each node is a Gaussian of width sigma (default 1% of the Ritz-value range)
    and the runs are averaged. Default grid: 2000 points spanning the Ritz values +- 6 sigma,
    so the density integrates to ~1. Returns (grid (G,), density (G,)) as float64 arrays.
    """
    if num_runs < 1 or lanczos_steps < 1:
        raise ConfigError("spectral_density: num_runs and lanczos_steps must be positive")
    hvp = _hvp_function(f, theta, vectorized=False)
    steps = min(lanczos_steps, theta.numel())
    nodes, weights = [], []
    for start in _rademacher((num_runs, theta.numel()), generator, theta):
        alphas, betas = _lanczos_tridiagonal(hvp, start.to(torch.float64), steps, theta.dtype)
        tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        ritz_values, ritz_vectors = np.linalg.eigh(tridiagonal)
        nodes.append(ritz_values)
        weights.append(ritz_vectors[0] ** 2 / num_runs)
    grid, density, _ = smoothed_density(np.concatenate(nodes), np.concatenate(weights), sigma, 2000 if grid is None else grid)
    return grid, density


def quadrature_fraction_above(nodes: np.ndarray, weights: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """What one Lanczos run's Gauss quadrature says about the share of its start vector's spectral measure mu above
    threshold: (estimate, low, high), with mu(lambda > threshold) / mu(R) guaranteed in [low, high].

    nodes, weights (m,): the Ritz values and weights of one run (any order; normalised here to sum 1). estimate: the
    weight of the nodes above threshold. The bounds are the Chebyshev-Markov-Stieltjes inequalities for the nodes
    x_1 < ... < x_m: sum_{i<k} w_i <= mu(lambda < x_k) and mu(lambda <= x_k) <= sum_{i<=k} w_i; with x_j <= threshold
    < x_{j+1}, mu(lambda > threshold) lies between the weight above x_{j+1} and the weight from x_j up (exact
    arithmetic; with full reorthogonalisation the Ritz values are accurate to rounding). So the two nodes around the
    threshold carry all the uncertainty: an eigenvalue cluster at the threshold, which m steps cannot split, shows as
    a wide interval, never as a confident wrong value."""
    order = np.argsort(nodes, kind="stable")
    values = np.asarray(nodes, dtype=np.float64)[order]
    shares = np.asarray(weights, dtype=np.float64)[order]
    shares = shares / shares.sum()
    below = int(np.sum(values <= threshold))  # j: nodes x_1 .. x_j at or below the threshold
    estimate = float(shares[below:].sum())
    low = float(shares[below + 1:].sum())
    high = float(shares[below - 1:].sum()) if below else 1.0
    return estimate, low, high


def smoothed_density(nodes: np.ndarray, weights: np.ndarray, sigma: float | None, grid) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian-smoothed quadrature: nodes, weights (Q,) -> (grid (G,), density (G,), sigma). sigma None: 1% of the
    nodes' spread; grid: a point count (spanning the nodes +- 6 sigma, so the density integrates to ~1) or points."""
    if sigma is None:
        spread = nodes.max() - nodes.min()
        sigma = 0.01 * spread if spread > 0 else 1e-3 * max(abs(nodes.max()), 1.0)
    if isinstance(grid, int):
        grid = np.linspace(nodes.min() - 6 * sigma, nodes.max() + 6 * sigma, grid)
    grid = np.asarray(grid, dtype=np.float64)
    gaussians = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2)
    return grid, gaussians @ weights / (sigma * np.sqrt(2 * np.pi)), float(sigma)
