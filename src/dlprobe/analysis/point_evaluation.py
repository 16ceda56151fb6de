"""Evaluate one architecture at many weight points at once: the engine behind interpolation and surfaces.

A point set is given as linear combinations of K states (dicts name -> tensor, as `model.state_dict()`):
theta_a = sum_k coefficients[a, k] * states[k] for the floating tensors, coefficients (A, K). Interpolation
is states (theta1, theta2) with rows (1 - alpha, alpha); a 2-D surface is (theta, d1, d2) with rows (1, a, b).
A name missing from states[0] keeps the model's own tensor; missing from a later state, it counts as zero.
Integer buffers (num_batches_tracked) come from states[0].

Two ways to be faster than one model copy per point, each used where it pays:
- First-layer split. The first layer (Linear or Conv) is linear in its weight and bias, so at every point
  its output is sum_k c_ak * layer(x; states[k]): K products per data batch instead of A. For an MLP on
  images the first 784 x H product is nearly all of the work (benchmark case 4). Used for nn.Sequential
  models that start with parameter-free Flatten/Identity modules and have no BatchNorm.
- vmap over points (one batched matmul per layer) for models without convolutions. With convolutions,
  batched weights under vmap become a grouped convolution that is slower on the CPU than plain calls
  (measured 0.5x), so conv models are evaluated one point at a time through `functional_call`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.func import functional_call, vmap

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def combine_states(states, coefficients, names=None) -> dict:
    """Stacked state (A, *shape) of the points sum_k coefficients[:, k] * states[k] (see module docstring)."""
    coefficients = torch.as_tensor(coefficients)
    stacked = {}
    for name, base in states[0].items():
        if names is not None and name not in names:
            continue
        if not base.is_floating_point():
            stacked[name] = base.expand(len(coefficients), *base.shape).clone()
            continue
        shape = (-1,) + (1,) * base.dim()
        total = coefficients[:, 0].to(base).view(shape) * base
        for index in range(1, len(states)):
            if name in states[index]:
                total = total + coefficients[:, index].to(base).view(shape) * states[index][name]
        stacked[name] = total
    return stacked


def first_layer_index(model) -> int | None:
    """Index of the first layer of an nn.Sequential when the first-layer split applies, else None."""
    if not isinstance(model, nn.Sequential) or any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return None
    for index, module in enumerate(model):
        if isinstance(module, (nn.Linear, *CONVOLUTIONS)):
            return index
        if not isinstance(module, (nn.Flatten, nn.Identity)):
            return None
    return None


def forward_points(module, stacked, inputs, inputs_per_point: bool = False) -> torch.Tensor:
    """Outputs (A, b, ...) of `module` at each point of `stacked`; inputs (b, ...) shared or (A, b, ...)."""
    num_points = len(next(iter(stacked.values())))
    if any(isinstance(m, CONVOLUTIONS) for m in module.modules()):
        outputs = []
        for index in range(num_points):
            point = {name: tensor[index] for name, tensor in stacked.items()}
            outputs.append(functional_call(module, point, (inputs[index] if inputs_per_point else inputs,)))
        return torch.stack(outputs)
    call = vmap(lambda point, batch: functional_call(module, point, (batch,)), in_dims=(0, 0 if inputs_per_point else None))
    return call(stacked, inputs)


class PointEvaluator:
    """Callable (inputs (b, ...)) -> outputs (A, b, ...) of the model at the A points of one chunk.

    The model must be in the mode it should be evaluated in (eval); BatchNorm statistics, if any, must already
    be in `stacked` (see landscape.recompute_batchnorm_statistics)."""

    def __init__(self, model, states, coefficients, stacked=None):
        self.model = model
        index = first_layer_index(model)
        prefix = f"{index}." if index is not None else None
        if index is not None and any(name.startswith(prefix) for name in states[0]):
            items = list(model._modules.items())
            self.prefix = nn.Sequential(OrderedDict(items[:index]))
            self.first = items[index][1]
            self.rest = nn.Sequential(OrderedDict(items[index + 1 :]))
            self.first_states = [{name[len(prefix) :]: t for name, t in state.items() if name.startswith(prefix)} for state in states]
            self.coefficients = torch.as_tensor(coefficients)
            self.rest_stacked = combine_states(states, coefficients, names={n for n in states[0] if not n.startswith(prefix)})
            self.split = True
        else:
            self.stacked = stacked if stacked is not None else combine_states(states, coefficients)
            self.split = False

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.split:
            return forward_points(self.model, self.stacked, inputs)
        features = self.prefix(inputs)
        hidden = None
        for index, state in enumerate(self.first_states):
            if not state:
                continue  # a direction without first-layer entries adds zero
            # Missing names: the layer's own tensor in states[0], zero in a direction.
            state = {name: state.get(name, own if index == 0 else torch.zeros_like(own)) for name, own in self.first.named_parameters()}
            output = functional_call(self.first, state, (features,))  # (b, ...)
            weight = self.coefficients[:, index].to(output).view(-1, *([1] * output.dim()))
            hidden = weight * output if hidden is None else hidden + weight * output  # (A, b, ...)
        return forward_points(self.rest, self.rest_stacked, hidden, inputs_per_point=True)
