"""The experiment registry, in the order of the assignment (and of `dlprobe run all`)."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Experiment

# module name in dlprobe.experiments, in run order
MODULES = (
    "fit_function",
    "fit_task",
    "trajectory",
    "grad_norm",
    "critical_points",
    "error_surface",
    "random_labels",
    "param_count",
    "interpolation",
    "sensitivity",
)


def all_experiments() -> list[Experiment]:
    """Every registered experiment, in run order. A module that fails to import is an error (a packaging
    mistake, a missing dependency), never a silently shorter list."""
    return [importlib.import_module(f"{__name__}.{module_name}").EXPERIMENT for module_name in MODULES]


def get_experiment(name: str) -> Experiment:
    experiments = {e.name: e for e in all_experiments()}
    if name not in experiments:
        raise ConfigError(f"unknown experiment {name!r}; choose one of: all, {', '.join(experiments)}")
    return experiments[name]
