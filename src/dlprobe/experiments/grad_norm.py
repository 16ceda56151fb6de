"""1-2 Optimization, observe the gradient norm during training: does it fall with the loss, or spike?

    dlprobe run grad-norm --profile quick                 # a few seconds of compute on a 2-core CPU
    dlprobe run grad-norm --set p=inf --dataset none      # max-norm, function task only

At every iteration, before the optimizer step, the mini-batch loss and the p-norm of the gradient of
that loss over all parameters are recorded (the ensemble trainer's per-iteration records: each seed's
own gradient). Two tasks by default so both regimes appear: a 1-D function (regression, MSE) and an
image dataset (classification with an MLP on flattened images, cross-entropy); either can be switched
off with `--function none` / `--dataset none`.

summary.json: p ("2", "inf", ...), optimizer, learning_rate, batch_size, seeds, tasks.<key> (key: the
function's or dataset's name) = {kind ("function"|"images"), name, description, loss, architecture,
num_params, epochs, iterations (per run), iterations_per_epoch, status (per seed), dataset_note (images
only), and seed stats (mean, std, min, max, values, n) of: initial_loss (first iteration),
first_epoch_loss / last_epoch_loss (geometric mean of the mini-batch losses of the first / last epoch),
final_train_loss (whole training set after training), grad_norm_start / grad_norm_end (first / last
iteration), grad_norm_first_epoch / grad_norm_last_epoch (geometric means over the first / last epoch),
grad_norm_min, grad_norm_max, grad_norm_median, argmax_iteration (iteration of the largest grad norm),
spikes (iterations whose grad norm exceeds SPIKE_FACTOR times the geometric mean of the previous
epoch's worth of iterations), log_correlation (Pearson correlation of log loss and log grad norm over
all iterations)}.
metrics.csv: run "<key>/seed<s>", step = iteration: iteration_loss, grad_norm (one record per
iteration each); step = iteration at each epoch start: train_loss, test_loss (whole sets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..analysis.stats import seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import (activation_field, batch_size_field, dataset_field, epochs_field, function_field,
                             learning_rate_field, model_field, num_test_field, num_train_field, optimizer_field, seeds_field,
                             train_size_field, widths_field)
from ..data.tasks import function_task, image_task
from ..errors import ConfigError
from ..models.mlp import MLPSpec, build_mlp
from ..plotting.optimization import plot_grad_norm
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.ensemble import train_ensemble
from ..training.loop import TrainSpec
from .base import Experiment
from .common import slug
from .model_choice import TRAINING_PATHS, check_one_model, model_name, num_params, single_user_model, train_seeded, user_details, \
    user_or_builtin

SPIKE_FACTOR = 3.0  # a grad norm this many times its recent geometric mean counts as a spike


@dataclass(frozen=True)
class Config(ExperimentConfig):
    function: str | None = function_field("sinc", "of the function task", note="none: skip it")
    dataset: str | None = dataset_field("mnist-5k", "of the image task", note="none: skip it")
    train_size: int | None = train_size_field()
    seeds: tuple[int, ...] = seeds_field((0, 1, 2), note="trained together")
    p: str = param("2", "order of the gradient norm: a number >= 1 or inf")
    widths: tuple[int, ...] = widths_field((32, 32), "of both tasks")
    activation: str = activation_field("tanh")
    function_epochs: int = epochs_field(100, "on the function task")
    image_epochs: int = epochs_field(5, "on the image task")
    batch_size: int = batch_size_field(64, "(an iteration is one mini-batch)")
    optimizer: str = optimizer_field()
    learning_rate: float = learning_rate_field(3e-3, optimizer=None)
    num_train: int = num_train_field(1000)
    num_test: int = num_test_field(200)
    model: tuple[str, ...] = model_field("instead of the MLP (widths and activation then unused) on both tasks (--set function=none "
                                         "or dataset=none for one), each seed trained with the ordinary loop",
                                         note="input_shape: (1,) on the function, one image's (C, H, W) on the images; "
                                              "num_outputs: 1 or the classes")

    def validate(self):
        check_one_model(self.model, "grad-norm")
        if not self.function and not self.dataset:
            raise ConfigError("grad-norm needs a task: give a function, a dataset or both")
        norm_order(self.p)


def norm_order(text: str) -> float:
    """'2' -> 2.0, 'inf' -> inf; a ConfigError for anything that is not a norm order (p >= 1)."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"p must be a number >= 1 or inf, got {text!r}") from None
    if not value >= 1:  # p < 1 is not a norm (no triangle inequality); NaN fails too
        raise ConfigError(f"p must be a number >= 1 or inf, got {text!r}")
    return value


PROFILES = {
    "smoke": dict(seeds=(0, 1), widths=(16,), function_epochs=8, image_epochs=1, train_size=500, num_train=200, num_test=50),
    "quick": dict(),
    "full": dict(dataset="mnist", function_epochs=300, image_epochs=20),
}


def _train(config, data, spec, loss, epochs, trial) -> dict:
    train_spec = TrainSpec(loss=loss, optimizer=OptimizerSettings(config.optimizer, lr=config.learning_rate), batch_size=config.batch_size,
                           epochs=epochs, eval_every=1, record_iterations=True, grad_norm_p=norm_order(config.p))
    result = train_ensemble(spec, config.seeds, data, train_spec, device=trial.device, progress=trial.progress)
    runs = [str(i) for i in range(len(config.seeds))]
    return {
        "iteration_loss": torch.tensor([result.log.series("iteration_loss", r)[1] for r in runs], dtype=torch.float64),  # (M, T)
        "grad_norm": torch.tensor([result.log.series("grad_norm", r)[1] for r in runs], dtype=torch.float64),  # (M, T)
        "epoch_steps": result.log.series("train_loss", "0")[0],
        "train_loss": torch.tensor([result.log.series("train_loss", r)[1] for r in runs], dtype=torch.float64),  # (M, epochs + 1)
        "test_loss": torch.tensor([result.log.series("test_loss", r)[1] for r in runs], dtype=torch.float64),
        "status": list(result.status), "epochs": result.epochs_done,
    }


def _train_user(config, data, user, input_shape, num_outputs, loss, epochs, trial) -> dict:
    """Like _train, each seed's user model with the ordinary loop."""
    train_spec = TrainSpec(loss=loss, optimizer=OptimizerSettings(config.optimizer, lr=config.learning_rate), batch_size=config.batch_size,
                           epochs=epochs, eval_every=1, record_iterations=True, grad_norm_p=norm_order(config.p))
    logs, status, done = [], [], []
    for seed in config.seeds:
        model = user_or_builtin(user, None, input_shape=input_shape, num_outputs=num_outputs, seed=seed, device=trial.device)
        result = train_seeded(model, data.to(trial.device), train_spec, seed=seed, progress=trial.progress)
        logs.append(result.log)
        status.append(result.status)
        done.append(result.epochs_done)

    def stacked(name):  # (M, T), NaN after a diverged seed's last record, as the ensemble path has it
        series = [log.series(name, "0")[1] for log in logs]
        longest = max(map(len, series))
        return torch.tensor([values + [math.nan] * (longest - len(values)) for values in series], dtype=torch.float64)

    steps = max((log.series("train_loss", "0")[0] for log in logs), key=len)
    return {"iteration_loss": stacked("iteration_loss"), "grad_norm": stacked("grad_norm"), "epoch_steps": steps,
            "train_loss": stacked("train_loss"), "test_loss": stacked("test_loss"), "status": status, "epochs": max(done)}


def run(config: Config, ctx) -> dict:
    summary = {"p": config.p, "optimizer": config.optimizer, "learning_rate": config.learning_rate, "batch_size": config.batch_size,
               "seeds": list(config.seeds), "tasks": {}}
    tasks = []  # (task, epochs)
    if config.function:
        tasks.append((function_task(config.function, config.num_train, config.num_test), config.function_epochs))
    if config.dataset:
        tasks.append((image_task(config.dataset, config.train_size, ctx.data_dir), config.image_epochs))
    specs = [MLPSpec(task.in_features, config.widths, task.out_features, config.activation) for task, _ in tasks]
    user = single_user_model(config)
    counts = []
    for (task, _), spec in zip(tasks, specs):  # every model built and described before training (a user model checked per task)
        input_shape = tuple(task.data.x_train.shape[1:])
        model = user_or_builtin(user, lambda: build_mlp(spec, torch.Generator().manual_seed(config.seeds[0])), input_shape=input_shape,
                                num_outputs=task.out_features, seed=config.seeds[0])
        counts.append(num_params(model))
        ctx.describe_model(slug(task.name), model, task.data.x_train[:2], "ensemble" if user is None else "loop",
                           **user_details(user, input_shape=input_shape, num_outputs=task.out_features, seed=config.seeds[0]))
    if user is None:
        trials = [(f"train_{slug(task.name)}", partial(_train, config, task.data, spec, task.loss, epochs)) for (task, epochs), spec in zip(tasks, specs)]
    else:
        trials = [(f"train_{slug(task.name)}", partial(_train_user, config, task.data, user, tuple(task.data.x_train.shape[1:]),
                                                       task.out_features, task.loss, epochs)) for task, epochs in tasks]
    factor = 1 if user is None else len(config.seeds)
    results = ctx.map_trials(trials, "grad-norm", steps=[epochs * factor for _, epochs in tasks])
    for (task, epochs), spec, result, count in zip(tasks, specs, results, counts):
        key = slug(task.name)
        iterations_per_epoch = math.ceil(len(task.data.x_train) / config.batch_size)
        summary["tasks"][key] = _summarize(task, spec, result, epochs, iterations_per_epoch)
        summary["tasks"][key]["training_path"] = TRAINING_PATHS["ensemble" if user is None else "loop"]
        if user is not None:
            summary["tasks"][key].update(architecture=user.text, num_params=count, user_model=user.text)
        _record(ctx.log, key, config.seeds, result)
        _draw(ctx, config, key, task, spec, result, iterations_per_epoch,
              model_name(user, f"{spec.describe()} {config.activation} MLP") + f" ({count} params)")
    return summary


def _summarize(task, spec, result, epochs, per_epoch) -> dict:
    losses, norms = result["iteration_loss"].numpy(), result["grad_norm"].numpy()  # (M, T)
    log_losses, log_norms = np.log(np.clip(losses, 1e-300, None)), np.log(np.clip(norms, 1e-300, None))
    window = min(per_epoch, losses.shape[1])

    def per_seed(function):
        return seed_stats([function(i) for i in range(losses.shape[0])])

    def spikes(i):
        sums = np.concatenate([[0.0], np.cumsum(log_norms[i])])
        count = 0
        for t in range(1, len(log_norms[i])):
            start = max(0, t - per_epoch)
            count += log_norms[i, t] > math.log(SPIKE_FACTOR) + (sums[t] - sums[start]) / (t - start)
        return count

    summary = {
        **task.describe(),
        "architecture": spec.describe(), "num_params": spec.num_params, "epochs": epochs, "iterations": int(losses.shape[1]),
        "iterations_per_epoch": per_epoch, "status": result["status"],
        "initial_loss": per_seed(lambda i: losses[i, 0]),
        "first_epoch_loss": per_seed(lambda i: np.exp(log_losses[i, :window].mean())),
        "last_epoch_loss": per_seed(lambda i: np.exp(log_losses[i, -window:].mean())),
        "final_train_loss": seed_stats(result["train_loss"][:, -1].tolist()),
        "grad_norm_start": per_seed(lambda i: norms[i, 0]), "grad_norm_end": per_seed(lambda i: norms[i, -1]),
        "grad_norm_first_epoch": per_seed(lambda i: np.exp(log_norms[i, :window].mean())),
        "grad_norm_last_epoch": per_seed(lambda i: np.exp(log_norms[i, -window:].mean())),
        "grad_norm_min": per_seed(lambda i: norms[i].min()), "grad_norm_max": per_seed(lambda i: norms[i].max()),
        "grad_norm_median": per_seed(lambda i: np.median(norms[i])),
        "argmax_iteration": per_seed(lambda i: int(np.argmax(norms[i]))),
        "spikes": per_seed(spikes),
        "log_correlation": per_seed(lambda i: np.corrcoef(log_losses[i], log_norms[i])[0, 1] if losses.shape[1] > 1 else math.nan),
    }
    if task.note:
        summary["dataset_note"] = task.note
    return summary


def _record(log, key, seeds, result) -> None:
    for index, seed in enumerate(seeds):
        run_name = f"{key}/seed{seed}"
        for step, (loss, norm) in enumerate(zip(result["iteration_loss"][index].tolist(), result["grad_norm"][index].tolist())):
            log.add(run_name, step, "iteration_loss", loss)
            log.add(run_name, step, "grad_norm", norm)
        for position, step in enumerate(result["epoch_steps"]):
            log.add(run_name, step, "train_loss", result["train_loss"][index, position].item())
            log.add(run_name, step, "test_loss", result["test_loss"][index, position].item())


def _draw(ctx, config, key, task, spec, result, per_epoch, model_text) -> None:
    losses, norms = result["iteration_loss"].numpy(), result["grad_norm"].numpy()
    iterations = np.arange(losses.shape[1])
    series = {f"seed {seed}": (iterations, losses[i], norms[i]) for i, seed in enumerate(config.seeds)}
    p_text = "∞" if math.isinf(norm_order(config.p)) else config.p
    p_math = r"\infty" if math.isinf(norm_order(config.p)) else config.p
    # Smooth over about 1/40 of the run, at most an epoch: visible trends without hiding the noise's scale.
    window = int(min(per_epoch, max(5, len(iterations) // 40)))
    loss_name = "MSE" if task.loss == "mse" else "cross-entropy"
    axes = plot_grad_norm(series, title=(f"Loss and gradient {p_text}-norm per iteration: {task.description} ({loss_name}), "
                                         f"{model_text}, "
                                         f"{config.optimizer} lr {config.learning_rate:g}, batch {config.batch_size}"),
                          norm_label=rf"$\|\nabla L\|_{{{p_math}}}$ over all parameters", window=window)
    ctx.run_dir.save_figure(axes[0].figure, f"grad_norm_{key}")
    close(axes[0].figure)


EXPERIMENT = Experiment(
    name="grad-norm", section="1-2", title="Observe the gradient norm during training",
    description="loss and gradient p-norm at every iteration, on a function and on an image dataset",
    config_class=Config, profiles=PROFILES, run=run,
)
