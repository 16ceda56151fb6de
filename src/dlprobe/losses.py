"""The two losses, per example: one definition for the trainers and the analysis tools.

    from dlprobe.losses import check_loss, mean_loss, per_example_loss
    check_loss(name)                                       # ConfigError for an unknown name
    per_example_loss(outputs, targets, "cross_entropy")    # (..., N)
    dlprobe.interpolate(m1, m2, data, mean_loss("mse"))     # the batch mean, as the library API takes a loss

The trainers call it on (B, K) outputs of one model and (M, B, K) outputs of an ensemble with targets of
the same leading shape; the experiments' measurements (through the library API) on the (B, K) outputs of one
model at one weight point, as `mean_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError

LOSSES = ("mse", "cross_entropy")


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return loss


def per_example_loss(outputs: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss of each example: outputs (..., N, K) -> (..., N).

    "cross_entropy": targets are integer labels, (N,) or outputs' leading shape (..., N).
    "mse": the mean squared error over the K output entries of one example (so the mean over examples is
    `F.mse_loss` over the batch); targets (N, K) or outputs' shape (..., N, K), or any shape with N * K
    entries, e.g. (N,) for K = 1, which is read as (N, K).
    """
    if check_loss(loss) == "cross_entropy":
        flat = outputs.reshape(-1, outputs.shape[-1])
        labels = targets.expand(*outputs.shape[:-1]).reshape(-1)
        return F.cross_entropy(flat, labels, reduction="none").view(outputs.shape[:-1])
    if targets.shape[-2:] != outputs.shape[-2:]:  # mse
        num_examples, num_outputs = outputs.shape[-2:]
        if targets.numel() != num_examples * num_outputs:
            raise ConfigError(
                f"mse targets of shape {tuple(targets.shape)} do not match outputs (N, C) = {(num_examples, num_outputs)}"
            )
        targets = targets.reshape(num_examples, num_outputs)
    return (outputs - targets).square().mean(-1)


def mean_loss(loss: str):
    """The loss `loss` as the callable the library API takes, (outputs (B, K), targets) -> the 0-D batch mean of
    `per_example_loss` (what the experiments pass to dlprobe.interpolate and surface). The B losses are summed in
    the outputs' dtype and divided by B in float64, as the trainers' evaluation does: with float32 outputs the
    library's size-weighted sum then gives back the float32 sum exactly, so a mean over batches is the sum of
    their float32 sums over N (a float32 mean, rounded to 24 bits first, moved it by up to 6e-8)."""
    check_loss(loss)

    def batch_mean(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        losses = per_example_loss(outputs, targets, loss)  # (B,)
        return losses.sum().double() / losses.numel()

    batch_mean.__name__ = loss
    return batch_mean
