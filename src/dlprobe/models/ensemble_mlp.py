"""M MLPs of one spec as one module with stacked weights: the ensemble trainer's model.

    model = EnsembleMLP(MLPSpec(1, (16, 16), 1, "tanh"), seeds=range(100))
    outputs = model(x, shared=True)        # x (B, 1) seen by all -> (100, B, 1)
    model.flat_params()                    # (100, P), rows ordered like build_mlp's parameters
    model.member(3)                        # model 3 as an ordinary MLP (a copy)

Layer l's weights are W_l: (M, fan_in, fan_out) and b_l: (M, 1, fan_out), and the forward pass is one
`baddbmm` per layer over (M, B, fan_in) inputs, so a step of 100 small models is a handful of large kernels
instead of 100 x layers small ones. Model m starts from exactly the weights
`build_mlp(spec, Generator().manual_seed(seeds[m]))` has (both draw from `init_mlp_params`).
"""

from __future__ import annotations

import torch
from torch import nn

from .fast_tanh import fast_tanh
from .mlp import MLP, MLPSpec, activation_module, init_mlp_params


def ensemble_linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, out=None, scratch=None) -> torch.Tensor:
    """h (M, B, fan_in) @ weight (M, fan_in, fan_out) + bias (M, 1, fan_out) -> (M, B, fan_out).

    A one-wide side (the 1-input first layer or the 1-output last layer of a function fit) is written as a
    broadcast product: batched matmul kernels are slow on such shapes, and their backward passes too
    (measured for M=100, B=1000, 16 wide: last layer forward + backward 3.0 ms with bmm, 0.5 ms this way).
    out: write the result there (no autograd then); scratch: (M, B, fan_in) for the 1-output product."""
    if weight.shape[1] == 1:
        return torch.addcmul(bias, h, weight, out=out)
    if weight.shape[2] == 1:
        total = torch.sum(torch.mul(h, weight.transpose(1, 2), out=scratch), dim=2, keepdim=True, out=out)
        return total.add_(bias) if out is not None else total + bias
    return torch.baddbmm(bias, h, weight, out=out)


class EnsembleMLP(nn.Module):
    """M MLPs with one spec; parameters weights.<l> (M, fan_in, fan_out) and biases.<l> (M, 1, fan_out)."""

    def __init__(self, spec: MLPSpec, seeds):
        super().__init__()
        self.spec = spec
        self.num_models = len(seeds)
        per_model = [init_mlp_params(spec, torch.Generator().manual_seed(int(seed))) for seed in seeds]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([layers[l][0].T for layers in per_model])) for l in range(len(spec.layer_sizes))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([layers[l][1].unsqueeze(0) for layers in per_model])) for l in range(len(spec.layer_sizes))
        )
        self.activation = activation_module(spec.activation)

    def forward(self, x: torch.Tensor, shared: bool = False, fast: bool = False) -> torch.Tensor:
        """x: (M, B, ...) one batch per model, or with shared=True (B, ...) seen by every model
        -> (M, B, out_features). fast=True evaluates tanh with `fast_tanh` (first derivatives only: the
        trainer and evaluation use it; double-backward code must not)."""
        activation = fast_tanh if fast and self.spec.activation == "tanh" else self.activation
        if shared:
            h = x.reshape(1, x.shape[0], -1).expand(self.num_models, -1, -1)
        else:
            h = x.reshape(self.num_models, x.shape[1], -1)
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = ensemble_linear(h, weight, bias)
            if index < last:
                h = activation(h)
        return h

    def flat_params(self) -> torch.Tensor:
        """(M, P), each row ordered like `nn.utils.parameters_to_vector(build_mlp(spec, ...))`."""
        pieces = []
        for weight, bias in zip(self.weights, self.biases):
            pieces += [weight.detach().transpose(1, 2).reshape(self.num_models, -1), bias.detach().reshape(self.num_models, -1)]
        return torch.cat(pieces, dim=1)

    def member(self, index: int) -> MLP:
        """Model `index` as an ordinary MLP module (a copy)."""
        model = MLP(self.spec).to(device=self.weights[0].device, dtype=self.weights[0].dtype)
        with torch.no_grad():
            for layer, weight, bias in zip(model.linear_layers(), self.weights, self.biases):
                layer.weight.copy_(weight[index].T)
                layer.bias.copy_(bias[index, 0])
        return model
