"""Sensitivity of a trained model to its input: two definitions, both named.

    from dlprobe.analysis.sensitivity import input_gradient_sensitivity, jacobian_sensitivity
    input_gradient_sensitivity(model, x_test, y_test)["mean_example_gradient_norm"]
    jacobian_sensitivity(model, x_test)

Sources disagree on "sensitivity", so every number says which one it is:
- the assignment's: the Frobenius norm of the gradient of the loss w.r.t. the input, reported per
  example (mean over examples of ||d loss_n / d x_n||_F) and, as some solutions do, for the mean
  loss w.r.t. the whole input batch (||d mean_n loss_n / d X||_F);
- Novak et al. 2018, "Sensitivity and Generalization in Neural Networks": the mean over examples
  of the Frobenius norm of the Jacobian of the softmax class probabilities w.r.t. the input.
Both run in eval mode (BatchNorm uses its running statistics, dropout is off), so each example's
output depends on its own input only; the model's training flags are restored afterwards.
Inputs may be flat (N, D) for MLPs or images (N, C, H, W) for CNNs.
"""

import torch
from torch.func import jacrev, vmap

from dlprobe.analysis.landscape import evaluation_mode
from dlprobe.errors import ConfigError
from dlprobe.losses import check_loss, per_example_loss


def input_gradient_sensitivity(model, x, y, loss="cross_entropy", batch_size=1024):
    """Frobenius norms of loss gradients w.r.t. the input: x (N, ...), y (N,) labels or (N, C) targets.

    With loss_n the loss of example n and g_n = d loss_n / d x_n (the shape of one input):
    - "mean_example_gradient_norm" = (1/N) sum_n ||g_n||_F, the assignment's definition applied to
      each example; it does not depend on N;
    - "batch_gradient_norm" = ||d L / d X||_F with L = (1/N) sum_n loss_n over the whole given set
      X (N, ...), i.e. (1/N) sqrt(sum_n ||g_n||_F^2); it shrinks like 1/sqrt(N) for a fixed set of
      per-example norms, so only compare it between sets of equal size.
    Returns {"mean_example_gradient_norm": float, "batch_gradient_norm": float}.
    """
    check_loss(loss)
    if len(x) == 0:
        raise ConfigError("input_gradient_sensitivity needs at least one example")
    norm_sum, squared_norm_sum = 0.0, 0.0
    with evaluation_mode(model):
        for start in range(0, len(x), batch_size):
            norms = example_gradient_norms(model, x[start : start + batch_size], y[start : start + batch_size], loss)
            norm_sum += norms.sum().item()
            squared_norm_sum += norms.square().sum().item()
    return {
        "mean_example_gradient_norm": norm_sum / len(x),
        "batch_gradient_norm": squared_norm_sum**0.5 / len(x),
    }


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


def jacobian_sensitivity(model, x, batch_size=256):
    """Novak et al. 2018: mean over examples of ||d softmax(f(x_n)) / d x_n||_F.

    x: (N, ...) inputs; the model returns logits (N, C). The Jacobian of one example is (C, D) with
    D the number of input entries; it is computed with vmap(jacrev) over batch_size examples at a
    time (memory about batch_size * C * D numbers). Returns a float.
    """
    if len(x) == 0:
        raise ConfigError("jacobian_sensitivity needs at least one example")

    def probabilities(single_input):  # (...) -> (C,)
        return torch.softmax(model(single_input.unsqueeze(0)).squeeze(0), dim=-1)

    per_example_jacobian = vmap(jacrev(probabilities))
    norm_sum = 0.0
    # torch.func differentiates w.r.t. the input only; no_grad keeps autograd from also recording
    # the graph w.r.t. the parameters.
    with evaluation_mode(model), torch.no_grad():
        for start in range(0, len(x), batch_size):
            jacobians = per_example_jacobian(x[start : start + batch_size])  # (b, C, ...)
            norm_sum += jacobians.flatten(1).norm(dim=1).double().sum().item()
    return norm_sum / len(x)
