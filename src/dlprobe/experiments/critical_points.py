"""1-2 What happens when the gradient is almost zero? Minimal ratio vs loss at near-critical points.

    dlprobe run critical-points --profile quick        # under a minute on a 2-core CPU (24 runs)
    dlprobe run critical-points --profile full         # the assignment's 100 runs, about a minute

A small network (default 1-16-1 tanh, 49 parameters, MSE on sinc) is trained `num_runs` times, then driven
to a point where the gradient is (almost) zero, and classified there:

1. ordinary training: all runs at once with the ensemble trainer (full-batch Adam), then every run polished
   with full-batch L-BFGS on the loss (`polish_steps`; float64) so it ends near a critical point of the loss;
2. the gradient is driven towards zero by minimising ||grad L||^2 with true double backprop (L-BFGS on that
   objective; its gradient is 2 H grad L, `grad_norm_steps`) and/or by Levenberg-Marquardt steps on the
   equation grad L = 0 with the exact Hessian (`newton_steps`), as chosen by `phase2`;
3. at the point reached (float64 throughout), three estimates of the minimal ratio that check each other:
   a. Hessian: the exact Hessian's eigenvalues; minimal ratio = fraction of eigenvalues > rel_tol *
      max|eigenvalue| (`eigen_rel_tol`; eigenvalues inside the band count as not positive), the same with
      no tolerance ("strict"), and the index (fraction of eigenvalues below -band);
   b. eigen-direction probing: along every eigenvector v_i, the direction "rises" when L(theta ± r v_i) are
      both higher than L(theta) (r = `probe_radius`); probed ratio = fraction of rising directions. Outside
      the band it is a loss-only check of the eigenvalue signs (L(theta ± r v) - L(theta) = ±r v.g +
      r^2 lambda / 2 + O(r^3)), inside it shows what the higher-order terms do;
   c. random sampling: fraction of `num_samples` random points theta + r*u (u uniform on the unit sphere,
      the same u at every radius) with higher loss, for each r in `sampling_radii`.
   `sampling_radii` replaced the single `radius` field: an older config's radius = r is sampling_radii =
   (r,), and its first radius still gives the per-run `sampling_ratio`, the figure and the Spearman test.

Phases 1b-3 run for `CHUNK` runs at once (analysis/critical_refine.py on analysis/critical_batch.py: batched
L-BFGS, Hessians, eigh and Levenberg-Marquardt with per-run step sizes, damping and stopping), which is what makes 100 runs take about
a minute instead of ten (benchmark case 5).

Trained networks are "sloppy": many Hessian eigenvalues are tiny, the residual gradient lies along those
flat directions, and no local step removes it. The gradient norm reached is therefore recorded per run and
reported as measured, not assumed.

summary.json: runs = list of {seed, loss, train_loss_after_adam, grad_norm_after_training,
grad_norm_after_grad_min, grad_norm (final), minimal_ratio, minimal_ratio_strict, probed_ratio,
probe_agreement (outside the band: share of directions where "rises" matches eigenvalue > 0; None when no
eigenvalue is outside), probe_disagreements (their count), probe_unexplained (disagreements the second-order
model with the measured gradient does not predict: |v.g| < r |lambda| / 2; see analysis/critical.check_probe),
sampling_ratios (one per sampling radius), sampling_ratio (= sampling_ratios[0]), index, num_negative,
num_near_zero, num_positive, top_eigenvalues (5 largest), bottom_eigenvalues (5 smallest), status};
grad_norm_reached (seed stats), fraction_below_1e-6, spearman_loss_vs_minimal_ratio (+ _p, its permutation
p-value), spearman_minimal_vs_sampling_ratio (+ _p; first radius), estimates (over the analysed runs: means of
minimal_ratio, minimal_ratio_strict and probed_ratio, num_near_zero_mean (eigenvalues inside the tolerance band,
mean per run), sampling_ratio_means one per radius, and the pooled
probe_agreement, probe_directions_outside_band, probe_disagreements, probe_unexplained), num_params,
settings (eigen_rel_tol, probe_radius, sampling_radii, num_samples, phase2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from ..analysis.critical_refine import refine_and_classify
from ..analysis.stats import rank_correlation, seed_stats
from ..config import ExperimentConfig, param
from ..config_fields import activation_field, function_field, learning_rate_field, num_train_field, widths_field
from ..data.functions import function_dataset, get_function
from ..data.tensors import TensorData
from ..errors import ConfigError
from ..models.mlp import MLPSpec
from ..plotting.critical import plot_minimal_ratio_vs_loss
from ..plotting.style import close
from ..training.common import OptimizerSettings
from ..training.ensemble import train_ensemble
from ..training.loop import TrainSpec
from .base import Experiment

CHUNK = 25  # runs per trial, refined together: the unit of resumption (and of a Ray task)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    function: str = function_field("sinc")
    widths: tuple[int, ...] = widths_field((16,))
    activation: str = activation_field("tanh", note="smooth, so the Hessian is well defined")
    num_runs: int = param(100, "independent training runs (seeds seed .. seed+num_runs-1)", minimum=1)
    num_train: int = num_train_field(200)
    train_epochs: int = param(20000, "full-batch Adam epochs of ordinary training (all runs at once)", minimum=1)
    learning_rate: float = learning_rate_field(1e-2, "of ordinary training")
    polish_steps: int = param(1000, "L-BFGS iterations on the loss after Adam (0: none)", minimum=0)
    phase2: str = param("both", "how the gradient is driven to zero", choices=("both", "grad-norm", "newton"))
    grad_norm_steps: int = param(100, "L-BFGS iterations minimising ||grad L||^2 (double backprop)", minimum=0)
    newton_steps: int = param(300, "Levenberg-Marquardt steps on grad L = 0 with the exact Hessian", minimum=0)
    eigen_rel_tol: float = param(1e-6, "eigenvalues within ±tol*max|eig| count as zero (not positive)", minimum=0.0)
    probe_radius: float = param(1e-3, "step along each Hessian eigenvector for the probed ratio (parameter space)", minimum=1e-12)
    num_samples: int = param(1000, "random neighbours (directions) for the sampling minimal ratio", minimum=1)
    sampling_radii: tuple[float, ...] = param((1e-3, 1e-2, 1e-1), "distances of the random neighbours, one sampling "
                                              "ratio each (the first: sampling_ratio; replaces radius)", minimum=1e-12)

    def validate(self):
        if not self.sampling_radii:
            raise ConfigError("critical-points: sampling_radii needs at least one radius")


PROFILES = {
    "smoke": dict(widths=(6,), num_runs=4, num_train=50, train_epochs=200, polish_steps=100, grad_norm_steps=20,
                  newton_steps=10, num_samples=200),
    # Long, cheap ordinary training and many LM steps matter most (measured, quick: median 2e-6 after 10000
    # Adam epochs vs 6e-5 after 1000; with 10000 epochs, 60 / 150 / 300 LM steps gave medians 7e-6 / 1.5e-6 /
    # 6.4e-7 and 12 % / 29 % / 83 % of runs below 1e-6).
    "quick": dict(num_runs=24, train_epochs=10000, polish_steps=500, grad_norm_steps=40, num_samples=500),
    "full": dict(),
}


def run(config: Config, ctx) -> dict:
    target = get_function(config.function)
    data = TensorData(*function_dataset(target, config.num_train, max(2, config.num_train // 4)))
    spec = MLPSpec(1, config.widths, 1, config.activation)
    seeds = [config.seed + i for i in range(config.num_runs)]

    def train_all():
        result = train_ensemble(spec, seeds, data, TrainSpec(loss="mse", optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                                epochs=config.train_epochs, eval_every=config.train_epochs), device=ctx.device)
        return {"thetas": result.model.flat_params().cpu(), "status": result.status}

    trained = ctx.trial("phase1_adam", train_all)

    def refine_chunk(start, trial):  # runs start .. start + CHUNK - 1 at once, one trial (a Ray task under --executor ray)
        stop = min(start + CHUNK, len(seeds))
        return refine_and_classify(config, spec, trained["thetas"][start:stop], data.x_train, data.y_train, seeds[start:stop],
                                   trained["status"][start:stop])

    starts = range(0, len(seeds), CHUNK)
    chunks = ctx.map_trials([(f"refine_{start:04d}", partial(refine_chunk, start)) for start in starts], "critical-points",
                            steps=[min(CHUNK, len(seeds) - start) for start in starts])
    runs = [run_result for chunk in chunks for run_result in chunk]
    for run_result in runs:
        for key in ("loss", "grad_norm", "minimal_ratio", "probed_ratio", "sampling_ratio", "index"):
            if key in run_result:
                ctx.log.add(f"seed{run_result['seed']}", 0, key, run_result[key])
    good = [r for r in runs if r["status"] == "ok"]
    if not good:
        raise ConfigError("critical-points: every run failed; see the run statuses")
    figure = plot_minimal_ratio_vs_loss(good, config.eigen_rel_tol, config.sampling_radii[0],
                                        title=f"{len(good)} runs of a {spec.describe()} {config.activation} net on {target.formula}")
    ctx.run_dir.save_figure(figure, "minimal_ratio_vs_loss")
    close(figure)
    grads = [r["grad_norm"] for r in good]
    return {
        "function": target.formula, "architecture": spec.describe(), "num_params": spec.num_params, "num_runs": len(runs),
        "runs": runs, "grad_norm_reached": seed_stats(grads), "grad_norm_median": float(np.median(grads)),
        "fraction_below_1e-6": float(np.mean(np.asarray(grads) < 1e-6)),
        **_spearman("loss_vs_minimal_ratio", [r["loss"] for r in good], [r["minimal_ratio"] for r in good]),
        **_spearman("minimal_vs_sampling_ratio", [r["minimal_ratio"] for r in good], [r["sampling_ratio"] for r in good]),
        "estimates": _estimate_means(good),
        "num_minima": sum(r["num_negative"] == 0 for r in good), "num_saddles": sum(r["num_negative"] > 0 for r in good),
        "settings": {"eigen_rel_tol": config.eigen_rel_tol, "probe_radius": config.probe_radius, "sampling_radii": list(config.sampling_radii),
                     "num_samples": config.num_samples, "phase2": config.phase2},
    }


def _estimate_means(good: list[dict]) -> dict:
    """The three estimates over the analysed runs: means of the ratios, and probing vs Hessian signs pooled over
    every outside-band direction of every run (share of agreeing directions; None when there is none)."""
    outside = sum(r["num_negative"] + r["num_positive"] for r in good)
    disagreements = sum(r["probe_disagreements"] for r in good)
    return {
        "minimal_ratio_mean": float(np.mean([r["minimal_ratio"] for r in good])),
        "minimal_ratio_strict_mean": float(np.mean([r["minimal_ratio_strict"] for r in good])),
        "probed_ratio_mean": float(np.mean([r["probed_ratio"] for r in good])),
        "num_near_zero_mean": float(np.mean([r["num_near_zero"] for r in good])),
        "probe_agreement": 1 - disagreements / outside if outside else None, "probe_directions_outside_band": outside,
        "probe_disagreements": disagreements, "probe_unexplained": sum(r["probe_unexplained"] for r in good),
        "sampling_ratio_means": [float(np.mean(column)) for column in zip(*(r["sampling_ratios"] for r in good))],  # one per radius
    }


def _spearman(name: str, a, b) -> dict:
    """{spearman_<name>: rho, spearman_<name>_p: permutation p-value}, both None when undefined."""
    rho, p_value = rank_correlation(a, b)
    return {f"spearman_{name}": rho, f"spearman_{name}_p": p_value}


EXPERIMENT = Experiment(
    name="critical-points", section="1-2", title="What happens when the gradient is almost zero: minimal ratio vs loss",
    description="100 small nets driven to grad ~ 0 (double backprop, Levenberg-Marquardt); exact Hessian, minimal ratio vs loss",
    config_class=Config, profiles=PROFILES, run=run,
)
