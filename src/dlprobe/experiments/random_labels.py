"""1-3 Generalization, can a network fit random labels? Train an MLP on images whose labels are random.

    dlprobe run random-labels --profile quick          # 0/50/100% noise, 2 seeds, 70 epochs: ~55 s on a 2-core CPU
    dlprobe run random-labels --profile full           # 0/50/100% noise, 3 seeds, 3x1024, 300 cosine epochs on MNIST's 60,000
    dlprobe run random-labels --profile full --dataset fashion-mnist --label-noise 1 --seeds 1   # the 60k check below
    dlprobe run random-labels --seeds 5                # 5 seeds per noise level
    dlprobe run random-labels --label-noise 0,0.5,1 --dataset mnist
    dlprobe run random-labels --label-mode random      # uniformly random classes instead of shuffled labels

A fraction `label_noise` of the training images, chosen at random, has its labels corrupted. label_mode
"shuffle" (the default, as the assignment asks) permutes the labels among the chosen images, so the class
counts stay exactly the same; "random" replaces them by uniformly random classes (Zhang et al. 2017),
which lets the class counts drift. Either way a label can land back on its own class, so 100% noise
changes about 90% of ten-class labels (labels_changed records the share). Test labels are never touched,
so test accuracy measures what transfers from the training set: with 100% noise nothing can, and test
accuracy should sit at chance while training accuracy climbs to ~100% (memorization). Each noise level
trains one model per seed in `seeds` (3x256 ReLU MLP, Adam 1e-3, minibatches, the assignment's setting) with
the plain loop, one checkpointed trial per (noise level, seed) so an interrupted run resumes. A seed draws the
initial weights, the data order and which labels are corrupted how; all noise levels of one seed share its
initial weights and data order. The training/test subsets are fixed (they do not depend on any seed); `seed`
is only the base of `--seeds N` (seeds S, S+1, ...). Reports give the mean ± std (ddof 0) and the min-max
range over seeds.

Measured on mnist-5k (4000 training images) with the default MLP (3x256, constant Adam 1e-3, batch 128), seed
0, label_mode random: with 100% noise training accuracy passes 99% after 48-50 epochs (the exact epoch depends
on the torch thread count, which changes float rounding) and is 100% after 200 epochs, while test accuracy
ends at 9.8% (chance 10%); 20-80% noise fit in 32-50 epochs, clean labels in 9. The quick profile's 70 epochs
already memorize.
With label_mode shuffle (the default), quick profile (70 epochs, seeds 0 and 1): 100% noise changes 90.2% and
90.5% of the labels with every class count unchanged; training accuracy passes 99% after 43 epochs in both
seeds and ends at 99.7% and 99.4%, test accuracy at 10.3% and 10.0%; 50% noise fits in 49 epochs (both), clean
labels in 9 and 7.

The full profile at 60,000 images. Memorization time grows faster than the training set: the same 3x256 MLP
that fits 4000 shuffled labels in ~45 epochs reached 36.2 ± 1.0% training accuracy on 60,000 shuffled Fashion-MNIST
images in the quick profile's 70 epochs, and a 2x1024 MLP at constant Adam 1e-3,
batch 128, reached only 55.5% training accuracy after 200 epochs on 100% shuffled Fashion-MNIST (60,000 images,
11.7 s per epoch). What the full profile uses instead, and why (pilots on 12,000
shuffled Fashion-MNIST images, 100% noise, 150 s each, then two 60,000-image runs): batch 512, because batches
of 128, 256 and 512 gained about the same training accuracy per epoch (95-96% after ~50 epochs) and the larger
batch is the cheaper epoch (2x1024, one training epoch over 60,000 images with 2 threads: 3.2 s at batch 128,
2.4 s at 512); a cosine schedule from Adam 1e-3, because at a constant rate memorized pilot models fell back by
up to 32 points within an epoch (99.99% -> 67.8%) and the decaying rate settles the last percent; 3x1024 (2.91M
parameters, ~49 per image), because at 60,000 images it memorized faster per epoch than 2x1024 at its best
pilot rate 2e-3 (53% after 40 epochs against 34% after 70, both cosine over 300 epochs; 1x4096 had already been
slower than 2x1024 on the pilot). Measured with that design on
the full Fashion-MNIST (60,000 training images, 10,000 test; `--dataset fashion-mnist --label-noise 1 --seeds 1`,
otherwise the full settings), 100% shuffled labels, seed 0: training accuracy 15% after 20 epochs, 55% after 40,
90% after 80, 98.8% after 140, first >= 99% at epoch 150 and 99.9% at epoch 300 (train loss 0.0056), while test
accuracy stayed within 9.4-10.9% from epoch 50 on and ended at 10.0% (chance 10%; 3.4-18.8% in the first 20
epochs); scored against their
true labels the final model gets 10.1% of the training images right (about the share the shuffle left intact). It
took 79 minutes with 1 thread on a 2-core CPU shared with other jobs (15.8 s per epoch, evaluations of all
70,000 images every epoch included; 3.7 s per epoch of training steps alone with 2 threads on an idle machine, timed on random inputs) and a peak of
0.99 GB resident memory (measured on a 4-epoch run of the same settings; nothing grows with the epochs). The full profile's 9 runs therefore take 3 hours or more on such a CPU (not measured on a GPU).

summary.json: dataset, dataset_note, num_train, num_test, num_classes, chance_accuracy (1/num_classes),
majority_test_accuracy (share of the most common test class), model {widths, activation, num_params},
optimizer, learning_rate, lr_schedule, batch_size, epochs, fit_threshold, seeds, label_mode, and runs.<fraction> (fraction
as "%g", e.g. "0.2") = {label_noise, status ("ok", else "seed S: <status>; ..."), per_seed.<seed> (seed as a
string) = one model's {label_noise, labels_changed (share of training labels that differ from the true ones),
max_class_count_change (largest change, in images, of any class's training count; 0 when shuffled), status,
final_train_loss, final_train_accuracy, final_test_loss, final_test_accuracy, best_test_accuracy,
best_test_accuracy_epoch, min_test_loss, final_train_accuracy_true_labels (the training images scored against
their true labels), epochs_to_fit (first evaluated epoch with training accuracy >= fit_threshold, null if
never), test_accuracy_at_fit (null if never)}, and seed stats {mean, std, min, max, values, n} over the seeds
(in `seeds` order) of labels_changed, max_class_count_change, final_train_loss, final_train_accuracy,
final_test_loss, final_test_accuracy, best_test_accuracy, min_test_loss, final_train_accuracy_true_labels,
labels_intact (1 - labels_changed: share of training labels left at their true class) and epochs_to_fit (its
stats over the seeds that reached the threshold, n of them; values keeps null for the others)}.
With size_sweep: size_sweep = {sizes (ascending, the main run's num_train included when label_noise has 1.0),
runs.<size> = {num_train, and the same entry as runs.<fraction> at 100% noise}, spearman_size_vs_epochs_to_fit
{rho, p_value, n: over the (size, seed) pairs that fit}, not_fitted (pairs that did not fit within `epochs`)}.
metrics.csv: one run per (fraction, seed), named "label_noise=<fraction>/seed<seed>", and per (size, seed) of the
size sweep, "size=<size>/seed<seed>".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..analysis.stats import first_step_below, rank_correlation, seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import (activation_field, batch_size_field, dataset_field, epochs_field, eval_every_field,
                             learning_rate_field, model_field, seeds_field, test_size_field, train_size_field, widths_field)
from ..data.images import load_dataset
from ..data.labels import LABEL_MODES, corrupt_labels
from ..data.tensors import TensorData
from ..errors import ConfigError
from ..models.mlp import MLPSpec, build_mlp
from ..plotting.generalization import plot_epochs_to_fit, plot_final_vs_noise, plot_split_curves
from ..plotting.style import close, new_axes
from ..training.common import OptimizerSettings
from ..training.loop import LR_SCHEDULES, TrainSpec, evaluate, train
from .base import Experiment
from .model_choice import TRAINING_PATHS, check_one_model, single_user_model, train_seeded, user_details, user_or_builtin

METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
# runs.<fraction> keys with seed stats over the seeds (epochs_to_fit has its own, None-aware ones)
SEED_STATS = ("labels_changed", "max_class_count_change", "final_train_loss", "final_train_accuracy", "final_test_loss",
              "final_test_accuracy", "best_test_accuracy", "min_test_loss", "final_train_accuracy_true_labels")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    dataset: str = dataset_field("mnist-5k")
    train_size: int | None = train_size_field()
    test_size: int | None = test_size_field()
    label_noise: tuple[float, ...] = param((1.0,), "fractions of training labels corrupted as label_mode says (several: a sweep)", minimum=0.0, maximum=1.0)
    label_mode: str = param("shuffle", "shuffle: permute the chosen labels (class counts kept); random: uniformly random classes", choices=LABEL_MODES)
    widths: tuple[int, ...] = widths_field((256, 256, 256))
    activation: str = activation_field("relu")
    learning_rate: float = learning_rate_field(1e-3)
    lr_schedule: str = param("constant", "learning-rate schedule over the epochs: constant, or cosine (from learning_rate "
                             "down to ~0 in the last epoch)", choices=LR_SCHEDULES)
    batch_size: int = batch_size_field(128)
    epochs: int = epochs_field(200, "per noise level")
    eval_every: int = eval_every_field(1, note="epochs_to_fit has this resolution")
    fit_threshold: float = param(0.99, "training accuracy that counts as 'fitted' for epochs_to_fit", minimum=0.0, maximum=1.0)
    seeds: tuple[int, ...] = seeds_field((0, 1, 2), "per noise level", note="also the label corruption")
    size_sweep: tuple[float, ...] = param((), "further training-set sizes as fractions of the main run's training set "
                                          "(stratified subsets), trained with every label shuffled, per seed: how "
                                          "memorization time grows with the number of images", minimum=0.0, maximum=1.0)
    model: tuple[str, ...] = model_field("instead of the MLP (widths and activation then unused)",
                                         note="input_shape: one image's (C, H, W); num_outputs: the classes; seed: the run's seed")

    def validate(self):
        check_one_model(self.model, "random-labels")
        if not self.label_noise:
            raise ConfigError("label_noise must list at least one fraction, e.g. --label-noise 1.0")
        if len({_key(f) for f in self.label_noise}) != len(self.label_noise):
            raise ConfigError(f"label_noise fractions must be distinct, got {self.label_noise}")
        if not self.widths:
            raise ConfigError("widths must list at least one hidden layer width")
        if len(set(self.size_sweep)) != len(self.size_sweep):
            raise ConfigError(f"size_sweep fractions must be distinct, got {self.size_sweep}")
        if any(not 0.0 < fraction < 1.0 for fraction in self.size_sweep):
            raise ConfigError(f"size_sweep fractions must lie strictly between 0 and 1 (the main run is the whole "
                              f"training set), got {self.size_sweep}")


PROFILES = {
    "smoke": dict(label_noise=(0.0, 1.0), widths=(64, 64), train_size=500, test_size=300, epochs=6, batch_size=100, seeds=(0, 1),
                  size_sweep=(0.5,)),
    # quick: mnist-5k's 4000 training images plus 1000 and 2000 at 100% noise: memorization time vs size
    "quick": dict(label_noise=(0.0, 0.5, 1.0), epochs=70, seeds=(0, 1), size_sweep=(0.25, 0.5)),
    # full: 60,000 training images; the design that memorized 100% shuffled Fashion-MNIST (module docstring)
    "full": dict(dataset="mnist", label_noise=(0.0, 0.5, 1.0), widths=(1024, 1024, 1024), learning_rate=1e-3,
                 lr_schedule="cosine", batch_size=512, epochs=300, seeds=(0, 1, 2)),
}


def _key(fraction: float) -> str:
    return f"{fraction:g}"


def _trial_key(fraction: float, seed: int) -> str:
    return f"noise_{_key(fraction).replace('.', 'p')}_seed{seed}"


def _train_one(config: Config, seed: int, data: TensorData, true_labels: torch.Tensor, num_classes: int, trial) -> dict:
    """Train one MLP (initial weights and data order from `seed`) on `data` (noisy training labels) on
    trial.device; a checkpoint-safe dict of curves and final numbers. true_labels: (N,) the uncorrupted
    training labels, to score the final model against."""
    device = trial.device
    spec = MLPSpec(data.x_train[0].numel(), config.widths, num_classes, config.activation)
    user = single_user_model(config)
    model = user_or_builtin(user, lambda: build_mlp(spec, torch.Generator().manual_seed(seed)), input_shape=tuple(data.x_train.shape[1:]),
                            num_outputs=num_classes, seed=seed, device=device)
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                           batch_size=config.batch_size, epochs=config.epochs, eval_every=config.eval_every,
                           lr_schedule=config.lr_schedule)
    # Checkpoint every 10 epochs: a 3x256 MLP with Adam state is ~4 MB, too much to rewrite every epoch.
    result = (train if user is None else train_seeded)(model, data.to(device), train_spec, seed=seed, checkpoint_path=trial.checkpoint,
                                                       checkpoint_every=10, progress=trial.progress)
    curves = {"epoch": result.log.series("epoch")[1]}
    for name in METRICS:
        curves[name] = result.log.series(name)[1]
    true_fit = evaluate(model, data.x_train.to(device), true_labels.to(device), "cross_entropy")["accuracy"]
    return {"status": result.status, "num_params": sum(p.numel() for p in model.parameters()), "curves": curves,
            "final_train_accuracy_true_labels": true_fit}


def run(config: Config, ctx) -> dict:
    clean = load_dataset(config.dataset, data_dir=ctx.data_dir, train_size=config.train_size,
                         test_size=config.test_size)
    _sweep_sizes(config, clean.num_train, clean.num_classes)  # checked before any training
    counts = torch.bincount(clean.y_test, minlength=clean.num_classes)
    summary = {
        "dataset": clean.name, "dataset_note": clean.note, "num_train": clean.num_train, "num_test": clean.num_test,
        "num_classes": clean.num_classes, "chance_accuracy": 1.0 / clean.num_classes,
        "majority_test_accuracy": counts.max().item() / clean.num_test,
        "model": {"widths": list(config.widths), "activation": config.activation}, "optimizer": "adam",
        "learning_rate": config.learning_rate, "lr_schedule": config.lr_schedule, "batch_size": config.batch_size, "epochs": config.epochs,
        "fit_threshold": config.fit_threshold, "seeds": list(config.seeds), "label_mode": config.label_mode, "runs": {},
        "training_path": TRAINING_PATHS["loop"],
    }
    user = single_user_model(config)
    if user is not None:
        summary["model"]["user_model"] = user.text
    described = user_or_builtin(user, lambda: build_mlp(MLPSpec(clean.x_train[0].numel(), config.widths, clean.num_classes, config.activation),
                                                        torch.Generator().manual_seed(config.seeds[0])),
                                input_shape=tuple(clean.x_train.shape[1:]), num_outputs=clean.num_classes, seed=config.seeds[0])
    ctx.describe_model("model", described, clean.x_train[:2], "loop",
                       **user_details(user, input_shape=tuple(clean.x_train.shape[1:]), num_outputs=clean.num_classes, seed=config.seeds[0]))
    fractions = sorted(config.label_noise)
    pairs = [(fraction, seed) for fraction in fractions for seed in config.seeds]
    # One generator per seed, so a seed's draw does not depend on the other seeds (tests redraw it).
    noisy = {(fraction, seed): corrupt_labels(clean.y_train, fraction, config.label_mode, clean.num_classes,
                                              torch.Generator().manual_seed(seed)) for fraction, seed in pairs}
    trials = [(_trial_key(fraction, seed),
               partial(_train_one, config, seed, TensorData(clean.x_train, noisy[fraction, seed], clean.x_test, clean.y_test),
                       clean.y_train, clean.num_classes)) for fraction, seed in pairs]
    results = dict(zip(pairs, ctx.map_trials(trials, "random-labels", steps=config.epochs)))
    for (fraction, seed), result in results.items():
        result["labels_changed"] = (noisy[fraction, seed] != clean.y_train).double().mean().item()
        result["max_class_count_change"] = _max_class_count_change(clean.y_train, noisy[fraction, seed], clean.num_classes)
        summary["model"]["num_params"] = result["num_params"]
        _record_metrics(ctx.log, f"label_noise={_key(fraction)}/seed{seed}", result["curves"])
    for fraction in fractions:
        per_seed = {seed: _summarize(fraction, results[fraction, seed], config) for seed in config.seeds}
        summary["runs"][_key(fraction)] = _summarize_seeds(fraction, per_seed)
    if config.size_sweep:
        summary["size_sweep"] = _size_sweep(config, ctx, summary)
    _draw(ctx, results, summary)
    return summary


def _size_sweep(config: Config, ctx, summary: dict) -> dict:
    """Every label shuffled (label_noise 1.0, label_mode) on stratified subsets (`size_sweep` fractions of the main
    training set, rounded to whole images), per seed, plus the
    main run at 100% noise when there is one: {sizes, runs {"<size>": {num_train, epochs_to_fit (seed stats of the
    seeds that fit), final_train_accuracy, final_test_accuracy, per_seed}}, spearman_size_vs_epochs_to_fit {rho,
    p_value, n: over the (size, seed) pairs that fit}, not_fitted (pairs that did not)}."""
    sizes = _sweep_sizes(config, summary["num_train"], summary["num_classes"])
    trials, labels = [], {}
    for size in sizes:
        subset = load_dataset(config.dataset, data_dir=ctx.data_dir, train_size=size, test_size=config.test_size)
        for seed in config.seeds:
            noisy = corrupt_labels(subset.y_train, 1.0, config.label_mode, subset.num_classes, torch.Generator().manual_seed(seed))
            labels[size, seed] = (noisy, subset.y_train)
            data = TensorData(subset.x_train, noisy, subset.x_test, subset.y_test)
            trials.append((f"size{size}_seed{seed}", partial(_train_one, config, seed, data, subset.y_train, subset.num_classes)))
    results = dict(zip([(size, seed) for size in sizes for seed in config.seeds],
                       ctx.map_trials(trials, "random-labels: sizes", steps=config.epochs)))
    runs = {}
    for size in sizes:
        per_seed = {}
        for seed in config.seeds:
            result = results[size, seed]
            noisy, true = labels[size, seed]
            result["labels_changed"] = (noisy != true).double().mean().item()
            result["max_class_count_change"] = _max_class_count_change(true, noisy, summary["num_classes"])
            _record_metrics(ctx.log, f"size={size}/seed{seed}", result["curves"])
            per_seed[seed] = _summarize(1.0, result, config)
        runs[str(size)] = {"num_train": size, **_summarize_seeds(1.0, per_seed)}
    if "1" in summary["runs"]:  # the main run at 100% noise is one more size
        runs[str(summary["num_train"])] = {"num_train": summary["num_train"], **summary["runs"]["1"]}
    pairs = [(entry["num_train"], epochs) for entry in runs.values() for epochs in entry["epochs_to_fit"]["values"]]
    fitted = [(size, epochs) for size, epochs in pairs if epochs is not None]
    rho, p_value = rank_correlation([s for s, _ in fitted], [e for _, e in fitted]) if fitted else (None, None)
    return {"sizes": sorted(entry["num_train"] for entry in runs.values()), "runs": runs,
            "spearman_size_vs_epochs_to_fit": {"rho": rho, "p_value": p_value, "n": len(fitted)},
            "not_fitted": len(pairs) - len(fitted)}


def _sweep_sizes(config: Config, num_train: int, num_classes: int) -> list[int]:
    """The size sweep's subset sizes (ascending): its fractions of num_train rounded to whole images; ConfigError
    unless they are distinct and hold at least one image per class."""
    sizes = sorted({round(fraction * num_train) for fraction in config.size_sweep})
    if len(sizes) < len(config.size_sweep) or (sizes and sizes[0] < num_classes):
        raise ConfigError(f"size_sweep {config.size_sweep} of {num_train} training images gives subsets {sizes}: "
                          "they must be distinct and hold at least one image per class")
    return sizes


def _max_class_count_change(true_labels: torch.Tensor, noisy_labels: torch.Tensor, num_classes: int) -> int:
    """Largest absolute change, in images, of any class's count between two label vectors (N,)."""
    true_counts = torch.bincount(true_labels, minlength=num_classes)
    return int((torch.bincount(noisy_labels, minlength=num_classes) - true_counts).abs().max())


def _summarize(fraction: float, result: dict, config: Config) -> dict:
    """One model's headline numbers (one seed at one noise fraction)."""
    curves = result["curves"]
    # first_step_below finds the first value <= a threshold, so search the training error 1 - accuracy.
    error = [1.0 - a for a in curves["train_accuracy"]]
    fitted = first_step_below(curves["epoch"], error, 1.0 - config.fit_threshold + 1e-12)
    at_fit = curves["test_accuracy"][curves["epoch"].index(fitted)] if fitted is not None else None
    return {
        "label_noise": fraction, "labels_changed": result["labels_changed"],
        "max_class_count_change": result["max_class_count_change"], "status": result["status"],
        **{f"final_{name}": curves[name][-1] for name in METRICS},
        "best_test_accuracy": max(curves["test_accuracy"]), "min_test_loss": min(curves["test_loss"]),
        "best_test_accuracy_epoch": int(curves["epoch"][curves["test_accuracy"].index(max(curves["test_accuracy"]))]),
        "final_train_accuracy_true_labels": result["final_train_accuracy_true_labels"],
        "epochs_to_fit": None if fitted is None else int(fitted), "test_accuracy_at_fit": at_fit,
    }


def _summarize_seeds(fraction: float, per_seed: dict) -> dict:
    """runs.<fraction>: per_seed (seed -> _summarize dict) and the seed stats of the headline numbers."""
    runs = list(per_seed.values())
    failed = [f"seed {seed}: {r['status']}" for seed, r in per_seed.items() if r["status"] != "ok"]
    entry = {"label_noise": fraction, "status": "; ".join(failed) or "ok",
             "per_seed": {str(seed): r for seed, r in per_seed.items()}}
    entry.update({name: seed_stats([r[name] for r in runs]) for name in SEED_STATS})
    entry["labels_intact"] = seed_stats([1.0 - r["labels_changed"] for r in runs])
    entry["epochs_to_fit"] = _reached_stats([r["epochs_to_fit"] for r in runs])
    return entry


def _reached_stats(values: list) -> dict:
    """seed_stats of the values that are not None (seeds that reached the threshold; n counts them);
    `values` keeps every seed's value, None included."""
    return {**seed_stats([v for v in values if v is not None]), "values": list(values)}


def _record_metrics(log, run: str, curves: dict) -> None:
    for index, epoch in enumerate(curves["epoch"]):
        for name in METRICS:
            log.add(run, int(epoch), name, curves[name][index])


def corruption_word(summary: dict) -> str:
    """How the corrupted labels were made, as an adjective: "shuffled" or "random"."""
    return {"shuffle": "shuffled", "random": "random"}[summary["label_mode"]]


def _stack(curves: list[dict], name: str) -> tuple[list, np.ndarray]:
    """(epochs (T,), values (S, T)) of one curve over S seeds' runs; a run that stopped early (diverged) is
    padded with NaN up to the longest one's T epochs."""
    longest = max(curves, key=lambda c: len(c["epoch"]))["epoch"]
    values = np.full((len(curves), len(longest)), np.nan)
    for row, curve in zip(values, curves):
        row[: len(curve[name])] = curve[name]
    return longest, values


def _draw(ctx, results: dict, summary: dict) -> None:
    word, seeds = corruption_word(summary), summary["seeds"]
    runs = {float(r["label_noise"]): r for r in summary["runs"].values()}  # fraction -> runs.<fraction>
    labels = {f: f"{100 * f:g}% {word} ({100 * r['labels_changed']['mean']:.0f}% changed)" for f, r in runs.items()}
    model = summary["model"].get("user_model") or f"MLP {'x'.join(map(str, summary['model']['widths']))}"
    params = f"{model}, {summary['model']['num_params']:,} params"
    spread = f", mean of {len(seeds)} seeds" if len(seeds) > 1 else ""
    for metric, ylabel, scale in (("loss", "cross-entropy loss (log scale)", 1.0), ("accuracy", "accuracy (%)", 100.0)):
        curves = {}
        for fraction in sorted(runs):
            by_seed = [results[fraction, seed]["curves"] for seed in seeds]
            epochs, train = _stack(by_seed, f"train_{metric}")
            curves[labels[fraction]] = (epochs, scale * train, scale * _stack(by_seed, f"test_{metric}")[1])
        chance = 100 * summary["chance_accuracy"] if metric == "accuracy" else None
        ax = plot_split_curves(curves, ylabel=ylabel, log_y=metric == "loss", chance=chance, unit="%",
                               title=f"{word.capitalize()} labels on {summary['dataset']}: train and test {metric} ({params}{spread})")
        ctx.run_dir.save_figure(ax.figure, f"{metric}_vs_epochs")
        close(ax.figure)
    if len(runs) > 1:
        ordered = [runs[f] for f in sorted(runs)]
        fractions = [r["label_noise"] for r in ordered]
        figure, (left, right) = new_axes(ncols=2, width=5.6)
        plot_final_vs_noise(fractions, [r["final_train_accuracy"]["values"] for r in ordered],
                            [r["final_test_accuracy"]["values"] for r in ordered], summary["chance_accuracy"],
                            best_test_accuracy=[r["best_test_accuracy"]["values"] for r in ordered], ax=left)
        plot_epochs_to_fit([100 * f for f in fractions], [r["epochs_to_fit"]["values"] for r in ordered], summary["epochs"],
                           summary["fit_threshold"], ax=right)
        figure.suptitle(f"Label-noise sweep, {word} labels, on {summary['dataset']} ({params}, {summary['epochs']} epochs, "
                        f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''})", fontsize=10)
        ctx.run_dir.save_figure(figure, "noise_sweep")
        close(figure)
    if "size_sweep" in summary:
        sweep = summary["size_sweep"]
        entries = [sweep["runs"][str(size)] for size in sweep["sizes"]]
        ax = plot_epochs_to_fit(sweep["sizes"], [e["epochs_to_fit"]["values"] for e in entries], summary["epochs"],
                                summary["fit_threshold"], xlabel="training images (log scale)", log_x=True)
        ax.set_title(f"Epochs to memorize 100% {word} labels vs training-set size ({params}, {len(seeds)} "
                     f"seed{'s' if len(seeds) > 1 else ''})", fontsize=10)
        ctx.run_dir.save_figure(ax.figure, "memorization_vs_size")
        close(ax.figure)


EXPERIMENT = Experiment(
    name="random-labels", section="1-3", title="Can a network fit random labels?",
    description="an MLP trained on randomly relabelled images: memorization (train) vs chance (test), with a noise sweep",
    config_class=Config, profiles=PROFILES, run=run,
)
