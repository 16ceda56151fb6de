"""1-3 Flatness vs generalization, part 1: what lies on the straight line between two trained models?

    dlprobe run interpolation --profile quick          # 2 seeds: about 25 s on a 2-core CPU
    dlprobe run interpolation --set pairs=batch_size --set batch_sizes=32,2048 --seeds 5

For each pair, m1 and m2 are the same MLP trained with Adam for `epochs` epochs in two ways that differ
in one setting: the batch size (64 vs 1024 at learning rate `learning_rate`) or the learning rate
(1e-3 vs 1e-2 at batch size `batch_size`). Every pair is trained once per seed of `seeds`: with
`shared_init` m1 and m2 of seed s both start from the weights drawn from s and see data in orders fixed
by s, so the setting is the only difference (without it, m2 uses s + 1). A model that two pairs share
(batch 64, lr 1e-3 by default) is trained once per seed. Each model and each line is one trial. The loss
and accuracy of theta(alpha) = (1 - alpha) theta1 + alpha theta2 are evaluated, per seed, on the whole
training and test sets for every alpha of the grid by dlprobe.interpolate, the library's (alphas batched, the
first layer split; the MLP has no BatchNorm, so there are no statistics to redo). The grid is `num_alphas` evenly spaced points on [alpha_min, alpha_max] plus
exactly 0, 1, -flatness_distance and 1 + flatness_distance.

Flatness along the line: alpha outside [0, 1] moves away from an endpoint by a multiple of the same
vector theta2 - theta1, so the loss increase at alpha = -d (beyond m1) and at alpha = 1 + d (beyond m2)
compares both endpoints at equal parameter distance d * ||theta2 - theta1||. The endpoint whose loss
rises less is called flatter in a seed only when the larger rise is at least FLATNESS_RATIO times the
smaller; the observations call it flatter only when that holds in every seed. The measurements along a line
(endpoints, midpoint, barrier, minimum, rises, verdict) are analysis/line_profile.describe_line.

summary.json: dataset, dataset_note, model (layer sizes and activation), num_params, optimizer,
epochs, seeds, shared_init, alphas (the grid), pairs.<batch_size|learning_rate> = {varied, m1, m2 (each:
batch_size, learning_rate, label), per_seed: list in seed order of {seed, m1, m2 (each: init_seed, steps,
status, train_loss, test_loss, train_accuracy, test_accuracy as evaluated after training),
parameter_distance ||theta2 - theta1||, endpoints {train|test: {loss_at_0, loss_at_1, accuracy_at_0,
accuracy_at_1}}, midpoint {train|test: {loss, accuracy} at alpha = 0.5}, barrier {train|test: max loss on
[0, 1] - max(endpoint losses)}, minimum {train|test: {loss, alpha}} over the grid, flatness {distance,
train|test: {rise_beyond_m1, rise_beyond_m2, relative_rise_beyond_m1, relative_rise_beyond_m2 (rise /
endpoint loss), flatter: "m1", "m2", "similar" or "not measurable" (the loss falls beyond an endpoint)}}},
stats: the same headline numbers as seed stats (mean, std, min, max, values, n): m1 and m2 {train_loss,
test_loss, train_accuracy, test_accuracy}, parameter_distance, barrier {train|test}, midpoint {train|test:
{loss, accuracy}}, flatness {train|test: {rise_beyond_m1, rise_beyond_m2, relative_rise_beyond_m1,
relative_rise_beyond_m2, flatter: the per-seed verdicts in seed order}}}.
metrics.csv: per model (run "<pair>/seed<s>/m1" ...) train/test loss and accuracy per epoch; per pair and
seed (run "<pair>/seed<s>/line") alpha, train_loss, test_loss, train_accuracy, test_accuracy at step = grid index.
Figures: interpolation_<pair>, the mean line over seeds with a min-max band.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..analysis.line_profile import describe_line, parameter_distance
from ..analysis.stats import seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import (activation_field, batch_size_field, batch_sizes_field, dataset_field, epochs_field,
                             learning_rate_field, learning_rates_field, model_field, seeds_field, train_size_field, widths_field)
from ..data.images import load_dataset
from ..data.tensors import TensorData
from ..errors import ConfigError
from ..library.landscapes import interpolate
from ..library.measures import accuracy
from ..losses import mean_loss
from ..models.mlp import MLP, MLPSpec, build_mlp
from ..plotting.flatness import plot_interpolation
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.loop import TrainSpec, train
from .base import Experiment
from .model_choice import TRAINING_PATHS, check_one_model, model_name, num_params, single_user_model, train_seeded, user_details, \
    user_or_builtin

PAIRS = ("batch_size", "learning_rate")
FLATNESS_RATIO = 1.5  # one endpoint is "flatter" only when the other's loss rises at least this many times more
SPLITS = ("train", "test")
METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
RISES = ("rise_beyond_m1", "rise_beyond_m2", "relative_rise_beyond_m1", "relative_rise_beyond_m2")
EVALUATION_BATCH = 1024  # examples per forward of the line's points (16 alphas at a time)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    dataset: str = dataset_field("mnist-5k")
    train_size: int | None = train_size_field()
    widths: tuple[int, ...] = widths_field((256,))
    activation: str = activation_field("relu")
    epochs: int = epochs_field(30, "of every model (same for both models of a pair)")
    pairs: tuple[str, ...] = param(PAIRS, "which pairs to train: batch_size and/or learning_rate", choices=PAIRS)
    batch_sizes: tuple[int, ...] = batch_sizes_field((64, 1024), "of m1 and m2 in the batch-size pair")
    learning_rates: tuple[float, ...] = learning_rates_field((1e-3, 1e-2), "of m1 and m2 in the learning-rate pair")
    learning_rate: float = learning_rate_field(1e-3, "of both models of the batch-size pair")
    batch_size: int = batch_size_field(64, "of both models of the learning-rate pair")
    seeds: tuple[int, ...] = seeds_field((0, 1, 2), note="each trains m1 and m2 of every pair; mean and min-max spread are reported")
    shared_init: bool = param(True, "m1 and m2 of a seed start from the same initial weights (false: m2 uses the seed + 1)")
    num_alphas: int = param(61, "evenly spaced interpolation ratios on [alpha_min, alpha_max]", minimum=50, maximum=10001)
    alpha_min: float = param(-1.0, "first interpolation ratio (must be < 0)", maximum=0.0)
    alpha_max: float = param(2.0, "last interpolation ratio (must be > 1)", minimum=1.0)
    flatness_distance: float = param(0.25, "d: loss rise compared at alpha = -d and 1 + d", minimum=1e-6)
    model: tuple[str, ...] = model_field("instead of the MLP (widths and activation then unused) for m1 and m2",
                                         note="input_shape: one image's (C, H, W); num_outputs: the classes; seed: the init seed "
                                              "of m1 or m2; BatchNorm statistics are recomputed on the training inputs along the line")

    def validate(self):
        check_one_model(self.model, "interpolation")
        if not self.pairs or len(set(self.pairs)) != len(self.pairs):
            raise ConfigError(f"pairs must list batch_size and/or learning_rate once each, got {self.pairs}")
        if len(self.batch_sizes) != 2 or len(self.learning_rates) != 2:
            raise ConfigError("batch_sizes and learning_rates must each give exactly two values (m1, m2)")
        if not self.alpha_min < 0 < 1 < self.alpha_max:
            raise ConfigError(f"need alpha_min < 0 and alpha_max > 1, got {self.alpha_min} and {self.alpha_max}")
        if not self.alpha_min <= -self.flatness_distance or not 1 + self.flatness_distance <= self.alpha_max:
            raise ConfigError(f"flatness_distance {self.flatness_distance} reaches outside [alpha_min, alpha_max]")


PROFILES = {
    "smoke": dict(train_size=600, widths=(32,), epochs=2, num_alphas=50, seeds=(0, 1)),
    "quick": dict(epochs=30, seeds=(0, 1)),
    "full": dict(dataset="mnist", epochs=50, seeds=(0, 1, 2)),
}


def alpha_grid(config: Config) -> torch.Tensor:
    """(A,) float64: the even grid plus exactly 0, 1, -d, 1 + d (rounding makes 0.05 * 20 - 1 exactly 0)."""
    even = np.linspace(config.alpha_min, config.alpha_max, config.num_alphas)
    extra = [0.0, 1.0, -config.flatness_distance, 1.0 + config.flatness_distance]
    return torch.from_numpy(np.unique(np.round(np.concatenate([even, extra]), 10)))


def _settings(config: Config, pair: str, seed: int) -> list[tuple[int, float, int]]:
    """(batch_size, learning_rate, init seed) of m1 and m2 of one seed."""
    seeds = (seed, seed if config.shared_init else seed + 1)
    if pair == "batch_size":
        return [(b, config.learning_rate, s) for b, s in zip(config.batch_sizes, seeds)]
    return [(config.batch_size, lr, s) for lr, s in zip(config.learning_rates, seeds)]


def _train_model(spec, data, config, batch_size, learning_rate, seed, trial, user=None, input_shape=None) -> dict:
    data = data.to(trial.device)
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=learning_rate), batch_size=batch_size,
                           epochs=config.epochs, eval_every=1)
    if user is None:
        model = build_mlp(spec, torch.Generator().manual_seed(seed)).to(trial.device)
        result = train(model, data, train_spec, seed=seed, checkpoint_path=trial.checkpoint, progress=trial.progress)
    else:
        model = user_or_builtin(user, None, input_shape=input_shape, num_outputs=spec.out_features, seed=seed, device=trial.device)
        result = train_seeded(model, data, train_spec, seed=seed, checkpoint_path=trial.checkpoint, progress=trial.progress)
    curves = {name: result.log.series(name)[1] for name in ("epoch", "train_loss", "test_loss", "train_accuracy", "test_accuracy")}
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    return {"state": state, "curves": curves, "status": result.status, "steps": result.steps_done}


def _label(pair: str, batch_size: int, learning_rate: float) -> str:
    return f"batch {batch_size}" if pair == "batch_size" else f"lr {learning_rate:g}"


def run(config: Config, ctx) -> dict:
    dataset = load_dataset(config.dataset, data_dir=ctx.data_dir, train_size=config.train_size)
    spec = MLPSpec(int(np.prod(dataset.input_shape)), config.widths, dataset.num_classes, config.activation)
    data = TensorData(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test).to(ctx.device)
    alphas = alpha_grid(config)
    user = single_user_model(config)
    architecture = user_or_builtin(user, lambda: MLP(spec), input_shape=dataset.input_shape, num_outputs=dataset.num_classes,
                                   seed=config.seeds[0])
    ctx.describe_model("model", architecture, dataset.x_train[:2], "loop",
                       **user_details(user, input_shape=tuple(dataset.input_shape), num_outputs=dataset.num_classes, seed=config.seeds[0]))
    count = num_params(architecture)
    summary = {"dataset": dataset.name, "dataset_note": dataset.note,
               "model": model_name(user, f"MLP {spec.describe()} ({config.activation})"),
               "num_params": count, "training_path": TRAINING_PATHS["loop"], "optimizer": "adam", "epochs": config.epochs, "seeds": list(config.seeds),
               "shared_init": config.shared_init, "alphas": alphas.tolist(), "pairs": {}}
    settings = {(pair, seed): _settings(config, pair, seed) for pair in config.pairs for seed in config.seeds}
    distinct = sorted({s for ends in settings.values() for s in ends})  # one trial per model per seed
    extra = {} if user is None else {"user": user, "input_shape": tuple(dataset.input_shape)}
    trials = [(f"model_bs{batch_size}_lr{learning_rate:g}_seed{seed}",
               partial(_train_model, spec, data, config, batch_size, learning_rate, seed, **extra))
              for batch_size, learning_rate, seed in distinct]
    models = dict(zip(distinct, ctx.map_trials(trials, "interpolation", steps=config.epochs)))
    architecture = architecture.to(ctx.device)
    line_extra = {} if user is None else {"bn_on_train": True}
    lines = ctx.map_trials([(f"line_{pair}_seed{seed}", partial(_evaluate_line, architecture, models[ends[0]]["state"],
                                                                models[ends[1]]["state"], alphas, data, **line_extra))
                            for (pair, seed), ends in settings.items()], "interpolation lines")
    lines = dict(zip(settings, lines))
    for pair in config.pairs:
        labels = tuple(f"m{i + 1} ({_label(pair, b, lr)})" for i, (b, lr, _) in enumerate(settings[(pair, config.seeds[0])]))
        per_seed = []
        for seed in config.seeds:
            ends, line = settings[(pair, seed)], lines[(pair, seed)]
            trained = (models[ends[0]], models[ends[1]])
            per_seed.append(_summarize_seed(seed, ends, trained, alphas, line, config))
            _record(ctx.log, f"{pair}/seed{seed}", trained, alphas, line)
        summary["pairs"][pair] = {"varied": pair, **_members(settings[(pair, config.seeds[0])], labels), "per_seed": per_seed,
                                  "stats": _seed_summary(per_seed)}
        _plot(ctx, pair, labels, alphas, [lines[(pair, seed)] for seed in config.seeds], model_name(user, f"MLP {spec.describe()}"), count,
              dataset.name, config)
    return summary


def _members(ends, labels) -> dict:
    """{m1, m2: {batch_size, learning_rate, label}}: the settings every seed shares."""
    return {name: {"batch_size": batch_size, "learning_rate": learning_rate, "label": label}
            for name, (batch_size, learning_rate, _), label in zip(("m1", "m2"), ends, labels)}


def _plot(ctx, pair, labels, alphas, lines, model, count, dataset_name, config) -> None:
    """The pair's figure: mean line over the seeds' lines, min-max band."""
    spread = f"mean of {len(lines)} seeds, band = min-max" if len(lines) > 1 else f"seed {config.seeds[0]}"
    ax = plot_interpolation(alphas.numpy(), {s: np.stack([line[f"{s}_loss"].numpy() for line in lines]) for s in SPLITS},
                            {s: np.stack([line[f"{s}_accuracy"].numpy() for line in lines]) for s in SPLITS}, labels,
                            f"Linear interpolation {labels[0]} → {labels[1]} ({spread})\n"
                            f"{model} ({count} params), Adam, {config.epochs} epochs, {dataset_name}")
    ctx.run_dir.save_figure(ax.figure, f"interpolation_{pair}")
    close(ax.figure)


def _evaluate_line(architecture, state1, state2, alphas, data, trial, bn_on_train=False) -> dict:
    """Train/test loss and accuracy (each (A,) float64, on the CPU) of theta(alpha) for every alpha (A,), on
    trial.device, by dlprobe.interpolate over batches of EVALUATION_BATCH examples. bn_on_train: BatchNorm statistics
    at each alpha are recomputed on the training inputs for both splits (user models; dlprobe's MLP has no BatchNorm)."""
    device = trial.device
    data = data.to(device)
    ends = []
    for state in (state1, state2):
        model = copy.deepcopy(architecture).to(device)
        model.load_state_dict(state)
        ends.append(model)
    train_batches = _batches(data.x_train, data.y_train)
    metrics = {"loss": mean_loss("cross_entropy"), "accuracy": accuracy}
    line = {}
    for split, batches in (("train", train_batches), ("test", _batches(data.x_test, data.y_test))):
        result = interpolate(*ends, batches, metrics, alphas.numpy(), bn=train_batches if bn_on_train else "keep", progress=False)
        line[f"{split}_loss"], line[f"{split}_accuracy"] = (torch.from_numpy(result.values[name]) for name in ("loss", "accuracy"))
    return line


def _batches(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) batches of EVALUATION_BATCH examples: memory per weight point bounded by one batch."""
    return list(zip(x.split(EVALUATION_BATCH), y.split(EVALUATION_BATCH)))


def _summarize_seed(seed, ends, trained, alphas, line, config) -> dict:
    """One seed's numbers of a pair: the trained models, their distance, and the line's endpoints, barrier and flatness."""
    result = {"seed": seed}
    for name, (_, _, init_seed), model in zip(("m1", "m2"), ends, trained):
        result[name] = {"init_seed": init_seed, "steps": model["steps"], "status": model["status"],
                        **{metric: model["curves"][metric][-1] for metric in METRICS}}
    result.update({"parameter_distance": parameter_distance(trained[0]["state"], trained[1]["state"]), "endpoints": {}, "midpoint": {},
                   "barrier": {}, "minimum": {}, "flatness": {"distance": config.flatness_distance}})
    for split in SPLITS:
        numbers = describe_line(alphas, line[f"{split}_loss"], line[f"{split}_accuracy"], config.flatness_distance, FLATNESS_RATIO)
        for key, value in numbers.items():
            result[key][split] = value
    return result


def _over_seeds(per_seed: list[dict], *keys: str) -> dict:
    """seed_stats of the number at run[keys[0]][keys[1]]... of every seed's run."""
    values = []
    for value in per_seed:
        for key in keys:
            value = value[key]
        values.append(value)
    return seed_stats(values)


def _seed_summary(per_seed: list[dict]) -> dict:
    """The headline numbers of a pair as seed stats, shaped like one per-seed entry (flatter: the per-seed verdicts)."""
    stats = {name: {metric: _over_seeds(per_seed, name, metric) for metric in METRICS} for name in ("m1", "m2")}
    stats["parameter_distance"] = _over_seeds(per_seed, "parameter_distance")
    stats["barrier"] = {split: _over_seeds(per_seed, "barrier", split) for split in SPLITS}
    stats["midpoint"] = {split: {q: _over_seeds(per_seed, "midpoint", split, q) for q in ("loss", "accuracy")} for split in SPLITS}
    stats["flatness"] = {split: {**{rise: _over_seeds(per_seed, "flatness", split, rise) for rise in RISES},
                                 "flatter": [run["flatness"][split]["flatter"] for run in per_seed]} for split in SPLITS}
    return stats


def _record(log, run, trained, alphas, line) -> None:
    """Training curves of m1 and m2 under "<run>/m1", "<run>/m2" and the line under "<run>/line" (run = "<pair>/seed<s>")."""
    for name, model in zip(("m1", "m2"), trained):
        curves = model["curves"]
        for index, epoch in enumerate(curves["epoch"]):
            for metric in METRICS:
                log.add(f"{run}/{name}", int(epoch), metric, curves[metric][index])
    for index, alpha in enumerate(alphas.tolist()):
        log.add(f"{run}/line", index, "alpha", alpha)
        for metric, values in line.items():
            log.add(f"{run}/line", index, metric, float(values[index]))


EXPERIMENT = Experiment(
    name="interpolation", section="1-3", title="Flatness vs generalization (1): interpolating between two trained models",
    description="loss and accuracy along θ(α) = (1−α)θ₁ + αθ₂ between models trained with batch 64 vs 1024 and lr 1e-3 vs 1e-2",
    config_class=Config, profiles=PROFILES, run=run,
)
