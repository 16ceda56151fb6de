"""The L-BFGS finishing phase (training/polish.py) against closed forms, and its record in fit-function's summary
and report."""

import json

import pytest
import torch

from dlprobe.cli import main
from dlprobe.report.experiments.fit_function import observe, table
from dlprobe.training.polish import lbfgs_polish


def least_squares(seed=0, rows=200, cols=6, condition=1.0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=generator, dtype=torch.float64) * torch.logspace(0, -torch.log10(torch.tensor(condition)), cols,
                                                                                      dtype=torch.float64)
    y = x @ torch.randn(cols, 1, generator=generator, dtype=torch.float64) + 0.1 * torch.randn(rows, 1, generator=generator, dtype=torch.float64)
    torch.manual_seed(seed)  # the model's initial weights too: every case is one fixed problem
    model = torch.nn.Linear(cols, 1).double()
    return model, x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lbfgs_reaches_the_least_squares_solution_and_says_it_converged(seed):
    model, x, y = least_squares(seed)
    record = lbfgs_polish(model, torch.nn.functional.mse_loss, x, y, max_iterations=500)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)  # the closed form: normal equations with a bias column
    solution = torch.linalg.lstsq(design, y).solution[:, 0]
    assert record.converged and not record.diverged and record.iterations < 500
    # torch's test on the loss change (1e-12, absolute) stops where the loss is flat to 1e-12: the loss is then exact to
    # that order, the parameters (error ~ sqrt of it) to ~1e-6 (measured over 40 seeds: at most 7.0e-7)
    optimum = float(torch.nn.functional.mse_loss(design @ solution.unsqueeze(1), y))
    assert record.train_loss == pytest.approx(optimum, rel=1e-8)
    assert torch.allclose(torch.cat([model.weight[0], model.bias]).detach(), solution, rtol=0, atol=1e-5)
    assert record.start_loss > record.train_loss and record.curve_loss[0] == record.start_loss and record.curve_loss[-1] == record.train_loss
    assert record.curve_iterations[-1] == record.iterations and record.max_gradient < 1e-5


def test_the_iteration_cap_is_not_called_converged():
    model, x, y = least_squares(condition=1e4)
    record = lbfgs_polish(model, torch.nn.functional.mse_loss, x, y, max_iterations=3)
    assert record.iterations == 3 and not record.converged


def tanh_fit(seed):
    x = torch.linspace(-1, 1, 100, dtype=torch.float64).unsqueeze(1)
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double(), x, torch.sin(3 * x)


@pytest.mark.parametrize("tolerance,seed", [(1e-6, 1), (1e-6, 0), (1e-9, 1), (1e-12, 0)])
def test_chunks_follow_one_long_torch_call(tolerance, seed):
    # the reference: torch.optim.LBFGS itself, one step() call with the same budget. The chunks carry its memory over and apply
    # the stopping tests torch skips on a chunk's last iteration, so every chunk size stops at the same iteration, same point
    model, x, y = tanh_fit(seed)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=400, max_eval=25 * 400, tolerance_grad=tolerance,
                                  tolerance_change=tolerance, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    iterations = optimizer.state[next(iter(model.parameters()))]["n_iter"]
    reference = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    assert iterations < 400  # a stopping test ended the reference: the case is about where it fires
    for chunk in (1, 3, 10):
        model, x, y = tanh_fit(seed)
        record = lbfgs_polish(model, torch.nn.functional.mse_loss, x, y, max_iterations=400, tolerance=tolerance, chunk=chunk)
        assert record.converged and record.iterations == iterations, chunk
        assert torch.allclose(torch.nn.utils.parameters_to_vector(model.parameters()).detach(), reference, rtol=0, atol=1e-12), chunk


class Rosenbrock(torch.nn.Module):
    """The Rosenbrock function of a parameter vector, minimum 0 at (1, 1): the classic slow valley for quasi-Newton."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))

    def forward(self, _):
        return 100 * (self.w[1] - self.w[0] ** 2) ** 2 + (1 - self.w[0]) ** 2


def test_restarts_go_on_while_a_run_still_improves():
    # a loose stopping test (loss change below 1e-2) ends the first L-BFGS run after 2 iterations, at loss > 1; restarted
    # while a run lowers the loss by more than 1e-6 of it, L-BFGS follows the valley down towards the minimum 0 at (1, 1)
    results = {}
    for rule in (None, 1e-6):
        model = Rosenbrock()
        results[rule] = (lbfgs_polish(model, lambda value, _: value, None, None, max_iterations=3000, tolerance=1e-2, rel_improvement=rule),
                         model.w.detach())
    (first, _), (restarted, point) = results[None], results[1e-6]
    assert first.restarts == 0 and first.converged and first.train_loss > 1.0
    assert restarted.restarts >= 10 and restarted.converged and restarted.iterations < 3000
    assert 0.0 <= restarted.train_loss < 0.05 and torch.allclose(point, torch.ones(2, dtype=torch.float64), atol=0.3)


def test_no_trainable_parameters_is_refused():
    model = torch.nn.Linear(2, 1)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        lbfgs_polish(model, torch.nn.functional.mse_loss, torch.zeros(3, 2), torch.zeros(3, 1), 10)


def test_fit_function_records_the_lbfgs_phase(tmp_path):
    assert main(["run", "fit-function", "--profile", "smoke", "--set", "polish_iters=150", "--out", str(tmp_path), "--quiet"]) == 0
    (done,) = list(tmp_path.rglob("DONE"))
    summary = json.loads((done.parent / "summary.json").read_text())
    assert summary["polish"]["max_iterations"] == 150 and summary["polish"]["tolerance"] == 1e-12
    for model in summary["functions"]["sinc"]["models"].values():
        polish = model["polish"]
        assert model["adam_converged"] == [False, False]  # patience 0: the Adam rule is off; converged is L-BFGS's
        assert model["converged"] == [n < 150 for n in polish["iterations"]] and polish["diverged"] == [False, False]
        assert all(0 < n <= 150 for n in polish["iterations"])
        # the line search never accepts a higher loss: L-BFGS ends at or below the Adam end point, seed by seed (float32 -> float64
        # changes the Adam value by rounding only)
        for before, after in zip(polish["adam_train_mse"]["values"], model["final_train_mse"]["values"]):
            assert after <= before * (1 + 1e-5)
    sentences = observe(summary, {})
    (sentence,) = [s for s in sentences if "then L-BFGS from each Adam end point" in s]
    assert "up to 150 iterations" in sentence and "model x seed runs converged" in sentence
    assert any(s.startswith("sin(5πx)/(5πx): Adam epochs (before L-BFGS) to reach training MSE 0.01") for s in sentences)
    assert "sin(5πx)/(5πx): Adam's stopping rule is off (patience 0): 4 of 4 model x seed runs trained to the max_epochs cap of 600." in sentences
    columns, rows = table(summary)
    assert "train MSE after Adam" in columns and "L-BFGS iterations" in columns and len(rows[0]) == len(columns)
    assert (done.parent / "figures" / "loss_sinc.png").stat().st_size > 1000


def polished_model(depth, converged, status, diverged=None):
    n = len(status)
    after = [0.1 if s == "ok" else float("nan") for s in status]
    stats = {"mean": 0.1, "std": 0.0, "min": 0.1, "max": 0.1, "n": n, "values": after}
    return {"depth": depth, "epochs_trained": 3000, "converged": converged, "adam_converged": [False] * n,
            "converged_at_epoch": [None] * n, "status": status, "learning_rate": 1e-2, "lr_grid_edge": None,
            "final_test_mse": stats, "final_train_mse": stats, "epochs_to_mse": {"0.01": None, "0.001": None},
            "polish": {"iterations": [5000 if not c else 900 for c in converged], "converged": converged, "restarts": [0] * n,
                       "diverged": diverged or [False] * n,
                       "adam_train_mse": {**stats, "mean": 0.2, "values": [0.2 if s == "ok" else float("nan") for s in status]}}}


def test_the_comparison_names_runs_that_reached_the_lbfgs_cap():
    models = {"1": polished_model(1, [True, False, True], ["ok"] * 3),
              "6": polished_model(6, [True, False, False], ["ok", "ok", "diverged at step 5"])}
    summary = {"functions": {"f": {"formula": "f(x)", "models": models}}, "polish": {"max_iterations": 5000, "tolerance": 1e-12},
               "stopping_rule": {"patience": 500, "rel_improvement": 1e-3, "max_epochs": 3000}}

    def sentence(start):
        (found,) = [s for s in observe(summary, {}) if s.startswith(start)]
        return found

    assert sentence("f(x): No clear difference in final test MSE").endswith(
        " This compares unfinished training: 2 of 6 seed runs (1 layer, 6 layers) reached the cap of 5000 L-BFGS iterations before its "
        "stopping test fired.")
    assert sentence("f(x): then L-BFGS").endswith(
        "still lowered the train MSE by more than 0.1%): 3 of 6 model x seed runs converged, 2 reached the cap; 1 diverged under Adam "
        "(left out); mean train MSE before and after (over the seeds with both): 1 layer 0.2 to 0.1 (2/3 converged); 6 layers 0.2 to "
        "0.1 (1/3 converged).")
    assert sentence("f(x): Adam's stopping rule (train MSE improved by less than 0.1% over 500 epochs)")
    # a seed whose loss became NaN in the L-BFGS phase is counted as diverged, not as capped
    models["1"]["polish"]["diverged"] = [False, True, False]
    assert "1 of 6 seed runs (6 layers) reached the cap" in sentence("f(x): No clear difference in final test MSE")
    assert "3 of 6 model x seed runs converged, 1 reached the cap; 1 diverged under Adam (left out); 1 diverged in it;" in sentence("f(x): then L-BFGS")
    for model in models.values():
        model["converged"] = [status == "ok" for status in model["status"]]
        model["polish"]["converged"] = model["converged"]
    assert "unfinished" not in sentence("f(x): No clear difference in final test MSE")
