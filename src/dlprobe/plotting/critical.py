"""Figure of critical-points: minimal ratio and index vs loss, one point per run, coloured by the gradient norm
reached, shaped by the measured classification, with the range the undetermined eigenvalues leave."""

from __future__ import annotations

import matplotlib.colors as mcolors
from matplotlib.cm import ScalarMappable
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from .style import new_axes

MARKERS = {"saddle": "v", "minimum": "o", "undetermined": "s"}
LABELS = {"saddle": "saddle (a trusted negative eigenvalue)", "minimum": "minimum (no negative beyond rounding)",
          "undetermined": "undetermined (negatives, none trusted)"}
LANCZOS_LABELS = {"saddle": "saddle (Lanczos: smallest Rayleigh quotient < -bound)",
                  "minimum": "minimum (Lanczos: smallest value - residual >= -rounding)",
                  "undetermined": "undetermined (Lanczos: sign not vouched for)"}
AXIS_LABELS = {"exact": ("minimal ratio (fraction of Hessian eigenvalues > 0)", "index (trusted negative eigenvalues / #params)"),
               "lanczos": ("minimal ratio (fraction > 0, Lanczos quadrature estimate)",
                           "index (1 - upper end of the minimal ratio's interval)")}


def plot_minimal_ratio_vs_loss(runs: list[dict], title: str, method: str = "exact"):
    """runs: dicts with loss, grad_norm, classification, minimal_ratio, minimal_ratio_low, minimal_ratio_high, index,
    gradient_flat_share (critical_refine's records). Returns the Figure: left the minimal ratio (fraction of
    eigenvalues > 0) with its range as a vertical bar, right the index (trusted negative eigenvalues / P); hollow
    markers: the residual gradient lies mostly (> 50%) in undetermined directions (a gradient-flat region).
    method "lanczos" (critical_lanczos.py's records): the ratio is the quadrature estimate, the bar its interval, the
    index 1 - its upper end; no gradient-flat share, so no hollow markers."""
    figure, axes = new_axes(ncols=2, width=5.6, height=4.6)
    grad = np.array([r["grad_norm"] for r in runs])
    norm = mcolors.LogNorm(vmin=max(grad.min(), 1e-16), vmax=max(grad.max(), grad.min() * 10, 1e-15))
    colours = ScalarMappable(norm=norm, cmap="viridis")
    ratio_label, index_label = AXIS_LABELS[method]
    for ax, key, label in ((axes[0], "minimal_ratio", ratio_label), (axes[1], "index", index_label)):
        for r in runs:
            colour = colours.to_rgba(r["grad_norm"])
            flat = r["gradient_flat_share"] is not None and r["gradient_flat_share"] > 0.5
            if key == "minimal_ratio":
                ax.vlines(r["loss"], r["minimal_ratio_low"], r["minimal_ratio_high"], colors=[colour], linewidth=1.0, alpha=0.6)
            ax.scatter([r["loss"]], [r[key]], marker=MARKERS[r["classification"]], s=34, linewidths=0.8,
                       facecolors="none" if flat else [colour], edgecolors=[colour] if flat else "k")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow log range overlap
        ax.set_xlabel("training loss (MSE) at the point reached")
        ax.set_ylabel(label, fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(True, alpha=0.25)
    present = [name for name in MARKERS if any(r["classification"] == name for r in runs)]
    labels = LABELS if method == "exact" else LANCZOS_LABELS
    handles = [Line2D([], [], marker=MARKERS[name], linestyle="", color="0.4", markeredgecolor="k", label=labels[name]) for name in present]
    if method == "exact":
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="0.4", label="hollow: gradient-flat region"))
    handles.append(Line2D([], [], color="0.4", label="bar: range of the undetermined signs" if method == "exact"
                          else "bar: the estimate's interval (quadrature bounds + 2 sd)"))
    axes[0].legend(handles=handles, fontsize=7, loc="best")
    figure.colorbar(colours, ax=axes, label="gradient norm reached")
    figure.suptitle(title, fontsize=10)
    return figure
