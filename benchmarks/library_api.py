"""Cases 7-9: the public API (`dlprobe.Hessian`, `dlprobe.surface`) against PyHessian and loss-landscapes.

    7  top-5 Hessian eigenvalues of a CNN with BatchNorm (20.6k parameters) over a DataLoader of 8 batches of 128
       mnist-5k images: dlprobe.Hessian(...).eigenvalues(5, which="magnitude") vs PyHessian
       hessian(model, criterion, dataloader=loader).eigenvalues(top_n=5) (power iteration, its defaults);
       both checked against a float64 reference (scipy eigsh on dlprobe's float64 products, tol 1e-10, not
       dlprobe's own Lanczos). Also the largest eigenvalue of 4000 images in 32 batches, each side in its own
       process: time, products and peak memory, dlprobe at its default tol 1e-5 and at PyHessian's 1e-3, every
       value checked against a tight float32 eigsh reference.
   10  the same top-5 comparison for the 120k-parameter CNN of case 3 (no BatchNorm) over a DataLoader of 8
       batches of 128 images.
    8  Hutchinson trace, 100 Rademacher probes, the same CNN on 1024 images as one batch: dlprobe.Hessian(...)
       .trace(probes) vs PyHessian trace(maxIter=100, tol=-inf, i.e. exactly 100 probes); the probes are
       PyHessian's own (its global-RNG draws, reproduced), so both estimate with the same vectors.
    9  11 x 11 filter-normalized surface of that CNN on 1024 images, BatchNorm statistics kept: dlprobe.surface
       vs loss_landscapes.random_plane(model, Loss(...), steps=11, normalization="filter"); the check runs
       dlprobe on loss-landscapes' own directions and grid and compares the 121 losses.
PyHessian and loss-landscapes are benchmark references, not dependencies: `pip install --no-deps pyhessian
loss-landscapes` (into a venv that sees torch); without them the cases are skipped with that message.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dlprobe
from dlprobe.data.images import load_dataset

from .common import baseline, case_record, equality, interleaved, median_ratio, relative_error, side
from .errors import SkipCase
from .top_eigenvalues import cnn_120k

INSTALL = ("PyHessian / loss-landscapes are not installed: `pip install --no-deps pyhessian loss-landscapes` "
           "(pure Python, into an environment that has torch)")


def _require(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise SkipCase(INSTALL) from None


def batchnorm_cnn(width: int = 16) -> nn.Module:
    """conv(1->w)-BN-ReLU-pool, conv(w->2w)-BN-ReLU-pool, linear to 10 on 28x28 images: 20,586 parameters at w=16."""
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(2 * width * 7 * 7, 10))


def trained_model(smoke: bool):
    """The CNN after one epoch of Adam on 4000 mnist-5k images (smoke: width 2, 256 images), in eval mode; and
    (x (N, 1, 28, 28), y (N,)) with N = 1024 (smoke 64) training images. (Trained also at smoke size: at init
    BatchNorm biases are 0, and loss-landscapes' filter normalization then divides by zero.)"""
    dataset = load_dataset("mnist-5k")
    torch.manual_seed(0)
    model = batchnorm_cnn(2 if smoke else 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    num_train = 256 if smoke else len(dataset.x_train)
    loader = DataLoader(TensorDataset(dataset.x_train[:num_train], dataset.y_train[:num_train]), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    model.train()
    for inputs, targets in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    model.eval()
    num_images = 64 if smoke else 1024
    return model, dataset.x_train[:num_images], dataset.y_train[:num_images]


def _settings(model, x, extra: dict) -> dict:
    return {"model": "conv-BN-ReLU-pool x2 + linear (mnist-5k 28x28)", "num_params": sum(p.numel() for p in model.parameters()),
            "num_images": len(x), "loss": "CrossEntropyLoss", "dtype": "float32", "mode": "eval", **extra}


def reference_eigenvalues(model, criterion, data, k: int, dtype=torch.float64, tol: float = 1e-10) -> np.ndarray:
    """The k largest-magnitude eigenvalues (by |value| descending) by scipy's eigsh (ARPACK: residual test) on
    dlprobe's products in `dtype`, independent of dlprobe's own Lanczos (Hessian.eigenvalues)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    hessian = dlprobe.Hessian(model, criterion, data, dtype=dtype, progress=False)
    size = hessian.num_params
    operator = LinearOperator((size, size), matvec=lambda v: hessian.hvp(np.asarray(v, dtype=np.float64).reshape(-1)),
                              dtype=np.float64)
    values = eigsh(operator, k=k, which="LM", tol=tol, v0=np.random.default_rng(12345).standard_normal(size),
                   return_eigenvectors=False)
    return values[np.argsort(-np.abs(values), kind="stable")]


def top_eigenvalues_comparison(model, x, y, top: int, repeats: int) -> tuple[dict, dict, dict]:
    """dlprobe.Hessian(model, loss, loader).eigenvalues(top, "magnitude") and PyHessian's eigenvalues(top_n=top)
    over a DataLoader of 8 batches of (x, y), interleaved; products counted on both sides. Returns (times,
    products, check): dlprobe within 1e-3 relative of `reference_eigenvalues` (float64, tol 1e-10)."""
    pyhessian = _require("pyhessian").hessian
    pyhessian_module = sys.modules["pyhessian.hessian"]
    loader = DataLoader(TensorDataset(x, y), batch_size=len(x) // 8)
    criterion = nn.CrossEntropyLoss()
    counts = {"dlprobe": [], "pyhessian": []}

    def ours(repetition):
        with _counted(dlprobe.Hessian, "_products", lambda vectors, *_: len(vectors)) as count:
            values = dlprobe.Hessian(model, criterion, loader, progress=False).eigenvalues(top, which="magnitude", seed=repetition).values
        counts["dlprobe"].append(count[0])
        return values

    def theirs(repetition):
        torch.manual_seed(repetition)  # PyHessian's start vectors come from the global RNG
        with warnings.catch_warnings(), _counted(pyhessian_module.hessian, "dataloader_hv_product", lambda *_: 1) as count:
            warnings.simplefilter("ignore")  # backward(create_graph=True) warns about reference cycles
            values, _ = pyhessian(copy.deepcopy(model), criterion, dataloader=loader, cuda=False).eigenvalues(top_n=top)
        counts["pyhessian"].append(count[0])
        return np.asarray(values)

    ours(0)  # warm-up
    counts["dlprobe"].clear()
    times, results = interleaved({"dlprobe": ours, "pyhessian": theirs}, repeats)
    reference = reference_eigenvalues(model, criterion, loader, top)
    ours_error = max(relative_error(v, reference) for v in results["dlprobe"])
    theirs_errors = [relative_error(v[np.argsort(-np.abs(v), kind="stable")], reference) for v in results["pyhessian"]]
    check = equality(f"top-{top} eigenvalues (largest magnitude), max relative error vs float64 eigsh tol 1e-10 (dlprobe)",
                     ours_error, 1e-3, reference=reference.tolist(), dlprobe_eigenvalues=[v.tolist() for v in results["dlprobe"]],
                     pyhessian_max_relative_error=max(theirs_errors), pyhessian_within_1e_3=bool(max(theirs_errors) <= 1e-3),
                     pyhessian_eigenvalues=[v.tolist() for v in results["pyhessian"]])
    return times, counts, check


class _counted:
    """Count the calls of owner.<name> while in the block (count(*args) per call, e.g. the vectors of a product)."""

    def __init__(self, owner, name: str, count):
        self.owner, self.name, self.count, self.total = owner, name, count, [0]

    def __enter__(self):
        self.original = original = getattr(self.owner, self.name)

        def wrapper(*args, **kwargs):
            self.total[0] += self.count(*args[1:])
            return original(*args, **kwargs)

        setattr(self.owner, self.name, wrapper)
        return self.total

    def __exit__(self, *exc):
        setattr(self.owner, self.name, self.original)


def run_eigenvalues(smoke: bool = False, repeats: int | None = None) -> dict:
    repeats = repeats or (1 if smoke else 3)
    model, x, y = trained_model(smoke)
    top = 2 if smoke else 5
    times, counts, check = top_eigenvalues_comparison(model, x, y, top, repeats)
    ratio = median_ratio(times["pyhessian"], times["dlprobe"])
    memory = memory_comparison(model, smoke)
    settings = _settings(model, x, {"data": f"DataLoader, 8 batches of {len(x) // 8}", "k": top,
                                    "dlprobe": "Hessian.eigenvalues on batch-accumulated products (k=5: eigsh, basis 3k+3), tol 1e-5 (default)",
                                    "pyhessian": "dataloader=, power iteration maxIter=100 tol=1e-3 (defaults)"})
    return case_record(7, CASE_7.NAME, settings, side("dlprobe.Hessian(model, loss, loader).eigenvalues(5)", times["dlprobe"]),
                       [baseline("PyHessian hessian(dataloader=).eigenvalues(top_n=5)", times["pyhessian"], ratio, 3.0)],
                       check, threads=1, hessian_vector_products=counts, full_dataset_largest_eigenvalue=memory)


def run_eigenvalues_120k(smoke: bool = False, repeats: int | None = None) -> dict:
    repeats = repeats or (1 if smoke else 3)
    model, spec, x, y = cnn_120k(smoke)
    top = 2 if smoke else 5
    times, counts, check = top_eigenvalues_comparison(model, x, y, top, repeats)
    ratio = median_ratio(times["pyhessian"], times["dlprobe"])
    settings = {"model": spec.describe(), "num_params": spec.num_params, "num_images": len(x), "loss": "CrossEntropyLoss",
                "dtype": "float32", "mode": "eval", "trained": "no (init)" if smoke else "1 epoch Adam 1e-3, batch 64",
                "data": f"DataLoader, 8 batches of {len(x) // 8}", "k": top,
                "dlprobe": "Hessian.eigenvalues on batch-accumulated products (k=5: eigsh, basis 3k+3), tol 1e-5 (default)",
                "pyhessian": "dataloader=, power iteration maxIter=100 tol=1e-3 (defaults)"}
    return case_record(10, CASE_10.NAME, settings, side("dlprobe.Hessian(model, loss, loader).eigenvalues(5)", times["dlprobe"]),
                       [baseline("PyHessian hessian(dataloader=).eigenvalues(top_n=5)", times["pyhessian"], ratio, 3.0)],
                       check, threads=1, hessian_vector_products=counts)


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM (current / peak resident memory) of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


FULL_DATASET_SIDES = {"dlprobe": None, "dlprobe_tol_1e-3": 1e-3, "pyhessian": None}  # dlprobe: eigenvalues(tol=...)


def memory_child(which: str, state_path: str, num_images: int, batch_size: int, width: int = 16) -> dict:
    """In a fresh process: the largest eigenvalue over a DataLoader of num_images mnist-5k images, one side
    (FULL_DATASET_SIDES). One call, the first (its first-call costs count on both sides): seconds,
    peak_increase_mb (peak resident memory during the call minus the resident memory before it, from
    /proc/self/status after resetting the peak), value, hessian_vector_products (one pass over the data each)."""
    torch.set_num_threads(1)
    dataset = load_dataset("mnist-5k")
    model = batchnorm_cnn(width)
    model.load_state_dict(torch.load(state_path, weights_only=True))
    model.eval()
    loader = DataLoader(TensorDataset(dataset.x_train[:num_images], dataset.y_train[:num_images]), batch_size=batch_size)
    criterion = nn.CrossEntropyLoss()
    if which != "pyhessian":
        tol = FULL_DATASET_SIDES[which]
        counter = _counted(dlprobe.Hessian, "_products", lambda vectors, *_: len(vectors))

        def call():
            return float(dlprobe.Hessian(model, criterion, loader, progress=False).eigenvalues(1, which="magnitude", tol=tol).values[0])
    else:
        pyhessian = _require("pyhessian").hessian
        counter = _counted(sys.modules["pyhessian.hessian"].hessian, "dataloader_hv_product", lambda *_: 1)
        torch.manual_seed(0)

        def call():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(pyhessian(model, criterion, dataloader=loader, cuda=False).eigenvalues(top_n=1)[0][0])
    import scipy.sparse.linalg  # noqa: F401 - an import, not the measurement (dlprobe's eigsh fallback needs it)

    # No warm-up: the memory a first call takes is the point (a second one reuses the allocator's pages).
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak (VmHWM) to the current resident size (Linux >= 4.0)
    before = _status_mb("VmRSS")
    with counter as products:
        start = time.perf_counter()
        value = call()
        seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "peak_increase_mb": round(_status_mb("VmHWM") - before, 1), "value": value,
            "hessian_vector_products": products[0]}


def memory_comparison(model, smoke: bool) -> dict:
    """memory_child on every side, each in its own process (one after the other, in FULL_DATASET_SIDES order),
    and every value against a tight reference (scipy eigsh, tol 1e-6, on dlprobe's float32 products over the
    same batches: float32 rounding of the products ~1e-6 relative; the check is 1e-3)."""
    num_images, batch_size = (256, 32) if smoke else (4000, 125)
    sides = {}
    with tempfile.TemporaryDirectory() as folder:
        state_path = str(Path(folder) / "state.pt")
        torch.save(model.state_dict(), state_path)
        for which in FULL_DATASET_SIDES:
            code = (f"import json, benchmarks.library_api as b; print(json.dumps(b.memory_child({which!r}, {state_path!r}, "
                    f"{num_images}, {batch_size}, {model[0].out_channels})))")
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                return {"error": done.stderr[-800:]}
            sides[which] = json.loads(done.stdout.strip().splitlines()[-1])
    dataset = load_dataset("mnist-5k")
    loader = DataLoader(TensorDataset(dataset.x_train[:num_images], dataset.y_train[:num_images]), batch_size=batch_size)
    reference = float(reference_eigenvalues(model, nn.CrossEntropyLoss(), loader, 1, dtype=torch.float32, tol=1e-6)[0])
    for record in sides.values():
        record["relative_error"] = abs(record["value"] - reference) / abs(reference)
        record["within_1e_3"] = bool(record["relative_error"] <= 1e-3)
    theirs = sides["pyhessian"]
    return {"images": num_images, "batches": num_images // batch_size, "sides": sides, "reference": reference,
            "reference_method": "scipy eigsh which=LM tol 1e-6 on float32 products (ARPACK residual test)",
            "memory_ratio_dlprobe_to_pyhessian": round(sides["dlprobe"]["peak_increase_mb"] / max(theirs["peak_increase_mb"], 1e-9), 3),
            "time_ratio_dlprobe_to_pyhessian": round(sides["dlprobe"]["seconds"] / theirs["seconds"], 3),
            "time_ratio_dlprobe_tol_1e_3_to_pyhessian": round(sides["dlprobe_tol_1e-3"]["seconds"] / theirs["seconds"], 3),
            "targets": "memory ratio <= 1.25, time ratio <= 0.7, every value within 1e-3 of the reference"}


def pyhessian_probes(model, num_probes: int, seed: int, over_loader: bool = False) -> torch.Tensor:
    """(num_probes, P) the Rademacher vectors PyHessian's trace() draws after torch.manual_seed(seed): randint_like
    per trainable parameter tensor, in order, one probe after the other, zeros set to -1. over_loader: its
    dataloader= path iterates a DataLoader after each draw, and creating the iterator takes one int64 from the
    global RNG (its base seed), so that draw is made here too."""
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for _ in range(num_probes):
        parts = [torch.randint_like(p, high=2) for p in params]
        rows.append(torch.cat([part.reshape(-1) for part in parts]) * 2 - 1)
        if over_loader:
            torch.empty((), dtype=torch.int64).random_()
    return torch.stack(rows)


def run_trace(smoke: bool = False, repeats: int | None = None) -> dict:
    pyhessian = _require("pyhessian").hessian
    repeats = repeats or (1 if smoke else 3)
    model, x, y = trained_model(smoke)
    criterion = nn.CrossEntropyLoss()
    num_probes = 10 if smoke else 100

    def ours(repetition):
        probes = pyhessian_probes(model, num_probes, repetition)
        return dlprobe.Hessian(model, criterion, (x, y), progress=False).trace(probes).estimate

    def theirs(repetition):
        torch.manual_seed(repetition)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples = pyhessian(copy.deepcopy(model), criterion, data=(x, y), cuda=False).trace(maxIter=num_probes, tol=float("-inf"))
        assert len(samples) == num_probes
        return float(np.mean(samples))

    loader = DataLoader(TensorDataset(x, y), batch_size=len(x) // 8)

    def ours_over_loader(repetition):  # each batch's graph built once and used for all probes: one data pass
        probes = pyhessian_probes(model, num_probes, repetition, over_loader=True)
        return dlprobe.Hessian(model, criterion, loader, progress=False).trace(probes).estimate

    def theirs_over_loader(repetition):  # one data pass per probe
        torch.manual_seed(repetition)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples = pyhessian(copy.deepcopy(model), criterion, dataloader=loader, cuda=False).trace(maxIter=num_probes,
                                                                                                    tol=float("-inf"))
        return float(np.mean(samples))

    ours(0)
    times, results = interleaved({"dlprobe": ours, "pyhessian": theirs}, repeats)
    loader_times, loader_results = interleaved({"dlprobe": ours_over_loader, "pyhessian": theirs_over_loader}, 1)
    over_loader = {"batches": 8, "target": "ratio >= 1.5, relative difference <= 1e-5", "dlprobe_s": round(loader_times["dlprobe"][0], 3), "pyhessian_s": round(loader_times["pyhessian"][0], 3),
                   "ratio": round(loader_times["pyhessian"][0] / loader_times["dlprobe"][0], 3),
                   "relative_difference": abs(loader_results["dlprobe"][0] - loader_results["pyhessian"][0]) / abs(loader_results["pyhessian"][0])}
    error = max(abs(a - b) / abs(b) for a, b in zip(results["dlprobe"], results["pyhessian"]))
    check = equality("trace estimate with the same probe vectors, relative difference", error, 1e-5,
                     dlprobe=results["dlprobe"], pyhessian=results["pyhessian"])
    ratio = median_ratio(times["pyhessian"], times["dlprobe"])
    settings = _settings(model, x, {"data": "(x, y), one batch", "probes": num_probes,
                                    "dlprobe": "one gradient graph, probes 8 at a time (is_grads_batched)",
                                    "pyhessian": "data=, trace(maxIter=100, tol=-inf): exactly 100 probes"})
    return case_record(8, CASE_8.NAME, settings, side("dlprobe.Hessian(model, loss, (x, y)).trace(probes)", times["dlprobe"]),
                       [baseline("PyHessian hessian(data=).trace(maxIter=100)", times["pyhessian"], ratio, 1.5)], check, threads=1,
                       over_a_dataloader=over_loader)


class _Recording:
    """A loss-landscapes metric that also records the parameters of every point it is called at."""

    def __init__(self, model, loss):
        self.model, self.loss, self.points = model, loss, []

    def __call__(self, wrapper):
        self.points.append({name: p.detach().clone() for name, p in self.model.named_parameters()})
        return self.loss(wrapper)


def run_surface(smoke: bool = False, repeats: int | None = None) -> dict:
    landscapes = _require("loss_landscapes")
    metrics = _require("loss_landscapes.metrics")
    repeats = repeats or (1 if smoke else 3)
    model, x, y = trained_model(smoke)
    criterion = nn.CrossEntropyLoss()
    steps = 5 if smoke else 11

    def ours(repetition):
        return dlprobe.surface(model, (x, y), criterion, steps=steps, span=1.0, seed=repetition, bn="keep", progress=False)

    def theirs(repetition):
        torch.manual_seed(repetition)
        with torch.no_grad():
            return landscapes.random_plane(copy.deepcopy(model), metrics.Loss(criterion, x, y), distance=1, steps=steps,
                                           normalization="filter")

    def recomputing(repetition):
        return dlprobe.surface(model, (x, y), criterion, steps=steps, span=1.0, seed=repetition,
                               bn=DataLoader(TensorDataset(x, y), batch_size=128), progress=False)

    ours(0)
    times, _ = interleaved({"dlprobe": ours, "loss_landscapes": theirs, "dlprobe_bn_recomputed": recomputing}, repeats)
    # The check: loss-landscapes' own directions and grid, recorded at every point it evaluates.
    copy_of_model = copy.deepcopy(model)
    recorder = _Recording(copy_of_model, metrics.Loss(criterion, x, y))
    torch.manual_seed(0)
    with torch.no_grad():
        values = landscapes.random_plane(copy_of_model, recorder, distance=1, steps=steps, normalization="filter")
    # Its walk: start at theta - h d1 - h d2 (h = steps / 2, d1, d2 one grid step), then column i goes along d2
    # by in-place additions, even columns upwards (the first point after one step), odd ones downwards, each
    # followed by one step along d1. So row i of its result holds b = j + 1 - h for even i but b = j - h for
    # odd i: the grid is staggered by one step. dlprobe evaluates the regular grid that contains both.
    first = recorder.points[0]  # (a, b) = (-h, 1 - h)
    d2 = {name: recorder.points[1][name] - first[name] for name in first}
    d1 = {name: recorder.points[2 * steps - 1][name] - first[name] + d2[name] for name in first}  # (1 - h, -h)
    half = steps / 2
    plane = dlprobe.surface(model, (x, y), criterion, directions=(d1, d2), bn="keep", progress=False,
                            coordinates=(np.arange(steps) - half, np.arange(steps + 1) - half))
    ours_on_their_points = np.stack([plane.values["loss"][i, 1:] if i % 2 == 0 else plane.values["loss"][i, :-1]
                                     for i in range(steps)])
    error = relative_error(ours_on_their_points, values)
    check = equality("the 121 losses on loss-landscapes' directions and grid, max relative difference", error, 1e-5,
                     note="loss-landscapes moves along the grid by in-place additions, so its points carry float32 "
                          "rounding that a direct theta + a d1 + b d2 does not; its odd rows are shifted by one step "
                          "along d2 (a staggered grid), which the comparison follows")
    ratio = median_ratio(times["loss_landscapes"], times["dlprobe"])
    recompute = {"median_s": round(float(np.median(times["dlprobe_bn_recomputed"])), 4),
                 "ratio_loss_landscapes_to_this": round(median_ratio(times["loss_landscapes"], times["dlprobe_bn_recomputed"]), 3)}
    settings = _settings(model, x, {"grid": f"{steps} x {steps}", "directions": "filter-normalized, random",
                                    "batchnorm": "running statistics kept (loss-landscapes' semantics)"})
    return case_record(9, CASE_9.NAME, settings, side("dlprobe.surface(model, (x, y), loss, steps=11, bn='keep')", times["dlprobe"]),
                       [baseline("loss_landscapes.random_plane(steps=11, 'filter')", times["loss_landscapes"], ratio, 1.0)],
                       check, threads=1, batchnorm_recomputed=recompute)


CASE_7 = types.SimpleNamespace(NAME="top-5 eigenvalues, BatchNorm CNN over a DataLoader (dlprobe.Hessian)", run=run_eigenvalues)
CASE_8 = types.SimpleNamespace(NAME="Hutchinson trace, 100 probes, BatchNorm CNN (dlprobe.Hessian)", run=run_trace)
CASE_9 = types.SimpleNamespace(NAME="11x11 filter-normalized surface, BatchNorm CNN (dlprobe.surface)", run=run_surface)
CASE_10 = types.SimpleNamespace(NAME="top-5 eigenvalues, 120k-parameter CNN over a DataLoader (dlprobe.Hessian)",
                                run=run_eigenvalues_120k)
