"""The layer table of a model, as the rubric's "describe the models you use" asks (Keras' summary() layout).

    table = layer_table(model, x[:2])          # forward hooks on one example batch
    table["rows"][0]   # {"layer": "features.0", "type": "Conv2d", "output_shape": [16, 28, 28], "params": 160, "trainable": 160}
    table["total"], table["trainable"]         # == sum(p.numel() for p in model.parameters()) and the requires_grad part

A row is every module that has no submodules (a leaf: Conv2d, ReLU, BatchNorm2d, ...) or that holds parameters of
its own (a custom module with an nn.Parameter attribute), in the order the forward pass first calls them; a module
the forward pass never calls comes last with output_shape None. `params` counts the module's own parameters
(recurse=False), each tensor once, so the rows add up to the total; output_shape is one example's shape (the batch
dimension dropped), a list of shapes where a module returns several tensors. The pass runs in eval mode without
gradients and leaves the model's mode and weights as they were.
"""

from __future__ import annotations

import torch
from torch import nn


def _shape(output):
    """One example's shape of a module output: [C, H, W]; a list of shapes for tuples/lists; None otherwise."""
    if isinstance(output, torch.Tensor):
        return list(output.shape[1:])
    if isinstance(output, (tuple, list)):
        return [_shape(item) for item in output]
    return None


def layer_table(model: nn.Module, example: torch.Tensor) -> dict:
    """{"rows": [{layer, type, output_shape, params, trainable}], "total", "trainable", "input_shape", "output_shape"}
    of `model` on the batch `example` (N >= 1, N, *input_shape)."""
    rows: dict[str, dict] = {}
    order: list[str] = []
    seen: set[int] = set()
    counted = {}  # name -> (params, trainable): each parameter tensor counted once, at its first owner
    for name, module in model.named_modules():
        own = []
        for parameter in module.parameters(recurse=False):
            if id(parameter) not in seen:
                seen.add(id(parameter))
                own.append(parameter)
        counted[name] = (sum(p.numel() for p in own), sum(p.numel() for p in own if p.requires_grad))
    named = [(name, module) for name, module in model.named_modules()
             if name and (not any(True for _ in module.children()) or counted[name][0] > 0)]
    if not named:  # a model that is a single leaf module
        named = [("", model)]

    def hook_for(name):
        def hook(module, inputs, output):
            if name not in rows:
                order.append(name)
                rows[name] = _shape(output)
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in named]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    modules = dict(named)
    names = order + [name for name, _ in named if name not in rows]
    table_rows = [{"layer": name or type(modules[name]).__name__, "type": type(modules[name]).__name__,
                   "output_shape": rows.get(name), "params": counted[name][0], "trainable": counted[name][1]} for name in names]
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    root_params = counted.get("", (0, 0))
    if root_params[0] and named != [("", model)]:  # parameters held by the model object itself
        table_rows.insert(0, {"layer": "(model)", "type": type(model).__name__, "output_shape": _shape(output),
                              "params": root_params[0], "trainable": root_params[1]})
    return {"rows": table_rows, "total": total, "trainable": trainable, "input_shape": list(example.shape[1:]),
            "output_shape": _shape(output)}


def shape_text(shape) -> str:
    """[16, 14, 14] -> '(N, 16, 14, 14)'; nested lists -> their texts joined; None -> 'not called'."""
    if shape is None:
        return "not called"
    if shape and isinstance(shape[0], list) or (shape and shape[0] is None):
        return ", ".join(shape_text(item) for item in shape)
    return "(" + ", ".join(["N", *map(str, shape)]) + ")"
