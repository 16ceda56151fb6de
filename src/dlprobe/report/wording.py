"""The report's words for numbers: sentences that claim no more than the numbers show.

    mean_std(stats)                                   # '0.123 ± 0.01' (seed stats; one seed: '0.123')
    compare_lower_is_better("deep", a, "shallow", b, "test MSE")
    describe_trend(rho, p_value)                      # 'no significant trend: ...', 'strong decreasing trend (...)'
    ranking([("1 layer", a), ("3 layers", b)], "test MSE")   # 'ranking ...: 3 layers (0.01 ± 0.001) < 1 layer (...)'

A difference between two groups of seeds is called clear only when their ranges do not overlap; with
one seed each, no difference is called clear. A rank correlation is called a trend only when its
permutation p-value is below SIGNIFICANCE (with 5 runs that takes a perfect ordering). Every sentence
carries the numbers it rests on. The numbers themselves come from summary.json (analysis/stats.py
computes them in the experiment's run); numbers are written by text.format_number.
"""

from __future__ import annotations

from ..analysis.stats import separated
from .text import format_number

WEAK_RHO = 0.3  # |Spearman rho| below this: "no monotonic trend"; 0.3-0.7 moderate, above 0.7 strong
STRONG_RHO = 0.7
SIGNIFICANCE = 0.05  # a trend is called one only when Spearman's p is below this


def mean_std(stats: dict | None) -> str:
    """Seed stats as "mean ± std" (std to 2 digits); one seed: the mean alone; "n/a" when missing."""
    if not stats or stats.get("mean") is None:
        return "n/a"
    if stats.get("n", 1) > 1:
        return f"{format_number(stats['mean'])} ± {format_number(stats['std'], 2)}"
    return format_number(stats["mean"])


def compare_lower_is_better(name_a: str, a: dict, name_b: str, b: dict, quantity: str) -> str:
    """One sentence comparing two seed groups of a lower-is-better quantity (e.g. test MSE)."""
    if a.get("mean") is None or b.get("mean") is None:
        return f"{quantity}: not available for both {name_a} and {name_b}."
    better, worse = (name_a, name_b) if a["mean"] <= b["mean"] else (name_b, name_a)
    low, high = sorted([a["mean"], b["mean"]])
    ratio = high / low if low > 0 else float("inf")
    seeds = f"{a.get('n', 1)} and {b.get('n', 1)} seeds"
    if separated(a, b):
        return f"The {better}'s {quantity} ({format_number(low)}) is {ratio:.2f}× lower than the {worse}'s ({format_number(high)}); the seed ranges do not overlap ({seeds})."
    return (f"No clear difference in {quantity} between the {name_a} ({mean_std(a)}) and the {name_b} ({mean_std(b)}): "
            f"the seed ranges overlap or there are too few seeds ({seeds}); the means differ by a factor {ratio:.2f}.")


def describe_trend(rho: float | None, p_value: float | None) -> str:
    """Words for a Spearman rank correlation: a trend is only called one when p < SIGNIFICANCE (with 5 runs
    that needs |rho| = 1: rho = 0.9 has p = 0.083), and its strength is then the size of |rho|."""
    if rho is None:
        return "not measurable (too few runs or constant values)"
    numbers = f"Spearman ρ = {rho:+.2f}, p = {format_number(p_value, 2)}"
    direction = "increasing" if rho > 0 else "decreasing"
    if abs(rho) < WEAK_RHO:
        return f"no monotonic trend ({numbers})"
    if p_value is None or not p_value < SIGNIFICANCE:
        return f"no significant trend: the ranks lean {direction}, but p ≥ {SIGNIFICANCE:g} ({numbers})"
    strength = "strong" if abs(rho) >= STRONG_RHO else "moderate"
    return f"{strength} {direction} trend ({numbers})"


def trend_direction(rho: float | None, p_value: float | None) -> int:
    """+1 / -1 where describe_trend calls a trend one (|rho| >= WEAK_RHO and p < SIGNIFICANCE), 0 otherwise."""
    if rho is None or abs(rho) < WEAK_RHO or p_value is None or not p_value < SIGNIFICANCE:
        return 0
    return 1 if rho > 0 else -1


def below_minimum(what: str, count: float, minimum: float) -> list[str]:
    """[one sentence] when a run has fewer `what` than the assignment asks for (e.g. a smoke-sized run), else []."""
    if count >= minimum:
        return []
    return [f"Fewer {what} than the assignment asks for ({format_number(count)}, at least {format_number(minimum)}): a small sample, "
            "so read its comparisons as tentative."]


def ranking(entries: list[tuple[str, dict]], quantity: str, lower_is_better: bool = True, scale: float = 1.0,
            unit: str = "") -> str:
    """One sentence ranking seed groups by the mean of `quantity`, each with its spread, where '<' (or '>')
    is written only between neighbours whose seed ranges separate (`separated`) and '≈' where they overlap or
    have fewer than 2 seeds. entries: (name, seed stats); scale/unit only change how values are written
    (e.g. 100, '%')."""
    shown = [(name, stats) for name, stats in entries if stats and stats.get("mean") is not None]
    if len(shown) < 2:
        return f"ranking by mean {quantity}: fewer than two models with a value."
    shown.sort(key=lambda item: item[1]["mean"], reverse=not lower_is_better)
    symbol = "<" if lower_is_better else ">"

    def written(stats: dict) -> str:
        scaled = {**stats, **{k: stats[k] * scale for k in ("mean", "std") if stats.get(k) is not None}}
        return mean_std(scaled) + unit

    parts = [f"{shown[0][0]} ({written(shown[0][1])})"]
    for (_, before), (name, stats) in zip(shown, shown[1:]):
        parts.append(f"{symbol if separated(before, stats) else '≈'} {name} ({written(stats)})")
    return (f"ranking by mean {quantity} (mean ± std over seeds; '{symbol}' only where neighbouring seed ranges do not "
            f"overlap, '≈' where they do): " + " ".join(parts) + ".")
