"""Large batches in sub-batches on the CPU: the same numbers (to rounding), in less time.

    plan = plan_sub_batches(model, select, inputs, targets, loss_fn)   # None: use whole batches
    size, bytes_per_example = plan
    for part_inputs, part_targets in split_batch(inputs, targets, size): ...

Why: on a CPU, a batch's intermediates of more than glibc's mmap threshold (at most 32 MiB) are mapped afresh at
every allocation, so each op pays a page fault per 4 KiB it writes, and they do not stay in the caches. Measured
(benchmark case 8's 20.6k-parameter BatchNorm CNN, 1024 28x28 images, largest activation 16x28x28 floats = 49 KiB
per image, 1 thread, a shared machine): one forward 245-290 ms as one batch, 155-170 ms in 8 sub-batches of 128
(bitwise the same outputs); one Hessian-vector product 0.94-0.97 s of CPU time as one graph, 0.47-0.52 s as 8
graphs of 128. On CUDA large batches are what the device wants: never split there.

A batch is split only when that cannot change what is measured: the model runs in eval mode everywhere (a
training-mode BatchNorm couples the examples of a batch), and on the first batch the model's outputs (and the
loss, when given: it must be the batch mean for the parts to combine) computed on two sub-batches equal those
computed on both together, to rounding. Otherwise whole batches are used, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# Largest intermediate of a sub-batch, bytes: well below the mmap threshold and near the 4 MiB L2 of the machine
# the numbers above come from (case 8's CNN: at most 83 images, 1024 in 13 parts of 78-79).
BUDGET_BYTES = 4 * 2**20
MIN_EXAMPLES = 32  # fewer per call and the per-call cost of Python and autograd starts to count


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def largest_output_bytes(model: nn.Module, inputs: torch.Tensor) -> float:
    """Bytes per example of the largest tensor any submodule of `model` outputs on `inputs` (B, ...)."""
    size, largest = len(inputs), [0.0]

    def hook(module, args, output):
        for tensor in _tensors(output):
            if tensor.dim() > 0 and tensor.shape[0] == size:
                largest[0] = max(largest[0], tensor.numel() * tensor.element_size() / size)

    handles = [module.register_forward_hook(hook) for module in model.modules()]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return largest[0]


def split_batch(inputs: torch.Tensor, targets: torch.Tensor, size: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) in ceil(B / size) parts of nearly equal length (one part when size is None or >= B)."""
    count = 1 if size is None else -(-len(inputs) // size)
    if count <= 1:
        return [(inputs, targets)]
    return list(zip(torch.tensor_split(inputs, count), torch.tensor_split(targets, count)))


def _close(first: torch.Tensor, second: torch.Tensor) -> bool:
    if first.shape != second.shape or first.dtype != second.dtype:
        return False
    # A few hundred roundings of the output's scale: sub-batches of another size may take other kernels. A model
    # that couples the examples of a batch differs by far more.
    tolerance = 1000 * torch.finfo(first.dtype).eps * float(first.abs().max()) + torch.finfo(first.dtype).tiny
    return bool((first - second).abs().max() <= tolerance)


def plan_sub_batches(model: nn.Module, select: Callable, inputs, targets,
                     loss_fn: Callable | None = None) -> tuple[int, float] | None:
    """(examples per sub-batch, bytes per example of the largest activation) for batches like (inputs, targets),
    or None: keep whole batches.

    select: model outputs -> the tensor the loss or metrics take. loss_fn: checked to combine as a batch mean
    (sum of part losses weighted by part size / batch size); None when the caller combines outputs itself.
    Costs one forward of 2 examples and of at most 2 sub-batches, without gradients.
    """
    if not (isinstance(inputs, torch.Tensor) and isinstance(targets, torch.Tensor)) or inputs.device.type != "cpu":
        return None
    if any(module.training for module in model.modules()) or len(inputs) != len(targets):
        return None
    try:
        bytes_per_example = largest_output_bytes(model, inputs[:2])
        size = max(MIN_EXAMPLES, int(BUDGET_BYTES // max(bytes_per_example, 1.0)))
        if len(inputs) <= size:
            return None
        both = slice(0, min(len(inputs), 2 * size))
        parts = split_batch(inputs[both], targets[both], -(-(both.stop) // 2))
        with torch.no_grad():
            whole = select(model(inputs[both]))
            pieces = [select(model(part_inputs)) for part_inputs, _ in parts]
            if not (isinstance(whole, torch.Tensor) and all(isinstance(p, torch.Tensor) for p in pieces)):
                return None
            if not _close(whole, torch.cat(pieces)):
                return None
            if loss_fn is not None:
                mean = loss_fn(whole, targets[both]).reshape(())
                combined = sum(loss_fn(piece, part_targets).reshape(()) * (len(part_targets) / both.stop)
                               for piece, (_, part_targets) in zip(pieces, parts))
                if not _close(mean, combined):
                    return None
    except Exception:  # a model that refuses other batch sizes: whole batches, as given
        return None
    return size, bytes_per_example
