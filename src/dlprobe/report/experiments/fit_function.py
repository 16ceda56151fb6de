"""The report's sentences and headline table for fit-function (experiments/fit_function.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says: deep vs shallow test MSE per function, epochs to reach an MSE, the stopping rule's outcome, what the
L-BFGS phase did (when it is on) and learning rates at the edge of the searched grid.
"""

from __future__ import annotations

import math

from ..text import format_number
from ..wording import below_minimum, compare_lower_is_better, mean_std, ranking

MIN_DEPTHS, MIN_FUNCTIONS = 3, 2  # the assignment's minimum: shallow/middle/deep models on 2+ functions


def observe(summary: dict, config: dict) -> list[str]:
    if summary.get("user_models"):  # --model: the user's models, compared by name
        return _user_sentences(summary)
    depths = {m["depth"] for function in summary["functions"].values() for m in function["models"].values()}
    sentences = below_minimum("depths", len(depths), MIN_DEPTHS) + below_minimum("target functions", len(summary["functions"]), MIN_FUNCTIONS)
    for name, function in summary["functions"].items():
        models = sorted(function["models"].values(), key=lambda m: m["depth"])
        shallow, deep = models[0], models[-1]
        lead = f"{function['formula']}: "
        polish = summary.get("polish")
        sentences.append(lead + compare_lower_is_better(
            f"{deep['depth']}-layer model", deep["final_test_mse"], f"{shallow['depth']}-layer model", shallow["final_test_mse"], "final test MSE")
            + (_unfinished_polish_clause(models, polish) if polish else _unfinished_clause(models, summary["stopping_rule"])))
        if len(models) > 2:
            sentences.append(lead + ranking([(_layers(m["depth"]), m["final_test_mse"]) for m in models], "final test MSE"))
        for threshold in ("0.01", "0.001"):
            reached = [(m["depth"], m["epochs_to_mse"].get(threshold)) for m in models]
            parts = [f"{_layers(d)}: {format_number(r['mean'])} epochs ({r['reached']}/{r['of']} seeds)" if r else f"{_layers(d)}: not reached" for d, r in reached]
            phase = "Adam epochs (before L-BFGS)" if polish else "epochs"
            sentences.append(lead + f"{phase} to reach training MSE {threshold}: " + "; ".join(parts) + ".")
        sentences.append(lead + _stopping_sentence(models, summary["stopping_rule"], "Adam's " if polish else ""))
        if polish:
            sentences.append(lead + _polish_sentence(models, polish, summary["stopping_rule"]))
        sentences.extend(lead + sentence for sentence in _grid_edge_sentences(models))
    return sentences


def _unfinished_clause(models: list[dict], rule: dict) -> str:
    """" This compares unfinished training: ..." when some seed run trained to the max_epochs cap while its best train
    MSE still fell by more than the stopping rule's rel_improvement over the last final_window epochs; "" otherwise
    (and for summaries written before final_window_drop was recorded)."""
    still = [(m["depth"], drop) for m in models if "final_window_drop" in m
             for done, status, drop in zip(m["converged"], m["status"], m["final_window_drop"])
             if not done and status == "ok" and drop is not None and drop > rule["rel_improvement"]]
    if not still:
        return ""
    runs = sum(len(m["converged"]) for m in models)
    depths = sorted({depth for depth, _ in still})
    low, high = min(d for _, d in still) * 100, max(d for _, d in still) * 100
    fell = f"{low:.2g}%" if f"{low:.2g}" == f"{high:.2g}" else f"{low:.2g}-{high:.2g}%"
    return (f" This compares unfinished training: {len(still)} of {runs} seed run{'' if runs == 1 else 's'} ({', '.join(_layers(d) for d in depths)}) reached the "
            f"max_epochs cap of {rule['max_epochs']} while their best train MSE was still falling ({fell} over their last "
            f"{models[0]['final_window']} epochs).")


def _unfinished_polish_clause(models: list[dict], polish: dict) -> str:
    """" This compares unfinished training: ..." when some seed run reached the L-BFGS cap before L-BFGS's stopping
    test fired (lbfgs_polish); "" when every run converged or diverged."""
    capped = [m["depth"] for m in models
              for done, status, lost in zip(m["converged"], m["status"], m["polish"]["diverged"])
              if not done and status == "ok" and not lost]
    if not capped:
        return ""
    runs = sum(len(m["converged"]) for m in models)
    return (f" This compares unfinished training: {len(capped)} of {runs} seed run{'' if runs == 1 else 's'} "
            f"({', '.join(_layers(d) for d in sorted(set(capped)))}) reached the cap of {polish['max_iterations']} L-BFGS iterations "
            "before its stopping test fired.")


def _polish_sentence(models: list[dict], polish: dict, rule: dict) -> str:
    """What the L-BFGS phase did: runs converged vs capped, and the train MSE before and after it per model."""
    runs = [(done, status, lost) for m in models
            for done, status, lost in zip(m["polish"]["converged"], m["status"], m["polish"]["diverged"])]
    converged = sum(done and status == "ok" for done, status, _ in runs)
    before_nan = sum(status != "ok" for _, status, _ in runs)
    during_nan = sum(status == "ok" and lost for _, status, lost in runs)
    capped = len(runs) - converged - before_nan - during_nan
    failed = (f"; {before_nan} diverged under Adam (left out)" if before_nan else "") + (f"; {during_nan} diverged in it" if during_nan else "")
    per_depth = "; ".join(f"{_layers(m['depth'])} {_before_after(m)} ({sum(m['converged'])}/{len(m['converged'])} converged)" for m in models)
    return (f"then L-BFGS from each Adam end point (full batch, float64, up to {polish['max_iterations']} iterations, restarted while a "
            f"run of it still lowered the train MSE by more than {rule['rel_improvement'] * 100:g}%): {converged} of {_runs(len(runs))} "
            f"converged, {capped} reached the cap{failed}; mean train MSE before and after (over the seeds with both): {per_depth}.")


def _before_after(model: dict) -> str:
    """"a to b": mean train MSE after Adam and after L-BFGS over the seeds where both are finite ("-" when none)."""
    pairs = [(a, b) for a, b in zip(model["polish"]["adam_train_mse"].get("values", []), model["final_train_mse"].get("values", []))
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if not pairs:
        return "-"
    return f"{format_number(sum(a for a, _ in pairs) / len(pairs))} to {format_number(sum(b for _, b in pairs) / len(pairs))}"


def _runs(count: int) -> str:
    return f"{count} model x seed run{'' if count == 1 else 's'}"


def _stopping_sentence(models: list[dict], rule: dict, whose: str = "") -> str:
    """How many model x seed runs the Adam plateau rule ended vs how many trained to the max_epochs cap; `whose`
    ("Adam's ") names the rule when a second phase follows."""
    runs = [(done, status != "ok", epoch) for m in models
            for done, status, epoch in zip(m.get("adam_converged", m["converged"]), m["status"], m["converged_at_epoch"])]
    converged = [epoch for done, _, epoch in runs if done]
    diverged = sum(failed for _, failed, _ in runs)
    capped = len(runs) - len(converged) - diverged
    failed = f"; {diverged} diverged" if diverged else ""
    if not rule["patience"]:
        return (f"{whose or 'the '}stopping rule is off (patience 0): {capped} of {_runs(len(runs))} trained to the max_epochs cap of "
                f"{rule['max_epochs']}{failed}.")
    when = "" if not converged else f" (at epoch {converged[0]})" if len(converged) == 1 else f" (at epochs {min(converged)}-{max(converged)})"
    per_depth = ", ".join(f"{_layers(m['depth'])} {sum(m.get('adam_converged', m['converged']))}/{len(m['converged'])}" for m in models)
    full = sum(m["epochs_trained"] == rule["max_epochs"] for m in models)
    decays = ""
    if rule.get("max_lr_decays"):
        decayed = [len(epochs) for m in models for epochs in m.get("lr_decay_epochs", [])]
        decays = (f"; at each plateau the learning rate was multiplied by {format_number(rule['lr_decay'])}, up to "
                  f"{rule['max_lr_decays']} time{'s' if rule['max_lr_decays'] > 1 else ''}, and only a plateau at the last rate counts as converged "
                  f"({sum(decayed)} decays in all, {sum(d == rule['max_lr_decays'] for d in decayed)} of {len(decayed)} runs used all)")
    return (f"{whose}stopping rule (train MSE improved by less than {rule['rel_improvement'] * 100:g}% over {rule['patience']} epochs{decays}): "
            f"{len(converged)} of {_runs(len(runs))} converged{when}, {capped} hit the max_epochs cap of {rule['max_epochs']}"
            f"{failed} (converged per model: {per_depth}); {full} of {len(models)} models trained all {rule['max_epochs']} epochs "
            "(a model's seeds train together until all have converged).")


def _grid_edge_sentences(models: list[dict]) -> list[str]:
    """A sentence per grid edge that some model's chosen learning rate sits on."""
    sentences = []
    for edge in ("lowest", "highest", "only"):
        at_edge = [m for m in models if m["lr_grid_edge"] == edge]
        if not at_edge:
            continue
        names = ", ".join(f"{_layers(m['depth'])} (lr {format_number(m['learning_rate'])})" for m in at_edge)
        where = "the only rate searched" if edge == "only" else f"the {edge} rate of the searched grid"
        widened = " even after widening it (the `widen_grid` field)" if any(m.get("lr_grid_widened") for m in at_edge) else ""
        sentences.append(f"the chosen learning rate is {where}{widened} for {names}; a wider grid (the `learning_rates` field) may find a better rate.")
    added = [m for m in models if m.get("lr_grid_widened")]
    if added:
        sentences.append("the learning-rate grid was widened beyond its winning end for "
                         + ", ".join(f"{_layers(m['depth'])} (added {', '.join(format_number(r) for r in m['lr_grid_widened'])}; chose "
                                     f"{format_number(m['learning_rate'])})" for m in added) + ".")
    return sentences


def _user_sentences(summary: dict) -> list[str]:
    """Whether the user's models are at one parameter count (said plainly when not), then first vs last model per function."""
    from .fit_task import same_count_sentence

    sentences = []
    for function in summary["functions"].values():
        models = sorted(function["models"].values(), key=lambda m: m["depth"])
        first, last = models[0], models[-1]
        named = [{**m, "family": "user", "architecture": m["model"]} for m in models]
        sentences.append(f"{function['formula']}: " + same_count_sentence(named, summary["same_parameter_count"]))
        if len(models) > 1:
            sentences.append(f"{function['formula']}: " + compare_lower_is_better(last["model"], last["final_test_mse"], first["model"],
                                                                                 first["final_test_mse"], "final test MSE"))
    return sentences


def _layers(depth: int) -> str:
    return f"{depth} layer" if depth == 1 else f"{depth} layers"


def table(summary: dict) -> tuple[list[str], list[list]]:
    polish = bool(summary.get("polish"))
    columns = (["function", "hidden layers", "widths", "parameters", "learning rate"] + (["train MSE after Adam"] if polish else [])
               + ["train MSE", "test MSE", "epochs"] + (["L-BFGS iterations", "converged"] if polish else []))
    rows = []
    for function in summary["functions"].values():
        for m in sorted(function["models"].values(), key=lambda m: m["depth"]):
            before = [mean_std(m["polish"]["adam_train_mse"])] if polish else []
            after = ([f"{min(m['polish']['iterations'])}-{max(m['polish']['iterations'])}", f"{sum(m['converged'])}/{len(m['converged'])}"]
                     if polish else [])
            rows.append([function["formula"], m["depth"], "-".join(map(str, m["widths"])) or m.get("model", ""), m["num_params"],
                         format_number(m["learning_rate"]), *before,
                         mean_std(m["final_train_mse"]), mean_std(m["final_test_mse"]), m["epochs_trained"], *after])
    return columns, rows
