"""The report's sentences and headline table for random-labels (experiments/random_labels.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says, first bullet first: whether the network fit the random labels (the assignment's question), then
per noise fraction whether it fit, test accuracy against chance, what the final models do with the corrupted
images, and how memorization time grows with the number of training images (size sweep).
"""

from __future__ import annotations

import math

from ...analysis.stats import separated
from ...experiments.random_labels import corruption_word
from ..text import format_number
from ..wording import SIGNIFICANCE, describe_trend, mean_std


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _percent_stats(stats: dict) -> str:
    """A share's mean ± std over seeds in percent with one decimal, like _percent ("10.3 ± 0.4%"; one seed: "10.3%")."""
    if stats["mean"] is None:
        return "n/a"
    if stats["n"] == 1:
        return _percent(stats["mean"])
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}%"


def _range(low, high) -> str:
    """low-high as integers ("43-48"), or the one value when they agree ("43")."""
    low, high = int(low), int(high)
    return str(low) if low == high else f"{low}-{high}"


def _seed_count(count: int, total: int) -> str:
    return f"{count} of {total} seed{'s' if total > 1 else ''}"


def observe(summary: dict, config: dict) -> list[str]:
    word, seeds = corruption_word(summary), summary["seeds"]
    runs = sorted(summary["runs"].values(), key=lambda r: r["label_noise"])
    sentences = [_answer(runs[-1], summary, word, len(seeds)), _seeds_sentence(seeds)]
    sentences += [_fit_sentence(r, summary, word, len(seeds)) for r in runs]
    full = [r for r in runs if r["label_noise"] == 1.0]
    if full:
        sentences.append(_full_noise(full[0], summary, word, len(seeds)))
    if len(runs) > 1:
        sentences.append(_test_accuracy_trend(runs, len(seeds)))
        threshold = _percent(summary["fit_threshold"])
        sentences.append(f"Epochs to reach {threshold} training accuracy by noise fraction (min-max over seeds): "
                         + "; ".join(f"{100 * r['label_noise']:g}%: {_fit_epochs(r['epochs_to_fit'], len(seeds))}" for r in runs) + ".")
        for r in (r for r in runs if 0 < r["label_noise"] < 1):
            sentences.append(_partial_noise(r, summary))
    if "size_sweep" in summary:
        sentences.append(_size_sweep(summary["size_sweep"], summary, word))
    return sentences


def _answer(r: dict, summary: dict, word: str, total: int) -> str:
    """The assignment's question in one sentence, from the most corrupted run."""
    fitted, noise = r["epochs_to_fit"]["n"], f"{100 * r['label_noise']:g}%"
    if fitted == total:
        verdict = "Yes"
        how = f"it reached {_percent(summary['fit_threshold'])} training accuracy in every seed ({_seed_count(fitted, total)})"
    elif fitted:
        verdict = "Partly"
        how = f"it reached {_percent(summary['fit_threshold'])} training accuracy in {_seed_count(fitted, total)}"
    else:
        verdict = "Not within this training"
        how = f"it did not reach {_percent(summary['fit_threshold'])} training accuracy in {summary['epochs']} epochs"
    return (f"{verdict}: with {noise} of the {summary['num_train']} training labels {word}, the MLP ended at {_percent_stats(r['final_train_accuracy'])} training "
            f"accuracy and {_percent_stats(r['final_test_accuracy'])} test accuracy (chance {_percent(summary['chance_accuracy'])}): {how}.")


def _size_sweep(sweep: dict, summary: dict, word: str) -> str:
    """How the epochs to memorize 100% corrupted labels change with the number of training images."""
    total = len(summary["seeds"])
    parts = [f"{size} images: {_fit_epochs(sweep['runs'][str(size)]['epochs_to_fit'], total)}" for size in sweep["sizes"]]
    trend = sweep["spearman_size_vs_epochs_to_fit"]
    text = (f"Epochs to reach {_percent(summary['fit_threshold'])} training accuracy with every label {word}, by training-set size "
            f"(min-max over seeds): {'; '.join(parts)}; size against epochs to fit over the {trend['n']} (size, seed) pairs that fit: "
            f"{describe_trend(trend['rho'], trend['p_value'])}")
    if sweep["not_fitted"]:
        text += f"; {sweep['not_fitted']} pair{'s' if sweep['not_fitted'] > 1 else ''} did not fit within {summary['epochs']} epochs"
    rho, p_value = trend["rho"], trend["p_value"]
    if rho is not None and p_value is not None and p_value < SIGNIFICANCE and rho > 0:
        return text + ": memorization time grows with the number of training images."
    return text + ": from these runs it cannot be said that memorization time grows with the number of images."


def _seeds_sentence(seeds: list) -> str:
    if len(seeds) == 1:
        return (f"Each noise fraction trained one model, seed {seeds[0]} (initial weights, data order and label corruption): "
                "a single run, so no spread across seeds is measured.")
    return (f"Each noise fraction trained {len(seeds)} seeds ({', '.join(map(str, seeds))}), each drawing its own initial "
            "weights, data order and label corruption; numbers are mean ± std over seeds (ddof 0), ranges are min-max.")


def _fit_epochs(stats: dict, total: int) -> str:
    """When the seeds reached the fit threshold: "43-48", "43 (1 of 2 seeds)" or "not reached"."""
    if stats["n"] == 0:
        return "not reached"
    return _range(stats["min"], stats["max"]) + ("" if stats["n"] == total else f" ({_seed_count(stats['n'], total)})")


def _fit_sentence(r: dict, summary: dict, word: str, total: int) -> str:
    """Did the MLP fit these labels, in how many seeds, and where did train and test accuracy end."""
    threshold, epochs, fitted = _percent(summary["fit_threshold"]), summary["epochs"], r["epochs_to_fit"]
    changed = r["max_class_count_change"]["max"]
    counts = "class counts unchanged" if changed == 0 else f"class counts changed by up to {int(changed)} images"
    lead = (f"On {r['label_noise'] * 100:g}% {word} labels ({_percent_stats(r['labels_changed'])} of the {summary['num_train']} "
            f"training labels changed, {counts})")
    ends = (f"{_percent_stats(r['final_train_accuracy'])} after {epochs}; test accuracy ended at "
            f"{_percent_stats(r['final_test_accuracy'])} (chance {_percent(summary['chance_accuracy'])}).")
    if fitted["n"] == 0:
        seeds = f" in any of the {total} seeds" if total > 1 else ""
        return f"{lead} the MLP did not reach {threshold} training accuracy within {epochs} epochs{seeds}: it ended at {ends}"
    return (f"{lead} the MLP reached {threshold} training accuracy after {_range(fitted['min'], fitted['max'])} epochs in "
            f"{_seed_count(fitted['n'], total)} and ended at {ends}")


def _full_noise(r: dict, summary: dict, word: str, total: int) -> str:
    """Test accuracy against chance and the test loss with every label corrupted: memorization or not."""
    gaps = [100 * (a - summary["chance_accuracy"]) for a in r["final_test_accuracy"]["values"]]  # points above chance, per seed
    fitted = r["epochs_to_fit"]["n"]
    if fitted == total:
        verdict = "the network memorized labels that carry no information about the images" + (f" ({_seed_count(fitted, total)})" if total > 1 else "")
    elif fitted:
        verdict = f"the network memorized them in {_seed_count(fitted, total)} within {summary['epochs']} epochs"
    else:
        verdict = f"it had not memorized the labels within {summary['epochs']} epochs"
    return (f"With all labels {word}, final test accuracy is {_side_of_chance(gaps)} and the test loss went from its minimum "
            f"{mean_std(r['min_test_loss'])} to {mean_std(r['final_test_loss'])} (ln {summary['num_classes']} = "
            f"{format_number(math.log(summary['num_classes']))} is the loss of a uniform guess): {verdict}.")


def _side_of_chance(gaps: list) -> str:
    """Where test accuracy sits relative to chance, from each seed's gap in points (|gap| < 0.05: at chance);
    a side is named only when every seed is on it."""
    low, high = min(gaps), max(gaps)
    every = " in every seed" if len(gaps) > 1 else ""
    if max(abs(low), abs(high)) < 0.05:
        return "at chance" + every
    if low >= 0.05 or high <= -0.05:
        near, far = sorted((abs(low), abs(high)))
        amount = format_number(near, 2) if near == far else f"{format_number(near, 2)}-{format_number(far, 2)}"
        return f"{amount} points {'above' if low > 0 else 'below'} chance{every}"
    return (f"within {max(abs(low), abs(high)):.1f} points of chance across seeds "
            f"({round(low, 1) + 0.0:+.1f} to {round(high, 1) + 0.0:+.1f})")


def _test_accuracy_trend(runs: list, total: int) -> str:
    """How the mean final test accuracy moves with the noise fraction, and whether neighbouring seed ranges separate."""
    means = [r["final_test_accuracy"]["mean"] for r in runs]
    trend = "falls monotonically" if all(a >= b for a, b in zip(means, means[1:])) else "changes non-monotonically"
    low, high = runs[0], runs[-1]
    text = (f"Mean final test accuracy {trend} with the noise fraction, from {_percent_stats(low['final_test_accuracy'])} at "
            f"{low['label_noise'] * 100:g}% noise to {_percent_stats(high['final_test_accuracy'])} at {high['label_noise'] * 100:g}%")
    if total == 1:
        return text + " (one seed)."
    apart = sum(separated(a["final_test_accuracy"], b["final_test_accuracy"]) for a, b in zip(runs, runs[1:]))
    return text + f"; the seed ranges of {apart} of {len(runs) - 1} neighbouring pairs of fractions do not overlap."


def _memorization_verdict(true_fit: float, clean_share: float) -> str:
    if abs(true_fit - clean_share) <= 0.02:
        return "it reproduces the corrupted labels, i.e. it memorized them"
    if true_fit > clean_share:
        return "it still predicts the true class for some corrupted images"
    return "it fits fewer than the uncorrupted ones"


def _partial_noise(r: dict, summary: dict) -> str:
    """What the final models do with the corrupted training images, and how test accuracy moved."""
    per_seed = [r["per_seed"][str(seed)] for seed in summary["seeds"]]
    verdicts = [_memorization_verdict(p["final_train_accuracy_true_labels"], 1.0 - p["labels_changed"]) for p in per_seed]
    text = (f"At {100 * r['label_noise']:g}% noise, the final model{'s' if len(per_seed) > 1 else ''} scored against the true training labels get{'' if len(per_seed) > 1 else 's'} "
            f"{_percent_stats(r['final_train_accuracy_true_labels'])}, while {_percent_stats(r['labels_intact'])} of the training labels were left intact: ")
    if len(set(verdicts)) == 1:
        text += verdicts[0] + (f" (all {len(verdicts)} seeds)." if len(verdicts) > 1 else ".")
    else:
        text += "the seeds differ: " + "; ".join(f"seed {seed}: {v}" for seed, v in zip(summary["seeds"], verdicts)) + "."
    dropped = [p for p in per_seed if p["best_test_accuracy"] - p["final_test_accuracy"] > 0.02]
    if dropped:
        peaks = [p["best_test_accuracy_epoch"] for p in dropped]
        text += (f" Test accuracy peaked at {_percent_stats(r['best_test_accuracy'])} (epoch {_range(min(peaks), max(peaks))}) and fell to "
                 f"{_percent_stats(r['final_test_accuracy'])} as the noise was fitted"
                 + (f" (a drop of more than 2 points in {_seed_count(len(dropped), len(per_seed))})." if len(per_seed) > 1 else "."))
    return text


def table(summary: dict) -> tuple[list[str], list[list]]:
    columns = ["label noise", "seeds", "labels changed", "train acc", "test acc", "train loss", "test loss", "epochs to fit"]
    rows = []
    total = len(summary["seeds"])
    for r in sorted(summary["runs"].values(), key=lambda r: r["label_noise"]):
        rows.append([f"{100 * r['label_noise']:g}%", total, _percent_stats(r["labels_changed"]),
                     _percent_stats(r["final_train_accuracy"]), _percent_stats(r["final_test_accuracy"]),
                     mean_std(r["final_train_loss"]), mean_std(r["final_test_loss"]), _fit_epochs(r["epochs_to_fit"], total)])
    return columns, rows
