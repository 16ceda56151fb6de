"""What every experiment module provides, and what the runner hands it.

An experiment module defines a frozen `Config` (see config.py), `PROFILES` (smoke/quick/full overrides),
and `run(config, ctx) -> summary dict`. It records metrics in `ctx.log`, saves figures with
`ctx.run_dir.save_figure`, hands lists of independent trials to `ctx.map_trials` (run by the executor: in
this process, or on a Ray cluster) and single pieces of driver-side work to `ctx.trial(key, compute)`, so
an interrupted run resumes where it stopped, and returns the headline numbers that become summary.json.
Its sentences and table in the report live in report/experiments/<module>.py and read only that summary.
Every model it trains is described once with `ctx.describe_model` (models/describe.py); the runner adds those layer
tables to summary.json as `layer_tables`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..executors import LocalExecutor, Trial
from ..store import RunDir
from ..training.metrics import MetricLog


@dataclass(frozen=True)
class Experiment:
    name: str  # CLI name, e.g. "fit-function"
    section: str  # assignment part, e.g. "1-1"
    title: str
    description: str  # one line for `dlprobe list`
    config_class: type
    profiles: dict[str, dict[str, Any]]
    run: Callable[[Any, "RunContext"], dict]


@dataclass
class RunContext:
    run_dir: RunDir
    device: torch.device
    profile: str
    data_dir: Path | None = None
    log: MetricLog = field(default_factory=MetricLog)
    quiet: bool = False
    executor: Any = field(default_factory=LocalExecutor)  # LocalExecutor or RayExecutor (executors.py)
    trial_device: torch.device | None = None  # where map_trials' trials compute (None: `device`)
    layer_tables: dict = field(default_factory=dict)  # name -> describe_model's entry; summary.json's layer_tables

    def trial(self, key: str, compute: Callable[[], Any]) -> Any:
        """One piece of work done here, in the driver: loaded if an earlier invocation finished it."""
        return self.run_dir.trial(key, compute)

    def map_trials(self, trials: Sequence[Trial], description: str, steps: int | Sequence[int] = 1) -> list:
        """Results of independent trials [(key, compute(trial: TrialEnvironment)), ...], in the same order.

        The executor runs them (locally in order, or as Ray tasks); each is saved as it finishes and loaded
        instead of rerun on resume. `steps`: progress-bar units of each trial (e.g. its epochs; one number
        for all, or one per trial); computes that train advance `trial.progress` by one per epoch. A compute
        must be picklable for Ray (module-level functions or functools.partial of them; tensors are fine)."""
        trials = list(trials)
        counts = [steps] * len(trials) if isinstance(steps, int) else list(steps)
        if len(counts) != len(trials):
            raise ValueError(f"map_trials: {len(trials)} trials but {len(counts)} step counts")
        with self.progress(sum(counts), description) as progress:
            return self.executor.run_trials(self.run_dir, trials, self.trial_device or self.device, progress, counts)

    def describe_model(self, name: str, model: torch.nn.Module, example: torch.Tensor, training: str, /, **details) -> dict:
        """Record `model`'s layer table (models/describe.py, one forward pass on `example` (N, *input_shape))
        under `name`, with how it trains (`training`: "ensemble" or "loop") and `details` (e.g. the user model's
        file and digest); the runner writes them to summary.json's layer_tables. Returns the entry."""
        from ..models.describe import layer_table

        entry = {**layer_table(model, example.to(next(model.parameters()).device)), "training": training, **details}
        self.layer_tables[name] = entry
        return entry

    def checkpoint_path(self, key: str) -> Path:
        return self.run_dir.checkpoint_path(key)

    def progress(self, total: int, description: str):
        """A progress bar with ETA on stderr (hidden when stderr is not a terminal or when quiet)."""
        return tqdm(total=total, desc=description, leave=False, file=sys.stderr, disable=True if self.quiet else None, dynamic_ncols=True)

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)
