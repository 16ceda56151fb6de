"""Plots of the library's results: each takes a result (and ax=None) and returns the Axes it drew on.

    ax = dlprobe.plot_spectrum(hessian.eigenvalues(10))
    dlprobe.plot_density(hessian.density(), ax=axes[1])
    dlprobe.plot_line(dlprobe.interpolate(a, b, loader, metrics))
    dlprobe.plot_surface(dlprobe.surface(model, loader, loss), metric="loss")
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from dlprobe.errors import UsageError
from dlprobe.plotting.style import color, new_axes


def _axes(ax):
    return new_axes()[1] if ax is None else ax


def plot_spectrum(result, ax=None, label: str | None = None):
    """Eigenvalues (an `Eigenvalues` or an array (k,)) against their rank, in the order given."""
    values = np.asarray(getattr(result, "values", result), dtype=np.float64).reshape(-1)
    ax = _axes(ax)
    ax.plot(np.arange(1, len(values) + 1), values, "o-", color=color(0), label=label, markersize=4)
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    which = getattr(result, "which", None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rank" + (f" ({which})" if which else ""))
    ax.set_ylabel("Hessian eigenvalue")
    return ax


def plot_density(result, ax=None, log: bool = True):
    """A `SpectralDensity`: density against eigenvalue; log=True draws it on a log scale (floor 1e-8 of its peak),
    where the few outlying eigenvalues of a trained network show."""
    ax = _axes(ax)
    density = np.asarray(result.density)
    if log:
        density = np.maximum(density, 1e-8 * density.max())
        ax.set_yscale("log")
    ax.plot(result.grid, density, color=color(0), linewidth=1.4)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (SLQ)")
    return ax


def plot_line(result, metrics=None, ax=None):
    """A `Line`: each metric (default all) against alpha; dotted verticals at alpha = 0 (model_a) and 1 (model_b)."""
    ax = _axes(ax)
    names = list(result.values) if metrics is None else ([metrics] if isinstance(metrics, str) else list(metrics))
    for index, name in enumerate(names):
        if name not in result.values:
            raise UsageError(f"metric {name!r} is not in the line (it has {', '.join(result.values)})")
        ax.plot(result.alphas, result.values[name], color=color(index), label=name, linewidth=1.6)
    for alpha in (0.0, 1.0):
        ax.axvline(alpha, color="0.6", linestyle=":", linewidth=0.8)
    ax.set_xlabel("alpha ((1 - alpha) model_a + alpha model_b)")
    ax.legend()
    return ax


def plot_surface(result, metric: str | None = None, ax=None, levels: int = 20):
    """A `Surface`: filled contours of one metric (default the first) over (a, b), the model at the centre."""
    name = metric or next(iter(result.values))
    if name not in result.values:
        raise UsageError(f"metric {name!r} is not in the surface (it has {', '.join(result.values)})")
    ax = _axes(ax)
    grid1, grid2 = np.meshgrid(result.coordinates1, result.coordinates2, indexing="ij")
    filled = ax.contourf(grid1, grid2, result.values[name], levels=levels, cmap="viridis")
    ax.figure.colorbar(filled, ax=ax, label=name)
    ax.plot([0.0], [0.0], "w+", markersize=10)
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    return ax
