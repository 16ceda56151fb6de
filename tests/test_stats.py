"""analysis/stats.py: seed statistics, rank correlation with its permutation p-value, separation of seed ranges."""

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from dlprobe.analysis.stats import first_step_below, geometric_mean, rank_correlation, seed_stats, separated


def test_seed_stats_ignore_failed_runs_but_keep_their_values():
    stats = seed_stats([1.0, 3.0, float("nan")])
    assert (stats["mean"], stats["std"], stats["min"], stats["max"], stats["n"]) == (2.0, 1.0, 1.0, 3.0, 2)  # std: ddof 0
    assert stats["values"][:2] == [1.0, 3.0] and math.isnan(stats["values"][2])
    failed = seed_stats([float("nan")])
    assert failed["mean"] is None and failed["std"] is None and failed["n"] == 0 and len(failed["values"]) == 1


def test_separated_needs_two_seeds_each_and_disjoint_ranges():
    low, high = seed_stats([1.0, 2.0]), seed_stats([3.0, 4.0])
    assert separated(low, high) and separated(high, low)
    assert not separated(low, seed_stats([2.0, 5.0]))  # touching ranges overlap
    assert not separated(seed_stats([1.0]), seed_stats([9.0]))  # one seed each: never clear
    assert not separated(low, seed_stats([float("nan")]))


def test_geometric_mean_and_first_step_below():
    assert geometric_mean([1e-4, 1e-2]) == pytest.approx(1e-3)
    assert geometric_mean([1.0, float("nan")]) == math.inf and geometric_mean([1.0, 0.0]) == math.inf
    assert first_step_below([0, 10, 20, 30], [1.0, float("nan"), 0.5, 0.1], 0.5) == 20
    assert first_step_below([0, 10], [1.0, 0.9], 0.5) is None


def test_rank_correlation_matches_scipy_and_has_exact_small_sample_p_values():
    rng = np.random.default_rng(3)
    x = np.repeat([16, 64, 256, 1024, 4000], 3)  # ties, as with several seeds per batch size
    y = rng.normal(size=len(x))
    rho, p_value = rank_correlation(x, y)
    assert rho == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert 0 < p_value <= 1
    # n = 5, perfectly monotone: only 2 of the 5! = 120 pairings reach |rho| = 1.
    rho, p_value = rank_correlation([1, 2, 3, 4, 5], [10, 8, 6, 4, 2])
    assert rho == pytest.approx(-1.0) and p_value == pytest.approx(2 / 120)
    # undefined: too few pairs, or one side constant
    assert rank_correlation([1, 2], [3, 4]) == (None, None)
    assert rank_correlation([1, 2, 3, 4], [5, 5, 5, 5]) == (None, None) == rank_correlation([7, 7, 7], [1, 2, 3])
