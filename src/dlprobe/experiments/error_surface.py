"""1-2 Optimization, bonus: what does the loss landscape around the path of training look like?

    dlprobe run error-surface --profile quick           # well under a minute of compute on a 2-core CPU
    dlprobe run error-surface --dataset mnist-5k

One MLP is trained (snapshots every `snapshot_every` epochs), then three views of the training loss:
1. the line theta(alpha) = (1 - alpha) theta_initial + alpha theta_final for alpha in [-0.5, 1.5]
   (Goodfellow et al. 2015): alpha = 0 is the initial model, alpha = 1 the final one;
2. a 2-D surface theta_final + a d1 + b d2 on two random filter-normalized directions (Li et al. 2018;
   each row of a weight matrix of d is rescaled to the norm of that row of theta_final, biases 0), so
   a = 1 is a step as large as the weights themselves; the snapshots are projected on this plane too
   (least-squares (a, b) of theta_t - theta_final on d1, d2, which are not exactly orthogonal). In
   high dimensions two random directions capture almost none of the path, so it sits near the centre;
3. the plane of the training path (Li et al. 2018 section 7): d1, d2 = the top two principal
   components of the snapshots minus theta_final (unit vectors, so coordinates are Euclidean distances
   in weight space), the loss on that plane around theta_final, and the snapshots projected on it.
Landscapes are evaluated in float64 on the training set by the library (dlprobe.interpolate, surface,
filter_directions, trajectory_plane: many points per data batch); a user model's BatchNorm statistics are
recomputed at every point on the training inputs, for the test line too (never on the test data).

summary.json: task {kind, name, description, loss}, dataset_note (images only), architecture,
activation, num_params, epochs, snapshot_epochs, status, initial_train_loss / final_train_loss /
final_test_loss (from the training loop's evaluation), line {alpha_min, alpha_max, num_points,
loss_at_0, loss_at_1, max_loss_01 (max over alpha in [0, 1]), barrier_height (max_loss_01 minus the
larger endpoint loss: 0 when nothing rises above both ends), min_loss, alpha_of_min (over the whole
line), non_increasing_01 (the loss never rises between consecutive alphas in [0, 1]), test_loss_at_1},
surface {num_points (per axis), range, center_loss, mean_loss_radius1 (mean over RADIUS_ANGLES
directions cos(t) d1 + sin(t) d2 at distance 1), max_loss, min_loss, path_coordinates (T, 2): the
snapshots' (a, b), path_fraction_captured (T,): ||a d1 + b d2|| / ||theta_t - theta_final|| per snapshot (null
where the snapshot is theta_final itself), path_fraction_captured_overall: sqrt(sum_t ||a_t d1 + b_t d2||^2 /
sum_t ||theta_t - theta_final||^2)}, pca_plane {explained_variance_ratio
(PC1, PC2 of the path), center_loss, coordinate_range [[min, max] per axis], path_coordinates (T, 2)}.
metrics.csv: run "train" (step = epoch: train_loss, test_loss), run "line" (step = point index:
alpha, train_loss, test_loss), runs "surface_random" / "surface_pca" (step = grid index: a, b, loss),
run "path" (step = epoch: x, y, train_loss).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from ..analysis.landscape import batchnorm_modules, projection_onto_plane
from ..analysis.line_profile import barrier_height
from ..analysis.params import flatten_params, load_flat_params, unflatten_params
from ..config import ExperimentConfig, param
from ..config_fields import (model_field, activation_field, batch_size_field, dataset_field, epochs_field, function_field,
                             learning_rate_field, num_test_field, num_train_field, optimizer_field,
                             snapshot_every_field, train_size_field, widths_field)
from ..data.tasks import load_task
from ..errors import ConfigError
from ..library.batches import Batches
from ..library.landscapes import evaluate_points, filter_directions, interpolate, surface, trajectory_plane
from ..library.measures import accuracy
from ..losses import mean_loss
from ..models.mlp import MLP, MLPSpec, build_mlp
from ..plotting.optimization import plot_loss_contour, plot_loss_line
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.loop import TrainSpec, train
from ..training.metrics import MetricLog
from .base import Experiment
from .model_choice import TRAINING_PATHS, num_params, single_user_model, train_seeded, user_details, user_or_builtin

RADIUS_ANGLES = 32  # directions sampled on the unit circle of the random plane
EVALUATION_BATCH = 1024  # examples per forward of the landscapes' points


@dataclass(frozen=True)
class Config(ExperimentConfig):
    function: str = function_field("sinc", "fitted when dataset is unset")
    dataset: str | None = dataset_field(None, "whose images are classified instead of fitting the function", note="none: the function")
    train_size: int | None = train_size_field()
    widths: tuple[int, ...] = widths_field((32, 32))
    activation: str = activation_field("tanh")
    epochs: int = epochs_field(60)
    snapshot_every: int = snapshot_every_field(3, note="the points of the training path")
    batch_size: int = batch_size_field(64)
    optimizer: str = optimizer_field()
    learning_rate: float = learning_rate_field(3e-3, optimizer=None)
    line_points: int = param(81, "points on the line alpha in [alpha_min, alpha_max] (alpha 0 and 1 are always added)", minimum=50)
    alpha_min: float = param(-0.5, "start of the line (0: initial weights)")
    alpha_max: float = param(1.5, "end of the line (1: final weights)")
    surface_points: int = param(31, "grid points per axis of each 2-D surface (odd, so the centre is a grid point)", minimum=3)
    surface_range: float = param(1.0, "the random-direction surface spans [-range, range] in filter-normalized units", minimum=1e-3)
    path_margin: float = param(0.3, "the path-plane surface extends this fraction of the path's extent beyond it", minimum=0.0)
    num_train: int = num_train_field(1000)
    num_test: int = num_test_field(200)
    model: tuple[str, ...] = model_field("instead of the MLP (widths and activation then unused), trained with the ordinary loop",
                                         note="input_shape: (1,) for the function or one image's (C, H, W); num_outputs: 1 or the "
                                              "classes; seed: the run's seed; BatchNorm statistics are recomputed at every point")

    def validate(self):
        if len(self.model) > 1:
            raise ConfigError(f"error-surface trains one architecture: give --model once, got {len(self.model)}")
        if self.surface_points % 2 == 0:
            raise ConfigError(f"surface_points must be odd so that the final weights sit on the grid, got {self.surface_points}")
        if not self.alpha_min < 0 < 1 < self.alpha_max:
            raise ConfigError(f"the line must extend past both models: need alpha_min < 0 and alpha_max > 1, got {self.alpha_min}, {self.alpha_max}")
        if self.epochs // self.snapshot_every < 2:
            raise ConfigError(f"the path needs at least 3 snapshots: epochs ({self.epochs}) >= 2 * snapshot_every ({self.snapshot_every})")


PROFILES = {
    "smoke": dict(widths=(8, 8), epochs=6, snapshot_every=2, line_points=50, surface_points=9, num_train=200, num_test=50),
    "quick": dict(),
    "full": dict(epochs=150, line_points=201, surface_points=51),
}


def _train(config, data, spec, loss, checkpoint_path, make_model=None) -> dict:
    """make_model: the user's model (None: dlprobe's MLP, seeded by config.seed)."""
    model = build_mlp(spec, torch.Generator().manual_seed(config.seed)) if make_model is None else make_model()
    train_spec = TrainSpec(loss=loss, optimizer=OptimizerSettings(config.optimizer, lr=config.learning_rate), batch_size=config.batch_size,
                           epochs=config.epochs, eval_every=config.snapshot_every, snapshot_every=config.snapshot_every)
    result = (train if make_model is None else train_seeded)(model, data, train_spec, seed=config.seed, run="train",
                                                             checkpoint_path=checkpoint_path)
    flat = torch.stack([torch.cat([s[name].reshape(-1) for name, _ in model.named_parameters()]) for s in result.snapshots])
    return {"snapshots": flat, "epochs": result.snapshot_epochs, "status": result.status, "log": result.log.state(),
            "snapshot_loss": [m["train_loss"] for m in result.snapshot_metrics]}


def _grid(half_points: int, low: float, high: float) -> torch.Tensor:
    """2 * half_points + 1 float64 coordinates from low to high where the middle one is exactly 0 (low < 0 < high)."""
    steps = torch.arange(-half_points, half_points + 1, dtype=torch.float64) / half_points
    return torch.where(steps < 0, -steps * low, steps * high)


def _landscapes(config, data, spec, loss, flat, make_model=None) -> dict:
    """Line, random-direction surface and path-plane surface from the (T, P) snapshots, float64 (make_model: the user's),
    by the library's interpolate, surface, filter_directions and trajectory_plane on training batches of
    EVALUATION_BATCH; BatchNorm statistics (user models) recomputed at every point on the training inputs."""
    architecture = (MLP(spec) if make_model is None else make_model()).double()
    flat = flat.double()
    initial, final = _at(architecture, flat[0]), _at(architecture, flat[-1])
    train = _batches(data.x_train.double(), data.y_train.double() if loss == "mse" else data.y_train)
    test = _batches(data.x_test.double(), data.y_test.double() if loss == "mse" else data.y_test)
    bn = train if batchnorm_modules(architecture) else "keep"
    metrics = {"loss": mean_loss(loss), **({"accuracy": accuracy} if loss == "cross_entropy" else {})}
    alphas = torch.cat([torch.linspace(config.alpha_min, config.alpha_max, config.line_points, dtype=torch.float64),
                        torch.tensor([0.0, 1.0], dtype=torch.float64)]).unique()  # sorted, with 0 and 1 exactly
    # alpha = 0: initial weights, 1: final
    line, line_test = (interpolate(initial, final, batches, metrics, alphas.numpy(), bn=bn, progress=False).values
                       for batches in (train, test))
    direction1, direction2 = filter_directions(final, seed=config.seed + 1)
    half = config.surface_points // 2
    coords = _grid(half, -config.surface_range, config.surface_range)
    random_surface = _surface(final, train, loss, (direction1, direction2), (coords, coords), bn)
    random_path = projection_onto_plane(flat, flat[-1], flatten_params(direction1), flatten_params(direction2))
    ring = []
    final_params = {name: p.detach() for name, p in final.named_parameters()}  # buffers: the model's own
    for angle in torch.arange(RADIUS_ANGLES, dtype=torch.float64) * (2 * math.pi / RADIUS_ANGLES):
        end = {name: final_params[name] + torch.cos(angle) * direction1[name] + torch.sin(angle) * direction2[name]
               for name in final_params}
        point = evaluate_points(final, [final_params, end], torch.tensor([[0.0, 1.0]], dtype=torch.float64), train,
                                {"loss": metrics["loss"]}, None if bn == "keep" else Batches(bn), progress=False)
        ring.append(point["loss"][0])
    snapshots = [unflatten_params(row, final) for row in flat]
    plane = trajectory_plane(final, snapshots)
    path = torch.from_numpy(plane.path)  # (T, 2): coordinates along unit directions = distances in weight space
    axes = []
    for column in range(2):
        low, high = min(path[:, column].min().item(), 0.0), max(path[:, column].max().item(), 0.0)
        margin = config.path_margin * max(high - low, 1e-12)
        axes.append(_grid(half, low - margin, high + margin))
    pca_surface = _surface(final, train, loss, plane.directions, axes, bn)
    as_tensor = torch.from_numpy
    return {"alphas": alphas, "line": as_tensor(line["loss"]), "line_accuracy": _optional(line.get("accuracy")),
            "line_test": as_tensor(line_test["loss"]), "line_test_accuracy": _optional(line_test.get("accuracy")),
            "coords": coords, "random_surface": random_surface, "ring": torch.tensor(ring, dtype=torch.float64),
            "random_path": random_path, "explained_variance_ratio": as_tensor(plane.explained_variance_ratio), "path": path,
            "pca_axes": axes, "pca_surface": pca_surface}


def _at(architecture, vector: torch.Tensor):
    """A copy of the architecture with the flat parameter vector (P,) loaded (its buffers its own)."""
    model = copy.deepcopy(architecture)
    load_flat_params(model, vector)
    return model


def _batches(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(zip(x.split(EVALUATION_BATCH), y.split(EVALUATION_BATCH)))


def _surface(model, batches, loss, directions, coordinates, bn) -> torch.Tensor:
    """Training loss (A, B) on model + a d1 + b d2 for a, b in coordinates (two (A,), (B,) tensors), 32 points at a time."""
    result = surface(model, batches, {"loss": mean_loss(loss)}, directions=directions,
                     coordinates=tuple(c.numpy() for c in coordinates), bn=bn, chunk_size=32, progress=False)
    return torch.from_numpy(result.values["loss"])


def _optional(values):
    return None if values is None else torch.from_numpy(values)


def run(config: Config, ctx) -> dict:
    task = load_task(config, ctx.data_dir)
    spec = MLPSpec(task.in_features, config.widths, task.out_features, config.activation)
    user = single_user_model(config)
    arguments = {"input_shape": tuple(task.data.x_train.shape[1:]), "num_outputs": task.out_features, "seed": config.seed}
    make_model = None if user is None else (lambda: user_or_builtin(user, None, **arguments))
    described = build_mlp(spec, torch.Generator().manual_seed(config.seed)) if user is None else make_model()
    ctx.describe_model("model", described, task.data.x_train[:2], "loop", **user_details(user, **arguments))
    trained = ctx.trial("train", lambda: _train(config, task.data, spec, task.loss, ctx.checkpoint_path("train"), make_model))
    land = ctx.trial("landscapes", lambda: _landscapes(config, task.data, spec, task.loss, trained["snapshots"], make_model))
    summary = _summarize(config, task, spec, trained, land)
    summary["training_path"] = TRAINING_PATHS["loop"]
    if user is not None:
        summary.update(architecture=user.text, num_params=num_params(described), user_model=user.text)
    _record(ctx.log, trained, land)
    _draw(ctx, config, task, spec, trained, land, summary)
    return summary


def _summarize(config, task, spec, trained, land) -> dict:
    log = MetricLog.from_state(trained["log"])
    alphas, line = land["alphas"], land["line"]
    inside = (alphas >= 0) & (alphas <= 1)
    at0, at1 = line[alphas == 0].item(), line[alphas == 1].item()
    max01 = line[inside].max().item()
    coords, surface, ring = land["coords"], land["random_surface"], land["ring"]
    half = len(coords) // 2
    summary = {
        "task": task.describe(), "architecture": spec.describe(), "activation": config.activation,
        "num_params": spec.num_params, "epochs": config.epochs, "snapshot_epochs": trained["epochs"], "status": trained["status"],
        "initial_train_loss": log.series("train_loss", "train")[1][0], "final_train_loss": log.last("train_loss", "train"),
        "final_test_loss": log.last("test_loss", "train"),
        "line": {"alpha_min": config.alpha_min, "alpha_max": config.alpha_max, "num_points": len(alphas), "loss_at_0": at0, "loss_at_1": at1,
                 "max_loss_01": max01, "barrier_height": max(0.0, barrier_height(alphas, line)), "min_loss": line.min().item(),
                 "alpha_of_min": alphas[line.argmin()].item(), "non_increasing_01": bool((line[inside].diff() <= 0).all()),
                 "test_loss_at_1": land["line_test"][alphas == 1].item()},
        "surface": {"num_points": len(coords), "range": config.surface_range, "center_loss": surface[half, half].item(),
                    "mean_loss_radius1": ring.mean().item(), "max_loss": surface.max().item(), "min_loss": surface.min().item(),
                    **_random_path_summary(land["random_path"])},
        "pca_plane": {"explained_variance_ratio": land["explained_variance_ratio"].tolist(), "center_loss": land["pca_surface"][half, half].item(),
                      "coordinate_range": [[a.min().item(), a.max().item()] for a in land["pca_axes"]], "path_coordinates": land["path"].tolist()},
    }
    if task.note:
        summary["dataset_note"] = task.note
    return summary


def _random_path_summary(projection) -> dict:
    """Summary keys for the snapshots projected on the random plane (see the module docstring)."""
    projected, distance = projection["projected_norm"], projection["distance"]
    fractions = [(p / d).item() if d > 0 else None for p, d in zip(projected, distance)]
    overall = (projected.square().sum() / distance.square().sum()).sqrt().item()
    return {"path_coordinates": projection["coordinates"].tolist(), "path_fraction_captured": fractions,
            "path_fraction_captured_overall": overall}


def _record(log, trained, land) -> None:
    for run, step, name, value in MetricLog.from_state(trained["log"]).rows():
        if name in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            log.add("train", step, name, value)
    for index, alpha in enumerate(land["alphas"].tolist()):
        log.add("line", index, "alpha", alpha)
        log.add("line", index, "train_loss", land["line"][index].item())
        log.add("line", index, "test_loss", land["line_test"][index].item())
    for run, (first, second), losses in (("surface_random", (land["coords"], land["coords"]), land["random_surface"]),
                                         ("surface_pca", land["pca_axes"], land["pca_surface"])):
        for i, a in enumerate(first.tolist()):
            for j, b in enumerate(second.tolist()):
                step = i * len(second) + j
                log.add(run, step, "a", a)
                log.add(run, step, "b", b)
                log.add(run, step, "loss", losses[i, j].item())
    for index, epoch in enumerate(trained["epochs"]):
        log.add("path", epoch, "x", land["path"][index, 0].item())
        log.add("path", epoch, "y", land["path"][index, 1].item())
        log.add("path", epoch, "train_loss", trained["snapshot_loss"][index])


def _draw(ctx, config, task, spec, trained, land, summary) -> None:
    model = summary.get("user_model") or f"{spec.describe()} {config.activation} MLP"
    model_text = f"{model} ({summary['num_params']} params) on {task.description}"
    classify = task.loss == "cross_entropy"
    accuracy = {"train accuracy": land["line_accuracy"].numpy(), "test accuracy": land["line_test_accuracy"].numpy()} if classify else None
    ax = plot_loss_line(land["alphas"].numpy(), {"train loss": land["line"].numpy(), "test loss": land["line_test"].numpy()},
                        title=f"Loss on the straight line from initial to final weights\n{model_text}", accuracy=accuracy)
    ctx.run_dir.save_figure(ax.figure, "loss_line")
    close(ax.figure)
    ax = plot_loss_contour(land["coords"].numpy(), land["coords"].numpy(), land["random_surface"].numpy(),
                           title=(f"Training loss around the final weights on two random filter-normalized directions (Li et al. 2018),\n"
                                  f"training path projected on them; {model_text}"),
                           axis_labels=["direction 1 (filter-normalized units)", "direction 2 (filter-normalized units)"],
                           path=land["random_path"]["coordinates"].numpy(),
                           path_label=(f"snapshots (projected; epochs 0-{trained['epochs'][-1]}): the plane holds "
                                       f"{100 * summary['surface']['path_fraction_captured_overall']:.1f}% of their distance"))
    ctx.run_dir.save_figure(ax.figure, "loss_surface_random")
    close(ax.figure)
    ratio = summary["pca_plane"]["explained_variance_ratio"]
    ax = plot_loss_contour(land["pca_axes"][0].numpy(), land["pca_axes"][1].numpy(), land["pca_surface"].numpy(),
                           title=(f"Training path (every {config.snapshot_every} epochs) projected on its PCA plane, loss on that plane\n"
                                  f"{model_text}"),
                           axis_labels=[f"PC{i + 1} of the path ({100 * r:.1f}% var), distance in weight space" for i, r in enumerate(ratio)],
                           path=land["path"].numpy(), path_label=f"snapshots (projected; epochs 0-{trained['epochs'][-1]})")
    ctx.run_dir.save_figure(ax.figure, "loss_surface_path")
    close(ax.figure)


EXPERIMENT = Experiment(
    name="error-surface", section="1-2", title="Visualize the error surface (bonus)",
    description="loss on the line initial-to-final weights, on random filter-normalized directions, and on the training path's PCA plane",
    config_class=Config, profiles=PROFILES, run=run,
)
