"""1-3 Generalization, can a network fit random labels? Train an MLP on images whose labels are random.

    dlprobe run random-labels --profile quick          # 0/50/100% noise, 70 epochs: ~30 s on a 2-core CPU
    dlprobe run random-labels --profile full           # 0, 20, ..., 100% noise, 200 epochs on MNIST (needs its files)
    dlprobe run random-labels --profile full --dataset mnist-5k   # the same offline: ~3 minutes
    dlprobe run random-labels --label-noise 0,0.5,1 --dataset mnist
    dlprobe run random-labels --label-mode random      # uniformly random classes instead of shuffled labels

A fraction `label_noise` of the training images, chosen at random, has its labels corrupted. label_mode
"shuffle" (the default, as the assignment asks) permutes the labels among the chosen images, so the class
counts stay exactly the same; "random" replaces them by uniformly random classes (Zhang et al. 2017),
which lets the class counts drift. Either way a label can land back on its own class, so 100% noise
changes about 90% of ten-class labels (labels_changed records the share). Test labels are never touched,
so test accuracy measures what transfers from the training set: with 100% noise nothing can, and test
accuracy should sit at chance while training accuracy climbs to ~100% (memorization). Each noise level
trains one model (3x256 ReLU MLP, Adam 1e-3, minibatches, the assignment's setting) with the plain loop,
checkpointed so an interrupted run resumes. All noise levels share the initial weights and the data order
(both from `seed`); the labels are drawn from `seed` too.

Measured on mnist-5k (4000 training images), seed 0, label_mode random: with 100% noise training accuracy
passes 99% after 48-50 epochs (the exact epoch depends on the torch thread count, which changes float
rounding) and is 100% at the end of the full profile's 200 epochs, while test accuracy ends at 9.8% (chance
10%); 20-80% noise fit in 32-50 epochs, clean labels in 9. The quick profile's 70 epochs already memorize.
With label_mode shuffle (the default), quick profile (70 epochs), same data and seed: 100% noise changes
90.2% of the labels with every class count unchanged; training accuracy passes 99% after 43 epochs and
ends at 99.7%, test accuracy at 10.3%; 50% noise fits in 49 epochs, clean labels in 9.

summary.json: dataset, dataset_note, num_train, num_test, num_classes, chance_accuracy (1/num_classes),
majority_test_accuracy (share of the most common test class), model {widths, activation, num_params},
optimizer, learning_rate, batch_size, epochs, fit_threshold, seed, label_mode, and runs.<fraction> (fraction as "%g",
e.g. "0.2") = {label_noise, labels_changed (share of training labels that differ from the true ones),
max_class_count_change (largest change, in images, of any class's training count; 0 when shuffled),
status, final_train_loss, final_train_accuracy, final_test_loss, final_test_accuracy, best_test_accuracy,
best_test_accuracy_epoch, min_test_loss, final_train_accuracy_true_labels (the training images scored
against their true labels), epochs_to_fit (first evaluated epoch with training accuracy >= fit_threshold, null if never),
test_accuracy_at_fit (null if never)}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch

from ..config import ExperimentConfig, param
from ..data.images import LABEL_MODES, corrupt_labels, load_dataset
from ..errors import ConfigError
from ..models.mlp import ACTIVATIONS, MLPSpec, build_mlp
from ..plotting.generalization import plot_epochs_to_fit, plot_final_vs_noise, plot_split_curves
from ..plotting.style import close, new_axes
from ..training.common import OptimizerSettings
from ..training.loop import TensorData, TrainSpec, evaluate, train
from .base import Experiment
from .common import first_step_below
from .observe import fmt

METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    dataset: str = param("mnist-5k", "image dataset (mnist-5k is built in; mnist, fashion-mnist, cifar10 need files)")
    train_size: int | None = param(None, "use a stratified subset of this many training images (None: all)", minimum=1)
    test_size: int | None = param(None, "use a stratified subset of this many test images (None: all)", minimum=1)
    label_noise: tuple[float, ...] = param((1.0,), "fractions of training labels corrupted as label_mode says (several: a sweep)", minimum=0.0, maximum=1.0)
    label_mode: str = param("shuffle", "shuffle: permute the chosen labels (class counts kept); random: uniformly random classes", choices=LABEL_MODES)
    widths: tuple[int, ...] = param((256, 256, 256), "hidden layer widths of the MLP", minimum=1)
    activation: str = param("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    learning_rate: float = param(1e-3, "Adam learning rate", minimum=1e-8, maximum=10.0)
    batch_size: int = param(128, "minibatch size", minimum=1)
    epochs: int = param(200, "training epochs per noise level", minimum=1)
    eval_every: int = param(1, "epochs between train/test evaluations (epochs_to_fit has this resolution)", minimum=1)
    fit_threshold: float = param(0.99, "training accuracy that counts as 'fitted' for epochs_to_fit", minimum=0.0, maximum=1.0)

    def validate(self):
        if not self.label_noise:
            raise ConfigError("label_noise must list at least one fraction, e.g. --label-noise 1.0")
        if len({_key(f) for f in self.label_noise}) != len(self.label_noise):
            raise ConfigError(f"label_noise fractions must be distinct, got {self.label_noise}")
        if not self.widths:
            raise ConfigError("widths must list at least one hidden layer width")


PROFILES = {
    "smoke": dict(label_noise=(0.0, 1.0), widths=(64, 64), train_size=500, test_size=300, epochs=6, batch_size=100),
    "quick": dict(label_noise=(0.0, 0.5, 1.0), epochs=70),
    "full": dict(dataset="mnist", label_noise=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), epochs=200),
}


def _key(fraction: float) -> str:
    return f"{fraction:g}"


def _train_one(config: Config, data: TensorData, true_labels: torch.Tensor, num_classes: int, trial) -> dict:
    """Train one MLP on `data` (noisy training labels) on trial.device; a checkpoint-safe dict of curves and
    final numbers. true_labels: (N,) the uncorrupted training labels, to score the final model against."""
    device = trial.device
    spec = MLPSpec(data.x_train[0].numel(), config.widths, num_classes, config.activation)
    model = build_mlp(spec, torch.Generator().manual_seed(config.seed)).to(device)
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                           batch_size=config.batch_size, epochs=config.epochs, eval_every=config.eval_every)
    # Checkpoint every 10 epochs: a 3x256 MLP with Adam state is ~4 MB, too much to rewrite every epoch.
    result = train(model, data.to(device), train_spec, seed=config.seed, checkpoint_path=trial.checkpoint,
                   checkpoint_every=10, progress=trial.progress)
    curves = {"epoch": result.log.series("epoch")[1]}
    for name in METRICS:
        curves[name] = result.log.series(name)[1]
    true_fit = evaluate(model, data.x_train.to(device), true_labels.to(device), "cross_entropy")["accuracy"]
    return {"status": result.status, "num_params": spec.num_params, "curves": curves,
            "final_train_accuracy_true_labels": true_fit}


def run(config: Config, ctx) -> dict:
    clean = load_dataset(config.dataset, data_dir=ctx.data_dir, train_size=config.train_size,
                         test_size=config.test_size, seed=config.seed)
    counts = torch.bincount(clean.y_test, minlength=clean.num_classes)
    summary = {
        "dataset": clean.name, "dataset_note": clean.note, "num_train": clean.num_train, "num_test": clean.num_test,
        "num_classes": clean.num_classes, "chance_accuracy": 1.0 / clean.num_classes,
        "majority_test_accuracy": counts.max().item() / clean.num_test,
        "model": {"widths": list(config.widths), "activation": config.activation}, "optimizer": "adam",
        "learning_rate": config.learning_rate, "batch_size": config.batch_size, "epochs": config.epochs,
        "fit_threshold": config.fit_threshold, "seed": config.seed, "label_mode": config.label_mode, "runs": {},
    }
    fractions = sorted(config.label_noise)
    # The same draw load_dataset(..., label_noise=fraction, label_mode=mode, seed=seed) makes (tests check this).
    noisy = {fraction: corrupt_labels(clean.y_train, fraction, config.label_mode, clean.num_classes,
                                      torch.Generator().manual_seed(config.seed)) for fraction in fractions}
    trials = [(f"noise_{_key(fraction).replace('.', 'p')}",
               partial(_train_one, config, TensorData(clean.x_train, noisy[fraction], clean.x_test, clean.y_test),
                       clean.y_train, clean.num_classes)) for fraction in fractions]
    results = {}
    for fraction, result in zip(fractions, ctx.map_trials(trials, "random-labels", steps=config.epochs)):
        result["labels_changed"] = (noisy[fraction] != clean.y_train).double().mean().item()
        result["max_class_count_change"] = _max_class_count_change(clean.y_train, noisy[fraction], clean.num_classes)
        results[fraction] = result
        summary["model"]["num_params"] = result["num_params"]
        summary["runs"][_key(fraction)] = _summarize(fraction, result, config)
        _record_metrics(ctx.log, _key(fraction), result["curves"])
    _draw(ctx, results, summary)
    return summary


def _max_class_count_change(true_labels: torch.Tensor, noisy_labels: torch.Tensor, num_classes: int) -> int:
    """Largest absolute change, in images, of any class's count between two label vectors (N,)."""
    true_counts = torch.bincount(true_labels, minlength=num_classes)
    return int((torch.bincount(noisy_labels, minlength=num_classes) - true_counts).abs().max())


def _summarize(fraction: float, result: dict, config: Config) -> dict:
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


def _record_metrics(log, key: str, curves: dict) -> None:
    for index, epoch in enumerate(curves["epoch"]):
        for name in METRICS:
            log.add(f"label_noise={key}", int(epoch), name, curves[name][index])


def _mode_word(summary: dict) -> str:
    """How the corrupted labels were made, as an adjective: "shuffled" or "random"."""
    return {"shuffle": "shuffled", "random": "random"}[summary["label_mode"]]


def _draw(ctx, results: dict, summary: dict) -> None:
    word = _mode_word(summary)
    labels = {f: f"{100 * f:g}% {word} ({100 * results[f]['labels_changed']:.0f}% changed)" for f in results}
    params = f"MLP {'x'.join(map(str, summary['model']['widths']))}, {summary['model']['num_params']:,} params"
    for metric, ylabel, scale in (("loss", "cross-entropy loss (log scale)", 1.0), ("accuracy", "accuracy (%)", 100.0)):
        curves = {labels[f]: (r["curves"]["epoch"], [scale * v for v in r["curves"][f"train_{metric}"]],
                              [scale * v for v in r["curves"][f"test_{metric}"]]) for f, r in results.items()}
        chance = 100 * summary["chance_accuracy"] if metric == "accuracy" else None
        ax = plot_split_curves(curves, ylabel=ylabel, log_y=metric == "loss", chance=chance, unit="%",
                               title=f"{word.capitalize()} labels on {summary['dataset']}: train and test {metric} ({params})")
        ctx.run_dir.save_figure(ax.figure, f"{metric}_vs_epochs")
        close(ax.figure)
    if len(results) > 1:
        runs = [summary["runs"][_key(f)] for f in sorted(results)]
        figure, (left, right) = new_axes(ncols=2, width=5.6)
        plot_final_vs_noise([r["label_noise"] for r in runs], [r["final_train_accuracy"] for r in runs],
                            [r["final_test_accuracy"] for r in runs], summary["chance_accuracy"],
                            best_test_accuracy=[r["best_test_accuracy"] for r in runs], ax=left)
        plot_epochs_to_fit([r["label_noise"] for r in runs], [r["epochs_to_fit"] for r in runs], summary["epochs"],
                           summary["fit_threshold"], ax=right)
        figure.suptitle(f"Label-noise sweep, {word} labels, on {summary['dataset']} ({params}, {summary['epochs']} epochs)",
                        fontsize=10)
        ctx.run_dir.save_figure(figure, "noise_sweep")
        close(figure)


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def observe(summary: dict, config: dict) -> list[str]:
    sentences, chance, word = [], summary["chance_accuracy"], _mode_word(summary)
    runs = sorted(summary["runs"].values(), key=lambda r: r["label_noise"])
    threshold = _percent(summary["fit_threshold"])
    for r in runs:
        lead = (f"On {r['label_noise'] * 100:g}% {word} labels ({_percent(r['labels_changed'])} of the {summary['num_train']} "
                f"training labels changed, {_class_counts(r['max_class_count_change'])})")
        if r["epochs_to_fit"] is not None:
            sentences.append(f"{lead} the MLP reached {threshold} training accuracy after {r['epochs_to_fit']} epochs and ended at "
                             f"{_percent(r['final_train_accuracy'])} after {summary['epochs']}; test accuracy ended at "
                             f"{_percent(r['final_test_accuracy'])} (chance {_percent(chance)}).")
        else:
            sentences.append(f"{lead} the MLP did not reach {threshold} training accuracy within {summary['epochs']} epochs: it ended at "
                             f"{_percent(r['final_train_accuracy'])}; test accuracy ended at {_percent(r['final_test_accuracy'])} "
                             f"(chance {_percent(chance)}).")
    full = [r for r in runs if r["label_noise"] == 1.0]
    if full:
        r = full[0]
        gap = 100 * (r["final_test_accuracy"] - chance)
        side = f"{fmt(abs(gap), 2)} points {'above' if gap > 0 else 'below'} chance" if abs(gap) >= 0.05 else "at chance"
        verdict = ("the network memorized labels that carry no information about the images" if r["epochs_to_fit"] is not None
                   else f"it had not memorized the labels within {summary['epochs']} epochs")
        sentences.append(f"With all labels {word}, final test accuracy is {side} and the test "
                         f"loss went from its minimum {fmt(r['min_test_loss'])} to {fmt(r['final_test_loss'])} "
                         f"(ln {summary['num_classes']} = {fmt(math.log(summary['num_classes']))} is the loss of a uniform guess): {verdict}.")
    if len(runs) > 1:
        low, high = runs[0], runs[-1]
        order = [r["final_test_accuracy"] for r in runs]
        trend = "falls monotonically" if all(a >= b for a, b in zip(order, order[1:])) else "changes non-monotonically"
        sentences.append(f"Final test accuracy {trend} with the noise fraction, from {_percent(low['final_test_accuracy'])} at "
                         f"{low['label_noise'] * 100:g}% noise to {_percent(high['final_test_accuracy'])} at {high['label_noise'] * 100:g}%.")
        fitted = [(r["label_noise"], r["epochs_to_fit"]) for r in runs]
        sentences.append(f"Epochs to reach {threshold} training accuracy by noise fraction: "
                         + "; ".join(f"{100 * f:g}%: {e if e is not None else 'not reached'}" for f, e in fitted) + ".")
        for r in (r for r in runs if 0 < r["label_noise"] < 1):
            sentences.append(_partial_noise(r))
    return sentences


def _class_counts(change: int) -> str:
    return "class counts unchanged" if change == 0 else f"class counts changed by up to {change} images"


def _partial_noise(r: dict) -> str:
    """What the final model does with the corrupted training images, and how test accuracy moved."""
    true_fit, clean_share = r["final_train_accuracy_true_labels"], 1.0 - r["labels_changed"]
    if abs(true_fit - clean_share) <= 0.02:
        verdict = "it reproduces the corrupted labels, i.e. it memorized them"
    elif true_fit > clean_share:
        verdict = "it still predicts the true class for some corrupted images"
    else:
        verdict = "it fits fewer than the uncorrupted ones"
    text = (f"At {100 * r['label_noise']:g}% noise, the final model scored against the true training labels gets "
            f"{_percent(true_fit)}, while {_percent(clean_share)} of the training labels were left intact: {verdict}.")
    if r["best_test_accuracy"] - r["final_test_accuracy"] > 0.02:
        text += (f" Test accuracy peaked at {_percent(r['best_test_accuracy'])} (epoch {r['best_test_accuracy_epoch']}) "
                 f"and fell to {_percent(r['final_test_accuracy'])} as the noise was fitted.")
    return text


def table(summary: dict):
    columns = ["label noise", "labels changed", "train acc", "test acc", "train loss", "test loss", "epochs to fit"]
    rows = []
    for r in sorted(summary["runs"].values(), key=lambda r: r["label_noise"]):
        rows.append([f"{100 * r['label_noise']:g}%", _percent(r["labels_changed"]), _percent(r["final_train_accuracy"]),
                     _percent(r["final_test_accuracy"]), fmt(r["final_train_loss"]), fmt(r["final_test_loss"]),
                     r["epochs_to_fit"] if r["epochs_to_fit"] is not None else "not reached"])
    return columns, rows


EXPERIMENT = Experiment(
    name="random-labels", section="1-3", title="Can a network fit random labels?",
    description="an MLP trained on randomly relabelled images: memorization (train) vs chance (test), with a noise sweep",
    config_class=Config, profiles=PROFILES, run=run, observe=observe, table=table,
)
