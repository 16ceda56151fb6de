"""fit-function end to end in the smoke profile: equal budgets, figures, summary numbers, expressions."""

import json

from dlprobe.cli import main


def only_run_dir(root):
    (done,) = list(root.rglob("DONE"))
    return done.parent


def test_smoke_run_fits_sinc_with_equal_budgets(tmp_path):
    assert main(["run", "fit-function", "--profile", "smoke", "--out", str(tmp_path), "--quiet"]) == 0
    run_dir = only_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    models = summary["functions"]["sinc"]["models"]
    counts = [m["num_params"] for m in models.values()]
    assert (max(counts) - min(counts)) / min(counts) <= 0.01
    for model in models.values():
        assert model["learning_rate"] in (3e-3, 1e-2)
        assert set(model["final_test_mse"]) >= {"mean", "std", "min", "max", "values", "n"}
        assert model["final_test_mse"]["n"] == 2
    # the deeper model fits sinc (variance ~0.11) to low error even in the smoke setting
    assert models["3"]["final_test_mse"]["mean"] < 0.01
    for name in ("loss_sinc", "predictions_sinc"):
        for extension in ("png", "svg"):
            assert (run_dir / "figures" / f"{name}.{extension}").stat().st_size > 1000
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert header == "run,step,name,value"


def test_expression_flows_through(tmp_path):
    expression = "exp(-x**2)*sin(8*x)"
    code = main(["run", "fit-function", "--profile", "smoke", "--function", expression, "--depths", "2",
                 "--set", "max_epochs=30", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    assert list(summary["functions"]) == [expression]
    assert summary["functions"][expression]["formula"] == expression
