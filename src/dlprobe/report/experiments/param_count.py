"""The report's sentences and headline table for param-count (experiments/param_count.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says: where test accuracy and loss peak along the parameter count, and the train-test gap's trend with
it.
"""

from __future__ import annotations

import numpy as np

from ...analysis.stats import separated
from ..text import format_number
from ..wording import below_minimum, describe_trend, mean_std

MIN_MODELS, MIN_DECADES = 10, 2  # the assignment's minimum: 10+ models over 2+ orders of magnitude of #params


def observe(summary: dict, config: dict) -> list[str]:
    models = summary["models"]
    params = np.array([m["num_params"] for m in models], dtype=float)
    test_accuracy = np.array([m["final_test_accuracy"]["mean"] for m in models], dtype=float)
    test_loss = np.array([m["final_test_loss"]["mean"] for m in models], dtype=float)
    gap = np.array([m["accuracy_gap"]["mean"] for m in models], dtype=float)
    seeds = len(summary["seeds"])
    best = int(np.nanargmax(test_accuracy))
    sentences = [_peak_sentence(models, best, test_accuracy, params)]
    sentences.append(f"{len(models)} models from {int(params.min()):,} to {int(params.max()):,} parameters "
                     f"({format_number(params.max() / params.min(), 3)}x), {summary['num_train']} training images, "
                     f"{seeds} seed{'s' if seeds > 1 else ''} each.")
    sentences += below_minimum("models", len(models), MIN_MODELS)
    sentences += below_minimum("decades of parameter count", np.log10(params.max() / params.min()), MIN_DECADES)
    largest = models[-1]
    lowest = int(np.nanargmin(test_loss))
    where = ("at the largest model" if lowest == len(models) - 1 else
             f"at {int(params[lowest]):,} parameters and {format_number(test_loss[-1])} at the largest model "
             f"({100 * (test_loss[-1] / test_loss[lowest] - 1):.0f}% above the minimum)")
    sentences.append(f"Test loss is lowest ({format_number(test_loss[lowest])}) {where}, while the training loss goes from "
                     f"{format_number(models[0]['final_train_loss']['mean'])} at the smallest model to {format_number(largest['final_train_loss']['mean'])}.")
    fitted = [m for m in models if m["final_train_accuracy"]["mean"] >= 0.99]
    sentences.append(f"The smallest model with >= 99% training accuracy has {fitted[0]['num_params']:,} parameters."
                     if fitted else "No model reached 99% training accuracy.")
    trend = summary["spearman"]["accuracy_gap"]
    widest = int(np.nanargmax(gap))
    sentences.append(f"Train-test accuracy gap vs parameter count: {describe_trend(trend['rho'], trend['p_value'])}; "
                     f"{100 * gap[0]:.1f} points at the smallest model, largest ({100 * gap[widest]:.1f}) "
                     f"at {int(params[widest]):,} parameters, {100 * gap[best]:.1f} at the test-accuracy peak and "
                     f"{100 * gap[-1]:.1f} at the largest model.")
    return sentences


def _peak_sentence(models: list[dict], best: int, test_accuracy: np.ndarray, params: np.ndarray) -> str:
    """Where test accuracy peaks; a model is named the best only when its seed range separates from every
    other model's, otherwise the sentence lists the models it cannot be told apart from."""
    peak = models[best]
    tied = [m for i, m in enumerate(models) if i != best and not separated(peak["final_test_accuracy"], m["final_test_accuracy"])]
    head = (f"Does a larger model generalize better? The highest mean test accuracy is {100 * test_accuracy[best]:.1f}% "
            f"({mean_std(_percent(peak['final_test_accuracy']))}% over seeds) at {int(params[best]):,} parameters"
            f"{' (the largest model)' if best == len(models) - 1 else ''}")
    smallest = f"; the smallest model ({int(params[0]):,} parameters) reaches {100 * test_accuracy[0]:.1f}%."
    if not tied:
        return head + ": its seed range lies above every other model's, so it is the best model of this sweep" + smallest
    names = ", ".join(f"{m['num_params']:,}" for m in tied[:6]) + (f" and {len(tied) - 6} more" if len(tied) > 6 else "")
    return (head + f", but its seed range overlaps those of {len(tied)} other model{'s' if len(tied) > 1 else ''} "
            f"({names} parameters) or there are too few seeds, so no single best model is singled out" + smallest)


def _percent(stats: dict) -> dict:
    return {**stats, **{k: 100 * stats[k] for k in ("mean", "std") if stats.get(k) is not None}}


def table(summary: dict) -> tuple[list[str], list[list]]:
    columns = ["widths", "parameters", "train loss", "test loss", "train acc", "test acc", "acc gap (points)"]
    rows = []
    for m in summary["models"]:
        # std of identical accuracies can come out as 1e-16 instead of 0; round it away for the table
        percent = {k: {**m[k], "mean": 100 * m[k]["mean"], "std": round(100 * m[k]["std"], 9)}
                   for k in ("final_train_accuracy", "final_test_accuracy", "accuracy_gap")}
        rows.append(["x".join(map(str, m["widths"])), m["num_params"], mean_std(m["final_train_loss"]), mean_std(m["final_test_loss"]),
                     mean_std(percent["final_train_accuracy"]) + "%", mean_std(percent["final_test_accuracy"]) + "%",
                     mean_std(percent["accuracy_gap"])])
    return columns, rows
