"""Which parameters a measurement is taken with respect to.

    names = select_parameters(model, None)                  # every parameter with requires_grad
    names = select_parameters(model, "features.0")          # a layer: its weight and bias (prefix at a dot)
    names = select_parameters(model, [model.head, "body.1.weight"])   # modules, names, prefixes, Parameters

The result is a list of names in `model.named_parameters()` order: the flat vectors of the library are the
concatenation of these tensors, flattened, in that order (P entries in all).
"""

from __future__ import annotations

from torch import nn

from dlprobe.errors import UsageError


def _matches(name: str, key: str) -> bool:
    return name == key or name.startswith(key + ".")


def select_parameters(model: nn.Module, params=None) -> list[str]:
    """Names of the selected trainable parameters, in named_parameters() order; a UsageError if none.

    params: None (all parameters with requires_grad), or one or a list of: a name or a prefix ending at a dot
    ("layer1" selects "layer1.weight" and "layer1.bias", not "layer10.weight"), a submodule, a Parameter.
    Parameters with requires_grad=False (frozen) are never selected; an entry that matches only frozen ones
    is an error, as is one that matches nothing.
    """
    named = list(model.named_parameters())
    trainable = [name for name, p in named if p.requires_grad]
    if not trainable:
        raise UsageError(f"{type(model).__name__} has no trainable parameters (none with requires_grad=True)")
    if params is None:
        return trainable
    entries = params if isinstance(params, (list, tuple, set)) else [params]
    if not entries:
        raise UsageError("params is empty; pass None for all trainable parameters")
    by_identity = {id(p): name for name, p in named}
    chosen: set[str] = set()
    for entry in entries:
        if isinstance(entry, str):
            matched = [name for name, _ in named if _matches(name, entry)]
        elif isinstance(entry, nn.Parameter):
            matched = [by_identity[id(entry)]] if id(entry) in by_identity else []
        elif isinstance(entry, nn.Module):
            own = {id(p) for p in entry.parameters()}
            matched = [name for name, p in named if id(p) in own]
        else:
            raise UsageError(f"params entries must be names, modules or Parameters, got {type(entry).__name__}")
        label = entry if isinstance(entry, str) else type(entry).__name__
        if not matched:
            shown = ", ".join(trainable[:8]) + (", ..." if len(trainable) > 8 else "")
            raise UsageError(f"params entry {label!r} matches no parameter of the model (trainable: {shown})")
        live = [name for name in matched if name in trainable]
        if not live:
            raise UsageError(f"params entry {label!r} matches only frozen parameters (requires_grad=False): {', '.join(matched)}")
        chosen.update(live)
    return [name for name in trainable if name in chosen]
