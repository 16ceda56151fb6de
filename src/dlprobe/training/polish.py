"""L-BFGS to the bottom of the basin: the finishing phase after a first-order optimizer (fit-function's training).

    record = lbfgs_polish(model.double(), torch.nn.functional.mse_loss, x.double(), y.double(), max_iterations=5000)
    record.converged, record.iterations, record.train_loss      # the model's parameters are updated in place

Full batch, torch.optim.LBFGS with the strong-Wolfe line search (history 50), in the model's dtype and on its device.
It runs in chunks of `chunk` iterations (each chunk one `step` call, 25 evaluations per iteration of budget), so that
the loss is recorded and the progress bar moves between chunks. L-BFGS's state (curvature pairs, last step) carries
over from chunk to chunk, and the stopping tests that torch skips on a chunk's last iteration are applied after it
(`_stopping_test_fired`), so the path and the stopping iteration are those of one call with max_iter=max_iterations
and max_eval=25*max_iterations (the tests check this against torch); each chunk only adds one loss evaluation at its
start. `converged` means torch's stopping test fired before `max_iterations`: the largest gradient component, the
directional derivative along the search direction, the largest parameter change of a step, or the change of the
loss between iterations fell to `tolerance` (absolute values, as torch defines them). With tolerance 1e-12 in
float64 this is where L-BFGS can no longer lower the loss; it is a local test, not a proof of a minimum. A loss
that becomes NaN/inf ends the phase with converged False and `diverged` True.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

EVALUATIONS_PER_ITERATION = 25


@dataclass
class PolishRecord:
    iterations: int  # L-BFGS iterations done (torch's count, which includes the one on which a stopping test fired)
    converged: bool  # torch's stopping test fired before max_iterations
    diverged: bool
    train_loss: float  # after the phase
    start_loss: float  # before it
    max_gradient: float  # largest |gradient component| at the end
    restarts: int = 0  # times L-BFGS was restarted: its stopping test fired after a run that lowered the loss by more than rel_improvement
    curve_iterations: list[int] = field(default_factory=list)  # 0, then the iteration count after each chunk
    curve_loss: list[float] = field(default_factory=list)


def lbfgs_polish(model: torch.nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, max_iterations: int,
                 tolerance: float = 1e-12, rel_improvement: float | None = None, history_size: int = 50, chunk: int = 10,
                 progress=None) -> PolishRecord:
    """Minimise loss_fn(model(x), y) over model's trainable parameters with full-batch L-BFGS (module docstring).
    rel_improvement: when torch's stopping test fires but this run of L-BFGS lowered the loss by more than this
    fraction, restart it (fresh curvature memory, a steepest-descent first step) from where it stopped; converged
    is then a run that stops having lowered the loss by at most that fraction (None: the first stop is final).
    progress: a tqdm-like bar advanced by the iterations done."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("lbfgs_polish: the model has no trainable parameters")

    def fresh():
        return torch.optim.LBFGS(params, lr=1.0, max_iter=chunk, max_eval=EVALUATIONS_PER_ITERATION * chunk,
                                 tolerance_grad=tolerance, tolerance_change=tolerance, history_size=history_size,
                                 line_search_fn="strong_wolfe")

    optimizer = fresh()

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    def current_loss() -> float:
        with torch.no_grad():
            return float(loss_fn(model(x), y))

    start = current_loss()
    record = PolishRecord(iterations=0, converged=False, diverged=not math.isfinite(start), train_loss=start, start_loss=start,
                          max_gradient=math.nan, curve_iterations=[0], curve_loss=[start])
    restart_loss = start
    while not record.diverged and record.iterations < max_iterations:
        size = min(chunk, max_iterations - record.iterations)
        optimizer.param_groups[0].update(max_iter=size, max_eval=EVALUATIONS_PER_ITERATION * size)
        state = optimizer.state[params[0]]
        iterations_before, evaluations_before = state.get("n_iter", 0), state.get("func_evals", 0)
        optimizer.step(closure)
        state = optimizer.state[params[0]]
        done, evaluations = state["n_iter"] - iterations_before, state["func_evals"] - evaluations_before
        record.iterations += done
        loss = current_loss()
        record.curve_iterations.append(record.iterations)
        record.curve_loss.append(loss)
        if progress is not None:
            progress.update(done)
        if not math.isfinite(loss):
            record.diverged = True
        elif _stopping_test_fired(state, done, size, evaluations, loss, tolerance):
            if done == 0 or rel_improvement is None or restart_loss - loss <= rel_improvement * abs(restart_loss):
                record.converged = True
                break
            record.restarts += 1
            optimizer, restart_loss = fresh(), loss
    record.train_loss = record.curve_loss[-1]
    closure()
    record.max_gradient = max(float(p.grad.abs().max()) for p in params if p.grad is not None)
    optimizer.zero_grad()
    if not record.converged and not record.diverged and record.max_gradient <= tolerance:
        record.converged = True  # the gradient test, which torch would check at the start of a next chunk
    return record


def _stopping_test_fired(state: dict, done: int, size: int, evaluations: int, loss: float, tolerance: float) -> bool:
    """Whether torch's stopping test ended the chunk just run (`done` of `size` iterations, `evaluations` loss
    evaluations, `loss` at the point reached). A chunk that stopped early without exhausting its evaluations did
    so by a test. A chunk that ran all its iterations ended at torch's `n_iter == max_iter` break, which comes
    before the tests on the step and on the loss change: those are applied here as torch would have (the gradient
    test comes first in the next chunk's `step`, and at the end of lbfgs_polish)."""
    if done < size:
        return evaluations < EVALUATIONS_PER_ITERATION * size  # else the evaluation budget ended it: not a test
    direction, step, previous = state.get("d"), state.get("t"), state.get("prev_loss")
    if direction is None or step is None or previous is None:
        return False
    return float(direction.mul(step).abs().max()) <= tolerance or abs(loss - previous) < tolerance
