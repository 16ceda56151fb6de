"""Same config and seed -> byte-identical results on CPU, for every experiment; another seed -> other results.

Each experiment runs in its smoke profile, in-process, into two fresh --out directories; summary.json,
metrics.csv and config.json must be equal byte for byte. Running both in one process is the stricter
check: library code that drew from torch's or numpy's global generator would see a different state in
the second run. Determinism holds for a fixed --threads (the default, 1): intra-op parallel reductions
sum in another order with more threads, and results may differ in the last bits (seen with fit-task).
"""

import json
from pathlib import Path

import pytest
import torch

from dlprobe.cli import main
from dlprobe.experiments import all_experiments

EXPERIMENTS = [experiment.name for experiment in all_experiments()]
SLOWEST = {"fit-task", "random-labels", "sensitivity", "param-count"}  # 3-5 s per smoke run on a busy 2-core machine
_runs: dict[tuple, dict[str, bytes]] = {}


def smoke_run(root: Path, name: str, *extra: str) -> dict[str, bytes]:
    """Run `name` in the smoke profile under `root`; the bytes of its result files."""
    assert main(["run", name, "--profile", "smoke", "--out", str(root), "--quiet", *extra]) == 0
    (done,) = list(root.rglob("DONE"))
    return {file: (done.parent / file).read_bytes() for file in ("summary.json", "metrics.csv", "config.json")}


def baseline(tmp_path_factory, name: str) -> dict[str, bytes]:
    """The first default-seed run of `name`, shared by the tests below (each smoke run costs seconds)."""
    if (name,) not in _runs:
        _runs[(name,)] = smoke_run(tmp_path_factory.mktemp("first"), name)
    return _runs[(name,)]


def _params(slow: set[str]):
    return [pytest.param(name, marks=[pytest.mark.slow] if name in slow else [], id=name) for name in EXPERIMENTS]


@pytest.mark.parametrize("name", _params(SLOWEST))
def test_same_seed_gives_identical_files(tmp_path_factory, tmp_path, name):
    first = baseline(tmp_path_factory, name)
    second = smoke_run(tmp_path, name)
    for file in ("summary.json", "metrics.csv", "config.json"):
        assert first[file] == second[file], f"{name}: {file} differs between two runs with the same config and seed"
    summary = json.loads(first["summary.json"])
    assert summary and isinstance(summary, dict)
    assert first["metrics.csv"].startswith(b"run,step,name,value") and first["metrics.csv"].count(b"\n") > 1


@pytest.mark.slow
@pytest.mark.parametrize("name", _params(set()))
def test_another_seed_gives_another_summary(tmp_path_factory, tmp_path, name):
    first = baseline(tmp_path_factory, name)
    other = smoke_run(tmp_path, name, "--seed", "1")
    assert json.loads(other["config.json"])["config"]["seed"] == 1
    assert other["summary.json"] != first["summary.json"], f"{name}: --seed 1 gives the same summary as seed 0"


def test_seeds_list_changes_the_summary_and_is_recorded(tmp_path_factory, tmp_path):
    """For an experiment with a seeds list, --seeds does reach the training (the working path)."""
    first = baseline(tmp_path_factory, "fit-function")
    other = smoke_run(tmp_path, "fit-function", "--seed", "5", "--seeds", "2")
    assert json.loads(other["config.json"])["seeds"] == [5, 6]
    assert json.loads(other["summary.json"])["seeds"] == [5, 6]
    assert other["summary.json"] != first["summary.json"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks CUDA on this machine")
def test_explicit_cpu_device_gives_the_same_summary_as_auto(tmp_path_factory, tmp_path):
    """--device cpu and the default (auto, on a CPU-only machine) give the same bytes; the device is recorded."""
    first = baseline(tmp_path_factory, "fit-function")
    explicit = smoke_run(tmp_path, "fit-function", "--device", "cpu")
    assert explicit["summary.json"] == first["summary.json"]
    assert json.loads(explicit["config.json"])["device"] == "cpu"
