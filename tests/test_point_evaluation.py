"""The point-evaluation engine: first-layer split and per-point conv path against a plain model per point."""

import copy

import pytest
import torch
from torch import nn

from dlprobe.analysis.point_evaluation import PointEvaluator, combine_states, first_layer_index
from dlprobe.models.budget import cnn_for_budget
from dlprobe.models.cnn import build_cnn
from dlprobe.models.mlp import MLPSpec, build_mlp


def _plain_outputs(model, states, coefficients, x):
    """Reference: build each point's weights by hand and call an ordinary copy of the model."""
    outputs = []
    for row in coefficients:
        point = copy.deepcopy(model)
        with torch.no_grad():
            for name, tensor in point.state_dict().items():
                if name not in states[0]:
                    continue
                value = row[0] * states[0][name]
                for weight, state in zip(row[1:], states[1:]):
                    if name in state:
                        value = value + weight * state[name]
                tensor.copy_(value)
            outputs.append(point.eval()(x))
    return torch.stack(outputs)


def _random_state(model, seed):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(t.shape, dtype=t.dtype, generator=generator) for name, t in model.state_dict().items()}


def test_first_layer_index_only_for_plain_sequential_models():
    assert first_layer_index(build_mlp(MLPSpec(4, (3,), 2), torch.Generator().manual_seed(0))) == 1
    assert first_layer_index(nn.Sequential(nn.ReLU(), nn.Linear(2, 2))) is None
    assert first_layer_index(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))) is None
    assert first_layer_index(build_cnn(cnn_for_budget(2_000, 1, (1, 8, 8), 3), torch.Generator().manual_seed(0))) is None


def test_first_layer_split_equals_one_model_per_point_with_three_states_and_partial_directions():
    model = build_mlp(MLPSpec(6, (5, 4), 3, "tanh"), torch.Generator().manual_seed(0)).double()
    base = dict(model.state_dict())
    direction1 = _random_state(model, 1)
    direction2 = {k: v for k, v in _random_state(model, 2).items() if k != "1.bias"}  # missing: counts as zero
    coefficients = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.3, -1.2], [1.0, -2.0, 0.7], [0.5, 1.0, 1.0]], dtype=torch.float64)
    x = torch.randn(9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    evaluator = PointEvaluator(model.eval(), [base, direction1, direction2], coefficients)
    assert evaluator.split
    expected = _plain_outputs(model, [base, direction1, direction2], coefficients, x)
    assert torch.allclose(evaluator(x), expected, rtol=0, atol=1e-12)


def test_conv_models_are_evaluated_point_by_point_with_the_same_values():
    model = build_cnn(cnn_for_budget(2_000, 1, (1, 8, 8), 3), torch.Generator().manual_seed(0)).double().eval()
    states = [dict(model.state_dict()), _random_state(model, 4)]
    coefficients = torch.tensor([[1.0, 0.0], [0.25, 0.75], [-1.0, 2.0]], dtype=torch.float64)
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    evaluator = PointEvaluator(model, states, coefficients)
    assert not evaluator.split
    assert torch.allclose(evaluator(x), _plain_outputs(model, states, coefficients, x), rtol=0, atol=1e-12)


def test_combine_states_copies_integer_buffers_from_the_first_state():
    states = [{"w": torch.ones(2), "count": torch.tensor(7)}, {"w": torch.full((2,), 3.0), "count": torch.tensor(1)}]
    stacked = combine_states(states, torch.tensor([[0.5, 0.5], [1.0, -1.0]]))
    assert torch.equal(stacked["w"], torch.tensor([[2.0, 2.0], [-2.0, -2.0]]))
    assert torch.equal(stacked["count"], torch.tensor([7, 7]))


@pytest.mark.parametrize("bias", [True, False])
def test_split_handles_a_first_layer_without_bias(bias):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=bias), nn.ReLU(), nn.Linear(3, 2)).double().eval()
    states = [dict(model.state_dict()), _random_state(model, 6)]
    coefficients = torch.tensor([[0.6, 0.4], [1.5, -0.5]], dtype=torch.float64)
    x = torch.randn(7, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    evaluator = PointEvaluator(model, states, coefficients)
    assert evaluator.split
    assert torch.allclose(evaluator(x), _plain_outputs(model, states, coefficients, x), rtol=0, atol=1e-12)
