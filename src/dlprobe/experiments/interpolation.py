"""1-3 Flatness vs generalization, part 1: what lies on the straight line between two trained models?

    dlprobe run interpolation --profile quick          # about 10 s on a 2-core CPU
    dlprobe run interpolation --set pairs=batch_size --set batch_sizes=32,2048

For each pair, m1 and m2 are the same MLP trained with Adam for `epochs` epochs in two ways that differ
in one setting: the batch size (64 vs 1024 at learning rate `learning_rate`) or the learning rate
(1e-3 vs 1e-2 at batch size `batch_size`). With `shared_init` both start from the same initial weights
and see data in orders fixed by the same seed, so the setting is the only difference. A model that two
pairs share (batch 64, lr 1e-3 by default) is trained once. The loss and accuracy of
theta(alpha) = (1 - alpha) theta1 + alpha theta2 are evaluated on the whole training and test sets for
every alpha of the grid at once (vmap; the MLP has no BatchNorm, so there are no statistics to redo).
The grid is `num_alphas` evenly spaced points on [alpha_min, alpha_max] plus exactly 0, 1,
-flatness_distance and 1 + flatness_distance.

Flatness along the line: alpha outside [0, 1] moves away from an endpoint by a multiple of the same
vector theta2 - theta1, so the loss increase at alpha = -d (beyond m1) and at alpha = 1 + d (beyond m2)
compares both endpoints at equal parameter distance d * ||theta2 - theta1||. The endpoint whose loss
rises less is called flatter only when the larger rise is at least FLATNESS_RATIO times the smaller.

summary.json: dataset, dataset_note, model (layer sizes and activation), num_params, optimizer,
epochs, seed, shared_init, alphas (the grid), pairs.<batch_size|learning_rate> = {varied, m1, m2
(each: batch_size, learning_rate, init_seed, label, steps, status, train_loss, test_loss, train_accuracy,
test_accuracy as evaluated after training), parameter_distance ||theta2 - theta1||, endpoints
{train|test: {loss_at_0, loss_at_1, accuracy_at_0, accuracy_at_1}}, midpoint {train|test: {loss,
accuracy} at alpha = 0.5}, barrier {train|test: max loss on [0, 1] - max(endpoint losses)},
minimum {train|test: {loss, alpha}} over the grid, flatness {distance, train|test: {rise_beyond_m1,
rise_beyond_m2, relative_rise_beyond_m1, relative_rise_beyond_m2 (rise / endpoint loss), flatter:
"m1", "m2", "similar" or "not measurable" (the loss falls beyond an endpoint)}}}.
metrics.csv: per model (run "<pair>/m1" ...) train/test loss and accuracy per epoch; per pair (run
"<pair>/line") alpha, train_loss, test_loss, train_accuracy, test_accuracy at step = grid index.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..analysis.landscape import evaluate_interpolation
from ..config import ExperimentConfig, param
from ..data.images import load_dataset
from ..errors import ConfigError
from ..models.mlp import ACTIVATIONS, MLP, MLPSpec, build_mlp
from ..plotting.flatness import plot_interpolation
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.loop import TensorData, TrainSpec, train
from .base import Experiment
from .observe import fmt

PAIRS = ("batch_size", "learning_rate")
FLATNESS_RATIO = 1.5  # one endpoint is "flatter" only when the other's loss rises at least this many times more
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    dataset: str = param("mnist-5k", "image dataset (mnist-5k is built in; mnist, fashion-mnist, cifar10 need files)")
    train_size: int | None = param(None, "deterministic subset of N training images (default: all)", minimum=1)
    widths: tuple[int, ...] = param((256,), "hidden layer widths of the MLP", minimum=1)
    activation: str = param("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    epochs: int = param(30, "training epochs of every model (same for both models of a pair)", minimum=1)
    pairs: tuple[str, ...] = param(PAIRS, "which pairs to train: batch_size and/or learning_rate", choices=PAIRS)
    batch_sizes: tuple[int, ...] = param((64, 1024), "batch sizes of m1 and m2 in the batch-size pair", minimum=1)
    learning_rates: tuple[float, ...] = param((1e-3, 1e-2), "Adam learning rates of m1 and m2 in the learning-rate pair", minimum=1e-8, maximum=10.0)
    learning_rate: float = param(1e-3, "Adam learning rate of both models of the batch-size pair", minimum=1e-8, maximum=10.0)
    batch_size: int = param(64, "batch size of both models of the learning-rate pair", minimum=1)
    shared_init: bool = param(True, "m1 and m2 start from the same initial weights (false: m2 uses seed + 1)")
    num_alphas: int = param(61, "evenly spaced interpolation ratios on [alpha_min, alpha_max]", minimum=50, maximum=10001)
    alpha_min: float = param(-1.0, "first interpolation ratio (must be < 0)", maximum=0.0)
    alpha_max: float = param(2.0, "last interpolation ratio (must be > 1)", minimum=1.0)
    flatness_distance: float = param(0.25, "d: loss rise compared at alpha = -d and 1 + d", minimum=1e-6)

    def validate(self):
        if not self.pairs or len(set(self.pairs)) != len(self.pairs):
            raise ConfigError(f"pairs must list batch_size and/or learning_rate once each, got {self.pairs}")
        if len(self.batch_sizes) != 2 or len(self.learning_rates) != 2:
            raise ConfigError("batch_sizes and learning_rates must each give exactly two values (m1, m2)")
        if not self.alpha_min < 0 < 1 < self.alpha_max:
            raise ConfigError(f"need alpha_min < 0 and alpha_max > 1, got {self.alpha_min} and {self.alpha_max}")
        if not self.alpha_min <= -self.flatness_distance or not 1 + self.flatness_distance <= self.alpha_max:
            raise ConfigError(f"flatness_distance {self.flatness_distance} reaches outside [alpha_min, alpha_max]")


PROFILES = {
    "smoke": dict(train_size=600, widths=(32,), epochs=2, num_alphas=50),
    "quick": dict(epochs=30),
    "full": dict(dataset="mnist", epochs=50),
}


def alpha_grid(config: Config) -> torch.Tensor:
    """(A,) float64: the even grid plus exactly 0, 1, -d, 1 + d (rounding makes 0.05 * 20 - 1 exactly 0)."""
    even = np.linspace(config.alpha_min, config.alpha_max, config.num_alphas)
    extra = [0.0, 1.0, -config.flatness_distance, 1.0 + config.flatness_distance]
    return torch.from_numpy(np.unique(np.round(np.concatenate([even, extra]), 10)))


def _settings(config: Config, pair: str) -> list[tuple[int, float, int]]:
    """(batch_size, learning_rate, init seed) of m1 and m2."""
    seeds = (config.seed, config.seed if config.shared_init else config.seed + 1)
    if pair == "batch_size":
        return [(b, config.learning_rate, s) for b, s in zip(config.batch_sizes, seeds)]
    return [(config.batch_size, lr, s) for lr, s in zip(config.learning_rates, seeds)]


def _train_model(spec, data, config, batch_size, learning_rate, seed, trial) -> dict:
    data = data.to(trial.device)
    model = build_mlp(spec, torch.Generator().manual_seed(seed)).to(trial.device)
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=learning_rate), batch_size=batch_size,
                           epochs=config.epochs, eval_every=1)
    result = train(model, data, train_spec, seed=seed, checkpoint_path=trial.checkpoint, progress=trial.progress)
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
    summary = {"dataset": dataset.name, "dataset_note": dataset.note, "model": f"MLP {spec.describe()} ({config.activation})",
               "num_params": spec.num_params, "optimizer": "adam", "epochs": config.epochs, "seed": config.seed,
               "shared_init": config.shared_init, "alphas": alphas.tolist(), "pairs": {}}
    settings = {pair: _settings(config, pair) for pair in config.pairs}
    distinct = sorted({s for pair in settings.values() for s in pair})
    trials = [(f"model_bs{batch_size}_lr{learning_rate:g}_seed{seed}", partial(_train_model, spec, data, config, batch_size, learning_rate, seed))
              for batch_size, learning_rate, seed in distinct]
    models = dict(zip(distinct, ctx.map_trials(trials, "interpolation", steps=config.epochs)))
    architecture = MLP(spec).to(ctx.device)
    lines = ctx.map_trials([(f"line_{pair}", partial(_evaluate_line, architecture, models[ends[0]]["state"], models[ends[1]]["state"], alphas, data))
                            for pair, ends in settings.items()], "interpolation lines")
    for (pair, ends), line in zip(settings.items(), lines):
        first, second = models[ends[0]], models[ends[1]]
        labels = tuple(f"m{i + 1} ({_label(pair, b, lr)})" for i, (b, lr, _) in enumerate(ends))
        summary["pairs"][pair] = _summarize_pair(pair, ends, (first, second), labels, alphas, line, config)
        _record(ctx.log, pair, (first, second), alphas, line)
        ax = plot_interpolation(alphas.numpy(), {s: line[f"{s}_loss"].numpy() for s in SPLITS},
                                {s: line[f"{s}_accuracy"].numpy() for s in SPLITS}, labels,
                                f"Linear interpolation {labels[0]} → {labels[1]}\n"
                                f"MLP {spec.describe()} ({spec.num_params} params), Adam, {config.epochs} epochs, {dataset.name}")
        ctx.run_dir.save_figure(ax.figure, f"interpolation_{pair}")
        close(ax.figure)
    return summary


def _evaluate_line(architecture, state1, state2, alphas, data, trial) -> dict:
    """Train/test loss and accuracy (each (A,), on the CPU) of theta(alpha) for every alpha (A,), on trial.device."""
    device = trial.device
    architecture, data = architecture.to(device), data.to(device)
    state1 = {name: tensor.to(device) for name, tensor in state1.items()}
    state2 = {name: tensor.to(device) for name, tensor in state2.items()}
    line = {}
    for split, (x, y) in (("train", (data.x_train, data.y_train)), ("test", (data.x_test, data.y_test))):
        result = evaluate_interpolation(architecture, state1, state2, alphas.to(device), x, y)
        line[f"{split}_loss"], line[f"{split}_accuracy"] = result["loss"].cpu(), result["accuracy"].cpu()
    return line


def _at(alphas: torch.Tensor, values: torch.Tensor, alpha: float) -> float:
    index = int(torch.argmin((alphas - alpha).abs()))
    return float(values[index])


def _summarize_pair(pair, ends, trained, labels, alphas, line, config) -> dict:
    members = {}
    for name, (batch_size, learning_rate, seed), model, label in zip(("m1", "m2"), ends, trained, labels):
        curves = model["curves"]
        members[name] = {"batch_size": batch_size, "learning_rate": learning_rate, "init_seed": seed, "label": label,
                         "steps": model["steps"], "status": model["status"],
                         **{metric: curves[metric][-1] for metric in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}}
    difference = [(trained[1]["state"][n].double() - trained[0]["state"][n].double()).square().sum() for n in trained[0]["state"]]
    distance = config.flatness_distance
    inside = (alphas >= 0) & (alphas <= 1)
    result = {"varied": pair, **members, "parameter_distance": float(torch.stack(difference).sum().sqrt()),
              "endpoints": {}, "midpoint": {}, "barrier": {}, "minimum": {}, "flatness": {"distance": distance}}
    for split in SPLITS:
        loss, accuracy = line[f"{split}_loss"], line[f"{split}_accuracy"]
        at_0, at_1 = _at(alphas, loss, 0.0), _at(alphas, loss, 1.0)
        result["endpoints"][split] = {"loss_at_0": at_0, "loss_at_1": at_1, "accuracy_at_0": _at(alphas, accuracy, 0.0),
                                      "accuracy_at_1": _at(alphas, accuracy, 1.0)}
        result["midpoint"][split] = {"loss": _at(alphas, loss, 0.5), "accuracy": _at(alphas, accuracy, 0.5)}
        result["barrier"][split] = float(loss[inside].max()) - max(at_0, at_1)
        best = int(torch.argmin(loss))
        result["minimum"][split] = {"loss": float(loss[best]), "alpha": float(alphas[best])}
        rise1, rise2 = _at(alphas, loss, -distance) - at_0, _at(alphas, loss, 1 + distance) - at_1
        result["flatness"][split] = {"rise_beyond_m1": rise1, "rise_beyond_m2": rise2, "relative_rise_beyond_m1": rise1 / at_0,
                                     "relative_rise_beyond_m2": rise2 / at_1, "flatter": flatter(rise1, rise2)}
    return result


def flatter(rise_beyond_m1: float, rise_beyond_m2: float) -> str:
    """'m1' / 'm2' when that endpoint's loss rises at most 1/FLATNESS_RATIO of the other's, else 'similar';
    'not measurable' when the loss falls beyond an endpoint (it is no minimum along the line)."""
    low, high = sorted((rise_beyond_m1, rise_beyond_m2))
    if low <= 0:
        return "not measurable"
    if high < FLATNESS_RATIO * low:
        return "similar"
    return "m1" if rise_beyond_m1 < rise_beyond_m2 else "m2"


def _record(log, pair, trained, alphas, line) -> None:
    for name, model in zip(("m1", "m2"), trained):
        curves = model["curves"]
        for index, epoch in enumerate(curves["epoch"]):
            for metric in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
                log.add(f"{pair}/{name}", int(epoch), metric, curves[metric][index])
    for index, alpha in enumerate(alphas.tolist()):
        log.add(f"{pair}/line", index, "alpha", alpha)
        for metric, values in line.items():
            log.add(f"{pair}/line", index, metric, float(values[index]))


def observe(summary: dict, config: dict) -> list[str]:
    sentences = []
    for pair in summary["pairs"].values():
        m1, m2 = pair["m1"], pair["m2"]
        lead = f"{m1['label']} vs {m2['label']}: "
        sentences.append(lead + f"after training, test accuracy {fmt(m1['test_accuracy'])} vs {fmt(m2['test_accuracy'])}, "
                         f"train loss {fmt(m1['train_loss'])} vs {fmt(m2['train_loss'])}, test loss {fmt(m1['test_loss'])} "
                         f"vs {fmt(m2['test_loss'])}; the models are {fmt(pair['parameter_distance'])} apart in parameter space.")
        barrier = pair["barrier"]
        if max(barrier.values()) <= 1e-3 * max(pair["endpoints"]["train"]["loss_at_0"], pair["endpoints"]["train"]["loss_at_1"]):
            sentences.append(lead + "no loss barrier between them: on [0, 1] the loss never exceeds the worse endpoint.")
        else:
            sentences.append(lead + f"loss barrier on the segment (max loss on [0, 1] minus the worse endpoint): train "
                             f"{fmt(barrier['train'])}, test {fmt(barrier['test'])}; loss at α = 0.5: train "
                             f"{fmt(pair['midpoint']['train']['loss'])}, test {fmt(pair['midpoint']['test']['loss'])}.")
        flat = pair["flatness"]
        d = flat["distance"]
        for split in SPLITS:
            numbers = flat[split]
            change_m1, change_m2 = (_change(numbers[f"rise_beyond_{name}"]) for name in ("m1", "m2"))
            rise = (f"moving {fmt(d)}·‖θ₂−θ₁‖ beyond each endpoint, the {split} loss {change_m1} beyond m1 (α = {fmt(-d)}) "
                    f"and {change_m2} beyond m2 (α = {fmt(1 + d)})")
            verdict = numbers["flatter"]
            if verdict in ("m1", "m2"):
                ratio = max(numbers["rise_beyond_m1"], numbers["rise_beyond_m2"]) / min(numbers["rise_beyond_m1"], numbers["rise_beyond_m2"])
                text = f": {pair[verdict]['label']} is flatter along this line (the other's rise is {fmt(ratio, 2)}× larger)."
            elif verdict == "similar":
                text = f": no clear flatness difference (the rises are within {FLATNESS_RATIO}× of each other)."
            else:
                falling = " and ".join(name for name in ("m1", "m2") if numbers[f"rise_beyond_{name}"] <= 0)
                text = (f": the loss falls beyond {falling}, which is therefore no minimum along this line (e.g. not trained "
                        "to convergence), so flatness is not measurable here.")
            sentences.append(lead + rise + text)
    if summary["pairs"]:
        sentences.append("Each pair is one training run per model (seed " f"{summary['seed']}); flatness along a single line is "
                         "one direction in parameter space, not a full curvature measurement.")
    return sentences


def _change(rise: float) -> str:
    return f"rises by {fmt(rise)}" if rise >= 0 else f"falls by {fmt(-rise)}"


def table(summary: dict):
    columns = ["pair", "model", "batch size", "learning rate", "train loss", "test loss", "train acc", "test acc",
               "barrier (train / test)", "rise beyond endpoint (train / test)"]
    rows = []
    for pair in summary["pairs"].values():
        for name in ("m1", "m2"):
            m = pair[name]
            rows.append([pair["varied"].replace("_", " "), m["label"], m["batch_size"], fmt(m["learning_rate"]), fmt(m["train_loss"]),
                         fmt(m["test_loss"]), fmt(m["train_accuracy"]), fmt(m["test_accuracy"]),
                         f"{fmt(pair['barrier']['train'])} / {fmt(pair['barrier']['test'])}",
                         " / ".join(fmt(pair["flatness"][s][f"rise_beyond_{name}"]) for s in SPLITS)])
    return columns, rows


EXPERIMENT = Experiment(
    name="interpolation", section="1-3", title="Flatness vs generalization (1): interpolating between two trained models",
    description="loss and accuracy along θ(α) = (1−α)θ₁ + αθ₂ between models trained with batch 64 vs 1024 and lr 1e-3 vs 1e-2",
    config_class=Config, profiles=PROFILES, run=run, observe=observe, table=table,
)
