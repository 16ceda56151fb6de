"""What the library's measurements return: small frozen dataclasses of numpy arrays (float64), shapes stated.

P is the number of selected parameters (`Hessian.num_params`), k the number of eigenvalues asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Eigenvalues:
    """values (k,) sorted as `which` says: "largest" descending, "smallest" ascending, "magnitude" by |value|
    descending; vectors (k, P) with row i the unit eigenvector of values[i], or None when not asked for."""

    values: np.ndarray
    vectors: np.ndarray | None
    which: str


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson estimate of tr(H): estimate = mean of samples (num_probes,), samples[i] = z_i^T H z_i;
    standard_error = std(samples, ddof=1) / sqrt(num_probes)."""

    estimate: float
    standard_error: float
    samples: np.ndarray


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature: density (G,) on grid (G,) integrates to ~1 (Gaussians of width sigma
    around the nodes); nodes (M,) the Ritz values of all R runs (m per run, fewer when a run's Krylov space
    is exhausted), weights (M,) their quadrature weights (each run's sum to 1/R, all to 1). The quadrature's moments sum(weights * nodes**j) estimate tr(H^j) / P."""

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float


@dataclass(frozen=True)
class MinimalRatio:
    """Fraction of eigenvalues > rel_tol * max|eigenvalue|. method "dense": counted on the exact spectrum;
    "density": the quadrature weight of the Ritz nodes above that threshold, an estimate (PyHessian's view)."""

    value: float
    method: str
    rel_tol: float
    num_params: int
