"""random-labels end to end in the smoke profile (2 seeds): labels really randomized, test accuracy at chance,
figures, seed stats that agree with the per-seed values, each seed the same as a run of that seed alone."""

import json
import math

import numpy as np
import pytest
import torch

from dlprobe.cli import main
from dlprobe.data.images import load_dataset
from dlprobe.data.labels import corrupt_labels
from dlprobe.experiments.random_labels import SEED_STATS, Config, _summarize, _summarize_seeds
from dlprobe.report.experiments.random_labels import observe, table
from smoke import assert_rerun_is_skipped, run_smoke

SMOKE = ["run", "random-labels", "--profile", "smoke", "--quiet"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("random_labels")
    return root, run_smoke("random-labels", root)


def test_figures_and_summary(smoke_run):
    _, run_dir = smoke_run
    for name in ("loss_vs_epochs", "accuracy_vs_epochs", "noise_sweep", "memorization_vs_size"):
        for extension in ("png", "svg"):
            assert (run_dir / "figures" / f"{name}.{extension}").stat().st_size > 1000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["chance_accuracy"] == pytest.approx(0.1)
    assert summary["num_train"] == 500 and summary["num_test"] == 300
    assert summary["model"]["num_params"] == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert summary["seeds"] == [0, 1]  # the smoke profile trains two seeds per noise level
    assert set(summary["runs"]) == {"0", "1"}
    assert summary["label_mode"] == "shuffle"  # the default, as the assignment asks
    for run in summary["runs"].values():
        assert run["status"] == "ok" and set(run["per_seed"]) == {"0", "1"}
        for one in run["per_seed"].values():
            assert {"final_train_loss", "final_test_accuracy", "epochs_to_fit", "labels_changed", "status"} <= set(one)
            assert one["status"] == "ok"
            assert one["max_class_count_change"] == 0  # shuffling keeps every class count
    header, *rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert header == "run,step,name,value"
    # (2 noise levels + the size sweep's one size) x 2 seeds x 4 metrics x (epochs 0..6)
    assert len(rows) == 3 * 2 * 4 * (6 + 1)
    assert {row.split(",")[0] for row in rows} == ({f"label_noise={f}/seed{s}" for f in (0, 1) for s in (0, 1)}
                                                   | {f"size=250/seed{s}" for s in (0, 1)})
    assert sorted(p.name for p in (run_dir / "trials").iterdir()) == [  # one trial per (fraction, seed) and (size, seed)
        "noise_0_seed0.pt", "noise_0_seed1.pt", "noise_1_seed0.pt", "noise_1_seed1.pt", "size250_seed0.pt", "size250_seed1.pt"]


def test_the_size_sweep_adds_the_main_run_and_tests_the_trend(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    sweep = summary["size_sweep"]
    assert sweep["sizes"] == [250, 500]
    assert sweep["runs"]["500"]["final_train_accuracy"] == summary["runs"]["1"]["final_train_accuracy"]
    small = sweep["runs"]["250"]
    assert small["num_train"] == 250 and set(small["per_seed"]) == {"0", "1"}
    assert all(one["label_noise"] == 1.0 and one["max_class_count_change"] == 0 for one in small["per_seed"].values())
    pairs = [(entry["num_train"], e) for entry in sweep["runs"].values() for e in entry["epochs_to_fit"]["values"]]
    fitted = [(size, e) for size, e in pairs if e is not None]
    assert sweep["not_fitted"] == len(pairs) - len(fitted) and sweep["spearman_size_vs_epochs_to_fit"]["n"] == len(fitted)


def test_the_size_sentence_calls_growth_only_when_the_trend_is_significant():
    from dlprobe.report.experiments.random_labels import _size_sweep

    def sweep(rho, p_value):
        runs = {str(n): {"epochs_to_fit": {"n": 2, "min": e, "max": e + 2, "values": [e, e + 2]}} for n, e in ((1000, 20), (4000, 60))}
        return {"sizes": [1000, 4000], "runs": runs, "spearman_size_vs_epochs_to_fit": {"rho": rho, "p_value": p_value, "n": 4},
                "not_fitted": 0}
    summary = {"seeds": [0, 1], "fit_threshold": 0.99, "epochs": 70}
    grows = _size_sweep(sweep(0.95, 0.01), summary, "shuffled")
    assert "1000 images: 20-22; 4000 images: 60-62" in grows and grows.endswith("memorization time grows with the number of training images.")
    unclear = _size_sweep(sweep(0.95, 0.2), summary, "shuffled")
    assert "cannot be said" in unclear and "grows with the number of training images." not in unclear


def test_seed_stats_agree_with_the_per_seed_values(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    for run in summary["runs"].values():
        per_seed = [run["per_seed"][str(seed)] for seed in summary["seeds"]]
        for name in SEED_STATS:
            values = np.array([one[name] for one in per_seed], dtype=float)
            stats = run[name]
            assert stats["values"] == pytest.approx(values.tolist()) and stats["n"] == 2, name
            assert stats["mean"] == pytest.approx(values.mean()) and stats["std"] == pytest.approx(values.std()), name
            assert (stats["min"], stats["max"]) == pytest.approx((values.min(), values.max())), name
        assert run["epochs_to_fit"]["values"] == [one["epochs_to_fit"] for one in per_seed]
        intact = np.array([1.0 - one["labels_changed"] for one in per_seed])  # the share the report calls "left intact"
        assert run["labels_intact"]["values"] == pytest.approx(intact.tolist()) and run["labels_intact"]["mean"] == pytest.approx(intact.mean())
    # The two seeds are different models: their final numbers are not copies of each other.
    clean = summary["runs"]["0"]["final_train_loss"]["values"]
    assert clean[0] != clean[1]


def test_epochs_to_fit_stats_skip_seeds_that_never_fit_and_observations_say_so():
    def one(epochs_to_fit, test_accuracy):
        return {"label_noise": 1.0, "labels_changed": 0.9, "max_class_count_change": 0, "status": "ok",
                "final_train_loss": 0.01, "final_train_accuracy": 1.0, "final_test_loss": 4.0,
                "final_test_accuracy": test_accuracy, "best_test_accuracy": 0.12, "best_test_accuracy_epoch": 1,
                "min_test_loss": 2.3, "final_train_accuracy_true_labels": 0.1, "epochs_to_fit": epochs_to_fit,
                "test_accuracy_at_fit": None}
    per_seed = {0: one(10, 0.11), 1: one(None, 0.12), 2: one(14, 0.10)}
    run = _summarize_seeds(1.0, per_seed)
    assert run["epochs_to_fit"] == {"mean": 12.0, "std": 2.0, "min": 10.0, "max": 14.0, "values": [10, None, 14], "n": 2}
    assert run["per_seed"]["1"] == per_seed[1]
    summary = {"seeds": [0, 1, 2], "runs": {"1": run}, "chance_accuracy": 0.1, "label_mode": "shuffle", "num_train": 500,
               "fit_threshold": 0.99, "epochs": 20, "num_classes": 10}
    text = " ".join(observe(summary, {}))
    assert "3 seeds (0, 1, 2)" in text
    assert "after 10-14 epochs in 2 of 3 seeds" in text
    accuracy = np.array([0.11, 0.12, 0.10])
    assert f"test accuracy ended at {100 * accuracy.mean():.1f} ± {100 * accuracy.std():.1f}%" in text  # 11.0 ± 0.8%
    assert "memorized them in 2 of 3 seeds" in text
    assert "within 2.0 points of chance across seeds (+0.0 to +2.0)" in text  # one seed at chance: no side is claimed


def test_random_labels_do_not_transfer(smoke_run):
    _, run_dir = smoke_run
    runs = json.loads((run_dir / "summary.json").read_text())["runs"]
    for seed in ("0", "1"):
        random, clean = runs["1"]["per_seed"][seed], runs["0"]["per_seed"][seed]
        # With every label random nothing learned can transfer: the band is +-10 points around the 10% chance
        # level (300 test images: one binomial std is ~1.7 points).
        assert abs(random["final_test_accuracy"] - 0.1) < 0.10
        # The model fitted noise, not digits: scored against the true training labels it is near chance too.
        assert random["final_train_accuracy_true_labels"] < 0.25
        # The same network on the true labels learns something real even in 6 epochs.
        assert clean["final_test_accuracy"] > random["final_test_accuracy"] + 0.3
        assert clean["labels_changed"] == 0.0


def test_training_labels_really_differ_and_each_seed_draws_its_own(smoke_run):
    _, run_dir = smoke_run
    runs = json.loads((run_dir / "summary.json").read_text())["runs"]
    clean = load_dataset("mnist-5k", train_size=500, test_size=300)
    true, drawn = clean.y_train, []
    for seed in (0, 1):
        noisy = corrupt_labels(true, 1.0, "shuffle", 10, torch.Generator().manual_seed(seed))
        assert true.equal(load_dataset("mnist-5k", train_size=500, test_size=300).y_train)  # clean labels never touched
        assert torch.bincount(noisy, minlength=10).equal(torch.bincount(true, minlength=10))
        changed = (noisy != true).double().mean().item()
        # an image gets a label of its own class back with probability ~1/10 (50 of 500 per class), so ~90% change
        assert 0.85 < changed < 0.95
        assert runs["1"]["per_seed"][str(seed)]["labels_changed"] == pytest.approx(changed)  # the experiment used this draw
        drawn.append(noisy)
    assert (drawn[0] != drawn[1]).double().mean() > 0.5  # two seeds, two different corruptions


def test_one_seed_of_a_multi_seed_run_equals_a_run_of_that_seed_alone(smoke_run, tmp_path):
    _, both = smoke_run
    alone = run_smoke("random-labels", tmp_path, "--set", "seeds=1")
    summary, single = (json.loads((d / "summary.json").read_text()) for d in (both, alone))
    assert single["seeds"] == [1]
    for key, run in single["runs"].items():
        assert run["per_seed"]["1"] == summary["runs"][key]["per_seed"]["1"]  # the same numbers, bit for bit
        assert run["final_test_accuracy"]["values"] == [summary["runs"][key]["per_seed"]["1"]["final_test_accuracy"]]
    assert sorted(p.name for p in (alone / "trials").iterdir()) == ["noise_0_seed1.pt", "noise_1_seed1.pt", "size250_seed1.pt"]  # same trial keys
    rows = {d: [r for r in (d / "metrics.csv").read_text().splitlines() if "/seed1," in r] for d in (both, alone)}
    assert rows[alone] and rows[alone] == rows[both]


def test_random_mode_runs_and_is_recorded(tmp_path):
    run_dir = run_smoke("random-labels", tmp_path, "--label-mode", "random", "--label-noise", "1", "--epochs", "2")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["label_mode"] == "random" and set(summary["runs"]) == {"1"}
    run = summary["runs"]["1"]["per_seed"]["0"]
    clean = load_dataset("mnist-5k", train_size=500, test_size=300)
    random = corrupt_labels(clean.y_train, 1.0, "random", 10, torch.Generator().manual_seed(0))
    assert run["labels_changed"] == pytest.approx((random != clean.y_train).double().mean().item())
    counts = torch.bincount(random, minlength=10) - torch.bincount(clean.y_train, minlength=10)
    assert run["max_class_count_change"] == int(counts.abs().max()) > 0
    sentences = observe(summary, {})
    assert any("100% random labels" in s for s in sentences)
    assert not any("shuffled" in s for s in sentences)


def test_cosine_schedule_is_recorded_and_trains_differently(smoke_run, tmp_path):
    _, constant_dir = smoke_run
    run_dir = run_smoke("random-labels", tmp_path, "--lr-schedule", "cosine")
    summary, constant = (json.loads((d / "summary.json").read_text()) for d in (run_dir, constant_dir))
    assert summary["lr_schedule"] == "cosine" and constant["lr_schedule"] == "constant"
    cosine_loss = summary["runs"]["1"]["per_seed"]["0"]["final_train_loss"]
    assert math.isfinite(cosine_loss) and cosine_loss != constant["runs"]["1"]["per_seed"]["0"]["final_train_loss"]


def test_rerun_is_skipped(smoke_run):
    root, run_dir = smoke_run
    assert_rerun_is_skipped(SMOKE + ["--out", str(root)], run_dir)


def test_report_text_uses_the_numbers(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    sentences = observe(summary, {})
    # the first bullet answers the assignment's question (6 smoke epochs memorize nothing), then the seeds
    assert sentences[0].startswith("Not within this training: with 100% of the 500 training labels shuffled, the MLP ended at")
    assert sentences[1].startswith("Each noise fraction trained 2 seeds (0, 1)")
    accuracy = np.array([summary["runs"]["1"]["per_seed"][s]["final_test_accuracy"] for s in ("0", "1")])
    assert any(f"{100 * accuracy.mean():.1f} ± {100 * accuracy.std():.1f}%" in s for s in sentences)
    assert any("100% shuffled labels" in s and "class counts unchanged" in s for s in sentences)
    assert any("within 6 epochs in any of the 2 seeds" in s for s in sentences)  # 6 smoke epochs fit nothing
    columns, rows = table(summary)
    assert len(rows) == 2 and len(rows[0]) == len(columns) and rows[1][1] == 2


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


def test_repeated_seeds_are_a_one_line_error(tmp_path, capsys):
    assert main(SMOKE + ["--out", str(tmp_path), "--seeds", "0,0"]) == 2
    err = capsys.readouterr().err
    assert "seeds must list at least one seed, all distinct" in err and err.count("\n") == 1


def test_a_size_sweep_too_small_for_the_classes_is_refused_before_training(tmp_path, capsys):
    # 10% of 50 images is 5 < 10 classes: refused in one line before the main runs train, nothing written
    code = main(["run", "random-labels", "--profile", "smoke", "--train-size", "50", "--size-sweep", "0.1",
                 "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("dlprobe: error: size_sweep (0.1,) of 50 training images gives subsets [5]")
    assert len(err.strip().splitlines()) == 1 and not list(tmp_path.rglob("summary.json"))
    assert not list(tmp_path.rglob("*.pt"))  # the main runs never started (no trial result, no checkpoint)
