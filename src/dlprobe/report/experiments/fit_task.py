"""The report's sentences and headline table for fit-task (experiments/fit_task.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says: deep vs shallow CNNs and DNNs per dataset (test error, test and training loss), the accuracy
ranking and the widest train-test gap.
"""

from __future__ import annotations

from ..text import format_number
from ..wording import compare_lower_is_better, mean_std, ranking


def _name(model: dict) -> str:
    if model["family"] == "user":
        return model["architecture"]
    unit = "conv-block CNN" if model["family"] == "cnn" else "hidden-layer DNN"
    return f"{model['depth']}-{unit}"


def observe(summary: dict, config: dict) -> list[str]:
    sentences = []
    if len(summary.get("seeds", [])) == 1:
        sentences.append("Every model was trained with one seed, so no spread is available: each comparison below is "
                         "between single runs and cannot be called clear.")
    for name, dataset in summary["datasets"].items():
        lead = f"{name}: "
        models = list(dataset["models"].values())
        if "same_parameter_count" in dataset:  # --model: the user's own models
            sentences.append(lead + same_count_sentence(models, dataset["same_parameter_count"]))
        for family in ("cnn", "dnn"):
            members = sorted((m for m in models if m["family"] == family), key=lambda m: m["depth"])
            if len(members) < 2:
                continue
            shallow, deep = members[0], members[-1]
            counts = f" (exact parameter counts: {_name(deep)} {deep['num_params']:,}, {_name(shallow)} {shallow['num_params']:,})"
            sentences.append(lead + compare_lower_is_better(
                _name(deep), deep["final_test_error"], _name(shallow), shallow["final_test_error"],
                "final test error (1 − accuracy)").rstrip(".") + counts + ".")
            sentences.append(lead + compare_lower_is_better(
                _name(deep), deep["final_test_loss"], _name(shallow), shallow["final_test_loss"], "final test loss"))
            sentences.append(lead + compare_lower_is_better(
                _name(deep), deep["final_train_loss"], _name(shallow), shallow["final_train_loss"], "final training loss"))
        ranked = sorted((m for m in models if m["final_test_accuracy"]["mean"] is not None),
                        key=lambda m: -m["final_test_accuracy"]["mean"])
        if ranked:
            sentences.append(lead + ranking([(_name(m), m["final_test_accuracy"]) for m in ranked], "final test accuracy",
                                            lower_is_better=False, scale=100, unit="%"))
            gaps = [(m["final_train_accuracy"]["mean"] - m["final_test_accuracy"]["mean"], m) for m in ranked
                    if m["final_train_accuracy"]["mean"] is not None]
            gap, widest = max(gaps, key=lambda g: g[0])
            sentences.append(lead + f"the widest train-test accuracy gap is the {_name(widest)}'s: "
                             f"{format_number(100 * widest['final_train_accuracy']['mean'])}% train vs "
                             f"{format_number(100 * widest['final_test_accuracy']['mean'])}% test ({format_number(100 * gap)} points).")
        best = {f: max((m for m in ranked if m["family"] == f), key=lambda m: m["final_test_accuracy"]["mean"], default=None) for f in ("cnn", "dnn")}
        if best["cnn"] and best["dnn"] and summary.get("cnn_budget") == summary.get("dnn_budget"):
            sentences.append(lead + "at the same budget, the CNN and the DNN with the highest mean test accuracy: " + compare_lower_is_better(
                _name(best["cnn"]), best["cnn"]["final_test_error"],
                _name(best["dnn"]), best["dnn"]["final_test_error"], "final test error (1 − accuracy)"))
    return sentences


def same_count_sentence(models: list[dict], same: dict) -> str:
    """Whether the user's models compare at one parameter count (within 1%), said plainly when they do not."""
    counts = ", ".join(f"{_name(m)} {m['num_params']:,}" for m in models)
    spread = format_number(100 * same["relative_spread"])
    if same["within_1_percent"]:
        return (f"your models' exact parameter counts ({counts}) are within 1% of each other ({spread}% apart): "
                "a comparison at the same budget.")
    return (f"your models' exact parameter counts ({counts}) are NOT within 1% of each other ({spread}% apart): differences below "
            "mix the architecture with the number of parameters; this is not a comparison at the same budget.")


def table(summary: dict) -> tuple[list[str], list[list]]:
    columns = ["dataset", "model", "architecture", "parameters", "train loss", "test loss", "train accuracy", "test accuracy", "epochs"]
    rows = []
    for name, dataset in summary["datasets"].items():
        for model_name, m in sorted(dataset["models"].items(), key=lambda item: (item[1]["family"], item[1]["depth"])):
            rows.append([name, model_name, m["architecture"], m["num_params"], mean_std(m["final_train_loss"]), mean_std(m["final_test_loss"]),
                         mean_std(m["final_train_accuracy"]), mean_std(m["final_test_accuracy"]), m["epochs"]])
    return columns, rows
