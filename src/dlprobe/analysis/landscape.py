"""The pieces of loss landscapes that the library's interpolate and surface (library/landscapes.py, the one
evaluation of weight points, which the experiments call too) are built from: eval mode, BatchNorm statistics
recomputed at many points at once, filter-normalized directions, projection of points on a plane.

A *state* is a dict from the names in `model.named_parameters()` / `model.named_buffers()` to
tensors (`dict(model.state_dict())` is one); names it leaves out keep the model's own tensor. A
*stacked* state holds the same names with a leading axis of A points: (A, *shape). Interpolated running
statistics belong to neither model (the classic trap): `recompute_batchnorm_statistics` recomputes them at
every point (the plain one-model-at-a-time reference is benchmarks/interpolation.evaluate_interpolation_sequential).
"""

from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call, vmap

from dlprobe.errors import ConfigError


@contextmanager
def evaluation_mode(model):
    """Put the model in eval mode for the block, then restore every submodule's own flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def batchnorm_modules(model):
    """The BatchNorm submodules that track running statistics."""
    batchnorm_type = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d and SyncBatchNorm
    return [m for m in model.modules() if isinstance(m, batchnorm_type) and m.track_running_stats]


def check_same_layout(params1, params2) -> None:
    """Two states with the same names and shapes, else a ConfigError naming the difference."""
    if params1.keys() != params2.keys():
        raise ConfigError(f"the two states have different names: {sorted(params1.keys() ^ params2.keys())}")
    for name, first in params1.items():
        if first.shape != params2[name].shape:
            shapes = f"{tuple(first.shape)} in one state, {tuple(params2[name].shape)} in the other"
            raise ConfigError(f"{name} has shape {shapes}")


def recompute_batchnorm_statistics(model, stacked_state, batches):
    """Running statistics of every BatchNorm layer at each of A points, recomputed on input batches.

    For each point: reset the statistics, forward every batch with the BatchNorm layers in train mode
    (other layers, dropout included, in eval mode) and momentum=None, i.e. the running mean and
    variance become the plain average of the per-batch mean and unbiased variance, as
    `torch.optim.swa_utils.update_bn`. Returns a new stacked state; the model is left unchanged.
    """
    layers = batchnorm_modules(model)
    if not layers:
        return stacked_state
    num_points = len(next(iter(stacked_state.values())))
    state = dict(stacked_state)
    for name, module in model.named_modules():
        if module in layers:
            prefix = f"{name}." if name else ""
            # Fresh (A, C) buffers, as reset_running_stats() would make them for each point.
            for buffer_name, fresh in (("running_mean", torch.zeros_like), ("running_var", torch.ones_like)):
                buffer = fresh(getattr(module, buffer_name))
                state[prefix + buffer_name] = buffer.expand(num_points, *buffer.shape).clone()
            counter = torch.zeros_like(module.num_batches_tracked)
            state[prefix + "num_batches_tracked"] = counter.expand(num_points).clone()
    flags = [(module, module.training) for module in model.modules()]
    momenta = [module.momentum for module in layers]
    forward = vmap(lambda point, inputs: functional_call(model, point, (inputs,)), in_dims=(0, None))
    try:
        model.eval()
        for module in layers:
            module.train()
        with torch.no_grad():
            for count, inputs in enumerate(batches, start=1):
                # momentum = 1/count is PyTorch's momentum=None rule; under vmap the running buffers
                # are updated in place on the stacked tensors, one slice per point.
                for module in layers:
                    module.momentum = 1.0 / count
                forward(state, inputs)
    finally:
        for module, training in flags:
            module.training = training
        for module, momentum in zip(layers, momenta):
            module.momentum = momentum
    return state


def filter_normalized_direction(params, generator):
    """Random direction of Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets".

    Each tensor with 2+ dims gets a standard Gaussian draw, and each of its filters (index along
    dim 0: an output channel (in, kh, kw) of a conv weight, a row of a linear weight) is rescaled to
    the Frobenius norm of the same filter of the weights. Tensors with 0 or 1 dims (biases,
    BatchNorm weights and buffers, num_batches_tracked) get zeros: the paper's default "ignore
    biasbn". generator: a torch.Generator on the tensors' device. Returns a dict with params' names.
    """
    direction = {}
    for name, weight in params.items():
        if weight.dim() <= 1 or not weight.is_floating_point():
            direction[name] = torch.zeros_like(weight)
            continue
        draw = torch.randn(weight.shape, generator=generator, dtype=weight.dtype, device=weight.device)
        filter_norms = weight.flatten(1).norm(dim=1) / draw.flatten(1).norm(dim=1)  # (out,)
        direction[name] = draw * filter_norms.view(-1, *([1] * (weight.dim() - 1)))
    return direction


def projection_onto_plane(points, center, direction1, direction2):
    """How much of each displacement points (T, P) - center (P,) lies in the plane of two directions (P,).

    Returns coordinates (T, 2): the least-squares (a, b) with a d1 + b d2 closest to the displacement,
    from the 2x2 normal equations G (a, b) = (d1 . r, d2 . r), G the Gram matrix of d1, d2 (they need
    not be orthogonal; torch.linalg.lstsq on the (P, 2) basis gave last-bit differences between runs
    here, this gives the same bits every time); projected_norm (T,) = ||a d1 + b d2||, the length of the orthogonal projection on the plane;
    distance (T,) = ||points - center||. projected_norm / distance is the fraction of each
    displacement the plane captures, in [0, 1].
    """
    basis = torch.stack([torch.as_tensor(direction1), torch.as_tensor(direction2)])  # (2, P)
    offsets = (torch.as_tensor(points) - torch.as_tensor(center)).to(basis.dtype)  # (T, P)
    gram = basis @ basis.T  # (2, 2)
    if torch.linalg.matrix_rank(gram) < 2:
        raise ConfigError("the two directions must be linearly independent to project onto them")
    coordinates = torch.linalg.solve(gram, basis @ offsets.T).T  # (T, 2)
    return {"coordinates": coordinates, "projected_norm": (coordinates @ basis).norm(dim=1), "distance": offsets.norm(dim=1)}
