"""The ensemble trainer's fast pieces against the plain torch operations they replace."""

import pytest
import torch

from dlprobe.models.fast_tanh import fast_tanh
from dlprobe.models.ensemble_mlp import ensemble_linear


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 4e-7), (torch.float64, 1e-15)])
def test_fast_tanh_values_match_torch(dtype, tolerance):
    x = torch.cat([torch.linspace(-20, 20, 10001, dtype=dtype), torch.randn(5000, dtype=dtype, generator=torch.Generator().manual_seed(0))])
    assert torch.max(torch.abs(fast_tanh(x) - torch.tanh(x))).item() <= tolerance


def test_fast_tanh_gradient_matches_torch_and_non_contiguous_input():
    x = torch.randn(7, 9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).transpose(0, 2)
    weights = torch.randn(x.shape, dtype=torch.float64)
    fast_input = x.clone().requires_grad_(True)
    plain_input = x.clone().requires_grad_(True)
    (fast_tanh(fast_input) * weights).sum().backward()
    (torch.tanh(plain_input) * weights).sum().backward()
    assert torch.allclose(fast_input.grad, plain_input.grad, rtol=0, atol=1e-15)
    assert fast_tanh(x).shape == x.shape


def test_fast_tanh_refuses_a_second_derivative_instead_of_a_wrong_one():
    x = torch.randn(4, requires_grad=True)
    (gradient,) = torch.autograd.grad(fast_tanh(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gradient.sum().backward()


def test_fast_tanh_falls_back_to_torch_for_other_dtypes():
    x = torch.linspace(-3, 3, 11, dtype=torch.bfloat16)
    assert torch.equal(fast_tanh(x), torch.tanh(x))


@pytest.mark.parametrize("fan_in, fan_out", [(1, 6), (6, 1), (5, 7), (1, 1)])
def test_ensemble_linear_equals_baddbmm_with_gradients(fan_in, fan_out):
    generator = torch.Generator().manual_seed(fan_in * 10 + fan_out)
    tensors = [torch.randn(shape, dtype=torch.float64, generator=generator, requires_grad=True)
               for shape in [(3, 11, fan_in), (3, fan_in, fan_out), (3, 1, fan_out)]]
    reference = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = ensemble_linear(*tensors)
    expected = torch.baddbmm(*[reference[2], reference[0], reference[1]])
    assert torch.allclose(out, expected, rtol=0, atol=1e-13)
    upstream = torch.randn(out.shape, dtype=torch.float64, generator=generator)
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    for mine, theirs in zip(tensors, reference):
        assert torch.allclose(mine.grad, theirs.grad, rtol=0, atol=1e-12)


def _autograd_reference(model, x, target, loss, shared, alive):
    from dlprobe.losses import per_example_loss

    for p in model.parameters():
        p.grad = None
    losses = per_example_loss(model(x, shared=shared), target, loss).mean(dim=1)
    torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
    return losses.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("in_features, widths", [(1, (5, 4)), (3, (6,)), (2, (1, 3))])
def test_hand_written_backward_equals_autograd(activation, loss, shared, in_features, widths):
    from dlprobe.models.mlp import MLPSpec
    from dlprobe.models.ensemble_mlp import EnsembleMLP
    from dlprobe.training.ensemble_step import StepBuffers, loss_and_gradients

    out_features = 1 if loss == "mse" else 4
    spec = MLPSpec(in_features, widths, out_features, activation)
    model = EnsembleMLP(spec, [0, 1, 2]).double()
    generator = torch.Generator().manual_seed(7)
    batch = 9
    x = torch.randn((batch, in_features) if shared else (3, batch, in_features), dtype=torch.float64, generator=generator)
    if loss == "mse":
        target = torch.randn(3, batch, 1, dtype=torch.float64, generator=generator)
    else:
        target = torch.randint(0, out_features, (3, batch), generator=generator)
    alive = torch.tensor([True, False, True])
    expected_losses, expected = _autograd_reference(model, x, target, loss, shared, alive)
    losses = loss_and_gradients(model, x, target, loss, shared, alive, StepBuffers())
    assert torch.allclose(losses, expected_losses, rtol=1e-13, atol=0)
    for p, reference in zip(model.parameters(), expected):
        assert torch.allclose(p.grad, reference, rtol=1e-12, atol=1e-14)
        assert torch.count_nonzero(p.grad[1]) == 0  # the model marked not alive gets no gradient


def test_hand_written_training_equals_autograd_training():
    from dlprobe.data.tensors import TensorData
    from dlprobe.models.mlp import MLPSpec
    from dlprobe.training.common import OptimizerSettings
    from dlprobe.training.ensemble import train_ensemble
    from dlprobe.training.loop import TrainSpec

    x = torch.linspace(-1, 1, 40).view(-1, 1)
    data = TensorData(x, torch.sin(3 * x), x[:8], torch.sin(3 * x[:8]))
    spec_t = TrainSpec(loss="mse", optimizer=OptimizerSettings("adam", lr=1e-2), epochs=30, batch_size=8, eval_every=10)
    runs = [train_ensemble(MLPSpec(1, (8, 8), 1, "tanh"), [0, 1, 2], data, spec_t, manual_backward=manual) for manual in (True, False)]
    assert torch.allclose(runs[0].model.flat_params(), runs[1].model.flat_params(), rtol=0, atol=1e-6)
    assert torch.allclose(runs[0].final["train_loss"], runs[1].final["train_loss"], rtol=1e-5, atol=0)
