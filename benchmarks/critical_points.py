"""Case 5: end to end critical points, `dlprobe run critical-points --profile full` vs a plain reference.

Both sides run as child processes (interpreter start and imports included on both): dlprobe through its
CLI into a fresh temporary --out, the reference as `python -m benchmarks.critical_reference` (same
settings, read from dlprobe's Config and full profile). `runs` sets num_runs on both sides (default 100,
the full profile; pass --runs 20 to finish in minutes). The distributions of the minimal ratio (and of the
loss and sampling ratio) are compared: means, quantiles, the two-sample Kolmogorov-Smirnov statistic and
p-value, and the fraction of seeds whose minimal ratio is identical on both sides.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp

from .common import baseline, case_record, interleaved, median_ratio, side

NAME = "critical points end to end"
TARGET = 10.0
P_VALUE = 0.05  # the minimal-ratio distributions match when the KS test finds no difference at this level
REPO = Path(__file__).resolve().parents[1]
KEYS = ("minimal_ratio", "loss", "sampling_ratio", "grad_norm")  # sampling_ratio: the first radius on both sides


def _run(command: list[str]) -> None:
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed ({finished.returncode}): {finished.stderr.strip()[-800:]}")


def run_dlprobe(profile: str, runs: int, workdir: Path) -> list[dict]:
    out = Path(tempfile.mkdtemp(dir=workdir))
    _run([sys.executable, "-m", "dlprobe", "run", "critical-points", "--profile", profile, "--num-runs", str(runs),
          "--out", str(out), "--quiet", "--report-dir", str(out / "report")])
    summary = next(out.glob("critical-points/*/summary.json"))
    return json.loads(summary.read_text())["runs"]


def run_reference(profile: str, runs: int, workdir: Path) -> tuple[list[dict], dict]:
    out = Path(tempfile.mkdtemp(dir=workdir)) / "reference.json"
    _run([sys.executable, "-m", "benchmarks.critical_reference", "--profile", profile, "--runs", str(runs), "--out", str(out)])
    data = json.loads(out.read_text())
    return data["runs"], data["phase_seconds"]


def describe(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "q10": float(np.quantile(values, 0.1)), "median": float(np.median(values)),
            "q90": float(np.quantile(values, 0.9))}


def compare(ours: list[dict], theirs: list[dict]) -> dict:
    ours = [{**r, "sampling_ratio": r["sampling_ratios"][0]} for r in ours if r.get("status") == "ok"]
    theirs = [r for r in theirs if r.get("status") == "ok"]
    comparison = {"runs_ok": {"dlprobe": len(ours), "reference": len(theirs)}}
    for key in KEYS:
        a, b = [r[key] for r in ours], [r[key] for r in theirs]
        test = ks_2samp(a, b)
        comparison[key] = {"dlprobe": describe(a), "reference": describe(b), "ks_statistic": float(test.statistic),
                           "ks_p_value": float(test.pvalue)}
    by_seed = {r["seed"]: r["minimal_ratio"] for r in theirs}
    shared = [r for r in ours if r["seed"] in by_seed]
    comparison["same_minimal_ratio_fraction"] = float(np.mean([r["minimal_ratio"] == by_seed[r["seed"]] for r in shared])) if shared else None
    return comparison


def refine_diagnostics(profile: str, num_runs: int) -> dict:
    """In-process and warm: the refinement (L-BFGS polish, grad-norm minimisation, LM, Hessian, sampling) of the
    same Adam-trained weights, by dlprobe's batched `refine_and_classify` (all runs at once) and by the reference one
    run at a time; seconds per run on each side and how many runs end with the same minimal ratio."""
    import torch

    from dlprobe.analysis.critical_refine import refine_and_classify
    from dlprobe.data.functions import function_dataset, get_function
    from dlprobe.data.tensors import TensorData
    from dlprobe.models.mlp import MLPSpec, build_mlp
    from dlprobe.training.common import OptimizerSettings
    from dlprobe.training.ensemble import train_ensemble
    from dlprobe.training.loop import TrainSpec

    from . import critical_reference

    config = critical_reference.reference_config(profile, num_runs)
    data = TensorData(*function_dataset(get_function(config.function), config.num_train, max(2, config.num_train // 4)))
    spec = MLPSpec(1, config.widths, 1, config.activation)
    seeds = list(range(num_runs))
    trained = train_ensemble(spec, seeds, data, TrainSpec(optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                                                          epochs=config.train_epochs, eval_every=config.train_epochs))
    thetas = trained.model.flat_params()

    def module(seed):
        model = build_mlp(spec, torch.Generator().manual_seed(seed))
        torch.nn.utils.vector_to_parameters(thetas[seed], model.parameters())
        return model

    clock = dict.fromkeys(("adam", "polish", "grad_norm_min", "newton", "analysis"), 0.0)
    times, results = interleaved({
        "dlprobe": lambda r: refine_and_classify(config, spec, thetas, data.x_train, data.y_train, seeds, ["ok"] * num_runs),
        "reference": lambda r: [critical_reference.refine(config, module(seed), seed, data.x_train, data.y_train, clock) for seed in seeds],
    }, 1)
    ours, theirs = results["dlprobe"][0], results["reference"][0]
    return {"runs": num_runs, "dlprobe_refine_s_per_run": round(times["dlprobe"][0] / num_runs, 4),
            "reference_refine_s_per_run": round(times["reference"][0] / num_runs, 4),
            "reference_to_dlprobe_refine_ratio": round(times["reference"][0] / times["dlprobe"][0], 3),
            "same_minimal_ratio_fraction": float(np.mean([a["minimal_ratio"] == b["minimal_ratio"] for a, b in zip(ours, theirs)])),
            "reference_phase_s_per_run": {k: round(v / num_runs, 4) for k, v in clock.items() if k != "adam"}}


def run(smoke: bool = False, repeats: int | None = None, runs: int | None = None) -> dict:
    repeats = repeats or 1
    profile = "smoke" if smoke else "full"
    runs = runs or (1 if smoke else 100)
    with tempfile.TemporaryDirectory(prefix="dlprobe-bench-") as workdir:
        times, results = interleaved({"dlprobe": lambda r: run_dlprobe(profile, runs, Path(workdir)),
                                      "reference": lambda r: run_reference(profile, runs, Path(workdir))}, repeats)
    ours, (theirs, phases) = results["dlprobe"][0], results["reference"][0]
    comparison = compare(ours, theirs)
    ks = comparison["minimal_ratio"]
    ratio = median_ratio(times["reference"], times["dlprobe"])
    # The error is the KS statistic; the pass rule is the test's p-value, so there is no tolerance on the statistic.
    check = {"what": f"minimal-ratio distributions: two-sample KS statistic (ok when p-value >= {P_VALUE})",
             "error": ks["ks_statistic"], "tolerance": None, "ok": bool(ks["ks_p_value"] >= P_VALUE),
             "ks_p_value": ks["ks_p_value"], "comparison": comparison}
    settings = {"profile": profile, "num_runs": runs, "repeats": repeats,
                "scale_note": "the full profile has 100 runs" if runs != 100 and not smoke else None}
    notes = ["reference time by phase (s, all runs): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())]
    return case_record(5, NAME, settings, side(f"dlprobe run critical-points --profile {profile} --num-runs {runs}", times["dlprobe"]),
                       [baseline("reference: per-run nn.Module + Adam, L-BFGS, autograd double backward, func.hessian LM",
                                 times["reference"], ratio, TARGET)], check, threads=1,
                       reference_phase_seconds=phases, refine_same_start=refine_diagnostics(profile, 1 if smoke else 10),
                       notes=notes)
