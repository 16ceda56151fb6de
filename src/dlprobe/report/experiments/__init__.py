"""The report text of each experiment: one module per experiment, named like its module in dlprobe.experiments.

    module = REPORTS["random-labels"]        # dlprobe.report.experiments.random_labels
    sentences = module.observe(summary, config)
    columns, rows = module.table(summary)

Each module reads only summary.json (and the run's config) and turns its numbers into sentences and a table
of headline numbers; every statistic it quotes was computed by the experiment's run (analysis/stats.py).
"""

from __future__ import annotations

from types import ModuleType

from . import (critical_points, error_surface, fit_function, fit_task, grad_norm, interpolation, param_count, random_labels,
               sensitivity, trajectory)

# experiment CLI name -> its report module, in the order of dlprobe.experiments.MODULES
REPORTS: dict[str, ModuleType] = {
    "fit-function": fit_function,
    "fit-task": fit_task,
    "trajectory": trajectory,
    "grad-norm": grad_norm,
    "critical-points": critical_points,
    "error-surface": error_surface,
    "random-labels": random_labels,
    "param-count": param_count,
    "interpolation": interpolation,
    "sensitivity": sensitivity,
}
