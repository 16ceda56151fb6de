"""1-2 What happens when the gradient is almost zero? Minimal ratio vs loss at near-critical points.

    dlprobe run critical-points --profile quick        # about a minute on a 2-core CPU (24 runs)
    dlprobe run critical-points --profile full         # the assignment's 100 runs, a few minutes
    dlprobe run critical-points --stages end           # every run switches after the full training
    dlprobe run critical-points --model my.py:make     # your 1 -> 1 model; above 1000 parameters by Lanczos (below)

A small network (default 1-16-1 tanh, 49 parameters, MSE on sinc) is trained `num_runs` times, each run
leaves ordinary training at a different stage, is driven from there to a point where the gradient is
(almost) zero, and is classified by the Hessian's eigenvalue signs there. Following Dauphin et al. (2014,
Fig. 1: critical points found by Newton's method from many points of training), starting the search at
different stages is what finds critical points at several loss levels, so the minimal ratio can be
related to the loss at all:

1. ordinary training: all runs at once with the ensemble trainer (full-batch Adam) for `train_epochs`; run i
   leaves it after e_i epochs, `stages` = log: e_i log-spaced from 0 (the initial weights) to train_epochs
   over the runs (linear: evenly spaced; end: all at train_epochs); an optional L-BFGS polish of the loss
   (`polish_steps`, default 0: it would pull every start point towards a minimum of the loss);
2. the gradient is driven towards zero by minimising ||grad L||^2 with true double backprop (L-BFGS on that
   objective; its gradient is 2 H grad L, `grad_norm_steps`) and/or by Levenberg-Marquardt steps on the
   equation grad L = 0 with the exact Hessian (`newton_steps`), as chosen by `phase2`;
3. at the point reached (float64 throughout; analysis/critical_refine.py):
   a. the minimal ratio as the assignment defines it, the fraction of the exact Hessian's eigenvalues > 0,
      with the signs the residual gradient and float64 rounding leave undetermined counted and shown as a
      range (analysis/critical_signs.py: a first-order perturbation bound on each eigenvalue along the Newton
      step to the critical point), and the point classified by measured signs: saddle (a trusted negative
      eigenvalue), minimum (no eigenvalue negative beyond rounding) or undetermined; what kind of point it is:
      the share of the residual gradient along undetermined directions (near 1: a gradient-flat region in
      the sense of Frye et al. 2021, not a critical point) and ||Hg|| / (max|lambda| ||g||);
   b. the banded ratio (secondary): eigenvalues within eigen_rel_tol * max|lambda| counted as not positive;
   c. eigen-direction probing, the loss-only check of the signs: along every eigenvector v_i the direction
      "rises" when L(theta ± r v_i) are both higher than L(theta) (r = `probe_radius`);
   d. random sampling, the assignment's other definition: the fraction of `num_samples` random points
      theta + r*u (u uniform on the unit sphere, the same u at every radius) with higher loss, for each r in
      `sampling_radii`, with the quadratic forms u^T H u of those u (mean, minimum, share negative) and
      tr(H)/P: u^T H u concentrates near tr(H)/P, so the ratio is ~1 whenever a few large positive
      eigenvalues dominate the trace, whatever the negative ones are; it cannot check the Hessian ratio.

Phases 2-3 run for `CHUNK` runs at once (analysis/critical_batch.py: batched L-BFGS, Hessians, eigh and
Levenberg-Marquardt with per-run step sizes, damping and stopping): 100 runs take minutes, not an hour.

A user model (`--model`) runs one run at a time with the same steps (critical_user.py), on the exact Hessian up to MAX_EXACT_PARAMS
(1000) parameters. Above that the Hessian is never formed (hessian_method "lanczos"; analysis/critical_lanczos.py):
phase 2's Levenberg-Marquardt steps use the Ritz pairs of KRYLOV_STEPS Lanczos steps from the gradient
(critical.damped_newton(krylov_steps=...)); phase 3 takes the 5 smallest and largest eigenvalues by Lanczos with
their residuals, classifies by the smallest (critical_signs.classify_by_extremes: saddle when its Rayleigh quotient
is negative beyond the first-order change the Newton step to the critical point can make, minimum when it minus its
residual is not negative beyond rounding, undetermined otherwise), and estimates the minimal ratio and the banded
ratio by stochastic Lanczos quadrature with an interval (library Hessian.minimal_ratio). Probing uses the 10
extreme eigenvectors; sampling and u^T H u are as above (u^T H u by products). Expect a wide interval for the
fraction > 0 wherever much of the spectrum is a cluster around zero: the quadrature cannot split it, and says so.

summary.json: runs = list of {seed, switch_epoch (epochs of ordinary training before phase 2), loss_at_switch,
grad_norm_at_switch, grad_norm_after_polish, grad_norm_after_grad_min, loss, grad_norm (final), classification,
minimal_ratio (fraction of eigenvalues > 0), minimal_ratio_low / _high (undetermined counted negative /
positive), index (trusted negatives / P), num_negative, num_positive, num_undetermined (by the sign bound),
rounding_bound, largest_uncertainty, newton_step_norm, gradient_flat_share, hg_ratio, minimal_ratio_banded,
index_banded, num_negative_banded, num_near_zero_banded, num_positive_banded, probed_ratio, probe_agreement (outside the band:
share of directions where "rises" matches eigenvalue > 0; None when no eigenvalue is outside),
probe_disagreements, probe_unexplained (disagreements the second-order model with the measured gradient does
not predict: |v.g| < r |lambda| / 2; analysis/critical.check_probe), sampling_ratios (one per radius),
sampled_curvature_mean / _min / _negative_share (u^T H u over the sampled directions), trace_over_params,
lambda_min, lambda_max, top_eigenvalues (5 largest), bottom_eigenvalues (5 smallest), status}; on the Lanczos path
minimal_ratio and minimal_ratio_banded are quadrature estimates, minimal_ratio_low / _high (and
minimal_ratio_banded_low / _high) their intervals, index = 1 - minimal_ratio_high, largest_uncertainty is replaced by
lambda_min_uncertainty (the bound |grad(v^T H v) . s| + rounding) with lambda_min_residual, top_residuals and
bottom_residuals, probing by probe_directions and probe_directions_outside_band, and what needs every eigenvector is
None (num_negative, num_positive, num_undetermined, gradient_flat_share, index_banded, the banded counts,
probed_ratio);
grad_norm_reached (seed stats), grad_norm_median, fraction_below_1e-6, classes {saddle, minimum,
undetermined: counts}, gradient_flat_runs (runs with gradient_flat_share > 0.5), spearman_loss_vs_minimal_ratio,
spearman_loss_vs_index, spearman_switch_epoch_vs_loss (each with _p, its permutation p-value), estimates
(means over the analysed runs of minimal_ratio, minimal_ratio_banded, probed_ratio, num_undetermined,
num_near_zero_banded; sampling_ratio_means one per radius; the pooled probe_agreement,
probe_directions_outside_band, probe_disagreements, probe_unexplained; sampled_curvature_negative_max (the
largest share of negative u^T H u in any run), trace_over_params_mean, sampled_curvature_mean_mean,
lambda_min_min (the most negative eigenvalue of any run), saddle_sampling_ratio_means (one per radius, over the
saddle runs) and saddle_minimal_ratio_mean (None without saddles); None where a run has no such number), num_params,
settings (stages, train_epochs, eigen_rel_tol, probe_radius, sampling_radii, num_samples, phase2), hessian_method
("exact" or "lanczos"; gradient_flat_runs is None on the Lanczos path) and, on the Lanczos path, lanczos_settings
(extreme_eigenvalues, bottom_basis, max_restarts, krylov_steps, density_steps, density_runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..analysis.critical_refine import refine_and_classify
from ..analysis.stats import rank_correlation, seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import activation_field, function_field, learning_rate_field, model_field, num_train_field, widths_field
from ..data.functions import function_dataset, get_function
from ..data.tensors import TensorData
from ..errors import ConfigError
from ..models.mlp import MLPSpec, build_mlp
from ..plotting.critical import plot_minimal_ratio_vs_loss
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.ensemble import train_ensemble
from ..training.loop import TrainSpec
from .base import Experiment
from ..analysis.critical_lanczos import DENSITY_RUNS, DENSITY_STEPS, KRYLOV_STEPS
from ..analysis.critical_lanczos import SETTINGS as LANCZOS_SETTINGS
from .model_choice import TRAINING_PATHS, check_one_model, num_params, single_user_model, user_details, user_or_builtin

CHUNK = 25  # runs per trial, refined together: the unit of resumption (and of a Ray task)
STAGE_SPACINGS = ("log", "linear", "end")
GRADIENT_FLAT = 0.5  # a run whose residual gradient lies more than this share in undetermined directions
MAX_EXACT_PARAMS = 1000  # a user model's exact Hessian (P x P) and curvature gradients (P triple backprops) up to this P;
#                         above it the Lanczos path (analysis/critical_lanczos.py)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    function: str = function_field("sinc")
    widths: tuple[int, ...] = widths_field((16,))
    activation: str = activation_field("tanh", note="smooth, so the Hessian is well defined")
    num_runs: int = param(100, "independent training runs (seeds seed .. seed+num_runs-1)", minimum=1)
    num_train: int = num_train_field(200)
    train_epochs: int = param(20000, "full-batch Adam epochs of the longest ordinary training (all runs at once)", minimum=1)
    stages: str = param("log", "when each run leaves ordinary training for phase 2: log (epochs log-spaced from 0 to "
                        "train_epochs over the runs), linear (evenly spaced) or end (all at train_epochs)",
                        choices=STAGE_SPACINGS)
    learning_rate: float = learning_rate_field(1e-2, "of ordinary training")
    polish_steps: int = param(0, "L-BFGS iterations on the loss before phase 2 (0: none; it pulls every start "
                              "point towards a minimum of the loss)", minimum=0)
    phase2: str = param("both", "how the gradient is driven to zero", choices=("both", "grad-norm", "newton"))
    grad_norm_steps: int = param(100, "L-BFGS iterations minimising ||grad L||^2 (double backprop)", minimum=0)
    newton_steps: int = param(300, "Levenberg-Marquardt steps on grad L = 0 with the exact Hessian", minimum=0)
    eigen_rel_tol: float = param(1e-6, "the banded ratio's tolerance (secondary): eigenvalues within ±tol*max|eig| "
                                 "count as not positive", minimum=0.0)
    probe_radius: float = param(1e-3, "step along each Hessian eigenvector for the probed ratio (parameter space)", minimum=1e-12)
    num_samples: int = param(1000, "random neighbours (directions) for the sampling minimal ratio", minimum=1)
    sampling_radii: tuple[float, ...] = param((1e-3, 1e-2, 1e-1), "distances of the random neighbours, one sampling "
                                              "ratio each", minimum=1e-12)
    model: tuple[str, ...] = model_field(f"instead of the MLP (widths and activation then unused): each run trains its own copy "
                                         f"with the ordinary full-batch loop, then phases 2-3 run on it one run at a time: with the "
                                         f"exact Hessian up to {MAX_EXACT_PARAMS} parameters, above that from Hessian-vector products "
                                         f"only (Levenberg-Marquardt in a {KRYLOV_STEPS}-step Krylov space, Lanczos extremes, "
                                         f"stochastic Lanczos quadrature for the minimal ratio, with its interval; summary.json's "
                                         f"hessian_method says which). Cost of that path per run, in Hessian-vector products (each "
                                         f"~2 passes over the training set): {KRYLOV_STEPS} per LM step (and a gradient and a third "
                                         f"derivative per try), {DENSITY_RUNS * DENSITY_STEPS} for the quadrature, num_samples for "
                                         f"u^T H u and a few "
                                         f"hundred for Lanczos, each product's cost growing with P times the data size. Measured "
                                         f"for 1153 parameters on 200 points (quick profile, 300 LM steps): ~25 s per run, nearly all "
                                         f"of it the LM steps, 24 runs in 9.5 min on a busy 2-core CPU; lower newton_steps trades "
                                         f"the gradient norm reached for time",
                                         note="input_shape: (1,); num_outputs: 1; seed: the run's seed")

    def validate(self):
        check_one_model(self.model, "critical-points")
        if not self.sampling_radii:
            raise ConfigError("critical-points: sampling_radii needs at least one radius")


PROFILES = {
    "smoke": dict(widths=(6,), num_runs=4, num_train=50, train_epochs=200, grad_norm_steps=20, newton_steps=10,
                  num_samples=200),
    # quick: 24 runs starting at epochs 0 .. 3000 (log-spaced) reach the loss plateaus of the early runs
    # (~0.08) and the fitted sinc of the late ones (~1e-3), the spread the figure needs; 100 grad-norm L-BFGS
    # steps and 300 LM steps as in full.
    "quick": dict(num_runs=24, train_epochs=3000, num_samples=500),
    "full": dict(),
}


def stage_epochs(num_runs: int, train_epochs: int, spacing: str) -> list[int]:
    """The epoch at which each run leaves ordinary training: (num_runs,) ints in [0, train_epochs], non-decreasing.
    log: round(geomspace(1, train_epochs + 1)) - 1, so the first run starts from its initial weights and the last
    after the full training, with as many runs per decade early as late; linear: evenly spaced; end: all at the end."""
    if spacing == "end" or num_runs == 1:
        return [train_epochs] * num_runs
    if spacing == "linear":
        return [int(e) for e in np.round(np.linspace(0, train_epochs, num_runs))]
    return [int(e) - 1 for e in np.round(np.geomspace(1, train_epochs + 1, num_runs))]


def run(config: Config, ctx) -> dict:
    target = get_function(config.function)
    data = TensorData(*function_dataset(target, config.num_train, max(2, config.num_train // 4)))
    spec = MLPSpec(1, config.widths, 1, config.activation)
    seeds = [config.seed + i for i in range(config.num_runs)]
    switch = stage_epochs(config.num_runs, config.train_epochs, config.stages)
    user = single_user_model(config)
    described = user_or_builtin(user, lambda: build_mlp(spec, torch.Generator().manual_seed(seeds[0])), input_shape=(1,), num_outputs=1,
                                seed=seeds[0])
    ctx.describe_model("model", described, data.x_train[:2], "ensemble" if user is None else "loop",
                       **user_details(user, input_shape=(1,), num_outputs=1, seed=seeds[0]))
    if user is not None:
        from .critical_user import run_user_model  # that module builds on this one's Config and summary

        return run_user_model(config, ctx, user, num_params(described), target, data, seeds, switch)

    def train_all():  # every run trains for the longest stage; run i's weights are taken at its own epoch
        longest = max(switch)
        spec_t = TrainSpec(loss="mse", optimizer=OptimizerSettings("adam", lr=config.learning_rate), epochs=longest,
                           eval_every=max(1, longest), snapshot_at=tuple(sorted(set(switch))))
        result = train_ensemble(spec, seeds, data, spec_t, device=ctx.device)
        snapshots = dict(zip(result.snapshot_epochs, result.snapshots))  # epoch -> (R, P)
        thetas = torch.stack([snapshots[epoch][index] for index, epoch in enumerate(switch)])
        return {"thetas": thetas.cpu(), "status": result.status}

    trained = ctx.trial("phase1_adam", train_all)

    def refine_chunk(start, trial):  # runs start .. start + CHUNK - 1 at once, one trial (a Ray task under --executor ray)
        stop = min(start + CHUNK, len(seeds))
        return refine_and_classify(config, spec, trained["thetas"][start:stop], data.x_train, data.y_train, seeds[start:stop],
                                   trained["status"][start:stop])

    starts = range(0, len(seeds), CHUNK)
    chunks = ctx.map_trials([(f"refine_{start:04d}", partial(refine_chunk, start)) for start in starts], "critical-points",
                            steps=[min(CHUNK, len(seeds) - start) for start in starts])
    records = [record for chunk in chunks for record in chunk]  # in seed order, like `switch`
    runs = [{"switch_epoch": epoch, **record} for epoch, record in zip(switch, records)]
    return _summarize_runs(config, ctx, runs, target, f"{spec.describe()} {config.activation} net", spec.describe(), spec.num_params)


def _summarize_runs(config: Config, ctx, runs: list[dict], target, model_text: str, architecture: str, count: int,
                    user: str | None = None, method: str = "exact") -> dict:
    """Metrics, the figure and summary.json from the runs' records (the MLP path's and a user model's alike; method:
    "exact" or "lanczos", how phase 3 measured the Hessian)."""
    for run_result in runs:
        for key in ("switch_epoch", "loss", "grad_norm", "minimal_ratio", "index", "probed_ratio", "gradient_flat_share"):
            if run_result.get(key) is not None:
                ctx.log.add(f"seed{run_result['seed']}", 0, key, run_result[key])
    good = [r for r in runs if r["status"] == "ok"]
    if not good:
        raise ConfigError("critical-points: every run failed; see the run statuses")
    figure = plot_minimal_ratio_vs_loss(good, title=f"{len(good)} runs of a {model_text} on "
                                        f"{target.formula}, phase 2 started after 0-{config.train_epochs} Adam epochs", method=method)
    ctx.run_dir.save_figure(figure, "minimal_ratio_vs_loss")
    close(figure)
    grads = [r["grad_norm"] for r in good]
    losses = [r["loss"] for r in good]
    return {
        "function": target.formula, "architecture": architecture, "num_params": count, "num_runs": len(runs),
        "runs": runs, "grad_norm_reached": seed_stats(grads), "grad_norm_median": float(np.median(grads)),
        "fraction_below_1e-6": float(np.mean(np.asarray(grads) < 1e-6)),
        "classes": {name: sum(r["classification"] == name for r in good) for name in ("saddle", "minimum", "undetermined")},
        "gradient_flat_runs": (None if method == "lanczos" else sum(r["gradient_flat_share"] > GRADIENT_FLAT for r in good)),
        **_spearman("loss_vs_minimal_ratio", losses, [r["minimal_ratio"] for r in good]),
        **_spearman("loss_vs_index", losses, [r["index"] for r in good]),
        **_spearman("switch_epoch_vs_loss", [r["switch_epoch"] for r in good], losses),
        "estimates": _estimate_means(good),
        "settings": {"stages": config.stages, "train_epochs": config.train_epochs, "eigen_rel_tol": config.eigen_rel_tol,
                     "probe_radius": config.probe_radius, "sampling_radii": list(config.sampling_radii),
                     "num_samples": config.num_samples, "phase2": config.phase2, "gradient_flat_threshold": GRADIENT_FLAT},
        "training_path": TRAINING_PATHS["loop" if user else "ensemble"],
        "hessian_method": method, **({"lanczos_settings": LANCZOS_SETTINGS} if method == "lanczos" else {}),
        **({"user_model": user} if user else {}),
    }


def _estimate_means(good: list[dict]) -> dict:
    """Means of the estimates over the analysed runs, probing vs Hessian signs pooled over every outside-band
    direction of every run (share of agreeing directions; None when there is none), and the extremes that explain
    the sampling ratio."""
    outside = sum(r["probe_directions_outside_band"] if "probe_directions_outside_band" in r  # the Lanczos path's extremes
                  else r["num_negative_banded"] + r["num_positive_banded"] for r in good)
    disagreements = sum(r["probe_disagreements"] for r in good)

    def mean(key):  # None where the Lanczos path has no such number
        values = [r[key] for r in good]
        return None if any(value is None for value in values) else float(np.mean(values))

    saddles = [r for r in good if r["classification"] == "saddle"]
    return {
        "minimal_ratio_mean": mean("minimal_ratio"), "minimal_ratio_banded_mean": mean("minimal_ratio_banded"),
        "probed_ratio_mean": mean("probed_ratio"), "num_undetermined_mean": mean("num_undetermined"),
        "num_near_zero_banded_mean": mean("num_near_zero_banded"),
        "probe_agreement": 1 - disagreements / outside if outside else None, "probe_directions_outside_band": outside,
        "probe_disagreements": disagreements, "probe_unexplained": sum(r["probe_unexplained"] for r in good),
        "sampling_ratio_means": [float(np.mean(column)) for column in zip(*(r["sampling_ratios"] for r in good))],  # one per radius
        "sampled_curvature_negative_max": max(r["sampled_curvature_negative_share"] for r in good),
        "trace_over_params_mean": mean("trace_over_params"), "sampled_curvature_mean_mean": mean("sampled_curvature_mean"),
        "lambda_min_min": min(r["lambda_min"] for r in good),
        # what the sampling ratio says at the saddles, next to their minimal ratio (None without saddles)
        "saddle_sampling_ratio_means": ([float(np.mean(column)) for column in zip(*(r["sampling_ratios"] for r in saddles))]
                                        if saddles else None),
        "saddle_minimal_ratio_mean": float(np.mean([r["minimal_ratio"] for r in saddles])) if saddles else None,
    }


def _spearman(name: str, a, b) -> dict:
    """{spearman_<name>: rho, spearman_<name>_p: permutation p-value}, both None when undefined."""
    rho, p_value = rank_correlation(a, b)
    return {f"spearman_{name}": rho, f"spearman_{name}_p": p_value}


EXPERIMENT = Experiment(
    name="critical-points", section="1-2", title="What happens when the gradient is almost zero: minimal ratio vs loss",
    description="100 small nets driven to grad ~ 0 (double backprop, Levenberg-Marquardt); exact Hessian (Lanczos estimates for a "
                "user model above 1000 parameters), minimal ratio vs loss",
    config_class=Config, profiles=PROFILES, run=run,
)
