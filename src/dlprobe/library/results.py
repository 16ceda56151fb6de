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
    run_lengths: tuple[int, ...] = ()  # nodes of each run, in order (nodes[:run_lengths[0]] are run 0's); () unknown


@dataclass(frozen=True)
class MinimalRatio:
    """Fraction of eigenvalues > rel_tol * max|eigenvalue|. method "dense": counted on the exact spectrum;
    "density": the quadrature weight of the Ritz nodes above that threshold, an estimate (PyHessian's view).
    low, high: the interval the value is known to (dense: both the value; density: `Hessian.minimal_ratio`'s
    quadrature bounds widened for the random start vectors; None when the density's runs are not known)."""

    value: float
    method: str
    rel_tol: float
    num_params: int
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Line:
    """Metrics along theta(alpha) = (1 - alpha) theta_a + alpha theta_b: alphas (A,), values name -> (A,) (each
    the mean over the data's examples); bn: "keep" (running statistics interpolated with the weights, so
    alpha = 0 and 1 are exactly the two models) or "recomputed" (on the `bn` data at every alpha)."""

    alphas: np.ndarray
    values: dict
    bn: str


@dataclass(frozen=True)
class Surface:
    """Metrics on the plane theta + a d1 + b d2: coordinates1 (A,) for a, coordinates2 (B,) for b, values
    name -> (A, B) with [i, j] at (coordinates1[i], coordinates2[j]); directions (d1, d2), dicts parameter
    name -> tensor; bn: "keep" (the model's running statistics at every point) or "recomputed"."""

    coordinates1: np.ndarray
    coordinates2: np.ndarray
    values: dict
    directions: tuple
    bn: str


@dataclass(frozen=True)
class Sharpness:
    """Keskar et al. epsilon-sharpness in percent, 100 (loss_at_maximum - loss) / (1 + loss), with the mean
    loss at the model and the largest found in the box |z_i| <= epsilon (|theta_i| + 1) (a lower bound of the
    maximum: `steps` projected sign-gradient ascent steps)."""

    sharpness: float
    loss: float
    loss_at_maximum: float
    epsilon: float
    steps: int


@dataclass(frozen=True)
class CriticalPoint:
    """Where a search for grad L = 0 ended: state, name -> tensor of the selected parameters there (load with
    model.load_state_dict(state, strict=False)); grad_norms (S + 1,) ||grad L|| at the start and after each
    accepted step; loss L there; eigenvalues (P,) ascending, of the exact Hessian there; minimal_ratio the
    fraction > 1e-6 max|eigenvalue|, index the fraction < -1e-6 max|eigenvalue|; method the search used."""

    state: dict
    grad_norms: np.ndarray
    loss: float
    eigenvalues: np.ndarray
    minimal_ratio: float
    index: float
    method: str


@dataclass(frozen=True)
class TrajectoryPlane:
    """The plane of a training trajectory around a model (Li et al. 2018, section 7): directions (d1, d2), dicts
    parameter name -> tensor, unit-norm principal axes of the snapshots' offsets from the model (for
    `dlprobe.surface(..., directions=plane.directions)`); explained_variance_ratio (2,); path (T, 2), each
    snapshot's least-squares coordinates (a, b) in that plane (to draw on the surface)."""

    directions: tuple
    explained_variance_ratio: np.ndarray
    path: np.ndarray
