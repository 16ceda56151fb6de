"""A straightforward reference implementation of `dlprobe run critical-points` (the baseline of case 5).

    python -m benchmarks.critical_reference --profile full --runs 20 --out reference.json

Same procedure and settings as src/dlprobe/experiments/critical_points.py (read from its Config and
PROFILES; steps 2-5 are dlprobe's analysis/critical_refine.refine_and_classify), written the way a careful
student would, one run at a time with plain PyTorch. One difference in method, not in procedure:
torch.optim.LBFGS searches each step with strong Wolfe, dlprobe's batched L-BFGS (analysis/batched_lbfgs.py)
backtracks until the Armijo condition holds, so the two end at nearby
but not identical points and the benchmark compares the resulting distributions:
1. train an nn.Module (build_mlp, same initial weights) with torch.optim.Adam, full batch, float32, for the run's
   own number of epochs (critical_points.stage_epochs: each run leaves training at its stage);
2. L-BFGS polish of the loss on the module's parameters (float64, same LBFGS settings; off by default);
3. minimise ||grad L||^2 with torch.autograd.grad(create_graph=True) (true double backprop), L-BFGS;
4. Levenberg-Marquardt steps on grad L = 0 with the exact Hessian from torch.func.hessian, eigh, the same
   damping schedule and geodesic-acceleration correction (third derivative by autograd);
5. torch.func.hessian + eigh, the minimal ratio (fraction of eigenvalues > 0) and the banded one, the sign
   classification from the same first-order bound (its third derivatives by P triple-backward passes, one
   eigenvector at a time; dlprobe's critical_signs.classify_by_signs does the bookkeeping on both sides), and
   the sampling ratio from the same random directions, one neighbour at a time.
Writes {"settings", "runs": [{seed, loss, grad_norm, minimal_ratio, ...}], "phase_seconds"} as JSON.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from dlprobe.analysis.critical import damped_newton, random_unit_directions
from dlprobe.analysis.critical_signs import classify_by_signs
from dlprobe.data.functions import function_dataset, get_function
from dlprobe.experiments import critical_points
from dlprobe.models.mlp import MLPSpec, build_mlp


def reference_config(profile: str, runs: int | None):
    config = replace(critical_points.Config(), **critical_points.PROFILES[profile])
    return replace(config, num_runs=runs) if runs else config


def flat_loss(model, x, y):
    """f(theta) = MSE of the model with its parameters taken from the flat vector theta."""
    shapes = [(name, p.shape, p.numel()) for name, p in model.named_parameters()]

    def f(theta):
        params, offset = {}, 0
        for name, shape, count in shapes:
            params[name] = theta[offset:offset + count].view(shape)
            offset += count
        return F.mse_loss(functional_call(model, params, (x,)), y)
    return f


def gradient(f, theta):
    point = theta.detach().requires_grad_(True)
    return torch.autograd.grad(f(point), point)[0]


def second_directional(f, theta, v):
    """grad_theta (v^T H(theta) v), by three reverse passes."""
    point = theta.detach().requires_grad_(True)
    g = torch.autograd.grad(f(point), point, create_graph=True)[0]
    hv = torch.autograd.grad(g @ v, point, create_graph=True)[0]
    return torch.autograd.grad(hv @ v, point)[0]


# damped_newton's schedule: mu starts at DAMPING * max(eig^2), is multiplied by MU_UP on a rejected step and
# divided by MU_DOWN on an accepted one, at most MAX_RETRIES tries per step. The factors mirror
# dlprobe.analysis.critical.damped_newton (tests/test_benchmarks.py checks that both take the same steps).
_LM_DEFAULTS = inspect.signature(damped_newton).parameters
DAMPING = _LM_DEFAULTS["damping"].default
MAX_RETRIES = _LM_DEFAULTS["max_retries"].default
TOLERANCE = _LM_DEFAULTS["tol"].default
MU_UP, MU_DOWN = 2.0, 10.0


def levenberg_marquardt(f, theta, steps, damping=DAMPING, tol=TOLERANCE, max_retries=MAX_RETRIES):
    """Levenberg-Marquardt with geodesic acceleration on grad f = 0; H from torch.func.hessian."""
    current, g = theta.clone(), gradient(f, theta)
    norms, mu = [float(g.norm())], None
    for _ in range(steps):
        if norms[-1] < tol:
            break
        curvature, basis = torch.linalg.eigh(torch.func.hessian(f)(current))
        projected = basis.T @ g
        if mu is None:
            mu = damping * float(curvature.pow(2).max()) or damping
        for _ in range(max_retries):
            def solve(r):
                return -(basis @ (curvature / (curvature.pow(2) + mu) * r))
            step = solve(projected)
            correction = solve(basis.T @ second_directional(f, current, step))
            if correction.norm() > 0.75 * step.norm():
                mu *= MU_UP
                continue
            step = step + correction / 2
            trial = gradient(f, current + step)
            if float(trial.norm()) < norms[-1]:
                current, g = current + step, trial
                norms.append(float(trial.norm()))
                mu /= MU_DOWN
                break
            mu *= MU_UP
        else:
            break
    return current


def one_run(config, spec, seed, epochs, x, y, clock):
    start = time.perf_counter()
    model = build_mlp(spec, torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss = F.mse_loss(model(x), y)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    clock["adam"] += time.perf_counter() - start
    if not torch.isfinite(loss):
        return {"seed": seed, "status": "diverged"}
    return refine(config, model, seed, x, y, clock)


def refine(config, model, seed, x, y, clock):
    """Steps 2-5 for one trained model (float32 module); returns the run's record."""
    start = time.perf_counter()
    model = model.double()
    x64, y64 = x.double(), y.double()
    params = list(model.parameters())
    if config.polish_steps:
        lbfgs = torch.optim.LBFGS(params, lr=1.0, max_iter=config.polish_steps, history_size=50, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-14, tolerance_change=1e-18)

        def closure():
            lbfgs.zero_grad()
            value = F.mse_loss(model(x64), y64)
            value.backward()
            return value
        lbfgs.step(closure)
    clock["polish"] += time.perf_counter() - start
    start = time.perf_counter()
    if config.phase2 in ("both", "grad-norm") and config.grad_norm_steps:
        lbfgs = torch.optim.LBFGS(params, lr=1.0, max_iter=1, max_eval=25, history_size=50, line_search_fn="strong_wolfe",
                                  tolerance_grad=0.0, tolerance_change=0.0)

        def objective():
            lbfgs.zero_grad()
            grads = torch.autograd.grad(F.mse_loss(model(x64), y64), params, create_graph=True)
            value = sum(g.pow(2).sum() for g in grads)
            value.backward()
            return value
        for _ in range(config.grad_norm_steps):
            lbfgs.step(objective)
    clock["grad_norm_min"] += time.perf_counter() - start
    start = time.perf_counter()
    f = flat_loss(model, x64, y64)
    theta = torch.nn.utils.parameters_to_vector(params).detach()
    if config.phase2 in ("both", "newton") and config.newton_steps:
        theta = levenberg_marquardt(f, theta, config.newton_steps)
    clock["newton"] += time.perf_counter() - start
    start = time.perf_counter()
    values, basis = torch.linalg.eigh(torch.func.hessian(f)(theta))
    eigenvalues = values.numpy()
    band = config.eigen_rel_tol * np.abs(eigenvalues).max()
    g = gradient(f, theta)
    derivatives = torch.stack([second_directional(f, theta, basis[:, j]) for j in range(theta.numel())]) @ basis
    verdict = classify_by_signs(eigenvalues, (basis.T @ g).numpy(), derivatives.numpy())
    directions = random_unit_directions(config.num_samples, theta.numel(), torch.Generator().manual_seed(seed))
    with torch.no_grad():
        centre = f(theta)
        higher = sum(float(f(theta + config.sampling_radii[0] * u) > centre) for u in directions)
    final_loss, grad_norm = float(f(theta)), float(gradient(f, theta).norm())
    clock["analysis"] += time.perf_counter() - start
    return {"seed": seed, "loss": final_loss, "grad_norm": grad_norm, "minimal_ratio": float(np.mean(eigenvalues > 0)),
            "minimal_ratio_banded": float(np.mean(eigenvalues > band)), "classification": verdict.classification,
            "num_negative": verdict.num_negative, "num_undetermined": verdict.num_undetermined,
            "sampling_ratio": higher / config.num_samples, "status": "ok" if np.isfinite(final_loss) else "failed"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.critical_reference")
    parser.add_argument("--profile", choices=tuple(critical_points.PROFILES), default="full")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as dlprobe's runner does
    config = reference_config(args.profile, args.runs)
    x, y, _, _ = function_dataset(get_function(config.function), config.num_train, max(2, config.num_train // 4))
    spec = MLPSpec(1, config.widths, 1, config.activation)
    clock = dict.fromkeys(("adam", "polish", "grad_norm_min", "newton", "analysis"), 0.0)
    epochs = critical_points.stage_epochs(config.num_runs, config.train_epochs, config.stages)
    runs = [one_run(config, spec, config.seed + i, epochs[i], x, y, clock) for i in range(config.num_runs)]
    with open(args.out, "w") as handle:
        json.dump({"settings": config.to_dict(), "runs": runs, "phase_seconds": clock}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
