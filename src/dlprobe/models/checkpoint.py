"""Trained weights from a file, for `dlprobe inspect`: a plain state dict or a dlprobe checkpoint, never code.

    weights = read_checkpoint(Path("model.pt"))     # Checkpoint(state, format, sha256, details)
    load_weights(model, weights, "models.py:make_cnn")   # CheckpointError naming the first key that does not fit

The file is read with `torch.load(..., weights_only=True)`: only tensors and plain data come out, so a file that
holds pickled objects (`torch.save(model)` instead of `torch.save(model.state_dict())`) is refused, never run.
Two layouts are understood: a state dict (parameter and buffer names -> tensors, what `model.state_dict()`
gives) and a dlprobe checkpoint (a dict whose "model" is such a state dict, as training/state.py saves, with
"epoch" and "step" beside it). Every mistake is a one-line CheckpointError naming the file.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError

_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


@dataclass(frozen=True)
class Checkpoint:
    """state: name -> tensor; format: "state_dict" or "dlprobe"; sha256 of the file's bytes; details: what a
    dlprobe checkpoint says about its training (epoch, step), plain numbers only."""

    path: Path
    state: dict
    format: str
    sha256: str
    details: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"path": str(self.path.resolve()), "format": self.format, "sha256": self.sha256, "tensors": len(self.state), **self.details}


def _reason(error: BaseException) -> str:
    """'RuntimeError: PytorchStreamReader failed reading zip archive' from torch's many-line messages."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and "Weights only load failed" not in line
             and not line.strip().startswith(("(1)", "(2)", "Check the documentation"))]
    text = " ".join(lines).replace("WeightsUnpickler error:", "").strip()
    operand = re.search(r"Unsupported operand \d+", text)  # bytes that are no pickle opcode: not a checkpoint
    text = operand.group(0) if operand else text.split(". ")[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _is_state_dict(value) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and classify a checkpoint file (see the module docstring); CheckpointError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror}") from None
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocols of foreign files
            warnings.simplefilter("ignore")
            loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # the weights-only unpickler met a class or function (or garbage)
        found = _UNSUPPORTED.search(str(error))
        if found:
            raise CheckpointError(f"checkpoint {path} holds pickled Python objects ({found.group(1)}), which "
                                  "torch.load(weights_only=True) refuses to unpickle (dlprobe never runs code from a checkpoint): "
                                  "save model.state_dict() instead of the model") from None
        raise CheckpointError(f"checkpoint {path} is damaged or not a torch checkpoint ({_reason(error)})") from None
    except Exception as error:  # torch raises many types for a damaged file: RuntimeError, EOFError, KeyError, ...
        raise CheckpointError(f"checkpoint {path} is damaged or not a torch checkpoint ({_reason(error)})") from None
    digest = hashlib.sha256(data).hexdigest()
    if _is_state_dict(loaded):
        return Checkpoint(path, dict(loaded), "state_dict", digest)
    if isinstance(loaded, Mapping) and _is_state_dict(loaded.get("model")):
        details = {k: loaded[k] for k in ("epoch", "step") if isinstance(loaded.get(k), int) and not isinstance(loaded.get(k), bool)}
        return Checkpoint(path, dict(loaded["model"]), "dlprobe", digest, details)
    if isinstance(loaded, Mapping):
        keys = ", ".join(map(str, list(loaded)[:6])) + (", ..." if len(loaded) > 6 else "")
        held = f"a dict with keys {keys}" if loaded else "an empty dict"
    else:
        held = f"a {type(loaded).__name__}"
    raise CheckpointError(f"checkpoint {path} holds {held}: expected a state dict (names -> tensors, torch.save(model.state_dict())) "
                          "or a dlprobe checkpoint (a dict whose 'model' is a state dict)")


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, tensor.shape)) + ")"


def load_weights(model: nn.Module, checkpoint: Checkpoint, where: str) -> None:
    """Copy the checkpoint's tensors into model (strictly: the same names and shapes as model.state_dict()).

    A mismatch is a CheckpointError naming the first differing key in the model's order (a missing name or a
    shape), then names the checkpoint has that the model lacks, with how many differences there are in all."""
    expected, given = model.state_dict(), checkpoint.state
    problems = []
    for name, tensor in expected.items():
        if name not in given:
            problems.append(f"the model's {name} {_shape(tensor)} is missing from the checkpoint")
        elif given[name].shape != tensor.shape:
            problems.append(f"{name} is {_shape(given[name])} in the checkpoint but {_shape(tensor)} in the model")
    problems += [f"the checkpoint's {name} {_shape(given[name])} is not in the model" for name in given if name not in expected]
    if problems:
        more = f" ({len(problems) - 1} more difference{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise CheckpointError(f"checkpoint {checkpoint.path} does not fit model {where}: {problems[0]}{more}")
    try:
        model.load_state_dict(given, strict=True)
    except RuntimeError as error:  # e.g. a dtype torch cannot copy; names and shapes were checked above
        raise CheckpointError(f"checkpoint {checkpoint.path} does not fit model {where}: {str(error).splitlines()[0]}") from None
