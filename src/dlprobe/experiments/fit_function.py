"""1-1 Deep vs Shallow, simulate a function: at one parameter budget, does a deeper net fit better?

    dlprobe run fit-function --profile quick          # about 4 minutes on a 2-core CPU
    dlprobe run fit-function --function "exp(-x**2)*sin(8*x)" --depths 1,2,4,8

For each target function and each depth, the budget solver picks widths whose exact parameter count is
within 1% of the budget. Each model gets a fair learning-rate search (every rate x every seed for
`search_epochs`, best geometric-mean training MSE kept); when the best rate is an end of the grid, the grid
is widened by its own step beyond that end (up to `widen_grid` times, so the chosen rate is bracketed by
worse ones). Then all seeds train with that rate, decayed on plateau: when a seed's train MSE has not
improved by `rel_improvement` (0.1%) over `patience` epochs, its learning rate is multiplied by `lr_decay`, up to
`max_lr_decays` times; the seed has converged when that happens at its last rate (or at `max_epochs`, not
converged). Adam at a fixed high rate ends in a noisy floor of loss spikes on ReLU nets; the decay lets the
seeds settle at the bottom of it. All seeds (and all rates of the search) of one depth train at once with the
ensemble trainer. Full batch Adam on a dense grid; test MSE on a separate grid.

Then each seed goes on from its Adam end point with full-batch L-BFGS in float64 (training/polish.py: strong-Wolfe
line search, up to `polish_iters` iterations; 0 turns it off). Why: on the square wave at a 1000-parameter budget
Adam still lowers the train MSE by 0.5-3% per 500 epochs at epoch 8000, and by more than 0.1% per 500 epochs at
40,000, so no Adam budget of a quick profile reaches its plateau, while L-BFGS from the same points stops within
5000 iterations, under 20 s per seed here (measured on the quick profile: train MSE of
the 1-layer net 0.11-0.15 after 8000 Adam epochs, 4.4e-4 to 0.052 after L-BFGS; 7 of the 9 square-wave seed runs
converged). When torch's stopping test fires (`polish_tolerance`) while that run of L-BFGS still lowered the MSE
by more than `rel_improvement`, it restarts with a fresh memory; a seed has converged when a run of L-BFGS stops
having lowered it by at most that (the same 0.1% as the plateau rule), and not converged when it reaches
`polish_iters` first (or its loss becomes NaN). With the L-BFGS phase on, `converged` means this; the Adam
plateau rule's outcome is `adam_converged`. "Tuned to the best", as the assignment asks, is then the bottom of
the basin that Adam found, for every model alike.

Activation default: ReLU. A ReLU net computes a piecewise-linear function whose number of pieces can grow
exponentially with depth but only linearly with width (Montufar et al. 2014): the textbook argument for
depth, so it is the activation under which this experiment asks its question. `--activation tanh` works.

summary.json: functions.<name> = {formula, domain, models: {"<depth>": {depth, widths, num_params,
learning_rate, lr_search {rate: geometric-mean train MSE}, lr_grid_edge, lr_grid_widened (rates added
beyond the configured grid), status (per seed), converged, adam_converged, converged_at_epoch (Adam's plateau rule),
lr_decay_epochs (per seed), final_train_mse / final_test_mse (seed stats: mean, std, min, max, values, n; after
L-BFGS when it is on), polish {iterations, converged, restarts, diverged (a loss that became NaN/inf in the L-BFGS
phase), max_gradient (per seed), adam_train_mse, adam_test_mse (seed stats before L-BFGS)} when it is on,
epochs_trained, epochs_to_mse {"1e-2": seed stats or None}, final_window (epochs: patience, or max_epochs / 10 when
patience is 0), final_window_drop (per seed: how much the best train MSE fell over the last final_window epochs,
1 - best / best before the window; the report calls a capped seed "still falling" when this exceeds rel_improvement)}}}, and stopping_rule {patience,
rel_improvement, max_epochs, lr_decay, max_lr_decays}, polish {method, max_iterations, tolerance} (null when off,
and with --model: the user models train with the ordinary loop only).
- converged (per seed): with L-BFGS on, true when its stopping test fired after a run of it that lowered the MSE by
  at most rel_improvement (above); false when it reached polish_iters first or diverged; otherwise as adam_converged.
- adam_converged (per seed): true when the plateau rule fired for that seed, at converged_at_epoch (null when
  it never fired or the seed diverged). The seeds of one depth train together until every one has
  converged, so epochs_trained (shared by the seeds) is below max_epochs only when all converged (or
  diverged); a seed that neither converged nor diverged (status) trained to the max_epochs cap.
- lr_grid_edge: "lowest" or "highest" when the chosen rate is that end of the searched grid (the
  configured rates plus lr_grid_widened), "only" when the grid has one rate, null when it lies inside: at
  an edge (widening exhausted), the best rate may lie outside the grid.
With --model (repeatable): models.<position> as for depths, each with its `model` text (widths empty, converged
never: the ordinary loop has no stopping rule), and user_models, same_parameter_count {counts, relative_spread,
within_1_percent}, training_path at the top level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..analysis.stats import final_window_drop, first_step_below, geometric_mean, seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import (activation_field, eval_every_field, functions_field, learning_rates_field, model_field,
                             num_test_field, num_train_field, seeds_field)
from ..data.functions import function_dataset, get_function
from ..data.tensors import TensorData
from ..errors import ConfigError
from ..models.budget import check_same_budget, mlp_for_budget
from ..models.mlp import build_mlp
from ..plotting.fit import plot_function_fits, plot_loss_curves, plot_two_phase_loss
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.ensemble import train_ensemble
from ..training.loop import TrainSpec
from ..training.polish import PolishRecord, lbfgs_polish
from .base import Experiment
from .common import slug
from .model_choice import TRAINING_PATHS, final_value, num_params, train_seeded, user_details, user_models, user_or_builtin

THRESHOLDS = (1e-2, 1e-3, 1e-4)
POLISH_METHOD = "L-BFGS from each seed's Adam end point (torch.optim.LBFGS, strong-Wolfe line search, history 50, full batch, float64)"
EXTRAPOLATION = 0.15  # the prediction plot extends this fraction of the domain width beyond each end


@dataclass(frozen=True)
class Config(ExperimentConfig):
    functions: tuple[str, ...] = functions_field(("sinc", "sign-sin"))
    depths: tuple[int, ...] = param((1, 3, 6), "number of hidden layers of each model", minimum=1, maximum=64)
    budget: int = param(1000, "parameter budget shared by all models (exact counts within 1%)", minimum=8)
    activation: str = activation_field("relu")
    learning_rates: tuple[float, ...] = learning_rates_field((1e-3, 3e-3, 1e-2), "tried per model")
    search_epochs: int = param(2000, "epochs of each learning-rate trial", minimum=1)
    max_epochs: int = param(20000, "epoch limit of the final training (the assignment used 20000)", minimum=1)
    patience: int = param(2000, "plateau: train MSE improved by less than rel_improvement over this many epochs; "
                                "decays the learning rate, or stops the seed after the last decay (0: never)", minimum=0)
    rel_improvement: float = param(1e-3, "relative improvement of the train MSE that restarts the plateau count",
                                   minimum=0.0, maximum=1.0)
    lr_decay: float = param(0.1, "factor on the learning rate at each plateau", minimum=0.0, maximum=1.0)
    max_lr_decays: int = param(2, "learning-rate decays per seed before a plateau counts as converged (0: none)", minimum=0)
    widen_grid: int = param(2, "times the learning-rate grid may grow beyond the end that won the search", minimum=0)
    polish_iters: int = param(5000, "L-BFGS iterations after Adam, per seed (full batch, float64, strong-Wolfe line search; "
                                    "0: Adam only)", minimum=0)
    polish_tolerance: float = param(1e-12, "L-BFGS's own stopping test: the gradient, the step or the change of the train MSE "
                                           "fell to this; it restarts while a run still lowered the MSE by rel_improvement",
                                    minimum=0.0)
    seeds: tuple[int, ...] = seeds_field((0, 1, 2, 3, 4), "of the final training", note="mean and spread are reported")
    num_train: int = num_train_field(1000)
    num_test: int = num_test_field(300)
    eval_every: int = eval_every_field(20)
    model: tuple[str, ...] = model_field("compared instead of the budget's MLPs (repeatable; depths and budget then unused), each "
                                         "seed trained with the ordinary loop for max_epochs (no stopping rule)",
                                         note="input_shape: (1,); num_outputs: 1; the report says whether their exact counts are "
                                              "within 1%", noun="user models")

    def validate(self):
        if len(set(self.model)) != len(self.model):
            raise ConfigError(f"model must list distinct factories, got {self.model}")
        if not self.functions or not self.depths or not self.learning_rates:
            raise ConfigError("functions, depths and learning_rates must each list at least one value")
        if self.max_lr_decays and not (0.0 < self.lr_decay < 1.0 and self.patience):
            raise ConfigError("max_lr_decays > 0 needs 0 < lr_decay < 1 and a stopping rule (patience > 0); "
                              "set --set max_lr_decays=0 to train at one learning rate")


PROFILES = {
    "smoke": dict(functions=("sinc",), depths=(1, 3), budget=300, learning_rates=(3e-3, 1e-2), search_epochs=100,
                  max_epochs=600, patience=0, max_lr_decays=0, widen_grid=0, polish_iters=0, seeds=(0, 1), num_train=200,
                  num_test=50, eval_every=20),
    # quick: 8000 Adam epochs with plateaus of 500 (two decays x0.1), then L-BFGS; on the square wave Adam still improves
    # at the cap (one more jump fitted at a time) and L-BFGS finishes it (module docstring)
    "quick": dict(search_epochs=500, max_epochs=8000, patience=500, seeds=(0, 1, 2), eval_every=20),
    "full": dict(),
}


def _search_rates(config: Config, score: Callable[[list[float]], dict[float, float]]) -> tuple[dict[str, float], float, list[float]]:
    """The learning-rate search: score(rates) -> {rate: geometric-mean train MSE over the seeds after search_epochs}
    for the configured rates; while the best rate is an end of the grid, one more rate a grid step beyond it (up to
    widen_grid times). Returns ({repr(rate): score}, the best rate, the rates added beyond the configured grid)."""
    scores: dict[float, float] = {}

    def search(rates: list[float]) -> None:
        scores.update(score(rates))

    search(sorted(config.learning_rates))
    added = []
    for _ in range(config.widen_grid if len(scores) > 1 else 0):
        grid = sorted(scores)
        best = min(grid, key=lambda r: scores[r])
        if best not in (grid[0], grid[-1]):
            break
        step = grid[1] / grid[0] if best == grid[0] else grid[-1] / grid[-2]
        rate = float(f"{best / step if best == grid[0] else best * step:.3g}")
        search([rate])
        added.append(rate)
    best = min(sorted(scores), key=lambda r: scores[r])
    return {repr(rate): scores[rate] for rate in sorted(scores)}, best, added


def _train_depth(config: Config, data: TensorData, depth: int, trial) -> dict:
    """Learning-rate search then final training for one depth on trial.device; a checkpoint-safe dict of results."""
    device = trial.device
    spec = mlp_for_budget(config.budget, depth, 1, 1, config.activation)
    seeds = list(config.seeds)
    search_spec = TrainSpec(loss="mse", optimizer=OptimizerSettings("adam"), epochs=config.search_epochs, eval_every=config.search_epochs)

    def score(rates: list[float]) -> dict[float, float]:  # every rate x seed at once in one ensemble
        result = train_ensemble(spec, seeds * len(rates), data, search_spec, lrs=[r for r in rates for _ in seeds],
                                device=device, record_runs=False)
        losses = result.final["train_loss"].view(len(rates), len(seeds))
        return {rate: geometric_mean(losses[i].tolist()) for i, rate in enumerate(rates)}

    lr_search, best_rate, widened = _search_rates(config, score)
    final_spec = TrainSpec(loss="mse", optimizer=OptimizerSettings("adam", lr=best_rate), epochs=config.max_epochs,
                           eval_every=config.eval_every, stop_patience=config.patience, stop_rel_improvement=config.rel_improvement,
                           lr_decay=config.lr_decay, max_lr_decays=config.max_lr_decays)
    result = train_ensemble(spec, seeds, data, final_spec, device=device, progress=trial.progress,
                            checkpoint_path=trial.checkpoint, checkpoint_every=max(1, config.max_epochs // 20))
    low, high = data.x_train.min().item(), data.x_train.max().item()
    margin = EXTRAPOLATION * (high - low)
    grid = torch.linspace(low - margin, high + margin, 600, device=device).unsqueeze(1)
    with torch.no_grad():
        predictions = result.model(grid, shared=True)[..., 0].cpu()  # (seeds, 600)
    final_train, final_test = result.final["train_loss"].tolist(), result.final["test_loss"].tolist()
    polish = None
    if config.polish_iters:
        polish = _polish(config, result, data, grid, trial.progress)
        predictions = polish.pop("predictions")
        final_train, final_test = polish["train_mse"], polish["test_mse"]
    curves = {}
    for index in range(len(seeds)):
        epochs, _ = result.log.series("epoch", str(index))
        curves[index] = {name: result.log.series(name, str(index))[1] for name in ("train_loss", "test_loss")}
        curves[index]["epoch"] = epochs
    return {
        "widths": list(spec.widths), "num_params": spec.num_params, "learning_rate": best_rate, "lr_search": lr_search,
        "lr_grid_widened": widened, "lr_decay_epochs": [list(epochs) for epochs in result.lr_decays], "status": result.status, "epochs_trained": result.epochs_done, "converged_epoch": list(result.converged_epoch),
        "adam_train": result.final["train_loss"].tolist(), "adam_test": result.final["test_loss"].tolist(),
        "final_train": final_train, "final_test": final_test, "polish": polish,
        "curves": [curves[i] for i in range(len(seeds))], "grid": grid[:, 0].cpu(), "predictions": predictions,
    }


def _polish(config: Config, result, data: TensorData, grid: torch.Tensor, progress) -> dict:
    """L-BFGS from each seed's Adam end point (training/polish.py), in float64; per seed its record, train and test MSE
    after it, and the predictions on `grid` (seeds, G). A diverged seed is left as it is (NaN, not converged)."""
    data = data.to(grid.device)  # the trainer moved its own copy; the members live where it trained
    x, y = data.x_train.double(), data.y_train.double()
    records, predictions, test = [], [], []
    for index, status in enumerate(result.status):
        member = result.model.member(index).double()
        if status == "ok":
            record = lbfgs_polish(member, torch.nn.functional.mse_loss, x, y, config.polish_iters, config.polish_tolerance,
                                  rel_improvement=config.rel_improvement, progress=progress)
        else:
            record = PolishRecord(iterations=0, converged=False, diverged=False, train_loss=math.nan, start_loss=math.nan,
                                  max_gradient=math.nan, curve_iterations=[0], curve_loss=[math.nan])  # not run: Adam diverged
        with torch.no_grad():
            test.append(float(torch.nn.functional.mse_loss(member(data.x_test.double()), data.y_test.double())) if status == "ok" else math.nan)
            predictions.append(member(grid.double())[:, 0].float().cpu())
        records.append(record)
    return {"iterations": [r.iterations for r in records], "converged": [r.converged for r in records],
            "restarts": [r.restarts for r in records],
            "diverged": [r.diverged for r in records],
            "max_gradient": [r.max_gradient for r in records],
            "train_mse": [r.train_loss for r in records], "test_mse": test, "predictions": torch.stack(predictions),
            "curves": [{"iteration": r.curve_iterations, "train_loss": r.curve_loss} for r in records]}


def run(config: Config, ctx) -> dict:
    summary = {"functions": {}, "budget": config.budget, "activation": config.activation, "seeds": list(config.seeds),
               "optimizer": "adam (full batch)", "learning_rates_tried": list(config.learning_rates),
               "stopping_rule": {"patience": config.patience, "rel_improvement": config.rel_improvement, "max_epochs": config.max_epochs,
                                 "lr_decay": config.lr_decay, "max_lr_decays": config.max_lr_decays},
               "polish": {"method": POLISH_METHOD, "max_iterations": config.polish_iters, "tolerance": config.polish_tolerance}
               if config.polish_iters and not config.model else None}
    targets = [get_function(name) for name in config.functions]
    if config.model:
        return _run_user_models(config, ctx, summary, targets)
    for depth in config.depths:
        spec = mlp_for_budget(config.budget, depth, 1, 1, config.activation)
        ctx.describe_model(f"depth{depth}", build_mlp(spec, torch.Generator().manual_seed(config.seeds[0])), torch.zeros(2, 1), "ensemble")
    check_same_budget([mlp_for_budget(config.budget, d, 1, 1, config.activation) for d in config.depths])
    datasets = {target.name: TensorData(*function_dataset(target, config.num_train, config.num_test)) for target in targets}
    trials = [(f"{slug(target.name)}_depth{depth}", partial(_train_depth, config, datasets[target.name], depth))
              for target in targets for depth in config.depths]
    results = iter(ctx.map_trials(trials, "fit-function", steps=config.max_epochs + config.polish_iters * len(config.seeds)))
    for target in targets:  # the same order as the trials
        key, data = slug(target.name), datasets[target.name]
        by_depth = {depth: next(results) for depth in config.depths}
        summary["functions"][target.name] = _summarize(target, by_depth, config)
        _record_metrics(ctx.log, key, by_depth, config)
        _draw(ctx, target, key, data, by_depth)
    return summary


def _train_user_model(config: Config, data: TensorData, user, trial) -> dict:
    """A user model's learning-rate search (every rate x seed, search_epochs) and final training (max_epochs, no stopping
    rule) with the ordinary full-batch loop: the dict _train_depth returns (widths empty, converged never)."""
    device, data = trial.device, data.to(trial.device)
    arguments = {"input_shape": (1,), "num_outputs": 1}

    def trained(seed, rate, epochs, eval_every, progress=None):
        model = user_or_builtin(user, None, **arguments, seed=seed, device=device)
        spec = TrainSpec(loss="mse", optimizer=OptimizerSettings("adam", lr=rate), epochs=epochs, eval_every=eval_every)
        return model, train_seeded(model, data, spec, seed=seed, progress=progress)

    seeds = list(config.seeds)

    def score(rates: list[float]) -> dict[float, float]:
        def searched(seed: int, rate: float) -> float:
            result = trained(seed, rate, config.search_epochs, config.search_epochs)[1]
            return final_value(result.log.series("train_loss")[1], result.status)

        return {rate: geometric_mean([searched(seed, rate) for seed in seeds]) for rate in rates}

    lr_search, best_rate, widened = _search_rates(config, score)
    low, high = data.x_train.min().item(), data.x_train.max().item()
    margin = EXTRAPOLATION * (high - low)
    grid = torch.linspace(low - margin, high + margin, 600, device=device).unsqueeze(1)
    curves, predictions, status, final_train, final_test = [], [], [], [], []
    for seed in seeds:
        model, result = trained(seed, best_rate, config.max_epochs, config.eval_every, trial.progress)
        epochs, _ = result.log.series("epoch")
        curves.append({"epoch": epochs, **{name: result.log.series(name)[1] for name in ("train_loss", "test_loss")}})
        model.eval()
        with torch.no_grad():
            predictions.append(model(grid)[:, 0].cpu())
        status.append(result.status)
        final_train.append(final_value(curves[-1]["train_loss"], result.status))
        final_test.append(final_value(curves[-1]["test_loss"], result.status))
    return {"widths": [], "num_params": num_params(model), "learning_rate": best_rate, "lr_search": lr_search,
            "lr_grid_widened": widened, "lr_decay_epochs": [[] for _ in seeds], "status": status,
            "epochs_trained": config.max_epochs, "converged_epoch": [None] * len(seeds), "final_train": final_train,
            "final_test": final_test, "curves": curves, "grid": grid[:, 0].cpu(), "predictions": torch.stack(predictions)}


def _run_user_models(config: Config, ctx, summary: dict, targets) -> dict:
    """fit-function with the user's models (--model, repeatable) in place of the budget's MLPs: models.<position> as for depths,
    each with its `model` text; same_parameter_count says whether the exact counts are within 1%."""
    from .fit_task import same_count

    users = user_models(config)
    counts = []
    for position, user in enumerate(users, start=1):  # every factory built, checked and described before training
        model = user_or_builtin(user, None, input_shape=(1,), num_outputs=1, seed=config.seeds[0])
        counts.append(num_params(model))
        ctx.describe_model(f"model-{position}", model, torch.zeros(2, 1), "loop",
                           **user_details(user, input_shape=(1,), num_outputs=1, seed=config.seeds[0]))
    summary.update(user_models=[user.text for user in users], same_parameter_count=same_count(counts), training_path=TRAINING_PATHS["loop"])
    # the ordinary loop has no stopping rule and no plateau decay: every seed trains max_epochs, and the summary says so
    summary["stopping_rule"] = {**summary["stopping_rule"], "patience": 0, "max_lr_decays": 0}
    datasets = {target.name: TensorData(*function_dataset(target, config.num_train, config.num_test)) for target in targets}
    trials = [(f"{slug(target.name)}_model{position}", partial(_train_user_model, config, datasets[target.name], user))
              for target in targets for position, user in enumerate(users, start=1)]
    results = iter(ctx.map_trials(trials, "fit-function", steps=config.max_epochs * len(config.seeds)))
    for target in targets:
        key, data = slug(target.name), datasets[target.name]
        by_position = {position: {**next(results), "model": user.text} for position, user in enumerate(users, start=1)}
        summary["functions"][target.name] = _summarize(target, by_position, config)
        for position, user in enumerate(users, start=1):
            summary["functions"][target.name]["models"][str(position)]["model"] = user.text
        _record_metrics(ctx.log, key, by_position, config)
        _draw(ctx, target, key, data, by_position)
    return summary


def _summarize(target, results, config) -> dict:
    models = {}
    window = _drop_window(config)
    for depth, r in results.items():
        # the trainer's rule also fires on a diverged seed (its loss is NaN, so it stops improving): not a convergence
        adam_converged = [epoch if status == "ok" else None for epoch, status in zip(r["converged_epoch"], r["status"])]
        polish = r.get("polish")
        epochs_to = {}
        for threshold in THRESHOLDS:
            reached = [first_step_below(c["epoch"], c["train_loss"], threshold) for c in r["curves"]]
            hits = [e for e in reached if e is not None]
            epochs_to[f"{threshold:g}"] = {**seed_stats(hits), "reached": len(hits), "of": len(reached)} if hits else None
        models[str(depth)] = {
            "depth": depth, "widths": r["widths"], "num_params": r["num_params"], "learning_rate": r["learning_rate"],
            "lr_search": r["lr_search"], "lr_grid_edge": grid_edge(r["learning_rate"], [float(k) for k in r["lr_search"]]),
            "lr_grid_widened": r["lr_grid_widened"], "lr_decay_epochs": r["lr_decay_epochs"], "status": r["status"],
            "converged": ([done and status == "ok" for done, status in zip(polish["converged"], r["status"])] if polish
                          else [epoch is not None for epoch in adam_converged]),
            "adam_converged": [epoch is not None for epoch in adam_converged], "converged_at_epoch": adam_converged,
            "epochs_trained": r["epochs_trained"],
            "final_train_mse": seed_stats(r["final_train"]), "final_test_mse": seed_stats(r["final_test"]),
            "epochs_to_mse": epochs_to,
            "final_window": window,
            "final_window_drop": [final_window_drop(c["epoch"], c["train_loss"], window) for c in r["curves"]],
        }
        if polish:
            models[str(depth)]["polish"] = {
                "iterations": polish["iterations"], "converged": polish["converged"], "restarts": polish["restarts"],
                "diverged": polish["diverged"], "max_gradient": polish["max_gradient"],
                "adam_train_mse": seed_stats(r["adam_train"]), "adam_test_mse": seed_stats(r["adam_test"])}
    return {"formula": target.formula, "domain": list(target.domain), "models": models}


def _drop_window(config) -> int:
    """Epochs over which "still improving at the end" is measured: the stopping rule's patience, or a tenth of
    max_epochs when the rule is off."""
    return config.patience or max(1, config.max_epochs // 10)


def grid_edge(rate: float, grid) -> str | None:
    """Where `rate` sits in the searched grid: "only" (a one-rate grid), "lowest", "highest", or None (inside)."""
    low, high = min(grid), max(grid)
    if low == high:
        return "only"
    return "lowest" if rate == low else "highest" if rate == high else None


def _record_metrics(log, key, results, config) -> None:
    for depth, r in results.items():
        for seed, curves in zip(config.seeds, r["curves"]):
            run_name = f"{key}/depth{depth}/seed{seed}"
            for index, epoch in enumerate(curves["epoch"]):
                log.add(run_name, int(epoch), "train_mse", curves["train_loss"][index])
                log.add(run_name, int(epoch), "test_mse", curves["test_loss"][index])


def _label(depth, r) -> str:
    if "model" in r:  # a user model (--model): its factory, not a depth
        return f"{r['model']} ({r['num_params']} params, lr {r['learning_rate']:g})"
    layers = "layer" if depth == 1 else "layers"
    return f"{depth} hidden {layers} ({r['num_params']} params, lr {r['learning_rate']:g})"


def _draw(ctx, target, key, data, results) -> None:
    labels = {depth: _label(depth, r) for depth, r in results.items()}
    adam = {labels[d]: (np.asarray(r["curves"][0]["epoch"]), np.asarray([c["train_loss"] for c in _same_length(r["curves"])]))
            for d, r in results.items()}
    if any(r.get("polish") for r in results.values()):
        figure = plot_two_phase_loss(
            adam, {labels[d]: _polish_series(r["polish"]["curves"]) for d, r in results.items() if r.get("polish")},
            title=f"Training loss on {target.formula} (mean, band = min-max over seeds)", ylabel="training MSE",
            first_xlabel="Adam epoch", second_xlabel="L-BFGS iteration (from the Adam end point)",
            first_title="Adam (plateau decay)", second_title="then L-BFGS (float64, full batch)")
    else:
        figure = plot_loss_curves(adam, title=f"Training loss on {target.formula} (mean, band = min-max over seeds)",
                                  ylabel="training MSE").figure
    ctx.run_dir.save_figure(figure, f"loss_{key}")
    close(figure)
    ax = plot_function_fits(
        grid=next(iter(results.values()))["grid"].numpy(), truth=target(next(iter(results.values()))["grid"].numpy().astype(float)),
        predictions={labels[d]: r["predictions"].numpy() for d, r in results.items()},
        domain=target.domain, x_train=data.x_train[:, 0].numpy(), title=f"Predictions vs ground truth: {target.formula}",
    )
    ctx.run_dir.save_figure(ax.figure, f"predictions_{key}")
    close(ax.figure)


def _polish_series(curves) -> tuple[np.ndarray, np.ndarray]:
    """The seeds' L-BFGS curves on their common iteration points: (iterations (T,), losses (S, T)); a seed that
    stopped earlier keeps its last loss (it no longer moves)."""
    points = np.unique(np.concatenate([np.asarray(c["iteration"], dtype=float) for c in curves]))
    return points, np.asarray([np.interp(points, c["iteration"], c["train_loss"]) for c in curves])


def _same_length(curves):
    """Seeds stop together in the ensemble, so curves share epochs; trim defensively to the shortest."""
    length = min(len(c["train_loss"]) for c in curves)
    return [{**c, "train_loss": c["train_loss"][:length]} for c in curves]


EXPERIMENT = Experiment(
    name="fit-function", section="1-1", title="Simulate a function: deep vs shallow at one parameter budget",
    description="shallow/middle/deep MLPs at one exact parameter budget fit 1-D functions (loss curves, predictions)",
    config_class=Config, profiles=PROFILES, run=run,
)
