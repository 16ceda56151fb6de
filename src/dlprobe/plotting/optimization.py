"""Figures of part 1-2: weight trajectories, gradient norm vs loss, loss along a line, loss surfaces.

Every function takes data and `ax=None` (or `axes=None` for two-panel figures) and returns the Axes.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D

from .style import color, new_axes


def annotation_indices(path, per_run: int, min_distance: float, taken: list) -> list[int]:
    """Indices of a path (T, 2) to label: the last, then the first and about `per_run` evenly spaced ones,
    skipping any point closer than min_distance to a position in `taken` (labels already placed, e.g.
    other runs' end points) or to one chosen here: converging runs pile points up. Appends to `taken`."""
    num_points = len(path)
    if num_points == 0:
        return []
    step = max(1, int(np.ceil((num_points - 1) / max(1, per_run - 1))))
    chosen = [num_points - 1]
    for index in [0, *range(step, num_points - 1, step)]:
        if all(np.hypot(*(path[index] - other)) >= min_distance for other in taken + [path[c] for c in chosen]):
            chosen.append(index)
    taken.extend(path[c] for c in chosen)
    return sorted(chosen)


def plot_trajectories(paths, values, labels, axis_labels, title, value_format="{:.3g}", annotations_per_run=4, ax=None):
    """Each run's 2-D path: paths[r] (T_r, 2), values[r] (T_r,) shown next to a subset of its points.

    Start of every path: circle; end: star. Returns the Axes."""
    if ax is None:
        _, ax = new_axes(width=8.4, height=6.0)
    every_point = np.concatenate([np.asarray(p, dtype=float) for p in paths])
    min_distance = 0.06 * np.hypot(*np.ptp(every_point, axis=0))  # labels closer than this overlap
    taken = [np.asarray(p, dtype=float)[-1] for p in paths]  # every run's final value is labelled
    for run, (path, run_values, label) in enumerate(zip(paths, values, labels)):
        path = np.asarray(path, dtype=float)
        tint = color(run)
        ax.plot(path[:, 0], path[:, 1], "-", color=tint, linewidth=1.1, alpha=0.8, label=label)
        ax.plot(path[:, 0], path[:, 1], ".", color=tint, markersize=4)
        ax.plot(*path[0], "o", color=tint, markersize=8, markeredgecolor="black", markeredgewidth=0.6)
        ax.plot(*path[-1], "*", color=tint, markersize=15, markeredgecolor="black", markeredgewidth=0.6)
        for index in annotation_indices(path, annotations_per_run, min_distance, taken):
            ax.annotate(value_format.format(run_values[index]), path[index], textcoords="offset points", xytext=(4, 4),
                        fontsize=6.5, color=tint, fontweight="bold" if index == len(path) - 1 else "normal")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", color="0.5", linestyle="", markeredgecolor="black", label="start (epoch 0)"),
                Line2D([], [], marker="*", color="0.5", linestyle="", markersize=12, markeredgecolor="black", label="end")]
    ax.legend(handles=handles, fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.25)
    return ax


def moving_geometric_mean(values, window: int) -> np.ndarray:
    """Centred geometric mean over `window` entries (fewer at the ends) of positive values (T,) -> (T,).

    Geometric because the curves are drawn on log axes; centred so the smooth curve does not lag."""
    logs = np.log(np.clip(np.asarray(values, dtype=float), 1e-300, None))
    sums = np.concatenate([[0.0], np.cumsum(logs)])
    half = max(1, window) // 2
    positions = np.arange(len(logs))
    starts = np.maximum(0, positions - half)
    ends = np.minimum(len(logs), positions + max(1, window) - half)
    return np.exp((sums[ends] - sums[starts]) / (ends - starts))


def plot_grad_norm(series: dict, title: str, norm_label: str, window: int = 1, axes=None):
    """series: label -> (iterations (T,), loss (T,), grad_norm (T,)). Two panels sharing the iteration axis,
    log y: raw values as thin lines, the centred geometric mean over `window` iterations as thick ones.
    Returns the two Axes (loss, gradient norm)."""
    if axes is None:
        _, axes = new_axes(nrows=2, width=8.0, height=3.2, sharex=True)
    loss_ax, norm_ax = axes
    for index, (label, (iterations, loss, norm)) in enumerate(series.items()):
        tint = color(index)
        for ax, values in ((loss_ax, loss), (norm_ax, norm)):
            ax.plot(iterations, values, color=tint, linewidth=0.5, alpha=0.35)
            if window > 1:
                ax.plot(iterations, moving_geometric_mean(values, window), color=tint, linewidth=1.6, label=label)
            else:
                ax.lines[-1].set(alpha=0.9, linewidth=1.0, label=label)
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.25)
    loss_ax.set_ylabel("mini-batch loss")
    norm_ax.set_ylabel(norm_label)
    norm_ax.set_xlabel("iteration")
    smoothing = f"; thick: centred geometric mean over {window} iterations" if window > 1 else ""
    loss_ax.set_title(f"{title}\n(thin: every iteration{smoothing})", fontsize=10)
    loss_ax.legend(fontsize=8)
    return axes


def plot_loss_line(alphas, curves: dict, title: str, accuracy: dict | None = None, ax=None):
    """Loss along theta(alpha) = (1 - alpha) theta_initial + alpha theta_final: curves label -> (A,) (log y);
    accuracy: label -> (A,) on a twin axis (dash-dotted, dotted). Returns the main Axes."""
    if ax is None:
        _, ax = new_axes(width=7.5)
    for index, (label, losses) in enumerate(curves.items()):  # later curves dashed: train and test often coincide
        ax.plot(alphas, losses, color=color(index), linewidth=1.6, linestyle="-" if index == 0 else "--", label=label)
    ax.axvline(0.0, color="0.3", linestyle=":", linewidth=1)
    ax.axvline(1.0, color="0.3", linestyle=":", linewidth=1)
    ax.text(0.0, 1.01, "initial", transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    ax.text(1.0, 1.01, "final", transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("α  (weights = (1 − α)·initial + α·final)")
    ax.set_ylabel("loss (log scale)")
    ax.grid(True, which="both", alpha=0.25)
    handles, _ = ax.get_legend_handles_labels()
    if accuracy:
        twin = ax.twinx()
        for index, (label, values) in enumerate(accuracy.items()):
            twin.plot(alphas, values, color=color(index + len(curves)), linestyle="-." if index == 0 else ":", linewidth=1.3, label=label)
        twin.set_ylabel("accuracy")
        twin.set_ylim(0, 1)
        handles += twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_title(title, fontsize=10, pad=16)
    return ax


def plot_loss_contour(coords1, coords2, surface, title: str, axis_labels, path=None, path_label="training path",
                      num_levels: int = 24, ax=None):
    """Filled contours of surface (A, B), surface[i, j] at (coords1[i], coords2[j]), on log-spaced levels.

    path (T, 2): optional projected trajectory drawn on top (circle: start, star: end). Returns the Axes."""
    if ax is None:
        _, ax = new_axes(width=6.8, height=5.6)
    surface = np.asarray(surface, dtype=float)
    low = max(np.nanmin(surface), 1e-12)
    high = max(np.nanmax(surface), low * 1.001)
    levels = np.geomspace(low, high, num_levels)
    norm = LogNorm(vmin=low, vmax=high)
    grid1, grid2 = np.meshgrid(np.asarray(coords1), np.asarray(coords2), indexing="ij")
    filled = ax.contourf(grid1, grid2, np.clip(surface, low, None), levels=levels, norm=norm, cmap="viridis")
    ax.contour(grid1, grid2, np.clip(surface, low, None), levels=levels[::3], norm=norm, colors="white", linewidths=0.5, alpha=0.6)
    colorbar = ax.figure.colorbar(filled, ax=ax)
    ticks = levels[:: max(1, num_levels // 6)]
    colorbar.set_ticks(ticks, labels=[f"{tick:.3g}" for tick in ticks])
    colorbar.minorticks_off()
    colorbar.set_label("training loss (log-spaced levels)")
    ax.plot(0, 0, "*", color="red", markersize=14, markeredgecolor="white", label="final weights (centre)")
    if path is not None:
        path = np.asarray(path, dtype=float)
        ax.plot(path[:, 0], path[:, 1], "-", color="white", linewidth=1.4)
        ax.plot(path[:, 0], path[:, 1], ".", color="orange", markersize=6, label=path_label)
        ax.plot(*path[0], "o", color="orange", markersize=9, markeredgecolor="black", label="start of training")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5, loc="upper right", framealpha=0.8)
    return ax
