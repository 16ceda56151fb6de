"""Case 2: the exact (P, P) Hessian of the 865-parameter tanh MLP 1-16-16-16-16-1 on 1000 points (MSE).

dlprobe: `dense_hessian(make_flat_loss(model, F.mse_loss, x, y), theta)` (the structured upper-triangle path).
Baseline: `torch.func.hessian(f)(theta)` out of the box (forward-over-reverse over the same f).
Both in float32; the check is their max abs difference, and each is also compared with a float64 Hessian.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlprobe.analysis.hessian import dense_hessian
from dlprobe.analysis.params import flatten_params, make_flat_loss
from dlprobe.data.functions import function_dataset
from dlprobe.models.mlp import MLPSpec, build_mlp

from .common import baseline, case_record, equality, interleaved, median_ratio, side

NAME = "exact Hessian of an 865-parameter MLP"
TARGET = 5.0
TOLERANCE = 1e-5  # max abs difference, float32


def run(smoke: bool = False, repeats: int | None = None) -> dict:
    repeats = repeats or (1 if smoke else 5)
    widths, num_points = ((4, 4), 50) if smoke else ((16, 16, 16, 16), 1000)
    spec = MLPSpec(1, widths, 1, "tanh")
    model = build_mlp(spec, torch.Generator().manual_seed(0))
    x, y, _, _ = function_dataset("sinc", num_points, 10)
    loss = make_flat_loss(model, F.mse_loss, x, y)
    theta = flatten_params(model)
    sides = {"dlprobe": lambda r: dense_hessian(loss, theta), "torch.func": lambda r: torch.func.hessian(loss)(theta)}
    for function in sides.values():  # warm-up: the first vmap/jacfwd calls carry one-off costs
        function(0)
    times, results = interleaved(sides, repeats)
    ours, theirs = results["dlprobe"][0], results["torch.func"][0]
    loss64 = make_flat_loss(build_mlp(spec, torch.Generator().manual_seed(0)).double(), F.mse_loss, x.double(), y.double())
    exact = torch.func.hessian(loss64)(theta.double())
    ratio = median_ratio(times["torch.func"], times["dlprobe"])
    check = equality("max |H_dlprobe - H_torch.func| (float32)", float((ours - theirs).abs().max()), TOLERANCE,
                     dlprobe_error_vs_float64=float((ours.double() - exact).abs().max()),
                     torch_func_error_vs_float64=float((theirs.double() - exact).abs().max()),
                     max_abs_hessian_entry=float(exact.abs().max()),
                     dlprobe_symmetric=bool(torch.equal(ours, ours.T)))
    settings = {"architecture": spec.describe(), "activation": "tanh", "num_params": spec.num_params, "num_points": num_points,
                "loss": "mse", "dtype": "float32", "repeats": repeats, "data": "sinc on [-1, 1]", "model": "build_mlp seed 0 (at init)"}
    return case_record(2, NAME, settings, side("dense_hessian(make_flat_loss(...), theta)", times["dlprobe"]),
                       [baseline("torch.func.hessian(f)(theta)", times["torch.func"], ratio, TARGET)], check, threads=1)
