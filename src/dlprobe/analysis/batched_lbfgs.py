"""L-BFGS for R independent runs at once, each with its own history and line search.

    thetas, values = lbfgs(objective, thetas, iterations=1000)   # objective(thetas (R, P)) -> ((R,), (R, P))

The runs never interact: every step length, curvature pair and stopping decision is a tensor of shape (R,),
so each run follows the path the one-run optimiser would, while one call of the objective evaluates every
run still searching. Used by critical-points (`critical_batch.BatchedMLPLoss` supplies the objectives).
"""

from __future__ import annotations

import torch


def _wolfe_search(objective, current, direction, values, gradient, slope, step, searching, max_evaluations,
                  armijo=1e-4, curvature=0.9):
    """Per-run line search along `direction` for the rows marked `searching` (R,) bool, from trial steps (R,).

    Accepts t when f(x + t d) <= f + armijo t g.d and |g(x + t d).d| <= curvature |g.d| (strong Wolfe), or
    when f decreased enough and the slope turned positive (past the 1-D minimum). While the slope is still
    steeply negative the step grows 4x (this is what lets L-BFGS move along the flat directions of sloppy
    networks); once a step fails the Armijo test the search bisects between the last good step and it.
    After `max_evaluations` a run keeps its last Armijo step if it had one. Returns (found (R,) bool, steps,
    values, gradients) where found rows hold the accepted point's values and gradients."""
    low = torch.zeros_like(step)  # last step that satisfied Armijo (0: none)
    high = torch.full_like(step, float("inf"))
    found = torch.zeros_like(searching)
    best_values, best_gradient = values.clone(), gradient.clone()
    searching = searching.clone()
    for _ in range(max_evaluations):
        rows = searching.nonzero().flatten()
        if len(rows) == 0:
            break
        trial_values, trial_gradient = objective(current[rows] + step[rows].unsqueeze(1) * direction[rows])
        decrease = torch.isfinite(trial_values) & (trial_values <= values[rows] + armijo * step[rows] * slope[rows])
        new_slope = (trial_gradient * direction[rows]).sum(dim=1)
        done = decrease & ((new_slope.abs() <= curvature * slope[rows].abs()) | (new_slope > 0))
        longer = decrease & ~done  # still going down steeply: remember this point, try further
        shorter = ~decrease
        for mask in (done, longer):
            picked = rows[mask]
            best_values[picked], best_gradient[picked] = trial_values[mask], trial_gradient[mask]
            low[picked] = step[picked]
        found[rows[done]] = True
        searching[rows[done]] = False
        high[rows[shorter]] = step[rows[shorter]]
        grow = rows[longer]
        step[grow] = torch.where(torch.isinf(high[grow]), 4 * step[grow], (step[grow] + high[grow]) / 2)
        cut = rows[shorter]
        step[cut] = (low[cut] + high[cut]) / 2
    fallback = searching & (low > 0)  # out of evaluations: keep the last step that lowered f enough
    found |= fallback
    step = torch.where(fallback, low, step)
    return found, step, best_values, best_gradient


def lbfgs(objective, thetas: torch.Tensor, iterations: int, history_size: int = 50, max_evaluations: int = 25
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """L-BFGS for every run at once; objective(thetas (R, P)) -> ((R,) values, (R, P) gradients).

    The objective is called on any subset of the runs' rows (those still searching), so it must be one
    function applied to each row independently, as `BatchedMLPLoss` methods are.

    Per run, as torch.optim.LBFGS(lr=1, history_size=50, line_search_fn="strong_wolfe") does: the two-loop
    recursion over its own last `history_size` (s, y) pairs (a pair with s.y <= 1e-10 is skipped), a first
    step of length min(1, 1 / |g|_1) along -g, then unit steps, each searched for the strong Wolfe conditions
    (`_wolfe_search`: growth and bisection where torch interpolates cubically, at most `max_evaluations`
    evaluations). A run whose search finds no decrease stops. Returns (thetas (R, P), values (R,))."""
    current = thetas.detach().clone()
    values, gradient = objective(current)
    runs = len(current)
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (s, y, rho) each (R, P), (R, P), (R,)
    gamma = torch.ones(runs, dtype=current.dtype, device=current.device)
    active = torch.isfinite(values) & (gradient.abs().amax(dim=1) > 0)
    first = True
    for _ in range(iterations):
        if not active.any():
            break
        direction = -gradient
        alphas = []
        for s_k, y_k, rho_k in reversed(pairs):
            alpha = rho_k * (s_k * direction).sum(dim=1)
            direction = direction - alpha.unsqueeze(1) * y_k
            alphas.append(alpha)
        direction = direction * gamma.unsqueeze(1)
        for (s_k, y_k, rho_k), alpha in zip(pairs, reversed(alphas)):
            beta = rho_k * (y_k * direction).sum(dim=1)
            direction = direction + (alpha - beta).unsqueeze(1) * s_k
        slope = (gradient * direction).sum(dim=1)
        not_descent = slope >= 0  # lost curvature information: fall back to steepest descent for that run
        direction = torch.where(not_descent.unsqueeze(1), -gradient, direction)
        slope = torch.where(not_descent, -(gradient * gradient).sum(dim=1), slope)
        step = torch.ones(runs, dtype=current.dtype, device=current.device)
        if first:
            step = torch.clamp(1.0 / gradient.abs().sum(dim=1), max=1.0)
            first = False
        found, step, new_values, new_gradient = _wolfe_search(objective, current, direction, values, gradient, slope, step,
                                                              active, max_evaluations)
        active &= found  # no acceptable step: that run has converged as far as it can
        moved = active.unsqueeze(1)
        s_new = torch.where(moved, step.unsqueeze(1) * direction, torch.zeros_like(direction))
        y_new = torch.where(moved, new_gradient - gradient, torch.zeros_like(direction))
        curvature = (s_new * y_new).sum(dim=1)
        valid = moved.squeeze(1) & (curvature > 1e-10)
        rho = torch.where(valid, 1.0 / torch.where(valid, curvature, torch.ones_like(curvature)), torch.zeros_like(curvature))
        gamma = torch.where(valid, curvature / (y_new * y_new).sum(dim=1).clamp_min(1e-300), gamma)
        pairs.append((s_new, y_new, rho))
        if len(pairs) > history_size:
            pairs.pop(0)
        current = torch.where(moved, current + s_new, current)
        values, gradient = torch.where(active, new_values, values), torch.where(moved, new_gradient, gradient)
    return current, values
