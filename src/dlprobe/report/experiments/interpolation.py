"""The report's sentences and headline table for interpolation (experiments/interpolation.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says, first bullet first: per pair, whether the straight line between the two trained models crosses a
loss barrier and which endpoint is flatter along it (the assignment's question, in one sentence), then the two
models after training, the barrier between them and the flatness beyond each endpoint in detail.
"""

from __future__ import annotations

from ...analysis.stats import separated
from ...experiments.interpolation import FLATNESS_RATIO, METRICS, SPLITS
from ..text import format_number
from ..wording import mean_std


def observe(summary: dict, config: dict) -> list[str]:
    sentences = [answer(summary)] if summary["pairs"] else []
    for pair in summary["pairs"].values():
        lead = f"{pair['m1']['label']} vs {pair['m2']['label']}: "
        sentences += [lead + _after_training(pair), lead + _barrier(pair)]
        sentences += [lead + _flatness(pair, split) for split in SPLITS]
    seeds = summary["seeds"]
    if summary["pairs"] and len(seeds) == 1:
        sentences.append(f"Each pair is one training run per model (seed {seeds[0]}); flatness along a single line is "
                         "one direction in parameter space, not a full curvature measurement.")
    elif summary["pairs"]:
        sentences.append(f"Each pair was trained with {len(seeds)} seeds ({', '.join(map(str, seeds))}; numbers are mean ± std "
                         "over them); flatness along a single line is one direction in parameter space, not a full curvature measurement.")
    return sentences


def answer(summary: dict) -> str:
    """One sentence: per pair, a barrier on the segment or not, and the training-loss flatness verdict."""
    parts = []
    for pair in summary["pairs"].values():
        found, n = _barrier_seeds(pair), len(pair["per_seed"])
        of = f" in {found} of {n} seeds" if n > 1 else ""
        if found:
            barrier = f"a loss barrier{of} (train {mean_std(pair['stats']['barrier']['train'])} above the worse endpoint)"
        else:
            barrier = "no loss barrier" + (f" in any of the {n} seeds" if n > 1 else "")
        verdicts = pair["stats"]["flatness"]["train"]["flatter"]
        if len(set(verdicts)) > 1:
            flat = "a flatness verdict that differs between seeds"
        elif verdicts[0] in ("m1", "m2"):
            flat = f"{pair[verdicts[0]]['label']} flatter along the line" + (" in each seed" if n > 1 else "")
        elif verdicts[0] == "similar":
            flat = "no clear flatness difference"
        else:
            flat = "flatness not measurable (the loss falls beyond an endpoint)"
        parts.append(f"{pair['m1']['label']} vs {pair['m2']['label']}: {barrier}, {flat}")
    return "On the straight line between the two trained models, " + "; ".join(parts) + " (training loss)."


def _barrier_seeds(pair: dict) -> int:
    """Seeds whose barrier exceeds 1e-3 of the worse endpoint's training loss (the barrier that counts)."""
    return sum(max(run["barrier"].values()) > 1e-3 * max(run["endpoints"]["train"]["loss_at_0"], run["endpoints"]["train"]["loss_at_1"])
               for run in pair["per_seed"])


def _after_training(pair: dict) -> str:
    m1, m2 = pair["stats"]["m1"], pair["stats"]["m2"]
    overlap = ""
    if m1["test_accuracy"]["n"] > 1:
        overlap = f" (seed ranges {'do not overlap' if separated(m1['test_accuracy'], m2['test_accuracy']) else 'overlap'})"
    return (f"after training, test accuracy {mean_std(m1['test_accuracy'])} vs {mean_std(m2['test_accuracy'])}{overlap}, "
            f"train loss {mean_std(m1['train_loss'])} vs {mean_std(m2['train_loss'])}, test loss {mean_std(m1['test_loss'])} "
            f"vs {mean_std(m2['test_loss'])}; the models are {mean_std(pair['stats']['parameter_distance'])} apart in parameter space.")


def _barrier(pair: dict) -> str:
    """A barrier counts in a seed when it exceeds 1e-3 of the worse endpoint's training loss."""
    per_seed, stats = pair["per_seed"], pair["stats"]
    found, n = _barrier_seeds(pair), len(per_seed)
    if found == 0:
        seeds = f" in any of the {n} seeds" if n > 1 else ""
        return f"no loss barrier between them{seeds}: on [0, 1] the loss never exceeds the worse endpoint."
    seeds = f" in {found} of {n} seeds" if n > 1 else ""
    return (f"loss barrier on the segment (max loss on [0, 1] minus the worse endpoint){seeds}: train "
            f"{mean_std(stats['barrier']['train'])}, test {mean_std(stats['barrier']['test'])}; loss at α = 0.5: train "
            f"{mean_std(stats['midpoint']['train']['loss'])}, test {mean_std(stats['midpoint']['test']['loss'])}.")


def _flatness(pair: dict, split: str) -> str:
    """The rises beyond both endpoints and the flatter-side verdict; a side is called flatter only when it is in every seed."""
    stats = pair["stats"]["flatness"][split]
    d = pair["per_seed"][0]["flatness"]["distance"]
    rise = (f"moving {format_number(d)}·‖θ₂−θ₁‖ beyond each endpoint, the {split} loss {_change(stats['rise_beyond_m1'])} beyond m1 "
            f"(α = {format_number(-d)}) and {_change(stats['rise_beyond_m2'])} beyond m2 (α = {format_number(1 + d)})")
    verdicts = stats["flatter"]
    n = len(verdicts)
    if len(set(verdicts)) > 1:
        counts = ", ".join(f"{_verdict_words(pair, v)} in {verdicts.count(v)} of {n} seeds" for v in dict.fromkeys(verdicts))
        return rise + f": the verdict differs between seeds ({counts}), so no flatness difference is called clear."
    verdict, every = verdicts[0], f" in each of the {n} seeds" if n > 1 else ""
    numbers = [run["flatness"][split] for run in pair["per_seed"]]
    if verdict in ("m1", "m2"):
        ratios = [max(r["rise_beyond_m1"], r["rise_beyond_m2"]) / min(r["rise_beyond_m1"], r["rise_beyond_m2"]) for r in numbers]
        ratio = format_number(ratios[0], 2) if n == 1 else f"{format_number(min(ratios), 2)} to {format_number(max(ratios), 2)}"
        return rise + f": {pair[verdict]['label']} is flatter along this line{every} (the other's rise is {ratio}× larger)."
    if verdict == "similar":
        return rise + f": no clear flatness difference{every} (the rises are within {FLATNESS_RATIO}× of each other)."
    falling = " and ".join(name + (f" in {k} of {n} seeds" if n > 1 else "") for name in ("m1", "m2")
                           if (k := sum(r[f"rise_beyond_{name}"] <= 0 for r in numbers)))
    return rise + (f": the loss falls beyond {falling}, which is therefore no minimum along this line (e.g. not trained "
                   "to convergence), so flatness is not measurable here.")


def _verdict_words(pair: dict, verdict: str) -> str:
    if verdict in ("m1", "m2"):
        return f"{pair[verdict]['label']} flatter"
    return "similar rises" if verdict == "similar" else "not measurable (the loss falls beyond an endpoint)"


def _change(stats: dict) -> str:
    """'rises by' / 'falls by' the seeds' mean ± std of a loss change; 'changes by' when its sign differs between seeds."""
    if stats["mean"] is None:
        return "is not finite in any seed"
    if stats["min"] >= 0:
        return f"rises by {mean_std(stats)}"
    if stats["max"] < 0:
        return f"falls by {mean_std({**stats, 'mean': -stats['mean']})}"
    falls = sum(value < 0 for value in stats["values"])
    return f"changes by {mean_std(stats)} (falls in {falls} of {stats['n']} seeds)"


def table(summary: dict) -> tuple[list[str], list[list]]:
    columns = ["pair", "model", "batch size", "learning rate", "train loss", "test loss", "train acc", "test acc",
               "barrier (train / test)", "rise beyond endpoint (train / test)"]
    rows = []
    for pair in summary["pairs"].values():
        stats = pair["stats"]
        for name in ("m1", "m2"):
            m = pair[name]
            rows.append([pair["varied"].replace("_", " "), m["label"], m["batch_size"], format_number(m["learning_rate"]),
                         *(mean_std(stats[name][metric]) for metric in METRICS),
                         f"{mean_std(stats['barrier']['train'])} / {mean_std(stats['barrier']['test'])}",
                         " / ".join(mean_std(stats["flatness"][s][f"rise_beyond_{name}"]) for s in SPLITS)])
    return columns, rows
