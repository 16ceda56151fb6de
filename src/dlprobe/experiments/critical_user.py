"""critical-points on your own model (`--model FILE.py:FUNCTION`): one run at a time, exact or Lanczos.

    summary = run_user_model(config, ctx, user, count, target, data, seeds, switch)   # from critical_points.run

Each run is one trial (`_refine_user_run`): the ordinary training loop up to its switch epoch, then phases 2-3 of
critical_points.py on the model's flat loss in float64. Up to critical_points.MAX_EXACT_PARAMS parameters the
exact path (dense Hessian, eigh, the per-eigenvalue sign bound: the record critical_refine makes for an MLP run);
above it the Lanczos path (`_lanczos_point`, analysis/critical_lanczos.py), where no P x P matrix is built.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from ..analysis.critical_lanczos import KRYLOV_STEPS
from ..data.tensors import TensorData
from ..training.common import OptimizerSettings
from ..training.loop import TrainSpec
from .critical_points import MAX_EXACT_PARAMS, _summarize_runs
from .model_choice import train_seeded, user_or_builtin


def run_user_model(config, ctx, user, count: int, target, data: TensorData, seeds: list[int], switch: list[int]) -> dict:
    """critical-points on the user's model: one trial per run (train to its switch epoch with the ordinary loop, then
    phases 2-3 on its own, `_refine_user_run`); the same summary keys as the MLP path, plus user_model, and for a model
    above MAX_EXACT_PARAMS the Lanczos path (hessian_method "lanczos", its settings in lanczos_settings)."""
    method = "lanczos" if count > MAX_EXACT_PARAMS else "exact"
    trials = [(f"run_{seed}", partial(_refine_user_run, config, user, data, seed, epoch, method)) for seed, epoch in zip(seeds, switch)]
    records = ctx.map_trials(trials, "critical-points", steps=1)
    runs = [{"switch_epoch": epoch, **record} for epoch, record in zip(switch, records)]
    return _summarize_runs(config, ctx, runs, target, f"model {user.text}", user.text, count, user=user.text, method=method)


class _SingleLoss:
    """What critical_refine's estimates and critical_signs.curvature_gradients ask of a loss, for one flat loss f:
    `single` (f itself) and `second_directional` (grad (v^T H v) per row, by triple backprop, in chunks)."""

    def __init__(self, f):
        self.single = f

    def second_directional(self, thetas: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        from torch.func import grad, vjp, vmap

        def one(theta, v):
            return grad(lambda t: torch.dot(v, vjp(grad(self.single), t)[1](v)[0]))(theta)

        return torch.cat([vmap(one)(thetas[i:i + 64], steps[i:i + 64]) for i in range(0, len(thetas), 64)])


def _refine_user_run(config, user, data: TensorData, seed: int, switch_epoch: int, method: str, trial) -> dict:
    """One run on the user's model, float64 after training: the record critical_refine.refine_and_classify makes for an
    MLP run, from the same library pieces applied to one flat loss (analysis/critical.py, hessian.py, critical_signs.py).
    method "lanczos": no P x P matrix anywhere (phase 2's LM steps in a Krylov space, phase 3 `_lanczos_point`), and the
    loss is the library Hessian's (trainable parameters only; frozen ones stay as they are)."""
    from torch.func import grad, grad_and_value, vmap

    from ..analysis.batched_lbfgs import lbfgs
    from ..analysis.critical import damped_newton, minimize_grad_norm
    from ..analysis.critical_refine import _estimates  # the MLP path's per-point estimates, reused as they are
    from ..analysis.critical_signs import curvature_gradients
    from ..analysis.hessian import dense_hessian
    from ..analysis.params import flatten_params, make_flat_loss

    model = user_or_builtin(user, None, input_shape=(1,), num_outputs=1, seed=seed)
    spec = TrainSpec(loss="mse", optimizer=OptimizerSettings("adam", lr=config.learning_rate), epochs=switch_epoch,
                     eval_every=max(1, switch_epoch))
    result = train_seeded(model, data, spec, seed=seed)
    if result.status != "ok":
        return {"seed": seed, "status": result.status}
    model = model.double()
    if method == "lanczos":
        f, theta = _library_loss(model, data)
    else:
        f = make_flat_loss(model, torch.nn.functional.mse_loss, data.x_train.double(), data.y_train.double())
        theta = flatten_params(model).double()
    gradient_norm = lambda point: float(grad(f)(point).norm())  # noqa: E731
    common = {"seed": seed, "loss_at_switch": float(f(theta)), "grad_norm_at_switch": gradient_norm(theta)}
    if config.polish_steps:
        polished, _ = lbfgs(lambda points: tuple(reversed(vmap(grad_and_value(f))(points))), theta.unsqueeze(0), config.polish_steps)
        theta = polished[0]
    common["grad_norm_after_polish"] = gradient_norm(theta)
    if config.phase2 in ("both", "grad-norm") and config.grad_norm_steps:
        theta, _ = minimize_grad_norm(f, theta, steps=config.grad_norm_steps, lr=1.0, method="lbfgs")
    common["grad_norm_after_grad_min"] = gradient_norm(theta)
    if config.phase2 in ("both", "newton") and config.newton_steps:
        theta, _ = damped_newton(f, theta, steps=config.newton_steps, krylov_steps=KRYLOV_STEPS if method == "lanczos" else None)
    if method == "lanczos":
        record = _lanczos_point(config, model, f, theta, data, seed)
        if trial.progress is not None:
            trial.progress.update(1)
        return {**common, **record}
    hessian = dense_hessian(f, theta)
    gradient = grad(f)(theta)
    common.update(loss=float(f(theta)), grad_norm=float(gradient.norm()))
    if not (torch.isfinite(hessian).all() and torch.isfinite(gradient).all() and np.isfinite(common["loss"])):
        return {**common, "status": "failed (non-finite loss, gradient or Hessian)"}
    eigenvalues, basis = torch.linalg.eigh(hessian)
    loss = _SingleLoss(f)
    derivatives = curvature_gradients(loss, theta.unsqueeze(0), basis.unsqueeze(0))[0]
    if trial.progress is not None:
        trial.progress.update(1)
    return {**common, **_estimates(config, loss, theta, hessian, eigenvalues, basis, gradient, derivatives, seed), "status": "ok"}


def _library_loss(model, data: TensorData):
    """(flat loss, theta (P,)) of the float64 model's MSE on the training set, through `dlprobe.Hessian` (eval mode)."""
    from ..library.hessian import Hessian

    model.eval()
    measured = Hessian(model, torch.nn.functional.mse_loss, (data.x_train.double(), data.y_train.double()), progress=False)
    return measured.flat_loss(), measured.parameters()


def _lanczos_point(config, model, f, theta: torch.Tensor, data: TensorData, seed: int) -> dict:
    """Phase 3 without the P x P Hessian (analysis/critical_lanczos.py): loss, grad_norm, the estimates, status."""
    from torch.func import grad

    from ..analysis.critical_lanczos import LanczosFailure, lanczos_estimates
    from ..analysis.params import unflatten_params
    from ..library.hessian import Hessian

    gradient = grad(f)(theta)
    common = {"loss": float(f(theta)), "grad_norm": float(gradient.norm())}
    if not (torch.isfinite(gradient).all() and np.isfinite(common["loss"])):
        return {**common, "status": "failed (non-finite loss or gradient)"}
    model.load_state_dict(unflatten_params(theta, f.like), strict=False)  # the point reached, in the model
    hessian = Hessian(model, torch.nn.functional.mse_loss, (data.x_train.double(), data.y_train.double()), progress=False)
    try:
        return {**common, **lanczos_estimates(config, hessian, theta, gradient, seed), "status": "ok"}
    except LanczosFailure as error:
        return {**common, "status": f"failed ({error})"}
