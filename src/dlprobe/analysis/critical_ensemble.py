"""Driving the gradient of many models to zero at once (the batched phase of critical-points).

    history = minimize_grad_norm_ensemble(ensemble, x, y, loss="mse", steps=500, lr=1e-4)   # (steps+1, M)

Each model m minimises g_m(theta_m) = ||grad L_m(theta_m)||^2 with true double backprop: the gradients are
built with create_graph=True, so backpropagating sum_m g_m differentiates through them (its gradient is
2 H_m grad L_m, not the zero a detached norm would give). Models do not interact: L_m depends only on
theta_m, and Adam is elementwise, so this equals minimising each model's g_m alone.
"""

from __future__ import annotations

import torch

from ..training.common import per_example_loss
from ..training.ensemble import EnsembleMLP


def ensemble_losses(model: EnsembleMLP, x: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """(M,) mean loss of each model on the shared data x (N, ...), y (N, K) or (N,)."""
    output = model(x, shared=True)
    target = y.unsqueeze(0).expand(model.num_models, *y.shape)
    return per_example_loss(output, target, loss).mean(dim=1)


def ensemble_grad_norms(model: EnsembleMLP, x, y, loss: str, create_graph: bool = False) -> torch.Tensor:
    """(M,) Euclidean norm of each model's loss gradient (differentiable when create_graph)."""
    losses = ensemble_losses(model, x, y, loss)
    grads = torch.autograd.grad(losses.sum(), list(model.parameters()), create_graph=create_graph)
    squared = sum(g.pow(2).reshape(model.num_models, -1).sum(dim=1) for g in grads)
    return squared.sqrt() if not create_graph else squared


def minimize_grad_norm_ensemble(model: EnsembleMLP, x, y, loss: str = "mse", steps: int = 500, lr: float = 1e-4) -> torch.Tensor:
    """Adam on sum_m ||grad L_m||^2, in place. Returns (steps + 1, M) gradient norms, before and after each step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        squared = ensemble_grad_norms(model, x, y, loss, create_graph=True)  # (M,), graph kept for double backprop
        history.append(squared.detach().sqrt())  # the norm before this step
        squared.sum().backward()
        optimizer.step()
    history.append(ensemble_grad_norms(model, x, y, loss).detach())
    return torch.stack(history)
