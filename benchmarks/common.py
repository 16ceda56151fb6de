"""What every benchmark case shares: interleaved timing, ratios, the machine record, the result record.

On a shared machine absolute times are noise, so the sides of a comparison are timed *interleaved*: in
repetition r every side runs once, in an order rotated by r, and the ratio of a baseline to dlprobe is the
median over repetitions of the per-repetition ratio (two sides timed seconds apart saw about the same
load). Medians of the raw times are reported next to it.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_record() -> dict:
    """Where the numbers were measured: CPU, cores, load, library versions, date."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "load_average_1_5_15min": [round(x, 2) for x in load] if load else None,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def timed(function: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def interleaved(sides: dict[str, Callable[[int], object]], repeats: int) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Run every side once per repetition, in an order rotated each repetition.

    sides: name -> function(repetition index) -> result. Returns (name -> seconds per repetition,
    name -> results per repetition), both in repetition order.
    """
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list] = {name: [] for name in names}
    for repetition in range(repeats):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            seconds, result = timed(lambda: sides[name](repetition))
            times[name].append(seconds)
            results[name].append(result)
    return times, results


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repetitions of numerator[r] / denominator[r] (e.g. baseline time / dlprobe time)."""
    return float(statistics.median(n / d for n, d in zip(numerator, denominator)))


def side(label: str, seconds: list[float], work: float | None = None, unit: str | None = None) -> dict:
    """One timed side: label, seconds per repetition, their median, and optionally a rate (work per second
    of each repetition, e.g. model-steps/s) when the work per repetition is `work`."""
    record = {"label": label, "times_s": [round(s, 4) for s in seconds], "median_s": round(statistics.median(seconds), 4)}
    if work is not None:
        record["rate"] = round(work / statistics.median(seconds), 3)
        record["rate_unit"] = unit
    return record


def baseline(label: str, seconds: list[float], ratio: float, target: float, work: float | None = None,
             unit: str | None = None) -> dict:
    """A baseline side plus its speed ratio (baseline time / dlprobe time for equal work) and target."""
    record = side(label, seconds, work, unit)
    record.update({"ratio": round(ratio, 3), "target": target, "met": bool(ratio >= target)})
    return record


def equality(what: str, error: float, tolerance: float, **details) -> dict:
    """The check that both sides computed the same thing: measured error vs tolerance."""
    return {"what": what, "error": float(error), "tolerance": tolerance, "ok": bool(error <= tolerance), **details}


def case_record(case: int, name: str, settings: dict, dlprobe: dict, baselines: list[dict], check: dict,
                threads: int, **extra) -> dict:
    """The results.json entry of one case; `met` is true only when every target and the check are met."""
    return {
        "case": case,
        "name": name,
        "threads": threads,
        "settings": settings,
        "dlprobe": dlprobe,
        "baselines": baselines,
        "equality": check,
        "met": bool(check["ok"] and all(b["met"] for b in baselines)),
        "measured_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        **extra,
    }


def relative_error(value, reference) -> float:
    """max |value - reference| / |reference| over all entries (arrays or tensors)."""
    value = np.asarray(value, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    return float(np.max(np.abs(value - reference) / np.abs(reference)))


def matmul_peak_gflops(size: int = 1024, calls: int = 10) -> float:
    """Dense float32 matmul throughput right now (GFLOP/s): a size x size product `calls` times."""
    a = torch.randn(size, size)
    a @ a  # warm up the BLAS
    seconds, _ = timed(lambda: [a @ a for _ in range(calls)])
    return 2 * size**3 * calls / seconds / 1e9
