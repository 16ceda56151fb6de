"""1-1 Deep vs Shallow, train on an actual task: at one parameter budget, do deeper CNNs and DNNs do better?

    dlprobe run fit-task --profile quick                      # mnist-5k, 15 epochs, 2 seeds: ~50 s on a 2-core CPU
    dlprobe run fit-task --profile quick --dataset fashion-mnist   # where installed (`dlprobe data list`)
    dlprobe run fit-task --profile full                       # mnist + cifar10, 20 epochs, 3 seeds (GPU advised; on mnist-5k: ~6 min)

Per dataset, three CNNs (`cnn_convs` conv blocks: 3x3 conv, ReLU, 2x2 max-pool; channels doubling; one
dense hidden layer) share one exact parameter budget, and three DNNs (`dnn_depths` hidden layers) share
another; the budget solver keeps each family within 1% of its budget. Every model trains with Adam
(`learning_rate`, mini-batches of `batch_size`) for `epochs` epochs, and train and test loss/accuracy are
measured after every epoch. Each CNN seed is a resumable trial with a checkpoint every epoch; the seeds
of one DNN train together with the ensemble trainer (one trial per DNN, also checkpointed every epoch).

Budgets: the 1-hidden-layer DNN's count moves in steps of in_features + 11 (795 on MNIST, 3083 on
CIFAR-10), and the 1-conv CNN's in similarly coarse steps, so not every budget is reachable within 1%.
24,750 (quick) and 200,000 (full) are reachable for both families on every known dataset; 24,750 keeps the
quick profile within minutes, 200,000 is the scale of the assignment's reports (24k-800k). Both families
get the same budget by default, so the best CNN and the best DNN can also be compared.

summary.json: cnn_budget, dnn_budget, optimizer, learning_rate, batch_size, epochs, seeds, activation;
datasets.<name> = {dataset_note, num_train, num_test, input_shape, models: {"cnn-<convs>" | "dnn-<depth>":
{family ("cnn"/"dnn"), depth (conv blocks or hidden layers), depth_unit, architecture (spec.describe()),
num_params, final_train_loss, final_test_loss, final_train_accuracy, final_test_accuracy,
peak_test_accuracy (best epoch's test accuracy; all seed stats: mean, std, min, max, values, n),
final_test_error (1 - final_test_accuracy, the same seed stats mirrored: mean 1 - mean, min 1 - max, ...),
epochs (completed by every seed), status (per seed)}}}.
With --model (repeatable): the models are "model-<position>" (family "user", architecture the factory's text, each
seed trained with the ordinary loop) and datasets.<name>.same_parameter_count = {counts, relative_spread,
within_1_percent}; every model's training_path; summary.json's layer_tables (runner) describe every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..analysis.stats import seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import (activation_field, batch_size_field, datasets_field, epochs_field, learning_rate_field,
                             model_field, seeds_field, test_size_field, train_size_field)
from ..data.images import load_dataset
from ..data.tensors import TensorData
from ..errors import ConfigError
from ..models.budget import check_same_budget, cnn_for_budget, mlp_for_budget
from ..models.cnn import build_cnn
from ..models.mlp import build_mlp
from ..plotting.style import close
from ..plotting.task import family_colors, plot_accuracy_with_zoom, plot_training_loss
from ..training.common import OptimizerSettings
from ..training.ensemble import train_ensemble
from ..training.loop import TrainSpec, train
from .base import Experiment
from .common import slug
from .model_choice import TRAINING_PATHS, final_value, num_params, train_seeded, user_details, user_models, user_or_builtin

METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
FAMILY_NAMES = {"cnn": "CNN", "dnn": "DNN", "user": "your model"}
SAME_BUDGET = 0.01  # user models count as "the same number of parameters" within 1% of each other


@dataclass(frozen=True)
class Config(ExperimentConfig):
    datasets: tuple[str, ...] = datasets_field(("mnist", "cifar10"))
    cnn_convs: tuple[int, ...] = param((1, 2, 4), "conv blocks of each CNN", minimum=1, maximum=8)
    dnn_depths: tuple[int, ...] = param((1, 3, 6), "hidden layers of each DNN", minimum=1, maximum=32)
    cnn_budget: int = param(200_000, "parameter budget of every CNN (exact counts within 1%)", minimum=100)
    dnn_budget: int = param(200_000, "parameter budget of every DNN (exact counts within 1%)", minimum=100)
    activation: str = activation_field("relu", note="the same in every model")
    learning_rate: float = learning_rate_field(1e-3)
    batch_size: int = batch_size_field(128)
    epochs: int = epochs_field(20, "of every model")
    seeds: tuple[int, ...] = seeds_field((0, 1, 2), note="mean and spread are reported")
    train_size: int | None = train_size_field("per dataset")
    test_size: int | None = test_size_field("per dataset")
    model: tuple[str, ...] = model_field("compared instead of dlprobe's CNNs and DNNs (repeatable; cnn_convs, dnn_depths and the "
                                         "budgets then unused), each seed trained with the ordinary loop",
                                         note="input_shape: one image's (C, H, W) of each dataset; num_outputs: its classes; "
                                              "the report says whether their exact counts are within 1%", noun="user models")

    def validate(self):
        if len(set(self.model)) != len(self.model):
            raise ConfigError(f"model must list distinct factories, got {self.model}")
        if not self.datasets or not self.cnn_convs or not self.dnn_depths:
            raise ConfigError("datasets, cnn_convs and dnn_depths must each list at least one value")
        for name, values in (("datasets", self.datasets), ("cnn_convs", self.cnn_convs), ("dnn_depths", self.dnn_depths)):
            if len(set(values)) != len(values):
                raise ConfigError(f"{name} must be distinct, got {values}")


PROFILES = {
    "smoke": dict(datasets=("mnist-5k",), cnn_budget=12_750, dnn_budget=12_750, epochs=3, seeds=(0,),
                  batch_size=20, train_size=1000, test_size=500),
    "quick": dict(datasets=("mnist-5k",), cnn_budget=24_750, dnn_budget=24_750, epochs=15, seeds=(0, 1)),
    "full": dict(),
}


def _model_specs(config: Config, input_shape, num_classes: int) -> dict:
    """name -> (family, depth, spec) for one dataset; raises BudgetError before anything trains."""
    in_features = int(np.prod(input_shape))
    cnns = {f"cnn-{k}": ("cnn", k, cnn_for_budget(config.cnn_budget, k, input_shape, num_classes, activation=config.activation))
            for k in config.cnn_convs}
    dnns = {f"dnn-{d}": ("dnn", d, mlp_for_budget(config.dnn_budget, d, in_features, num_classes, config.activation))
            for d in config.dnn_depths}
    check_same_budget([spec for _, _, spec in cnns.values()])
    check_same_budget([spec for _, _, spec in dnns.values()])
    return {**cnns, **dnns}


class _UserModel:
    """A user model as _summarize sees a spec: describe() -> 'models.py:make_cnn', its exact num_params."""

    def __init__(self, user, count: int):
        self.user, self.num_params = user, count

    def describe(self) -> str:
        return self.user.text


def _user_specs(users, dataset, seed: int) -> dict:
    """name -> ("user", position, _UserModel) for one dataset: each factory built and checked once here, before training."""
    specs = {}
    for position, user in enumerate(users, start=1):
        model = user_or_builtin(user, None, input_shape=tuple(dataset.input_shape), num_outputs=dataset.num_classes, seed=seed)
        specs[f"model-{position}"] = ("user", position, _UserModel(user, num_params(model)))
    return specs


def same_count(counts: list[int], tolerance: float = SAME_BUDGET) -> dict:
    """{counts, relative_spread ((max - min) / min), within_1_percent}: whether models compare at one parameter count."""
    spread = (max(counts) - min(counts)) / min(counts) if counts else 0.0
    return {"counts": counts, "relative_spread": spread, "within_1_percent": spread <= tolerance}


def _curves(log, run: str) -> dict:
    """{"epoch": [...], metric: [...]} from a trainer's log for one run (all series recorded together)."""
    curves = {"epoch": [int(e) for e in log.series("epoch", run)[1]]}
    for name in METRICS:
        curves[name] = log.series(name, run)[1]
    return curves


def _train_cnn(config: Config, spec, data: TensorData, seed: int, trial) -> dict:
    model = build_cnn(spec, torch.Generator().manual_seed(seed)).to(trial.device)
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                           batch_size=config.batch_size, epochs=config.epochs)
    result = train(model, data.to(trial.device), train_spec, seed=seed, checkpoint_path=trial.checkpoint, progress=trial.progress)
    return {"status": [result.status], "epochs": [result.epochs_done], "curves": [_curves(result.log, "0")]}


def _train_user(config: Config, spec: _UserModel, input_shape, num_classes: int, data: TensorData, seed: int, trial) -> dict:
    model = user_or_builtin(spec.user, None, input_shape=input_shape, num_outputs=num_classes, seed=seed, device=trial.device)
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                           batch_size=config.batch_size, epochs=config.epochs)
    result = train_seeded(model, data.to(trial.device), train_spec, seed=seed, checkpoint_path=trial.checkpoint, progress=trial.progress)
    return {"status": [result.status], "epochs": [result.epochs_done], "curves": [_curves(result.log, "0")]}


def _train_dnn(config: Config, spec, data: TensorData, trial) -> dict:
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                           batch_size=config.batch_size, epochs=config.epochs)
    result = train_ensemble(spec, config.seeds, data, train_spec, device=trial.device, progress=trial.progress,
                            checkpoint_path=trial.checkpoint)
    return {"status": list(result.status), "epochs": [result.epochs_done] * len(config.seeds),
            "curves": [_curves(result.log, str(i)) for i in range(len(config.seeds))]}


def run(config: Config, ctx) -> dict:
    # Every dataset is loaded and every budget solved first: a missing file or an impossible budget
    # stops the run before any training, not after an hour of it.
    datasets = {name: load_dataset(name, data_dir=ctx.data_dir, train_size=config.train_size, test_size=config.test_size)
                for name in config.datasets}
    users = user_models(config)
    specs = {name: _user_specs(users, d, config.seeds[0]) if users else _model_specs(config, d.input_shape, d.num_classes)
             for name, d in datasets.items()}
    _describe(ctx, datasets, specs, config.seeds[0])
    summary = {"datasets": {}, "cnn_budget": config.cnn_budget, "dnn_budget": config.dnn_budget, "optimizer": "adam",
               "learning_rate": config.learning_rate, "batch_size": config.batch_size, "epochs": config.epochs,
               "seeds": list(config.seeds), "activation": config.activation}
    seeds = list(config.seeds)
    # Every CNN seed and every DNN (its seeds train together) of every dataset is one trial, each `epochs` long.
    trials, owners = [], []  # owners[i]: (dataset, model name) of trials[i]
    for name, dataset in datasets.items():
        data = TensorData(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test).to(ctx.device)
        for model_name, (family, _, spec) in specs[name].items():
            if family == "cnn":
                trials += [(f"{slug(name)}_{model_name}_seed{seed}", partial(_train_cnn, config, spec, data, seed)) for seed in seeds]
                owners += [(name, model_name)] * len(seeds)
            elif family == "user":
                trials += [(f"{slug(name)}_{model_name}_seed{seed}", partial(_train_user, config, spec, tuple(dataset.input_shape),
                                                                             dataset.num_classes, data, seed)) for seed in seeds]
                owners += [(name, model_name)] * len(seeds)
            else:
                trials.append((f"{slug(name)}_{model_name}", partial(_train_dnn, config, spec, data)))
                owners.append((name, model_name))
    pieces: dict[tuple, list] = {}
    for owner, result in zip(owners, ctx.map_trials(trials, "fit-task", steps=config.epochs)):
        pieces.setdefault(owner, []).append(result)
    for name, dataset in datasets.items():
        key = slug(name)
        # a CNN's seeds are separate trials: concatenate their per-seed lists
        results = {model_name: {field: [v for p in pieces[(name, model_name)] for v in p[field]] for field in ("status", "epochs", "curves")}
                   for model_name in specs[name]}
        summary["datasets"][name] = _summarize(dataset, specs[name], results)
        if users:
            summary["datasets"][name]["same_parameter_count"] = same_count([spec.num_params for _, _, spec in specs[name].values()])
        _record_metrics(ctx.log, key, results, seeds)
        _draw(ctx, name, key, specs[name], results, summary["datasets"][name])
    return summary


def _describe(ctx, datasets: dict, specs: dict, seed: int) -> None:
    """Every model's layer table (on one dataset's first two training images), named '<dataset>/<model>'."""
    for name, dataset in datasets.items():
        for model_name, (family, _, spec) in specs[name].items():
            generator = torch.Generator().manual_seed(seed)
            arguments = {"input_shape": tuple(dataset.input_shape), "num_outputs": dataset.num_classes, "seed": seed}
            if family == "user":
                model = user_or_builtin(spec.user, None, **arguments)
            else:
                model = build_cnn(spec, generator) if family == "cnn" else build_mlp(spec, generator)
            ctx.describe_model(f"{name}/{model_name}", model, dataset.x_train[:2], "ensemble" if family == "dnn" else "loop",
                               **user_details(spec.user if family == "user" else None, **arguments))


def _final(curve: dict, metric: str, status: str) -> float:
    return final_value(curve[metric], status)


def _summarize(dataset, specs: dict, results: dict) -> dict:
    models = {}
    for model_name, (family, depth, spec) in specs.items():
        r = results[model_name]
        unit = {"cnn": "conv blocks", "dnn": "hidden layers", "user": "position in --model"}[family]
        training = TRAINING_PATHS["ensemble" if family == "dnn" else "loop"]
        entry = {"family": family, "depth": depth, "depth_unit": unit, "training_path": training,
                 "architecture": spec.describe(), "num_params": spec.num_params, "epochs": min(r["epochs"]), "status": r["status"]}
        for metric in METRICS:
            entry[f"final_{metric}"] = seed_stats([_final(c, metric, s) for c, s in zip(r["curves"], r["status"])])
        entry["peak_test_accuracy"] = seed_stats([max(c["test_accuracy"]) if c["test_accuracy"] else float("nan") for c in r["curves"]])
        entry["final_test_error"] = _error_stats(entry["final_test_accuracy"])
        models[model_name] = entry
    return {"dataset_note": dataset.note, "num_train": dataset.num_train, "num_test": dataset.num_test,
            "input_shape": list(dataset.input_shape), "models": models}


def _error_stats(accuracy: dict) -> dict:
    """Seed stats of the error rate 1 - accuracy (lower is better), from those of the accuracy."""
    if accuracy.get("mean") is None:
        return dict(accuracy)
    return {"mean": 1 - accuracy["mean"], "std": accuracy["std"], "min": 1 - accuracy["max"], "max": 1 - accuracy["min"],
            "values": [1 - v for v in accuracy["values"]], "n": accuracy["n"]}


def _record_metrics(log, key: str, results: dict, seeds: list[int]) -> None:
    for model_name, r in results.items():
        for seed, curve in zip(seeds, r["curves"]):
            for position, epoch in enumerate(curve["epoch"]):
                for metric in METRICS:
                    log.add(f"{key}/{model_name}/seed{seed}", epoch, metric, curve[metric][position])


def _label(model: dict) -> str:
    if model["family"] == "user":
        return f"{model['architecture']}, {model['num_params']:,} params"
    unit = "conv" if model["family"] == "cnn" else ("hidden layer" if model["depth"] == 1 else "hidden layers")
    return f"{FAMILY_NAMES[model['family']]} {model['depth']} {unit}: {model['architecture']}, {model['num_params']:,} params"


def _series(specs: dict, results: dict, models: dict, metric: str) -> dict:
    """label -> (epochs (T,), runs (S, T), colour) for one metric; seeds share epochs (trimmed to the shortest)."""
    colours = {}
    for family in ("cnn", "dnn", "user"):
        names = [n for n, (f, _, _) in specs.items() if f == family]
        names.sort(key=lambda n: specs[n][1])
        colours.update(zip(names, family_colors(family, len(names))))
    series = {}
    for model_name, r in results.items():
        length = min(len(c["epoch"]) for c in r["curves"])
        runs = np.asarray([c[metric][:length] for c in r["curves"]], dtype=float)
        series[_label(models[model_name])] = (np.asarray(r["curves"][0]["epoch"][:length]), runs, colours[model_name])
    return series


def _what(specs: dict) -> str:
    """What the figures compare: the user's models or the CNN and DNN families."""
    return "your models" if any(family == "user" for family, _, _ in specs.values()) else "CNNs and DNNs at equal budgets"


def _draw(ctx, name: str, key: str, specs: dict, results: dict, dataset_summary: dict) -> None:
    models = dataset_summary["models"]
    seeds = len(results[next(iter(results))]["curves"])
    spread = f"mean of {seeds} seeds, band = min-max" if seeds > 1 else "1 seed"
    columns = [[_label(m) for m in sorted(models.values(), key=lambda m: m["depth"]) if m["family"] == family]
               for family in ("cnn", "dnn", "user")]
    columns = [column for column in columns if column]
    ax = plot_training_loss(_series(specs, results, models, "train_loss"), columns=columns,
                            title=f"{name}: training loss of {_what(specs)} ({spread})")
    ctx.run_dir.save_figure(ax.figure, f"loss_{key}")
    close(ax.figure)
    left, *_ = plot_accuracy_with_zoom(_series(specs, results, models, "train_accuracy"), _series(specs, results, models, "test_accuracy"),
                                      columns=columns, title=f"{name}: training (solid) and test (dashed) accuracy ({spread.replace('band', 'band on test')})")
    ctx.run_dir.save_figure(left.figure, f"accuracy_{key}")
    close(left.figure)


EXPERIMENT = Experiment(
    name="fit-task", section="1-1", title="Train on an actual task: deep vs shallow CNNs and DNNs at equal budgets",
    description="shallow/deep CNNs and DNNs at exact equal parameter budgets on MNIST/CIFAR-10 (loss and accuracy curves)",
    config_class=Config, profiles=PROFILES, run=run,
)
