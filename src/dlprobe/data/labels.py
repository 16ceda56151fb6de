"""Label corruption for the random-labels experiment (Zhang et al. 2017): shuffle or randomize a fraction.

    generator = torch.Generator().manual_seed(seed)
    noisy = corrupt_labels(data.y_train, fraction=1.0, mode="shuffle", num_classes=10, generator=generator)

Both modes pick round(fraction * N) training labels at random and leave the others alone; "shuffle"
permutes the picked labels among themselves (the class counts stay exact), "random" replaces them by
uniformly random classes. The input is never modified, and only `generator` decides the draw.
"""

from __future__ import annotations

import torch

from dlprobe.errors import ConfigError

LABEL_MODES = ("shuffle", "random")


def _choose(labels: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """round(fraction * N) distinct indices into `labels` (N,), in random order."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"label_noise must be in [0, 1], got {fraction}")
    return torch.randperm(labels.numel(), generator=generator)[:int(round(fraction * labels.numel()))]


def randomize_labels(labels: torch.Tensor, fraction: float, num_classes: int,
                     generator: torch.Generator) -> torch.Tensor:
    """A copy of `labels` (N,) where round(fraction * N) entries, chosen at random, are replaced by
    uniformly random classes. As in Zhang et al. 2017 a replacement may equal the true label, so
    fraction 1.0 changes about (1 - 1/num_classes) of them. The input is not modified."""
    chosen = _choose(labels, fraction, generator)
    noisy = labels.clone()
    noisy[chosen] = torch.randint(num_classes, (chosen.numel(),), generator=generator, dtype=labels.dtype)
    return noisy


def shuffle_labels(labels: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """A copy of `labels` (N,) where the labels of round(fraction * N) entries, chosen at random, are
    randomly permuted among those entries, so the class counts stay exactly the same. An entry may
    receive a label of its own class, so with ten balanced classes fraction 1.0 changes about 90% of
    them. The input is not modified."""
    chosen = _choose(labels, fraction, generator)
    noisy = labels.clone()
    noisy[chosen] = labels[chosen[torch.randperm(chosen.numel(), generator=generator)]]
    return noisy


def corrupt_labels(labels: torch.Tensor, fraction: float, mode: str, num_classes: int,
                   generator: torch.Generator) -> torch.Tensor:
    """`shuffle_labels` (mode "shuffle") or `randomize_labels` (mode "random") of `labels` (N,)."""
    if mode == "shuffle":
        return shuffle_labels(labels, fraction, generator)
    if mode == "random":
        return randomize_labels(labels, fraction, num_classes, generator)
    raise ConfigError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {mode!r}")
