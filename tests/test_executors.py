"""The Ray executor, for real: a 2-CPU Ray instance started here, the same bytes as the local executor,
a worker SIGKILLed mid-trial, trials that keep failing, and resumption that does not resubmit finished trials.

One local Ray instance (ray.init, 2 CPUs, no dashboard) serves the whole module and is shut down at the end;
the in-process runs reuse it, and the subprocess run connects to it by address like a user's driver would.
Skipped, with the reason, only where Ray is not installed.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dlprobe[ray]'); the Ray executor cannot be tested")

import dlprobe  # noqa: E402
from dlprobe.cli import main  # noqa: E402
from dlprobe.config import ExperimentConfig, param  # noqa: E402
from dlprobe.errors import ConfigError, DlprobeError  # noqa: E402
from dlprobe.executors import TrialsFailedError  # noqa: E402
from dlprobe.experiments.base import Experiment  # noqa: E402
from dlprobe.experiments.runner import run_experiment  # noqa: E402
from dlprobe.ray_executor import RayExecutor  # noqa: E402
from dlprobe.store import RunDir, load_checkpoint  # noqa: E402
from smoke import run_smoke  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    """A fresh local Ray instance with 2 CPUs; yields its address. The trial functions below live in this test
    module, which workers cannot import, so Ray pickles them by value."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"py_modules": [dlprobe]})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()


def assert_same_results(first, second):
    """Trial results (nested dicts/lists of tensors and numbers) equal, tensors bit for bit."""
    assert type(first) is type(second)
    if isinstance(first, torch.Tensor):
        assert first.dtype == second.dtype and torch.equal(first, second)
    elif isinstance(first, dict):
        assert first.keys() == second.keys()
        for key in first:
            assert_same_results(first[key], second[key])
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second)
        for a, b in zip(first, second):
            assert_same_results(a, b)
    else:
        assert first == second or (first != first and second != second)  # NaN == NaN here


def test_ray_gives_the_same_bytes_as_local_and_resumes_without_resubmitting(cluster, tmp_path):
    local = run_smoke("param-count", tmp_path / "local")
    remote = run_smoke("param-count", tmp_path / "ray", "--executor", "ray", "--ray-max-retries", "1")
    assert local.name == remote.name  # executor options are run options: same config hash, same directory
    for file in ("summary.json", "metrics.csv"):
        assert (local / file).read_bytes() == (remote / file).read_bytes(), file
    trials = sorted(p.name for p in (local / "trials").glob("*.pt"))
    assert len(trials) == 10 and trials == sorted(p.name for p in (remote / "trials").glob("*.pt"))
    for name in trials:
        assert_same_results(load_checkpoint(local / "trials" / name), load_checkpoint(remote / "trials" / name))
    info = json.loads((remote / "run_info.json").read_text())
    assert info["executor"]["name"] == "ray" and info["executor"]["max_retries"] == 1
    assert json.loads((remote / "config.json").read_text())["device"] == "cpu"

    # An interrupted driver: three trials missing, no summary. The rerun computes only those three.
    for file in ("DONE", "summary.json", "metrics.csv", "trials/width4.pt", "trials/width52.pt", "trials/width400.pt"):
        (remote / file).unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in (remote / "trials").glob("*.pt")}
    run_smoke("param-count", tmp_path / "ray", "--executor", "ray")
    assert {p.name: p.stat().st_mtime_ns for p in (remote / "trials").glob("*.pt") if p.name in kept} == kept  # not rewritten
    assert sorted(p.name for p in (remote / "trials").glob("*.pt")) == trials
    for file in ("summary.json", "metrics.csv"):
        assert (local / file).read_bytes() == (remote / file).read_bytes(), file


# --- trials that fail: a tiny experiment whose trial functions record every attempt in a directory ---

def _attempt(log_dir: str, index: int, trial) -> dict:
    """Trial `index`: 1 raises ValueError and 3 raises ConfigError until log_dir/fixed exists."""
    Path(log_dir, f"t{index}.{uuid.uuid4().hex}").touch()
    if not Path(log_dir, "fixed").exists():
        if index == 1:
            raise ValueError("trial 1 is broken")
        if index == 3:
            raise ConfigError("trial 3 has a bad setting")
    return {"index": index, "square": torch.tensor([index**2], dtype=torch.float64), "device": str(trial.device)}


def attempts(log_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in log_dir.glob("t*.*"):
        key = path.name.split(".")[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(frozen=True)
class FlakyConfig(ExperimentConfig):
    log_dir: str = param("", "where attempts are recorded")
    num_trials: int = param(4, "trials", minimum=1)


def _run_flaky(config, ctx) -> dict:
    trials = [(f"t{i}", partial(_attempt, config.log_dir, i)) for i in range(config.num_trials)]
    results = ctx.map_trials(trials, "flaky")
    ctx.log.add("all", 0, "sum", float(sum(r["square"].item() for r in results)))
    return {"indices": [r["index"] for r in results], "devices": sorted({r["device"] for r in results})}


FLAKY = Experiment(name="flaky", section="0", title="flaky", description="trials that fail until fixed",
                   config_class=FlakyConfig, profiles={}, run=_run_flaky)


def test_failed_trials_are_recorded_the_others_saved_and_a_rerun_retries_only_them(cluster, tmp_path):
    log_dir = tmp_path / "attempts"
    log_dir.mkdir()
    config = FlakyConfig(log_dir=str(log_dir))
    with pytest.raises(TrialsFailedError) as caught:
        run_experiment(FLAKY, config, "smoke", tmp_path / "runs", quiet=True, executor=RayExecutor(max_retries=1, quiet=True))
    message = str(caught.value)
    assert isinstance(caught.value, DlprobeError) and "\n" not in message
    assert message.startswith("2 of 4 trials failed (t1, t3; first error: ValueError: trial 1 is broken)")
    assert message.endswith("rerun the same command to retry them")
    (root,) = (tmp_path / "runs" / "flaky").iterdir()
    assert not (root / "DONE").exists() and not (root / "summary.json").exists()
    assert sorted(p.name for p in (root / "trials").iterdir()) == ["t0.pt", "t2.pt"]  # the others are kept
    record = json.loads((root / "failed_trials.json").read_text())
    assert [(f["key"], f["attempts"]) for f in record["failed"]] == [("t1", 2), ("t3", 1)]
    assert record["failed"][1]["error"] == "ConfigError: trial 3 has a bad setting"
    # max_retries=1: a raised error is tried twice; a DlprobeError (a user mistake) once, it would fail again
    assert attempts(log_dir) == {"t0": 1, "t1": 2, "t2": 1, "t3": 1}

    (log_dir / "fixed").touch()
    assert run_experiment(FLAKY, config, "smoke", tmp_path / "runs", quiet=True, executor=RayExecutor(quiet=True)) == root
    assert (root / "DONE").exists() and not (root / "failed_trials.json").exists()
    assert attempts(log_dir) == {"t0": 1, "t1": 3, "t2": 1, "t3": 2}  # only the failed ones ran again
    assert json.loads((root / "summary.json").read_text()) == {"indices": [0, 1, 2, 3], "devices": ["cpu"]}


def test_a_worker_killed_mid_trial_is_replaced_and_the_numbers_match_local(cluster, tmp_path):
    # 80 epochs make each of the two trials last seconds, so the worker found busy is killed well before it ends.
    options = ["--set", "epochs=80"]
    local = run_smoke("random-labels", tmp_path / "local", *options)
    command = [sys.executable, "-m", "dlprobe", "run", "random-labels", "--profile", "smoke", "--out", str(tmp_path / "ray"),
               "--executor", "ray", "--ray-address", cluster, *options]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed, rerun = None, None  # (pid, title) of the worker killed, and of the one that reran its trial
    try:
        deadline = time.time() + 120
        while rerun is None and process.poll() is None and time.time() < deadline:
            for pid, title in busy_workers():
                if killed is None:
                    os.kill(pid, signal.SIGKILL)  # the first worker seen busy, just after its trial started
                    killed = (pid, title)
                elif title == killed[1] and pid != killed[0]:
                    rerun = (pid, title)
            time.sleep(0.05)
        _, err = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    assert killed is not None, "never saw a Ray worker running a dlprobe trial"
    assert rerun is not None, f"trial {killed[1]} was not run again after its worker was killed"
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    (remote,) = [done.parent for done in (tmp_path / "ray").rglob("DONE")]
    for file in ("summary.json", "metrics.csv"):
        assert (local / file).read_bytes() == (remote / file).read_bytes(), file


def busy_workers():
    """(pid, title) of Ray workers of this user running a dlprobe trial (title 'ray::dlprobe:<key>')."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::dlprobe:"):
            yield int(entry.name), title.decode()


@pytest.mark.parametrize("argv, fragment", [
    (["--ray-max-retries", "3"], "--ray-max-retries only applies with --executor ray"),
    (["--executor", "ray", "--ray-cpus-per-trial", "0"], "--ray-cpus-per-trial must be >= 1"),
    (["--executor", "ray", "--ray-gpus-per-trial", "-1"], "--ray-gpus-per-trial must be >= 0"),
    (["--executor", "ray", "--ray-max-retries", "-1"], "--ray-max-retries must be >= 0"),
    (["--executor", "ray", "--device", "cuda"], "needs --ray-gpus-per-trial > 0"),
    (["--executor", "ray", "--ray-gpus-per-trial", "1", "--device", "cpu"], "contradicts"),
])
def test_executor_option_mistakes_are_one_line_errors(capsys, tmp_path, argv, fragment):
    assert main(["run", "param-count", "--profile", "smoke", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_ray_is_a_one_line_error_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'dlprobe\[ray\]'"):
        RayExecutor()


def test_an_address_nobody_listens_on_fails_at_once():
    with pytest.raises(ConfigError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1: .*ray start --head"):
        RayExecutor(address="127.0.0.1:1")._check_reachable()


def test_trials_on_disk_are_loaded_not_submitted(cluster, tmp_path):
    log_dir = tmp_path / "attempts"
    log_dir.mkdir()
    run_dir = RunDir(tmp_path / "run", "cafe0123")
    saved = run_dir.trial("t0", lambda: {"index": 0, "square": torch.tensor([0.0], dtype=torch.float64), "device": "disk"})
    trials = [(f"t{i}", partial(_attempt, str(log_dir), i)) for i in (0, 2)]
    results = RayExecutor(quiet=True).run_trials(run_dir, trials, torch.device("cpu"), None, [1, 1])
    assert_same_results(results[0], saved)
    assert results[1]["index"] == 2 and results[1]["device"] == "cpu"
    assert attempts(log_dir) == {"t2": 1}


def test_an_argument_shared_by_trials_goes_to_the_object_store_once(cluster, tmp_path, monkeypatch):
    log_dir = tmp_path / "attempts"
    log_dir.mkdir()
    (log_dir / "fixed").touch()
    data = torch.arange(100_000, dtype=torch.float64)  # shared by every trial, like a dataset
    put = []
    monkeypatch.setattr(ray, "put", lambda value, _put=ray.put, **options: put.append(value) or _put(value, **options))
    log_name = str(log_dir)  # one object, shared by the trials too
    trials = [(f"t{i}", partial(_sum_with, data, log_name, i)) for i in range(3)]
    results = RayExecutor(quiet=True).run_trials(RunDir(tmp_path / "run", "cafe0123"), trials, torch.device("cpu"), None, [1] * 3)
    assert [r["index"] for r in results] == [0, 1, 2] and all(r["total"] == data.sum().item() for r in results)
    assert [id(value) for value in put] == [id(data), id(log_name)]  # each once, not once per trial


def _sum_with(data, log_dir, index, trial):
    return {**_attempt(log_dir, index, trial), "total": data.sum().item()}
