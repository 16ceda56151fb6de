"""The report's sentences and headline table for grad-norm (experiments/grad_norm.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says: how the gradient norm moved with the loss, their correlation, and the spikes.
"""

from __future__ import annotations

from ...experiments.grad_norm import SPIKE_FACTOR
from ..text import format_number
from ..wording import mean_std


def observe(summary: dict, config: dict) -> list[str]:
    sentences = []
    for task in summary["tasks"].values():
        lead = f"{task['description']} ({task['iterations']} iterations, {task['grad_norm_max']['n']} seeds): "
        loss_factor = task["first_epoch_loss"]["mean"] / task["last_epoch_loss"]["mean"]
        norm_factor = task["grad_norm_first_epoch"]["mean"] / task["grad_norm_last_epoch"]["mean"]
        direction = "fell" if norm_factor > 1 else "rose"
        sentences.append(lead + f"the mini-batch loss fell {format_number(loss_factor, 2)}× from the first epoch to the last "
                         f"({format_number(task['first_epoch_loss']['mean'])} to {format_number(task['last_epoch_loss']['mean'])}, geometric means), while the gradient "
                         f"norm {direction} {format_number(max(norm_factor, 1 / norm_factor), 2)}× ({format_number(task['grad_norm_first_epoch']['mean'])} to "
                         f"{format_number(task['grad_norm_last_epoch']['mean'])}).")
        r = task["log_correlation"]
        if r["mean"] is not None:
            relation = ("the gradient norm moves with the loss" if r["min"] > 0.5 else
                        "the gradient norm moves against the loss" if r["max"] < -0.5 else
                        "the gradient norm is not tightly tied to the loss")
            sentences.append(lead + f"correlation of log loss and log gradient norm over iterations: {mean_std(r)} "
                             f"(range {format_number(r['min'])} to {format_number(r['max'])}): {relation}.")
        peak, median = task["grad_norm_max"], task["grad_norm_median"]
        last = max(1, task["iterations"] - 1)
        peaks = "; ".join(f"{format_number(norm)} at iteration {int(at)} ({100 * at / last:.0f}%)"
                          for norm, at in zip(peak["values"], task["argmax_iteration"]["values"]) if at == at)
        sentences.append(lead + f"the largest gradient norm of each seed's run: {peaks}; on average "
                         f"{format_number(peak['mean'] / median['mean'], 2)}× the run's median gradient norm "
                         f"({format_number(median['mean'])}); {format_number(task['spikes']['mean'])} iterations per run exceed "
                         f"{SPIKE_FACTOR:g}× the geometric mean of the preceding epoch.")
    return sentences


def table(summary: dict) -> tuple[list[str], list[list]]:
    columns = ["task", "iterations", "final train loss", "grad norm start", "grad norm end", "grad norm max", "max at iteration", "corr(log loss, log grad norm)"]
    rows = [[t["description"], t["iterations"], mean_std(t["final_train_loss"]), mean_std(t["grad_norm_start"]), mean_std(t["grad_norm_end"]),
             mean_std(t["grad_norm_max"]), mean_std(t["argmax_iteration"]), mean_std(t["log_correlation"])] for t in summary["tasks"].values()]
    return columns, rows
