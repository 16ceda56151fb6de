"""Convolutional classifiers built from a plain spec.

    spec = CNNSpec(input_shape=(1, 28, 28), channels=(16, 32), dense=(64,), num_classes=10)
    model = build_cnn(spec, torch.Generator().manual_seed(0))

Each conv block is Conv2d(3x3, padding 1) -> activation -> MaxPool2d(2) (the pool is skipped once the
feature map is 1 pixel wide, so deep stacks stay valid on small images); then flatten, dense hidden
layers, and the class scores. Weights are drawn from the given generator (no global RNG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .mlp import activation_module, init_linear_params

KERNEL_SIZE = 3


@dataclass(frozen=True)
class CNNSpec:
    input_shape: tuple[int, int, int]  # (C, H, W)
    channels: tuple[int, ...]
    dense: tuple[int, ...]
    num_classes: int
    activation: str = "relu"

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "dense", tuple(int(d) for d in self.dense))
        if any(c < 1 for c in self.channels) or any(d < 1 for d in self.dense) or self.num_classes < 2:
            raise ConfigError(f"CNN sizes must be positive (and at least 2 classes), got {self}")
        activation_module(self.activation)

    def feature_map_sizes(self) -> list[tuple[int, int]]:
        """(H, W) after each conv block."""
        height, width = self.input_shape[1:]
        sizes = []
        for _ in self.channels:
            if min(height, width) >= 2:
                height, width = height // 2, width // 2
            sizes.append((height, width))
        return sizes

    @property
    def flat_features(self) -> int:
        if not self.channels:
            return math.prod(self.input_shape)
        height, width = self.feature_map_sizes()[-1]
        return self.channels[-1] * height * width

    @property
    def num_params(self) -> int:
        total, in_channels = 0, self.input_shape[0]
        for out_channels in self.channels:
            total += out_channels * in_channels * KERNEL_SIZE**2 + out_channels
            in_channels = out_channels
        sizes = [self.flat_features, *self.dense, self.num_classes]
        return total + sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

    def describe(self) -> str:
        conv = "x".join(str(c) for c in self.channels) or "none"
        dense = "x".join(str(d) for d in self.dense) or "none"
        return f"conv[{conv}]-dense[{dense}]"


class CNN(nn.Module):
    def __init__(self, spec: CNNSpec):
        super().__init__()
        self.spec = spec
        blocks: list[nn.Module] = []
        in_channels = spec.input_shape[0]
        height = min(spec.input_shape[1:])
        for out_channels in spec.channels:
            blocks += [nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, padding=1), activation_module(spec.activation)]
            if height >= 2:
                blocks.append(nn.MaxPool2d(2))
                height //= 2
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        sizes = [spec.flat_features, *spec.dense, spec.num_classes]
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            head.append(nn.Linear(fan_in, fan_out))
            if index < len(spec.dense):
                head.append(activation_module(spec.activation))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, num_classes)
        return self.classifier(self.features(x))


def build_cnn(spec: CNNSpec, generator: torch.Generator) -> CNN:
    model = CNN(spec)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * KERNEL_SIZE**2
                weight, bias = init_linear_params(fan_in, module.out_channels, generator)
                module.weight.copy_(weight.view_as(module.weight))
                module.bias.copy_(bias)
            elif isinstance(module, nn.Linear):
                weight, bias = init_linear_params(module.in_features, module.out_features, generator)
                module.weight.copy_(weight)
                module.bias.copy_(bias)
    return model
