"""Smoke runs of the part 1-2 experiments (trajectory, grad-norm, error-surface) through the CLI, with one
real property each checked against an independent computation."""

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from dlprobe.cli import main
from dlprobe.errors import ConfigError


def _run(out: Path, name: str, *extra) -> Path:
    assert main(["run", name, "--profile", "smoke", "--out", str(out), "--quiet", *extra]) == 0
    (run_dir,) = (out / name).iterdir()
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {name: _run(out, name) for name in ("trajectory", "grad-norm", "error-surface")}, out


def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def _config(run_dir):
    return json.loads((run_dir / "config.json").read_text())["config"]


def _metrics(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def _figures_exist(run_dir, names):
    for name in names:
        for extension in ("png", "svg"):
            path = run_dir / "figures" / f"{name}.{extension}"
            assert path.exists() and path.stat().st_size > 1000, path


@pytest.mark.parametrize("name", ["trajectory", "grad-norm", "error-surface"])
def test_rerun_is_skipped(runs, name):
    run_dir = runs[0][name]
    before = (run_dir / "summary.json").read_bytes()
    assert _run(runs[1], name) == run_dir
    assert (run_dir / "DONE").exists()
    assert (run_dir / "summary.json").read_bytes() == before


def test_trajectory_snapshots_and_pca(runs):
    from sklearn.decomposition import PCA

    run_dir = runs[0]["trajectory"]
    summary, config = _summary(run_dir), _config(run_dir)
    _figures_exist(run_dir, ["trajectory_layer0", "trajectory_whole"])
    expected = config["epochs"] // config["snapshot_every"] + 1
    assert summary["num_runs"] == 8 and summary["num_snapshots"] == expected
    assert summary["snapshot_epochs"] == list(range(0, config["epochs"] + 1, config["snapshot_every"]))
    per_run = Counter(row["run"] for row in _metrics(run_dir) if row["name"] == "whole_x")
    assert sorted(per_run) == [f"seed{s}" for s in range(8)] and set(per_run.values()) == {expected}
    for view in ("whole", "layer"):
        ratio = summary["explained_variance_ratio"][view]
        assert all(0 < r <= 1 for r in ratio) and sum(ratio) <= 1 + 1e-9
    assert all(math.isfinite(r["final_train_loss"]) for r in summary["runs"])
    # Independent reference: scikit-learn's PCA on the saved snapshots reproduces the ratios.
    snapshots = torch.load(run_dir / "trials" / "train.pt", weights_only=True)["result"]["snapshots"].double().numpy()  # (T, M, P)
    reference = PCA(n_components=2).fit(snapshots.reshape(-1, snapshots.shape[-1])).explained_variance_ratio_
    np.testing.assert_allclose(summary["explained_variance_ratio"]["whole"], reference, rtol=1e-6)
    from dlprobe.report.experiments.trajectory import observe
    first = observe(summary, config)[0]  # the answer comes first, with the distances it rests on
    distances = summary["distances"]["whole"]
    apart = distances["between_final"] > 0.5 * distances["init_to_final"]["mean"]
    assert first.startswith("What the optimization does: each of the 8 runs moved ")
    assert ("they end at different points" if apart else "they end close together") in first


def test_layer_slice_matches_the_module_layout():
    from dlprobe.experiments.trajectory import layer_slice
    from dlprobe.models.mlp import MLPSpec
    from dlprobe.models.ensemble_mlp import EnsembleMLP

    spec = MLPSpec(3, (5, 4), 2, "tanh")
    ensemble = EnsembleMLP(spec, [0, 1])
    flat = ensemble.flat_params()
    for index, linear in enumerate(ensemble.member(1).linear_layers()):
        expected = torch.cat([linear.weight.detach().flatten(), linear.bias.detach()])
        assert torch.equal(flat[1, layer_slice(spec, index)], expected)


def test_grad_norm_records_every_iteration(runs):
    from dlprobe.data.functions import function_dataset, get_function
    from dlprobe.models.mlp import MLPSpec, build_mlp
    from dlprobe.training.common import epoch_permutation

    run_dir = runs[0]["grad-norm"]
    summary, config = _summary(run_dir), _config(run_dir)
    assert set(summary["tasks"]) == {"sinc", "mnist-5k"}
    _figures_exist(run_dir, ["grad_norm_sinc", "grad_norm_mnist-5k"])
    rows = _metrics(run_dir)
    sizes = {"sinc": (config["num_train"], config["function_epochs"]), "mnist-5k": (config["train_size"], config["image_epochs"])}
    for key, (num_train, epochs) in sizes.items():
        iterations = epochs * math.ceil(num_train / config["batch_size"])
        task = summary["tasks"][key]
        assert task["iterations"] == iterations
        for name in ("iteration_loss", "grad_norm"):
            counts = Counter(row["run"] for row in rows if row["name"] == name and row["run"].startswith(key + "/"))
            assert counts == {f"{key}/seed{s}": iterations for s in config["seeds"]}
        assert task["final_train_loss"]["max"] < task["initial_loss"]["min"]
        assert 0 < task["grad_norm_min"]["min"] <= task["grad_norm_max"]["max"]
        assert -1 <= task["log_correlation"]["mean"] <= 1
    sinc = summary["tasks"]["sinc"]
    assert sinc["last_epoch_loss"]["max"] < sinc["first_epoch_loss"]["min"]
    # Independent reference: the first record of seed 0 is the 2-norm of a plain autograd gradient on its first batch.
    x, y, _, _ = function_dataset(get_function("sinc"), config["num_train"], config["num_test"])
    model = build_mlp(MLPSpec(1, tuple(config["widths"]), 1, config["activation"]), torch.Generator().manual_seed(0))
    batch = epoch_permutation(len(x), 0, 0)[: config["batch_size"]]
    loss = ((model(x[batch]) - y[batch]) ** 2).mean()
    norm = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))]).norm().item()
    first = {row["name"]: float(row["value"]) for row in rows if row["run"] == "sinc/seed0" and row["step"] == "0"}
    assert first["grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert first["iteration_loss"] == pytest.approx(loss.item(), rel=1e-5)
    # the report names each seed's own peak (never an average iteration at which no seed peaked)
    from dlprobe.report.experiments.grad_norm import observe
    (peaks,) = [s for s in observe(summary, config) if s.startswith(sinc["description"]) and "largest gradient norm of each seed" in s]
    for at in sinc["argmax_iteration"]["values"]:
        assert f"at iteration {int(at)} (" in peaks


def test_grad_norm_order_is_checked():
    from dlprobe.experiments.grad_norm import norm_order

    assert norm_order("inf") == math.inf and norm_order("1") == 1.0
    with pytest.raises(ConfigError):
        norm_order("0.5")
    assert main(["run", "grad-norm", "--profile", "smoke", "--set", "p=abc", "--out", "/nonexistent", "--quiet"]) == 2


def test_error_surface_endpoints(runs):
    run_dir = runs[0]["error-surface"]
    summary = _summary(run_dir)
    _figures_exist(run_dir, ["loss_line", "loss_surface_random", "loss_surface_path"])
    line, surface, plane = summary["line"], summary["surface"], summary["pca_plane"]
    # The training loop's own evaluation (float32 module) against the landscape code (float64 vmap).
    assert line["loss_at_0"] == pytest.approx(summary["initial_train_loss"], abs=1e-5)
    assert line["loss_at_1"] == pytest.approx(summary["final_train_loss"], abs=1e-5)
    assert surface["center_loss"] == pytest.approx(summary["final_train_loss"], abs=1e-5)
    assert plane["center_loss"] == pytest.approx(summary["final_train_loss"], abs=1e-5)
    assert line["num_points"] >= 50 and line["min_loss"] <= min(line["loss_at_0"], line["loss_at_1"])
    assert line["max_loss_01"] >= max(line["loss_at_0"], line["loss_at_1"]) and line["barrier_height"] >= 0
    assert surface["mean_loss_radius1"] > 0 and 0 < sum(plane["explained_variance_ratio"]) <= 1 + 1e-9
    assert plane["path_coordinates"][-1] == [0.0, 0.0]
    alphas = [float(row["value"]) for row in _metrics(run_dir) if row["run"] == "line" and row["name"] == "alpha"]
    assert min(alphas) == -0.5 and max(alphas) == 1.5 and 0.0 in alphas and 1.0 in alphas


def test_error_surface_random_plane_path_matches_numpy_lstsq(runs):
    from dlprobe.analysis.landscape import filter_normalized_direction
    from dlprobe.analysis.params import unflatten_params
    from dlprobe.models.mlp import MLPSpec, build_mlp

    run_dir = runs[0]["error-surface"]
    summary, config = _summary(run_dir), _config(run_dir)
    surface = summary["surface"]
    num_snapshots = len(summary["snapshot_epochs"])
    assert len(surface["path_coordinates"]) == num_snapshots and all(len(point) == 2 for point in surface["path_coordinates"])
    assert len(surface["path_fraction_captured"]) == num_snapshots
    assert surface["path_coordinates"][-1] == [0.0, 0.0] and surface["path_fraction_captured"][-1] is None  # the centre itself
    # Independent reference: the directions rebuilt from the saved final weights, numpy least squares on the flat vectors.
    snapshots = torch.load(run_dir / "trials" / "train.pt", weights_only=True)["result"]["snapshots"].double()  # (T, P)
    model = build_mlp(MLPSpec(1, tuple(config["widths"]), 1, config["activation"]), torch.Generator().manual_seed(0)).double()
    final = unflatten_params(snapshots[-1], model)
    generator = torch.Generator().manual_seed(config["seed"] + 1)
    basis = np.stack([torch.cat([t.reshape(-1) for t in filter_normalized_direction(final, generator).values()]).numpy()
                      for _ in range(2)], axis=1)  # (P, 2)
    offsets = (snapshots - snapshots[-1]).numpy()  # (T, P)
    coordinates = np.linalg.lstsq(basis, offsets.T, rcond=None)[0].T  # (T, 2)
    np.testing.assert_allclose(surface["path_coordinates"], coordinates, rtol=1e-8, atol=1e-12)
    projected, distance = np.linalg.norm(coordinates @ basis.T, axis=1), np.linalg.norm(offsets, axis=1)
    np.testing.assert_allclose(surface["path_fraction_captured"][:-1], projected[:-1] / distance[:-1], rtol=1e-8)
    overall = np.sqrt((projected ** 2).sum() / (distance ** 2).sum())
    assert surface["path_fraction_captured_overall"] == pytest.approx(overall, rel=1e-8) and 0 < overall < 1


def test_error_surface_batchnorm_statistics_come_from_the_training_inputs_for_the_test_line_too():
    """A user model with BatchNorm: at every point the statistics are recomputed on the training inputs (torch's
    update_bn as the reference), also where the test loss is measured: the test data never set them."""
    from torch import nn
    from torch.optim.swa_utils import update_bn

    from dlprobe.analysis.params import load_flat_params
    from dlprobe.data.tensors import TensorData
    from dlprobe.experiments import error_surface

    def make_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(1, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 1))

    generator = torch.Generator().manual_seed(1)
    x_train, x_test = torch.randn(40, 1, generator=generator), torch.randn(20, 1, generator=generator) * 3 + 2  # shifted test inputs
    data = TensorData(x_train, torch.sin(x_train), x_test, torch.sin(x_test))
    num_params = sum(p.numel() for p in make_model().parameters())
    flat = torch.randn(3, num_params, generator=generator, dtype=torch.float64)  # three snapshots, the last the final
    config = error_surface.Config(line_points=50, surface_points=3)
    land = error_surface._landscapes(config, data, None, "mse", flat, make_model)

    def reference(vector, x, y):
        model = make_model().double()
        load_flat_params(model, vector)
        update_bn([x_train.double()], model)  # statistics of the training inputs, one batch
        with torch.no_grad():
            return torch.nn.functional.mse_loss(model.eval()(x.double()), y.double()).item()

    at_1 = land["alphas"] == 1
    assert land["line_test"][at_1].item() == pytest.approx(reference(flat[-1], x_test, torch.sin(x_test)), rel=1e-10)
    assert land["line"][at_1].item() == pytest.approx(reference(flat[-1], x_train, torch.sin(x_train)), rel=1e-10)
    assert land["random_surface"][1, 1].item() == pytest.approx(reference(flat[-1], x_train, torch.sin(x_train)), rel=1e-10)
