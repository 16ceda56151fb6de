"""Where an experiment's independent trials run: one after another in this process, or as Ray tasks.

    dlprobe run sensitivity --executor ray                        # Ray on this machine (started if none runs)
    dlprobe run all --executor ray --ray-address auto             # an existing cluster (`ray start --head` ...)
    dlprobe run param-count --executor ray --ray-gpus-per-trial 1 # each trial on one GPU of the cluster

An experiment hands over a list of trials: (key, compute), where key names the trial's file under trials/ and
compute(trial: TrialEnvironment) returns a checkpoint-safe result (tensors, numbers, strings, lists, dicts).
Both executors return the results in the order of the list, load trials a previous invocation finished
instead of running them again, and save each new result atomically in the run directory as soon as it exists,
so an interrupted run resumes with everything it had finished.

- LocalExecutor (the default): in-process, in order; the trial gets the run's progress bar and a mid-trial
  checkpoint path, so a long training resumes mid-way.
- RayExecutor (ray_executor.py): each unfinished trial is a Ray task with its CPU/GPU request, retried when
  its worker dies or it raises; trials that still fail are recorded and the run stops after the others.

ray_executor.py builds on this module's interface (TrialEnvironment, Trial, TrialsFailedError); this module
never imports it, so `import ray` and its torch set-up happen only when the command line asks for Ray
(cli.make_executor).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import DlprobeError

if TYPE_CHECKING:  # torch is imported where it is used: `dlprobe` starts (and answers Ctrl-C) before torch loads
    import torch


@dataclass(frozen=True)
class TrialEnvironment:
    """What an executor gives a trial: the device to compute on, a progress bar to advance by one per epoch
    (None on Ray workers), and where to keep a mid-trial checkpoint (None on Ray workers)."""

    device: torch.device
    progress: Any = None
    checkpoint: Path | None = None


Trial = tuple[str, Callable[[TrialEnvironment], Any]]


class TrialsFailedError(DlprobeError):
    """Some trials still failed after their retries; the others are saved and a rerun retries only these."""


def advance_progress(progress, position: int) -> None:
    """Put the bar at `position`: trials that were loaded, stopped early or ran remotely did not tick it."""
    if progress is not None and progress.n != position:
        progress.n = position
        progress.refresh()


class LocalExecutor:
    """Trials in this process, one after another (what dlprobe did before executors existed)."""

    name = "local"

    def devices(self, requested: str) -> tuple[torch.device, torch.device]:
        """(driver device, trial device) for the config's device name ('auto', 'cpu', 'cuda[:k]')."""
        from .training.common import resolve_device

        device = resolve_device(requested)
        return device, device

    def run_trials(self, run_dir, trials: Sequence[Trial], device: torch.device, progress, steps: Sequence[int]) -> list:
        results = []
        for (key, compute), position in zip(trials, accumulate(steps)):
            environment = TrialEnvironment(device, progress, run_dir.checkpoint_path(key))
            results.append(run_dir.trial(key, lambda: compute(environment)))
            advance_progress(progress, position)
        return results

    def describe(self) -> dict:
        return {"name": self.name}

    def close(self) -> None:
        pass
