"""fit-function end to end in the smoke profile: equal budgets, figures, summary numbers, expressions,
the stopping rule's record (converged vs the max_epochs cap) and learning rates at the edge of the grid."""

import json
from types import SimpleNamespace

import pytest

from dlprobe.analysis.stats import final_window_drop
from dlprobe.cli import main
from dlprobe.experiments.fit_function import Config, _summarize, grid_edge
from dlprobe.report.experiments.fit_function import observe


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
    # smoke: 2 depths on 1 function, below the assignment's 3 and 2: the report says so
    sentences = observe(summary, {})
    assert sentences[0].startswith("Fewer depths than the assignment asks for (2, at least 3)")
    assert sentences[1].startswith("Fewer target functions than the assignment asks for (1, at least 2)")
    # smoke has patience 0: the rule is off, so no seed can have converged and all trained the 600 epochs
    for model in models.values():
        assert model["converged"] == [False, False] and model["converged_at_epoch"] == [None, None]
        assert model["epochs_trained"] == 600
        # a two-rate grid has no inside: the chosen rate (the search's argmin) is one of its ends
        best = min(model["lr_search"], key=model["lr_search"].get)
        assert float(best) == model["learning_rate"]
        assert model["lr_grid_edge"] == {3e-3: "lowest", 1e-2: "highest"}[model["learning_rate"]]
    sentences = observe(summary, {})
    assert "sin(5πx)/(5πx): the stopping rule is off (patience 0): 4 of 4 model x seed runs trained to the max_epochs cap of 600." in sentences
    assert sum("a wider grid (the `learning_rates` field) may find a better rate" in s for s in sentences) >= 1


def test_expression_flows_through(tmp_path):
    expression = "exp(-x**2)*sin(8*x)"
    code = main(["run", "fit-function", "--profile", "smoke", "--function", expression, "--depths", "2",
                 "--set", "max_epochs=30", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    assert list(summary["functions"]) == [expression]
    assert summary["functions"][expression]["formula"] == expression


def smoke_summary(tmp_path, *settings):
    assert main(["run", "fit-function", "--profile", "smoke", *settings, "--out", str(tmp_path), "--quiet"]) == 0
    return json.loads((only_run_dir(tmp_path) / "summary.json").read_text())


def test_runs_capped_before_the_patience_cannot_converge(tmp_path):
    # the rule needs `patience` epochs without improvement, so 40 epochs with patience 600 must hit the cap
    summary = smoke_summary(tmp_path, "--set", "max_epochs=40", "--set", "patience=600")
    for model in summary["functions"]["sinc"]["models"].values():
        assert model["converged"] == [False, False] and model["converged_at_epoch"] == [None, None]
        assert model["epochs_trained"] == 40
    sentence = ("sin(5πx)/(5πx): stopping rule (train MSE improved by less than 0.1% over 600 epochs): 0 of 4 model x seed runs converged, "
                "4 hit the max_epochs cap of 40 (converged per model: 1 layer 0/2, 3 layers 0/2); 2 of 2 models trained all 40 epochs "
                "(a model's seeds train together until all have converged).")
    assert sentence in observe(summary, {})


def test_loose_rule_on_an_easy_target_converges_before_the_cap(tmp_path):
    # sinc fits well in a few hundred epochs; with patience 20 the rule fires long before 5000 epochs
    summary = smoke_summary(tmp_path, "--set", "max_epochs=5000", "--set", "patience=20")
    for model in summary["functions"]["sinc"]["models"].values():
        assert model["converged"] == [True, True]
        # the seeds stop together, at the evaluation where the last of them converged
        assert max(model["converged_at_epoch"]) == model["epochs_trained"] < 5000
    (sentence,) = [s for s in observe(summary, {}) if "stopping rule" in s]
    assert "4 of 4 model x seed runs converged (at epochs " in sentence and "0 hit the max_epochs cap of 5000" in sentence
    assert "0 of 2 models trained all 5000 epochs" in sentence


def test_grid_edge():
    grid = (1e-3, 3e-3, 1e-2)
    assert grid_edge(1e-3, grid) == "lowest"
    assert grid_edge(1e-2, grid) == "highest"
    assert grid_edge(3e-3, grid) is None
    assert grid_edge(1e-2, (1e-2, 1e-3)) == "highest"  # by value, not by position
    assert grid_edge(1e-2, (1e-2,)) == "only"


def model_summary(depth, converged_at, status, rate, edge):
    return {"depth": depth, "epochs_trained": 3000, "converged": [e is not None for e in converged_at], "converged_at_epoch": converged_at,
            "status": status, "learning_rate": rate, "lr_grid_edge": edge,
            "final_test_mse": {"mean": 0.1, "std": 0.0, "min": 0.1, "max": 0.1, "n": len(status)},
            "epochs_to_mse": {"0.01": None, "0.001": None}}


def test_observations_count_converged_capped_diverged_and_name_grid_edges():
    models = {"1": model_summary(1, [None, None, None], ["ok"] * 3, 3e-3, None),
              "3": model_summary(3, [1200, None, 2400], ["ok"] * 3, 1e-2, "highest"),
              "6": model_summary(6, [800, None, None], ["ok", "ok", "diverged at step 5"], 1e-2, "highest")}
    summary = {"functions": {"f": {"formula": "f(x)", "models": models}},
               "stopping_rule": {"patience": 600, "rel_improvement": 1e-3, "max_epochs": 3000}}
    sentences = observe(summary, {})
    assert ("f(x): stopping rule (train MSE improved by less than 0.1% over 600 epochs): 3 of 9 model x seed runs converged "
            "(at epochs 800-2400), 5 hit the max_epochs cap of 3000; 1 diverged (converged per model: 1 layer 0/3, 3 layers 2/3, "
            "6 layers 1/3); 3 of 3 models trained all 3000 epochs (a model's seeds train together until all have converged).") in sentences
    edge = [s for s in sentences if "wider grid" in s]
    assert edge == ["f(x): the chosen learning rate is the highest rate of the searched grid for 3 layers (lr 0.01), 6 layers (lr 0.01); "
                    "a wider grid (the `learning_rates` field) may find a better rate."]
    models["3"]["lr_grid_edge"] = models["6"]["lr_grid_edge"] = None  # every rate inside the grid: no such sentence
    assert not [s for s in observe(summary, {}) if "wider grid" in s]


def test_a_diverged_seed_is_not_counted_as_converged():
    # the trainer's rule fires on a diverged seed too (a NaN loss never improves); the summary must not call that converged
    result = {"widths": [4], "num_params": 13, "learning_rate": 1e-2, "lr_search": {"0.001": 1.0, "0.01": 0.5},
              "lr_grid_widened": [], "lr_decay_epochs": [[], []], "epochs_trained": 900,
              "status": ["ok", "diverged at step 7"], "converged_epoch": [900, 620],
              "final_train": [0.1, float("nan")], "final_test": [0.1, float("nan")],
              "curves": [{"epoch": [0, 900], "train_loss": [1.0, 0.1]}] * 2}
    target = SimpleNamespace(formula="f(x)", domain=(-1.0, 1.0))
    model = _summarize(target, {1: result}, Config())["models"]["1"]
    assert model["converged"] == [True, False] and model["converged_at_epoch"] == [900, None]
    assert model["lr_grid_edge"] == "highest"  # 1e-2 is the top of the searched grid


def test_the_grid_widens_past_a_winning_edge_and_the_plateau_decays_the_rate(tmp_path):
    # at 1e-4 and 2e-4 for 100 epochs the faster rate wins: the grid grows by its own step (x2) past that end,
    # twice (widen_grid 2), unless a new rate loses first; with the plateau rule on, decays are recorded per seed
    summary = smoke_summary(tmp_path, "--learning-rates", "1e-4,2e-4", "--widen-grid", "2", "--set", "max_epochs=300",
                            "--set", "patience=40", "--max-lr-decays", "1", "--set", "lr_decay=0.5")
    for model in summary["functions"]["sinc"]["models"].values():
        assert model["lr_grid_widened"] == [4e-4, 8e-4]
        assert list(model["lr_search"]) == ["0.0001", "0.0002", "0.0004", "0.0008"]
        assert model["learning_rate"] == 8e-4 and model["lr_grid_edge"] == "highest"
        assert len(model["lr_decay_epochs"]) == 2 and all(len(e) <= 1 for e in model["lr_decay_epochs"])
        assert all(done <= (len(epochs) == 1) for done, epochs in zip(model["converged"], model["lr_decay_epochs"]))
    sentences = observe(summary, {})
    assert any("widened beyond its winning end" in s and "added 4.00e-04, 8.00e-04" in s for s in sentences)
    assert any("even after widening it" in s for s in sentences)
    assert any("multiplied by 0.5, up to 1 time," in s for s in sentences)


def test_final_window_drop_on_hand_built_curves():
    epochs = [0, 100, 200, 300, 400, 500]
    # best before the last 200 epochs (epochs <= 300) is 0.4, best overall 0.1: fell by 75%
    assert final_window_drop(epochs, [1.0, 0.8, 0.5, 0.4, 0.2, 0.1], 200) == pytest.approx(0.75)
    # flat after epoch 200 (a spike does not count: the best is what is compared)
    assert final_window_drop(epochs, [1.0, 0.5, 0.3, 0.3, 0.9, 0.3], 200) == 0.0
    assert final_window_drop(epochs, [1.0, 0.5, float("nan"), 0.4, float("nan"), 0.2], 200) == pytest.approx(0.5)
    assert final_window_drop(epochs, [1.0] * 6, 600) is None  # the curve is shorter than the window
    assert final_window_drop(epochs, [1.0] * 6, 0) is None


def test_the_comparison_says_when_it_compares_unfinished_training():
    models = {"1": model_summary(1, [None, None, None], ["ok"] * 3, 1e-2, None),
              "6": model_summary(6, [800, None, None], ["ok", "ok", "diverged at step 5"], 1e-2, None)}
    models["1"].update(final_window=500, final_window_drop=[0.2, 0.05, 0.0005])  # the last is below rel_improvement 1e-3
    models["6"].update(final_window=500, final_window_drop=[0.0, 0.3, None])
    summary = {"functions": {"f": {"formula": "f(x)", "models": models}},
               "stopping_rule": {"patience": 500, "rel_improvement": 1e-3, "max_epochs": 3000}}
    def comparison():  # the deep-vs-shallow sentence (after the "fewer depths than the assignment asks" warning)
        (sentence,) = [s for s in observe(summary, {}) if s.startswith("f(x): No clear difference in final test MSE")]
        return sentence

    assert comparison().endswith(" This compares unfinished training: 3 of 6 seed runs (1 layer, 6 layers) reached the max_epochs cap of 3000 "
                          "while their best train MSE was still falling (5-30% over their last 500 epochs).")
    for model in models.values():  # every run converged or had stopped improving: no such clause
        model["final_window_drop"] = [0.0, 0.0, None]
    assert "unfinished" not in comparison()
    for model in models.values():  # a summary written before final_window_drop existed
        del model["final_window_drop"]
    assert "unfinished" not in comparison()


def test_summaries_record_the_final_window_drop(tmp_path):
    summary = smoke_summary(tmp_path, "--set", "max_epochs=200", "--set", "patience=100")
    for model in summary["functions"]["sinc"]["models"].values():
        assert model["final_window"] == 100 and len(model["final_window_drop"]) == 2
        assert all(drop is not None and 0.0 <= drop < 1.0 for drop in model["final_window_drop"])
