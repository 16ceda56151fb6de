"""random-labels end to end in the smoke profile: labels really randomized, test accuracy at chance, figures."""

import json

import pytest
import torch

from dlprobe.cli import main
from dlprobe.data.images import load_dataset
from dlprobe.experiments.random_labels import Config, _summarize, observe, table
from smoke import assert_rerun_is_skipped, run_smoke

SMOKE = ["run", "random-labels", "--profile", "smoke", "--quiet"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("random_labels")
    return root, run_smoke("random-labels", root)


def test_figures_and_summary(smoke_run):
    _, run_dir = smoke_run
    for name in ("loss_vs_epochs", "accuracy_vs_epochs", "noise_sweep"):
        for extension in ("png", "svg"):
            assert (run_dir / "figures" / f"{name}.{extension}").stat().st_size > 1000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["chance_accuracy"] == pytest.approx(0.1)
    assert summary["num_train"] == 500 and summary["num_test"] == 300
    assert summary["model"]["num_params"] == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert set(summary["runs"]) == {"0", "1"}
    assert summary["label_mode"] == "shuffle"  # the default, as the assignment asks
    for run in summary["runs"].values():
        assert {"final_train_loss", "final_test_accuracy", "epochs_to_fit", "labels_changed", "status"} <= set(run)
        assert run["status"] == "ok"
        assert run["max_class_count_change"] == 0  # shuffling keeps every class count
    header, *rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert header == "run,step,name,value"
    assert len(rows) == 2 * 4 * (6 + 1)  # 2 noise levels x 4 metrics x (epochs 0..6)


def test_random_labels_do_not_transfer(smoke_run):
    _, run_dir = smoke_run
    runs = json.loads((run_dir / "summary.json").read_text())["runs"]
    random, clean = runs["1"], runs["0"]
    # With every label random nothing learned can transfer: the band is +-10 points around the 10% chance
    # level (300 test images: one binomial std is ~1.7 points).
    assert abs(random["final_test_accuracy"] - 0.1) < 0.10
    # The model fitted noise, not digits: scored against the true training labels it is near chance too.
    assert random["final_train_accuracy_true_labels"] < 0.25
    # The same network on the true labels learns something real even in 6 epochs.
    assert clean["final_test_accuracy"] > random["final_test_accuracy"] + 0.3
    assert clean["labels_changed"] == 0.0


def test_training_labels_really_differ(smoke_run):
    _, run_dir = smoke_run
    runs = json.loads((run_dir / "summary.json").read_text())["runs"]
    clean = load_dataset("mnist-5k", train_size=500, test_size=300)
    corrupted = load_dataset("mnist-5k", train_size=500, test_size=300, label_noise=1.0, label_mode="shuffle", seed=0)
    true, noisy = clean.y_train, corrupted.y_train
    assert corrupted.y_test.equal(clean.y_test)  # test labels are never touched
    assert torch.bincount(noisy, minlength=10).equal(torch.bincount(true, minlength=10))
    changed = (noisy != true).double().mean().item()
    # an image gets a label of its own class back with probability ~1/10 (50 of 500 per class), so ~90% change
    assert 0.85 < changed < 0.95
    assert runs["1"]["labels_changed"] == pytest.approx(changed)  # the experiment used exactly this draw


def test_random_mode_runs_and_is_recorded(tmp_path):
    run_dir = run_smoke("random-labels", tmp_path, "--label-mode", "random", "--label-noise", "1", "--epochs", "2")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["label_mode"] == "random" and set(summary["runs"]) == {"1"}
    run = summary["runs"]["1"]
    clean = load_dataset("mnist-5k", train_size=500, test_size=300)
    random = load_dataset("mnist-5k", train_size=500, test_size=300, label_noise=1.0, label_mode="random", seed=0)
    assert run["labels_changed"] == pytest.approx((random.y_train != clean.y_train).double().mean().item())
    counts = torch.bincount(random.y_train, minlength=10) - torch.bincount(clean.y_train, minlength=10)
    assert run["max_class_count_change"] == int(counts.abs().max()) > 0
    sentences = observe(summary, {})
    assert any("100% random labels" in s for s in sentences)
    assert not any("shuffled" in s for s in sentences)


def test_rerun_is_skipped(smoke_run):
    root, run_dir = smoke_run
    assert_rerun_is_skipped(SMOKE + ["--out", str(root)], run_dir)


def test_report_text_uses_the_numbers(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    sentences = observe(summary, {})
    accuracy = summary["runs"]["1"]["final_test_accuracy"]
    assert any(f"{100 * accuracy:.1f}%" in s for s in sentences)
    assert any("100% shuffled labels" in s and "class counts unchanged" in s for s in sentences)
    columns, rows = table(summary)
    assert len(rows) == 2 and len(rows[0]) == len(columns)


def test_epochs_to_fit_is_the_first_epoch_over_the_threshold():
    curves = {"epoch": [0, 1, 2, 3], "train_accuracy": [0.1, 0.5, 0.99, 1.0], "test_accuracy": [0.1, 0.11, 0.09, 0.1],
              "train_loss": [2.3, 1.0, 0.1, 0.01], "test_loss": [2.3, 3.0, 4.0, 5.0]}
    result = {"curves": curves, "labels_changed": 0.9, "max_class_count_change": 0, "status": "ok",
              "final_train_accuracy_true_labels": 0.1}
    summary = _summarize(1.0, result, Config(fit_threshold=0.99))
    assert summary["epochs_to_fit"] == 2 and summary["test_accuracy_at_fit"] == 0.09
    assert summary["min_test_loss"] == 2.3 and summary["final_test_loss"] == 5.0
    assert _summarize(1.0, result, Config(fit_threshold=1.0))["epochs_to_fit"] == 3
    curves["train_accuracy"] = [0.1, 0.2, 0.3, 0.4]
    assert _summarize(1.0, result, Config())["epochs_to_fit"] is None


@pytest.mark.parametrize("value", ["1.5", "0.5,0.5", ""])
def test_bad_label_noise_is_a_one_line_error(tmp_path, capsys, value):
    assert main(SMOKE + ["--out", str(tmp_path), "--label-noise", value]) == 2
    assert "label_noise" in capsys.readouterr().err


def test_bad_label_mode_is_a_one_line_error(tmp_path, capsys):
    assert main(SMOKE + ["--out", str(tmp_path), "--label-mode", "permute"]) == 2
    err = capsys.readouterr().err
    assert "label_mode" in err and "choose one of shuffle, random" in err and err.count("\n") == 1
