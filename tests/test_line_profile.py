"""Barrier, minimum, midpoint and flatness of a loss profile along a line, on hand-solved profiles."""

import pytest
import torch

from dlprobe.analysis.line_profile import barrier_height, describe_line, flatter_endpoint, parameter_distance, value_at

# alpha:        -0.5  -0.25  0    0.25  0.5   0.75  1    1.25  1.5
ALPHAS = torch.tensor([-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5], dtype=torch.float64)
LOSS = torch.tensor([2.0, 1.5, 1.0, 1.6, 1.8, 1.1, 0.5, 0.6, 0.9], dtype=torch.float64)
ACCURACY = torch.tensor([0.1, 0.2, 0.6, 0.5, 0.4, 0.7, 0.9, 0.8, 0.7], dtype=torch.float64)


def test_flatter_needs_a_clear_ratio_and_rising_loss():
    assert flatter_endpoint(0.1, 0.5, 1.5) == "m1"
    assert flatter_endpoint(0.5, 0.1, 1.5) == "m2"
    assert flatter_endpoint(0.1, 0.12, 1.5) == "similar"
    assert flatter_endpoint(-0.01, 0.3, 1.5) == "not measurable"
    assert flatter_endpoint(0.1, 0.12, 1.1) == "m1"  # the ratio decides what counts as clear


def test_value_at_reads_the_nearest_grid_point():
    assert value_at(ALPHAS, LOSS, 0.5) == 1.8
    assert value_at(ALPHAS, LOSS, 0.3) == 1.6  # nearest: 0.25


def test_hand_solved_profile():
    numbers = describe_line(ALPHAS, LOSS, ACCURACY, distance=0.25, flatness_ratio=1.5)
    assert numbers["endpoints"] == {"loss_at_0": 1.0, "loss_at_1": 0.5, "accuracy_at_0": 0.6, "accuracy_at_1": 0.9}
    assert numbers["midpoint"] == {"loss": 1.8, "accuracy": 0.4}
    assert numbers["barrier"] == pytest.approx(0.8)  # max on [0, 1] is 1.8, the worse endpoint 1.0
    assert numbers["minimum"] == {"loss": 0.5, "alpha": 1.0}
    flatness = numbers["flatness"]
    assert flatness["rise_beyond_m1"] == pytest.approx(0.5) and flatness["rise_beyond_m2"] == pytest.approx(0.1)
    assert flatness["relative_rise_beyond_m1"] == pytest.approx(0.5) and flatness["relative_rise_beyond_m2"] == pytest.approx(0.2)
    assert flatness["flatter"] == "m2"


def test_no_barrier_on_a_monotone_segment():
    falling = torch.linspace(3.0, 1.0, 9, dtype=torch.float64)
    assert barrier_height(ALPHAS, falling) == 0.0  # the segment's max is the worse endpoint itself


def test_parameter_distance_over_every_tensor_in_float64():
    first = {"w": torch.zeros(2, 2), "b": torch.zeros(3)}
    second = {"w": torch.full((2, 2), 1.0), "b": torch.tensor([0.0, 0.0, 3.0])}
    assert parameter_distance(first, second) == pytest.approx(13 ** 0.5, rel=1e-15)  # sqrt(4 * 1 + 9)
    assert parameter_distance(first, first) == 0.0
