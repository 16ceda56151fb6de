"""Epsilon-sharpness of Keskar et al. 2017, "On Large-Batch Training for Deep Learning": the search.

    dlprobe.sharpness(model, loss_fn, data, epsilon=1e-3, steps=10, seed=0)   # library/measures.py, over any data
    box_sharpness(center, full_loss, epsilon, steps, generator)              # the search it runs

With f the mean loss over the given data and theta the model's parameters (P numbers),

    sharpness = 100 * (max_{z in C} f(theta + z) - f(theta)) / (1 + f(theta)),
    C = {z in R^P : |z_i| <= epsilon * (|theta_i| + 1) for every i}     (the box of the paper, A = I).

The paper solves the maximization with L-BFGS-B; here it is projected sign-gradient ascent (the
steepest ascent direction for a box, and free of a learning rate in loss units), so the result is
a lower bound of the true maximum. The point z = 0 is always a candidate, hence sharpness >= 0 and
epsilon = 0 gives exactly 0.
"""

import torch

from dlprobe.errors import ConfigError


def box_sharpness(center, full_loss, epsilon=1e-3, steps=10, generator=None, step_fraction=None):
    """Keskar epsilon-sharpness around center, a dict name -> tensor (the parameters perturbed; buffers are not), of
    full_loss(point dict, with_gradient) -> (mean loss float, gradient dict or None), the loss in eval mode.

    Search: z starts at 0, or uniformly in the box when a torch.Generator is given (at a stationary
    point such as a minimum, the gradient at z = 0 is ~0 and a random start is what lets the ascent
    leave it); then `steps` updates z <- clamp(z + step_fraction * bound * sign(grad f(theta + z)),
    -bound, bound) with bound_i = epsilon (|theta_i| + 1). step_fraction defaults to 2.5 / steps
    (the projected gradient ascent rule of Madry et al. 2018: the walk can cross the box).
    Returns {"sharpness": float (percent), "loss": f(theta), "loss_at_maximum": f(theta + z*)} with
    z* the best point seen.
    """
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
