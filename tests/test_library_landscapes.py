"""dlprobe.interpolate, surface, sharpness, sensitivity and the plots, against references built by hand:
perturbed copies of the model evaluated with a plain forward, torch.optim.swa_utils.update_bn for recomputed
BatchNorm statistics, per-example autograd loops for sensitivities."""

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset

import dlprobe
from dlprobe.errors import UsageError


def conv_net(seed=0):
    """Conv(1->3, 3x3) + BatchNorm + tanh + linear to 3 classes on 6x6 images, float64, trained BN statistics."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).double()
    x, y = torch.randn(30, 1, 6, 6, dtype=torch.float64), torch.randint(0, 3, (30,))
    model.train()
    model(x)  # running statistics that differ from the fresh ones
    model.eval()
    return model, x, y


def moved(model, direction1, direction2, a, b):
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in copy_.named_parameters():
            param.add_(a * direction1[name] + b * direction2[name])
    return copy_


def recomputed(model, x):
    """The same model with BatchNorm statistics recomputed on x in batches of 8 (torch's update_bn)."""
    copy_ = copy.deepcopy(model)
    update_bn(DataLoader(x, batch_size=8), copy_)
    return copy_.eval()


def test_surface_grid_points_are_the_losses_of_the_perturbed_models():
    model, x, y = conv_net()
    loader = DataLoader(TensorDataset(x, y), batch_size=7)
    result = dlprobe.surface(model, loader, {"loss": nn.CrossEntropyLoss(), "accuracy": dlprobe.accuracy}, steps=3, span=0.4,
                             seed=2, progress=False)
    assert result.values["loss"].shape == (3, 3) and result.bn == "keep"
    d1, d2 = result.directions
    assert all(torch.count_nonzero(d1[name]) == 0 for name in ("0.bias", "1.weight", "1.bias", "4.bias"))  # filter-normalized
    for i, j in [(0, 0), (0, 2), (1, 1), (2, 1)]:
        a, b = result.coordinates1[i], result.coordinates2[j]
        reference = moved(model, d1, d2, a, b)
        outputs = reference(x)
        assert result.values["loss"][i, j] == pytest.approx(F.cross_entropy(outputs, y).item(), rel=1e-10)
        assert result.values["accuracy"][i, j] == pytest.approx((outputs.argmax(1) == y).double().mean().item(), abs=1e-12)
    np.testing.assert_allclose(result.values["loss"][1, 1], F.cross_entropy(model(x), y).item(), rtol=1e-12)
    chosen = dlprobe.surface(model, loader, F.cross_entropy, directions=(d1, d2), coordinates=([0.1], [-0.2, 0.3]))
    assert chosen.values["loss"].shape == (1, 2)
    assert chosen.values["loss"][0, 1] == pytest.approx(F.cross_entropy(moved(model, d1, d2, 0.1, 0.3)(x), y).item(), rel=1e-10)


def test_surface_with_recomputed_batchnorm_matches_update_bn():
    model, x, y = conv_net()
    train = torch.randn(24, 1, 6, 6, dtype=torch.float64)
    bn_data = DataLoader(TensorDataset(train, torch.zeros(24, dtype=torch.long)), batch_size=8)
    result = dlprobe.surface(model, (x, y), nn.CrossEntropyLoss(), steps=2, span=0.3, seed=1, bn=bn_data, progress=False)
    assert result.bn == "recomputed"
    d1, d2 = result.directions
    reference = recomputed(moved(model, d1, d2, -0.3, 0.3), train)
    assert result.values["loss"][0, 1] == pytest.approx(F.cross_entropy(reference(x), y).item(), rel=1e-9)


def test_interpolation_endpoints_are_the_two_models_and_the_midpoint_their_average():
    model_a, x, y = conv_net(0)
    model_b, _, _ = conv_net(1)
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    line = dlprobe.interpolate(model_a, model_b, DataLoader(TensorDataset(x, y), batch_size=8), [loss, dlprobe.accuracy],
                               alphas=[0.0, 0.5, 1.0], progress=False)
    assert list(line.values) == ["CrossEntropyLoss", "accuracy"]
    values = line.values["CrossEntropyLoss"]
    assert values[0] == pytest.approx(loss(model_a(x), y).item(), rel=1e-12)
    assert values[2] == pytest.approx(loss(model_b(x), y).item(), rel=1e-12)
    average = copy.deepcopy(model_a)
    state_b = model_b.state_dict()
    average.load_state_dict({name: (t + state_b[name]) / 2 if t.is_floating_point() else t for name, t in model_a.state_dict().items()})
    assert values[1] == pytest.approx(loss(average(x), y).item(), rel=1e-10)
    recomputed_line = dlprobe.interpolate(model_a, model_b, (x, y), loss, alphas=[0.5], bn=DataLoader(TensorDataset(x, y), batch_size=8))
    assert recomputed_line.values["loss"][0] == pytest.approx(loss(recomputed(average, x)(x), y).item(), rel=1e-9)


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))

    def forward(self, inputs):
        return {"logits": self.body(inputs), "norm": inputs.norm(dim=1)}


def test_dict_outputs_in_landscapes_sharpness_and_sensitivity():
    torch.manual_seed(0)
    model = DictNet().double()
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    plane = dlprobe.surface(model, (x, y), F.cross_entropy, steps=3, span=0.5, output="logits", progress=False)
    plain = dlprobe.surface(model.body, (x, y), F.cross_entropy, steps=3, span=0.5, progress=False)
    np.testing.assert_allclose(plane.values["loss"], plain.values["loss"], rtol=1e-12)
    assert dlprobe.sharpness(model, F.cross_entropy, (x, y), output="logits").sharpness == pytest.approx(
        dlprobe.sharpness(model.body, F.cross_entropy, (x, y)).sharpness, rel=1e-10)
    assert dlprobe.sensitivity(model, (x, y), kind="jacobian", output="logits") == pytest.approx(
        dlprobe.sensitivity(model.body, (x, y), kind="jacobian"), rel=1e-12)


def test_sharpness_over_a_dataloader_equals_the_tensor_version_and_takes_any_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(40, 4, dtype=torch.float64), torch.randint(0, 3, (40,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    result = dlprobe.sharpness(model, nn.CrossEntropyLoss(), loader, epsilon=1e-2, steps=5, seed=None)
    reference = dlprobe.sharpness(model, F.cross_entropy, (x, y), epsilon=1e-2, steps=5, seed=None)  # one batch
    assert result.sharpness == pytest.approx(reference.sharpness, rel=1e-9)
    assert result.loss_at_maximum == pytest.approx(reference.loss_at_maximum, rel=1e-12)
    smoothed = nn.CrossEntropyLoss(label_smoothing=0.1)
    random_start = dlprobe.sharpness(model, smoothed, loader, epsilon=1e-2, seed=0)
    assert random_start.loss == pytest.approx(smoothed(model(x), y).item(), rel=1e-12)
    assert random_start.sharpness > 0 and random_start.loss_at_maximum > random_start.loss
    assert dlprobe.sharpness(model, smoothed, loader, epsilon=0.0, seed=0).sharpness == 0.0


def test_sensitivities_equal_per_example_autograd_loops():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(13, 4, dtype=torch.float64), torch.randint(0, 3, (13,))
    loader = DataLoader(TensorDataset(x, y), batch_size=5)

    def nll(outputs, targets):
        return F.nll_loss(F.log_softmax(outputs, -1), targets)

    gradient_norms, jacobian_norms = [], []
    for n in range(13):
        point = x[n:n + 1].clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(nll(model(point), y[n:n + 1]), point)
        gradient_norms.append(gradient.norm().item())
        jacobian = torch.autograd.functional.jacobian(lambda v: model(v).softmax(-1), x[n:n + 1])
        jacobian_norms.append(jacobian.norm().item())
    assert dlprobe.sensitivity(model, loader, loss_fn=nll) == pytest.approx(np.mean(gradient_norms), rel=1e-10)
    assert dlprobe.sensitivity(model, loader, kind="batch_gradient", loss_fn=nll) == pytest.approx(
        np.sqrt(np.sum(np.square(gradient_norms))) / 13, rel=1e-10)
    assert dlprobe.sensitivity(model, loader, kind="jacobian") == pytest.approx(np.mean(jacobian_norms), rel=1e-10)


@pytest.mark.parametrize("call, message", [
    (lambda m, d: dlprobe.surface(m, d, F.cross_entropy, bn="recompute"), "bn must be 'keep' or a dataset"),
    (lambda m, d: dlprobe.surface(m, d, F.cross_entropy, directions=({"nope": 0}, {})), "not parameters of the model: nope"),
    (lambda m, d: dlprobe.surface(m, d, nn.CrossEntropyLoss(reduction="none"), steps=2), r"metric 'loss' returned \(30,\)"),
    (lambda m, d: dlprobe.surface(m, d, m), "metric 'loss' must be a callable"),
    (lambda m, d: dlprobe.interpolate(m, nn.Linear(2, 2), d, F.cross_entropy), "model_a and model_b differ"),
    (lambda m, d: dlprobe.sharpness(m, m, d), "i.e. a model"),
    (lambda m, d: dlprobe.sharpness(m, F.cross_entropy, d, epsilon=-1.0), "epsilon >= 0"),
    (lambda m, d: dlprobe.sensitivity(m, d), "needs loss_fn"),
    (lambda m, d: dlprobe.sensitivity(m, d, kind="hessian"), "kind must be one of"),
    (lambda m, d: dlprobe.surface(m, [], F.cross_entropy), "no batches"),
])
def test_bad_input_is_one_line_usage_error(call, message):
    model, x, y = conv_net()
    with pytest.raises(UsageError, match=message) as info:
        call(model, (x, y))
    assert "\n" not in str(info.value)


def test_plots_draw_each_result_and_return_the_axes():
    import matplotlib.pyplot as plt

    model, x, y = conv_net()
    hessian = dlprobe.Hessian(model, F.cross_entropy, (x, y), progress=False)
    ax = dlprobe.plot_spectrum(hessian.eigenvalues(4))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), hessian.eigenvalues(4).values)
    density = hessian.density(steps=10, runs=1)
    ax = dlprobe.plot_density(density, log=False)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), density.density)
    line = dlprobe.interpolate(model, conv_net(1)[0], (x, y), {"loss": F.cross_entropy, "accuracy": dlprobe.accuracy}, alphas=[0, 1])
    ax = dlprobe.plot_line(line)
    assert [axis_line.get_label() for axis_line in ax.lines[:2]] == ["loss", "accuracy"]
    _, given = plt.subplots()
    assert dlprobe.plot_surface(dlprobe.surface(model, (x, y), F.cross_entropy, steps=3), ax=given) is given
    with pytest.raises(UsageError, match="'error' is not in the line"):
        dlprobe.plot_line(line, metrics="error")
    plt.close("all")


def test_import_dlprobe_stays_cheap_and_exports_resolve_lazily():
    code = ("import sys, dlprobe; print(sorted(m for m in ('torch', 'scipy', 'matplotlib') if m in sys.modules)); "
            "print(dlprobe.Hessian.__module__, dlprobe.plot_surface.__module__, 'surface' in dir(dlprobe))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1] / "src")}).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "dlprobe.library.hessian dlprobe.plotting.library True"
    with pytest.raises(AttributeError, match="no attribute 'hessian'"):
        dlprobe.hessian  # noqa: B018


def test_trajectory_plane_spans_the_path_and_gives_its_coordinates():
    model, x, y = conv_net()
    center = {name: p.detach().clone() for name, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    u = {name: torch.randn(t.shape, generator=generator, dtype=t.dtype) for name, t in center.items()}
    v = {name: torch.randn(t.shape, generator=generator, dtype=t.dtype) for name, t in center.items()}
    steps = [(3.0, 1.0), (2.0, -0.5), (1.0, 0.2), (0.5, 0.0)]  # a path in span(u, v) ending next to the model
    snapshots = [{name: center[name] + a * u[name] + b * v[name] for name in center} for a, b in steps]
    plane = dlprobe.trajectory_plane(model, snapshots)
    assert plane.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    assert plane.path.shape == (4, 2)
    d1, d2 = plane.directions
    for (a, b), (c1, c2), snapshot in zip(steps, plane.path, snapshots):  # the coordinates rebuild each snapshot
        for name in center:
            torch.testing.assert_close(center[name] + c1 * d1[name] + c2 * d2[name], snapshot[name], atol=1e-10, rtol=0)
    flat = torch.cat([torch.cat([d[name].reshape(-1) for name in center]) for d in (d1, d2)]).view(2, -1)
    torch.testing.assert_close(flat @ flat.T, torch.eye(2, dtype=flat.dtype), atol=1e-12, rtol=0)
    plot = dlprobe.surface(model, (x, y), F.cross_entropy, directions=plane.directions, steps=3, span=1.0)
    assert plot.values["loss"].shape == (3, 3)
    with pytest.raises(UsageError, match="at least 2 snapshots"):
        dlprobe.trajectory_plane(model, snapshots[:1])


class _BatchCentred(nn.Module):
    """Subtracts the batch mean of its inputs even in eval mode: the examples of a batch interact."""

    def forward(self, inputs):
        return inputs - inputs.mean(dim=0, keepdim=True)


def test_sub_batches_give_the_same_surface_and_are_refused_for_a_model_whose_examples_interact(monkeypatch):
    """Forced by a small budget (library.sub_batches): 30 images in parts of at most 8; every metric the same as on
    whole batches, with statistics kept or recomputed; a batch-centring model is left in whole batches."""
    import dlprobe.library.sub_batches as sub_batches

    model, x, y = conv_net()
    metrics = {"loss": nn.CrossEntropyLoss(), "accuracy": dlprobe.accuracy}
    bn_data = DataLoader(TensorDataset(x[:16], y[:16]), batch_size=8)
    whole = [dlprobe.surface(model, (x, y), metrics, steps=3, seed=1, bn=bn, progress=False) for bn in ("keep", bn_data)]
    coupled = nn.Sequential(_BatchCentred(), model)
    coupled_whole = dlprobe.surface(coupled, (x, y), metrics, steps=3, seed=1, progress=False)
    monkeypatch.setattr(sub_batches, "BUDGET_BYTES", 8 * 3 * 4 * 4 * 8)  # 8 examples of the largest output (3x4x4 float64)
    monkeypatch.setattr(sub_batches, "MIN_EXAMPLES", 1)
    calls = []
    monkeypatch.setattr(dlprobe.library.landscapes, "split_batch",
                        lambda inputs, targets, size: calls.append(size) or sub_batches.split_batch(inputs, targets, size))
    for bn, reference in zip(("keep", bn_data), whole):
        split = dlprobe.surface(model, (x, y), metrics, steps=3, seed=1, bn=bn, progress=False)
        assert calls[-1] == 8
        for name in metrics:
            np.testing.assert_allclose(split.values[name], reference.values[name], rtol=1e-12, atol=1e-15)
    again = dlprobe.surface(coupled, (x, y), metrics, steps=3, seed=1, progress=False)
    assert calls[-1] is None
    np.testing.assert_allclose(again.values["loss"], coupled_whole.values["loss"], rtol=1e-12)
