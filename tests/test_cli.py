"""The command line: listing, one-line errors with exit code 2, run/skip/fresh, config files, --set."""

import json

import pytest

from dlprobe.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_experiments(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "fit-function" in out and "[1-1]" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "nope"], "unknown experiment 'nope'"),
        (["run", "fit-function", "--profile", "huge"], "invalid choice"),
        (["run", "fit-function", "--budget", "-5"], "budget must be >= 8"),
        (["run", "fit-function", "--budget", "many"], "expected int"),
        (["run", "fit-function", "--function", "__import__('os')"], "expression"),
        (["run", "fit-function", "--function", "sincc"], "registered"),
        (["run", "fit-function", "--seeds", "0"], "--seeds count must be >= 1"),
        (["run", "fit-function", "--seeds", "x"], "--seeds expects"),
        (["run", "fit-function", "--set", "nokey=1"], "no such config field"),
        (["run", "fit-function", "--set", "epochs"], "KEY=VALUE"),
        (["run", "fit-function", "--device", "tpu"], "unknown device"),
        (["run", "fit-function", "--depths", "1,100"], "depths must be <= 64"),
        (["run", "fit-function", "--config", "/nonexistent.toml"], "cannot read config file"),
        (["run", "fit-function", "--bogus-flag"], "unrecognized arguments"),
        (["run", "error-surface", "--seeds", "3"], "--seeds: error-surface has no such setting"),
        (["run", "fit-function", "--dataset", "cifar10"], "--dataset: fit-function has no such setting"),
        (["run", "critical-points", "--train-size", "5"], "--train-size: critical-points has no such setting"),
        (["run", "fit-task", "--profile", "smoke", "--dataset", "digits"], "test_size=500 (from the profile or your options) is more than the 360"),
        (["run", "random-labels", "--train-size", "999999"], "train_size=999999"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_mistakes_are_one_line_errors(capsys, tmp_path, argv, fragment):
    try:
        code = main(argv + ["--out", str(tmp_path)] if argv[0] == "run" else argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # refused before any run directory was made


def test_config_file_unknown_key_and_table(capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[fit-function]\nbudgett = 3\n")
    code, _, err = run_cli(capsys, "run", "fit-function", "--profile", "smoke", "--config", str(config), "--out", str(tmp_path))
    assert code == 2 and "unknown config file key 'budgett'" in err
    config.write_text("[not-an-experiment]\nx = 1\n")
    code, _, err = run_cli(capsys, "run", "fit-function", "--profile", "smoke", "--config", str(config), "--out", str(tmp_path))
    assert code == 2 and "is not an experiment" in err


def test_run_skip_and_fresh(capsys, tmp_path):
    argv = ["run", "fit-function", "--profile", "smoke", "--out", str(tmp_path), "--quiet", "--set", "max_epochs=50", "--seeds", "2"]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    (run_dir,) = [p.parent for p in tmp_path.rglob("DONE")]
    summary = (run_dir / "summary.json").read_text()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["max_epochs"] == 50 and config["seeds"] == [0, 1]
    assert config["torch_version"] and config["dlprobe_version"]
    mtime = (run_dir / "summary.json").stat().st_mtime_ns
    assert run_cli(capsys, *argv)[0] == 0
    assert (run_dir / "summary.json").stat().st_mtime_ns == mtime  # skipped: nothing rewritten
    assert run_cli(capsys, *argv, "--fresh")[0] == 0
    assert (run_dir / "summary.json").read_text() == summary  # same config and seed: same bytes


def test_run_dir_of_another_config_is_refused(capsys, tmp_path):
    argv = ["run", "fit-function", "--profile", "smoke", "--out", str(tmp_path), "--quiet", "--set", "max_epochs=20"]
    assert run_cli(capsys, *argv)[0] == 0
    (run_dir,) = [p.parent for p in tmp_path.rglob("DONE")]
    (run_dir / "DONE").unlink()
    record = json.loads((run_dir / "config.json").read_text())
    record["config"]["max_epochs"] = 999
    (run_dir / "config.json").write_text(json.dumps(record))
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "belongs to another configuration" in err
    (run_dir / "config.json").write_text("{broken")
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "cannot read" in err


def test_finished_run_of_an_older_config_is_not_reused(capsys, tmp_path):
    """A run directory's name hashes only the settings that differ from the defaults, so a run finished by an
    older dlprobe (a field it did not have, or a default since changed) can sit under the same name: refused,
    not skipped. A different --device (marked as not changing the results) still skips."""
    argv = ["run", "fit-function", "--profile", "smoke", "--out", str(tmp_path), "--quiet", "--set", "max_epochs=20"]
    assert run_cli(capsys, *argv)[0] == 0
    (run_dir,) = [p.parent for p in tmp_path.rglob("DONE")]
    assert run_cli(capsys, *argv, "--device", "cpu")[0] == 0
    record = json.loads((run_dir / "config.json").read_text())
    del record["config"]["patience"]  # as if written before the field existed
    (run_dir / "config.json").write_text(json.dumps(record))
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "belongs to another configuration (differs in: patience;" in err, err
    assert (run_dir / "DONE").exists()  # refused, not touched


def test_help_lists_experiment_fields(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "fit-function", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--budget" in out and "--learning-rates" in out and "--profile" in out
    assert "one of: tanh, relu, sigmoid" in " ".join(out.split())  # a field with choices lists them


def run_help(capsys, name: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["run", name, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_lists_only_the_options_the_experiment_accepts(capsys):
    """`run NAME --help` shows the common options NAME has (with its field's help), `run all --help` all of them."""
    out = run_help(capsys, "critical-points")
    assert "--function" in out and "--seed S" in out and "--num-runs" in out
    assert "--seeds" not in out and "--dataset" not in out and "--train-size" not in out
    out = run_help(capsys, "random-labels")
    assert "--seeds N|LIST seeds per noise level" in out and "--dataset" in out and "--function" not in out
    out = run_help(capsys, "all")
    assert all(option in out for option in ("--seeds", "--dataset", "--function", "--train-size", "--seed", "--device"))


def test_data_commands(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "data", "list", "--data-dir", str(tmp_path))
    assert code == 0 and "mnist-5k" in out and "available" in out and "sinc" in out
    code, out, _ = run_cli(capsys, "data", "fetch", "mnist-5k", "--data-dir", str(tmp_path))
    assert code == 0 and "nothing to download" in out
    code, _, err = run_cli(capsys, "data", "fetch", "imagenet", "--data-dir", str(tmp_path))
    assert code == 2 and "unknown dataset" in err and len(err.strip().splitlines()) == 1


def test_interrupt_exits_130_even_when_it_ends_string_exec_code(tmp_path):
    """Under `python -m`, CPython kills itself with SIGINT at exit (code -2) if a KeyboardInterrupt once ended code
    run by a string `exec` -- even a caught one; libraries do that (dataclasses, namedtuple). The command must
    still exit 130 with its one-line hint."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "interrupted_in_exec.py").write_text(
        "import dlprobe.cli as cli\n"
        "def interrupted(args):\n"
        "    exec('raise KeyboardInterrupt', {})\n"
        "cli.command_list = interrupted\n"
        "import sys; sys.argv = ['dlprobe', 'list']\n"
        "cli.run_as_command()\n")
    source = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(source), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert done.stderr.strip().splitlines() == ["dlprobe: interrupted; run the same command again to resume where it stopped"]


def test_run_all_checks_every_dataset_and_the_report_dir_before_anything_runs(capsys, tmp_path):
    """A dataset missing for a later experiment, or a report directory that cannot be written, stops `run all`
    at once: no experiment runs first (the full profile would otherwise train for minutes before failing)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cases = [(["--dataset", "mnist", "--data-dir", str(tmp_path / "no-data")], "mnist not found"),
             (["--report-dir", str(blocker / "report")], "cannot write the report to")]
    for extra, fragment in cases:
        out = tmp_path / "runs"
        code, _, err = run_cli(capsys, "run", "all", "--profile", "smoke", "--out", str(out), "--quiet", *extra)
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_report_to_an_unwritable_place_is_a_one_line_error(capsys, tmp_path):
    assert main(["run", "error-surface", "--profile", "smoke", "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    capsys.readouterr()
    code, _, err = run_cli(capsys, "report", "--runs", str(tmp_path / "runs"), "--out", str(blocker / "report"))
    assert code == 2 and "cannot write the report to" in err and len(err.strip().splitlines()) == 1, err


def test_ctrl_c_during_start_up_exits_130_without_a_traceback(tmp_path):
    """torch takes most of a second to load; an interrupt then is still the one-line hint and exit code 130."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")])}
    for delay in (0.4, 0.8):
        process = subprocess.Popen([sys.executable, "-m", "dlprobe", "run", "fit-function", "--profile", "smoke", "--quiet",
                                    "--out", str(tmp_path / str(delay))], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 130, (delay, process.returncode, err)
        assert "Traceback" not in err and err.strip().splitlines() == [
            "dlprobe: interrupted; run the same command again to resume where it stopped"], err


def test_full_profile_needs_the_assignments_data_and_says_so_before_running(capsys, tmp_path, monkeypatch):
    """`full` is the assignment's scale: MNIST (and CIFAR-10 for fit-task), never a silent switch to mnist-5k."""
    from dlprobe.data.registry import locate
    from dlprobe.errors import DatasetError

    monkeypatch.delenv("DLPROBE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.cache/dlprobe/mnist
    try:
        locate("mnist", None)
        pytest.skip("MNIST files are installed on this machine")
    except DatasetError:
        pass
    for name in ("random-labels", "param-count", "interpolation", "sensitivity", "grad-norm", "all"):
        out = tmp_path / name
        code, _, err = run_cli(capsys, "run", name, "--profile", "full", "--out", str(out), "--quiet")
        assert code == 2 and "mnist not found" in err, (name, err)
        assert not out.exists()


def test_full_offline_config_swaps_only_the_downloadable_datasets():
    """configs/full-offline.toml: full's settings exactly, with mnist-5k wherever full names MNIST or CIFAR-10."""
    from dataclasses import fields
    from pathlib import Path

    from dlprobe.config import build_config, load_config_file
    from dlprobe.config_resolution import file_values
    from dlprobe.experiments import all_experiments

    file_data = load_config_file(Path(__file__).resolve().parents[1] / "configs" / "full-offline.toml")
    names = {e.name for e in all_experiments()}
    for experiment in all_experiments():
        full = build_config(experiment.config_class, experiment.profiles["full"], {}, {}, context="full")
        offline_values = file_values(file_data, experiment.name, names, experiment.config_class)
        offline = build_config(experiment.config_class, experiment.profiles["full"], offline_values, {}, context="offline")
        for field in fields(full):
            before, after = getattr(full, field.name), getattr(offline, field.name)
            if field.name in ("dataset", "datasets") and before:
                wanted = ("mnist-5k",) if field.name == "datasets" else "mnist-5k"
                assert after == wanted if before not in ("mnist-5k", ("mnist-5k",)) else after == before, (experiment.name, field.name)
            else:
                assert after == before, (experiment.name, field.name)


def test_registry_does_not_skip_a_module_that_fails_to_import(monkeypatch):
    """A registered experiment whose module is missing (a packaging mistake) is an error, not a shorter list."""
    import dlprobe.experiments as registry

    monkeypatch.setattr(registry, "MODULES", registry.MODULES + ("no_such_experiment",))
    with pytest.raises(ModuleNotFoundError, match="no_such_experiment"):
        registry.all_experiments()
