"""dlprobe.Hessian against independent references (float64, tiny smooth nets).

Reference: torch.autograd.functional.hessian of the full-batch loss as a function of the parameter tensors
(assembled into the dense (P, P) matrix), numpy's eigvalsh on it and on its blocks.
"""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlprobe.errors import UsageError
from dlprobe.library.hessian import Hessian, rademacher_probes


def classifier(seed=0):
    """3-5-4 tanh MLP (44 parameters), 37 examples of 4 classes, float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    inputs = torch.randn(37, 3, dtype=torch.float64)
    labels = torch.randint(0, 4, (37,))
    return model, inputs, labels


def reference_hessian(model, loss_fn, inputs, targets, names=None):
    """Dense Hessian (P, P) of loss_fn(model(inputs), targets) w.r.t. the named parameters (all by default)."""
    named = dict(model.named_parameters())
    names = names or list(named)
    values = tuple(named[name].detach() for name in names)

    def loss(*tensors):
        return loss_fn(functional_call(model, dict(zip(names, tensors)), (inputs,)), targets)

    blocks = torch.autograd.functional.hessian(loss, values)
    sizes = [v.numel() for v in values]
    rows = [torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(values))], dim=1)
            for i in range(len(values))]
    return torch.cat(rows).numpy()


def test_dense_equals_autograd_hessian_for_any_loss_callable():
    model, x, y = classifier()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    hessian = Hessian(model, loss_fn, (x, y), progress=False)
    reference = reference_hessian(model, loss_fn, x, y)
    assert hessian.num_params == 44 and hessian.num_examples == 37 and hessian.num_batches == 1
    assert hessian.loss == pytest.approx(loss_fn(model(x), y).item(), rel=1e-12)
    np.testing.assert_allclose(hessian.dense(), reference, atol=1e-12)
    nll = Hessian(model, lambda out, t: F.nll_loss(F.log_softmax(out, -1), t), (x, y), progress=False)
    np.testing.assert_allclose(nll.dense(), reference_hessian(model, F.cross_entropy, x, y), atol=1e-12)


def test_dataloader_gives_the_spectrum_of_the_concatenated_tensors():
    model, x, y = classifier()
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    whole = Hessian(model, nn.CrossEntropyLoss(), (x, y), progress=False)
    batched = Hessian(model, nn.CrossEntropyLoss(), loader, progress=False)
    assert batched.num_batches == 5 and batched.num_examples == 37  # the last batch has 5: weights by size
    assert batched.loss == pytest.approx(whole.loss, rel=1e-12)
    np.testing.assert_allclose(batched.dense(), whole.dense(), atol=1e-12)
    np.testing.assert_allclose(batched.eigenvalues(3).values, whole.eigenvalues(3).values, rtol=1e-9)
    probes = rademacher_probes(4, whole.num_params, seed=3)
    assert batched.trace(probes).estimate == pytest.approx(whole.trace(probes).estimate, rel=1e-10)


def test_per_layer_and_per_block_spectra_are_blocks_of_the_dense_hessian():
    model, x, y = classifier()
    reference = reference_hessian(model, F.cross_entropy, x, y)  # order: 0.weight (15), 0.bias (5), 2.weight (20), 2.bias (4)
    last = Hessian(model, F.cross_entropy, (x, y), params="2", progress=False)
    assert last.names == ["2.weight", "2.bias"] and last.num_params == 24
    block = reference[20:, 20:]
    np.testing.assert_allclose(last.dense(), block, atol=1e-12)
    np.testing.assert_allclose(last.eigenvalues(2).values, np.linalg.eigvalsh(block)[::-1][:2], rtol=1e-8)
    mixed = Hessian(model, F.cross_entropy, (x, y), params=[model[2].bias, model[0]], progress=False)
    assert mixed.names == ["0.weight", "0.bias", "2.bias"]  # model order, whatever the order asked
    keep = np.r_[0:20, 40:44]
    np.testing.assert_allclose(mixed.dense(), reference[np.ix_(keep, keep)], atol=1e-12)


def test_frozen_parameters_are_excluded():
    model, x, y = classifier()
    model[0].requires_grad_(False)
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    assert hessian.names == ["2.weight", "2.bias"] and hessian.num_params == 24
    np.testing.assert_allclose(hessian.dense(), reference_hessian(model, F.cross_entropy, x, y)[20:, 20:], atol=1e-12)
    with pytest.raises(UsageError, match="only frozen"):
        Hessian(model, F.cross_entropy, (x, y), params="0")


class DictModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4))

    def forward(self, inputs):
        logits = self.body(inputs)
        return {"logits": logits, "features": logits.detach()}


def test_dict_and_tuple_outputs_are_selected():
    torch.manual_seed(0)
    model = DictModel().double()
    _, x, y = classifier()
    by_key = Hessian(model, F.cross_entropy, (x, y), output="logits", progress=False)
    np.testing.assert_allclose(by_key.dense(), reference_hessian(model.body, F.cross_entropy, x, y), atol=1e-12)
    by_callable = Hessian(model, F.cross_entropy, (x, y), output=lambda out: out["logits"], progress=False)
    np.testing.assert_allclose(by_callable.dense(), by_key.dense(), atol=0)
    with pytest.raises(UsageError, match=r"dict with keys \['logits', 'features'\]"):
        Hessian(model, F.cross_entropy, (x, y))
    with pytest.raises(UsageError, match="output='probs' is not in"):
        Hessian(model, F.cross_entropy, (x, y), output="probs")
    pair = nn.Sequential(model.body, _Pair())
    np.testing.assert_allclose(Hessian(pair, F.cross_entropy, (x, y), output=0, progress=False).dense(), by_key.dense(), atol=1e-14)


class _Pair(nn.Module):
    def forward(self, logits):
        return logits, logits.softmax(-1)


def test_trace_with_the_same_probes_is_the_same_sum_and_the_estimate_is_consistent():
    model, x, y = classifier()
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    dense = hessian.dense()
    probes = rademacher_probes(300, hessian.num_params, seed=0).numpy()
    exact_samples = np.einsum("ip,pq,iq->i", probes, dense, probes)
    estimate = hessian.trace(probes=300, seed=0)  # draws the same probes
    np.testing.assert_allclose(estimate.samples, exact_samples, rtol=1e-10, atol=1e-12)
    assert estimate.estimate == pytest.approx(exact_samples.mean(), rel=1e-10)
    assert estimate.standard_error == pytest.approx(exact_samples.std(ddof=1) / np.sqrt(300), rel=1e-10)
    # Rademacher: Var(z^T H z) = 2 (||H||_F^2 - sum_i H_ii^2); the estimate is within 4 of its standard errors.
    spread = np.sqrt(2 * ((dense**2).sum() - (np.diag(dense) ** 2).sum()) / 300)
    assert abs(estimate.estimate - np.trace(dense)) < 4 * spread


def test_density_integrates_to_one_and_its_moments_are_the_trace_moments():
    model, x, y = classifier()
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    dense, num_params = hessian.dense(), hessian.num_params
    runs = 40
    result = hessian.density(steps=20, runs=runs, seed=1)
    assert result.density.shape == result.grid.shape == (2000,) and result.nodes.shape == result.weights.shape
    assert np.trapezoid(result.density, result.grid) == pytest.approx(1.0, abs=1e-6)
    # The quadrature of each run reproduces v^T H^j v / P for its start vector v (j <= 2 with >= 2 steps) ...
    starts = rademacher_probes(runs, num_params, seed=1).numpy()
    first = np.einsum("ip,pq,iq->", starts, dense, starts) / (runs * num_params)
    second = np.einsum("ip,pq,iq->", starts, dense @ dense, starts) / (runs * num_params)
    assert (result.weights * result.nodes).sum() == pytest.approx(first, rel=1e-8)
    assert (result.weights * result.nodes**2).sum() == pytest.approx(second, rel=1e-8)
    # ... and the smoothed density's mean and second moment (+ sigma^2 from the Gaussians) are the same numbers.
    assert np.trapezoid(result.grid * result.density, result.grid) == pytest.approx(first, rel=1e-5, abs=1e-8)
    assert np.trapezoid(result.grid**2 * result.density, result.grid) == pytest.approx(second + result.sigma**2, rel=1e-5)
    # Both are unbiased for tr(H)/P and tr(H^2)/P: within 4 standard errors of the dense values.
    for matrix, moment in ((dense, first), (dense @ dense, second)):
        spread = np.sqrt(2 * ((matrix**2).sum() - (np.diag(matrix) ** 2).sum()) / runs) / num_params
        assert abs(moment - np.trace(matrix) / num_params) < 4 * spread


def test_eigenvalues_are_sorted_as_named_and_vectors_are_eigenvectors():
    model, x, y = classifier()
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    dense = hessian.dense()
    exact = np.linalg.eigvalsh(dense)
    largest = hessian.eigenvalues(3, vectors=True)
    np.testing.assert_allclose(largest.values, exact[::-1][:3], rtol=1e-8)
    assert largest.vectors.shape == (3, 44)
    np.testing.assert_allclose(dense @ largest.vectors.T, largest.vectors.T * largest.values, atol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(largest.vectors, axis=1), 1.0, rtol=1e-10)
    smallest = hessian.eigenvalues(2, which="smallest")
    np.testing.assert_allclose(smallest.values, exact[:2], rtol=1e-8)
    assert smallest.vectors is None
    magnitude = hessian.eigenvalues(4, which="magnitude").values
    np.testing.assert_allclose(magnitude, exact[np.argsort(-np.abs(exact))][:4], rtol=1e-8)


def test_hvp_keeps_the_kind_of_its_input_and_minimal_ratio_counts_positive_eigenvalues():
    model, x, y = classifier()
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    dense = hessian.dense()
    vectors = np.random.default_rng(0).standard_normal((3, 44))
    np.testing.assert_allclose(hessian.hvp(vectors), vectors @ dense, atol=1e-12)
    single = hessian.hvp(torch.as_tensor(vectors[0]))
    assert isinstance(single, torch.Tensor) and single.shape == (44,)
    exact = np.linalg.eigvalsh(dense)
    ratio = hessian.minimal_ratio()
    assert ratio.method == "dense" and ratio.value == pytest.approx(np.mean(exact > 1e-6 * np.abs(exact).max()))
    # Full-length Lanczos: nodes are the exact eigenvalues, each weighing 1/P in expectation.
    estimated = hessian.minimal_ratio(dense_limit=0, steps=44, runs=30)
    assert estimated.method == "density" and abs(estimated.value - ratio.value) < 0.1


def test_float64_on_a_copy_and_batchnorm_buffers_left_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    before = {name: b.clone() for name, b in model.named_buffers()}
    model.train()  # batch statistics; running statistics must not move
    hessian = Hessian(model, F.cross_entropy, DataLoader(TensorDataset(x, y), batch_size=16), dtype=torch.float64, progress=False)
    assert hessian.dtype == torch.float64 and next(model.parameters()).dtype == torch.float32
    dense = hessian.dense()
    hessian.eigenvalues(1)
    for name, buffer in list(model.named_buffers()) + list(hessian.model.named_buffers()):
        assert torch.equal(buffer, before[name].to(buffer.dtype)), name
    # Reference: per batch of 16 in train mode (batch statistics) on the float64 copy, weighted 16/32 each.
    halves = [reference_hessian(hessian.model, F.cross_entropy, x[i:i + 16].double(), y[i:i + 16]) for i in (0, 16)]
    np.testing.assert_allclose(dense, (halves[0] + halves[1]) / 2, atol=1e-12)


class _Scaled(nn.Module):
    """A linear layer whose output is multiplied by a fixed buffer: autograd saves the buffer for the backward."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 4)
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 4))

    def forward(self, inputs):
        return torch.tanh(self.layer(inputs)) * self.scale


def test_a_train_mode_model_with_a_buffer_in_its_graph_gives_repeated_products():
    # One batch keeps its gradient graph between products; writing the unchanged buffer back after a train-mode pass
    # bumped its version and broke that graph on the second product.
    torch.manual_seed(0)
    model = _Scaled().double().train()
    _, x, y = classifier()
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    first = hessian.hvp(np.ones(hessian.num_params))
    np.testing.assert_allclose(hessian.hvp(np.ones(hessian.num_params)), first, rtol=0, atol=0)
    np.testing.assert_allclose(hessian.dense(), reference_hessian(model, F.cross_entropy, x, y), atol=1e-12)


def nan_batches():
    model, x, y = classifier()
    bad = x.clone()
    bad[30] = float("nan")
    return model, [(bad[i:i + 10], y[i:i + 10]) for i in range(0, 37, 10)]


@pytest.mark.parametrize("case, message", [
    ("empty loader", "no batches"),
    ("non-scalar loss", r"returned \(37,\) on batch 0"),
    ("no trainable parameters", "no trainable parameters"),
    ("selection matches nothing", "'features' matches no parameter"),
    ("data on another device", "batch 0: inputs are on meta but the model is on cpu"),
    ("model as the loss", "Sequential with parameters, i.e. a model"),
    ("nan loss", "the loss is nan on batch 3"),
    ("one-shot iterator", "one-shot iterator"),
    ("batch not a pair", "batch 0 is a list of length 3"),
])
def test_bad_input_is_one_line_usage_error(case, message):
    model, x, y = classifier()
    loss, data, params = F.cross_entropy, (x, y), None
    if case == "empty loader":
        data = DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4)
    elif case == "non-scalar loss":
        loss = nn.CrossEntropyLoss(reduction="none")
    elif case == "no trainable parameters":
        model.requires_grad_(False)
    elif case == "selection matches nothing":
        params = "features"
    elif case == "data on another device":
        data = (torch.empty(37, 3, device="meta"), y)
    elif case == "model as the loss":
        loss = model
    elif case == "nan loss":
        model, data = nan_batches()
    elif case == "one-shot iterator":
        data = ((x[i:i + 10], y[i:i + 10]) for i in range(0, 37, 10))
    elif case == "batch not a pair":
        data = [[x, y, y]]
    with pytest.raises(UsageError, match=message) as info:
        Hessian(model, loss, data, params=params, progress=False)
    assert "\n" not in str(info.value)


def test_bad_calls_on_a_hessian():
    model, x, y = classifier()
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    with pytest.raises(UsageError, match="which must be one of"):
        hessian.eigenvalues(1, which="top")
    with pytest.raises(UsageError, match="need 1 <= k < P = 44"):
        hessian.eigenvalues(44)
    with pytest.raises(UsageError, match="more than max_params=10"):
        hessian.dense(max_params=10)
    with pytest.raises(UsageError, match="at least 2 probes"):
        hessian.trace(probes=1)
    with pytest.raises(UsageError, match=r"vectors must be \(P,\) or \(k, P\) with P = 44"):
        hessian.hvp(np.zeros(3))


def test_density_distribution_matches_the_exact_spectrum_in_wasserstein_distance():
    """Default SLQ (80 steps, 3 runs) on a 316-parameter MLP after 30 Adam steps: the Wasserstein-1 distance between the
    quadrature measure (nodes, weights) and the exact eigenvalues (weight 1/P each) is under 2% of the spectral
    range; the same measure shifted by 5% of the range is not."""
    from scipy.stats import wasserstein_distance

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 4)).double()
    x, y = torch.randn(100, 8, dtype=torch.float64), torch.randint(0, 4, (100,))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(30):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    assert hessian.num_params == 316
    exact = np.linalg.eigvalsh(hessian.dense())
    spread = exact.max() - exact.min()
    result = hessian.density(seed=0)
    assert wasserstein_distance(result.nodes, exact, u_weights=result.weights) < 0.02 * spread
    assert wasserstein_distance(result.nodes + 0.05 * spread, exact, u_weights=result.weights) > 0.02 * spread


# The references the former analysis/spectrum.py was tested against, now applied to dlprobe.Hessian (the one
# Lanczos, trace and density; the sensitivity experiment calls it): torch.func.hessian, eigvalsh of the dense
# Hessian, a quadratic 1/2 theta^T A theta with a chosen spectrum, a loss written out by hand.

class Quadratic(nn.Module):
    """f(theta) = 1/2 theta^T A theta with A = Q diag(eigenvalues) Q^T, Q a random rotation; the inputs are ignored,
    so any one-example data gives the loss f (use with loss_fn=_identity_loss)."""

    def __init__(self, eigenvalues, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        size = len(eigenvalues)
        rotation, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
        self.register_buffer("matrix", rotation @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ rotation.T)
        self.theta = nn.Parameter(torch.randn(size, generator=generator, dtype=torch.float64))

    def forward(self, inputs):
        return 0.5 * self.theta @ self.matrix @ self.theta


def _identity_loss(outputs, targets):
    return outputs


ONE_EXAMPLE = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
SPECTRUM = [-2.0, -0.5, 0.0, 0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 10.0, 20.0]


def tiny_regression(seed=0, num_samples=23):
    """2-4-3-1 tanh/softplus MLP (31 params) with a regression target, float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3), nn.Softplus(), nn.Linear(3, 1)).double()
    inputs = torch.randn(num_samples, 2, dtype=torch.float64)
    return model, inputs, torch.sin(inputs.sum(dim=1, keepdim=True))


def _func_hessian(model, loss_fn, inputs, targets):
    """torch.func.hessian of the loss as a function of the flat parameter vector (named_parameters order)."""
    named = dict(model.named_parameters())
    shapes = [(name, p.shape) for name, p in named.items()]
    theta = torch.cat([p.detach().reshape(-1) for p in named.values()])

    def loss(flat):
        pieces = torch.split(flat, [shape.numel() for _, shape in shapes])
        params = {name: piece.reshape(shape) for (name, shape), piece in zip(shapes, pieces)}
        return loss_fn(functional_call(model, params, (inputs,)), targets)

    return torch.func.hessian(loss)(theta)


def test_products_one_at_a_time_and_batched_match_func_hessian():
    model, x, y = tiny_regression()
    reference = _func_hessian(model, F.mse_loss, x, y)
    hessian = Hessian(model, F.mse_loss, (x, y), progress=False)
    vectors = torch.randn(19, hessian.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # 19 rows: two full chunks of 8 (the first vmapped, the second looped: the timing decides afterwards) and 3 more
    assert torch.allclose(hessian.hvp(vectors), vectors @ reference, rtol=1e-10, atol=1e-12)
    assert torch.allclose(hessian.hvp(vectors[0]), reference @ vectors[0], rtol=1e-10, atol=1e-12)


def test_lanczos_extremes_match_eigvalsh_of_the_func_hessian():
    model, x, y = tiny_regression()
    exact = np.linalg.eigvalsh(_func_hessian(model, F.mse_loss, x, y).numpy())
    hessian = Hessian(model, F.mse_loss, (x, y), progress=False)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(hessian.eigenvalues(3).values, exact[::-1][:3], atol=1e-8 * scale)
    np.testing.assert_allclose(hessian.eigenvalues(3, which="smallest").values, exact[:3], atol=1e-8 * scale)


def test_quadratic_eigenvalues_by_value_and_by_magnitude():
    hessian = Hessian(Quadratic(SPECTRUM), _identity_loss, ONE_EXAMPLE, progress=False)
    np.testing.assert_allclose(hessian.dense(), hessian.model.matrix.numpy(), atol=1e-12)
    np.testing.assert_allclose(hessian.eigenvalues(2).values, [20.0, 10.0], atol=1e-8)
    np.testing.assert_allclose(hessian.eigenvalues(2, which="smallest").values, [-2.0, -0.5], atol=1e-8)
    # largest magnitude: 20, 10, 10, 5, 3, then |-2| = |2| (the smaller positive 1, 0.3, 0.1 are left out)
    magnitude = hessian.eigenvalues(7, which="magnitude").values
    np.testing.assert_allclose(np.sort(magnitude), [-2.0, 2.0, 3.0, 5.0, 10.0, 10.0, 20.0], atol=1e-8)
    np.testing.assert_allclose(np.abs(magnitude), [20.0, 10.0, 10.0, 5.0, 3.0, 2.0, 2.0], atol=1e-8)  # by |value|
    negative_first = Hessian(Quadratic([-30.0, -0.5, 0.0, 1.0, 4.0]), _identity_loss, ONE_EXAMPLE, progress=False)
    np.testing.assert_allclose(negative_first.eigenvalues(2, which="magnitude").values, [-30.0, 4.0], atol=1e-8)


def test_quadratic_trace_within_a_few_standard_errors_and_repeatable():
    hessian = Hessian(Quadratic(SPECTRUM), _identity_loss, ONE_EXAMPLE, progress=False)
    estimate = hessian.trace(probes=400, seed=3)
    assert estimate.standard_error > 0
    assert abs(estimate.estimate - sum(SPECTRUM)) < 4 * estimate.standard_error
    again = hessian.trace(probes=400, seed=3)
    assert (again.estimate, again.standard_error) == (estimate.estimate, estimate.standard_error)


def test_quadratic_density_integrates_to_one_with_mean_trace_over_p_and_peaks_on_the_spectrum():
    hessian = Hessian(Quadratic(SPECTRUM), _identity_loss, ONE_EXAMPLE, progress=False)
    result = hessian.density(steps=12, runs=20, seed=0)
    assert result.grid.shape == result.density.shape and np.all(result.density >= 0)
    assert np.trapezoid(result.density, result.grid) == pytest.approx(1.0, abs=1e-3)
    # Full Lanczos (steps = P) makes each run's quadrature exact for the polynomial x, so the mean
    # of the density is the average of v^T A v / |v|^2 over Rademacher v: trace / P in expectation.
    mean = np.trapezoid(result.grid * result.density, result.grid)
    assert mean == pytest.approx(sum(SPECTRUM) / len(SPECTRUM), abs=0.6)
    # Ritz values of a full Krylov space are the eigenvalues: the peaks sit on the spectrum.
    peak = result.grid[np.argmax(result.density)]
    assert min(abs(peak - value) for value in SPECTRUM) < 0.3


def test_a_loss_linear_in_the_parameters_has_a_zero_hessian():
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    hessian = Hessian(model, lambda outputs, targets: outputs.mean(), (x, torch.zeros(5)), progress=False)
    assert np.count_nonzero(hessian.hvp(np.ones((2, hessian.num_params)))) == 0


def _hand_written_loss(x, y, widths):
    """Mean cross-entropy of a tanh MLP as a function of its flat parameters (nn.Linear order), written out by hand."""
    def loss(theta):
        hidden, offset = x, 0
        for index, (fan_in, fan_out) in enumerate(widths):
            weight = theta[offset: offset + fan_in * fan_out].reshape(fan_out, fan_in)
            bias = theta[offset + fan_in * fan_out: offset + fan_in * fan_out + fan_out]
            offset += fan_in * fan_out + fan_out
            hidden = hidden @ weight.T + bias
            if index < len(widths) - 1:
                hidden = torch.tanh(hidden)
        return torch.nn.functional.cross_entropy(hidden, y)
    return loss


def test_the_sensitivity_experiments_top_eigenvalues_are_the_top_of_the_dense_spectrum():
    from dlprobe.experiments.sensitivity import hessian_top_eigenvalues
    from dlprobe.models.mlp import MLPSpec, build_mlp

    spec = MLPSpec(6, (5,), 3, "tanh")  # P = 6*5 + 5 + 5*3 + 3 = 53
    model = build_mlp(spec, torch.Generator().manual_seed(0))  # float32, as in the experiment
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 6, generator=generator), torch.randint(0, 3, (12,), generator=generator)
    model.train()
    recorded = hessian_top_eigenvalues(model, x, y, k=3, seed=0)
    assert model.training  # measured in eval mode, the flags put back
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    dense = torch.autograd.functional.hessian(_hand_written_loss(x.double(), y, spec.layer_sizes), theta)
    reference = torch.linalg.eigvalsh(dense).flip(0)[:3].numpy()  # float64, descending
    # float32 Hessian-vector products and eigsh's relative tolerance 1e-5: agreement to 1e-4 of lambda_max.
    assert np.abs(np.array(recorded) - reference).max() <= 1e-4 * reference[0]
    assert reference[0] - reference[1] > 1e-3 * reference[0]  # distinct eigenvalues: the order is meaningful
    assert hessian_top_eigenvalues(model, x, y, k=3, seed=0) == recorded  # the seeded start vector: same result


class _BatchCentred(nn.Module):
    """Subtracts the batch mean of its inputs even in eval mode: the examples of a batch interact."""

    def forward(self, inputs):
        return inputs - inputs.mean(dim=0, keepdim=True)


def small_conv_net(seed=0):
    """conv(1->4, 3x3)-tanh-linear(64->3) on 4x4 images (235 parameters; 64 activations per example), 200
    examples, float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(64, 3)).double().eval()
    return model, torch.randn(200, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (200,))


def test_sub_batches_give_the_same_hessian_and_are_refused_where_they_would_not(monkeypatch):
    """On the CPU a large batch runs in sub-batches (library.sub_batches); forced here by a small budget: 200
    examples in parts of at most 50. The dense Hessian, trace and eigenvalues equal the whole-batch reference; a
    model whose examples interact, a loss that sums, and a training-mode model are left in whole batches."""
    import dlprobe.library.sub_batches as sub_batches

    monkeypatch.setattr(sub_batches, "BUDGET_BYTES", 50 * 64 * 8)  # 50 examples of the largest output
    monkeypatch.setattr(sub_batches, "MIN_EXAMPLES", 1)
    model, x, y = small_conv_net()
    reference = reference_hessian(model, F.cross_entropy, x, y)
    split = Hessian(model, F.cross_entropy, (x, y), progress=False)
    assert split._sub_batch == 50 and split.num_batches == 1
    np.testing.assert_allclose(split.dense(), reference, atol=1e-12)
    assert len(split._cached_gradients) == 4  # the graphs of the 4 parts, kept
    probes = rademacher_probes(4, 235, seed=1).numpy()
    assert split.trace(probes).estimate == pytest.approx(np.einsum("ip,pq,iq->", probes, reference, probes) / 4, rel=1e-10)
    np.testing.assert_allclose(split.eigenvalues(2).values, np.linalg.eigvalsh(reference)[::-1][:2], rtol=1e-8)
    batched = Hessian(model, F.cross_entropy, DataLoader(TensorDataset(x, y), batch_size=120), progress=False)
    assert batched._sub_batch == 50  # batches of 120 and 80, in 3 and 2 parts
    np.testing.assert_allclose(batched.dense(), reference, atol=1e-12)

    coupled = nn.Sequential(_BatchCentred(), model).eval()
    hessian = Hessian(coupled, F.cross_entropy, (x, y), progress=False)
    assert hessian._sub_batch is None
    np.testing.assert_allclose(hessian.dense(), reference_hessian(coupled, F.cross_entropy, x, y), atol=1e-12)
    summed = nn.CrossEntropyLoss(reduction="sum")
    hessian = Hessian(model, summed, (x, y), progress=False)
    assert hessian._sub_batch is None
    np.testing.assert_allclose(hessian.dense(), reference_hessian(model, summed, x, y), atol=1e-10)
    assert Hessian(model.train(), F.cross_entropy, (x, y), progress=False)._sub_batch is None


def test_top_lanczos_stops_when_its_bounds_guarantee_the_accuracy():
    """A diagonal operator with a known spectrum (geometric top, a negative end, a bulk near zero): every value
    returned as converged is within tol relative of the exact one, for tolerances from 1e-3 to 1e-10; looser
    tolerances stop earlier; with vectors=True the residuals themselves are within tol."""
    from dlprobe.library.hessian import top_lanczos

    rng = np.random.default_rng(0)
    spectrum = np.concatenate([60 * 0.8 ** np.arange(8), -np.array([30.0, 12.0]), rng.normal(0, 0.5, 400)])
    diagonal = torch.as_tensor(spectrum)
    start = torch.as_tensor(rng.standard_normal(len(spectrum)))
    by_magnitude = spectrum[np.argsort(-np.abs(spectrum))]
    used = []
    for tol in (1e-3, 1e-6, 1e-10):
        for which, exact in (("largest", np.sort(spectrum)[::-1]), ("magnitude", by_magnitude)):
            found = top_lanczos(lambda v: diagonal * v, start, 3, which, tol, False, 60)
            assert found.converged
            assert np.all(np.abs(found.values - exact[:3]) <= tol * np.abs(exact[:3])), (tol, which)
        used.append(found.steps)
    assert used[0] < used[1] < used[2] < 60
    found = top_lanczos(lambda v: diagonal * v, start, 2, "largest", 1e-6, True, 60)
    residuals = (found.vectors * diagonal - found.vectors * torch.as_tensor(found.values)[:, None]).norm(dim=1)
    assert found.converged and torch.all(residuals <= 1e-6 * torch.as_tensor(np.abs(found.values)))
    assert not top_lanczos(lambda v: diagonal * v, start, 3, "largest", 1e-10, False, 6).converged


def test_eigenvalues_not_converged_within_the_basis_go_on_with_eigsh(monkeypatch):
    import dlprobe.library.hessian as hessian_module

    monkeypatch.setattr(hessian_module, "TOP_LANCZOS_STEPS", 1)  # a basis of 3k + 3 = 6: not enough for tol 1e-10
    model, x, y = classifier()
    hessian = Hessian(model, F.cross_entropy, (x, y), progress=False)
    exact = np.linalg.eigvalsh(hessian.dense())
    assert not hessian_module.top_lanczos(lambda v: hessian.hvp(v), torch.as_tensor(np.random.default_rng(0).standard_normal(44)),
                                          1, "largest", 1e-10, False, 6).converged
    np.testing.assert_allclose(hessian.eigenvalues(1).values, exact[-1:], rtol=1e-8)
    np.testing.assert_allclose(hessian.eigenvalues(2, which="magnitude").values, exact[np.argsort(-np.abs(exact))][:2], rtol=1e-8)
