"""The Ray executor: every unfinished trial of an experiment as a Ray task (see executors.py for the interface).

    dlprobe run sensitivity --executor ray                        # Ray on this machine (started if none runs)
    dlprobe run all --executor ray --ray-address auto             # an existing cluster (`ray start --head` ...)
    dlprobe run param-count --executor ray --ray-gpus-per-trial 1 # each trial on one GPU of the cluster

Trials already saved in the run directory are loaded, not resubmitted; the others are submitted at once with
their CPU/GPU request, and the driver saves each result atomically as it arrives, so an interrupted driver
resumes with what it had. Workers get no progress bar and no checkpoint path (no shared file system is
assumed): resumption is per trial. A worker that dies is replaced and its task rerun, and a task that raises
is rerun, up to `max_retries` times (a DlprobeError, a user mistake, is not: it would fail again). Trials that
still fail are written to failed_trials.json while the others finish and are saved; then TrialsFailedError
stops the run, which is not marked done, and rerunning the same command runs only the missing trials.
Workers use the driver's torch thread count and flush denormals as the runner does in-process, so on CPU the
numbers are bit-identical to the local executor's. `import ray` happens only here, and only when needed.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch

from . import paths
from .errors import ConfigError, DlprobeError
from .executors import Trial, TrialEnvironment, TrialsFailedError, advance_progress
from .store import atomic_write_json
from .training.common import resolve_device


def _to_cpu(value):
    """Tensors moved to the CPU inside dicts, lists and tuples: a driver without CUDA must load the result."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value


@dataclass(frozen=True)
class _UserError:
    """A DlprobeError raised inside a Ray task, returned instead of raised so that Ray does not retry it."""

    message: str


def _run_trial(threads: int, use_cuda: bool, function, keywords: dict, *arguments):
    """The body of every Ray task (runs in a worker process): function(*arguments, trial, **keywords)."""
    torch.set_num_threads(threads)
    # The runner sets this in-process (see runner.py); without it subnormal floats slow training 10-60x, and
    # flushed and unflushed runs could differ in the last bits.
    torch.set_flush_denormal(True)
    try:
        if use_cuda and not torch.cuda.is_available():
            raise ConfigError("the trial asked for a GPU (--ray-gpus-per-trial) but the Ray worker's torch sees no CUDA device")
        return _to_cpu(function(*arguments, TrialEnvironment(torch.device("cuda" if use_cuda else "cpu")), **keywords))
    except DlprobeError as error:
        return _UserError(f"{type(error).__name__}: {' '.join(str(error).split())}")


def _split(compute) -> tuple:
    """(function, keywords, positional arguments) such that compute(trial) == function(*arguments, trial, **keywords)."""
    if isinstance(compute, partial):
        return compute.func, dict(compute.keywords), list(compute.args)
    return compute, {}, []


def _already_saved():
    raise RuntimeError("a trial file disappeared while the run directory was locked")


def _one_line(error: BaseException) -> str:
    """'ValueError: message' for a task's exception (Ray wraps it), or the Ray error's first line."""
    cause = getattr(error, "cause", None)
    shown = cause if isinstance(cause, BaseException) else error
    lines = str(shown).strip().splitlines() or [""]
    return f"{type(shown).__name__}: {lines[0].strip().rstrip('.')}"[:300]


class RayExecutor:
    """Trials as Ray tasks on a cluster (`address`: 'auto', 'HOST:PORT', 'ray://HOST:PORT'; None: Ray's own
    lookup, i.e. $RAY_ADDRESS, else the cluster last started on this machine, else a new local instance)."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_trial: int = 1, gpus_per_trial: float = 0.0,
                 max_retries: int = 2, quiet: bool = False):
        if not cpus_per_trial >= 1:
            raise ConfigError(f"--ray-cpus-per-trial must be >= 1, got {cpus_per_trial}")
        if not 0 <= gpus_per_trial < float("inf"):  # fractions are allowed: 0.25 packs four trials on one GPU
            raise ConfigError(f"--ray-gpus-per-trial must be >= 0, got {gpus_per_trial}")
        if not max_retries >= 0:
            raise ConfigError(f"--ray-max-retries must be >= 0, got {max_retries}")
        if importlib.util.find_spec("ray") is None:
            raise ConfigError("--executor ray needs Ray, which is not installed: pip install 'dlprobe[ray]'")
        self.address, self.cpus_per_trial, self.gpus_per_trial = address, int(cpus_per_trial), float(gpus_per_trial)
        self.max_retries, self.quiet = int(max_retries), quiet
        self._remote = None  # the Ray remote function, made on first use
        self._initialized_here = False

    def devices(self, requested: str) -> tuple[torch.device, torch.device]:
        """The driver prepares data on its CPU (tensors travel to the workers from there); trials compute on
        CUDA when they ask for GPUs, even if the driver has none, else on the CPU."""
        use_cuda = self.gpus_per_trial > 0
        if requested.startswith("cuda") and not use_cuda:
            raise ConfigError(f"--device {requested} with --executor ray needs --ray-gpus-per-trial > 0 (the GPUs are the workers')")
        if requested == "cpu" and use_cuda:
            raise ConfigError("--device cpu contradicts --ray-gpus-per-trial > 0; use --device auto")
        if requested not in ("auto", "cpu") and not requested.startswith("cuda"):
            resolve_device(requested)  # raises the usual error for an unknown name
        return torch.device("cpu"), torch.device("cuda" if use_cuda else "cpu")

    def _connect(self):
        import ray

        if self._remote is not None:
            return ray
        if not ray.is_initialized():
            import logging

            import dlprobe

            self._check_reachable()
            try:
                # py_modules ships this dlprobe to every worker, so workers run exactly the driver's code.
                ray.init(address=self.address, include_dashboard=False, log_to_driver=not self.quiet,
                         logging_level=logging.ERROR if self.quiet else logging.INFO,
                         runtime_env={"py_modules": [dlprobe]})
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = f"at {self.address}" if self.address else "(none given: Ray's own lookup)"
                raise ConfigError(f"cannot connect to the Ray cluster {where}: {_one_line(error)}; start one with "
                                  "`ray start --head`, or leave out --ray-address to start a local one") from None
            self._initialized_here = True
        self._warn_if_unschedulable(ray.cluster_resources())
        self._remote = ray.remote(_run_trial)
        return ray

    def _check_reachable(self) -> None:
        """Fail at once for a HOST:PORT nobody listens on (ray.init would retry for minutes)."""
        host, _, port = (self.address or "").removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            return  # None, 'auto', 'local': Ray's own lookup, which fails fast
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as error:
            raise ConfigError(f"cannot reach the Ray cluster at {self.address}: {error.strerror or error}; start one with "
                              "`ray start --head`, or leave out --ray-address to start a local one") from None

    def _warn_if_unschedulable(self, resources: dict) -> None:
        for name, wanted in (("CPU", self.cpus_per_trial), ("GPU", self.gpus_per_trial)):
            if wanted > resources.get(name, 0):
                print(f"dlprobe: warning: the Ray cluster has {resources.get(name, 0):g} {name}s in all, a trial asks for {wanted:g}; "
                      "trials wait until a node that has them joins", file=sys.stderr)

    def run_trials(self, run_dir, trials: Sequence[Trial], device: torch.device, progress, steps: Sequence[int]) -> list:
        results: list = [None] * len(trials)
        pending, position, todo = {}, 0, []
        for index, (key, compute) in enumerate(trials):
            if run_dir.trial_path(key).exists():  # finished by an earlier invocation: load, do not resubmit
                results[index] = run_dir.trial(key, _already_saved)
                position += steps[index]
            else:
                todo.append(index)
        advance_progress(progress, position)
        ray = self._connect() if todo else None
        # A functools.partial's arguments travel as task arguments, and one that several trials share (the data
        # tensors) goes to the object store once (ray.put) instead of once per trial inside each closure.
        calls = [_split(trials[index][1]) for index in todo]
        shared = Counter(id(argument) for _, _, arguments in calls for argument in arguments)
        stored: dict[int, object] = {}  # id(argument) -> its ObjectRef (Ray resolves top-level ObjectRef arguments)

        def once(argument):
            if shared[id(argument)] > 1 and id(argument) not in stored:
                stored[id(argument)] = ray.put(argument)
            return stored.get(id(argument), argument)

        for index, (function, keywords, arguments) in zip(todo, calls):
            arguments = [once(argument) for argument in arguments]
            options = dict(name=f"dlprobe:{trials[index][0]}", num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
                           max_retries=self.max_retries, retry_exceptions=True)
            task = self._remote.options(**options).remote(torch.get_num_threads(), device.type == "cuda", function, keywords, *arguments)
            pending[task] = index
        failures = []
        try:
            while pending:
                (task,), _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(task)
                key = trials[index][0]
                try:
                    result = ray.get(task)
                except ray.exceptions.RayError as error:
                    failures.append({"index": index, "key": key, "error": _one_line(error), "attempts": self.max_retries + 1})
                else:
                    if isinstance(result, _UserError):  # a user error is not retried: it would fail again
                        failures.append({"index": index, "key": key, "error": result.message, "attempts": 1})
                    else:
                        results[index] = run_dir.trial(key, lambda: result)  # saves atomically
                position += steps[index]
                advance_progress(progress, position)
        finally:
            for task in pending:  # interrupted (Ctrl-C): do not leave tasks running on the cluster
                try:
                    ray.cancel(task, force=True)
                except Exception:  # Ray may already be shutting down; the tasks die with the driver's job then
                    pass
        if failures:
            self._report(run_dir, trials, failures)
        return results

    def _report(self, run_dir, trials, failures) -> None:
        failures = [{k: v for k, v in f.items() if k != "index"} for f in sorted(failures, key=lambda f: f["index"])]  # trial order
        path = run_dir.path(paths.FAILED_TRIALS)
        atomic_write_json(path, {"failed": failures, "num_trials": len(trials), "executor": self.describe()})
        keys = ", ".join(f["key"] for f in failures[:5]) + (", ..." if len(failures) > 5 else "")
        raise TrialsFailedError(f"{len(failures)} of {len(trials)} trials failed ({keys}; first error: {failures[0]['error']}): "
                                f"see {path}; rerun the same command to retry them")

    def describe(self) -> dict:
        return {"name": self.name, "address": self.address, "cpus_per_trial": self.cpus_per_trial,
                "gpus_per_trial": self.gpus_per_trial, "max_retries": self.max_retries}

    def close(self) -> None:
        """Disconnect (and stop the local instance if this executor started one)."""
        if self._initialized_here:
            import ray

            ray.shutdown()
            self._initialized_here = False
        self._remote = None
