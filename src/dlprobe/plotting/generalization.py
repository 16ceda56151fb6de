"""Figures of part 1-3 (random labels, number of parameters): curves by group, sweeps, metrics vs model size.

Every function takes data and `ax=None` and returns the Axes it drew on.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from .style import color, mean_band, new_axes


def plot_split_curves(curves: dict, ylabel: str, title: str, log_y: bool = False, chance: float | None = None, unit: str = "", ax=None):
    """curves: label -> (epochs (T,), train values (T,), test values (T,)). One colour per label; train solid,
    test dashed; an optional dotted chance level (in the units of the values, `unit` appended in the legend). The legend names colours and line styles separately."""
    if ax is None:
        _, ax = new_axes(width=7.5, height=4.6)
    handles = []
    for index, (label, (epochs, train, test)) in enumerate(curves.items()):
        ax.plot(epochs, train, color=color(index), linewidth=1.6)
        ax.plot(epochs, test, color=color(index), linewidth=1.6, linestyle="--")
        handles.append(Line2D([], [], color=color(index), linewidth=3, label=label))
    handles += [Line2D([], [], color="0.3", label="train"), Line2D([], [], color="0.3", linestyle="--", label="test")]
    if chance is not None:
        ax.axhline(chance, color="black", linestyle=":", linewidth=1.2)
        handles.append(Line2D([], [], color="black", linestyle=":", label=f"chance level ({chance:g}{unit})"))
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(handles=handles, fontsize=8, loc="best")
    return ax


def plot_final_vs_noise(fractions, train_accuracy, test_accuracy, chance: float, best_test_accuracy=None, ax=None):
    """Final train and test accuracy (each (F,)) against the label-noise fraction (F,), with the chance level;
    optionally the best test accuracy seen during training (F,), which shows what memorization cost."""
    if ax is None:
        _, ax = new_axes()
    percent = 100 * np.asarray(fractions, dtype=float)
    ax.plot(percent, 100 * np.asarray(train_accuracy), marker="o", color=color(0), label="final train accuracy (noisy labels)")
    ax.plot(percent, 100 * np.asarray(test_accuracy), marker="s", color=color(1), label="final test accuracy (true labels)")
    if best_test_accuracy is not None:
        ax.plot(percent, 100 * np.asarray(best_test_accuracy), marker="^", linestyle="--", color=color(1), alpha=0.6,
                label="best test accuracy during training")
    ax.axhline(100 * chance, color="black", linestyle=":", linewidth=1.2, label=f"chance ({100 * chance:g}%)")
    ax.set_ylim(0, 105)
    ax.set_xlabel("training labels randomized (%)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Final accuracy vs label noise", fontsize=10)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_epochs_to_fit(fractions, epochs_to_fit, epochs: int, threshold: float, ax=None):
    """Epochs until training accuracy first reached `threshold`, per noise fraction (F,); None (never
    reached within `epochs`) is drawn as a red cross at the epoch limit."""
    if ax is None:
        _, ax = new_axes()
    percent = 100 * np.asarray(fractions, dtype=float)
    reached = [(p, e) for p, e in zip(percent, epochs_to_fit) if e is not None]
    missed = [p for p, e in zip(percent, epochs_to_fit) if e is None]
    if reached:
        ax.plot(*zip(*reached), marker="o", color=color(2), label=f"first epoch with train accuracy >= {100 * threshold:g}%")
    if missed:
        ax.plot(missed, [epochs] * len(missed), linestyle="none", marker="x", markersize=9, color="red",
                label=f"not reached in {epochs} epochs")
    ax.axhline(epochs, color="0.5", linestyle=":", linewidth=1, label=f"epoch limit ({epochs})")
    ax.set_ylim(0, epochs * 1.08)
    ax.set_xlabel("training labels randomized (%)")
    ax.set_ylabel("epochs")
    ax.set_title("Epochs to fit the training labels", fontsize=10)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_vs_params(num_params, train_runs, test_runs, ylabel: str, title: str, log_y: bool = False, widths=None, ax=None):
    """num_params (n,); train_runs, test_runs (n, S) over S seeds. Mean with markers and a min-max band, log x.
    `widths` (n,), if given, label a top axis at the same positions (which model each point is)."""
    if ax is None:
        _, ax = new_axes()
    order = np.argsort(np.asarray(num_params))
    x = np.asarray(num_params, dtype=float)[order]
    for index, (label, runs) in enumerate((("train", train_runs), ("test", test_runs))):
        runs = np.atleast_2d(np.asarray(runs, dtype=float))[order]  # (n, S)
        mean, low, high = mean_band(runs, axis=1)
        seeds = runs.shape[1]
        ax.plot(x, mean, marker="o", markersize=4, color=color(index), label=f"{label} (mean of {seeds} seeds)" if seeds > 1 else f"{label} (1 seed)")
        if seeds > 1:
            ax.fill_between(x, low, high, color=color(index), alpha=0.2, linewidth=0, label=f"{label} min-max over seeds")
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    if widths is not None:
        top = ax.twiny()
        top.set_xscale("log")
        top.set_xlim(ax.get_xlim())
        top.set_xticks(x, [str(w) for w in np.asarray(widths)[order]], fontsize=7)
        top.minorticks_off()
        top.set_xlabel("hidden width", fontsize=8)
    ax.set_xlabel("number of parameters (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    return ax
