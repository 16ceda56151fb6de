"""fit-task: the smoke profile through the CLI (budgets, figures, summary, accuracy), a missing dataset, a rerun."""

from __future__ import annotations

import json

import pytest

from dlprobe.cli import main
from dlprobe.data.images import load_dataset
from dlprobe.experiments.fit_task import PROFILES, _error_stats
from dlprobe.models.budget import cnn_for_budget, mlp_for_budget
from dlprobe.report.experiments import REPORTS
from dlprobe.report.experiments.fit_task import observe, table
from smoke import run_smoke


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit-task")
    return out, run_smoke("fit-task", out)


def test_smoke_run_finishes_with_figures(smoke_run):
    _, run_dir = smoke_run  # run_smoke checked the exit code and DONE
    assert (run_dir / "DONE").exists()
    for name in ("loss_mnist-5k", "accuracy_mnist-5k"):
        for extension in ("png", "svg"):
            path = run_dir / "figures" / f"{name}.{extension}"
            assert path.is_file() and path.stat().st_size > 1000, path


def test_summary_budgets_and_accuracy(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    dataset = summary["datasets"]["mnist-5k"]
    assert dataset["num_train"] == PROFILES["smoke"]["train_size"] and dataset["num_test"] == PROFILES["smoke"]["test_size"]
    assert "subset" in dataset["dataset_note"]
    models = dataset["models"]
    assert set(models) == {"cnn-1", "cnn-2", "cnn-4", "dnn-1", "dnn-3", "dnn-6"}
    budget = PROFILES["smoke"]["cnn_budget"]
    for family in ("cnn", "dnn"):
        counts = [m["num_params"] for m in models.values() if m["family"] == family]
        assert len(counts) == 3
        assert (max(counts) - min(counts)) / min(counts) <= 0.01
        assert all(abs(c - budget) <= 0.01 * budget for c in counts)
    # the reported architecture and count are those of the model the solver builds (independently recounted)
    assert models["dnn-3"]["architecture"] == mlp_for_budget(budget, 3, 784, 10, "relu").describe()
    widths = [int(w) for w in models["dnn-3"]["architecture"].split("-")]
    assert models["dnn-3"]["num_params"] == sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    assert models["cnn-4"]["architecture"] == cnn_for_budget(budget, 4, (1, 28, 28), 10).describe()
    for name, model in models.items():
        assert model["epochs"] == PROFILES["smoke"]["epochs"] and model["status"] == ["ok"]
        for key in ("final_train_loss", "final_test_loss", "final_train_accuracy", "final_test_accuracy", "peak_test_accuracy"):
            assert model[key]["n"] == 1, (name, key)
        # ten balanced classes: chance is 10%; even three short epochs must clear it by a margin
        assert model["final_test_accuracy"]["mean"] > 0.2, name
        assert 0.0 < model["final_train_loss"]["mean"] < 2.3, name  # below log(10), the loss of a uniform guess
        assert model["peak_test_accuracy"]["mean"] >= model["final_test_accuracy"]["mean"]
        assert model["final_test_error"] == _error_stats(model["final_test_accuracy"])  # what the sentences compare


def test_metrics_match_summary(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0] == "run,step,name,value"
    rows = [line.split(",") for line in lines[1:]]
    epochs = PROFILES["smoke"]["epochs"]
    last = {r[0]: float(r[3]) for r in rows if r[2] == "test_accuracy" and int(r[1]) == epochs}
    for name, model in summary["datasets"]["mnist-5k"]["models"].items():
        assert last[f"mnist-5k/{name}/seed0"] == pytest.approx(model["final_test_accuracy"]["mean"])
    assert {int(r[1]) for r in rows} == set(range(epochs + 1))


def test_observe_and_table_from_numbers(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    sentences = observe(summary, {})
    assert "no spread is available" in sentences[0]
    assert any("4-conv-block CNN" in s and "1-conv-block CNN" in s for s in sentences)
    assert any("6-hidden-layer DNN" in s and "1-hidden-layer DNN" in s for s in sentences)
    columns, rows = table(summary)
    assert len(rows) == 6 and len(columns) == len(rows[0])
    assert REPORTS["fit-task"].table is table


def test_error_stats_mirror_accuracy():
    stats = _error_stats({"mean": 0.9, "std": 0.05, "min": 0.85, "max": 0.95, "values": [0.85, 0.95], "n": 2})
    assert stats["mean"] == pytest.approx(0.1) and stats["min"] == pytest.approx(0.05) and stats["max"] == pytest.approx(0.15)
    assert stats["values"] == pytest.approx([0.15, 0.05]) and stats["std"] == 0.05


def test_rerun_is_skipped(smoke_run, capsys):
    out, run_dir = smoke_run
    before = (run_dir / "summary.json").read_bytes()
    stamp = (run_dir / "summary.json").stat().st_mtime_ns
    assert main(["run", "fit-task", "--profile", "smoke", "--out", str(out)]) == 0
    assert "already done" in capsys.readouterr().err
    assert (run_dir / "summary.json").read_bytes() == before
    assert (run_dir / "summary.json").stat().st_mtime_ns == stamp


def test_missing_dataset_is_one_line_error(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("DLPROBE_DATA", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.cache/dlprobe/mnist is searched too
    with pytest.raises(Exception):  # the premise: mnist is really absent from every searched place
        load_dataset("mnist", data_dir=empty)
    code = main(["run", "fit-task", "--profile", "smoke", "--dataset", "mnist-5k", "--dataset", "mnist",
                 "--data-dir", str(empty), "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dlprobe: error: mnist not found") and "\n" not in error
    assert not list((tmp_path / "runs").rglob("trials/*.pt"))  # nothing trained, not even mnist-5k


def test_unknown_dataset_is_a_config_error(tmp_path, capsys):
    code = main(["run", "fit-task", "--profile", "smoke", "--dataset", "imagenet", "--out", str(tmp_path), "--quiet"])
    assert code == 2
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err


def test_interrupted_cnn_resumes_from_its_checkpoint_to_the_same_numbers(tmp_path, monkeypatch):
    from dlprobe.experiments import fit_task

    arguments = ["run", "fit-task", "--profile", "smoke", "--cnn-convs", "2", "--dnn-depths", "1", "--epochs", "3",
                 "--train-size", "200", "--set", "test_size=100", "--quiet"]
    straight = tmp_path / "straight"
    assert main(arguments + ["--out", str(straight)]) == 0

    real_train, updates = fit_task.train, []

    class StopAfterTwoEpochs:  # the loop checkpoints after each epoch; stop in epoch 2's bookkeeping
        def update(self, count):
            updates.append(count)
            if len(updates) == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(fit_task, "train", lambda *a, **k: real_train(*a, **{**k, "progress": StopAfterTwoEpochs()}))
    resumed = tmp_path / "resumed"
    assert main(arguments + ["--out", str(resumed)]) == 130
    (run_dir,) = (resumed / "fit-task").iterdir()
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["mnist-5k_cnn-2_seed0.pt"]
    monkeypatch.setattr(fit_task, "train", real_train)
    assert main(arguments + ["--out", str(resumed)]) == 0
    (straight_dir,) = (straight / "fit-task").iterdir()
    assert (run_dir / "summary.json").read_text() == (straight_dir / "summary.json").read_text()
    assert (run_dir / "metrics.csv").read_text() == (straight_dir / "metrics.csv").read_text()
