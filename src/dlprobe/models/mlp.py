"""Fully connected networks built from a plain spec, initialised from an explicit generator.

    spec = MLPSpec(in_features=1, widths=(16, 16), out_features=1, activation="tanh")
    model = build_mlp(spec, torch.Generator().manual_seed(0))

Initialisation follows PyTorch's nn.Linear default (uniform in ±1/sqrt(fan_in) for weight and bias) but
draws from the generator passed in, so a seed fixes the weights without touching the global RNG, and the
ensemble model (ensemble_mlp.py) can stack exactly the same initial weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "elu": nn.ELU,
}


def activation_module(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class MLPSpec:
    """in_features -> widths[0] -> ... -> widths[-1] -> out_features, activation after each hidden layer."""

    in_features: int
    widths: tuple[int, ...]
    out_features: int
    activation: str = "tanh"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.in_features < 1 or self.out_features < 1 or any(w < 1 for w in self.widths):
            raise ConfigError(f"MLP sizes must be positive, got {self}")
        activation_module(self.activation)

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each Linear layer, input to output."""
        sizes = [self.in_features, *self.widths, self.out_features]
        return list(zip(sizes[:-1], sizes[1:]))

    @property
    def num_params(self) -> int:
        return sum(fan_in * fan_out + fan_out for fan_in, fan_out in self.layer_sizes)

    def describe(self) -> str:
        return "-".join(str(s) for s in (self.in_features, *self.widths, self.out_features))


def init_linear_params(fan_in: int, fan_out: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (fan_out, fan_in), bias (fan_out,)), uniform in ±1/sqrt(fan_in) as nn.Linear does."""
    bound = 1.0 / math.sqrt(fan_in)
    weight = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(fan_out, generator=generator) * 2 - 1) * bound
    return weight, bias


def init_mlp_params(spec: MLPSpec, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Initial (weight, bias) per layer; the one source of MLP initial weights (module and ensemble)."""
    return [init_linear_params(fan_in, fan_out, generator) for fan_in, fan_out in spec.layer_sizes]


class MLP(nn.Sequential):
    """Flattens its input, then Linear/activation layers. Linear layers are named layers.<i>."""

    def __init__(self, spec: MLPSpec):
        layers: list[nn.Module] = [nn.Flatten()]
        for index, (fan_in, fan_out) in enumerate(spec.layer_sizes):
            layers.append(nn.Linear(fan_in, fan_out))
            if index < len(spec.widths):
                layers.append(activation_module(spec.activation))
        super().__init__(*layers)
        self.spec = spec

    def linear_layers(self) -> list[nn.Linear]:
        return [m for m in self if isinstance(m, nn.Linear)]


def build_mlp(spec: MLPSpec, generator: torch.Generator) -> MLP:
    model = MLP(spec)
    with torch.no_grad():
        for layer, (weight, bias) in zip(model.linear_layers(), init_mlp_params(spec, generator)):
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
    return model
