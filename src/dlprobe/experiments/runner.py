"""Run one experiment into its run directory: skip when done, resume when interrupted, write atomically.

The order of writes is what makes runs trustworthy: config.json first (and checked against the config
of any earlier, unfinished attempt), trials as they finish, then metrics.csv, summary.json, run_info.json
and finally DONE. Only a directory with DONE counts as finished for `run all` and the report. A run on your
own dataset (a PATH) gets `user_datasets` in config.json and summary.json: format, sha256, classes, input shape, sizes.
"""

from __future__ import annotations

import platform
import resource
import shutil
import socket
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

from .. import __version__, paths
from ..data.user import user_dataset_records
from ..errors import RunDirError
from ..executors import LocalExecutor
from ..store import RunDir
from .base import Experiment, RunContext


def check_before_running(config, data_dir: Path | None) -> None:
    """Fail before anything is written when a user model's file does not import or lacks its function, or a dataset
    the config names cannot be had, or is smaller than the train_size/test_size asked for. Cheap for the built-in
    datasets (nothing is read; a user file is imported once), so the CLI runs it for every experiment of `run all`
    before the first one starts, and each run again; your own dataset (a PATH) is read and validated here, once per
    process (data/user.py keeps it for the experiment)."""
    from ..data.images import check_subset_size, dataset_sizes
    from ..models.user import load_factory, parse_model_spec

    for text in getattr(config, "model", ()):  # the user's file imported and its function found (called later, per task)
        load_factory(parse_model_spec(text))
    names = list(getattr(config, "datasets", None) or ())
    if getattr(config, "dataset", None):
        names.append(config.dataset)
    for name in names:
        for split, available in zip(("train", "test"), dataset_sizes(name, data_dir)):
            check_subset_size(name, split, getattr(config, f"{split}_size", None), available)


def _identity_view(values, config):
    """The config.json values that decide the results (fields marked identity=False, e.g. device, dropped;
    keys the current config does not know are kept, so an older or newer file still differs)."""
    if not isinstance(values, dict):
        return None
    ignored = {f.name for f in fields(config)} - set(config.identity_fields())
    return {k: v for k, v in values.items() if k not in ignored}


def _differing_keys(previous, current: dict) -> str:
    if not isinstance(previous, dict):
        return "the whole file"
    keys = sorted(k for k in set(previous) | set(current) if previous.get(k, "<absent>") != current.get(k, "<absent>"))
    return ", ".join(keys) or "nothing visible"


def run_directory_for(experiment: Experiment, config, profile: str, out_root: Path) -> Path:
    return paths.run_directory(out_root, experiment.name, profile, config.identity_hash())


def config_record(experiment: Experiment, config, profile: str, device: torch.device) -> dict:
    """What config.json holds: the resolved config plus the versions and device it ran with (and, for your own
    dataset, what it is and its sha256: `user_datasets`, as in summary.json)."""
    seeds = getattr(config, "seeds", None)
    record = {
        "experiment": experiment.name,
        "profile": profile,
        "config_hash": config.identity_hash(),
        "config": config.to_dict(),
        "seeds": list(seeds) if seeds is not None else [config.seed],
        "dlprobe_version": __version__,
        "torch_version": torch.__version__,
        "device": str(device),
        # float rounding (and so the numbers) can differ with the thread count; same threads, same numbers
        "torch_threads": torch.get_num_threads(),
        **user_dataset_records(config),
    }
    if getattr(config, "model", ()):  # the user's model files as they were: path and content hash
        from ..models.user import model_digest, model_source, parse_model_spec

        specs = [parse_model_spec(text) for text in config.model]
        record["user_models"] = [{"model": spec.text, "file": str(model_source(spec)), "sha256": model_digest(spec)} for spec in specs]
    return record


def run_experiment(
    experiment: Experiment,
    config,
    profile: str,
    out_root: Path,
    fresh: bool = False,
    data_dir: Path | None = None,
    quiet: bool = False,
    executor=None,
) -> Path:
    """Run (or resume, or skip) one experiment; returns its run directory. `executor` runs the experiment's
    trials (executors.py; default: a LocalExecutor, in this process)."""
    executor = executor or LocalExecutor()
    device, trial_device = executor.devices(config.device)
    check_before_running(config, data_dir)
    root = run_directory_for(experiment, config, profile, out_root)
    run_dir = RunDir(root, config.identity_hash())
    try:
        if fresh and root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create run directory {root}: {error.strerror}; choose another --out") from None
    with run_dir.lock():
        return _run_locked(experiment, config, profile, run_dir, data_dir, quiet, device, trial_device, executor)


def _run_locked(experiment, config, profile, run_dir, data_dir, quiet, device, trial_device, executor) -> Path:
    root = run_dir.root
    run_dir.remove_stale_temp_files()  # left by a killed run; never read, now deleted (we hold the lock)
    record = config_record(experiment, config, profile, trial_device)  # the device the trials compute on
    config_path = root / paths.CONFIG
    previous = run_dir.read_json(paths.CONFIG) if config_path.exists() else None
    before = _identity_view(previous.get("config") if isinstance(previous, dict) else None, config)
    now = _identity_view(record["config"], config)
    if previous is not None and before != now:
        # The directory name hashes the settings that differ from the defaults, so a run made by another
        # dlprobe version (a new field, a changed default) can sit under the same name: never reuse it.
        differing = _differing_keys(before, now)
        raise RunDirError(f"{config_path} belongs to another configuration (differs in: {differing}; made by another "
                          "dlprobe version?); rerun with --fresh or choose another --out")
    if run_dir.is_done():
        if not quiet:
            print(f"{experiment.name}: already done in {root} (use --fresh to rerun)", file=sys.stderr)
        return root
    if previous is not None:
        if not quiet:
            print(f"{experiment.name}: resuming the unfinished run in {root}", file=sys.stderr)
    run_dir.write_json(paths.CONFIG, record)
    context = RunContext(run_dir=run_dir, device=device, profile=profile, data_dir=data_dir, quiet=quiet,
                         executor=executor, trial_device=trial_device)
    context.say(f"{experiment.name} ({profile}) -> {root}")
    started = time.time()
    # Saturated tanh units and tiny late-training gradients produce subnormal floats, which run 10-60x
    # slower on x86 CPUs (measured: 30 s vs 3.5 s for a 300-epoch ensemble); flushing them to zero changes
    # nothing measurable. The setting is process-wide, so it is put back (to torch's default) afterwards.
    torch.set_flush_denormal(True)
    try:
        summary = experiment.run(config, context)
        summary.update(user_dataset_records(config))
    finally:
        torch.set_flush_denormal(False)
    wall_time = time.time() - started
    if context.layer_tables:  # every model the run trained, described (models/describe.py)
        summary = {**summary, "layer_tables": context.layer_tables}
    run_dir.write_text(paths.METRICS, context.log.to_csv())
    run_dir.write_json(paths.SUMMARY, summary)
    run_dir.write_json(
        paths.RUN_INFO,
        {
            "wall_time_s": round(wall_time, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": socket.gethostname(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "executor": executor.describe(),
        },
    )
    failed = root / paths.FAILED_TRIALS
    if failed.exists():  # left by an earlier invocation whose failed trials have now run
        failed.unlink()
    run_dir.mark_done()
    context.say(f"{experiment.name}: done in {wall_time:.1f} s")
    return root
