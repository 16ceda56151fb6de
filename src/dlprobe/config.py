"""Experiment configurations: frozen dataclasses whose fields carry their help text.

    @dataclass(frozen=True)
    class Config(ExperimentConfig):
        epochs: int = param(2000, "training epochs", minimum=1)
        seeds: tuple[int, ...] = seeds_field((0, 1, 2))       # config_fields.py: the knobs experiments share

Profiles are presets (smoke/quick/full) applied over the dataclass defaults; then a config file, then
command-line overrides (`build_config`; config_resolution.py turns a `dlprobe run` command into these).
Every value is type-checked with a one-line ConfigError. A run's identity is a hash of the fields that
differ from the defaults (ignoring fields marked identity=False such as the device), so adding a field with
a default never renames old runs; a field's `check` may put a value in canonical form first ('MNIST' ->
'mnist'), so two spellings of one setting are one run, and its `identity` may say what stands for the value
in the hash (a dataset PATH: the path and the content digest, so edited data is a new run).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError

PROFILES = ("smoke", "quick", "full")


def param(default, help: str, *, minimum=None, maximum=None, choices=None, check: Callable[[Any], Any] | None = None,
          identity: bool | Callable[[Any], Any] = True):
    """A config field with help text and simple bounds (checked on every assignment path).

    minimum, maximum, choices: bounds on the value (on every item of a list). check: a function of the whole
    value, after the bounds, that raises ConfigError when it is invalid and returns it, possibly in
    canonical form (the config holds and hashes what it returns). identity=False: the field does not
    change results (the device), so it is left out of the run's identity; a function: the identity hashes
    what it returns for the value (JSON-able; it must return the value itself wherever the value alone
    decides the results, so that those runs keep their directories): a dataset PATH's content digest, a user
    model file's content hash."""
    metadata = {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices, "check": check,
                "identity": identity}
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ExperimentConfig:
    seed: int = param(0, "base random seed (initial weights, data order, subsets)", minimum=0)
    device: str = param("auto", "auto (CUDA when present, else CPU), cpu or cuda", identity=False)

    def __post_init__(self):
        hints = _hints(type(self))
        for f in fields(self):
            value = _coerce(f, getattr(self, f.name), source="", hint=hints[f.name])
            _check_bounds(f, value)
            if f.metadata.get("check") is not None:
                value = f.metadata["check"](value)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; subclasses raise ConfigError."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def identity_fields(cls) -> list[str]:
        """The fields that decide a run's results (all but those marked identity=False, e.g. device)."""
        return [f.name for f in fields(cls) if f.metadata.get("identity", True)]

    def identity_hash(self) -> str:
        """8 hex digits from the identity fields that differ from the class defaults."""
        defaults = type(self)()
        names = set(self.identity_fields())
        changed = {
            f.name: _identity_value(f, getattr(self, f.name))
            for f in fields(self)
            if f.name in names and getattr(self, f.name) != getattr(defaults, f.name)
        }
        text = json.dumps(changed, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def field_help(config_class) -> list[tuple[str, str, str, Any, tuple | None]]:
    """(name, type text, help, default, choices) of every field, for --help and the docs."""
    hints = _hints(config_class)
    return [(f.name, _type_text(hints[f.name]), f.metadata.get("help", ""), f.default, f.metadata.get("choices"))
            for f in fields(config_class)]


def build_config(config_class, profile_overrides: dict, file_values: dict, cli_values: dict, context: str):
    """Defaults <- profile <- config file <- command line; raises ConfigError naming the bad key."""
    sources = (("profile", profile_overrides), ("config file", file_values), ("command line", cli_values))
    return make_config(config_class, layered_values(config_class, sources, context), context)


def layered_values(config_class, sources, context: str) -> dict[str, Any]:
    """The typed values that [(source name, {key: value}), ...] give, later sources winning over earlier
    ones; keys may use '-' for '_'. An unknown key or a value of the wrong type is a ConfigError."""
    names = {f.name for f in fields(config_class)}
    values: dict[str, Any] = {}
    for source, given in sources:
        for key, value in given.items():
            key_name = key.replace("-", "_")
            if key_name not in names:
                raise ConfigError(f"unknown {source} key {key!r} for {context}; known keys: {', '.join(sorted(names))}")
            values[key_name] = value
    hints = _hints(config_class)
    return {f.name: _coerce(f, values[f.name], source=f" for {context}", hint=hints[f.name])
            for f in fields(config_class) if f.name in values}


def make_config(config_class, values: dict[str, Any], context: str):
    """config_class(**values), its bounds, checks and validate() applied; ConfigError if anything is wrong."""
    try:
        return config_class(**values)
    except TypeError as error:
        raise ConfigError(f"invalid configuration for {context}: {error}") from None


def load_config_file(path: str | Path) -> dict:
    """A TOML or JSON file of key = value pairs (optionally tables named after experiments)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold key = value pairs at the top level")
    return data


# --- coercion -------------------------------------------------------------------------------------


def _type_text(hint) -> str:
    """'int', 'float | None', 'int,...' (a comma-separated list) for help texts and errors."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return f"{_type_text(args[0]) if args else 'str'},..."
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_text(a) for a in args)
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


@functools.lru_cache(maxsize=None)
def _hints(config_class) -> dict:
    return typing.get_type_hints(config_class)


def _coerce(f, value, source: str, hint):
    try:
        return _coerce_to(hint, value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid value {value!r} for {f.name}{source}: expected {_type_text(hint)} ({error})") from None


def _coerce_to(hint, value):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce_to(arg, value)
            except (TypeError, ValueError) as error:
                errors.append(str(error))
        raise ValueError("; ".join(errors))
    if origin is tuple:
        item_type = args[0] if args else str
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [value]
        return tuple(_coerce_to(item_type, item) for item in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise ValueError("not a boolean (use true/false)")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError("not an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError("not an integer")
            return int(value)
        if isinstance(value, str):
            text = value.strip().replace("_", "")
            try:
                return int(text)
            except ValueError:
                number = float(text)  # accept 1e3
                if not number.is_integer():
                    raise ValueError("not an integer") from None
                return int(number)
        if isinstance(value, int):
            return value
        raise ValueError("not an integer")
    if hint is float:
        if isinstance(value, bool):
            raise ValueError("not a number")
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("not a finite number")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return value
    return value


def _check_bounds(f, value) -> None:
    meta = f.metadata
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if item is None or isinstance(item, bool):
            continue
        if meta.get("choices") is not None and item not in meta["choices"]:
            raise ConfigError(f"invalid value {item!r} for {f.name}: choose one of {', '.join(map(str, meta['choices']))}")
        if meta.get("minimum") is not None and isinstance(item, (int, float)) and item < meta["minimum"]:
            raise ConfigError(f"{f.name} must be >= {meta['minimum']}, got {item}")
        if meta.get("maximum") is not None and isinstance(item, (int, float)) and item > meta["maximum"]:
            raise ConfigError(f"{f.name} must be <= {meta['maximum']}, got {item}")


def _identity_value(f, value):
    """What the identity hash takes for field f's value: _jsonable(value), or what its identity function says."""
    identity = f.metadata.get("identity", True)
    return identity(value) if callable(identity) else _jsonable(value)


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value
