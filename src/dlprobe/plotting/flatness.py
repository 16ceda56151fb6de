"""Figures of flatness vs generalization: the interpolation line, and metrics vs a training setting.

Both draw two quantities on twin y axes (e.g. loss on the left, accuracy or sensitivity on the right)
with one legend holding the curves of both axes. They take data and `ax=None` and return the left Axes
(the right one is `ax.right_axis`).
"""

from __future__ import annotations

import numpy as np

from .style import color, line_with_band, new_axes

LOSS_COLOR, ACCURACY_COLOR = color(0), color(3)


def _joint_legend(left, right) -> None:
    """One legend for both axes, below the plot: inside it would hide curves of the other axis."""
    handles, labels = left.get_legend_handles_labels()
    more_handles, more_labels = right.get_legend_handles_labels()
    left.legend(handles + more_handles, labels + more_labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                ncol=2, frameon=False)


def plot_interpolation(alphas, losses: dict, accuracies: dict, endpoint_labels: tuple[str, str], title: str, ax=None):
    """Cross-entropy (log scale, left axis) and accuracy (right axis) along theta(alpha), mean over seeds with a
    min-max band.

    alphas: (A,); losses / accuracies: {"train": (S, A), "test": (S, A)}, one row per seed (a single (A,) row is
    one seed, drawn without a band). Train is solid, test dashed; vertical lines at alpha = 0 and 1 carry
    endpoint_labels (m1, m2).
    """
    if ax is None:
        _, ax = new_axes(width=7.6, height=5.0)
    right = ax.twinx()
    alphas = np.asarray(alphas, dtype=float)
    for split, style in (("train", "-"), ("test", "--")):
        line_with_band(ax, alphas, np.atleast_2d(losses[split]), f"{split} cross-entropy", LOSS_COLOR, linestyle=style)
        line_with_band(right, alphas, np.atleast_2d(accuracies[split]), f"{split} accuracy", ACCURACY_COLOR, linestyle=style)
    ax.set_yscale("log")
    ax.set_xlabel("interpolation ratio α   (θ = (1−α)·θ₁ + α·θ₂)")
    ax.set_ylabel("cross-entropy (log scale)", color=LOSS_COLOR)
    right.set_ylabel("accuracy", color=ACCURACY_COLOR)
    right.set_ylim(-0.02, 1.02)
    ax.tick_params(axis="y", colors=LOSS_COLOR)
    right.tick_params(axis="y", colors=ACCURACY_COLOR)
    for alpha, label in zip((0.0, 1.0), endpoint_labels):
        ax.axvline(alpha, color="0.35", linewidth=0.9, linestyle=":")
        ax.annotate(label, xy=(alpha, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8.5, color="0.2")
    ax.set_xlim(alphas.min(), alphas.max())
    ax.set_title(title, fontsize=10, pad=18)
    ax.grid(alpha=0.25)
    _joint_legend(ax, right)
    ax.right_axis = right
    return ax


def plot_twin_metrics(x_values, left_curves: dict, right_curves: dict, *, xlabel: str, left_label: str, right_label: str,
                      title: str, left_log: bool = False, right_log: bool = False, ax=None):
    """Curves against a training setting (log x) on twin axes, mean line with min-max band over seeds.

    x_values: (S,) settings (e.g. batch sizes). left_curves / right_curves: {label: (runs (R, S), linestyle)};
    left curves are drawn in blues/greens, right curves in reds/purples, so the axis colours tell them apart.
    """
    if ax is None:
        _, ax = new_axes(width=7.6, height=5.0)
    right = ax.twinx()
    x_values = np.asarray(x_values, dtype=float)
    for axis, curves, palette in ((ax, left_curves, (0, 2, 9)), (right, right_curves, (3, 4, 6))):
        for index, (label, (runs, style)) in enumerate(curves.items()):
            runs = np.atleast_2d(np.asarray(runs, dtype=float))
            tone = color(palette[index % len(palette)])
            line_with_band(axis, x_values, runs, label, tone, linestyle=style)
            axis.plot(x_values, np.nanmean(runs, axis=0), linestyle="none", marker="o", markersize=4, color=tone)
    ax.set_xscale("log")
    ax.set_xticks(x_values)
    ax.set_xticklabels([f"{v:g}" for v in x_values])
    ax.minorticks_off()
    if left_log:
        ax.set_yscale("log")
    if right_log:
        right.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(left_label, color=color(0))
    right.set_ylabel(right_label, color=color(3))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.25)
    _joint_legend(ax, right)
    ax.right_axis = right
    return ax
