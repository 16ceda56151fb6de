"""The critical-point search of the critical-points experiment, on your own (small) model and data.

    point = dlprobe.critical_point(model, nn.CrossEntropyLoss(), (x, y), method="newton")   # float64 by default
    point.grad_norms[-1], point.minimal_ratio, point.index, point.eigenvalues
    model.load_state_dict(point.state, strict=False)        # to look at the network there

The search runs on `Hessian.flat_loss()` with `analysis.critical`: "newton" is Levenberg-Marquardt on
grad L = 0 with the exact Hessian (`damped_newton`, converges to the nearest critical point, saddles included),
"adam" and "lbfgs" minimise ||grad L||^2 (`minimize_grad_norm`). The exact Hessian and the whole dataset's
graph are built at every step: for models of up to a few thousand parameters and small data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlprobe.analysis.critical import damped_newton, hessian_index, minimal_ratio, minimize_grad_norm
from dlprobe.analysis.hessian import dense_hessian
from dlprobe.analysis.params import unflatten_params
from dlprobe.errors import UsageError
from dlprobe.library.batches import Output
from dlprobe.library.hessian import Hessian
from dlprobe.library.results import CriticalPoint

METHODS = ("newton", "adam", "lbfgs")


def critical_point(model: nn.Module, loss_fn, data, method: str = "newton", steps: int | None = None,
                   tol: float | None = None, lr: float = 1e-3, params=None, output: Output = None,
                   dtype: torch.dtype | None = torch.float64, max_params: int = 4096) -> CriticalPoint:
    """Drive the gradient of the mean loss over data to ~0 from the model's weights, then classify the point.

    method: "newton" (steps default 100, tol 1e-10), "adam" or "lbfgs" (steps default 1000, lr, tol 0: all
    steps). params, output, dtype: as for `dlprobe.Hessian` (the search runs on a copy in dtype, float64 by
    default: gradient norms far below 1e-6 need it). The model itself is not changed.
    """
    if method not in METHODS:
        raise UsageError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    hessian = Hessian(model, loss_fn, data, params=params, output=output, dtype=dtype, progress=False)
    if hessian.num_params > max_params:
        raise UsageError(f"the critical-point search builds the exact {hessian.num_params}-parameter Hessian at "
                         f"every step (more than max_params={max_params}); select fewer parameters with params=")
    f, theta = hessian.flat_loss(), hessian.parameters()
    if method == "newton":
        point, history = damped_newton(f, theta, steps=100 if steps is None else steps, tol=1e-10 if tol is None else tol)
    else:
        point, history = minimize_grad_norm(f, theta, steps=1000 if steps is None else steps, lr=lr, method=method,
                                            tol=0.0 if tol is None else tol)
    eigenvalues = torch.linalg.eigvalsh(dense_hessian(f, point).double()).cpu().numpy()
    state = {name: tensor.detach().clone() for name, tensor in unflatten_params(point, f.like).items()}
    return CriticalPoint(state=state, grad_norms=np.asarray(history, dtype=np.float64), loss=float(f(point)),
                         eigenvalues=eigenvalues, minimal_ratio=minimal_ratio(eigenvalues),
                         index=hessian_index(eigenvalues).index, method=method)
