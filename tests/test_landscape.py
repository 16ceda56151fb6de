"""Interpolation, BatchNorm recomputation, filter-normalized directions and 2-D surfaces: the analysis pieces and
dlprobe.interpolate / dlprobe.surface (the one evaluation of weight points, the experiments' too) built on them.

The one-model-at-a-time reference for interpolation lives with its benchmark (benchmarks/interpolation.py)."""

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.functional import cross_entropy, mse_loss

import dlprobe
from dlprobe.analysis.landscape import filter_normalized_direction, projection_onto_plane, recompute_batchnorm_statistics
from dlprobe.errors import ConfigError
from dlprobe.losses import mean_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ lives at the repository root

from benchmarks.interpolation import evaluate_interpolation_sequential, interpolate_params  # noqa: E402


def mlp(seed, dtype=torch.float32, outputs=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, outputs)).to(dtype)


def bn_model(seed):
    """BatchNorm first (its statistics have a hand-computable reference), then a hidden BN layer."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3))


def bn_cnn(seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)
    ).double()


def trained_statistics(model, shift, seed):
    """Give the BatchNorm layers nontrivial running statistics (as after training)."""
    generator = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(16, *_input_shape(model), generator=generator, dtype=dtype) * 2 + shift)
    model.eval()
    return model


def _input_shape(model):
    return (1, 6, 6) if isinstance(model[0], nn.Conv2d) else (4,)


def data(num=23, shape=(4,), dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num, *shape, generator=generator, dtype=dtype)
    return inputs, torch.randint(0, 3, (num,), generator=generator)


def state(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def line(model1, model2, alphas, x, y, loss="cross_entropy", batch_size=1024, chunk_size=16, bn="keep"):
    """dlprobe.interpolate on (x, y) in batches of batch_size with the experiments' metrics: {name: (A,) tensor}."""
    batches = list(zip(x.split(batch_size), y.split(batch_size)))
    metrics = {"loss": mean_loss(loss), **({"accuracy": dlprobe.accuracy} if loss == "cross_entropy" else {})}
    result = dlprobe.interpolate(model1, model2, batches, metrics, alphas, bn=bn, chunk_size=chunk_size, progress=False)
    return {name: torch.from_numpy(values) for name, values in result.values.items()}


def test_interpolate_params_endpoints_are_bitwise_and_int_buffers_copied():
    first = state(trained_statistics(bn_model(0), 1.0, 0))
    second = state(trained_statistics(bn_model(1), -1.0, 1))
    stacked = interpolate_params(first, second, torch.tensor([0.0, 1.0, 0.25]))
    for name in first:
        assert stacked[name].shape == (3, *first[name].shape)
        if first[name].is_floating_point():
            assert torch.equal(stacked[name][0], first[name]) and torch.equal(stacked[name][1], second[name])
            assert torch.allclose(stacked[name][2], 0.75 * first[name] + 0.25 * second[name])
        else:
            assert stacked[name].dtype == first[name].dtype and torch.equal(stacked[name][2], first[name])


def test_alpha_zero_and_one_reproduce_endpoint_losses():
    model1, model2 = mlp(0), mlp(1)
    x, y = data()
    result = line(model1, model2, [0.0, 1.0], x, y)
    with torch.no_grad():
        for index, model in enumerate((model1, model2)):
            outputs = model(x)
            assert result["loss"][index].item() == pytest.approx(cross_entropy(outputs, y).item(), abs=1e-6)
            accuracy = (outputs.argmax(1) == y).double().mean().item()
            assert result["accuracy"][index].item() == pytest.approx(accuracy, abs=1e-12)


@pytest.mark.parametrize("kind", ["mlp-mse", "mlp-ce", "bn-mlp", "bn-cnn"])
def test_vmapped_equals_sequential_for_all_alphas(kind):
    alphas = torch.linspace(-1, 2, 7)  # alphas[2] = 0
    if kind == "bn-cnn":
        model1, model2 = trained_statistics(bn_cnn(0), 0.5, 0), trained_statistics(bn_cnn(1), -0.5, 1)
        (x, y), loss = data(shape=(1, 6, 6), dtype=torch.float64), "cross_entropy"
    elif kind == "bn-mlp":
        model1, model2 = trained_statistics(bn_model(0), 1.0, 0), trained_statistics(bn_model(1), -1.0, 1)
        (x, y), loss = data(), "cross_entropy"
    else:
        outputs, loss = (2, "mse") if kind == "mlp-mse" else (3, "cross_entropy")
        model1, model2 = mlp(0, torch.float64, outputs), mlp(1, torch.float64, outputs)
        x, labels = data(dtype=torch.float64)
        y = torch.randn(len(x), outputs, dtype=torch.float64) if loss == "mse" else labels
    bn = list(zip(x.split(10), y.split(10))) if kind.startswith("bn") else "keep"  # what the reference recomputes on
    batched = line(model1, model2, alphas, x, y, loss, batch_size=10, chunk_size=3, bn=bn)  # chunks that do not divide
    sequential = evaluate_interpolation_sequential(model1, state(model1), state(model2), alphas, x, y, loss, batch_size=10)
    tolerance = 1e-5 if kind == "bn-mlp" else 1e-10  # bn-mlp runs in float32
    assert torch.allclose(batched["loss"], sequential["loss"], rtol=tolerance, atol=tolerance)
    if loss == "mse":
        assert "accuracy" not in batched and sequential["accuracy"] is None
        with torch.no_grad():
            assert batched["loss"][2].item() == pytest.approx(mse_loss(model1(x), y).item(), abs=1e-12)
    else:
        assert torch.equal(batched["accuracy"], sequential["accuracy"])


def test_batchnorm_statistics_are_recomputed_not_interpolated():
    model1, model2 = trained_statistics(bn_model(0), 1.0, 0), trained_statistics(bn_model(1), -1.0, 1)
    before = state(model1)
    x, _ = data(num=30)
    batches = list(torch.split(x, 8))
    first, second = state(model1), state(model2)
    naive = interpolate_params(first, second, torch.tensor([0.0, 0.5]))
    recomputed = recompute_batchnorm_statistics(model1, naive, batches)
    # Hand reference for the input layer: plain average of per-batch means and unbiased variances.
    expected_mean = torch.stack([batch.mean(0) for batch in batches]).mean(0)
    expected_var = torch.stack([batch.var(0) for batch in batches]).mean(0)
    assert torch.allclose(recomputed["0.running_mean"][0], expected_mean, atol=1e-6)
    assert torch.allclose(recomputed["0.running_var"][0], expected_var, atol=1e-6)
    # PyTorch's own cumulative statistics (momentum=None) for model 1 from scratch, every layer.
    scratch = copy.deepcopy(model1)
    for module in (scratch[0], scratch[2]):
        module.reset_running_stats()
        module.momentum = None
    scratch.train()
    with torch.no_grad():
        for batch in batches:
            scratch(batch)
    for name, tensor in scratch.state_dict().items():
        if "running" in name or "num_batches" in name:
            assert torch.allclose(recomputed[name][0].to(tensor.dtype), tensor, atol=1e-6), name
            # ... and at alpha = 0.5 they are not the naively interpolated running statistics.
            if "running" in name:
                assert not torch.allclose(recomputed[name][1], naive[name][1], atol=1e-2), name
    # dlprobe.interpolate uses these statistics: recomputed on a stated dataset (here the batches of x, as pairs), so
    # alpha = 0 is model 1 with recomputed, not its own, statistics; bn="keep" gives model 1 itself.
    labels = torch.zeros(len(x), dtype=torch.long)
    pairs = [(batch, torch.zeros(len(batch), dtype=torch.long)) for batch in batches]
    recomputed_line = line(model1, model2, [0.0, 0.5], x, labels, batch_size=8, bn=pairs)
    kept = line(model1, model2, [0.0, 0.5], x, labels, batch_size=8)
    with torch.no_grad():
        assert recomputed_line["loss"][0].item() == pytest.approx(cross_entropy(scratch.eval()(x), labels).item(), abs=1e-6)
        assert abs(recomputed_line["loss"][0].item() - cross_entropy(model1(x), labels).item()) > 1e-3
        assert kept["loss"][0].item() == pytest.approx(cross_entropy(model1(x), labels).item(), abs=1e-6)
    # The model itself is untouched: same buffers, momentum and mode.
    assert all(torch.equal(before[name], tensor) for name, tensor in model1.state_dict().items())
    assert model1[0].momentum == 0.1 and not model1.training


def test_filter_normalized_direction_matches_filter_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 9, 3))
    params = state(trained_statistics_cnn(model))
    direction = filter_normalized_direction(params, torch.Generator().manual_seed(1))
    assert direction.keys() == params.keys()
    for name in ("0.weight", "3.weight"):
        weight_norms = params[name].flatten(1).norm(dim=1)
        assert torch.allclose(direction[name].flatten(1).norm(dim=1), weight_norms, rtol=1e-5)
        assert not torch.allclose(direction[name], params[name])
    for name in ("0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "3.bias"):
        assert torch.count_nonzero(direction[name]) == 0
    again = filter_normalized_direction(params, torch.Generator().manual_seed(1))
    assert all(torch.equal(direction[name], again[name]) for name in params)


def trained_statistics_cnn(model):
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 2, 5, 5) + 1)
    return model.eval()


def test_surface_origin_and_grid_points():
    model = mlp(0, torch.float64)
    x, y = data(dtype=torch.float64)
    params = state(model)
    direction1 = filter_normalized_direction(params, torch.Generator().manual_seed(1))
    direction2 = filter_normalized_direction(params, torch.Generator().manual_seed(2))
    coords1, coords2 = [-0.5, 0.0, 0.3], [0.0, 0.7]
    result = dlprobe.surface(model, list(zip(x.split(10), y.split(10))), mean_loss("cross_entropy"), directions=(direction1, direction2),
                             coordinates=(coords1, coords2), chunk_size=4, progress=False)
    surface = result.values["loss"]
    assert surface.shape == (3, 2)
    with torch.no_grad():
        assert surface[1, 0].item() == pytest.approx(cross_entropy(model(x), y).item(), abs=1e-12)
        moved = copy.deepcopy(model)
        shifted = {name: value - 0.5 * direction1[name] + 0.7 * direction2[name] for name, value in params.items()}
        moved.load_state_dict(shifted)
        assert surface[0, 1].item() == pytest.approx(cross_entropy(moved(x), y).item(), abs=1e-12)


def test_projection_onto_plane_constructed_cases():
    """Non-orthogonal directions: 2 d1 - 3 d2 lies in the plane, a vector orthogonal to both has nothing in it."""
    direction1 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    direction2 = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)  # 45 degrees from direction1
    center = torch.tensor([0.5, -1.0, 2.0, 3.0], dtype=torch.float64)
    in_plane, orthogonal = center + 2 * direction1 - 3 * direction2, center + torch.tensor([0.0, 0.0, 3.0, -4.0], dtype=torch.float64)
    result = projection_onto_plane(torch.stack([in_plane, orthogonal]), center, direction1, direction2)
    assert torch.allclose(result["coordinates"], torch.tensor([[2.0, -3.0], [0.0, 0.0]], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(result["distance"], torch.tensor([10 ** 0.5, 5.0], dtype=torch.float64))  # ||(-1, -3, 0, 0)||, ||(0, 0, 3, -4)||
    assert torch.allclose(result["projected_norm"] / result["distance"], torch.tensor([1.0, 0.0], dtype=torch.float64), atol=1e-12)
    with pytest.raises(ConfigError, match="linearly independent"):
        projection_onto_plane(torch.stack([in_plane, orthogonal]), center, direction1, -2 * direction1)


def test_projection_onto_plane_matches_numpy_lstsq():
    generator = torch.Generator().manual_seed(1)
    center, direction1, direction2 = torch.randn(3, 40, generator=generator, dtype=torch.float64)
    direction2 = direction2 + 0.5 * direction1  # far from orthogonal
    points = torch.randn(6, 40, generator=generator, dtype=torch.float64)
    result = projection_onto_plane(points, center, direction1, direction2)
    basis, offsets = torch.stack([direction1, direction2], dim=1).numpy(), (points - center).numpy()
    coordinates, *_ = np.linalg.lstsq(basis, offsets.T, rcond=None)
    np.testing.assert_allclose(result["coordinates"].numpy(), coordinates.T, rtol=1e-10)
    np.testing.assert_allclose(result["projected_norm"].numpy(), np.linalg.norm(coordinates.T @ basis.T, axis=1), rtol=1e-10)
    np.testing.assert_allclose(result["distance"].numpy(), np.linalg.norm(offsets, axis=1), rtol=1e-12)
    assert (result["projected_norm"] < result["distance"]).all()


def test_mean_loss_is_the_mean_of_the_per_example_losses_and_refuses_an_unknown_name():
    outputs, labels = torch.randn(7, 3), torch.randint(0, 3, (7,))
    value = mean_loss("cross_entropy")(outputs, labels)
    assert value.dtype == torch.float64 and value.item() == pytest.approx(cross_entropy(outputs, labels).item(), rel=1e-6)
    targets = torch.randn(7)  # (N,) read as (N, K) for K = 1
    assert mean_loss("mse")(outputs[:, :1], targets).item() == pytest.approx(mse_loss(outputs[:, 0], targets).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="unknown loss"):
        mean_loss("hinge")
