"""1-3 Generalization, number of parameters: how do train and test loss/accuracy change with model size?

    dlprobe run param-count --profile quick        # 10 widths 4..512, 2 seeds, 20 epochs: ~25 s on a 2-core CPU
    dlprobe run param-count --profile full         # 14 widths 4..1024, 3 seeds, 60 epochs on MNIST (needs its files)
    dlprobe run param-count --profile full --dataset mnist-5k   # the same offline: ~4 minutes
    dlprobe run param-count --widths 8,16,32,64,128,256,512,1024,2048,4096 --hidden-layers 1 --dataset mnist

One family of similar-structured models: MLPs with `hidden_layers` hidden layers of the same width w
(ReLU), w growing geometrically, so the parameter count 784 w + (hidden_layers - 1) (w^2 + w) + 11 w + 10
(for 28x28 inputs and 10 classes) spans more than two orders of magnitude. Every model gets the same
recipe: Adam at `learning_rate`, minibatches of `batch_size`, `epochs` epochs, no early stopping, no
regularization, so the only thing that changes is the size. The seeds of one width train at once with
the ensemble trainer (each its own initial weights and data order); the reported numbers are the
models after the last epoch. Default dataset: mnist-5k (4000 training images, built in, so the largest
models have far more parameters than training examples); `--dataset cifar10` or `mnist` work when their
files are present.

summary.json: dataset, dataset_note, num_train, num_test, hidden_layers, activation, optimizer,
learning_rate, batch_size, epochs, seeds, and models: a list (by width) of {width, widths (hidden layer
widths), num_params (exact, counted on the trained model), final_train_loss, final_train_accuracy,
final_test_loss, final_test_accuracy, accuracy_gap (train minus test accuracy), loss_gap (test minus
train loss): each seed stats (mean, std, min, max, values, n), status (per seed)}; spearman: {accuracy_gap:
{rho, p_value (two-sided permutation test), n}}, the rank correlation of num_params with the mean accuracy
gap over the n models where that mean is finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..analysis.stats import rank_correlation, seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import (model_field, activation_field, batch_size_field, dataset_field, epochs_field, eval_every_field,
                             learning_rate_field, seeds_field, test_size_field, train_size_field)
from ..data.images import load_dataset
from ..data.tensors import TensorData
from ..errors import ConfigError
from ..models.mlp import MLPSpec, build_mlp
from ..plotting.generalization import plot_vs_params
from ..plotting.style import close, new_axes
from ..training.common import OptimizerSettings
from ..training.ensemble import train_ensemble
from ..training.loop import TrainSpec
from .base import Experiment
from .model_choice import (TRAINING_PATHS, check_one_model, final_value, num_params, single_user_model, train_seeded,
                           user_details, user_or_builtin)

FINAL = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def geometric_widths(smallest: int, largest: int, count: int) -> tuple[int, ...]:
    """`count` distinct integer widths from smallest to largest, evenly spaced on a log scale."""
    return tuple(sorted({int(round(w)) for w in np.geomspace(smallest, largest, count)}))


@dataclass(frozen=True)
class Config(ExperimentConfig):
    dataset: str = dataset_field("mnist-5k")
    train_size: int | None = train_size_field()
    test_size: int | None = test_size_field()
    widths: tuple[int, ...] = param(geometric_widths(4, 1024, 14), "hidden width of each model (one model per width)", minimum=1)
    hidden_layers: int = param(2, "hidden layers of every model (all of the same width)", minimum=1, maximum=16)
    activation: str = activation_field("relu")
    learning_rate: float = learning_rate_field(1e-3, "(the same for every model)")
    batch_size: int = batch_size_field(128)
    epochs: int = epochs_field(60, "of every model")
    eval_every: int = eval_every_field(5)
    seeds: tuple[int, ...] = seeds_field((0, 1, 2), "per width", note="mean and min-max spread are reported")
    model: tuple[str, ...] = model_field("instead of the MLPs: one factory, called with size = each of widths, gives the family "
                                         "(hidden_layers and activation then unused), each seed trained with the ordinary loop",
                                         size=True, note="input_shape: one image's (C, H, W); num_outputs: the classes; the family "
                                                         "should span at least 2 decades of parameters (the report says when not)")

    def validate(self):
        check_one_model(self.model, "param-count")
        if len(self.widths) < 2 or len(set(self.widths)) != len(self.widths):
            raise ConfigError(f"widths must list at least two distinct widths, got {self.widths}")


PROFILES = {
    "smoke": dict(widths=geometric_widths(4, 400, 10), train_size=500, test_size=300, epochs=2, eval_every=2, seeds=(0, 1), batch_size=100),
    "quick": dict(widths=geometric_widths(4, 512, 10), epochs=20, seeds=(0, 1)),
    "full": dict(dataset="mnist"),
}


def _train_width(config: Config, data: TensorData, width: int, num_classes: int, trial) -> dict:
    """All seeds of one width at once (on trial.device); a checkpoint-safe dict of final metrics and curves."""
    spec = MLPSpec(data.x_train[0].numel(), (width,) * config.hidden_layers, num_classes, config.activation)
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                           batch_size=config.batch_size, epochs=config.epochs, eval_every=config.eval_every)
    result = train_ensemble(spec, config.seeds, data, train_spec, device=trial.device, progress=trial.progress)
    # Count on the trained model itself, so the reported number cannot drift from what was trained.
    counted = sum(p.numel() for p in result.model.parameters()) // len(config.seeds)
    if counted != spec.num_params:
        raise RuntimeError(f"parameter count mismatch for width {width}: spec {spec.num_params}, model {counted}")
    curves = []
    for index in range(len(config.seeds)):
        curve = {"epoch": result.log.series("epoch", str(index))[1]}
        curve.update({name: result.log.series(name, str(index))[1] for name in FINAL})
        curves.append(curve)
    return {"widths": list(spec.widths), "num_params": counted, "status": result.status,
            "final": {name: result.final[name].tolist() for name in FINAL}, "curves": curves}


def _train_size(config: Config, data: TensorData, user, size: int, num_classes: int, trial) -> dict:
    """Each seed of the user's model of one size with the ordinary loop: the dict _train_width returns."""
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                           batch_size=config.batch_size, epochs=config.epochs, eval_every=config.eval_every)
    curves, status, counts = [], [], set()
    for seed in config.seeds:
        model = user_or_builtin(user, None, input_shape=tuple(data.x_train.shape[1:]), num_outputs=num_classes, seed=seed, size=size,
                                device=trial.device)
        counts.add(num_params(model))
        result = train_seeded(model, data.to(trial.device), train_spec, seed=seed, progress=trial.progress)
        curve = {"epoch": result.log.series("epoch")[1]}
        curve.update({name: result.log.series(name)[1] for name in FINAL})
        curves.append(curve)
        status.append(result.status)
    if len(counts) != 1:
        raise ConfigError(f"model factory {user.text} gives different parameter counts {sorted(counts)} at size {size} for different seeds")
    final = {name: [final_value(curve[name], seed_status) for curve, seed_status in zip(curves, status)] for name in FINAL}
    return {"widths": [size], "num_params": counts.pop(), "status": status, "final": final, "curves": curves}


def run(config: Config, ctx) -> dict:
    dataset = load_dataset(config.dataset, data_dir=ctx.data_dir, train_size=config.train_size,
                           test_size=config.test_size)
    data = TensorData(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    summary = {
        "dataset": dataset.name, "dataset_note": dataset.note, "num_train": dataset.num_train, "num_test": dataset.num_test,
        "hidden_layers": config.hidden_layers, "activation": config.activation, "optimizer": "adam",
        "learning_rate": config.learning_rate, "batch_size": config.batch_size, "epochs": config.epochs,
        "seeds": list(config.seeds), "models": [],
    }
    widths = sorted(config.widths)
    user = single_user_model(config)
    for width in widths:  # every model described (and a user factory checked at every size) before training
        arguments = {"input_shape": tuple(dataset.input_shape), "num_outputs": dataset.num_classes, "seed": config.seeds[0]}
        spec = MLPSpec(data.x_train[0].numel(), (width,) * config.hidden_layers, dataset.num_classes, config.activation)
        model = user_or_builtin(user, lambda: build_mlp(spec, torch.Generator().manual_seed(config.seeds[0])),
                                size=None if user is None else width, **arguments)
        ctx.describe_model(f"width{width}", model, dataset.x_train[:2], "ensemble" if user is None else "loop",
                           **user_details(user, **arguments, **({} if user is None else {"size": width})))
    summary["training_path"] = TRAINING_PATHS["ensemble" if user is None else "loop"]
    if user is None:
        trials = [(f"width{width}", partial(_train_width, config, data, width, dataset.num_classes)) for width in widths]
    else:
        summary["user_model"] = user.text
        trials = [(f"size{width}", partial(_train_size, config, data, user, width, dataset.num_classes)) for width in widths]
    steps = config.epochs * (1 if user is None else len(config.seeds))
    for width, result in zip(widths, ctx.map_trials(trials, "param-count", steps=steps)):
        summary["models"].append(_summarize(width, result))
        for seed, curve in zip(config.seeds, result["curves"]):
            for index, epoch in enumerate(curve["epoch"]):
                for name in FINAL:
                    ctx.log.add(f"width{width}/seed{seed}", int(epoch), name, curve[name][index])
    summary["spearman"] = {"accuracy_gap": _gap_trend(summary["models"])}
    _draw(ctx, summary)
    return summary


def _summarize(width: int, result: dict) -> dict:
    final = {name: np.asarray(values, dtype=float) for name, values in result["final"].items()}
    model = {"width": width, "widths": result["widths"], "num_params": result["num_params"], "status": result["status"]}
    model.update({f"final_{name}": seed_stats(values) for name, values in final.items()})
    model["accuracy_gap"] = seed_stats(final["train_accuracy"] - final["test_accuracy"])
    model["loss_gap"] = seed_stats(final["test_loss"] - final["train_loss"])
    return model


def _gap_trend(models: list[dict]) -> dict:
    """{rho, p_value, n}: Spearman rank correlation of the parameter count with the mean train-test accuracy gap,
    over the n models whose mean gap is finite (None, None when undefined)."""
    params = np.array([m["num_params"] for m in models], dtype=float)
    gap = np.array([m["accuracy_gap"]["mean"] for m in models], dtype=float)  # a None mean (every seed failed) is NaN
    finite = np.isfinite(gap)
    rho, p_value = rank_correlation(params[finite], gap[finite])
    return {"rho": rho, "p_value": p_value, "n": int(finite.sum())}


def _draw(ctx, summary: dict) -> None:
    models = summary["models"]
    params = [m["num_params"] for m in models]
    family = f"{summary['user_model']}, size" if summary.get("user_model") else f"{summary['hidden_layers']}-hidden-layer MLPs, widths"
    setting = (f"{family} {models[0]['width']}..{models[-1]['width']}, "
               f"{summary['epochs']} epochs on {summary['dataset']}")
    for metric, ylabel, scale in (("loss", "cross-entropy loss (log scale)", 1.0), ("accuracy", "accuracy (%)", 100.0)):
        runs = {split: [scale * np.asarray(m[f"final_{split}_{metric}"]["values"]) for m in models] for split in ("train", "test")}
        figure, ax = new_axes(width=7.0)
        plot_vs_params(params, runs["train"], runs["test"], ylabel=ylabel, log_y=metric == "loss", ax=ax,
                       widths=[m["width"] for m in models],
                       title=f"Final train and test {metric} vs number of parameters\n({setting})")
        ctx.run_dir.save_figure(figure, f"{metric}_vs_params")
        close(figure)


EXPERIMENT = Experiment(
    name="param-count", section="1-3", title="Number of parameters vs generalization",
    description="MLPs of one family over 2+ decades of parameter count: train/test loss and accuracy vs #params",
    config_class=Config, profiles=PROFILES, run=run,
)
