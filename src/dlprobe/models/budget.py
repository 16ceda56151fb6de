"""Architectures of different depth at one exact parameter budget.

    specs = [mlp_for_budget(1000, depth, in_features=1, out_features=1) for depth in (1, 3, 6)]
    [s.num_params for s in specs]   # e.g. [1000, 1001, 998]: within 1% of each other, counted exactly

The family keeps every hidden layer at one base width w, then fine-tunes the first, middle and last
hidden layer's widths (each within a few units of w) so the exact count lands as close to the budget as
the integers allow. A budget that no width can meet within the tolerance is a BudgetError, never a silently
mismatched model.
"""

from __future__ import annotations

import itertools

from ..errors import BudgetError, ConfigError
from .cnn import CNNSpec
from .mlp import MLPSpec

DEFAULT_TOLERANCE = 0.01  # relative distance to the budget that counts as "the same budget"


def _check_target(num_params: int, depth: int) -> None:
    if num_params < 1:
        raise ConfigError(f"parameter budget must be positive, got {num_params}")
    if depth < 0:
        raise ConfigError(f"depth must be >= 0, got {depth}")


def _relative_error(count: int, target: int) -> float:
    return abs(count - target) / target


def _accept(best, target: int, tolerance: float, what: str):
    spec = best
    if _relative_error(spec.num_params, target) > tolerance:
        raise BudgetError(
            f"no {what} has {target} parameters within {tolerance:.0%} "
            f"(closest: {spec.describe()} with {spec.num_params}); choose a larger budget or fewer layers"
        )
    return spec


def mlp_for_budget(
    num_params: int,
    depth: int,
    in_features: int,
    out_features: int,
    activation: str = "tanh",
    tolerance: float = DEFAULT_TOLERANCE,
) -> MLPSpec:
    """The MLP with `depth` hidden layers whose exact parameter count is closest to `num_params`.

    Ties go to the most uniform widths. Raises BudgetError when the closest count is off by more than
    `tolerance` (relative), e.g. a 6-layer net asked for 20 parameters.
    """
    _check_target(num_params, depth)
    if depth == 0:
        return _accept(MLPSpec(in_features, (), out_features, activation), num_params, tolerance, "linear model")

    def make(widths):
        return MLPSpec(in_features, tuple(widths), out_features, activation)

    # Largest base width that does not overshoot with uniform widths (count grows monotonically with w).
    low, high = 1, 1
    while make([high] * depth).num_params < num_params:
        high *= 2
    while low < high:
        mid = (low + high + 1) // 2
        if make([mid] * depth).num_params <= num_params:
            low = mid
        else:
            high = mid - 1
    # Free positions: the first, the middle and the last hidden layer (each within ±spread of the base).
    free = sorted({0, depth // 2, depth - 1})
    best, best_key = None, None
    for base in {max(1, low - 1), low, low + 1}:
        spread = min(max(2, base // 4), 6)
        choices = range(max(1, base - spread), base + spread + 1)
        for values in itertools.product(choices, repeat=len(free)):
            widths = [base] * depth
            for position, value in zip(free, values):
                widths[position] = value
            spec = make(widths)
            key = (abs(spec.num_params - num_params), max(widths) - min(widths), -base)
            if best_key is None or key < best_key:
                best, best_key = spec, key
    return _accept(best, num_params, tolerance, f"{depth}-hidden-layer MLP")


def cnn_for_budget(
    num_params: int,
    num_conv: int,
    input_shape: tuple[int, int, int],
    num_classes: int,
    num_dense: int = 1,
    activation: str = "relu",
    tolerance: float = DEFAULT_TOLERANCE,
) -> CNNSpec:
    """The CNN with `num_conv` conv blocks (channels doubling: c, 2c, 4c, ...) and `num_dense` dense hidden
    layers whose exact parameter count is closest to `num_params`.

    The shape is kept canonical: the dense width stays within ±25% of twice the last conv's channels (or
    of 32 for a CNN without convs), and the last conv's channels are nudged by at most 3. Among candidates
    within a quarter of the tolerance, the most canonical wins; otherwise the closest count.
    """
    _check_target(num_params, num_conv)
    if num_dense < 0:
        raise ConfigError(f"num_dense must be >= 0, got {num_dense}")

    def make(channels, width):
        return CNNSpec(input_shape, tuple(channels), (width,) * num_dense, num_classes, activation)

    good_enough = tolerance / 4
    best, best_key = None, None
    for base in range(1, 1025 if num_conv else 2):
        base_channels = [base * 2**i for i in range(num_conv)]
        center = 2 * base_channels[-1] if num_conv else 32
        if make(base_channels, max(1, int(center * 0.75))).num_params > num_params * (1 + tolerance):
            break
        for nudge in range(-min(3, base - 1), 4) if num_conv else [0]:
            channels = list(base_channels)
            if channels:
                channels[-1] += nudge
            widths = range(max(1, int(center * 0.75)), int(center * 1.25) + 2) if num_dense else [1]
            if not num_conv:  # no conv: the dense width is the only knob, let it range freely
                widths = range(1, 1 << 16) if num_dense else [1]
            for width in _near_target(widths, lambda w: make(channels, w).num_params, num_params):
                spec = make(channels, width)
                error = _relative_error(spec.num_params, num_params)
                shape = abs(width - center) / center + abs(nudge) / 4
                key = (error if error > good_enough else 0.0, shape if num_conv else 0.0, error)
                if best_key is None or key < best_key:
                    best, best_key = spec, key
    if best is None:
        raise BudgetError(
            f"no {num_conv}-conv CNN on input {tuple(input_shape)} fits in {num_params} parameters; "
            "choose a larger budget or fewer conv layers"
        )
    return _accept(best, num_params, tolerance, f"{num_conv}-conv CNN")


def _near_target(widths: range, count, target: int) -> list[int]:
    """The widths in `widths` (count increasing in width) whose counts bracket `target`."""
    low, high = widths.start, widths.stop - 1
    if len(widths) <= 2 or count(low) >= target:
        return [low]
    if count(high) <= target:
        return [high]
    while high - low > 1:
        mid = (low + high) // 2
        if count(mid) <= target:
            low = mid
        else:
            high = mid
    return [low, high]


def check_same_budget(specs, tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Raise BudgetError unless all specs' exact counts are within `tolerance` of each other."""
    counts = [spec.num_params for spec in specs]
    if counts and (max(counts) - min(counts)) / min(counts) > tolerance:
        raise BudgetError(f"parameter counts {counts} differ by more than {tolerance:.0%}")
