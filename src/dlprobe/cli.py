"""The `dlprobe` command.

    dlprobe list                                   experiments, one line each
    dlprobe run fit-function --profile smoke       one experiment (skips if done, resumes if interrupted)
    dlprobe run all --profile quick                every experiment, then the report
    dlprobe run all --executor ray --ray-address auto   the trials as tasks on a Ray cluster
    dlprobe run fit-function --help                the experiment's own options (every config field)
    dlprobe report [RUN_DIR ...] --out report/     the HTML + Markdown report from run directories
    dlprobe data list | dlprobe data fetch NAME    datasets: where they are, how to get them
    dlprobe inspect --model FILE.py:FUNCTION --checkpoint CKPT --dataset NAME|PATH   one trained model: HTML card + JSON

User mistakes print one line `dlprobe: error: ...` and exit with code 2. This module parses and dispatches;
config_resolution.py turns the options into configs, experiments/runner.py runs them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__, paths
from .config import PROFILES, field_help, load_config_file
from .config_resolution import COMMON_OPTIONS, RunRequest, common_option_fields, resolve_configs
from .errors import ConfigError, DlprobeError
from .interrupts import interrupts_deferred

EXECUTORS = ("local", "ray")
# the common options' metavar and help (with `run NAME`, the help of the field each one sets instead)
COMMON_HELP = {
    "dataset": ("NAME|PATH", "image dataset (repeatable where the experiment takes several): mnist, fashion-mnist, cifar10, mnist-5k, digits, "
                "or the PATH of your own: a folder train/<class>/*.png|jpg + test/<class>/..., or an .npz with x_train, y_train, x_test, y_test"),
    "function": ("NAME|EXPR", "target function: a registered name (see `dlprobe data list`) or an expression in x, e.g. 'exp(-x**2)*sin(8*x)' (repeatable)"),
    "train_size": ("N", "use a deterministic subset of N training images"),
    "seed": ("S", "base random seed"),
    "seeds": ("N|LIST", "number of seeds (S, S+1, ...) or an explicit list like 0,1,2"),
    "device": ("auto|cpu|cuda", "auto uses CUDA when present (default: auto)"),
    "model": ("FILE.py:FUNCTION", "your own model: a factory in your file (or package.module:FUNCTION), repeatable where an "
              "experiment compares models; the file is your own code and runs in this process, as a pytest conftest.py does "
              "(see `dlprobe run NAME --help` for the arguments it gets)"),
}
# how a common option is given, where its field's help does not say it
COMMON_SYNTAX = {"datasets": "repeatable", "functions": "repeatable; an expression may hold commas",
                 "seeds": "a count N gives S, S+1, ..., or a list like 0,1,2"}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2."""

    def error(self, message):
        print(f"dlprobe: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _add_run_options(parser: argparse.ArgumentParser, config_class=None) -> None:
    """The options of `run`; with config_class (`run NAME`), the common options NAME lacks are hidden from
    --help (still parsed, so that using one says which experiment has no such setting)."""
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="smoke: seconds (tests); quick: minutes on a 2-core CPU (demo); full: the assignment's scale (default: quick)")
    applicable = common_option_fields(config_class) if config_class is not None else {}
    rows = {row[0]: row for row in field_help(config_class)} if config_class is not None else {}
    for option in COMMON_OPTIONS:
        metavar, help_text = COMMON_HELP[option]
        if config_class is not None:
            target = applicable.get(option)
            help_text = argparse.SUPPRESS if target is None else _field_option_help(rows[target], COMMON_SYNTAX.get(target))
        repeatable = {"action": "append"} if option in ("dataset", "function", "model") else {}
        parser.add_argument(f"--{option.replace('_', '-')}", metavar=metavar, help=help_text, **repeatable)
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where dataset files are looked for first (then $DLPROBE_DATA, then standard places)")
    parser.add_argument("--out", type=Path, default=paths.DEFAULT_RUNS_ROOT, metavar="DIR", help="root of the run directories (default: runs/)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML or JSON file of config values (tables named after experiments apply to that experiment only)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="resume an unfinished run, skip a finished one (the default)")
    group.add_argument("--fresh", action="store_true", help="delete the run directory and start over")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config field (repeatable), e.g. --set epochs=100")
    parser.add_argument("--report-dir", type=Path, default=paths.DEFAULT_REPORT_DIR, metavar="DIR", help="where `run all` writes the report (default: report/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or status lines")
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="CPU threads for torch (default: 1; these experiments run many small kernels, where a second thread adds synchronisation, and on a busy 2-core machine costs up to 10x: measured 137 s vs 8 s for grad-norm quick)")
    ray = parser.add_argument_group("where trials run (run options: they do not change the run directory)")
    ray.add_argument("--executor", choices=EXECUTORS, default="local", help="local: in this process, one trial after another (default); ray: every unfinished trial (seed, width, batch size, ...) is a Ray task; finished ones are saved in the run directory as they arrive (pip install 'dlprobe[ray]')")
    ray.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to use: auto (the one started on this machine with `ray start`), HOST:PORT or ray://HOST:PORT (default: $RAY_ADDRESS, else a cluster started on this machine, else a new local Ray instance on all cores)")
    ray.add_argument("--ray-cpus-per-trial", type=int, metavar="N", help="CPUs Ray reserves for each trial (default: 1; torch in the worker uses --threads threads)")
    ray.add_argument("--ray-gpus-per-trial", type=float, metavar="X", help="GPUs for each trial, fractions allowed (default: 0); > 0 makes the trials compute on CUDA in the workers even if this machine has no GPU")
    ray.add_argument("--ray-max-retries", type=int, metavar="N", help="reruns of a trial whose worker died or that raised an error (default: 2); one that still fails is written to failed_trials.json and the run stops after the others finish")


def _field_option_help(field_row, syntax: str | None = None) -> str:
    """'<field help> (<syntax>; one of: a, b; default: X)' for --help; % escaped for argparse."""
    _, _, help_text, default, choices = field_row
    notes = [syntax] if syntax else []
    notes += [f"one of: {', '.join(map(str, choices))}"] if choices else []
    notes.append(f"default: {default}")
    return f"{help_text} ({'; '.join(notes)})".replace("%", "%%")


def _add_field_options(parser: argparse.ArgumentParser, config_class) -> None:
    group = parser.add_argument_group("experiment options (every config field; defaults shown are before the profile)")
    taken = {name for names in COMMON_OPTIONS.values() for name in names}
    for row in field_help(config_class):
        name, type_text = row[0], row[1]
        if name not in taken:
            group.add_argument(f"--{name.replace('_', '-')}", dest=f"field__{name}", metavar=type_text.upper().replace(" ", ""),
                               help=_field_option_help(row))


def build_parser(experiment=None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dlprobe", description="The deep-learning-theory experiment suite: run experiments, draw figures, write the report.")
    parser.add_argument("--version", action="version", version=f"dlprobe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    commands.add_parser("list", help="list the experiments")
    run = commands.add_parser("run", help="run one experiment or all of them", description="Run an experiment (or `all`). Re-running the same command skips a finished run and resumes an unfinished one.")
    run.add_argument("experiment", metavar="NAME|all", help="experiment name (see `dlprobe list`) or all")
    _add_run_options(run, experiment.config_class if experiment is not None else None)
    if experiment is not None:
        _add_field_options(run, experiment.config_class)
    report = commands.add_parser("report", help="build the report from run directories")
    report.add_argument("run_dirs", nargs="*", type=Path, help="run directories (default: every finished run under --runs)")
    report.add_argument("--runs", type=Path, default=paths.DEFAULT_RUNS_ROOT, help="root of the run directories (default: runs/)")
    report.add_argument("--out", type=Path, default=paths.DEFAULT_REPORT_DIR, help="output directory (default: report/)")
    data = commands.add_parser("data", help="datasets: list what is available, fetch what is missing")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=OneLineParser)
    data_list = data_commands.add_parser("list", help="datasets and target functions, and where each dataset was found")
    data_list.add_argument("--data-dir", type=Path)
    fetch = data_commands.add_parser("fetch", help="download a dataset from its usual mirrors and verify checksums")
    fetch.add_argument("name")
    fetch.add_argument("--data-dir", type=Path, help="destination (default: $DLPROBE_DATA, else ~/.cache/dlprobe/NAME, where runs look)")
    from .inspection.command import DESCRIPTION, add_arguments

    add_arguments(commands.add_parser("inspect", help="measure one trained model: an HTML card + inspect.json", description=DESCRIPTION))
    return parser


def command_run(args) -> int:
    from .experiments import all_experiments, get_experiment
    from .experiments.runner import check_before_running, run_experiment

    experiments = all_experiments() if args.experiment == "all" else [get_experiment(args.experiment)]
    request = RunRequest(profile=args.profile, file_data=load_config_file(args.config) if args.config else {},
                         options={option: getattr(args, option) for option in COMMON_OPTIONS},
                         field_values={k[len("field__"):]: v for k, v in vars(args).items() if k.startswith("field__") and v is not None},
                         set_items=args.set)
    configs = list(zip(experiments, resolve_configs(experiments, request, {e.name for e in all_experiments()})))
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    for experiment, config in configs:  # data and experiment checks for all, before the first one runs
        check_before_running(config, args.data_dir)
    if args.experiment == "all":
        from .report import check_report_dir

        check_report_dir(args.report_dir)
    ray_options = {"address": args.ray_address, "cpus_per_trial": args.ray_cpus_per_trial,
                   "gpus_per_trial": args.ray_gpus_per_trial, "max_retries": args.ray_max_retries}
    # one executor (one Ray connection) for every experiment; a --ray-* option without --executor ray is a mistake
    executor = make_executor(args.executor, quiet=args.quiet, **{k: v for k, v in ray_options.items() if v is not None})
    run_dirs = []
    try:
        for experiment, config in configs:  # every config is valid before anything runs
            run_dirs.append(run_experiment(experiment, config, args.profile, args.out, fresh=args.fresh, data_dir=args.data_dir,
                                           quiet=args.quiet, executor=executor))
    finally:
        executor.close()
    if args.experiment == "all":
        from .report import build_report

        print(f"report: {build_report(run_dirs, args.report_dir).resolve()}")
    else:
        print(f"run directory: {run_dirs[0].resolve()}")
    return 0


def make_executor(name: str = "local", quiet: bool = False, **ray_options):
    """'local' or 'ray' (executors.py, ray_executor.py); ray_options (address, cpus_per_trial, gpus_per_trial,
    max_retries) only for 'ray'. Ray's module is imported only when asked for."""
    from .executors import LocalExecutor

    if name == "local":
        if ray_options:
            raise ConfigError(f"--ray-{next(iter(ray_options)).replace('_', '-')} only applies with --executor ray")
        return LocalExecutor()
    if name != "ray":
        raise ConfigError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    from .ray_executor import RayExecutor

    return RayExecutor(**ray_options, quiet=quiet)


def command_report(args) -> int:
    from .report import build_report, find_run_dirs

    run_dirs = list(args.run_dirs) or find_run_dirs(args.runs)
    path = build_report(run_dirs, args.out)
    print(f"report: {path.resolve()}")
    return 0


def command_list(args) -> int:
    from .experiments import all_experiments

    for experiment in all_experiments():
        print(f"{experiment.name:16s} [{experiment.section}] {experiment.description}")
    return 0


def command_data(args) -> int:
    from .data.functions import available_functions
    from .data.registry import list_datasets

    if args.data_command == "list":
        print("image datasets:")
        for row in list_datasets(args.data_dir):
            state = "available" if row["available"] else "missing  "
            print(f"  {row['name']:14s} {state} {row['location']}{('  (' + row['note'] + ')') if row.get('note') else ''}")
        print("target functions (or any expression in x):")
        for target in available_functions():
            print(f"  {target.name:14s} {target.formula} on [{target.domain[0]:g}, {target.domain[1]:g}]")
        return 0
    from .data.fetch import describe_fetch, fetch_dataset
    from .data.registry import download_folder

    print(describe_fetch(args.name))
    for path in fetch_dataset(args.name, download_folder(args.name, args.data_dir)):
        print(path)
    return 0


def command_inspect(args) -> int:
    from .inspection.command import command_inspect as inspect_command

    return inspect_command(args)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    experiment = None
    try:
        with interrupts_deferred():  # the experiments import torch, numpy, scipy, matplotlib: see interrupts.py
            if argv[:1] in (["run"], ["list"], ["report"]) and "--help" not in argv and "-h" not in argv:
                from .experiments import all_experiments

                all_experiments()
            if len(argv) >= 2 and argv[0] == "run" and not argv[1].startswith("-") and argv[1] != "all":
                from .experiments import get_experiment

                experiment = get_experiment(argv[1])
        args = build_parser(experiment).parse_args(argv)
        handler = {"run": command_run, "report": command_report, "list": command_list, "data": command_data,
                   "inspect": command_inspect}[args.command]
        return handler(args)
    except DlprobeError as error:
        print(f"dlprobe: error: {' '.join(str(error).split())}", file=sys.stderr)  # always one line
        return 2
    except KeyboardInterrupt:
        print("\ndlprobe: interrupted; run the same command again to resume where it stopped", file=sys.stderr)
        return 130


def run_as_command() -> None:
    """The `dlprobe` command (console script and `python -m dlprobe`): `main`, then exit with its code.

    After an interrupt the exit code must be 130 whatever the interrupted code was doing. CPython (3.11, 3.12)
    raises a process-wide flag when a KeyboardInterrupt ends code run from a string by `exec`/`eval` (which
    libraries do, e.g. `dataclasses`, `collections.namedtuple`), even when a caller catches it, and under
    `python -m` it then kills itself with SIGINT at exit instead of returning our code. Every string `exec`
    clears that flag first, so one harmless `exec` here makes the 130 stick."""
    code = main()
    if code == 130:
        exec("pass")  # clears CPython's "unhandled KeyboardInterrupt" flag; see the docstring
    sys.exit(code)


if __name__ == "__main__":
    run_as_command()
