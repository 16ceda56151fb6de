"""The report's sentences and headline table for sensitivity (experiments/sensitivity.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says, first bullet first: whether sensitivity moved with generalization as the setting varied (the
assignment's question: the two trends, and whether they agree), then each quantity's rank-correlation trend with
the varied setting (summary.json's spearman), and the step budget behind a batch-size trend.
"""

from __future__ import annotations

from ...experiments.sensitivity import METRICS, QUANTITIES
from ..text import format_number
from ..wording import below_minimum, describe_trend, mean_std, trend_direction

MIN_SETTINGS = 5  # the assignment's minimum: 5+ models trained at different batch sizes
NAMES = {"input_gradient_sensitivity": "sensitivity (assignment: mean ‖∂loss/∂x‖)",
         "jacobian_sensitivity": "Jacobian sensitivity (Novak et al. 2018)", "sharpness": "ε-sharpness (Keskar et al. 2017)",
         "hessian_top_eigenvalue": "top Hessian eigenvalue λ_max of the training loss",
         "loss_gap": "test − train loss gap", "test_loss": "test loss", "test_accuracy": "test accuracy"}


def observe(summary: dict, config: dict) -> list[str]:
    varied = summary["vary"].replace("_", " ")
    models = summary["models"]
    sentences = [answer(summary)] + below_minimum(f"{varied} settings", len(models), MIN_SETTINGS)
    for quantity in QUANTITIES:
        trend = summary["spearman"][quantity]
        ends = f"{models[0][summary['vary']]:g}: {mean_std(models[0][quantity])} → {models[-1][summary['vary']]:g}: {mean_std(models[-1][quantity])}"
        sentences.append(f"{NAMES[quantity]} vs {varied}: {describe_trend(trend['rho'], trend['p_value'])} over {trend['n']} runs ({ends}).")
    if summary["vary"] == "batch_size":
        steps = ", ".join(f"batch {m['batch_size']}: {m['steps']}" for m in models)
        sentences.append(f"Every model trained {summary['epochs']} epochs, so the optimizer steps differ ({steps}); "
                         "trends with batch size include this difference in training length.")
    if len(summary["seeds"]) < 2:
        sentences.append("One seed per setting: the rank correlations rest on one run each and carry no seed spread.")
    return sentences


def answer(summary: dict) -> str:
    """One sentence: did sensitivity move with generalization (test accuracy) as the setting varied?"""
    vary, models = summary["vary"], summary["models"]
    span = f"{models[0][vary]:g} to {models[-1][vary]:g}"
    sensitivity, accuracy = summary["spearman"]["input_gradient_sensitivity"], summary["spearman"]["test_accuracy"]
    words = {1: "rises", -1: "falls", 0: "shows no significant trend"}
    s, a = trend_direction(sensitivity["rho"], sensitivity["p_value"]), trend_direction(accuracy["rho"], accuracy["p_value"])
    if s and a:
        verdict = ("the more sensitive models generalize worse, the direction Novak et al. (2018) report" if s != a else
                   "the more sensitive models generalize better, the opposite of the direction Novak et al. (2018) report")
    else:
        verdict = "this run does not show sensitivity tracking generalization"
    rho = lambda t: "ρ n/a" if t["rho"] is None else f"ρ = {t['rho']:+.2f}, p = {format_number(t['p_value'], 2)}"
    return (f"As the {vary.replace('_', ' ')} goes from {span}, sensitivity {words[s]} ({rho(sensitivity)}) and test accuracy "
            f"{words[a]} ({rho(accuracy)}) over {sensitivity['n']} runs; {verdict}.")


def table(summary: dict) -> tuple[list[str], list[list]]:
    columns = ["batch size", "learning rate", "steps", "train loss", "test loss", "train acc", "test acc",
               "sensitivity (assignment)", "Jacobian (Novak)", "ε-sharpness %", "Hessian λ_max"]
    rows = [[m["batch_size"], format_number(m["learning_rate"]), m["steps"], *(mean_std(m[name]) for name in METRICS),
             mean_std(m["input_gradient_sensitivity"]), mean_std(m["jacobian_sensitivity"]), mean_std(m["sharpness"]),
             mean_std(m["hessian_top_eigenvalue"])]
            for m in summary["models"]]
    return columns, rows
