"""Figures of part 1-1 "train on an actual task": loss and accuracy curves of CNNs and DNNs together.

Two families share each chart, so colour encodes the family (CNNs in blues, DNNs in oranges; darker =
deeper) and line style encodes the split (solid = training, dashed = test). A curve is given as
label -> (epochs (T,), runs (S, T), colour): the line is the mean over the S seeds, the band min-max
(accuracy charts shade only the test curves: twelve bands on one chart hide the lines).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .style import mean_band, new_axes

FAMILY_COLORMAPS = {"cnn": "Blues", "dnn": "Oranges", "user": "Greens"}
MIN_ZOOM_EPOCHS = 6


def family_colors(family: str, count: int) -> list:
    """`count` colours of one family's colormap, light (shallowest) to dark (deepest); the ends are
    trimmed so the lightest stays visible on white and the darkest stays distinct from black."""
    colormap = plt.get_cmap(FAMILY_COLORMAPS.get(family, "Greys"))
    positions = np.linspace(0.45, 0.95, count) if count > 1 else [0.75]
    return [colormap(p) for p in positions]


def _draw(ax, series: dict, linestyle: str = "-", label: bool = True, band: bool = True) -> None:
    for name, (epochs, runs, colour) in series.items():
        runs = np.atleast_2d(np.asarray(runs, dtype=float))
        length = min(len(epochs), runs.shape[1])
        x = np.asarray(epochs)[:length]
        mean, low, high = mean_band(runs[:, :length])
        ax.plot(x, mean, label=name if label else None, color=colour, linestyle=linestyle, linewidth=1.6)
        if band and runs.shape[0] > 1:
            ax.fill_between(x, low, high, color=colour, alpha=0.15, linewidth=0)


def legend_below(ax, columns: list[list[str]], extra: list | None = None, whole_figure: bool = False) -> None:
    """One legend under the Axes (or under the whole figure) with a column per group of labels (e.g.
    CNNs | DNNs), plus an optional last column of extra handles (the line-style key); short columns are
    padded with blank entries."""
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
    groups = [[(handles[label], label) for label in column if label in handles] for column in columns]
    if extra:
        groups.append([(handle, handle.get_label()) for handle in extra])
    groups = [g for g in groups if g]
    rows = max(len(g) for g in groups)
    blank = Line2D([], [], linestyle="none")
    entries = [item for g in groups for item in g + [(blank, "")] * (rows - len(g))]  # matplotlib fills column by column
    options = dict(ncol=len(groups), fontsize=7.5, frameon=False, handlelength=2.6, columnspacing=1.6)
    if whole_figure:
        ax.figure.legend([h for h, _ in entries], [l for _, l in entries], loc="outside lower center", **options)
    else:
        ax.legend([h for h, _ in entries], [l for _, l in entries], loc="upper center", bbox_to_anchor=(0.5, -0.13), **options)


def plot_training_loss(series: dict, title: str, columns: list[list[str]] | None = None, ax=None):
    """series: label -> (epochs (T,), per-seed training losses (S, T), colour); log y. `columns`: the
    labels grouped into legend columns (default: one column). Returns the Axes."""
    if ax is None:
        _, ax = new_axes(width=8.6, height=5.4)
    _draw(ax, series)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training cross-entropy (log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    legend_below(ax, columns or [list(series)])
    return ax


def plot_accuracy(train: dict, test: dict, title: str, columns: list[list[str]] | None = None, first_epoch: int = 0,
                  legend: bool = True, ax=None):
    """train / test: label -> (epochs (T,), per-seed accuracies in [0, 1] (S, T), colour), same labels.

    Training accuracy solid, test accuracy dashed, in percent, over the epochs >= `first_epoch`. The y
    axis starts a little below the lowest accuracy shown (after epoch 0), so differences stay
    visible; epoch-0 values (near chance) may run off the bottom, which the y label then says.
    `columns` as in plot_training_loss. Returns the Axes."""
    if ax is None:
        _, ax = new_axes(width=8.6, height=5.4)

    def window(series):
        out = {}
        for name, (epochs, runs, colour) in series.items():
            epochs, runs = np.asarray(epochs), 100 * np.atleast_2d(np.asarray(runs, dtype=float))
            keep = epochs >= first_epoch
            out[name] = (epochs[keep], runs[:, : len(epochs)][:, keep], colour)
        return out

    shown_train, shown_test = window(train), window(test)
    _draw(ax, shown_train, band=False)
    _draw(ax, shown_test, linestyle="--", label=False)
    skip = 1 if first_epoch == 0 else 0  # epoch 0 is chance level: let it run off rather than squash the rest
    later = [np.nanmin(r[:, skip:]) for _, r, _ in (*shown_train.values(), *shown_test.values())
             if r.shape[1] > skip and np.isfinite(r[:, skip:]).any()]
    low = max(0.0, min(later) - 1.0) if later else 0.0
    high = max((np.nanmax(r) for _, r, _ in (*shown_train.values(), *shown_test.values()) if np.isfinite(r).any()), default=100.0)
    ax.set_ylim(low, min(100.5, high + 0.1 * (high - low) + 0.5))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    below = first_epoch == 0 and low > 15
    ax.set_ylabel("accuracy (%)" + ("; epoch 0 is below the axis" if below else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.25)
    if legend:
        styles = [Line2D([], [], color="0.3", linestyle="-", label="training accuracy"),
                  Line2D([], [], color="0.3", linestyle="--", label="test accuracy")]
        legend_below(ax, columns or [list(train)], extra=styles)
    return ax


def plot_accuracy_with_zoom(train: dict, test: dict, title: str, columns: list[list[str]] | None = None):
    """Two panels: every epoch (left) and the second half of training with its own y range (right),
    where the final accuracies, often within a few points of each other, can be told apart. With fewer
    than MIN_ZOOM_EPOCHS epochs a zoom shows nothing new, and only the left panel is drawn.
    Same inputs as plot_accuracy. Returns the Axes drawn (one or two)."""
    last = max(int(np.asarray(e)[-1]) for e, _, _ in train.values())
    zoom = last >= MIN_ZOOM_EPOCHS
    figure, axes = new_axes(ncols=2 if zoom else 1, width=6.0 if zoom else 8.6, height=5.0 if zoom else 5.4)
    axes = list(np.atleast_1d(axes))
    left = axes[0]
    plot_accuracy(train, test, "all epochs", columns, legend=False, ax=left)
    if zoom:
        plot_accuracy(train, test, f"zoom: epochs {last // 2}-{last}", columns, first_epoch=last // 2, legend=False, ax=axes[1])
    styles = [Line2D([], [], color="0.3", linestyle="-", label="training accuracy"),
              Line2D([], [], color="0.3", linestyle="--", label="test accuracy")]
    legend_below(left, columns or [list(train)], extra=styles, whole_figure=True)
    figure.suptitle(title, fontsize=10.5)
    return axes
