"""The report's sentences and headline table for error-surface (experiments/error_surface.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says: the line from initial to final weights, the random plane and how much of the training path each
plane shows.
"""

from __future__ import annotations

from ..text import format_number


def observe(summary: dict, config: dict) -> list[str]:
    line, surface, plane = summary["line"], summary["surface"], summary["pca_plane"]
    shape = ("the loss never rises on the way from the initial to the final weights" if line["non_increasing_01"] else
             f"the loss is not monotone on [0, 1]; barrier height above the higher endpoint: {format_number(line['barrier_height'])}")
    sentences = [
        f"Line from initial (α=0, loss {format_number(line['loss_at_0'])}) to final weights (α=1, loss {format_number(line['loss_at_1'])}): {shape}; "
        f"the lowest loss on α ∈ [{format_number(line['alpha_min'])}, {format_number(line['alpha_max'])}] is {format_number(line['min_loss'])} at α = {format_number(line['alpha_of_min'])}.",
        f"Random filter-normalized plane: loss {format_number(surface['center_loss'])} at the final weights, {format_number(surface['mean_loss_radius1'])} on average at "
        f"distance 1 ({format_number(surface['mean_loss_radius1'] / surface['center_loss'], 2)}× higher), up to {format_number(surface['max_loss'])} in the "
        f"[-{format_number(surface['range'])}, {format_number(surface['range'])}]² window.",
        _random_path_sentence(surface),
        f"The training path's top two principal directions explain {100 * plane['explained_variance_ratio'][0]:.1f}% and "
        f"{100 * plane['explained_variance_ratio'][1]:.1f}% of its variance ({100 * sum(plane['explained_variance_ratio']):.1f}% together), "
        f"so the 2-D picture shows {'most' if sum(plane['explained_variance_ratio']) > 0.5 else 'only part'} of the motion.",
    ]
    return sentences


def _random_path_sentence(surface: dict) -> str:
    """How much of the training path the random plane shows: captured fraction and extent in the window."""
    fractions = [f for f in surface["path_fraction_captured"] if f is not None]
    extent = max(max(abs(a), abs(b)) for a, b in surface["path_coordinates"])
    sentence = (f"The random plane captures {100 * surface['path_fraction_captured_overall']:.1f}% of the training path's distance from the "
                f"final weights (all snapshots pooled; {100 * min(fractions):.1f}% to {100 * max(fractions):.1f}% per snapshot): "
                f"projected on it, the path stays within {format_number(extent)} filter-normalized units of the centre")
    if extent < 0.1 * surface["range"]:
        return sentence + ", so the path is nearly a point here, which is why the PCA plane of the path is also drawn."
    return sentence + f" ({100 * extent / surface['range']:.0f}% of the window's half-width)."


def table(summary: dict) -> tuple[list[str], list[list]]:
    line, surface = summary["line"], summary["surface"]
    columns = ["quantity", "value"]
    rows = [["train loss at α=0 (initial)", format_number(line["loss_at_0"])], ["train loss at α=1 (final)", format_number(line["loss_at_1"])],
            ["max train loss on [0, 1]", format_number(line["max_loss_01"])], ["barrier height", format_number(line["barrier_height"])],
            ["min train loss on the line (α)", f"{format_number(line['min_loss'])} ({format_number(line['alpha_of_min'])})"],
            ["surface: loss at centre", format_number(surface["center_loss"])], ["surface: mean loss at radius 1", format_number(surface["mean_loss_radius1"])],
            ["surface: share of the path's distance captured", f"{100 * surface['path_fraction_captured_overall']:.1f}%"],
            ["path PCA explained variance", ", ".join(f"{100 * r:.1f}%" for r in summary["pca_plane"]["explained_variance_ratio"])]]
    return columns, rows
