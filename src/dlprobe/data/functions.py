"""Target functions for the fit-function experiment: a registry of named ones plus safe expressions.

    >>> target = get_function("sinc")                      # or get_function("exp(-x**2)*sin(8*x)")
    >>> x_train, y_train, x_test, y_test = function_dataset(target, num_train=1000, num_test=200)

All registered targets live on [-1, 1] and are scaled (5*pi*x etc.) so that a small network needs
several wiggles' worth of capacity there: that is what separates shallow from deep models.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

import numpy as np
import torch

from dlprobe.data.expressions import parse_expression, require_finite
from dlprobe.errors import ConfigError, ExpressionError

DEFAULT_DOMAIN = (-1.0, 1.0)
# Offset of the test grid inside each cell, as a fraction of the cell. A midpoint offset (0.5)
# puts test points exactly on training points, e.g. for 1001 training and 100 test points. The
# golden ratio is badly approximable by fractions, so test and training points stay more than
# ~0.03 * width / (num_train * num_test) apart (measured up to 10^4 x 10^4 points), far above
# float rounding.
_TEST_OFFSET = (np.sqrt(5.0) - 1.0) / 2.0
_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


@dataclasses.dataclass(frozen=True)
class TargetFunction:
    """A scalar function `fn` on `domain`; calling it maps float64 `x` of any shape to `y` of that shape."""

    name: str
    formula: str  # human readable, for figure titles and the report
    domain: tuple[float, float]
    fn: Callable[[np.ndarray], np.ndarray] = dataclasses.field(repr=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.broadcast_to(np.asarray(self.fn(x), dtype=np.float64), x.shape).copy()


# Module-level functions rather than lambdas so that targets pickle (worker processes, Ray).
def _sinc(x: np.ndarray) -> np.ndarray:
    return np.sinc(5.0 * x)  # np.sinc(t) = sin(pi t)/(pi t), with the t = 0 limit 1 exactly


def _abs_sinc(x: np.ndarray) -> np.ndarray:
    return np.abs(np.sinc(5.0 * x))


def _sign_sin(x: np.ndarray) -> np.ndarray:
    # sgn(sin(pi*t)) for t = 5x, exact up to the rounding of 5x: 0 where t is an integer
    # (np.sin(np.pi) is 1.2e-16, which np.sign would turn into 1), else +1 on even unit intervals
    # and -1 on odd ones. Keeps the target exactly odd and 0 at x = 0 and x = +-1.
    t = 5.0 * x
    parity = np.floor(t) % 2.0
    return np.where(t == np.round(t), 0.0, np.where(parity == 0.0, 1.0, -1.0))


def _sin_cos(x: np.ndarray) -> np.ndarray:
    return np.sin(3.0 * np.pi * x) + np.cos(6.0 * np.pi * x)


def _cos(x: np.ndarray) -> np.ndarray:
    return np.cos(5.0 * np.pi * x)


def _arcsinh(x: np.ndarray) -> np.ndarray:
    # Scaled by 5 so the curve bends sharply near 0 and flattens towards +-1 (range +-2.31).
    return np.arcsinh(5.0 * x)


def _x_sin(x: np.ndarray) -> np.ndarray:
    return 5.0 * np.pi * x * np.sin(5.0 * np.pi * x)


_REGISTRY = {target.name: target for target in [
    TargetFunction("sinc", "sin(5πx)/(5πx)", DEFAULT_DOMAIN, _sinc),
    TargetFunction("sign-sin", "sgn(sin(5πx))", DEFAULT_DOMAIN, _sign_sin),
    TargetFunction("abs-sinc", "|sin(5πx)/(5πx)|", DEFAULT_DOMAIN, _abs_sinc),
    TargetFunction("sin-cos", "sin(3πx) + cos(6πx)", DEFAULT_DOMAIN, _sin_cos),
    TargetFunction("cos", "cos(5πx)", DEFAULT_DOMAIN, _cos),
    TargetFunction("arcsinh", "arcsinh(5x)", DEFAULT_DOMAIN, _arcsinh),
    TargetFunction("x-sin", "5πx·sin(5πx)", DEFAULT_DOMAIN, _x_sin),
]}


def available_functions() -> list[TargetFunction]:
    """The registered targets, the experiment's defaults (sinc, sign-sin) first."""
    return list(_REGISTRY.values())


def get_function(name_or_expression: str, domain: tuple[float, float] | None = None) -> TargetFunction:
    """A registered target by name, else a safe expression in `x` (name = its text).

    `domain` overrides the target's own (registered targets and expressions default to [-1, 1]).
    Raises ExpressionError for an unknown name or an invalid expression, ConfigError for a bad domain.
    """
    if not isinstance(name_or_expression, str):
        raise ConfigError(
            f"target function must be a name or an expression string, got {name_or_expression!r}")
    text = name_or_expression.strip()
    domain = _check_domain(domain) if domain is not None else None
    if text in _REGISTRY:
        target = _REGISTRY[text]
        return dataclasses.replace(target, domain=domain) if domain is not None else target
    try:
        expression = parse_expression(text)
    except ExpressionError:
        if _NAME_LIKE.fullmatch(text):  # "sincc", "sign_sin": a mistyped name, not a formula
            names = ", ".join(_REGISTRY)
            raise ExpressionError(
                f"unknown target function '{text}': registered names are {names}; or give a math "
                f"expression in x such as 'exp(-x**2)*sin(8*x)'") from None
        raise
    return TargetFunction(name=expression.text, formula=expression.text,
                          domain=domain or DEFAULT_DOMAIN, fn=expression)


def function_dataset(target: TargetFunction | str, num_train: int, num_test: int,
                     dtype: torch.dtype = torch.float32
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample `target` on two disjoint uniform grids over its domain.

    Returns (x_train, y_train, x_test, y_test): x_train, y_train (num_train, 1) on a grid including
    both endpoints; x_test, y_test (num_test, 1) one point per cell of num_test equal cells, strictly
    inside the domain and placed so that no test x equals a training x. Values are computed in float64, then cast
    to `dtype`. Raises ConfigError for bad sizes/dtype, ExpressionError where the target is not finite.
    """
    if isinstance(target, str):
        target = get_function(target)
    for label, value, minimum in (("num_train", num_train, 2), ("num_test", num_test, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ConfigError(f"{label} must be an integer >= {minimum}, got {value!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ConfigError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    low, high = _check_domain(target.domain)
    x_train = np.linspace(low, high, int(num_train))
    x_test = low + (np.arange(int(num_test)) + _TEST_OFFSET) * ((high - low) / int(num_test))
    label = f"target '{target.name}' on [{low:g}, {high:g}]"
    y_train = require_finite(target(x_train), x_train, label)
    y_test = require_finite(target(x_test), x_test, label)

    def column(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(values).to(dtype).reshape(-1, 1)  # (N,) -> (N, 1)

    return column(x_train), column(y_train), column(x_test), column(y_test)


def _check_domain(domain) -> tuple[float, float]:
    try:
        low, high = (float(bound) for bound in domain)
    except (TypeError, ValueError):
        raise ConfigError(f"domain must be two numbers (low, high), got {domain!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ConfigError(f"domain must be finite with low < high, got ({low:g}, {high:g})")
    return low, high
