"""1-3 Flatness vs generalization, part 2: do sensitivity and sharpness follow the batch size?

    dlprobe run sensitivity --profile quick            # 5 batch sizes x 2 seeds: about 30 s on a 2-core CPU
    dlprobe run sensitivity --set vary=lr --set learning_rates=1e-4,1e-3,1e-2,3e-2,1e-1

One MLP architecture is trained with Adam at each batch size (log-spaced; the largest default, 4000,
is full batch on mnist-5k's 4000 training images) or, with vary=lr, at each learning rate; all seeds
of one setting train together in the ensemble trainer. Every setting trains for the same number of
EPOCHS, as the assignment did, so large batches take fewer optimizer steps (N / batch per epoch):
part of any trend is this step budget, and summary.json records the steps of each model.

Per model (setting x seed): final train/test loss and accuracy, and three numbers, each named by its source and
measured with the library's functions (dlprobe.sensitivity, dlprobe.sharpness, dlprobe.Hessian):
- input_gradient_sensitivity: the assignment's sensitivity, the mean over test examples of
  ||d loss_n / d x_n||_F (the gradient of one example's cross-entropy w.r.t. its own input);
- jacobian_sensitivity: Novak et al. 2018, mean over test examples of ||d softmax(f(x_n)) / d x_n||_F;
  both over the first `sensitivity_examples` test examples;
- sharpness: Keskar et al. 2017 epsilon-sharpness in percent on a fixed random training subset of
  `sharpness_examples` (projected sign-gradient ascent, `sharpness_steps` steps from a random start in the
  box, seeded), a lower bound of the true maximum;
- hessian_top_eigenvalue: the curvature measure of flatness, lambda_max of the Hessian (w.r.t. all trainable parameters)
  of the mean training cross-entropy over a fixed random training subset of `hessian_examples` (the first
  examples of the same seeded permutation the sharpness subset takes), from the `hessian_top_k` largest
  eigenvalues found by Lanczos on Hessian-vector products (`hessian_top_eigenvalues`: dlprobe.Hessian(...).eigenvalues,
  the library's own, in eval mode, start vector seeded by the run seed, in the model's float32 with tolerance 1e-5).
Trends are Spearman rank correlations over all runs (setting x seed pairs) between the varied setting
and each quantity (lambda_max among them), worded by `report.wording.describe_trend` (a trend only when the permutation p-value is below 0.05).

summary.json: dataset, dataset_note, model, num_params, optimizer, epochs, seeds, vary ("batch_size" or
"learning_rate"), num_train, definitions {name: text}, epsilon, sensitivity_examples, sharpness_examples,
hessian_examples, hessian_top_k, models: list in setting order of {batch_size, learning_rate, steps
(optimizer steps per model), status (per seed), seed stats (mean, std, min, max, values, n) of train_loss,
test_loss, train_accuracy, test_accuracy, loss_gap (test - train loss), input_gradient_sensitivity,
jacobian_sensitivity, sharpness, hessian_top_eigenvalue (lambda_max), and hessian_top_eigenvalues: per seed
the hessian_top_k largest eigenvalues, descending}, spearman: {quantity: {rho, p_value (two-sided permutation
test), n}} of the varied setting vs input_gradient_sensitivity, jacobian_sensitivity, sharpness,
hessian_top_eigenvalue, loss_gap, test_loss, test_accuracy.
metrics.csv: run "<setting>/seed<s>": per-epoch train/test loss and accuracy (step = epoch), and the
final input_gradient_sensitivity, jacobian_sensitivity, sharpness, hessian_top_eigenvalue (step = last epoch).
Figures: loss, accuracy, sharpness and hessian (lambda_max, log scale, with the loss gap) vs the varied setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from ..analysis.landscape import evaluation_mode
from ..analysis.stats import rank_correlation, seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import (activation_field, batch_size_field, batch_sizes_field, dataset_field, epochs_field,
                             learning_rate_field, learning_rates_field, model_field, seeds_field, train_size_field, widths_field)
from ..data.images import load_dataset
from ..data.tensors import TensorData
from ..errors import ConfigError
from ..library.hessian import Hessian
from ..library.measures import sensitivity, sharpness
from ..losses import mean_loss
from ..models.mlp import MLPSpec, build_mlp
from ..plotting.flatness import plot_twin_metrics
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.ensemble import train_ensemble
from ..training.loop import TrainSpec
from .base import Experiment
from .model_choice import (TRAINING_PATHS, check_one_model, final_value, model_name, num_params, single_user_model,
                           train_seeded, user_details, user_or_builtin)

METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
QUANTITIES = ("input_gradient_sensitivity", "jacobian_sensitivity", "sharpness", "hessian_top_eigenvalue", "loss_gap", "test_loss",
              "test_accuracy")
LEGENDS = {
    "input_gradient_sensitivity": "sensitivity: mean ‖∂loss/∂x‖ (assignment)",
    "jacobian_sensitivity": "‖∂softmax/∂x‖_F (Novak et al. 2018)",
}


@dataclass(frozen=True)
class Config(ExperimentConfig):
    dataset: str = dataset_field("mnist-5k")
    train_size: int | None = train_size_field()
    widths: tuple[int, ...] = widths_field((256,))
    activation: str = activation_field("relu")
    vary: str = param("batch_size", "what differs between the models", choices=("batch_size", "lr"))
    batch_sizes: tuple[int, ...] = batch_sizes_field((16, 64, 256, 1024, 4000), "(vary=batch_size); at most the training set size")
    learning_rates: tuple[float, ...] = learning_rates_field((1e-4, 3e-4, 1e-3, 3e-3, 1e-2), "(vary=lr)")
    learning_rate: float = learning_rate_field(1e-3, "of every model when varying the batch size")
    batch_size: int = batch_size_field(64, "of every model when varying the learning rate")
    epochs: int = epochs_field(20, "of every model (fixed epochs: large batches take fewer steps)")
    seeds: tuple[int, ...] = seeds_field((0, 1, 2), "per setting")
    sensitivity_examples: int = param(1000, "first N test examples the sensitivities average over", minimum=1)
    sharpness_examples: int = param(1000, "size of the fixed random training subset for ε-sharpness", minimum=1)
    epsilon: float = param(1e-3, "ε of Keskar's sharpness box |z_i| <= ε (|θ_i| + 1)", minimum=0.0, maximum=1.0)
    sharpness_steps: int = param(10, "projected ascent steps of the sharpness search", minimum=0)
    hessian_examples: int = param(1000, "size of the fixed random training subset for the Hessian's top eigenvalues", minimum=1)
    hessian_top_k: int = param(3, "largest Hessian eigenvalues found by Lanczos per model (the first is λ_max)", minimum=1)
    model: tuple[str, ...] = model_field("instead of the MLP (widths and activation then unused), trained with the ordinary loop "
                                         "per seed", note="input_shape: one image's (C, H, W); num_outputs: the classes")

    def validate(self):
        check_one_model(self.model, "sensitivity")
        settings = self.batch_sizes if self.vary == "batch_size" else self.learning_rates
        if len(settings) < 2 or len(set(settings)) != len(settings):
            raise ConfigError(f"{'batch_sizes' if self.vary == 'batch_size' else 'learning_rates'} must list at least two distinct values")


PROFILES = {
    "smoke": dict(train_size=500, widths=(32,), batch_sizes=(25, 50, 100, 250, 500), epochs=2, seeds=(0,),
                  sensitivity_examples=100, sharpness_examples=200, sharpness_steps=3, hessian_examples=200),
    "quick": dict(epochs=20, seeds=(0, 1)),
    "full": dict(dataset="mnist", epochs=30, seeds=(0, 1, 2)),
}


def _settings(config: Config) -> list[tuple[int, float]]:
    """(batch_size, learning_rate) of each model, in the order of the varied value."""
    if config.vary == "batch_size":
        return [(b, config.learning_rate) for b in sorted(config.batch_sizes)]
    return [(config.batch_size, lr) for lr in sorted(config.learning_rates)]


def _train_setting(spec, data, config, batch_size, learning_rate, sharpness_subset, hessian_subset, trial, user=None,
                   input_shape=None) -> dict:
    """Train all seeds of one setting on trial.device (dlprobe's MLP: together in the ensemble trainer; a user model:
    each seed with the ordinary loop), then measure every member: a checkpoint-safe dict."""
    device = trial.device
    data, sharpness_subset, hessian_subset = data.to(device), sharpness_subset.to(device), hessian_subset.to(device)
    train_spec = TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=learning_rate), batch_size=batch_size,
                           epochs=config.epochs, eval_every=1)
    if user is None:
        result = train_ensemble(spec, config.seeds, data, train_spec, device=device, progress=trial.progress)
        members = [result.model.member(index) for index in range(len(config.seeds))]
        curves = [{name: result.log.series(name, str(i))[1] for name in ("epoch", *METRICS)} for i in range(len(config.seeds))]
        final = {name: result.final[name].tolist() for name in METRICS}
        status, epochs_done = list(result.status), result.epochs_done
    else:
        members, curves, status = [], [], []
        for seed in config.seeds:
            model = user_or_builtin(user, None, input_shape=input_shape, num_outputs=spec.out_features, seed=seed, device=device)
            result = train_seeded(model, data, train_spec, seed=seed, progress=trial.progress)
            members.append(model)
            curves.append({name: result.log.series(name)[1] for name in ("epoch", *METRICS)})
            status.append(result.status)
        final = {name: [final_value(c[name], seed_status) for c, seed_status in zip(curves, status)] for name in METRICS}
        epochs_done = min(len(c["epoch"]) - 1 for c in curves)
    x_sensitivity = data.x_test[: config.sensitivity_examples]
    y_sensitivity = data.y_test[: config.sensitivity_examples]
    cross_entropy = mean_loss("cross_entropy")
    # The library's sensitivity and sharpness over batches (memory bounded by one): 1024 examples per input-gradient
    # and sharpness forward, 256 per vmap(jacrev) of the Jacobian (about 256 * C * D numbers).
    gradient_batches, jacobian_batches = _batches(x_sensitivity, y_sensitivity, 1024), _batches(x_sensitivity, y_sensitivity, 256)
    sharpness_batches = _batches(data.x_train[sharpness_subset], data.y_train[sharpness_subset], 1024)
    measured = {"input_gradient_sensitivity": [], "jacobian_sensitivity": [], "sharpness": [], "hessian_top_eigenvalue": []}
    hessian_top = []  # per seed: the hessian_top_k largest eigenvalues, descending
    for model, seed in zip(members, config.seeds):
        measured["input_gradient_sensitivity"].append(sensitivity(model, gradient_batches, "input_gradient", loss_fn=cross_entropy))
        measured["jacobian_sensitivity"].append(sensitivity(model, jacobian_batches, "jacobian"))
        measured["sharpness"].append(sharpness(model, cross_entropy, sharpness_batches, epsilon=config.epsilon,
                                               steps=config.sharpness_steps, seed=int(seed)).sharpness)
        hessian_top.append(hessian_top_eigenvalues(model, data.x_train[hessian_subset], data.y_train[hessian_subset],
                                                   config.hessian_top_k, int(seed)))
        measured["hessian_top_eigenvalue"].append(hessian_top[-1][0])
    steps_per_epoch = -(-len(data.x_train) // batch_size)
    return {"final": final, "measured": measured,
            "hessian_top_eigenvalues": hessian_top, "curves": curves,
            "status": status, "steps": steps_per_epoch * epochs_done}


def _batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(zip(x.split(size), y.split(size)))


def hessian_top_eigenvalues(model, x: torch.Tensor, y: torch.Tensor, k: int, seed: int) -> list[float]:
    """The k largest eigenvalues, descending, of the Hessian of the mean cross-entropy over x (N, ...), y (N,) w.r.t.
    the model's trainable parameters (all of them for dlprobe's MLP): `dlprobe.Hessian.eigenvalues` (Lanczos, eigsh,
    start vector from seed, tolerance 1e-5 in float32). In eval mode (BatchNorm with its running statistics, no
    dropout), so the loss is a function of the parameters alone; the model's flags are restored."""
    with evaluation_mode(model):
        values = Hessian(model, F.cross_entropy, (x, y), progress=False).eigenvalues(k, seed=seed).values
    return [float(value) for value in values]


def run(config: Config, ctx) -> dict:
    dataset = load_dataset(config.dataset, data_dir=ctx.data_dir, train_size=config.train_size)
    num_train = dataset.num_train
    too_large = [b for b in (config.batch_sizes if config.vary == "batch_size" else (config.batch_size,)) if b > num_train]
    if too_large:
        raise ConfigError(f"batch sizes {too_large} exceed the {num_train} training images of {dataset.name}; use at most {num_train}")
    spec = MLPSpec(int(np.prod(dataset.input_shape)), config.widths, dataset.num_classes, config.activation)
    user = single_user_model(config)
    described = user_or_builtin(user, lambda: build_mlp(spec, torch.Generator().manual_seed(config.seeds[0])),
                                input_shape=dataset.input_shape, num_outputs=dataset.num_classes, seed=config.seeds[0])
    count = num_params(described)
    training = "ensemble" if user is None else "loop"
    ctx.describe_model("model", described, dataset.x_train[:2], training,
                       **user_details(user, input_shape=tuple(dataset.input_shape), num_outputs=dataset.num_classes, seed=config.seeds[0]))
    if config.hessian_top_k >= count:
        raise ConfigError(f"hessian_top_k={config.hessian_top_k} must be below the model's {count} parameters")
    data = TensorData(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test).to(ctx.device)
    # Fixed training subsets for every model, so sharpness and Hessian values are comparable across settings; both are
    # the first examples of one seeded permutation (the same subset when their sizes agree).
    order = torch.randperm(num_train, generator=torch.Generator().manual_seed(config.seed)).to(ctx.device)
    subsets = order[: config.sharpness_examples], order[: config.hessian_examples]
    settings = _settings(config)
    extra = {} if user is None else {"user": user, "input_shape": tuple(dataset.input_shape)}
    trials = [(f"bs{batch_size}_lr{learning_rate:g}", partial(_train_setting, spec, data, config, batch_size, learning_rate, *subsets, **extra))
              for batch_size, learning_rate in settings]
    results = ctx.map_trials(trials, "sensitivity", steps=config.epochs * (1 if user is None else len(config.seeds)))
    varied = "batch_size" if config.vary == "batch_size" else "learning_rate"
    models = [_summarize_model(b, lr, r) for (b, lr), r in zip(settings, results)]
    summary = {"dataset": dataset.name, "dataset_note": dataset.note,
               "model": model_name(user, f"MLP {spec.describe()} ({config.activation})"),
               "num_params": count, "training_path": TRAINING_PATHS[training], "optimizer": "adam", "epochs": config.epochs,
               "seeds": list(config.seeds),
               "vary": varied, "num_train": num_train, "epsilon": config.epsilon, "sensitivity_examples": min(config.sensitivity_examples, dataset.num_test),
               "sharpness_examples": min(config.sharpness_examples, num_train), "hessian_examples": min(config.hessian_examples, num_train),
               "hessian_top_k": config.hessian_top_k, "definitions": _definitions(config),
               "models": models, "spearman": spearman_trends(models, varied)}
    _record(ctx.log, settings, results, config, varied)
    _draw(ctx, models, varied, config, model_name(user, f"MLP {spec.describe()}"), count, dataset.name)
    return summary


def _definitions(config: Config) -> dict:
    return {
        "input_gradient_sensitivity": "assignment: mean over test examples of the Frobenius norm of d loss_n / d x_n",
        "jacobian_sensitivity": "Novak et al. 2018: mean over test examples of the Frobenius norm of d softmax(f(x_n)) / d x_n",
        "sharpness": (f"Keskar et al. 2017 epsilon-sharpness (percent), epsilon={config.epsilon:g}, box |z_i| <= epsilon (|theta_i| + 1), "
                      f"{config.sharpness_steps} projected sign-gradient ascent steps from a random start (a lower bound)"),
        "hessian_top_eigenvalue": ("largest eigenvalue lambda_max of the Hessian w.r.t. all trainable parameters of the mean training cross-entropy "
                                   f"over a fixed random subset of {config.hessian_examples} training examples (fewer if the set is smaller), "
                                   f"by Lanczos on Hessian-vector products (scipy eigsh, the {config.hessian_top_k} largest, float32, "
                                   "relative tolerance 1e-5, start vector seeded by the run seed)"),
    }


def _summarize_model(batch_size, learning_rate, result) -> dict:
    final, measured = result["final"], result["measured"]
    gap = [test - train for test, train in zip(final["test_loss"], final["train_loss"])]
    return {"batch_size": batch_size, "learning_rate": learning_rate, "steps": result["steps"], "status": result["status"],
            **{name: seed_stats(values) for name, values in final.items()}, "loss_gap": seed_stats(gap),
            **{name: seed_stats(values) for name, values in measured.items()}, "hessian_top_eigenvalues": result["hessian_top_eigenvalues"]}


def spearman_trends(models: list[dict], varied: str) -> dict:
    """Spearman rho (and p-value) of the varied setting vs each quantity over all (setting, seed) runs."""
    trends = {}
    for quantity in QUANTITIES:
        settings, values = [], []
        for model in models:
            for value in model[quantity]["values"]:
                if np.isfinite(value):
                    settings.append(model[varied])
                    values.append(value)
        rho, p_value = rank_correlation(settings, values)
        trends[quantity] = {"rho": rho, "p_value": p_value, "n": len(values)}
    return trends


def _record(log, settings, results, config, varied) -> None:
    for (batch_size, learning_rate), result in zip(settings, results):
        name = f"batch{batch_size}" if varied == "batch_size" else f"lr{learning_rate:g}"
        for index, seed in enumerate(config.seeds):
            run_name = f"{name}/seed{seed}"
            curves = result["curves"][index]
            for position, epoch in enumerate(curves["epoch"]):
                for metric in METRICS:
                    log.add(run_name, int(epoch), metric, curves[metric][position])
            last = int(curves["epoch"][-1]) if curves["epoch"] else config.epochs
            for quantity, values in result["measured"].items():
                log.add(run_name, last, quantity, values[index])


def _runs(models, quantity) -> np.ndarray:
    """(seeds, settings) values of one quantity."""
    return np.array([m[quantity]["values"] for m in models], dtype=float).T


def _draw(ctx, models, varied, config, model, count, dataset_name) -> None:
    x_values = [m[varied] for m in models]
    xlabel = "batch size (log scale)" if varied == "batch_size" else "Adam learning rate (log scale)"
    fixed = f"lr {config.learning_rate:g}" if varied == "batch_size" else f"batch {config.batch_size}"
    seeds = f"{len(config.seeds)} seed{'s' if len(config.seeds) > 1 else ''}" + (", band = min-max" if len(config.seeds) > 1 else "")
    setting = f"{model} ({count} params), Adam {fixed}, {config.epochs} epochs, {dataset_name}, {seeds}"
    sensitivity = {LEGENDS["input_gradient_sensitivity"]: (_runs(models, "input_gradient_sensitivity"), "-.")}
    figures = {
        "loss": ({"train loss": (_runs(models, "train_loss"), "-"), "test loss": (_runs(models, "test_loss"), "--")}, sensitivity,
                 "cross-entropy (log scale)", "sensitivity (assignment)", True, False, "Loss and sensitivity"),
        "accuracy": ({"train accuracy": (_runs(models, "train_accuracy"), "-"), "test accuracy": (_runs(models, "test_accuracy"), "--")},
                     sensitivity, "accuracy", "sensitivity (assignment)", False, False, "Accuracy and sensitivity"),
        "sharpness": ({f"ε-sharpness, ε={config.epsilon:g} (Keskar et al. 2017)": (_runs(models, "sharpness"), "-")},
                      {LEGENDS["jacobian_sensitivity"]: (_runs(models, "jacobian_sensitivity"), "-.")},
                      "ε-sharpness (% loss increase)", "Jacobian sensitivity (Novak et al. 2018)", False, False, "Sharpness and Jacobian sensitivity"),
        "hessian": ({"λ_max of the training-loss Hessian (Lanczos)": (_runs(models, "hessian_top_eigenvalue"), "-")},
                    {"test − train loss gap": (_runs(models, "loss_gap"), "--")},
                    "top Hessian eigenvalue λ_max (log scale)", "test − train cross-entropy", True, False, "Top Hessian eigenvalue and loss gap"),
    }
    for name, (left, right, left_label, right_label, left_log, right_log, title) in figures.items():
        ax = plot_twin_metrics(x_values, left, right, xlabel=xlabel, left_label=left_label, right_label=right_label,
                               title=f"{title} vs {xlabel.split(' (')[0]}\n{setting}", left_log=left_log, right_log=right_log)
        ctx.run_dir.save_figure(ax.figure, f"{name}_vs_{varied}")
        close(ax.figure)


EXPERIMENT = Experiment(
    name="sensitivity", section="1-3", title="Flatness vs generalization (2): sensitivity and sharpness vs batch size",
    description="models trained at 5+ batch sizes (or learning rates): loss, accuracy, two input sensitivities, ε-sharpness and Hessian λ_max",
    config_class=Config, profiles=PROFILES, run=run,
)
