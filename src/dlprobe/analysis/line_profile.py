"""The shape of a loss profile along a line theta(alpha) = (1 - alpha) theta1 + alpha theta2: barrier, minimum, flatness.

    line = dlprobe.interpolate(m1, m2, data, {"loss": loss, "accuracy": dlprobe.accuracy}, alphas).values
    numbers = describe_line(alphas, torch.from_numpy(line["loss"]), torch.from_numpy(line["accuracy"]), distance=0.25,
                            flatness_ratio=1.5)
    numbers["barrier"], numbers["flatness"]["flatter"]
    parameter_distance(state1, state2)                                     # ||theta2 - theta1||

alphas (A,) is the grid the profile was evaluated on; it must hold 0 and 1, and the alphas a function asks
for (0.5, -distance, 1 + distance) are read at the nearest grid point. "m1" is the model at alpha = 0, "m2"
the one at alpha = 1. Beyond an endpoint the line moves away from it along the same vector theta2 - theta1,
so the loss rise at alpha = -d (beyond m1) and at alpha = 1 + d (beyond m2) compares the two endpoints at the
same parameter distance d * ||theta2 - theta1||: a one-direction view of flatness, not a curvature measurement.
"""

from __future__ import annotations

import torch


def value_at(alphas: torch.Tensor, values: torch.Tensor, alpha: float) -> float:
    """values (A,) at the grid point of alphas (A,) nearest to alpha."""
    index = int(torch.argmin((alphas - alpha).abs()))
    return float(values[index])


def barrier_height(alphas: torch.Tensor, loss: torch.Tensor) -> float:
    """Max of loss (A,) over alpha in [0, 1] minus the larger endpoint loss: 0 when nothing on the segment
    rises above both ends (never negative, since both endpoints are on the segment)."""
    inside = (alphas >= 0) & (alphas <= 1)
    return float(loss[inside].max()) - max(value_at(alphas, loss, 0.0), value_at(alphas, loss, 1.0))


def flatter_endpoint(rise_beyond_m1: float, rise_beyond_m2: float, ratio: float) -> str:
    """'m1' / 'm2' when that endpoint's loss rises at most 1/ratio of the other's, else 'similar';
    'not measurable' when the loss falls beyond an endpoint (it is no minimum along the line)."""
    low, high = sorted((rise_beyond_m1, rise_beyond_m2))
    if low <= 0:
        return "not measurable"
    if high < ratio * low:
        return "similar"
    return "m1" if rise_beyond_m1 < rise_beyond_m2 else "m2"


def describe_line(alphas: torch.Tensor, loss: torch.Tensor, accuracy: torch.Tensor, distance: float, flatness_ratio: float) -> dict:
    """The numbers of one profile: loss and accuracy (A,) on alphas (A,).

    Returns {endpoints: {loss_at_0, loss_at_1, accuracy_at_0, accuracy_at_1}, midpoint: {loss, accuracy} at
    alpha = 0.5, barrier (`barrier_height`), minimum: {loss, alpha} over the whole grid, flatness:
    {rise_beyond_m1 (loss at -distance minus loss at 0), rise_beyond_m2 (at 1 + distance minus at 1),
    relative_rise_beyond_m1, relative_rise_beyond_m2 (each rise / its endpoint's loss), flatter
    (`flatter_endpoint` with flatness_ratio)}}.
    """
    at_0, at_1 = value_at(alphas, loss, 0.0), value_at(alphas, loss, 1.0)
    best = int(torch.argmin(loss))
    rise1, rise2 = value_at(alphas, loss, -distance) - at_0, value_at(alphas, loss, 1 + distance) - at_1
    return {
        "endpoints": {"loss_at_0": at_0, "loss_at_1": at_1, "accuracy_at_0": value_at(alphas, accuracy, 0.0),
                      "accuracy_at_1": value_at(alphas, accuracy, 1.0)},
        "midpoint": {"loss": value_at(alphas, loss, 0.5), "accuracy": value_at(alphas, accuracy, 0.5)},
        "barrier": barrier_height(alphas, loss),
        "minimum": {"loss": float(loss[best]), "alpha": float(alphas[best])},
        "flatness": {"rise_beyond_m1": rise1, "rise_beyond_m2": rise2, "relative_rise_beyond_m1": rise1 / at_0,
                     "relative_rise_beyond_m2": rise2 / at_1, "flatter": flatter_endpoint(rise1, rise2, flatness_ratio)},
    }


def parameter_distance(state1: dict, state2: dict) -> float:
    """||theta2 - theta1||: the Euclidean distance over every entry of two states with the same names and shapes,
    in float64."""
    squares = [(state2[name].double() - state1[name].double()).square().sum() for name in state1]
    return float(torch.stack(squares).sum().sqrt())
