"""The budget solver: exact counts, within 1% across depths, clear errors for impossible budgets."""

import pytest
import torch

from dlprobe.errors import BudgetError, ConfigError
from dlprobe.models.budget import check_same_budget, cnn_for_budget, mlp_for_budget
from dlprobe.models.cnn import build_cnn
from dlprobe.models.mlp import build_mlp


@pytest.mark.parametrize("budget", [300, 571, 1000, 5000, 50_000])
def test_mlp_depths_share_the_budget_within_one_percent(budget):
    specs = [mlp_for_budget(budget, depth, 1, 1) for depth in (1, 2, 3, 6)]
    for spec in specs:
        assert abs(spec.num_params - budget) / budget <= 0.005
        assert len(spec.widths) in (1, 2, 3, 6)
    check_same_budget(specs)


def test_assignment_example_budget_matches_571():
    counts = [mlp_for_budget(571, depth, 1, 1).num_params for depth in (1, 3, 6)]
    assert max(counts) - min(counts) <= 2


def test_counts_are_exact_for_built_models():
    for depth in (1, 3, 6):
        spec = mlp_for_budget(20_000, depth, 784, 10)
        model = build_mlp(spec, torch.Generator().manual_seed(0))
        assert spec.num_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("num_conv", [1, 2, 4])
@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)])
def test_cnn_budget_exact_and_buildable(num_conv, input_shape):
    spec = cnn_for_budget(50_000, num_conv, input_shape, 10)
    assert abs(spec.num_params - 50_000) / 50_000 <= 0.01
    model = build_cnn(spec, torch.Generator().manual_seed(0))
    assert spec.num_params == sum(p.numel() for p in model.parameters())
    assert model(torch.zeros(2, *input_shape)).shape == (2, 10)
    assert len(spec.channels) == num_conv


def test_impossible_budgets_are_clear_errors():
    with pytest.raises(BudgetError, match="within 1%"):
        mlp_for_budget(30, 6, 784, 10)  # the input layer alone needs > 784 parameters
    with pytest.raises(ConfigError):
        mlp_for_budget(0, 2, 1, 1)
    with pytest.raises(BudgetError):
        cnn_for_budget(200, 4, (3, 32, 32), 10)


def test_check_same_budget_rejects_mismatch():
    with pytest.raises(BudgetError):
        check_same_budget([mlp_for_budget(1000, 1, 1, 1), mlp_for_budget(1100, 3, 1, 1)])
