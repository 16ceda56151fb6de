"""The data and the loss of the library API: batches of (inputs, targets), the model's output, the batch loss.

    batches = Batches(data)                      # (x, y) tensors, or any re-iterable of (x, y): a DataLoader
    for index, inputs, targets, size in batches.iterate(device, dtype): ...
    loss = batch_loss(model, loss_fn, inputs, targets, select_output(output), index)   # 0-D tensor

The mean loss over the dataset is sum_b (size_b / N) * loss_fn(model(x_b), y_b): loss_fn must return the
*mean* over its batch (torch's default reduction="mean"), so batches of any size combine to the mean over all
N examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from dlprobe.errors import UsageError

Output = str | int | Callable | None


def _is_pair(item) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 2


def _size(inputs, targets) -> int:
    for tensor in (targets, inputs):
        if isinstance(tensor, torch.Tensor) and tensor.dim() > 0:
            return tensor.shape[0]
    raise UsageError("each batch must hold tensors with a leading batch dimension (inputs (B, ...), targets (B, ...))")


def _to(tensor, device: torch.device, dtype: torch.dtype | None, what: str, index: int):
    """Cast a floating tensor to dtype; data on another device than the model is the user's to move."""
    if not isinstance(tensor, torch.Tensor):
        return tensor
    if tensor.device != device:
        raise UsageError(
            f"batch {index}: {what} are on {tensor.device} but the model is on {device}; move the data to {device} "
            "(or the model to the data's device)"
        )
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        return tensor.to(dtype)
    return tensor


class Batches:
    """The data as a re-iterable sequence of (inputs, targets) batches.

    data: a pair (inputs (N, ...), targets (N, ...)) of tensors (one batch), or any iterable that can be read
    several times and yields (inputs, targets) pairs: a list of pairs, a torch DataLoader (its items may be
    lists [x, y], as a TensorDataset gives). A one-shot iterator (a generator) is refused: every measurement
    reads the data many times. A shuffling DataLoader is fine (the mean does not depend on the order); random
    augmentation is not (each pass would see other data).
    """

    def __init__(self, data):
        if _is_pair(data) and all(isinstance(t, torch.Tensor) for t in data):
            self.source: Iterable = [tuple(data)]
        elif isinstance(data, torch.Tensor):
            raise UsageError("data is a single tensor; pass (inputs, targets) or a DataLoader of (inputs, targets) batches")
        elif isinstance(data, Iterable):
            if iter(data) is data:
                raise UsageError("data is a one-shot iterator; pass a list of (inputs, targets) batches or a DataLoader")
            self.source = data
        else:
            raise UsageError(f"data must be (inputs, targets) or an iterable of such batches, got {type(data).__name__}")
        self.num_examples: int | None = None  # set by the first full pass
        self.num_batches: int | None = None

    def iterate(self, device: torch.device, dtype: torch.dtype | None = None) -> Iterator[tuple[int, object, object, int]]:
        """Yield (index, inputs, targets, size) per batch, floating tensors cast to dtype; counts on the way."""
        total, count = 0, 0
        for index, item in enumerate(self.source):
            if not _is_pair(item):
                kind = f"a {type(item).__name__} of length {len(item)}" if isinstance(item, Sequence) else type(item).__name__
                raise UsageError(f"batch {index} is {kind}; each batch must be an (inputs, targets) pair")
            inputs, targets = item
            size = _size(inputs, targets)
            yield index, _to(inputs, device, dtype, "inputs", index), _to(targets, device, dtype, "targets", index), size
            total, count = total + size, count + 1
        if count == 0:
            raise UsageError("data gave no batches (an empty DataLoader or list)")
        if self.num_examples is not None and total != self.num_examples:
            raise UsageError(f"data gave {total} examples on this pass but {self.num_examples} before; it must not change")
        self.num_examples, self.num_batches = total, count


def select_output(output: Output) -> Callable:
    """A function model outputs -> the tensor the loss takes: None (a tensor), a dict key, a tuple index, a callable."""
    if callable(output):
        return output

    def select(outputs):
        if isinstance(outputs, torch.Tensor):
            return outputs
        if output is None:
            if isinstance(outputs, Mapping):
                raise UsageError(f"the model returns a dict with keys {list(outputs)}; pass output=KEY to choose one")
            raise UsageError(f"the model returns a {type(outputs).__name__}; pass output=INDEX or output=callable to choose the tensor")
        try:
            return outputs[output]
        except (KeyError, IndexError, TypeError):
            choices = list(outputs) if isinstance(outputs, Mapping) else f"indices 0..{len(outputs) - 1}"
            raise UsageError(f"output={output!r} is not in the model's outputs ({choices})") from None

    return select


class Selected(nn.Module):
    """`model` whose forward returns select(model(inputs)): a tensor for tools that need one (vmap over points,
    input Jacobians). Its parameter and buffer names are the model's with the prefix "model."."""

    def __init__(self, model: nn.Module, select: Callable):
        super().__init__()
        self.model, self.select = model, select

    def forward(self, inputs):
        return self.select(self.model(inputs))


def check_scalar(value, what: str, index: int) -> torch.Tensor:
    """value as a 0-D tensor; a UsageError if it is not one number (what: "loss_fn", "metric 'accuracy'")."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise UsageError(f"{what} returned {shape} on batch {index}; it must return a scalar (the batch mean, reduction='mean')")
    return value.reshape(())


def check_loss_fn(loss_fn) -> None:
    """Refuse a model (a module with parameters) or a non-callable where a loss was expected."""
    if isinstance(loss_fn, nn.Module) and any(True for _ in loss_fn.parameters()):
        raise UsageError(
            f"loss_fn is a {type(loss_fn).__name__} with parameters, i.e. a model; pass the model first and a loss "
            "such as torch.nn.CrossEntropyLoss() second"
        )
    if not callable(loss_fn):
        raise UsageError(f"loss_fn must be a callable (outputs, targets) -> scalar, got {type(loss_fn).__name__}")


def batch_loss(model: nn.Module, loss_fn: Callable, inputs, targets, select: Callable, index: int,
               check_finite: bool = True) -> torch.Tensor:
    """loss_fn(select(model(inputs)), targets) as a 0-D tensor; a UsageError if it is not a scalar or not finite."""
    loss = check_scalar(loss_fn(select(model(inputs)), targets), "loss_fn", index)
    if check_finite and not torch.isfinite(loss).item():
        raise UsageError(f"the loss is {loss.item()} on batch {index}; the measurement would be NaN")
    return loss
