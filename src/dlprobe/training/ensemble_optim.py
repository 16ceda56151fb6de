"""Adam and SGD over an ensemble's stacked parameters (M, ...), with a learning rate per model.

    optimizer = EnsembleOptimizer(model.parameters(), OptimizerSettings("adam", lr=1e-3), lrs)  # lrs (M,)

The update rules are torch.optim.Adam's and SGD's, elementwise, so model m moves exactly as it would under
its own optimizer with learning rate lrs[m] (the ensemble tests compare against the plain loop).
"""

from __future__ import annotations

import math

import torch


class EnsembleOptimizer:
    """Adam or SGD(momentum) over stacked parameters with a learning rate per model: lrs (M,).

    Same update rules as torch.optim.Adam / SGD (L2 weight decay added to the gradient)."""

    def __init__(self, params, settings, lrs: torch.Tensor):
        self.params = list(params)
        self.settings = settings
        self.lrs = lrs
        self.step_count = 0
        self.state = [dict() for _ in self.params]

    def _lr(self, param):  # (M, 1, 1) broadcastable to the parameter
        return self.lrs.view(-1, *([1] * (param.dim() - 1))).to(param)

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        s = self.settings
        for param, state in zip(self.params, self.state):
            grad = param.grad
            if s.weight_decay:
                grad = grad.add(param, alpha=s.weight_decay)
            if s.name == "adam":
                beta1, beta2, eps = 0.9, 0.999, 1e-8
                if not state:
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias1 = 1 - beta1**self.step_count
                bias2_sqrt = math.sqrt(1 - beta2**self.step_count)
                denom = (state["exp_avg_sq"].sqrt() / bias2_sqrt).add_(eps)
                param.addcdiv_(state["exp_avg"] * (self._lr(param) / bias1), denom, value=-1)
            else:
                if s.momentum:
                    if "momentum" not in state:
                        state["momentum"] = grad.clone()
                    else:
                        state["momentum"].mul_(s.momentum).add_(grad)
                    grad = state["momentum"]
                param.sub_(grad * self._lr(param))

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "state": [dict(s) for s in self.state], "lrs": self.lrs}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step_count"]
        self.state = [{k: v.to(p.device) for k, v in s.items()} for s, p in zip(state["state"], self.params)]
        self.lrs = state["lrs"].to(self.lrs.device)
