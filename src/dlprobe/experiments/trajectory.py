"""1-2 Optimization, visualize the optimization process: where do 8 trainings of one net go in weight space?

    dlprobe run trajectory --profile quick            # a few seconds of compute on a 2-core CPU
    dlprobe run trajectory --dataset mnist-5k --set layer=1 --set method=tsne

The same MLP is trained once per seed (8 seeds by default, all at once with the ensemble trainer: each
seed has its own initial weights and data order). Every `snapshot_every` epochs (and after the last
epoch) the weights of every run are saved. The snapshots of all runs are reduced to 2-D together, by
one PCA fitted on all of them (so every run is drawn in the same coordinates), or by t-SNE with
`method = "tsne"`; once for the whole model and once for one Linear layer (`layer`: 0 is the first
hidden layer, its weight and bias). Points are annotated with the training loss (regression on a
function, the default) or the training accuracy (classification, with `dataset`, e.g. mnist-5k).

summary.json: task {kind: "function"|"images", name, description, loss}, dataset_note (images only),
architecture ("1-32-32-1"), activation, num_params, layer {index, shape [out, in], num_params}, method,
seeds, epochs, snapshot_every, snapshot_epochs (epochs of the snapshots), num_snapshots (per run),
num_runs, runs [{seed, status, final_train_loss, final_test_loss, final_train_accuracy,
final_test_accuracy (accuracies for images only)}], final_train_loss / final_test_loss (seed stats:
mean, std, min, max, values, n; also final_*_accuracy for images), explained_variance_ratio {whole,
layer}: PCA ratio of PC1 and PC2 (computed for method "tsne" too, as a description of the spread),
distances {whole, layer}: {init_to_final (seed stats of the straight distance each run moved),
path_length (seed stats of the summed distance between consecutive snapshots), between_initial and
between_final (mean Euclidean distance over pairs of runs)}.
metrics.csv: run "seed<s>", step = epoch: train_loss, test_loss (and accuracies), and the 2-D
coordinates whole_x, whole_y, layer_x, layer_y of each snapshot.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.stats import seed_stats
from ..analysis.trajectory import embed_tsne, fit_pca, transform
from ..config import ExperimentConfig, param
from ..config_fields import (activation_field, batch_size_field, dataset_field, epochs_field, function_field,
                             learning_rate_field, num_test_field, num_train_field, optimizer_field, seeds_field,
                             model_field, snapshot_every_field, train_size_field, widths_field)
from ..data.tasks import load_task
from ..errors import ConfigError
from ..models.mlp import MLPSpec, build_mlp
from ..plotting.optimization import plot_trajectories
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.ensemble import train_ensemble
from ..training.loop import TrainSpec
from .base import Experiment
from .model_choice import TRAINING_PATHS, check_one_model, model_name, num_params, single_user_model, train_seeded, user_details, \
    user_or_builtin


@dataclass(frozen=True)
class Config(ExperimentConfig):
    function: str = function_field("sinc", "fitted when dataset is unset")
    dataset: str | None = dataset_field(None, "whose images the MLP classifies instead of fitting the function", note="none: the function")
    train_size: int | None = train_size_field()
    seeds: tuple[int, ...] = seeds_field(tuple(range(8)), note="one training per seed")
    widths: tuple[int, ...] = widths_field((32, 32))
    activation: str = activation_field("tanh")
    layer: int = param(0, "Linear layer shown in the layer figure (0: first hidden layer)", minimum=0)
    epochs: int = epochs_field(60)
    snapshot_every: int = snapshot_every_field(3, note="the assignment's n")
    batch_size: int = batch_size_field(64)
    optimizer: str = optimizer_field()
    learning_rate: float = learning_rate_field(3e-3, optimizer=None)
    method: str = param("pca", "2-D reduction: pca (fitted jointly on all runs) or tsne", choices=("pca", "tsne"))
    perplexity: float = param(30.0, "t-SNE perplexity (method tsne)", minimum=1.0)
    num_train: int = num_train_field(1000)
    num_test: int = num_test_field(200)
    model: tuple[str, ...] = model_field("instead of the MLP (widths and activation then unused), each seed trained with the "
                                         "ordinary loop; layer then counts the modules that hold parameters",
                                         note="input_shape: (1,) for the function or one image's (C, H, W); num_outputs: 1 or the classes")

    def validate(self):
        check_one_model(self.model, "trajectory")
        if not self.widths:
            raise ConfigError("widths must list at least one hidden layer width")
        if not self.model and self.layer > len(self.widths):  # a user model's layers are checked when it is built
            raise ConfigError(f"layer {self.layer} does not exist: the MLP has Linear layers 0..{len(self.widths)} (widths {self.widths})")


PROFILES = {
    "smoke": dict(epochs=6, widths=(16, 16), num_train=200, num_test=50),
    "quick": dict(),
    "full": dict(epochs=120),
}


def layer_slice(spec: MLPSpec, layer: int) -> slice:
    """Where Linear layer `layer`'s weight (out, in) row-major and bias (out,) sit in a flat parameter vector."""
    start = sum(fan_in * fan_out + fan_out for fan_in, fan_out in spec.layer_sizes[:layer])
    fan_in, fan_out = spec.layer_sizes[layer]
    return slice(start, start + fan_in * fan_out + fan_out)


def _train(config, data, spec, loss, device, progress) -> dict:
    train_spec = TrainSpec(loss=loss, optimizer=OptimizerSettings(config.optimizer, lr=config.learning_rate), batch_size=config.batch_size,
                           epochs=config.epochs, eval_every=config.snapshot_every, snapshot_every=config.snapshot_every)
    result = train_ensemble(spec, config.seeds, data, train_spec, device=device, progress=progress)
    names = sorted(result.snapshot_metrics[-1])
    return {
        "snapshots": torch.stack(result.snapshots),  # (T, M, P)
        "epochs": list(result.snapshot_epochs),
        "metrics": {name: torch.stack([m[name] for m in result.snapshot_metrics]) for name in names},  # name -> (T, M)
        "status": list(result.status),
    }


def _train_user(config, data, user, input_shape, num_outputs: int, loss, device, progress) -> dict:
    """Each seed's user model with the ordinary loop; snapshots flattened in named_parameters order: like _train's."""
    train_spec = TrainSpec(loss=loss, optimizer=OptimizerSettings(config.optimizer, lr=config.learning_rate), batch_size=config.batch_size,
                           epochs=config.epochs, eval_every=config.snapshot_every, snapshot_every=config.snapshot_every)
    flats, metrics, status, epochs = [], [], [], None
    for seed in config.seeds:
        model = user_or_builtin(user, None, input_shape=input_shape, num_outputs=num_outputs, seed=seed, device=device)
        result = train_seeded(model, data.to(device), train_spec, seed=seed, progress=progress)
        names = [name for name, _ in model.named_parameters()]
        flats.append(torch.stack([torch.cat([snapshot[name].flatten() for name in names]) for snapshot in result.snapshots]))  # (T, P)
        metrics.append(result.snapshot_metrics)
        status.append(result.status)
        epochs = result.snapshot_epochs if epochs is None or len(result.snapshot_epochs) < len(epochs) else epochs
    length = len(epochs)  # a diverged seed has fewer snapshots: every run is cut to the shortest
    names = sorted(metrics[0][-1])
    return {"snapshots": torch.stack([flat[:length] for flat in flats], dim=1), "epochs": list(epochs),
            "metrics": {name: torch.tensor([[float(m[t][name]) for m in metrics] for t in range(length)]) for name in names},
            "status": status}


def user_layer(model, layer: int) -> tuple[slice, dict, str]:
    """The `layer`-th module holding parameters (named_modules order) of a user model: where its parameters sit in the
    flat vector (named_parameters order), its summary entry {index, name, type, shape (of its first parameter),
    num_params}, and the figure's heading."""
    owners = [(name, module) for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))]
    if layer >= len(owners):
        raise ConfigError(f"layer {layer} does not exist: the model has {len(owners)} modules with parameters (0..{len(owners) - 1})")
    name, module = owners[layer]
    own = {id(p) for p in module.parameters(recurse=False)}
    start, size, first = 0, 0, None
    for parameter in model.parameters():
        if id(parameter) in own:
            first = first or list(parameter.shape)
            size += parameter.numel()
        elif size == 0:
            start += parameter.numel()
    entry = {"index": layer, "name": name, "type": type(module).__name__, "shape": first, "num_params": size}
    return slice(start, start + size), entry, f"layer {layer}: {name} ({type(module).__name__}, {size} params)"


def _distances(snapshots: np.ndarray) -> dict:
    """snapshots (T, M, P) -> straight and path distances per run, mean pairwise distances between runs."""
    moved = np.linalg.norm(snapshots[-1] - snapshots[0], axis=1)  # (M,)
    path = np.linalg.norm(np.diff(snapshots, axis=0), axis=2).sum(axis=0)  # (M,)
    pairs = list(itertools.combinations(range(snapshots.shape[1]), 2))

    def between(points):
        return float(np.mean([np.linalg.norm(points[i] - points[j]) for i, j in pairs])) if pairs else None

    return {"init_to_final": seed_stats(moved), "path_length": seed_stats(path),
            "between_initial": between(snapshots[0]), "between_final": between(snapshots[-1])}


def _reduce(config, snapshots: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """snapshots (T, M, P) -> 2-D coordinates (T, M, 2) and the PCA explained variance ratios (2,)."""
    num_snapshots, num_runs, _ = snapshots.shape
    flat = snapshots.reshape(num_snapshots * num_runs, -1)
    pca = fit_pca(flat, num_components=min(2, *flat.shape))
    ratio = [float(r) for r in pca.explained_variance_ratio]
    if config.method == "tsne":
        coordinates = embed_tsne(flat, perplexity=config.perplexity, seed=config.seed)
    else:
        coordinates = transform(pca, flat)
    if coordinates.shape[1] < 2:  # a single-parameter "layer" cannot have a second component
        coordinates = np.concatenate([coordinates, np.zeros_like(coordinates)], axis=1)
    return coordinates.reshape(num_snapshots, num_runs, 2), ratio


def run(config: Config, ctx) -> dict:
    task = load_task(config, ctx.data_dir)
    spec = MLPSpec(task.in_features, config.widths, task.out_features, config.activation)
    user = single_user_model(config)
    input_shape = tuple(task.data.x_train.shape[1:])
    described = user_or_builtin(user, lambda: build_mlp(spec, torch.Generator().manual_seed(config.seeds[0])), input_shape=input_shape,
                                num_outputs=task.out_features, seed=config.seeds[0])
    training = "ensemble" if user is None else "loop"
    ctx.describe_model("model", described, task.data.x_train[:2], training,
                       **user_details(user, input_shape=input_shape, num_outputs=task.out_features, seed=config.seeds[0]))
    if user is None:
        layer = layer_slice(spec, config.layer), None, None
    else:
        layer = user_layer(described, config.layer)
    with ctx.progress(config.epochs * (1 if user is None else len(config.seeds)), "trajectory") as progress:
        if user is None:
            trained = ctx.trial("train", lambda: _train(config, task.data, spec, task.loss, ctx.device, progress))
        else:
            trained = ctx.trial("train", lambda: _train_user(config, task.data, user, input_shape, task.out_features, task.loss, ctx.device,
                                                             progress))
    snapshots = trained["snapshots"].double().numpy()  # (T, M, P)
    views = {"whole": snapshots, "layer": snapshots[:, :, layer[0]]}
    coordinates, ratios = {}, {}
    for name, view in views.items():
        coordinates[name], ratios[name] = _reduce(config, view)
    metrics = {name: values.numpy() for name, values in trained["metrics"].items()}  # name -> (T, M)
    classify = task.loss == "cross_entropy"
    summary = _summarize(config, task, spec, trained, metrics, ratios, views, user, layer[1], num_params(described))
    summary["training_path"] = TRAINING_PATHS[training]
    if user is not None:
        summary["user_model"] = user.text
    _record(ctx.log, config, trained["epochs"], metrics, coordinates)
    _draw(ctx, config, task, spec, coordinates, ratios, metrics["train_accuracy" if classify else "train_loss"], classify,
          user, layer[2], num_params(described))
    return summary


def _summarize(config, task, spec, trained, metrics, ratios, views, user=None, user_layer_entry=None, count=None) -> dict:
    if user is None:
        fan_in, fan_out = spec.layer_sizes[config.layer]
        layer = {"index": config.layer, "shape": [fan_out, fan_in], "num_params": fan_in * fan_out + fan_out}
    else:
        layer = user_layer_entry
    summary = {
        "task": task.describe(), "architecture": model_name(user, spec.describe()), "activation": config.activation,
        "num_params": spec.num_params if user is None else count, "layer": layer,
        "method": config.method, "seeds": list(config.seeds), "epochs": config.epochs, "snapshot_every": config.snapshot_every,
        "snapshot_epochs": trained["epochs"], "num_snapshots": len(trained["epochs"]), "num_runs": len(config.seeds),
        "explained_variance_ratio": ratios, "distances": {name: _distances(view) for name, view in views.items()},
    }
    if task.note:
        summary["dataset_note"] = task.note
    final_names = [n for n in ("train_loss", "test_loss", "train_accuracy", "test_accuracy") if n in metrics]
    summary["runs"] = [{"seed": seed, "status": trained["status"][index], **{f"final_{n}": float(metrics[n][-1, index]) for n in final_names}}
                       for index, seed in enumerate(config.seeds)]
    for name in final_names:
        summary[f"final_{name}"] = seed_stats(metrics[name][-1])
    return summary


def _record(log, config, epochs, metrics, coordinates) -> None:
    for index, seed in enumerate(config.seeds):
        for t, epoch in enumerate(epochs):
            for name, values in metrics.items():
                log.add(f"seed{seed}", epoch, name, float(values[t, index]))
            for view, points in coordinates.items():
                log.add(f"seed{seed}", epoch, f"{view}_x", float(points[t, index, 0]))
                log.add(f"seed{seed}", epoch, f"{view}_y", float(points[t, index, 1]))


def _draw(ctx, config, task, spec, coordinates, ratios, values, classify, user=None, layer_heading=None, count=None) -> None:
    what = f"{task.description} ({'accuracy' if classify else 'MSE'})"
    value_format = "{:.1%}" if classify else "{:.2g}"
    quantity = "training accuracy" if classify else "training MSE"
    if user is None:
        fan_in, fan_out = spec.layer_sizes[config.layer]
        layer_heading, count = f"layer {config.layer} ({fan_out}x{fan_in} weights + bias)", spec.num_params
        model = f"{spec.describe()} {config.activation} MLP"
    else:
        model = user.text
    for view, heading in (("layer", layer_heading), ("whole", f"whole model ({count} params)")):
        points = coordinates[view]  # (T, M, 2)
        if config.method == "pca":
            axis_labels = [f"PC{i + 1} ({100 * r:.1f}% var)" for i, r in enumerate(ratios[view])] + ["PC2 (0% var)"]
        else:
            axis_labels = ["t-SNE 1", "t-SNE 2"]
        labels = [f"seed {seed} (final {value_format.format(values[-1, i])})" for i, seed in enumerate(config.seeds)]
        ax = plot_trajectories(
            [points[:, i] for i in range(points.shape[1])], [values[:, i] for i in range(points.shape[1])], labels, axis_labels[:2],
            title=(f"Weights of the {heading} of {model}, {len(config.seeds)} runs, "
                   f"every {config.snapshot_every} epochs\n{'PCA' if config.method == 'pca' else 't-SNE'} fitted jointly on all runs; task {what}; "
                   f"numbers: {quantity}"),
            value_format=value_format,
        )
        name = f"trajectory_layer{config.layer}" if view == "layer" else "trajectory_whole"
        ctx.run_dir.save_figure(ax.figure, name)
        close(ax.figure)


EXPERIMENT = Experiment(
    name="trajectory", section="1-2", title="Visualize the optimization process: weight trajectories of 8 runs",
    description="8 seeds of one MLP, weights every n epochs reduced to 2-D by a joint PCA (or t-SNE), whole model and one layer",
    config_class=Config, profiles=PROFILES, run=run,
)
