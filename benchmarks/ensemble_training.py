"""Case 1: many small models. M tanh MLPs 1-16-16-16-16-1 (865 parameters) on 1000 points, full-batch Adam.

dlprobe: `train_ensemble(spec, seeds, data, TrainSpec(epochs=steps, eval_every=steps))` (it evaluates train
and test loss at epoch 0 and at the end: two forward passes, negligible next to `steps` training steps).
Baselines: (a) the sequential loop a student writes (nn.Sequential + torch.optim.Adam per model) and (b) the
PyTorch ensembling tutorial's recipe (torch.func.stack_module_state + vmap(functional_call), one Adam over the
stacked parameters). All three start every model from `build_mlp(spec, Generator().manual_seed(seed))`.

Speed is compared in model-steps per second. The sequential loop costs the same per model whatever M is, so
each repetition trains a different slice of the M models (all M once over the repetitions): the rate is
measured interleaved with the other sides and the equality check still covers every model.
FLOPs: matmuls of forward (2 N fan_in fan_out per layer) and backward (weight and input gradients, no input
gradient for the first layer), bias adds and activations not counted.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from dlprobe.data.functions import function_dataset
from dlprobe.data.tensors import TensorData
from dlprobe.models.mlp import MLPSpec, build_mlp
from dlprobe.training.common import OptimizerSettings
from dlprobe.training.ensemble import train_ensemble
from dlprobe.training.loop import TrainSpec

from .common import baseline, case_record, equality, interleaved, matmul_peak_gflops, median_ratio, relative_error, side

NAME = "many small models: ensemble training"
TARGETS = {"sequential loop": 8.0, "torch.func vmap recipe": 2.0}
TOLERANCE = 1e-4  # relative, final training loss vs the sequential loop
LEARNING_RATE = 1e-3


def sizes(smoke: bool) -> dict:
    if smoke:
        return {"num_models": 4, "num_points": 64, "steps": 5, "widths": (16, 16, 16, 16)}
    return {"num_models": 100, "num_points": 1000, "steps": 300, "widths": (16, 16, 16, 16)}


def matmul_flops_per_model_step(spec: MLPSpec, num_points: int) -> int:
    """Forward + backward matmul FLOPs of one full-batch step of one model (see module docstring)."""
    products = [fan_in * fan_out for fan_in, fan_out in spec.layer_sizes]
    return 2 * num_points * (3 * sum(products) - products[0])


def train_sequential(spec, seeds, x, y, steps) -> list[float]:
    """The plain loop: one nn.Module and one torch.optim.Adam per model. Final full-batch losses."""
    finals = []
    for seed in seeds:
        model = build_mlp(spec, torch.Generator().manual_seed(int(seed)))
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            finals.append(F.mse_loss(model(x), y).item())
    return finals


def train_vmap_recipe(spec, seeds, x, y, steps) -> list[float]:
    """The torch.func ensembling tutorial: stacked parameters, vmap(functional_call), one Adam."""
    models = [build_mlp(spec, torch.Generator().manual_seed(int(seed))) for seed in seeds]
    params, buffers = stack_module_state(models)  # name -> (M, ...) leaves with requires_grad
    base = copy.deepcopy(models[0]).to("meta")

    def forward(p, b):
        return functional_call(base, (p, b), (x,))

    batched = vmap(forward)
    optimizer = torch.optim.Adam(list(params.values()), lr=LEARNING_RATE)
    for _ in range(steps):
        optimizer.zero_grad()
        losses = ((batched(params, buffers) - y) ** 2).mean(dim=(1, 2))  # (M,) each model's own mean
        losses.sum().backward()
        optimizer.step()
    with torch.no_grad():
        return ((batched(params, buffers) - y) ** 2).mean(dim=(1, 2)).tolist()


def train_dlprobe(spec, seeds, data, steps) -> list[float]:
    spec_t = TrainSpec(loss="mse", optimizer=OptimizerSettings("adam", lr=LEARNING_RATE), epochs=steps, eval_every=steps)
    result = train_ensemble(spec, seeds, data, spec_t, record_runs=False)
    return result.final["train_loss"].tolist()


def measure(smoke: bool, repeats: int, threads: int, loop_models: int | None = None) -> dict:
    """Interleaved timing of the three sides at `threads` torch threads."""
    size = sizes(smoke)
    torch.set_num_threads(threads)
    spec = MLPSpec(1, size["widths"], 1, "tanh")
    x, y, x_test, y_test = function_dataset("sinc", size["num_points"], max(2, size["num_points"] // 5))
    data = TensorData(x, y, x_test, y_test)
    seeds = list(range(size["num_models"]))
    steps, num_models = size["steps"], size["num_models"]
    slices = [[int(seed) for seed in part] for part in np.array_split(seeds, repeats)]
    if loop_models is not None:
        slices = [seeds[r * loop_models:(r + 1) * loop_models] for r in range(repeats)]
    # Warm up every code path once at a tiny size (first calls of vmap/autograd carry one-off costs).
    train_dlprobe(spec, seeds[:2], data, 2)
    train_vmap_recipe(spec, seeds[:2], x, y, 2)
    train_sequential(spec, seeds[:1], x, y, 2)
    times, results = interleaved({
        "dlprobe": lambda r: train_dlprobe(spec, seeds, data, steps),
        "vmap": lambda r: train_vmap_recipe(spec, seeds, x, y, steps),
        "loop": lambda r: train_sequential(spec, slices[r], x, y, steps),
        "peak": lambda r: matmul_peak_gflops(256 if smoke else 1024, 2 if smoke else 10),
    }, repeats)
    # Per repetition: seconds per model-step of each side.
    per_step = {
        "dlprobe": [t / (num_models * steps) for t in times["dlprobe"]],
        "vmap": [t / (num_models * steps) for t in times["vmap"]],
        "loop": [t / (len(part) * steps) for t, part in zip(times["loop"], slices)],
    }
    loop_finals = {seed: value for part, values in zip(slices, results["loop"]) for seed, value in zip(part, values)}
    checked = sorted(loop_finals)
    ensemble_finals = np.asarray(results["dlprobe"][0])
    flops = matmul_flops_per_model_step(spec, size["num_points"])
    dlprobe_rate = 1 / float(np.median(per_step["dlprobe"]))
    peak = float(np.median(results["peak"]))
    return {
        "threads": threads,
        "size": size,
        "spec": spec,
        "times": times,
        "per_step": per_step,
        "slices": slices,
        "dlprobe_rate": dlprobe_rate,
        "achieved_gflops": dlprobe_rate * flops / 1e9,
        "vmap_gflops": flops / float(np.median(per_step["vmap"])) / 1e9,
        "loop_gflops": flops / float(np.median(per_step["loop"])) / 1e9,
        "peak_gflops": peak,
        "flops_per_model_step": flops,
        "error_vs_loop": relative_error(ensemble_finals[checked], [loop_finals[s] for s in checked]),
        "vmap_error_vs_loop": relative_error(np.asarray(results["vmap"][0])[checked], [loop_finals[s] for s in checked]),
        "repeatable": all(np.array_equal(ensemble_finals, np.asarray(other)) for other in results["dlprobe"][1:]),
        "models_checked": len(checked),
    }


def op_profile(smoke: bool, steps: int = 5) -> dict:
    """Where a step of the ensemble trainer spends its time (its hand-written forward/backward, ensemble_step.py,
    plus the optimizer): self-CPU share of the top operators over `steps` steps; and the cost per element of
    torch.tanh, of dlprobe's fast_tanh (numpy's vectorised tanh) and of sigmoid, on a tensor of a layer's size."""
    from torch.profiler import profile

    from dlprobe.models.fast_tanh import fast_tanh
    from dlprobe.models.ensemble_mlp import EnsembleMLP
    from dlprobe.training.ensemble_optim import EnsembleOptimizer
    from dlprobe.training.ensemble_step import StepBuffers, loss_and_gradients

    size = sizes(smoke)
    spec = MLPSpec(1, size["widths"], 1, "tanh")
    x, y, _, _ = function_dataset("sinc", size["num_points"], 10)
    model = EnsembleMLP(spec, range(size["num_models"]))
    optimizer = EnsembleOptimizer(model.parameters(), OptimizerSettings("adam", lr=LEARNING_RATE),
                                  torch.full((size["num_models"],), LEARNING_RATE, dtype=torch.float64))
    alive = torch.ones(size["num_models"], dtype=torch.bool)
    target = y.expand(size["num_models"], *y.shape)
    buffers = StepBuffers()

    def step():
        loss_and_gradients(model, x, target, "mse", True, alive, buffers)
        optimizer.step()

    step()
    with profile() as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    shares = {e.key: round(e.self_cpu_time_total / total, 3) for e in events[:6]}
    activations = torch.randn(size["num_models"] * size["num_points"] * size["widths"][0])
    kernels, _ = interleaved({"torch.tanh": lambda r: torch.tanh(activations), "fast_tanh": lambda r: fast_tanh(activations),
                              "sigmoid": lambda r: torch.sigmoid(activations)}, 7)
    per_element = {name: round(float(np.median(t)) * 1e9 / activations.numel(), 3) for name, t in kernels.items()}
    return {"self_cpu_share_of_top_ops": shares, "ms_per_step": round(total / steps / 1e3, 2), "ns_per_element": per_element}


def run(smoke: bool = False, repeats: int | None = None) -> dict:
    repeats = repeats or (1 if smoke else 3)
    one = measure(smoke, repeats, threads=1)
    # Two threads: the same sides; the loop rate from 20 models per repetition to bound the time.
    two = measure(smoke, 1 if smoke else 2, threads=2, loop_models=None if smoke else 20)
    torch.set_num_threads(1)
    size, steps = one["size"], one["size"]["steps"]
    work = size["num_models"] * steps
    unit = "model-steps/s"
    ratio_loop = median_ratio(one["per_step"]["loop"], one["per_step"]["dlprobe"])
    ratio_vmap = median_ratio(one["per_step"]["vmap"], one["per_step"]["dlprobe"])
    loop_side = baseline("sequential loop (nn.Sequential + torch.optim.Adam per model)", one["times"]["loop"], ratio_loop,
                         TARGETS["sequential loop"])
    loop_side["rate"] = round(1 / float(np.median(one["per_step"]["loop"])), 3)
    loop_side["rate_unit"] = unit
    loop_side["models_per_repetition"] = [len(part) for part in one["slices"]]
    loop_side["median_s_for_all_models"] = round(float(np.median(one["per_step"]["loop"])) * work, 4)  # same work as dlprobe
    vmap_side = baseline("torch.func stack_module_state + vmap(functional_call), one Adam", one["times"]["vmap"], ratio_vmap,
                         TARGETS["torch.func vmap recipe"], work, unit)
    check = equality("final training loss of every model vs the sequential loop (max relative difference)",
                     one["error_vs_loop"], TOLERANCE, models_checked=one["models_checked"],
                     vmap_recipe_error_vs_loop=one["vmap_error_vs_loop"], dlprobe_repeatable_bitwise=one["repeatable"])
    two_threads = {
        "ratio_vs_loop": round(median_ratio(two["per_step"]["loop"], two["per_step"]["dlprobe"]), 3),
        "ratio_vs_vmap": round(median_ratio(two["per_step"]["vmap"], two["per_step"]["dlprobe"]), 3),
        "dlprobe_rate": round(two["dlprobe_rate"], 3),
        "loop_rate": round(1 / float(np.median(two["per_step"]["loop"])), 3),
        "vmap_rate": round(1 / float(np.median(two["per_step"]["vmap"])), 3),
        "dlprobe_times_s": [round(t, 3) for t in two["times"]["dlprobe"]],
        "loop_models_per_repetition": [len(part) for part in two["slices"]],
        "final_loss_error_vs_loop": two["error_vs_loop"],
        "speedup_of_dlprobe_from_second_thread": round(two["dlprobe_rate"] / one["dlprobe_rate"], 3),
    }
    settings = {**{k: list(v) if isinstance(v, tuple) else v for k, v in size.items()}, "architecture": one["spec"].describe(),
                "activation": "tanh", "num_params": one["spec"].num_params, "optimizer": f"adam lr={LEARNING_RATE}",
                "data": "sinc on [-1, 1], full batch", "repeats": repeats}
    return case_record(
        1, NAME, settings, side("train_ensemble (EnsembleMLP, hand-written backward, EnsembleOptimizer)", one["times"]["dlprobe"], work, unit),
        [loop_side, vmap_side], check, threads=1,
        throughput={"flops_per_model_step": one["flops_per_model_step"], "dlprobe_gflops": round(one["achieved_gflops"], 2),
                    "vmap_recipe_gflops": round(one["vmap_gflops"], 2), "loop_gflops": round(one["loop_gflops"], 2),
                    "matmul_peak_gflops_1024": round(one["peak_gflops"], 2)},
        two_threads=two_threads, diagnostics=op_profile(smoke),
    )
