"""The report's sentences and headline table for trajectory (experiments/trajectory.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says: how much of the weights' motion the 2-D view shows and whether the seeds end apart.
"""

from __future__ import annotations

from ..text import format_number
from ..wording import mean_std


def observe(summary: dict, config: dict) -> list[str]:
    classify = summary["task"]["kind"] == "images"
    metric = "final_train_accuracy" if classify else "final_train_loss"
    model = f"model {summary['user_model']}" if summary.get("user_model") else f"{summary['architecture']} MLP"
    sentences = [_answer(summary)] if summary["distances"]["whole"]["between_initial"] else []
    sentences += [f"{summary['num_runs']} runs of the {model} on {summary['task']['description']}: "
                 f"{metric.replace('_', ' ')} {mean_std(summary[metric])} (range {format_number(summary[metric]['min'])} to {format_number(summary[metric]['max'])}); "
                 f"{summary['num_snapshots']} snapshots per run (epochs {summary['snapshot_epochs'][0]} to {summary['snapshot_epochs'][-1]})."]
    for view in ("whole", "layer"):
        ratio = summary["explained_variance_ratio"][view]
        name = "the whole model" if view == "whole" else f"layer {summary['layer']['index']}"
        sentences.append(f"PC1 and PC2 explain {100 * ratio[0]:.1f}% and {100 * ratio[1]:.1f}% of the variance of {name}'s "
                         f"snapshots ({100 * sum(ratio):.1f}% together; the rest of the motion is not shown by the 2-D view).")
        d = summary["distances"][view]
        if d["between_initial"]:
            relation = f"{d['between_final'] / d['between_initial']:.2f}× their distance at initialization"
            # "Apart" relative to how far a run travels: final points closer than half a run's own displacement
            # would mean the runs meet; farther means each seed found its own solution.
            apart = d["between_final"] > 0.5 * d["init_to_final"]["mean"]
            verdict = ("the seeds end at different points of weight space" if apart else
                       "the runs end close together compared with how far each one moved")
            sentences.append(f"{name[0].upper() + name[1:]}: each run moved {mean_std(d['init_to_final'])} from its initial weights "
                             f"(path length {mean_std(d['path_length'])}); the final weights of two runs are {format_number(d['between_final'])} apart on "
                             f"average, {relation}: {verdict}.")
    return sentences


def _answer(summary: dict) -> str:
    """The first bullet: where the runs' optimization paths lead, from the whole model's distances."""
    d = summary["distances"]["whole"]
    apart = d["between_final"] > 0.5 * d["init_to_final"]["mean"]
    ratio = sum(summary["explained_variance_ratio"]["whole"])
    return (f"What the optimization does: each of the {summary['num_runs']} runs moved {mean_std(d['init_to_final'])} from its "
            f"initial weights and " + ("they end at different points of weight space" if apart else "they end close together")
            + f" ({format_number(d['between_final'])} apart on average, against {format_number(d['between_initial'])} at initialization); "
            f"the 2-D PCA view of the whole model holds {100 * ratio:.1f}% of the snapshots' variance.")


def table(summary: dict) -> tuple[list[str], list[list]]:
    classify = summary["task"]["kind"] == "images"
    columns = ["seed", "final train loss", "final test loss"] + (["train accuracy", "test accuracy"] if classify else []) + ["moved (whole)", "path length (whole)"]
    moved = summary["distances"]["whole"]["init_to_final"]["values"]
    path = summary["distances"]["whole"]["path_length"]["values"]
    rows = []
    for index, r in enumerate(summary["runs"]):
        accuracies = [format_number(r["final_train_accuracy"]), format_number(r["final_test_accuracy"])] if classify else []
        rows.append([r["seed"], format_number(r["final_train_loss"]), format_number(r["final_test_loss"]), *accuracies, format_number(moved[index]), format_number(path[index])])
    return columns, rows
