"""Case 4: loss and accuracy at 50 interpolation points theta(a) = (1-a) theta1 + a theta2 on 5000 images.

dlprobe: `dlprobe.interpolate` over batches of 1024 images, the function the interpolation experiment calls
(analysis/point_evaluation.py: the first layer computed once per endpoint and mixed, the rest of the net vmapped
over the alphas of a chunk; conv nets one alpha at a time). Baseline: `evaluate_interpolation_sequential` below
(one plain model copy per alpha; tests/test_landscape.py checks `dlprobe.interpolate` against it, BatchNorm
included). Data: mnist-5k train + test (5000
images). Models: the interpolation experiment's MLP 784-256-10 (ReLU), m1 and m2 trained one epoch with
batch 64 and 1024 from one initialisation (as the experiment's batch-size pair); a second, secondary row
does the same for the 120k-parameter CNN of case 3 (untrained pair, fewer repetitions: it is slow).

Diagnostic: `first_layer_linear` is a hand-written version of the same first-layer idea for this one MLP
(x W(a)^T = (1-a) x W1^T + a x W2^T, the dominant 784x256 product done twice instead of once per alpha), a
lower bound for what the library's general path can reach.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

import dlprobe
from dlprobe.analysis.landscape import batchnorm_modules, check_same_layout
from dlprobe.data.tensors import TensorData
from dlprobe.losses import check_loss, mean_loss, per_example_loss
from dlprobe.data.images import load_dataset
from dlprobe.models.budget import cnn_for_budget
from dlprobe.models.cnn import build_cnn
from dlprobe.models.mlp import MLPSpec, build_mlp
from dlprobe.training.common import OptimizerSettings
from dlprobe.training.loop import TrainSpec, train

from dlprobe.errors import ConfigError

from .common import baseline, case_record, equality, interleaved, median_ratio, relative_error, side

NAME = "interpolation: 50 alphas on 5000 images"
TARGET = 3.0
TOLERANCE = 1e-6  # relative, loss at every alpha
NUM_ALPHAS = 50


def interpolate_params(params1, params2, alphas):
    """theta(alpha) = (1 - alpha) * theta1 + alpha * theta2 for every alpha: -> stacked (A, ...).

    alphas: (A,). Floating tensors (weights and float buffers) are interpolated, in this form so that
    alpha = 0 and alpha = 1 give the endpoints bit for bit; integer buffers (num_batches_tracked)
    are copied from params1.
    """
    alphas = torch.as_tensor(alphas)
    check_same_layout(params1, params2)
    stacked = {}
    for name, first in params1.items():
        second = params2[name]
        if first.is_floating_point():
            weight = alphas.to(first).view(-1, *([1] * first.dim()))  # (A, 1, ..., 1)
            stacked[name] = (1 - weight) * first + weight * second
        else:
            stacked[name] = first.expand(len(alphas), *first.shape).clone()
    return stacked


def evaluate_interpolation_sequential(model, params1, params2, alphas, x, y, loss="cross_entropy", batch_size=1024):
    """The reference for `dlprobe_line` (the same result; BatchNorm statistics recomputed on x in batches of
    batch_size): one plain model copy per alpha, loaded with `interpolate_params`. Returns {"loss": (A,) float64,
    "accuracy": (A,) or None for "mse"}."""
    check_loss(loss)
    bn_batches = list(torch.split(x, batch_size)) if batchnorm_modules(model) else []
    losses, accuracies = [], []
    for alpha in torch.as_tensor(alphas):
        point = copy.deepcopy(model)
        stacked = interpolate_params(params1, params2, alpha.view(1))
        state = {name: tensor[0] for name, tensor in stacked.items()}
        unexpected = point.load_state_dict(state, strict=False).unexpected_keys
        if unexpected:
            raise ConfigError(f"the state has names the model does not have: {unexpected}")
        point.eval()
        for module in batchnorm_modules(point):
            module.reset_running_stats()
            module.momentum = None
            module.train()
        with torch.no_grad():
            for inputs in bn_batches:
                point(inputs)
            point.eval()
            total_loss, total_correct = 0.0, 0.0
            for start in range(0, len(x), batch_size):
                outputs = point(x[start : start + batch_size])
                targets = y[start : start + batch_size]
                total_loss += per_example_loss(outputs, targets, loss).double().sum().item()
                if loss == "cross_entropy":
                    total_correct += (outputs.argmax(-1) == targets).sum().item()
        losses.append(total_loss / len(x))
        accuracies.append(total_correct / len(x))
    accuracy = torch.tensor(accuracies, dtype=torch.float64) if loss == "cross_entropy" else None
    return {"loss": torch.tensor(losses, dtype=torch.float64), "accuracy": accuracy}


@torch.no_grad()
def first_layer_linear(state1, state2, alphas, x, y, batch_size=1024):
    """Mean cross-entropy (A,) of the 2-layer MLP line, first layer from two products (diagnostic)."""
    names = ["1.weight", "1.bias", "3.weight", "3.bias"]  # MLP = Flatten, Linear, ReLU, Linear
    w1a, b1a, w2a, b2a = (state1[n] for n in names)
    w1b, b1b, w2b, b2b = (state2[n] for n in names)
    a = alphas.to(w1a).view(-1, 1, 1)  # (A, 1, 1)
    weight2 = ((1 - a) * w2a + a * w2b).transpose(1, 2)  # (A, H, K)
    bias2 = (1 - a) * b2a + a * b2b  # (A, 1, K)
    total = torch.zeros(len(alphas), dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        flat = x[start:start + batch_size].flatten(1)
        first = torch.addmm(b1a, flat, w1a.T)  # (b, H): first layer of m1
        change = torch.addmm(b1b, flat, w1b.T) - first  # (b, H): m2 minus m1
        hidden = torch.addcmul(first, a, change).relu_()  # (A, b, H), one fused pass for every alpha
        logits = torch.baddbmm(bias2, hidden, weight2)  # (A, b, K)
        target = y[start:start + batch_size].expand(len(alphas), -1)
        total += F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(len(alphas), -1).double().sum(1)
    return total / len(x)


def _pair(smoke: bool, x, y):
    spec = MLPSpec(784, (32,) if smoke else (256,), 10, "relu")
    models = []
    for batch_size in (64, 1024):
        model = build_mlp(spec, torch.Generator().manual_seed(0))
        if not smoke:
            data = TensorData(x, y, x[:10], y[:10])
            train(model, data, TrainSpec(loss="cross_entropy", optimizer=OptimizerSettings("adam", lr=1e-3), batch_size=batch_size,
                                         epochs=1, eval_every=10), seed=0)
        models.append(model)
    return spec, models


def dlprobe_line(model1, model2, alphas, x, y, loss="cross_entropy", batch_size=1024, chunk_size=16) -> dict:
    """dlprobe.interpolate of model1 -> model2 on (x, y) in batches of batch_size (BatchNorm statistics recomputed on
    x in those batches, as the reference does), as {"loss": (A,), "accuracy": (A,) or None for "mse"} tensors."""
    batches = list(zip(x.split(batch_size), y.split(batch_size)))
    metrics = {"loss": mean_loss(loss), **({"accuracy": dlprobe.accuracy} if loss == "cross_entropy" else {})}
    line = dlprobe.interpolate(model1, model2, batches, metrics, np.asarray(alphas, dtype=np.float64),
                               bn=batches if batchnorm_modules(model1) else "keep", chunk_size=chunk_size, progress=False)
    values = {name: torch.from_numpy(value) for name, value in line.values.items()}
    return {"loss": values["loss"], "accuracy": values.get("accuracy")}


def _compare(model1, model2, alphas, x, y, repeats, extra=None):
    state1, state2 = dict(model1.state_dict()), dict(model2.state_dict())
    sides = {"dlprobe": lambda r: dlprobe_line(model1, model2, alphas, x, y),
             "sequential": lambda r: evaluate_interpolation_sequential(model1, state1, state2, alphas, x, y)}
    if extra is not None:
        sides["prototype"] = extra
    dlprobe_line(model1, model2, alphas[:2], x[:64], y[:64])  # warm-up of the vmap path
    times, results = interleaved(sides, repeats)
    reference = results["sequential"][0]["loss"]
    errors = {name: relative_error(results[name][0]["loss"] if name != "prototype" else results[name][0], reference) for name in sides}
    accuracy_equal = bool(torch.equal(results["dlprobe"][0]["accuracy"], results["sequential"][0]["accuracy"]))
    return times, errors, accuracy_equal


def run(smoke: bool = False, repeats: int | None = None) -> dict:
    repeats = repeats or (1 if smoke else 3)
    dataset = load_dataset("mnist-5k")
    x, y = torch.cat([dataset.x_train, dataset.x_test]), torch.cat([dataset.y_train, dataset.y_test])
    if smoke:
        x, y = x[:200], y[:200]
    alphas = torch.linspace(-1.0, 2.0, 4 if smoke else NUM_ALPHAS)
    spec, (m1, m2) = _pair(smoke, dataset.x_train, dataset.y_train)
    state1, state2 = dict(m1.state_dict()), dict(m2.state_dict())
    times, errors, accuracy_equal = _compare(m1, m2, alphas, x, y, repeats,
                                             extra=lambda r: first_layer_linear(state1, state2, alphas, x, y))
    ratio = median_ratio(times["sequential"], times["dlprobe"])
    prototype_ratio = median_ratio(times["sequential"], times["prototype"])
    # Secondary: the CNN of case 3, an untrained pair (seeds 0 and 1), fewer repetitions.
    cnn_spec = cnn_for_budget(3_000 if smoke else 120_000, 2, (1, 28, 28), 10)
    c1, c2 = (build_cnn(cnn_spec, torch.Generator().manual_seed(s)) for s in (0, 1))
    cnn_repeats = 1 if smoke else max(1, repeats - 1)
    cnn_times, cnn_errors, cnn_accuracy_equal = _compare(c1, c2, alphas, x, y, cnn_repeats)
    cnn_ratio = median_ratio(cnn_times["sequential"], cnn_times["dlprobe"])
    cnn_row = baseline(f"CNN {cnn_spec.num_params} params: sequential", cnn_times["sequential"], cnn_ratio, TARGET)
    cnn_row.update({"dlprobe_median_s": round(float(np.median(cnn_times["dlprobe"])), 4), "dlprobe_times_s": [round(t, 4) for t in cnn_times["dlprobe"]], "loss_error": cnn_errors["dlprobe"],
                    "accuracy_identical": cnn_accuracy_equal, "secondary": True})
    check = equality("loss at every alpha, max relative difference vs the sequential evaluation (MLP and CNN)",
                     max(errors["dlprobe"], cnn_errors["dlprobe"]), TOLERANCE, mlp_loss_error=errors["dlprobe"],
                     cnn_loss_error=cnn_errors["dlprobe"], accuracy_identical=accuracy_equal and cnn_accuracy_equal)
    settings = {"model": spec.describe() + " relu", "num_params": spec.num_params, "num_alphas": len(alphas), "alpha_range": [-1.0, 2.0],
                "num_images": len(x), "dataset": "mnist-5k train + test", "loss": "cross_entropy", "repeats": repeats,
                "dlprobe_defaults": "chunk_size=16, batch_size=1024", "cnn": cnn_spec.describe(), "cnn_repeats": cnn_repeats}
    notes = []
    if ratio < TARGET:
        notes.append(f"target not met ({ratio:.2f}x); the hand-written first-layer prototype runs {prototype_ratio:.1f}x "
                     f"faster than sequential (loss error {errors['prototype']:.1e}).")
    notes.append("CNN row: conv nets are evaluated one alpha at a time (vmap over conv weights becomes a grouped "
                 "convolution, measured 0.5x); the first conv layer is a small part of the work, so batching alphas "
                 "gains nothing there: what the row measures is the rest of dlprobe's path against a model copy per alpha.")
    return case_record(4, NAME, settings, side("dlprobe.interpolate (first-layer split + vmap, chunk 16)", times["dlprobe"]),
                       [baseline("evaluate_interpolation_sequential", times["sequential"], ratio, TARGET), cnn_row], check, threads=1,
                       prototype_first_layer_linear={"median_s": round(float(np.median(times["prototype"])), 4),
                                                     "ratio_vs_sequential": round(prototype_ratio, 3),
                                                     "loss_error_vs_sequential": errors["prototype"]},
                       notes=notes)
