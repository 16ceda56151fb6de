"""The benchmark suite runs: every case at toy sizes writes results.json with its documented structure
(timings are not asserted, they are noise at this size), and case 5's reference implementation takes the
same steps as dlprobe's critical-points pipeline from the same trained weights."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ lives at the repository root

from benchmarks import common, critical_reference, top_eigenvalues  # noqa: E402
from benchmarks.__main__ import main, parse_cases  # noqa: E402
from benchmarks.ensemble_training import matmul_flops_per_model_step  # noqa: E402
from benchmarks.errors import SkipCase  # noqa: E402


def _finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _check_record(record: dict) -> None:
    assert "error" not in record, record.get("error")
    if "skipped" in record:
        assert "pip install" in record["skipped"] and "pyhessian" in record["skipped"]
        return
    for key in ("case", "name", "threads", "settings", "dlprobe", "baselines", "equality", "met", "measured_at", "machine"):
        assert key in record, key
    assert _finite_positive(record["dlprobe"]["median_s"]) and record["dlprobe"]["times_s"]
    assert record["baselines"]
    for baseline in record["baselines"]:
        assert baseline["label"] and _finite_positive(baseline["median_s"]) and isinstance(baseline["met"], bool)
        assert baseline["ratio"] is None or _finite_positive(baseline["ratio"])
        if baseline["ratio"] is not None:
            assert baseline["met"] == (baseline["ratio"] >= baseline["target"])
    check = record["equality"]
    assert check["what"] and math.isfinite(check["error"]) and isinstance(check["ok"], bool)
    assert record["met"] == (check["ok"] and all(b["met"] for b in record["baselines"]))


def test_smoke_run_writes_documented_results(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["--smoke", "--out", str(out)]) == 0
    assert "ratio" in capsys.readouterr().out  # the table was printed
    data = json.loads(out.read_text())
    assert data["smoke"] is True
    for key in ("cpu_model", "cpu_cores", "torch_version", "numpy_version", "date"):
        assert data["machine"][key]
    assert set(data["cases"]) == {str(n) for n in range(1, 11)}
    for record in data["cases"].values():
        _check_record(record)
    cases = data["cases"]
    # Both sides computed the same thing, even at toy size.
    assert cases["1"]["equality"]["ok"] and cases["1"]["equality"]["models_checked"] == 4
    assert cases["1"]["throughput"]["matmul_peak_gflops_1024"] > 0 and cases["1"]["two_threads"]["ratio_vs_loop"] > 0
    assert cases["2"]["equality"]["error"] < 1e-5 and cases["2"]["equality"]["dlprobe_symmetric"]
    assert cases["4"]["equality"]["ok"] and cases["4"]["equality"]["accuracy_identical"]
    if "skipped" not in cases["3"]:  # PyHessian installed: its largest-magnitude eigenvalues are dlprobe's
        assert cases["3"]["equality"]["ok"], cases["3"]["equality"]
    for number in ("7", "8", "9", "10"):  # the public API vs PyHessian / loss-landscapes, when installed
        assert "skipped" in cases[number] or cases[number]["equality"]["ok"], cases[number]["equality"]
    if "skipped" not in cases["7"]:  # the full-dataset largest eigenvalue: every side in its process, checked
        full = cases["7"]["full_dataset_largest_eigenvalue"]
        assert "error" not in full, full.get("error")
        assert set(full["sides"]) == {"dlprobe", "dlprobe_tol_1e-3", "pyhessian"}
        assert all(side["hessian_vector_products"] > 0 for side in full["sides"].values())
        assert full["sides"]["dlprobe"]["within_1e_3"] and full["sides"]["dlprobe_tol_1e-3"]["within_1e_3"]
    comparison = cases["5"]["equality"]["comparison"]
    assert comparison["runs_ok"] == {"dlprobe": 1, "reference": 1}
    assert [e["experiment"] for e in cases["6"]["experiments"]] == ["fit-function"] and cases["6"]["equality"]["ok"]
    # Running one case again replaces that record only.
    before = cases["1"]["measured_at"]
    assert main(["--smoke", "--case", "2", "--out", str(out)]) == 0
    again = json.loads(out.read_text())["cases"]
    assert set(again) == set(cases) and again["1"]["measured_at"] == before


def test_missing_pyhessian_skips_case_3_with_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyhessian", None)  # makes `import pyhessian` fail
    with pytest.raises(SkipCase, match="pip install pyhessian"):
        top_eigenvalues.load_pyhessian()
    out = tmp_path / "results.json"
    assert main(["--smoke", "--case", "3", "--out", str(out)]) == 0
    assert "pip install pyhessian" in json.loads(out.read_text())["cases"]["3"]["skipped"]


def test_unknown_case_is_a_one_line_error():
    with pytest.raises(SystemExit, match="unknown case"):
        parse_cases("1,99")
    assert parse_cases("4,1,4") == [1, 4]


def test_interleaving_rotates_the_order_and_ratios_pair_repetitions():
    calls = []
    times, results = common.interleaved({"a": lambda r: calls.append(("a", r)), "b": lambda r: calls.append(("b", r))}, 3)
    assert calls == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    assert len(times["a"]) == len(results["b"]) == 3
    assert common.median_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 1.0]) == 3.0


def test_flop_count_of_one_model_step():
    from dlprobe.models.mlp import MLPSpec

    # products 16 + 3 * 256 + 16 = 800: forward 2N*800, weight grads 2N*800, input grads 2N*(800 - 16).
    spec = MLPSpec(1, (16, 16, 16, 16), 1, "tanh")
    assert matmul_flops_per_model_step(spec, 1000) == 2 * 1000 * 800 * 3 - 2 * 1000 * 16


def test_reference_refinement_takes_the_same_newton_steps_as_dlprobe():
    from dlprobe.analysis.critical_refine import refine_and_classify
    from dlprobe.data.functions import function_dataset, get_function
    from dlprobe.data.tensors import TensorData
    from dlprobe.models.mlp import MLPSpec, build_mlp
    from dlprobe.training.common import OptimizerSettings
    from dlprobe.training.ensemble import train_ensemble
    from dlprobe.training.loop import TrainSpec

    from dataclasses import replace

    # The Levenberg-Marquardt phase and the analysis, step for step (dlprobe's batched L-BFGS phases use a
    # backtracking line search where torch.optim.LBFGS uses strong Wolfe, so those are compared as
    # distributions by the benchmark itself, not step for step).
    config = replace(critical_reference.reference_config("smoke", 1), polish_steps=0, grad_norm_steps=0, newton_steps=6, num_samples=50)
    data = TensorData(*function_dataset(get_function(config.function), config.num_train, max(2, config.num_train // 4)))
    spec = MLPSpec(1, config.widths, 1, config.activation)
    trained = train_ensemble(spec, [3], data, TrainSpec(optimizer=OptimizerSettings("adam", lr=config.learning_rate),
                                                        epochs=config.train_epochs, eval_every=config.train_epochs))
    theta = trained.model.flat_params()[0]  # phase 1 as the experiment runs it; then both refine from here
    start = build_mlp(spec, torch.Generator().manual_seed(3))
    torch.nn.utils.vector_to_parameters(theta, start.parameters())
    ours = refine_and_classify(config, spec, theta.unsqueeze(0), data.x_train, data.y_train, [3], ["ok"])[0]
    clock = dict.fromkeys(("adam", "polish", "grad_norm_min", "newton", "analysis"), 0.0)
    theirs = critical_reference.refine(config, start, 3, data.x_train, data.y_train, clock)
    assert theirs["loss"] == pytest.approx(ours["loss"], rel=1e-8)
    assert theirs["grad_norm"] == pytest.approx(ours["grad_norm"], rel=1e-5)
    assert theirs["minimal_ratio"] == ours["minimal_ratio"] and theirs["sampling_ratio"] == ours["sampling_ratios"][0]
