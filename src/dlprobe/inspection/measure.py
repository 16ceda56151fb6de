"""The measurements of `dlprobe inspect`, every one through the public library API (dlprobe.Hessian, ...).

    prepared = prepare("models.py:make_cnn", Path("model.pt"), "mnist-5k", None, settings)   # checks everything first
    record, figures = measure(prepared, settings)     # inspect.json's dict; name -> PNG bytes (spectrum, density, ...)

The loss is torch.nn.CrossEntropyLoss() (the batch mean) on the model's logits; the model is measured in eval mode.
Training-subset measurements (Hessian, landscapes, sharpness) see `train_subset` examples, the sensitivities
`test_subset` ones: `stratified_indices(labels, max_examples, seed)` of the split (the whole split when it is
not larger), so the same settings give the same examples and, on CPU, the same numbers.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import dlprobe
from dlprobe.data.images import ImageDataset, load_dataset, stratified_indices
from dlprobe.data.user import dataset_key
from dlprobe.models.checkpoint import Checkpoint, load_weights, read_checkpoint
from dlprobe.models.describe import layer_table
from dlprobe.models.user import (UserModelSpec, build_user_model, factory_arguments, load_factory, model_digest, model_source,
                                 parse_model_spec)
from dlprobe.training.common import resolve_device

# Relative accuracy of the extreme eigenvalues (eigsh's tol): the card shows 4 digits. The smallest end converges
# slowly (it borders the bulk near 0): 8-wide CNN with BatchNorm on 512 MNIST images, 119 products at eigsh's float32
# default 1e-5, 86 at 1e-3, the values equal to 7 digits; the largest end takes 21 either way.
EIGEN_TOL = 1e-3
# eigsh restarts before giving up (each ~2k + 14 products): far more than either end took on the CNNs tried (a few);
# an end that still has not converged is reported with the Ritz values ARPACK had, marked converged: false.
MAX_RESTARTS = 100


@dataclass
class Prepared:
    """The user's model (eval mode, on device, checkpoint loaded), the dataset (on the CPU), the arguments the
    factory was called with (JSON-able) and the measurement subsets: positions in the training and test splits."""

    spec: UserModelSpec
    model: nn.Module
    checkpoint: Checkpoint | None
    dataset: ImageDataset
    device: torch.device
    arguments: dict
    train_indices: np.ndarray
    test_indices: np.ndarray


def subset_indices(labels: torch.Tensor, size: int, seed: int) -> np.ndarray:
    """A stratified subset of `size` positions of labels (N,) seeded by `seed`; all N (in order) when size >= N."""
    array = labels.cpu().numpy()
    return np.arange(len(array)) if size >= len(array) else stratified_indices(array, size, seed)[0]


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(inputs (B, C, H, W), targets (B,))] on device: the data as the library takes it."""
    return [(x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)) for i in range(0, len(y), batch_size)]


def prepare(model_text: str, checkpoint_path: Path | None, dataset: str, data_dir, settings) -> Prepared:
    """Parse, read and build everything, cheapest checks first (model text, dataset name, device, the model
    file's import, the checkpoint file, then the data), so that a mistake is reported before any measurement."""
    spec = parse_model_spec(model_text)
    key = dataset_key(dataset)
    device = resolve_device(settings.device)
    load_factory(spec)  # the user's file imported and its function found before the checkpoint is unpickled
    checkpoint = read_checkpoint(checkpoint_path) if checkpoint_path is not None else None
    data = load_dataset(key, data_dir=data_dir, normalize=settings.normalize)
    arguments = {"input_shape": tuple(data.input_shape), "num_outputs": data.num_classes, "seed": settings.seed}
    model = build_user_model(spec, **arguments, device="cpu")
    # what the factory was called with (the names its signature takes), as JSON: the generator by how it was seeded
    available = {"input_shape": list(data.input_shape), "num_outputs": data.num_classes, "seed": settings.seed,
                 "generator": f"torch.Generator().manual_seed({settings.seed})"}
    called = factory_arguments(load_factory(spec), available, spec)
    if checkpoint is not None:
        load_weights(model, checkpoint, spec.where)
    model = model.to(device).eval()
    return Prepared(spec, model, checkpoint, data, device, called,
                    subset_indices(data.y_train, settings.max_examples, settings.seed),
                    subset_indices(data.y_test, settings.max_examples, settings.seed))


def evaluate(model: nn.Module, data: list) -> dict:
    """Mean cross-entropy and accuracy of model (eval mode) over the batches: {"loss", "accuracy", "examples"}."""
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for inputs, targets in data:
            outputs = model(inputs)
            loss_sum += nn.functional.cross_entropy(outputs, targets, reduction="sum").item()
            correct += int((outputs.argmax(1) == targets).sum())
            count += len(targets)
    return {"loss": loss_sum / count, "accuracy": correct / count, "examples": count}


def _shifted(model: nn.Module, direction: dict) -> nn.Module:
    """A copy of model with every parameter moved by direction[name] (theta + d1: the far end of the 1-D line)."""
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for name, parameter in moved.named_parameters():
            if name in direction:
                parameter.add_(direction[name])
    return moved


def extreme_eigenvalues(hessian, k: int, which: str, seed: int) -> tuple[np.ndarray, bool]:
    """(values (k,) sorted as `which` says, converged): Hessian.eigenvalues, or when ARPACK gives up after
    MAX_RESTARTS, the Ritz values it had converged (possibly fewer than k) and False."""
    from scipy.sparse.linalg import ArpackNoConvergence

    try:
        return hessian.eigenvalues(k, which, tol=EIGEN_TOL, max_iterations=MAX_RESTARTS, seed=seed).values, True
    except ArpackNoConvergence as error:
        values = np.sort(np.real(error.eigenvalues))
        return (values[::-1] if which == "largest" else values), False


def measure(prepared: Prepared, settings, progress: bool | None = False, bar=None) -> tuple[dict, dict]:
    """Every measurement of the card (module docstring of dlprobe.inspection): (record, figures)."""
    model, data, device, size = prepared.model, prepared.dataset, prepared.device, settings.batch_size
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(name):  # one step of the bar (command.STEPS), timed into inspect.json's timings_s
        if bar is not None:
            bar.set_description(f"inspect: {name}")
        started = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - started
        if bar is not None:
            bar.update(1)

    train, test = prepared.train_indices, prepared.test_indices
    train_batches = batches(data.x_train[train], data.y_train[train], size, device)
    test_batches = batches(data.x_test[test], data.y_test[test], size, device)
    loss = nn.CrossEntropyLoss()
    metrics = {"loss": loss, "accuracy": dlprobe.accuracy}

    with step("loss and accuracy"):
        evaluation = {"train": evaluate(model, batches(data.x_train, data.y_train, size, device)),
                      "test": evaluate(model, batches(data.x_test, data.y_test, size, device))}
    with step("top eigenvalues"):
        hessian = dlprobe.Hessian(model, loss, train_batches, progress=progress)
        k = min(settings.eigenvalues, hessian.num_params - 1)  # Lanczos needs k < P
        top, top_converged = extreme_eigenvalues(hessian, k, "largest", settings.seed)
    with step("bottom eigenvalues"):
        bottom, bottom_converged = extreme_eigenvalues(hessian, k, "smallest", settings.seed)
    with step("trace"):
        trace = hessian.trace(settings.probes, seed=settings.seed)
    with step("spectral density"):
        density = hessian.density(steps=settings.density_steps, runs=settings.density_runs, seed=settings.seed)

    bn = "keep" if settings.bn == "keep" else train_batches
    directions = dlprobe.filter_directions(model, seed=settings.seed)
    with step("1-D landscape"):
        alphas = np.linspace(-settings.span, settings.span, settings.line_points)
        line = dlprobe.interpolate(model, _shifted(model, directions[0]), train_batches, metrics, alphas=alphas, bn=bn,
                                   progress=progress)
    with step("2-D landscape"):
        plane = dlprobe.surface(model, train_batches, metrics, directions=directions, steps=settings.grid, span=settings.span,
                                bn=bn, progress=progress)
    with step("sharpness"):
        sharp = dlprobe.sharpness(model, loss, train_batches, epsilon=settings.epsilon, steps=settings.sharpness_steps,
                                  seed=settings.seed)
    with step("sensitivity"):
        sensitivity = {kind: dlprobe.sensitivity(model, test_batches, kind=kind, loss_fn=loss)
                       for kind in ("input_gradient", "jacobian")}

    table = layer_table(model, data.x_train[:2].to(device))
    record = {
        "model": {"model": prepared.spec.text, "file": str(model_source(prepared.spec)), "function": prepared.spec.function,
                  "sha256": model_digest(prepared.spec), "docstring": _docstring(prepared.spec),
                  "arguments": prepared.arguments},
        "checkpoint": prepared.checkpoint.describe() if prepared.checkpoint is not None else None,
        "dataset": {"name": data.name, "note": data.note, "num_classes": data.num_classes, "input_shape": list(data.input_shape),
                    "num_train": data.num_train, "num_test": data.num_test, "normalize": settings.normalize,
                    **({"sha256": data.user.sha256, "format": data.user.format} if data.user is not None else {})},
        "device": str(device),
        "settings": settings.to_dict(),
        "evaluation": evaluation,
        "subsets": {"train": len(train), "test": len(test),
                    "rule": "stratified_indices(labels, max_examples, seed), the whole split when not larger"},
        "hessian": {"num_params": hessian.num_params, "examples": hessian.num_examples, "loss": hessian.loss,
                    "top_eigenvalues": top.tolist(), "bottom_eigenvalues": bottom.tolist(),
                    "converged": {"top": top_converged, "bottom": bottom_converged, "max_restarts": MAX_RESTARTS},
                    "trace": {"estimate": trace.estimate, "standard_error": trace.standard_error, "probes": len(trace.samples)},
                    "density": {"steps": settings.density_steps, "runs": settings.density_runs, "nodes": density.nodes.tolist(),
                                "weights": density.weights.tolist(), "sigma": density.sigma}},
        "landscape": {"directions": "filter-normalized (Li et al. 2018), dlprobe.filter_directions(model, seed)", "bn": line.bn,
                      "line": {"alphas": line.alphas.tolist(), **{name: values.tolist() for name, values in line.values.items()}},
                      "surface": {"coordinates": plane.coordinates1.tolist(),
                                  **{name: values.tolist() for name, values in plane.values.items()}}},
        "sharpness": {"percent": sharp.sharpness, "loss": sharp.loss, "loss_at_maximum": sharp.loss_at_maximum,
                      "epsilon": sharp.epsilon, "steps": sharp.steps},
        "sensitivity": {**sensitivity, "examples": len(test), "split": "test"},
        "layer_table": table,
        "timings_s": timings,
    }
    return record, figures(top, bottom, density, line, plane)


def _docstring(spec: UserModelSpec) -> str:
    """The factory's docstring, first paragraph (shown on the card, escaped)."""
    text = (load_factory(spec).__doc__ or "").strip()
    return text.split("\n\n")[0].strip()


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def figures(top, bottom, density, line, plane) -> dict[str, bytes]:
    """The card's four figures as PNG bytes, drawn with the library's plot helpers on pyplot-free Figures."""
    from matplotlib.figure import Figure

    def new():
        figure = Figure(figsize=(6.4, 4.2), constrained_layout=True)
        return figure, figure.subplots()

    drawn = {}
    figure, ax = new()
    dlprobe.plot_spectrum(top, ax=ax, label="largest")
    ax.plot(np.arange(1, len(bottom) + 1), bottom, "s--", color="tab:red", markersize=4, label="smallest")
    ax.set_xlabel("rank (largest: descending; smallest: ascending)")
    ax.legend()
    drawn["spectrum"] = _png(figure)
    figure, ax = new()
    dlprobe.plot_density(density, ax=ax)
    drawn["density"] = _png(figure)
    figure, ax = new()  # the line's alpha is the coordinate along d1: theta + alpha d1
    ax.plot(line.alphas, line.values["loss"], color="tab:blue", linewidth=1.6)
    ax.set_xlabel("alpha (theta + alpha d1, filter-normalized units)")
    ax.set_ylabel("training loss", color="tab:blue")
    twin = ax.twinx()
    twin.plot(line.alphas, line.values["accuracy"], color="tab:orange", linewidth=1.2, linestyle="--")
    twin.set_ylabel("training accuracy", color="tab:orange")
    ax.axvline(0.0, color="0.6", linestyle=":", linewidth=0.8)
    drawn["line"] = _png(figure)
    figure, ax = new()
    dlprobe.plot_surface(plane, "loss", ax=ax)
    drawn["surface"] = _png(figure)
    return drawn
