"""Shared plotting helpers: colours, a figure factory, mean-and-spread lines."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

COLORS = plt.get_cmap("tab10").colors


def color(index: int):
    return COLORS[index % len(COLORS)]


def new_axes(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 4.2, **kwargs):
    """(figure, axes) with a consistent size and layout."""
    figure, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), constrained_layout=True, **kwargs)
    return figure, axes


def mean_band(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) across runs, ignoring NaN (failed runs); low/high = min and max."""
    values = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            return np.nanmean(values, axis=axis), np.nanmin(values, axis=axis), np.nanmax(values, axis=axis)


def line_with_band(ax, x, runs: np.ndarray, label: str, color_value, linestyle="-"):
    """Mean over runs (rows of `runs`) as a line, min-max across runs as a shaded band."""
    mean, low, high = mean_band(runs)
    ax.plot(x, mean, label=label, color=color_value, linestyle=linestyle, linewidth=1.6)
    if np.asarray(runs).shape[0] > 1:
        ax.fill_between(x, low, high, color=color_value, alpha=0.18, linewidth=0)
    return ax


def close(figure) -> None:
    plt.close(figure)
