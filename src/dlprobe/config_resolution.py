"""From a `dlprobe run` command to the configs it runs: defaults <- profile <- config file <- command line.

    request = RunRequest(profile="smoke", file_data=load_config_file("my.toml"), options={"seeds": "3"},
                         field_values={"epochs": "5"}, set_items=["budget=300"])
    configs = resolve_configs(experiments, request, experiment_names)   # one valid config per experiment

The command line reaches a config three ways, later ones winning: the common options (--dataset, --seeds,
...; each sets the first of its COMMON_OPTIONS fields that the experiment has), the experiment's own --FIELD
options, and --set KEY=VALUE. A config file's top-level keys apply to every experiment being run that has
them, its [NAME] tables to that experiment only. `--seeds N` means seeds S, S+1, ..., S+N-1, and `--seed S`
alone shifts a multi-seed experiment's seeds to S, S+1, ... (as many as the profile or file gives), S being
the resolved seed; both are settled before each config's one build. Every mistake is a one-line
ConfigError before anything runs: a common option, --set key or file key that no experiment being run has
is an error, never silently dropped (with `all`, each experiment takes the ones it has).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .config import layered_values, make_config
from .errors import ConfigError

# common option -> the config fields it sets (the first one the experiment has)
COMMON_OPTIONS = {
    "dataset": ("datasets", "dataset"),
    "function": ("functions", "function"),
    "train_size": ("train_size",),
    "seed": ("seed",),
    "seeds": ("seeds",),
    "device": ("device",),
    "model": ("model",),
}


@dataclass(frozen=True)
class RunRequest:
    """What a `dlprobe run` command asks for. options: common option -> the value given (None: not given;
    --dataset and --function are lists, being repeatable); field_values: the experiment's own --FIELD
    options (field name -> text); set_items: the --set KEY=VALUE texts, in order."""

    profile: str
    file_data: dict = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    field_values: dict[str, str] = field(default_factory=dict)
    set_items: list[str] = field(default_factory=list)


def common_option_fields(config_class) -> dict[str, str]:
    """Common option -> the field it sets in config_class, for the options the experiment accepts."""
    names = _field_names(config_class)
    targets = {option: next((c for c in candidates if c in names), None) for option, candidates in COMMON_OPTIONS.items()}
    return {option: target for option, target in targets.items() if target is not None}


def resolve_configs(experiments, request: RunRequest, experiment_names: set[str]) -> list:
    """One config per experiment (same order), each built once; raises ConfigError for the first mistake."""
    _check_common_options(request.options, experiments)
    set_values = parse_set_items(request.set_items)
    _check_set_keys(set_values, experiments)
    _check_file_keys(request.file_data, experiments, experiment_names)
    return [_resolve(experiment, request, set_values, experiment_names) for experiment in experiments]


def parse_set_items(items: list[str]) -> dict[str, str]:
    """['epochs=100', 'max-epochs=5'] -> {'epochs': '100', 'max_epochs': '5'} (a later KEY wins)."""
    values = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        values[key.strip().replace("-", "_")] = value
    return values


def file_values(file_data: dict, experiment_name: str, experiment_names: set[str], config_class) -> dict:
    """The config-file values for one experiment: the top-level keys it has, then its own [NAME] table."""
    names = _field_names(config_class)
    values = {k: v for k, v in file_data.items()
              if k not in experiment_names and not isinstance(v, dict) and k.replace("-", "_") in names}
    for table, value in file_data.items():
        if isinstance(value, dict) and table not in experiment_names:
            known = ", ".join(sorted(experiment_names))
            raise ConfigError(f"config file table [{table}] is not an experiment; experiments: {known}")
    values.update(file_data.get(experiment_name, {}))
    return values


def _resolve(experiment, request: RunRequest, set_values: dict[str, str], experiment_names: set[str]):
    config_class = experiment.config_class
    context = f"{experiment.name} ({request.profile} profile)"
    names = _field_names(config_class)
    seeds_count = _seeds_count(request.options.get("seeds")) if "seeds" in names else None
    command_line = _command_line_values(request, config_class, set_values, with_seeds=seeds_count is None)
    sources = (("profile", experiment.profiles.get(request.profile, {})),
               ("config file", file_values(request.file_data, experiment.name, experiment_names, config_class)),
               ("command line", command_line))
    values = layered_values(config_class, sources, context)
    if "seeds" in names:
        seed = values.get("seed", _default(config_class, "seed"))
        if seeds_count is not None and "seeds" not in set_values:  # --seeds N
            values["seeds"] = tuple(range(seed, seed + seeds_count))
        elif request.options.get("seed") is not None and request.options.get("seeds") is None:  # --seed S alone
            values["seeds"] = tuple(range(seed, seed + len(values.get("seeds", _default(config_class, "seeds")))))
    return make_config(config_class, values, context)


def _command_line_values(request: RunRequest, config_class, set_values: dict[str, str], with_seeds: bool) -> dict:
    """Common options (--seeds N aside: it needs the resolved seed), then --FIELD options, then --set, each
    only where this config has the field."""
    names = _field_names(config_class)
    values: dict[str, Any] = {}
    for option, target in common_option_fields(config_class).items():
        given = request.options.get(option)
        if given is None or (target == "seeds" and not with_seeds):
            continue
        if isinstance(given, list):  # repeatable options
            if target in ("dataset", "function") and len(given) > 1:
                raise ConfigError(f"--{option} was given {len(given)} times but this experiment takes one")
            given = list(given) if target in ("datasets", "functions", "model") else given[0]  # a list: expressions may hold commas
        values[target] = given
    values.update(request.field_values)
    values.update({key: value for key, value in set_values.items() if key in names})
    return values


def _seeds_count(text) -> int | None:
    """N for `--seeds N`; None when --seeds is absent or an explicit list like 0,1,2."""
    if text is None or "," in str(text):
        return None
    try:
        count = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"--seeds expects a count N or a list like 0,1,2, got {str(text).strip()!r}") from None
    if count < 1:
        raise ConfigError(f"--seeds count must be >= 1, got {count}")
    return count


def _check_common_options(options: dict, experiments) -> None:
    for option, candidates in COMMON_OPTIONS.items():
        if options.get(option) is None:
            continue
        if not any(c in _field_names(e.config_class) for e in experiments for c in candidates):
            names = ", ".join(e.name for e in experiments)
            raise ConfigError(f"--{option.replace('_', '-')}: {names} {'has' if len(experiments) == 1 else 'have'} no such setting "
                              f"(see `dlprobe run {experiments[0].name if len(experiments) == 1 else 'NAME'} --help`)")


def _check_set_keys(set_values: dict[str, str], experiments) -> None:
    for key in set_values:
        if not any(key in _field_names(e.config_class) for e in experiments):
            raise ConfigError(f"--set {key}: no such config field in {', '.join(e.name for e in experiments)}")


def _check_file_keys(file_data: dict, experiments, experiment_names: set[str]) -> None:
    """A top-level config-file key must be a field of at least one experiment being run (typos are errors)."""
    known = {name for e in experiments for name in _field_names(e.config_class)}
    for key, value in file_data.items():
        if key in experiment_names or isinstance(value, dict):
            continue
        if key.replace("-", "_") not in known:
            raise ConfigError(f"unknown config file key {key!r}: no experiment being run has it")


def _field_names(config_class) -> set[str]:
    return {f.name for f in fields(config_class)}


def _default(config_class, name: str):
    return next(f.default for f in fields(config_class) if f.name == name)
