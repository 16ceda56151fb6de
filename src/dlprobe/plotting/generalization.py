"""Figures of part 1-3 (random labels, number of parameters): curves by group, sweeps, metrics vs model size.

Every function takes data and `ax=None` and returns the Axes it drew on.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .style import color, line_with_band, mean_band, new_axes


def plot_split_curves(curves: dict, ylabel: str, title: str, log_y: bool = False, chance: float | None = None, unit: str = "", ax=None):
    """curves: label -> (epochs (T,), train runs (S, T), test runs (S, T)) over S seeds (NaN past the end of a
    run that stopped early). One colour per label; train solid, test dashed, each the mean over seeds with a
    min-max band when S > 1; an optional dotted chance level (in the units of the values, `unit` appended in
    the legend). The legend names colours and line styles separately."""
    if ax is None:
        _, ax = new_axes(width=7.5, height=4.6)
    handles, seeds = [], 1
    for index, (label, (epochs, train, test)) in enumerate(curves.items()):
        for runs, style in ((train, "-"), (test, "--")):
            runs = np.atleast_2d(np.asarray(runs, dtype=float))
            line_with_band(ax, epochs, runs, None, color(index), linestyle=style)
            seeds = max(seeds, runs.shape[0])
        handles.append(Line2D([], [], color=color(index), linewidth=3, label=label))
    mean = f" (mean of {seeds} seeds)" if seeds > 1 else ""
    handles += [Line2D([], [], color="0.3", label=f"train{mean}"), Line2D([], [], color="0.3", linestyle="--", label=f"test{mean}")]
    if seeds > 1:
        handles.append(Patch(color="0.3", alpha=0.18, linewidth=0, label="min-max over seeds"))
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


def _error_bars(ax, x, runs, **style):
    """Mean over seeds of runs (F, S) at x (F,) with min-max error bars; returns the seed count S."""
    runs = np.atleast_2d(np.asarray(runs, dtype=float))
    mean, low, high = mean_band(runs, axis=1)
    ax.errorbar(x, mean, yerr=[mean - low, high - mean], capsize=3, **style)
    return runs.shape[1]


def plot_final_vs_noise(fractions, train_accuracy, test_accuracy, chance: float, best_test_accuracy=None, ax=None):
    """Final train and test accuracy (each (F, S): F noise fractions (F,), S seeds) against the label-noise
    fraction, as the mean over seeds with min-max error bars, and the chance level; optionally the best test
    accuracy seen during training (F, S), which shows what memorization cost."""
    if ax is None:
        _, ax = new_axes()
    percent = 100 * np.asarray(fractions, dtype=float)
    seeds = _error_bars(ax, percent, 100 * np.asarray(train_accuracy, dtype=float), marker="o", color=color(0),
                        label="final train accuracy (noisy labels)")
    _error_bars(ax, percent, 100 * np.asarray(test_accuracy, dtype=float), marker="s", color=color(1),
                label="final test accuracy (true labels)")
    if best_test_accuracy is not None:
        _error_bars(ax, percent, 100 * np.asarray(best_test_accuracy, dtype=float), marker="^", linestyle="--",
                    color=color(1), alpha=0.6, label="best test accuracy during training")
    ax.axhline(100 * chance, color="black", linestyle=":", linewidth=1.2, label=f"chance ({100 * chance:g}%)")
    ax.set_ylim(0, 105)
    ax.set_xlabel("training labels randomized (%)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Final accuracy vs label noise" + (f" (mean, bars = min-max of {seeds} seeds)" if seeds > 1 else ""), fontsize=10)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_epochs_to_fit(x, epochs_to_fit, epochs: int, threshold: float, ax=None,
                       xlabel: str = "training labels randomized (%)", log_x: bool = False):
    """Epochs until training accuracy first reached `threshold`: x (F,) the swept setting (noise in percent, or
    the training-set size with log_x), epochs_to_fit one list per setting (F,) of the S seeds' values, None where
    a seed never reached it within `epochs`. Drawn as the mean over the seeds that reached it with min-max error
    bars; a setting where some seeds missed gets a red cross at the epoch limit labelled with how many missed ("1/2")."""
    if ax is None:
        _, ax = new_axes()
    percent = np.asarray(x, dtype=float)
    reached = [(p, [e for e in values if e is not None]) for p, values in zip(percent, epochs_to_fit)]
    reached = [(p, values) for p, values in reached if values]
    missed = [(p, sum(e is None for e in values), len(values)) for p, values in zip(percent, epochs_to_fit)
              if any(e is None for e in values)]
    if reached:
        x, values = zip(*reached)
        runs = np.array([[np.mean(v), min(v), max(v)] for v in values])  # (F', 3): mean, min, max of the fitted seeds
        ax.errorbar(x, runs[:, 0], yerr=[runs[:, 0] - runs[:, 1], runs[:, 2] - runs[:, 0]], capsize=3, marker="o",
                    color=color(2), label=f"first epoch with train acc. >= {100 * threshold:g}% (mean, min-max of seeds that fit)")
    if missed:
        ax.plot([p for p, _, _ in missed], [epochs] * len(missed), linestyle="none", marker="x", markersize=9,
                color="red", label=f"not reached in {epochs} epochs (seeds that missed / seeds)")
        for p, count, total in missed:
            ax.annotate(f"{count}/{total}", (p, epochs), textcoords="offset points", xytext=(6, -12), fontsize=8, color="red")
    ax.axhline(epochs, color="0.5", linestyle=":", linewidth=1, label=f"epoch limit ({epochs})")
    ax.set_ylim(0, epochs * 1.08)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
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
