"""Case 6: the whole suite, `dlprobe run all --profile quick`, in a temporary --out (target: <= 10 minutes).

Runs the CLI as a child process and takes its peak resident memory from os.wait4 (that child alone). The
per-experiment breakdown comes from each run directory's run_info.json (wall_time_s; peak_rss_mb there is the
process's peak so far, so it only grows along the sequence). Whatever time is not inside an experiment is
start-up, imports and the report. `--suite-profile full` runs the full profile with `--dataset mnist-5k` (the
full profiles' MNIST and CIFAR-10 are not shipped; under this option trajectory and error-surface classify
mnist-5k images instead of fitting their function, a little more work than full's own settings).
In smoke mode only `dlprobe run fit-function --profile smoke` runs (the path is exercised, in seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import case_record, side

NAME = "whole suite: dlprobe run all"
TARGET_SECONDS = {"quick": 600.0, "full": 7200.0}
REPO = Path(__file__).resolve().parents[1]


def run_child(command: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MB of that child, exit code, last stderr lines)."""
    with tempfile.TemporaryFile(mode="w+") as errors:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        tail = errors.read()[-1500:]
    return wall, usage.ru_maxrss / 1024, child.returncode, tail  # ru_maxrss is in KiB on Linux


def run(smoke: bool = False, repeats: int | None = None, profile: str = "quick") -> dict:
    which, profile = ("fit-function", "smoke") if smoke else ("all", profile)
    with tempfile.TemporaryDirectory(prefix="dlprobe-suite-") as out:
        command = [sys.executable, "-m", "dlprobe", "run", which, "--profile", profile, "--out", out,
                   "--report-dir", str(Path(out) / "report"), "--quiet"]
        if profile == "full":  # the full profiles' datasets (mnist, cifar10) are not shipped: use the built-in 5000 digits
            command += ["--dataset", "mnist-5k"]
        wall, peak_mb, code, tail = run_child(command)
        experiments = []
        for info_path in sorted(Path(out).glob("*/*/run_info.json"), key=lambda p: p.stat().st_mtime):
            info = json.loads(info_path.read_text())
            experiments.append({"experiment": info_path.parent.parent.name, "wall_time_s": info["wall_time_s"],
                                "peak_rss_mb_so_far": info.get("peak_rss_mb"),
                                "done": (info_path.parent / "DONE").exists()})
        report_written = (Path(out) / "report").exists()
    inside = sum(e["wall_time_s"] for e in experiments)
    target = TARGET_SECONDS.get(profile)
    row = {"label": f"target: wall time <= {target:.0f} s" if target else f"no target for the {profile} profile",
           "times_s": [round(wall, 2)], "median_s": round(wall, 2), "ratio": None, "target": None,
           "met": bool(target is None or wall <= target)}
    missing = [e["experiment"] for e in experiments if not e["done"]]
    check = {"what": "experiments that did not finish (exit code, DONE markers)", "error": float(len(missing) + (code != 0)),
             "tolerance": 0.0, "ok": bool(code == 0 and not missing and experiments), "exit_code": code,
             "stderr_tail": tail if code != 0 else ""}
    settings = {"command": " ".join(["dlprobe", *command[3:7], *command[12:]]), "profile": profile, "target_seconds": target}
    notes = [f"{len(experiments)} experiments ran, {inside:.0f} s inside experiments, {wall - inside:.0f} s start-up/imports/report; "
             f"peak RSS {peak_mb:.0f} MB"]
    return case_record(6, NAME, settings, side(" ".join(["dlprobe", *command[3:7], *command[12:]]), [wall]), [row], check, threads=1,
                       experiments=experiments, peak_rss_mb=round(peak_mb, 1), seconds_outside_experiments=round(wall - inside, 2),
                       report_written=report_written, notes=notes)
