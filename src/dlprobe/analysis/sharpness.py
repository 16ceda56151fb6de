"""Epsilon-sharpness of Keskar et al. 2017, "On Large-Batch Training for Deep Learning".

    from dlprobe.analysis.sharpness import epsilon_sharpness
    epsilon_sharpness(model, x_train, y_train, epsilon=1e-3, generator=torch.Generator().manual_seed(0))

With f the mean loss over the given data and theta the model's parameters (P numbers),

    sharpness = 100 * (max_{z in C} f(theta + z) - f(theta)) / (1 + f(theta)),
    C = {z in R^P : |z_i| <= epsilon * (|theta_i| + 1) for every i}     (the box of the paper, A = I).

The paper solves the maximization with L-BFGS-B; here it is projected sign-gradient ascent (the
steepest ascent direction for a box, and free of a learning rate in loss units), so the result is
a lower bound of the true maximum. The point z = 0 is always a candidate, hence sharpness >= 0 and
epsilon = 0 gives exactly 0.
"""

import torch
from torch.func import functional_call

from dlprobe.analysis.landscape import evaluation_mode
from dlprobe.errors import ConfigError
from dlprobe.losses import check_loss, per_example_loss


def _full_loss(model, params, x, y, loss, batch_size, with_gradient):
    """Mean loss over (x, y) at params, and its gradient dict if with_gradient (else None)."""
    total = 0.0
    gradients = None
    if with_gradient:
        gradients = {name: torch.zeros_like(value) for name, value in params.items()}
    for start in range(0, len(x), batch_size):
        inputs, targets = x[start : start + batch_size], y[start : start + batch_size]
        with torch.set_grad_enabled(with_gradient):
            point = {name: value.requires_grad_(with_gradient) for name, value in params.items()}
            outputs = functional_call(model, point, (inputs,))
            # Each batch adds its share of the full-batch mean, so sums over batches are exact means.
            batch_loss = per_example_loss(outputs, targets, loss).sum() / len(x)
        if with_gradient:
            for name, gradient in zip(point, torch.autograd.grad(batch_loss, list(point.values()))):
                gradients[name] += gradient
        total += batch_loss.item()
    return total, gradients


def epsilon_sharpness(
    model, x, y, epsilon=1e-3, steps=10, loss="cross_entropy", batch_size=1024, generator=None,
    step_fraction=None,
):
    """Keskar epsilon-sharpness of model on (x, y), see the module docstring for the definition.

    x: (N, ...) inputs, y: (N,) labels or (N, C) targets; f is the full-batch mean loss in eval mode
    (BatchNorm running statistics fixed); only parameters are perturbed, buffers are not.
    Search: z starts at 0, or uniformly in the box when a torch.Generator is given (at a stationary
    point such as a minimum, the gradient at z = 0 is ~0 and a random start is what lets the ascent
    leave it); then `steps` updates z <- clamp(z + step_fraction * bound * sign(grad f(theta + z)),
    -bound, bound) with bound_i = epsilon (|theta_i| + 1). step_fraction defaults to 2.5 / steps
    (the projected gradient ascent rule of Madry et al. 2018: the walk can cross the box).
    Returns {"sharpness": float (percent), "loss": f(theta), "loss_at_maximum": f(theta + z*)} with
    z* the best point seen.
    """
    check_loss(loss)

    def full_loss(point, with_gradient):
        return _full_loss(model, point, x, y, loss, batch_size, with_gradient)

    center = {name: value.detach() for name, value in model.named_parameters()}
    with evaluation_mode(model):
        return box_sharpness(center, full_loss, epsilon, steps, generator, step_fraction)


def box_sharpness(center, full_loss, epsilon=1e-3, steps=10, generator=None, step_fraction=None):
    """The search of `epsilon_sharpness` for any loss: center, a dict name -> tensor (the parameters perturbed);
    full_loss(point dict, with_gradient) -> (mean loss float, gradient dict or None). Same returns."""
    if epsilon < 0 or steps < 0:
        raise ConfigError(f"epsilon-sharpness needs epsilon >= 0 and steps >= 0, got {epsilon} and {steps}")
    step_fraction = 2.5 / max(steps, 1) if step_fraction is None else step_fraction
    bounds = {name: epsilon * (value.abs() + 1) for name, value in center.items()}
    if generator is None:
        offsets = {name: torch.zeros_like(value) for name, value in center.items()}
    else:
        offsets = {}
        for name, value in center.items():
            uniform = torch.rand(value.shape, generator=generator, dtype=value.dtype, device=value.device)
            offsets[name] = (2 * uniform - 1) * bounds[name]
    center_loss, _ = full_loss(dict(center), False)
    best_loss = center_loss
    for step in range(steps + 1):
        point = {name: center[name] + offsets[name] for name in center}
        last = step == steps
        point_loss, gradients = full_loss(point, not last)
        best_loss = max(best_loss, point_loss)
        if not last:
            offsets = {
                name: torch.clamp(
                    offsets[name] + step_fraction * bounds[name] * gradients[name].sign(),
                    -bounds[name],
                    bounds[name],
                )
                for name in center
            }
    return {
        "sharpness": 100.0 * (best_loss - center_loss) / (1.0 + center_loss),
        "loss": center_loss,
        "loss_at_maximum": best_loss,
    }
