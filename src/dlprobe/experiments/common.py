"""Small helpers the experiment modules share: statistics across seeds, names, thresholds."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np


def seed_stats(values) -> dict:
    """{'mean', 'std', 'min', 'max', 'values', 'n'} over seeds, ignoring NaN (failed runs); std is ddof=0."""
    array = np.asarray([float(v) for v in values], dtype=float)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "values": array.tolist(), "n": 0}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "values": array.tolist(),
        "n": int(finite.size),
    }


def slug(text: str) -> str:
    """A file-name-safe name; expressions get a short hash so different ones never collide."""
    clean = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if clean == text:
        return clean
    return f"{clean[:24]}-{hashlib.sha256(text.encode()).hexdigest()[:6]}".strip("-")


def first_step_below(steps, values, threshold: float):
    """The first recorded step (or epoch) whose value is <= threshold; None if never."""
    for step, value in zip(steps, values):
        if math.isfinite(value) and value <= threshold:
            return step
    return None


def geometric_mean(values) -> float:
    """exp(mean(log v)) over finite positive values (inf when none): ranks runs whose losses span decades."""
    array = np.asarray(values, dtype=float)
    good = array[np.isfinite(array) & (array > 0)]
    return float(np.exp(np.log(good).mean())) if good.size == len(array) and good.size else math.inf
