"""Sensitivity of a trained model to its input, per example: the kernels under `dlprobe.sensitivity`.

    from dlprobe.analysis.sensitivity import example_gradient_norms, example_jacobian_norms
    example_gradient_norms(model, x, y, loss_fn)    # (b,): ||d loss_n / d x_n||_F
    example_jacobian_norms(model, x)                # (b,): ||d softmax(f(x_n)) / d x_n||_F

Sources disagree on "sensitivity", so every number says which one it is (library/measures.py's `sensitivity`
averages these over a dataset, and the sensitivity experiment calls it):
- the assignment's: the Frobenius norm of the gradient of the loss w.r.t. the input, reported per
  example (mean over examples of ||d loss_n / d x_n||_F) and, as some solutions do, for the mean
  loss w.r.t. the whole input batch (||d mean_n loss_n / d X||_F = sqrt(sum_n ||g_n||^2) / N);
- Novak et al. 2018, "Sensitivity and Generalization in Neural Networks": the mean over examples
  of the Frobenius norm of the Jacobian of the softmax class probabilities w.r.t. the input.
The model must be in eval mode (BatchNorm with its running statistics, dropout off), so that each example's
output depends on its own input only. Inputs may be flat (N, D) for MLPs or images (N, C, H, W) for CNNs.
"""

import torch
from torch.func import jacrev, vmap

from dlprobe.losses import per_example_loss

JACOBIAN_CHUNK = 256  # examples per vmap(jacrev) call: memory about JACOBIAN_CHUNK * C * D numbers


def example_gradient_norms(model, inputs, targets, loss="cross_entropy"):
    """||d loss_n / d x_n||_F of each example of one batch: inputs (b, ...) -> (b,) float64; the model in the mode
    it should be measured in (eval). loss: "cross_entropy" / "mse", or a callable (outputs, targets) -> the
    batch mean, whose gradient times b has the per-example gradients as rows."""
    inputs = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        outputs = model(inputs)
        if callable(loss):
            total = loss(outputs, targets) * len(inputs)
        else:
            total = per_example_loss(outputs, targets, loss).sum()  # the sum of the (b,) example losses
        # Examples are independent in eval mode, so row n of the gradient of the sum is g_n.
        (gradients,) = torch.autograd.grad(total, inputs)
    return gradients.flatten(1).norm(dim=1).double()  # (b,)


def example_jacobian_norms(model, inputs, chunk_size=JACOBIAN_CHUNK):
    """||d softmax(f(x_n)) / d x_n||_F of each example (Novak et al. 2018): inputs (b, ...) -> (b,) float64; the
    model returns logits (b, C) and is in the mode it should be measured in (eval). The Jacobian of one example is
    (C, D) with D the number of input entries, computed with vmap(jacrev) over chunk_size examples at a time."""

    def probabilities(single_input):  # (...) -> (C,)
        return torch.softmax(model(single_input.unsqueeze(0)).squeeze(0), dim=-1)

    per_example_jacobian = vmap(jacrev(probabilities))
    # torch.func differentiates w.r.t. the input only; no_grad keeps autograd from also recording the graph w.r.t.
    # the parameters.
    with torch.no_grad():
        norms = [per_example_jacobian(inputs[start:start + chunk_size]).flatten(1).norm(dim=1).double()  # (chunk,)
                 for start in range(0, len(inputs), chunk_size)]
    return torch.cat(norms)
