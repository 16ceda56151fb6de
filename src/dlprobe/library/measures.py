"""Sharpness and input sensitivity of your own model over any DataLoader, with any loss callable.

    dlprobe.sharpness(model, torch.nn.CrossEntropyLoss(label_smoothing=0.1), loader, epsilon=1e-3, seed=0)
    dlprobe.sensitivity(model, test_loader, kind="input_gradient", loss_fn=F.nll_loss)
    dlprobe.sensitivity(model, test_loader, kind="jacobian")       # Novak et al. 2018, no loss needed
    dlprobe.accuracy(outputs, targets)                             # a metric for dlprobe.interpolate / surface

Both run in eval mode (dropout off, BatchNorm with its running statistics; the model's flags are restored)
on the search of `analysis.sharpness` and the per-example kernels of `analysis.sensitivity`; data as for
`dlprobe.Hessian`. The sensitivity experiment measures its models with these two functions.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from dlprobe.analysis.landscape import evaluation_mode
from dlprobe.analysis.sensitivity import example_gradient_norms, example_jacobian_norms
from dlprobe.analysis.sharpness import box_sharpness
from dlprobe.errors import ConfigError, UsageError
from dlprobe.library.batches import Batches, Output, Selected, batch_loss, check_loss_fn, check_scalar, select_output
from dlprobe.library.results import Sharpness
from dlprobe.library.selection import select_parameters

KINDS = ("input_gradient", "batch_gradient", "jacobian")


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows of outputs (B, C) whose argmax is the integer label in targets (B,): a 0-D tensor."""
    return (outputs.argmax(-1) == targets).to(torch.float64).mean()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def sharpness(model: nn.Module, loss_fn, data, epsilon: float = 1e-3, steps: int = 10, seed: int | None = 0,
              params=None, output: Output = None) -> Sharpness:
    """Keskar et al. 2017 epsilon-sharpness of the mean loss_fn over data (see `analysis.sharpness`).

    loss_fn: any callable (outputs, targets) -> batch mean. params: the perturbed parameters (default every
    one with requires_grad; names, prefixes or modules as in `select_parameters`); buffers are not perturbed.
    seed: the ascent starts uniformly in the box, drawn from a torch.Generator on the model's device seeded
    with it (None: from z = 0, where at a minimum the gradient is ~0 and the ascent may not move).
    """
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_loss_fn(loss_fn)
    names = select_parameters(model, params)
    named = dict(model.named_parameters())
    center = {name: named[name].detach() for name in names}
    batches, select, device = Batches(data), select_output(output), _device(model)

    def full_loss(point, with_gradient):
        total, gradients = 0.0, {name: torch.zeros_like(value) for name, value in point.items()} if with_gradient else None
        for index, inputs, targets, size in batches.iterate(device):
            with torch.set_grad_enabled(with_gradient):
                leaves = {name: value.detach().requires_grad_(with_gradient) for name, value in point.items()}
                wrapped = _Call(model, leaves)
                loss = batch_loss(wrapped, loss_fn, inputs, targets, select, index) * size
            if with_gradient:
                for name, gradient in zip(leaves, torch.autograd.grad(loss, list(leaves.values()))):
                    gradients[name] += gradient
            total += loss.item()
        count = batches.num_examples
        return total / count, ({name: g / count for name, g in gradients.items()} if with_gradient else None)

    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    try:
        with evaluation_mode(model):
            result = box_sharpness(center, full_loss, epsilon, steps, generator)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return Sharpness(result["sharpness"], result["loss"], result["loss_at_maximum"], epsilon, steps)


class _Call:
    """model(inputs) at the parameters `point` (the others and the buffers as they are), via functional_call."""

    def __init__(self, model, point):
        self.model, self.point = model, point

    def __call__(self, inputs):
        return functional_call(self.model, self.point, (inputs,))


def sensitivity(model: nn.Module, data, kind: str = "input_gradient", loss_fn=None, output: Output = None) -> float:
    """Sensitivity of the model to its input, over every example of data, one named definition each:

    kind "input_gradient": the mean over examples of ||d loss_n / d x_n||_F (needs loss_fn, any callable
    (outputs, targets) -> batch mean); "batch_gradient": ||d L / d X||_F for L the mean loss over all N
    examples X, i.e. sqrt(sum_n ||g_n||^2) / N (shrinks like 1/sqrt(N): compare equal sizes only);
    "jacobian": Novak et al. 2018, the mean over examples of ||d softmax(f(x_n)) / d x_n||_F (outputs are
    logits; loss_fn unused). Returns a float.
    """
    if kind not in KINDS:
        raise UsageError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if kind != "jacobian":
        if loss_fn is None:
            raise UsageError(f"sensitivity kind={kind!r} needs loss_fn (outputs, targets) -> batch mean")
        check_loss_fn(loss_fn)
    measured = model if output is None else Selected(model, select_output(output))
    batches, device = Batches(data), _device(model)
    norm_sum, squared_sum = 0.0, 0.0
    with evaluation_mode(measured):
        for index, inputs, targets, size in batches.iterate(device):
            if kind == "jacobian":
                norm_sum += example_jacobian_norms(measured, inputs).sum().item()
                continue
            def checked(outputs, batch_targets, index=index):
                return check_scalar(loss_fn(outputs, batch_targets), "loss_fn", index)

            norms = example_gradient_norms(measured, inputs, targets, loss=checked)
            norm_sum += norms.sum().item()
            squared_sum += norms.square().sum().item()
    count = batches.num_examples
    return squared_sum**0.5 / count if kind == "batch_gradient" else norm_sum / count
