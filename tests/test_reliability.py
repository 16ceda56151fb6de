"""Interrupted runs: SIGKILL at many moments, then resume, must end byte-identical to a straight run.

The harness runs `python -m dlprobe run <experiment> --profile smoke --out <dir> --quiet` as a subprocess,
first uninterrupted (the reference, also timing how long start-up and the work take), then in chains:
start, SIGKILL after a pseudo-random delay (fixed seed) spread over the run's duration, check the run
directory, start the same command again, ... until an invocation finishes; the finished directory must
hold the reference's summary.json and metrics.csv byte for byte and the same set of files.

After every kill, nothing in the directory may be half-written: every *.json parses, metrics.csv parses,
every trials/*.pt and checkpoints/*.pt loads with torch.load(weights_only=True), every PNG ends with its
IEND chunk and every SVG with </svg>, and DONE implies summary.json. Temporary files (`.<name>.<random>.tmp`,
left by a kill during an atomic write) are allowed but must never be read: garbage decoys with those names
are planted before each resume, and the resumed run must not notice them. Leftover temp files and stale
checkpoints are counted and printed (run with -s to see the tallies). SIGINT must exit with code 130 and a
one-line message saying how to resume.
"""

import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<random>[A-Za-z0-9_]+)\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")
PNG_END = b"IEND\xaeB`\x82"
# Smoke profiles shrunk where it adds trials or checkpoints rather than work; the reference uses the same options.
EXPERIMENTS = {
    "fit-function": (["--set", "depths=1,2,3", "--set", "max_epochs=300", "--set", "search_epochs=50"], 8),
    "critical-points": (["--set", "num_runs=11", "--set", "train_epochs=100", "--set", "num_samples=50", "--set", "polish_steps=30",
                        "--set", "grad_norm_steps=10", "--set", "newton_steps=5"], 6),  # 2 refine chunks (10 + 1 runs)
    "interpolation": (["--set", "epochs=3", "--set", "train_size=200"], 7),
}
KILL_SEED = 20240601


def command(name: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "dlprobe", "run", name, "--profile", "smoke", "--out", str(out), "--quiet", *EXPERIMENTS[name][0]]


def environment() -> dict[str, str]:
    # The subprocess imports dlprobe from this checkout's src/, whether or not the package is installed.
    paths = [str(ROOT / "src")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def start(name: str, out: Path) -> subprocess.Popen:
    # A new session, so that the kill reaches the whole process group.
    return subprocess.Popen(command(name, out), cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def run_dir_of(out: Path, name: str) -> Path | None:
    found = sorted((out / name).glob("smoke_*")) if (out / name).exists() else []
    assert len(found) <= 1, found
    return found[0] if found else None


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err.decode(errors="replace")


_references: dict[str, dict] = {}


def reference_run(name: str, out: Path) -> dict:
    """An uninterrupted run: its files and timings (seconds to config.json = start-up, and to exit).
    Made once per experiment and shared by the tests of this module."""
    if name not in _references:
        _references[name] = _time_straight_run(name, out)
    return _references[name]


def _time_straight_run(name: str, out: Path) -> dict:
    began = time.monotonic()
    process = start(name, out)
    startup = None
    while process.poll() is None:
        if startup is None and run_dir_of(out, name) is not None and (run_dir_of(out, name) / "config.json").exists():
            startup = time.monotonic() - began
        time.sleep(0.005)
    total = time.monotonic() - began
    code, err = finish(process)
    assert code == 0, err
    run_dir = run_dir_of(out, name)
    return {"dir": run_dir, "startup": startup or total / 2, "total": total, "files": listing(run_dir)[0],
            "summary": (run_dir / "summary.json").read_bytes(), "metrics": (run_dir / "metrics.csv").read_bytes()}


def listing(run_dir: Path) -> tuple[set[str], list[str]]:
    """(relative paths of ordinary files, relative paths of temp files)."""
    files, temps = set(), []
    for path in run_dir.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(run_dir))
            (temps.append(relative) if TEMP_NAME.match(path.name) else files.add(relative))
    return files, temps


def check_intact(run_dir: Path) -> list[str]:
    """Assert every ordinary file in run_dir is complete and loadable; return the temp files found."""
    files, temps = listing(run_dir)
    for relative in sorted(files):
        path = run_dir / relative
        data = path.read_bytes()
        if path.suffix == ".json":
            assert isinstance(json.loads(data), dict), relative
        elif path.suffix == ".pt":
            assert path.parent.name in ("trials", "checkpoints"), relative
            torch.load(path, map_location="cpu", weights_only=True)  # raises on a half-written file
        elif path.name == "metrics.csv":
            rows = list(csv.reader(io.StringIO(data.decode())))
            assert rows[0] == ["run", "step", "name", "value"] and all(len(row) == 4 for row in rows), relative
            for row in rows[1:]:
                float(row[3] or "nan")  # a line cut in the middle of a number fails here
        elif path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(PNG_END), relative
        elif path.suffix == ".svg":
            assert data.rstrip().endswith(b"</svg>"), relative
        elif path.name == "DONE":
            assert data == b"done\n" and {"summary.json", "metrics.csv", "config.json"} <= files
        elif path.name == ".lock":
            assert data == b"", relative  # the flock target: never holds data
        else:
            pytest.fail(f"unexpected file {relative} in {run_dir}")
    return temps


def config_identity(out: Path, name: str):
    """(inode, mtime) of config.json, or None: the runner rewrites it (atomically) once start-up is over."""
    run_dir = run_dir_of(out, name)
    try:
        status = (run_dir / "config.json").stat()
    except (OSError, TypeError):
        return None
    return status.st_ino, status.st_mtime_ns


def kill_after_startup(process, out: Path, name: str, reference: dict, rng: random.Random) -> float:
    """Sleep until the moment to kill `process`; returns it (seconds after launch).

    Most kills land in the work: a fraction u of the straight run's work time after this launch has
    (re)written config.json, so a slow start-up on a busy machine does not push them past the end. Some
    (u < 0) land during start-up itself, a fraction 1 + u of the straight run's start-up time.
    """
    launched, before = time.monotonic(), config_identity(out, name)
    u = rng.uniform(-0.15, 1.0)
    if u < 0:
        time.sleep((1 + u) * reference["startup"])
        return time.monotonic() - launched
    while process.poll() is None and config_identity(out, name) in (before, None):
        time.sleep(0.005)
    time.sleep(u * (reference["total"] - reference["startup"]))
    return time.monotonic() - launched


def plant_decoys(run_dir: Path, reference_files: set[str], tag: str) -> int:
    """Garbage files named like temp files of every file the finished run will have; returns how many.

    If the runner ever read a temp file (instead of the renamed result), the resume would choke on them.
    """
    count = 0
    for relative in reference_files:
        target = run_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        (target.parent / f".{target.name}.decoy{tag}.tmp").write_bytes(b"\x80\x02garbage{not json")
        count += 1
    return count


def stale_checkpoints(run_dir: Path, files: set[str]) -> list[str]:
    """checkpoints/<key>.pt whose trials/<key>.pt exists: a kill between saving the trial and deleting the
    checkpoint leaves one. Harmless (the trial wins) but reported."""
    return [f for f in files if f.startswith("checkpoints/") and f"trials/{Path(f).name}" in files]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_sigkill_at_random_moments_then_resume(tmp_path, name):
    reference = reference_run(name, tmp_path / "reference")
    wanted = EXPERIMENTS[name][1]
    rng = random.Random(f"{KILL_SEED}-{name}")
    kills, launches, chains, decoys, stale = 0, 0, 0, 0, 0
    leftover_temps = []  # per chain: temp files the kills left in the finished directory (decoys excluded)
    moments = []
    while kills < wanted:
        chains += 1
        assert chains <= 3 * wanted, "runs keep finishing before the kill: the delays are too long"
        out = tmp_path / f"chain{chains}"
        while True:
            process = start(name, out)
            launches += 1
            if kills < wanted:
                delay = kill_after_startup(process, out, name, reference, rng)
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:  # it finished first
                    pass
            code, err = finish(process)
            if code == -signal.SIGKILL:
                kills += 1
                moments.append(round(delay, 2))
                run_dir = run_dir_of(out, name)
                if run_dir is not None:
                    check_intact(run_dir)
                    decoys += plant_decoys(run_dir, reference["files"], f"{kills:04d}")
                continue
            assert code == 0, f"resume failed after {kills} kills:\n{err}"
            break
        run_dir = run_dir_of(out, name)
        temps = check_intact(run_dir)
        files, _ = listing(run_dir)
        assert (run_dir / "summary.json").read_bytes() == reference["summary"], f"chain {chains}: summary.json differs"
        assert (run_dir / "metrics.csv").read_bytes() == reference["metrics"], f"chain {chains}: metrics.csv differs"
        stale_here = stale_checkpoints(run_dir, files)
        assert files - set(stale_here) == reference["files"], f"chain {chains}: files differ"
        assert temps == [], f"chain {chains}: temp files left after the final (resuming) run: {temps}"
        stale += len(stale_here)
        leftover_temps.append(len([t for t in temps if ".decoy" not in t]))
    print(f"\n{name}: survived {kills} SIGKILLs in {chains} chains ({launches} launches; straight run "
          f"{reference['total']:.1f} s, start-up {reference['startup']:.1f} s; kill delays {sorted(moments)} s); "
          f"{decoys} decoy temp files ignored; temp files left by the kills in each finished directory: {leftover_temps}; stale checkpoints: {stale}")
    assert kills >= wanted


@pytest.mark.slow
def test_sigint_exits_130_with_resume_hint_then_resumes(tmp_path):
    name = "interpolation"
    reference = reference_run(name, tmp_path / "reference")
    work = reference["total"] - reference["startup"]
    for fraction in (0.3, 0.15, 0.05):  # a busy machine may finish early: interrupt sooner and retry
        out = tmp_path / f"interrupted-{fraction}"
        process = start(name, out)
        while process.poll() is None and (run_dir_of(out, name) is None or not (run_dir_of(out, name) / "config.json").exists()):
            time.sleep(0.005)
        time.sleep(fraction * work)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        code, err = finish(process)
        run_dir = run_dir_of(out, name)
        # Finished first: exit 0, or SIGINT during interpreter shutdown after the run was done (-2). Interrupt sooner.
        if code != 0 and not (code == -signal.SIGINT and run_dir is not None and (run_dir / "DONE").exists()):
            break
    assert code == 130, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "run the same command again to resume" in lines[0], err
    run_dir = run_dir_of(out, name)
    check_intact(run_dir)
    assert not (run_dir / "DONE").exists() and not (run_dir / "summary.json").exists()
    code, err = finish(start(name, out))
    assert code == 0, err
    assert (run_dir / "summary.json").read_bytes() == reference["summary"]
    assert (run_dir / "metrics.csv").read_bytes() == reference["metrics"]


def test_temp_files_are_never_read_by_a_resume(tmp_path):
    """The cheap in-process version of the decoy check: garbage temp files beside every trial do not matter."""
    from dlprobe.cli import main

    argv = ["run", "fit-function", "--profile", "smoke", "--set", "max_epochs=30", "--set", "search_epochs=5",
            "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    (run_dir,) = [p.parent for p in tmp_path.rglob("DONE")]
    files, _ = listing(run_dir)
    summary = (run_dir / "summary.json").read_bytes()
    for name in ("DONE", "summary.json", "metrics.csv"):
        (run_dir / name).unlink()
    trial = next(run_dir.glob("trials/*.pt"))
    trial.unlink()  # one trial must be recomputed; a decoy with its temp name sits beside it
    plant_decoys(run_dir, files, "0001")
    assert main(argv) == 0
    assert (run_dir / "summary.json").read_bytes() == summary
    after, temps = listing(run_dir)
    assert after == files and temps == []  # the resume ignored the decoys, then deleted them as stale
