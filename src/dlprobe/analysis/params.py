"""Flat parameter vectors and the loss as a function of them.

The Hessian and critical-point tools work on one flat vector `theta` of all P parameters (in
`model.named_parameters()` order) and a closure `f(theta) -> scalar loss`:

    theta = flatten_params(model)                                  # (P,)
    f = make_flat_loss(model, torch.nn.functional.mse_loss, x, y)  # f(theta) -> ()
    H = dense_hessian(f, theta)                                    # dlprobe.analysis.hessian

`make_flat_loss` returns a `FlatLoss`, which also exposes the loss of a parameter dictionary;
`dense_hessian` uses that to skip work (see its docstring). Everything here is built on
`torch.func.functional_call`, so the model itself is never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.func import functional_call

from dlprobe.analysis.landscape import evaluation_mode
from dlprobe.errors import ConfigError

ParamsLike = nn.Module | Mapping[str, torch.Tensor]


def _named_tensors(source: ParamsLike) -> dict[str, torch.Tensor]:
    if isinstance(source, nn.Module):
        return {name: p.detach() for name, p in source.named_parameters()}
    return dict(source)


def param_shapes(model: ParamsLike) -> dict[str, torch.Size]:
    """Name -> shape of every parameter, in flattening order."""
    return {name: t.shape for name, t in _named_tensors(model).items()}


def flatten_params(source: ParamsLike) -> torch.Tensor:
    """All parameters as one 1-D tensor of length P (named_parameters order).

    A module gives a detached copy (a snapshot); a dictionary of tensors is concatenated
    without detaching, so gradients flow through it.
    """
    tensors = _named_tensors(source)
    if not tensors:
        raise ConfigError("flatten_params: the model or dictionary has no parameters")
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten_params(vector: torch.Tensor, like: ParamsLike) -> dict[str, torch.Tensor]:
    """Split a flat (P,) vector into name -> tensor shaped like `like` (views where possible)."""
    shapes = param_shapes(like)
    sizes = [s.numel() for s in shapes.values()]
    if vector.dim() != 1 or vector.numel() != sum(sizes):
        raise ConfigError(
            f"unflatten_params: expected a 1-D vector of {sum(sizes)} values, "
            f"got shape {tuple(vector.shape)}"
        )
    pieces = torch.split(vector, sizes)
    return {name: piece.reshape(shape) for (name, shape), piece in zip(shapes.items(), pieces)}


def load_flat_params(model: nn.Module, theta: torch.Tensor) -> None:
    """Copy a flat (P,) vector into the model's parameters in place (dtype of the model kept)."""
    with torch.no_grad():
        values = unflatten_params(theta, model)
        for name, param in model.named_parameters():
            param.copy_(values[name])


class FlatLoss:
    """Callable f(theta) -> scalar loss, plus the same loss of a parameter dictionary.

    `dict_loss(params)` takes name -> tensor in the order `like` lists them; `like` gives names
    and shapes. `dense_hessian` uses this structure to compute only the upper triangle of H,
    treating parameters that come earlier in the order as constants (see hessian.py).
    """

    def __init__(self, dict_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                 like: Mapping[str, torch.Tensor]):
        self.dict_loss = dict_loss
        self.like = {name: t.detach() for name, t in like.items()}

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return self.dict_loss(unflatten_params(theta, self.like))


def make_flat_loss(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   inputs: torch.Tensor, targets: torch.Tensor,
                   batch_size: int | None = None) -> FlatLoss:
    """The mean loss over all (inputs, targets) as a function of the flat parameter vector.

    inputs: (N, ...) and targets: (N, ...) (any shapes the model and loss accept).
    loss_fn(outputs, targets) must return the *mean* loss over the samples it is given (the
    default `reduction="mean"` of torch losses). With `batch_size`, the data go through the model
    in chunks of that many samples and the chunk means are combined with weights n_chunk / N, so
    the result equals the full-batch mean (up to rounding) and stays twice differentiable.
    The model runs in eval mode with its buffers; floating inputs, targets and buffers are cast to
    theta's dtype and device, so the same model works in float32 and float64.
    Returns a `FlatLoss` f with f(theta: (P,)) -> () tensor.
    """
    num_samples = inputs.shape[0] if inputs.dim() > 0 else 0
    if num_samples == 0:
        raise ConfigError("make_flat_loss: inputs must hold at least one sample")
    if targets.shape[0] != num_samples:
        raise ConfigError(
            f"make_flat_loss: {num_samples} inputs but {targets.shape[0]} targets"
        )
    if batch_size is not None and batch_size <= 0:
        raise ConfigError(f"make_flat_loss: batch_size must be positive, got {batch_size}")
    chunk = num_samples if batch_size is None else min(batch_size, num_samples)
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def cast(t: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)

    def dict_loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
        first = next(iter(params.values()))
        # Cast on every call (a no-op when dtypes match) rather than caching: a tensor made while
        # a torch.func transform is active must not outlive it ("escaped" tensors).
        dtype, device = first.dtype, first.device
        input_chunks = cast(inputs, dtype, device).split(chunk)
        target_chunks = cast(targets, dtype, device).split(chunk)
        cast_buffers = {name: cast(b, dtype, device) for name, b in buffers.items()}
        total = None
        # The loss landscape is a property of the deterministic network (no dropout, BatchNorm with its stored
        # statistics), so evaluate in eval mode; the caller's flags are put back afterwards.
        with evaluation_mode(model):
            for x, y in zip(input_chunks, target_chunks):
                outputs = functional_call(model, (params, cast_buffers), (x,))
                term = loss_fn(outputs, y) * (x.shape[0] / num_samples)
                total = term if total is None else total + term
        return total

    return FlatLoss(dict_loss, dict(model.named_parameters()))
