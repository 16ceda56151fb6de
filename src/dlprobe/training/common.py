"""What the single-model loop and the ensemble trainer share: data order, optimizer settings, the device.

Data order is a pure function of (seed, epoch), as in open_lth: a run resumed at epoch e sees exactly the
batches a straight run sees, without saving any generator state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class OptimizerSettings:
    """optimizer: 'adam' (betas 0.9/0.999, eps 1e-8) or 'sgd' (with `momentum`); weight_decay is L2 added
    to the gradient, as torch.optim does."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ConfigError("momentum and weight_decay must be >= 0")


def make_optimizer(parameters, settings: OptimizerSettings) -> torch.optim.Optimizer:
    if settings.name == "adam":
        return torch.optim.Adam(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(parameters, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)


def epoch_permutation(num_examples: int, seed: int, epoch: int, device="cpu") -> torch.Tensor:
    """The order of the training examples in `epoch` for a run with data seed `seed`: (num_examples,)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_examples, generator=generator).to(device)


def batch_slices(num_examples: int, batch_size: int | None) -> list[slice]:
    """Consecutive batches over one epoch; the last may be smaller. None or 0 means full batch."""
    if not batch_size or batch_size >= num_examples:
        return [slice(0, num_examples)]
    if batch_size < 0:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    return [slice(start, min(start + batch_size, num_examples)) for start in range(0, num_examples, batch_size)]


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available (use --device auto or cpu)")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)
