"""Figure of critical-points: minimal ratio vs loss, one point per run, coloured by the gradient norm reached."""

from __future__ import annotations

import matplotlib.colors as mcolors
from matplotlib.ticker import NullFormatter
import numpy as np

from .style import new_axes


def plot_minimal_ratio_vs_loss(runs: list[dict], rel_tol: float, radius: float, title: str):
    """runs: dicts with loss, minimal_ratio, sampling_ratio, grad_norm. Returns the Figure (two panels)."""
    figure, axes = new_axes(ncols=2, width=5.6, height=4.4)
    loss = np.array([r["loss"] for r in runs])
    grad = np.array([r["grad_norm"] for r in runs])
    norm = mcolors.LogNorm(vmin=max(grad.min(), 1e-16), vmax=max(grad.max(), grad.min() * 10, 1e-15))
    panels = [("minimal_ratio", f"minimal ratio (Hessian: eigenvalues > {rel_tol:g}·max|λ|)"),
              ("sampling_ratio", f"sampling ratio (neighbours at radius {radius:g} with higher loss)")]
    for ax, (key, label) in zip(axes, panels):
        points = ax.scatter(loss, [r[key] for r in runs], c=grad, cmap="viridis", norm=norm, s=28, edgecolors="k", linewidths=0.3)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow log range overlap
        ax.set_xlabel("training loss (MSE) at the point reached")
        ax.set_ylabel(label, fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(True, alpha=0.25)
    figure.colorbar(points, ax=axes, label="gradient norm reached")
    figure.suptitle(title, fontsize=10)
    return figure
