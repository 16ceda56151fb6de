"""Loss landscapes of your own models over any DataLoader: a line between two models, a plane around one.

    line = dlprobe.interpolate(model_a, model_b, loader, {"loss": nn.CrossEntropyLoss(), "accuracy": dlprobe.accuracy},
                               alphas=np.linspace(-0.5, 1.5, 41), bn="keep")          # Line: values name -> (A,)
    plane = dlprobe.surface(model, loader, nn.CrossEntropyLoss(), steps=11, span=1.0, seed=0, bn=train_loader)

metrics: one callable (named "loss"), a list of callables (named by __name__), or a dict name -> callable, each
(outputs, targets) -> the batch mean; a value is the mean over all examples (batches weighted by size).
Points are evaluated in eval mode (no dropout). BatchNorm running statistics are never taken implicitly from
the evaluation data: bn="keep" uses the models' own (interpolated along a line, the centre model's on a plane,
as loss-landscapes does), bn=DATA recomputes them at every point on DATA's inputs (PyTorch's update_bn rule,
`analysis.landscape.recompute_batchnorm_statistics`). The engine is `analysis.point_evaluation` (many points per
data batch); the model itself is never modified. On the CPU a large batch is evaluated in sub-batches whose outputs
are concatenated before the metrics see them (`library.sub_batches`: the same values; an 11 x 11 surface of a
BatchNorm CNN on 1024 images about 1.5x faster).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from dlprobe.analysis.landscape import check_same_layout, evaluation_mode, filter_normalized_direction, recompute_batchnorm_statistics
from dlprobe.analysis.trajectory import fit_pca
from dlprobe.analysis.point_evaluation import PointEvaluator, combine_states
from dlprobe.errors import UsageError
from dlprobe.library.batches import Batches, Output, Selected, check_scalar, select_output
from dlprobe.library.progress import progress_bar
from dlprobe.library.sub_batches import plan_sub_batches, split_batch
from dlprobe.library.results import Line, Surface, TrajectoryPlane


def _named_metrics(metrics) -> dict[str, Callable]:
    if isinstance(metrics, Mapping):
        named = dict(metrics)
    elif callable(metrics):
        named = {"loss": metrics}
    elif isinstance(metrics, (list, tuple)):
        named = {getattr(m, "__name__", type(m).__name__): m for m in metrics}
    else:
        raise UsageError(f"metrics must be a callable, a list or a dict of callables, got {type(metrics).__name__}")
    if not named:
        raise UsageError("metrics is empty; pass e.g. torch.nn.CrossEntropyLoss()")
    for name, metric in named.items():
        if not callable(metric) or (isinstance(metric, nn.Module) and any(True for _ in metric.parameters())):
            raise UsageError(f"metric {name!r} must be a callable (outputs, targets) -> scalar, not a model or a "
                             f"{type(metric).__name__}")
    return named


def _bn_data(bn) -> Batches | None:
    if isinstance(bn, str):
        if bn != "keep":
            raise UsageError(f"bn must be 'keep' or a dataset to recompute BatchNorm statistics on, got {bn!r}")
        return None
    return Batches(bn)


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    if first is None:
        raise UsageError(f"{type(model).__name__} has no parameters to move along")
    return first.device


def evaluate_points(model: nn.Module, states: list[dict], coefficients: torch.Tensor, data, metrics, bn=None,
                    output: Output = None, chunk_size: int = 16, progress: bool | None = None) -> dict[str, np.ndarray]:
    """Mean of each metric over data at the points sum_k coefficients[a, k] states[k] (coefficients (A, K)).

    states[0] holds every parameter and buffer (a state_dict); later states only what they move. bn: None
    (buffers as combined) or Batches to recompute BatchNorm statistics on. Returns name -> (A,) float64.
    """
    named = _named_metrics(metrics)
    batches = Batches(data)
    device = _device(model)
    if output is not None:  # a tensor per point for vmap and stacking: wrap and rename
        model = Selected(model, select_output(output))
        states = [{f"model.{name}": tensor for name, tensor in state.items()} for state in states]
    select = select_output(None)
    num_points = len(coefficients)
    sums = {name: np.zeros(num_points) for name in named}
    bar = progress_bar(progress, total=num_points, description="landscape points")
    plan = None
    with bar, evaluation_mode(model), torch.no_grad():
        for start in range(0, num_points, chunk_size):
            chunk = coefficients[start:start + chunk_size]
            stacked = None
            if bn is not None:
                inputs = (batch_inputs for _, batch_inputs, _, _ in bn.iterate(device))
                stacked = recompute_batchnorm_statistics(model, combine_states(states, chunk), inputs)
            evaluator = PointEvaluator(model, states, chunk, stacked)
            for index, inputs, targets, size in batches.iterate(device):
                if start == 0 and index == 0:  # checked at the model's own weights, on the first batch
                    plan = plan_sub_batches(model, select, inputs, targets)
                parts = split_batch(inputs, targets, None if plan is None else plan[0])
                outputs = evaluator(inputs) if len(parts) == 1 else torch.cat([evaluator(part) for part, _ in parts], dim=1)  # (a, b, ...)
                for point in range(len(chunk)):
                    point_outputs = select(outputs[point])
                    for name, metric in named.items():
                        value = check_scalar(metric(point_outputs, targets), f"metric {name!r}", index)
                        sums[name][start + point] += size * float(value)
            bar.update(len(chunk))
    return {name: total / batches.num_examples for name, total in sums.items()}


def interpolate(model_a: nn.Module, model_b: nn.Module, data, metrics, alphas=None, bn="keep", output: Output = None,
                chunk_size: int = 16, progress: bool | None = None) -> Line:
    """Metrics along theta(alpha) = (1 - alpha) theta_a + alpha theta_b, parameters and floating buffers alike.

    model_a, model_b: two models of the same architecture (the same state_dict names and shapes); data:
    (inputs, targets) or a DataLoader; alphas: (A,) (default 21 points from 0 to 1); bn: "keep" or a dataset
    (see the module docstring). chunk_size: alphas evaluated together. Returns Line(alphas (A,), values, bn).
    """
    state_a, state_b = dict(model_a.state_dict()), dict(model_b.state_dict())
    try:
        check_same_layout(state_a, state_b)
    except Exception as error:  # a ConfigError from the analysis layer: the same one-line message
        raise UsageError(f"model_a and model_b differ: {error}") from None
    alphas = np.linspace(0.0, 1.0, 21) if alphas is None else np.asarray(alphas, dtype=np.float64).reshape(-1)
    weights = torch.as_tensor(alphas, dtype=torch.float64)
    coefficients = torch.stack([1 - weights, weights], dim=1)  # (A, 2)
    bn_batches = _bn_data(bn)
    values = evaluate_points(model_a, [state_a, state_b], coefficients, data, metrics, bn_batches, output, chunk_size, progress)
    return Line(alphas=alphas, values=values, bn="keep" if bn_batches is None else "recomputed")


def filter_directions(model: nn.Module, seed: int = 0) -> tuple[dict, dict]:
    """Two filter-normalized random directions (Li et al. 2018) over the model's parameters, drawn on the CPU
    from `seed` (the same on any device) and placed on the parameters' device: every filter (row of a weight)
    of each tensor with 2+ dims has the norm of the same filter of the weights; biases and BatchNorm weights
    get zeros (`analysis.landscape.filter_normalized_direction`). Returns (d1, d2), dicts name -> tensor."""
    params = {name: p.detach().cpu() for name, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(seed)
    device = _device(model)
    return tuple({name: t.to(device) for name, t in filter_normalized_direction(params, generator).items()} for _ in range(2))


def surface(model: nn.Module, data, metrics, directions="filter", steps: int = 11, span: float = 1.0, seed: int = 0,
            bn="keep", output: Output = None, chunk_size: int = 16, progress: bool | None = None,
            coordinates=None) -> Surface:
    """Metrics on the plane theta + a d1 + b d2, a and b on np.linspace(-span, span, steps) each.

    directions: "filter" (`filter_directions(model, seed)`) or a pair (d1, d2) of dicts parameter name -> tensor
    (a name left out counts as zero; e.g. PCA axes of a trajectory). Buffers are not moved. bn: "keep" or a
    dataset (module docstring). coordinates: (a (A,), b (B,)) to use instead of steps and span.
    Returns Surface(coordinates1 (A,), coordinates2 (B,), values name -> (A, B), directions, bn).
    """
    if directions == "filter":
        directions = filter_directions(model, seed)
    elif not (isinstance(directions, (tuple, list)) and len(directions) == 2 and all(isinstance(d, Mapping) for d in directions)):
        raise UsageError("directions must be 'filter' or a pair (d1, d2) of dicts parameter name -> tensor")
    parameter_names = {name for name, _ in model.named_parameters()}
    for direction in directions:
        unknown = sorted(set(direction) - parameter_names)
        if unknown:
            raise UsageError(f"a direction names tensors that are not parameters of the model: {', '.join(unknown[:5])}")
    if coordinates is None:
        if steps < 1 or span < 0:
            raise UsageError(f"surface needs steps >= 1 and span >= 0, got steps={steps}, span={span}")
        coordinates = (np.linspace(-span, span, steps),) * 2
    first, second = (np.asarray(c, dtype=np.float64).reshape(-1) for c in coordinates)
    grid1, grid2 = np.meshgrid(first, second, indexing="ij")  # [i, j] = (a_i, b_j), row-major
    coefficients = torch.as_tensor(np.stack([np.ones(grid1.size), grid1.ravel(), grid2.ravel()], axis=1))
    states = [dict(model.state_dict()), dict(directions[0]), dict(directions[1])]
    bn_batches = _bn_data(bn)
    values = evaluate_points(model, states, coefficients, data, metrics, bn_batches, output, chunk_size, progress)
    return Surface(coordinates1=first, coordinates2=second,
                   values={name: value.reshape(len(first), len(second)) for name, value in values.items()},
                   directions=tuple(directions), bn="keep" if bn_batches is None else "recomputed")


def trajectory_plane(model: nn.Module, snapshots) -> TrajectoryPlane:
    """The two principal axes of a trajectory's snapshots around `model` (usually its last point).

    snapshots: T >= 2 state dicts (e.g. copies of model.state_dict() saved during training) holding every
    parameter of the model. PCA (`analysis.trajectory.fit_pca`, float64) of the offsets snapshot - model;
    returns TrajectoryPlane(directions (unit, orthogonal), explained_variance_ratio (2,), path (T, 2): each offset's
    coordinates along the two directions, i.e. Euclidean distances in weight space; the error-surface experiment's).
    """
    names = [name for name, _ in model.named_parameters()]
    center = torch.cat([p.detach().reshape(-1).double().cpu() for _, p in model.named_parameters()])
    rows = []
    for index, snapshot in enumerate(snapshots):
        missing = [name for name in names if name not in snapshot]
        if missing:
            raise UsageError(f"snapshot {index} lacks parameters of the model: {', '.join(missing[:5])}")
        rows.append(torch.cat([torch.as_tensor(snapshot[name]).reshape(-1).double().cpu() for name in names]))
    if len(rows) < 2:
        raise UsageError(f"trajectory_plane needs at least 2 snapshots, got {len(rows)}")
    offsets = torch.stack(rows) - center  # (T, P)
    pca = fit_pca(offsets.numpy(), num_components=2)
    device = _device(model)
    shapes = [(name, p.shape, p.dtype) for name, p in model.named_parameters()]
    directions = []
    for component in pca.components:  # (P,) unit norm
        pieces = torch.split(torch.as_tensor(component), [int(np.prod(shape)) for _, shape, _ in shapes])
        directions.append({name: piece.reshape(shape).to(device=device, dtype=dtype) for (name, shape, dtype), piece in zip(shapes, pieces)})
    # The components are orthonormal, so the least-squares coordinates in their plane are plain dot products.
    path = offsets @ torch.from_numpy(pca.components).T  # (T, 2)
    return TrajectoryPlane(directions=tuple(directions), explained_variance_ratio=pca.explained_variance_ratio,
                           path=path.numpy())
