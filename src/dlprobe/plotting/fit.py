"""Figures of part 1-1: loss curves of several models, fitted functions against the ground truth."""

from __future__ import annotations

import numpy as np

from .style import color, line_with_band, new_axes


def plot_loss_curves(series: dict, title: str, ylabel: str, xlabel: str = "epoch", log_y: bool = True, ax=None):
    """series: label -> (x (T,), runs (S, T)); mean line with min-max band per label. Returns the Axes."""
    if ax is None:
        _, ax = new_axes()
    for index, (label, (x, runs)) in enumerate(series.items()):
        runs = np.atleast_2d(np.asarray(runs, dtype=float))
        length = min(len(x), runs.shape[1])
        line_with_band(ax, np.asarray(x)[:length], runs[:, :length], label, color(index))
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    return ax


def plot_two_phase_loss(first: dict, second: dict, title: str, ylabel: str, first_xlabel: str, second_xlabel: str,
                        first_title: str, second_title: str):
    """Loss curves of two training phases side by side on one log y-axis: first and second as `plot_loss_curves`'
    series (label -> (x (T,), runs (S, T))), the second phase starting where the first ended. Returns the Figure."""
    figure, (left, right) = new_axes(ncols=2, width=5.0, sharey=True)
    plot_loss_curves(first, title=first_title, ylabel=ylabel, xlabel=first_xlabel, ax=left)
    plot_loss_curves(second, title=second_title, ylabel=ylabel, xlabel=second_xlabel, ax=right)
    right.tick_params(labelleft=True)
    figure.suptitle(title, fontsize=11)
    return figure


def plot_function_fits(grid, truth, predictions: dict, domain, x_train=None, title: str = "", ax=None):
    """grid (G,), truth (G,), predictions: label -> (S, G) per-seed predictions (mean line, min-max band).

    The region outside the training domain is shaded: predictions there are extrapolation."""
    if ax is None:
        _, ax = new_axes(width=7.5)
    grid = np.asarray(grid)
    ax.axvspan(grid.min(), domain[0], color="0.9", zorder=0)
    ax.axvspan(domain[1], grid.max(), color="0.9", zorder=0, label="outside the training domain")
    ax.plot(grid, truth, color="black", linewidth=2.4, label="ground truth", zorder=3)
    for index, (label, runs) in enumerate(predictions.items()):
        line_with_band(ax, grid, np.atleast_2d(runs), label, color(index), linestyle="--")
    span = np.nanmax(truth) - np.nanmin(truth)
    ax.set_ylim(np.nanmin(truth) - 0.35 * span, np.nanmax(truth) + 0.35 * span)
    ax.set_xlim(grid.min(), grid.max())
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    return ax
