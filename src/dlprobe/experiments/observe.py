"""Turning numbers into sentences for the report, without claiming more than the numbers show.

A difference between two groups of seeds is called clear only when their ranges do not overlap; with
one seed each, no difference is called clear. Every sentence carries the numbers it rests on.
"""

from __future__ import annotations


def fmt(value, digits: int = 3) -> str:
    """A number for prose: 3 significant digits, scientific when small or large; 'n/a' for None."""
    if value is None:
        return "n/a"
    value = float(value)
    if value != value:
        return "n/a"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def mean_std(stats: dict | None) -> str:
    if not stats or stats.get("mean") is None:
        return "n/a"
    if stats.get("n", 1) > 1:
        return f"{fmt(stats['mean'])} ± {fmt(stats['std'], 2)}"
    return fmt(stats["mean"])


def separated(a: dict, b: dict) -> bool:
    """True when two seed groups' [min, max] ranges do not overlap and each has at least 2 seeds."""
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return False
    if a.get("n", 1) < 2 or b.get("n", 1) < 2:
        return False
    return a["max"] < b["min"] or b["max"] < a["min"]


def compare_lower_is_better(name_a: str, a: dict, name_b: str, b: dict, quantity: str) -> str:
    """One sentence comparing two seed groups of a lower-is-better quantity (e.g. test MSE)."""
    if a.get("mean") is None or b.get("mean") is None:
        return f"{quantity}: not available for both {name_a} and {name_b}."
    better, worse = (name_a, name_b) if a["mean"] <= b["mean"] else (name_b, name_a)
    low, high = sorted([a["mean"], b["mean"]])
    ratio = high / low if low > 0 else float("inf")
    seeds = f"{a.get('n', 1)} and {b.get('n', 1)} seeds"
    if separated(a, b):
        return f"The {better}'s {quantity} ({fmt(low)}) is {ratio:.2f}× lower than the {worse}'s ({fmt(high)}); the seed ranges do not overlap ({seeds})."
    return (f"No clear difference in {quantity} between the {name_a} ({mean_std(a)}) and the {name_b} ({mean_std(b)}): "
            f"the seed ranges overlap or there are too few seeds ({seeds}); the means differ by a factor {ratio:.2f}.")
