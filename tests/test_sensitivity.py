"""Input sensitivities and epsilon-sharpness (dlprobe.sensitivity, dlprobe.sharpness: the sensitivity experiment's
measurements) against finite differences and closed forms."""

import pytest
import torch
from torch import nn

import dlprobe
from dlprobe.analysis.sensitivity import example_jacobian_norms
from dlprobe.errors import ConfigError, UsageError
from dlprobe.losses import mean_loss, per_example_loss

STEP = 1e-6  # central differences in float64: truncation ~1e-12, rounding ~1e-10


def tanh_mlp(outputs=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, outputs)).double()


def tanh_cnn():
    """Tiny CNN with BatchNorm (used in eval mode) on (1, 5, 5) images."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    model = model.double()
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 1, 5, 5, dtype=torch.float64) + 1)  # nontrivial running statistics
    return model


def finite_difference_jacobian(function, single_input):
    """d function(x) / d x by central differences: function (...) -> (K,), returns (K, D)."""
    columns = []
    flat = single_input.reshape(-1)
    for index in range(flat.numel()):
        offset = torch.zeros_like(flat)
        offset[index] = STEP
        plus = function((flat + offset).view_as(single_input))
        minus = function((flat - offset).view_as(single_input))
        columns.append((plus - minus) / (2 * STEP))
    return torch.stack(columns, dim=-1)


@pytest.mark.parametrize("kind", ["mlp-ce", "mlp-mse", "cnn-ce"])
def test_input_gradient_sensitivity_matches_finite_differences(kind):
    generator = torch.Generator().manual_seed(1)
    model = tanh_cnn() if kind == "cnn-ce" else tanh_mlp(2 if kind == "mlp-mse" else 3)
    shape = (1, 5, 5) if kind == "cnn-ce" else (4,)
    loss = "mse" if kind == "mlp-mse" else "cross_entropy"
    x = torch.randn(5, *shape, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 1, 0])
    y = torch.randn(5, 2, generator=generator, dtype=torch.float64) if loss == "mse" else labels
    batches = list(zip(x.split(2), y.split(2)))
    model.train()  # the function must switch to eval mode itself and restore this flag
    result = {name: dlprobe.sensitivity(model, batches, kind, loss_fn=mean_loss(loss))
              for name, kind in (("mean_example_gradient_norm", "input_gradient"), ("batch_gradient_norm", "batch_gradient"))}
    assert model.training
    model.eval()
    with torch.no_grad():
        norms = torch.stack([
            finite_difference_jacobian(
                lambda point, n=n: per_example_loss(model(point.unsqueeze(0)), y[n : n + 1], loss), x[n]
            ).norm()
            for n in range(len(x))
        ])
    assert result["mean_example_gradient_norm"] == pytest.approx(norms.mean().item(), rel=1e-7)
    assert result["batch_gradient_norm"] == pytest.approx(norms.square().sum().sqrt().item() / len(x), rel=1e-7)
    # Dense autograd of the mean loss w.r.t. the whole batch is the second definition.
    inputs = x.clone().requires_grad_(True)
    (batch_gradient,) = torch.autograd.grad(per_example_loss(model(inputs), y, loss).mean(), inputs)
    assert result["batch_gradient_norm"] == pytest.approx(batch_gradient.norm().item(), rel=1e-10)
    assert all(parameter.grad is None for parameter in model.parameters())


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_jacobian_sensitivity_matches_finite_differences(kind):
    generator = torch.Generator().manual_seed(2)
    model = tanh_cnn() if kind == "cnn" else tanh_mlp()
    x = torch.randn(5, *((1, 5, 5) if kind == "cnn" else (4,)), generator=generator, dtype=torch.float64)
    model.train()
    value = dlprobe.sensitivity(model, list(zip(x.split(2), torch.zeros(5).split(2))), "jacobian")
    assert model.training and model[1].training  # flags restored
    model.eval()
    with torch.no_grad():
        norms = [
            finite_difference_jacobian(lambda point: torch.softmax(model(point.unsqueeze(0))[0], -1), x[n]).norm()
            for n in range(len(x))
        ]
    assert value == pytest.approx(torch.stack(norms).mean().item(), rel=1e-7)
    chunked = example_jacobian_norms(model, x, chunk_size=2)  # the kernel in chunks that do not divide the 5 examples
    assert torch.allclose(chunked, torch.stack(norms).double(), rtol=1e-7)


class Quadratic(nn.Module):
    """Outputs theta for every example: with mse against targets c, f(theta) = mean_i (theta_i - c_i)^2."""

    def __init__(self, theta):
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, inputs):
        return self.theta.expand(len(inputs), -1)


@pytest.mark.parametrize("start", ["zero", "nonzero"])
def test_sharpness_of_a_quadratic_matches_the_box_corner(start):
    # f is separable and convex, so the max over the box is at the corner that moves each
    # coordinate away from c: f_max = mean_i (|theta_i - c_i| + epsilon (|theta_i| + 1))^2.
    epsilon, size = 1e-2, 6
    theta = torch.zeros(size, dtype=torch.float64) if start == "zero" else torch.linspace(-1, 1, size).double()
    targets = torch.zeros(3, size, dtype=torch.float64) + (0 if start == "zero" else 0.3)
    model = Quadratic(theta)
    x = torch.zeros(3, 1, dtype=torch.float64)
    result = dlprobe.sharpness(model, mean_loss("mse"), (x, targets), epsilon, seed=0)
    center_loss = (theta - targets[0]).square().mean().item()
    maximum = ((theta - targets[0]).abs() + epsilon * (theta.abs() + 1)).square().mean().item()
    assert result.loss == pytest.approx(center_loss, abs=1e-14)
    assert result.loss_at_maximum == pytest.approx(maximum, rel=1e-12)
    assert result.sharpness == pytest.approx(100 * (maximum - center_loss) / (1 + center_loss), rel=1e-9)
    assert torch.equal(model.theta.detach(), theta)  # the model is not modified


def test_sharpness_is_zero_at_zero_epsilon_and_nondecreasing():
    model = tanh_mlp()
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(40, 4, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=generator)
    batches = list(zip(x.split(16), y.split(16)))
    values = [dlprobe.sharpness(model, mean_loss("cross_entropy"), batches, epsilon, seed=0) for epsilon in (0.0, 1e-4, 1e-3, 1e-2)]
    assert values[0].sharpness == 0.0 and values[0].loss_at_maximum == values[0].loss
    sharpness = [value.sharpness for value in values]
    assert all(low <= high for low, high in zip(sharpness, sharpness[1:])) and sharpness[1] > 0
    # Sharpness is a relative increase in percent of the loss found in the box.
    last = values[-1]
    assert last.sharpness == pytest.approx(100 * (last.loss_at_maximum - last.loss) / (1 + last.loss))


def test_bad_arguments_are_one_line_errors():
    model = tanh_mlp()
    x, y = torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.long)
    with pytest.raises(UsageError, match="epsilon >= 0"):
        dlprobe.sharpness(model, mean_loss("cross_entropy"), (x, y), epsilon=-1.0)
    with pytest.raises(ConfigError, match="unknown loss"):
        mean_loss("hinge")
