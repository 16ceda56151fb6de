"""Statistics over seeds and runs: pure functions, arrays or dicts in, numbers out.

    stats = seed_stats([0.91, 0.93, float("nan")])    # {'mean': 0.92, 'std': 0.01, 'min': 0.91, 'max': 0.93, 'values': [...], 'n': 2}
    rho, p_value = rank_correlation(num_params, gap)  # Spearman rho and its permutation p-value
    separated(stats_a, stats_b)                       # do two seed groups' [min, max] ranges not overlap?

Experiments compute these in `run` and store them in summary.json; the report only reads them (and may
call `separated` on stored seed stats to choose its words).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import permutation_test, rankdata


def seed_stats(values) -> dict:
    """{'mean', 'std', 'min', 'max', 'values', 'n'} of values (S,) over seeds, ignoring NaN (failed runs);
    std is ddof=0, values keeps every seed's value (NaN included), n counts the finite ones."""
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


def separated(a: dict, b: dict) -> bool:
    """True when two seed groups' [min, max] ranges (seed_stats dicts) do not overlap and each has at least 2 seeds."""
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return False
    if a.get("n", 1) < 2 or b.get("n", 1) < 2:
        return False
    return a["max"] < b["min"] or b["max"] < a["min"]


def geometric_mean(values) -> float:
    """exp(mean(log v)) over values (N,) when all are finite and positive, else inf: ranks runs whose losses
    span decades, and a run with one failed value never wins."""
    array = np.asarray(values, dtype=float)
    good = array[np.isfinite(array) & (array > 0)]
    return float(np.exp(np.log(good).mean())) if good.size == len(array) and good.size else math.inf


def first_step_below(steps, values, threshold: float):
    """The first of steps (T,) (e.g. epochs) whose value in values (T,) is <= threshold; None if never."""
    for step, value in zip(steps, values):
        if math.isfinite(value) and value <= threshold:
            return step
    return None


def final_window_drop(steps, values, window: int):
    """How much the best value fell over the last `window` steps of a curve: 1 - min(all) / min(values at steps <=
    last step - window), ignoring non-finite values. 0.0 when the curve stopped improving before the window; None
    when the curve is shorter than the window or has no finite value before it. "Still improving at the cap" reads
    from this (a run whose best train loss fell 20% over its last 500 epochs had not finished)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if window <= 0 or not len(steps) or not finite.any():
        return None
    before = finite & (steps <= steps[-1] - window)
    if not before.any():
        return None
    best_before, best = float(values[before].min()), float(values[finite].min())
    return 0.0 if best_before <= 0 else 1.0 - best / best_before


def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson correlation of x and y along `axis` (y may carry extra leading axes of resamples)."""
    x = x - x.mean(axis=axis, keepdims=True)
    y = y - y.mean(axis=axis, keepdims=True)
    return (x * y).sum(axis=axis) / np.sqrt((x * x).sum(axis=axis) * (y * y).sum(axis=axis))


def rank_correlation(x, y, seed: int = 0) -> tuple[float | None, float | None]:
    """(Spearman rho, two-sided permutation p-value) of x (n,) and y (n,); ties get average ranks.
    (None, None) when undefined: fewer than 3 pairs, or x or y constant.

    The p-value permutes the pairing: exact (all n! pairings) for n <= 7 (n! <= 9999), else 9999 seeded random ones;
    the usual t approximation is far off for the handful of runs here (it gives p ~ 1e-24 for rho = 1, n = 5).
    """
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    ranks_x, ranks_y = rankdata(x), rankdata(y)
    # One sample with permutation_type "pairings" permutes y against a fixed x: n! distinct pairings.
    result = permutation_test((ranks_y,), lambda y, axis=-1: _pearson(ranks_x, y, axis), permutation_type="pairings",
                              vectorized=True, n_resamples=9999, random_state=np.random.default_rng(seed))
    return float(result.statistic), float(result.pvalue)
