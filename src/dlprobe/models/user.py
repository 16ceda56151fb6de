"""Your own model: `--model FILE.py:FUNCTION` or `--model package.module:FUNCTION`, a factory dlprobe calls.

    spec = parse_model_spec("models.py:make_cnn")          # checks the file exists; imports nothing
    model = build_user_model(spec, input_shape=(1, 28, 28), num_outputs=10, seed=0)   # an nn.Module, checked
    model_digest(spec)                                      # sha256 of the file's bytes + the function name

The file is the user's own code and runs in this process, as a pytest `conftest.py` does: importing it
executes it (its folder is put on sys.path first, so it may import its neighbours). The factory is called
with the keyword arguments its signature names (all of them if it takes **kwargs), from:
  input_shape: tuple[int, ...]  one example's shape, e.g. (1, 28, 28) for MNIST, (1,) for a 1 -> 1 function
  num_outputs: int              classes (cross-entropy on the logits) or regression outputs (MSE)
  seed: int                     the run's seed for this model; torch's global RNG is seeded with it while the
                                factory runs (and from (seed, epoch) while the model trains: model_choice.train_seeded)
  generator: torch.Generator    seeded with `seed`, for explicit initialisation
  size: int                     param-count only: the model's size knob (one factory -> a family)
A factory that needs another argument, raises, returns something that is not an nn.Module, has no
trainable parameters or gives the wrong output shape on a batch of 2 ((2, num_outputs) expected) is a
one-line ModelError naming the file, with the user's own traceback lines (frames from their file).

A user model's identity is `model_digest` (file content + function name); it enters the run's config hash
(config_fields.model_field), so editing the file makes a new run directory, never a silent reuse.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ModelError

ARGUMENTS = ("input_shape", "num_outputs", "seed", "generator", "size")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULES: dict[tuple[str, str], object] = {}  # (path, digest) -> the imported module (each file version runs once)


@dataclass(frozen=True)
class UserModelSpec:
    """text: as the user wrote it; path: the resolved .py file (file form) or None; module: the dotted name
    (module form) or None; function: the factory's name."""

    text: str
    path: Path | None
    module: str | None
    function: str

    @property
    def where(self) -> str:
        """How messages name the model: 'models.py:make_cnn' as written."""
        return self.text


def parse_model_spec(text: str) -> UserModelSpec:
    """'FILE.py:FUNCTION' or 'package.module:FUNCTION' -> UserModelSpec; ModelError for a malformed text or a
    file that does not exist (nothing is imported here)."""
    text = str(text).strip()
    if ":" not in text:
        raise ModelError(f"--model {text!r}: expected FILE.py:FUNCTION or package.module:FUNCTION")
    location, function = text.rsplit(":", 1)
    if not _IDENTIFIER.match(function):
        raise ModelError(f"--model {text!r}: {function!r} is not a function name (expected FILE.py:FUNCTION)")
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = Path(location).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {location} does not exist (from --model {text})")
        return UserModelSpec(text, path.resolve(), None, function)
    if not all(_IDENTIFIER.match(part) for part in location.split(".")):
        raise ModelError(f"--model {text!r}: {location!r} is neither a .py file nor a package.module name")
    return UserModelSpec(text, None, location, function)


def model_source(spec: UserModelSpec) -> Path:
    """The .py file the factory lives in (module form: found without running it, where Python can)."""
    if spec.path is not None:
        return spec.path
    try:
        found = importlib.util.find_spec(spec.module)  # imports the parent packages: the user's code may raise anything
    except (ImportError, ValueError) as error:
        raise ModelError(f"model module {spec.module} cannot be found (from --model {spec.text}): {error}") from None
    except BaseException as error:  # noqa: BLE001 - a parent package's __init__ that raises, SystemExit included
        if isinstance(error, KeyboardInterrupt):
            raise
        frames = traceback.extract_tb(error.__traceback__)
        source = Path(frames[-1].filename) if frames else Path(spec.module)  # the innermost frame: the failing package
        raise ModelError(f"model module {spec.module}: a parent package failed to import (from --model {spec.text}): "
                         f"{_user_error(error, source, True)}") from None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise ModelError(f"model module {spec.module} cannot be found on sys.path (from --model {spec.text})")
    return Path(found.origin)


def model_digest(spec: UserModelSpec) -> str:
    """sha256 (hex) of the factory's source file bytes and the function name: the model's identity."""
    source = model_source(spec)
    try:
        content = source.read_bytes()
    except OSError as error:
        raise ModelError(f"cannot read model file {source}: {error.strerror}") from None
    return hashlib.sha256(content + b"\0" + spec.function.encode()).hexdigest()


def load_factory(spec: UserModelSpec) -> Callable:
    """Import the file or module (once per file version) and return its FUNCTION; ModelError otherwise."""
    source = model_source(spec)
    if spec.path is not None:
        key = (str(spec.path), model_digest(spec))
        module = _MODULES.get(key)
        if module is None:
            module = _import_file(spec)
            _MODULES[key] = module
    else:
        try:
            module = importlib.import_module(spec.module)
        except BaseException as error:  # noqa: BLE001 - the user's code may raise anything, SystemExit included
            if isinstance(error, KeyboardInterrupt):
                raise
            raise ModelError(f"model module {spec.module} ({source}) failed to import: {_user_error(error, source, True)}") from None
    factory = getattr(module, spec.function, None)
    if factory is None:
        names = sorted(name for name, value in vars(module).items() if callable(value) and not name.startswith("_")
                       and getattr(value, "__module__", None) == module.__name__)
        known = f"; it defines: {', '.join(names)}" if names else ""
        raise ModelError(f"model file {_shown(source)} has no function {spec.function!r}{known}")
    if not callable(factory):
        raise ModelError(f"{spec.function} in model file {_shown(source)} is not a function")
    return factory


def factory_arguments(factory: Callable, available: dict, spec: UserModelSpec) -> dict:
    """The keyword arguments to call `factory` with: those of `available` it names (all with **kwargs).
    A required parameter dlprobe does not pass is a ModelError listing what it passes."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: pass everything
        return dict(available)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(available)
    chosen = {}
    for parameter in parameters:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL,):
            continue
        if parameter.name in available and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY:
            chosen[parameter.name] = available[parameter.name]
        elif parameter.default is inspect.Parameter.empty:
            raise ModelError(f"model factory {spec.where} needs argument {parameter.name!r}, which dlprobe does not pass here; "
                             f"it passes (by keyword, those the signature names): {', '.join(available)}")
    return chosen


def build_user_model(spec: UserModelSpec, *, input_shape, num_outputs: int, seed: int, size: int | None = None,
                     device: torch.device | str = "cpu") -> nn.Module:
    """Call the factory (torch's global RNG seeded with `seed` for its duration; the caller's RNG state is kept)
    and check what it returns: an nn.Module with trainable parameters whose output on a batch of 2 random
    float32 inputs (2, *input_shape) is (2, num_outputs). Returns the model on `device`, in train mode."""
    factory = load_factory(spec)
    source = model_source(spec)
    available = {"input_shape": tuple(int(s) for s in input_shape), "num_outputs": int(num_outputs), "seed": int(seed),
                 "generator": torch.Generator().manual_seed(int(seed))}
    if size is not None:
        available["size"] = int(size)
    arguments = factory_arguments(factory, available, spec)
    if size is not None and "size" not in arguments:
        raise ModelError(f"model factory {spec.where} takes no 'size' argument, which param-count needs to build models of "
                         "different sizes (def make(size, input_shape, num_outputs): ...)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            model = factory(**arguments)
        except BaseException as error:  # noqa: BLE001 - the user's code may raise anything
            if isinstance(error, KeyboardInterrupt):
                raise
            raise ModelError(f"model factory {spec.where} raised {_user_error(error, source, spec.module is not None)}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model factory {spec.where} returned {type(model).__name__}, not a torch.nn.Module")
    if not any(p.requires_grad for p in model.parameters()):
        raise ModelError(f"model factory {spec.where} returned a {type(model).__name__} with no trainable parameters")
    check_output_shape(model, spec, available["input_shape"], int(num_outputs), source)
    return model.to(device).train()


def check_output_shape(model: nn.Module, spec: UserModelSpec, input_shape: tuple, num_outputs: int, source: Path) -> None:
    """One forward pass on a batch of 2 (eval mode, no grad): the output must be a tensor of shape (2, num_outputs)."""
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(x)
    except BaseException as error:  # noqa: BLE001
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ModelError(f"model {spec.where} failed on a batch of 2 inputs of shape {tuple(x.shape)}: "
                         f"{_user_error(error, source, spec.module is not None)}") from None
    finally:
        model.train(was_training)
    expected = (2, num_outputs)
    if not isinstance(output, torch.Tensor):
        raise ModelError(f"model {spec.where} returned {type(output).__name__} on a batch of inputs, not a tensor of shape {expected}")
    if tuple(output.shape) != expected:
        raise ModelError(f"model {spec.where} gives output shape {tuple(output.shape)} on a batch of 2 inputs {tuple(x.shape)}; "
                         f"this task needs {expected} (batch, {num_outputs} output{'s' if num_outputs != 1 else ''})")


def _import_file(spec: UserModelSpec):
    """Run the user's file as a module named after it (its folder first on sys.path, as pytest does for conftest.py)."""
    path = spec.path
    name = f"dlprobe_user_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{model_digest(spec)[:12]}"
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ModelError(f"model file {_shown(path)} cannot be imported as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as error:  # noqa: BLE001 - the user's code may raise anything
        sys.modules.pop(name, None)
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ModelError(f"model file {_shown(path)} failed to import: {_user_error(error, path)}") from None
    return module


def _user_error(error: BaseException, source: Path, module_form: bool = False) -> str:
    """'ValueError: bad width (models.py line 12 in make_cnn: return nn.Linear(w, 2))': the error and the
    traceback frames from the user's own code only (the file `source`, or for a package module the files of
    its package; by file name, the message names the path), innermost last; dlprobe's, torch's and importlib's
    frames are left out."""
    if isinstance(error, SyntaxError) and error.filename:
        line = (error.text or "").strip()
        return f"SyntaxError: {error.msg} ({_shown(Path(error.filename))} line {error.lineno}{': ' + line if line else ''})"
    source = source.resolve()
    package = source.parent if module_form and (source.parent / "__init__.py").exists() else None
    frames = []
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename).resolve() if not frame.filename.startswith("<") else None
        if path is not None and (path == source or (package is not None and package in path.parents)):
            frames.append(f"{path.name} line {frame.lineno} in {frame.name}" + (f": {frame.line.strip()}" if frame.line else ""))
    text = f"{type(error).__name__}: {error}"
    return f"{text} ({'; '.join(frames)})" if frames else text


def _shown(path: Path) -> str:
    """A path as messages show it: relative to the working directory where it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
