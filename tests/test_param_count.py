"""param-count end to end in the smoke profile: >= 10 models over >= 100x parameters, exact counts, figures."""

import json

import numpy as np
import pytest
import torch

from dlprobe.analysis.stats import rank_correlation, separated
from dlprobe.cli import main
from dlprobe.experiments.param_count import geometric_widths
from dlprobe.models.mlp import MLPSpec, build_mlp
from dlprobe.report.experiments.param_count import observe, table
from dlprobe.report.text import format_number
from dlprobe.report.wording import describe_trend
from smoke import assert_rerun_is_skipped, run_smoke

SMOKE = ["run", "param-count", "--profile", "smoke", "--quiet"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("param_count")
    return root, run_smoke("param-count", root)


def test_models_span_two_decades_with_exact_counts(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    models = summary["models"]
    assert len(models) >= 10
    counts = [m["num_params"] for m in models]
    assert counts == sorted(counts) and max(counts) / min(counts) >= 100
    assert not any("than the assignment asks for" in s for s in observe(summary, {}))  # 10 models, > 2 decades
    fewer = {**summary, "models": models[:3]}  # 3 models over less than 2 decades
    warnings = [s for s in observe(fewer, {}) if "than the assignment asks for" in s]
    assert len(warnings) == 2 and warnings[0].startswith("Fewer models than the assignment asks for (3, at least 10)")
    assert warnings[1].startswith("Fewer decades of parameter count than the assignment asks for")
    for m in models:
        assert m["widths"] == [m["width"]] * summary["hidden_layers"]
        built = build_mlp(MLPSpec(784, tuple(m["widths"]), 10, summary["activation"]), torch.Generator().manual_seed(0))
        assert m["num_params"] == sum(p.numel() for p in built.parameters())


def test_seed_statistics_and_figures(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    for m in summary["models"]:
        for key in ("final_train_loss", "final_train_accuracy", "final_test_loss", "final_test_accuracy"):
            stats = m[key]
            assert stats["n"] == 2 and len(stats["values"]) == 2
            assert stats["min"] <= stats["mean"] <= stats["max"]
        assert 0 <= m["final_test_accuracy"]["min"] <= m["final_test_accuracy"]["max"] <= 1
        gap = np.subtract(m["final_train_accuracy"]["values"], m["final_test_accuracy"]["values"]).mean()
        assert m["accuracy_gap"]["mean"] == pytest.approx(gap)
        assert m["status"] == ["ok", "ok"]
    models = summary["models"]
    # same recipe for all: the widest models fit far better than a width-4 bottleneck even after 2 epochs
    assert models[-1]["final_train_loss"]["mean"] < 0.7 * models[0]["final_train_loss"]["mean"]
    assert models[-1]["final_test_accuracy"]["mean"] > models[0]["final_test_accuracy"]["mean"] + 0.2
    for name in ("loss_vs_params", "accuracy_vs_params"):
        for extension in ("png", "svg"):
            assert (run_dir / "figures" / f"{name}.{extension}").stat().st_size > 1000
    runs = {line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]}
    assert len(runs) == 2 * len(models)


def test_report_text_and_table(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    sentences = observe(summary, {})
    assert sentences[0].startswith("Does a larger model generalize better? The highest mean test accuracy is ")
    assert sentences[1].startswith(f"{len(summary['models'])} models")
    best = max(summary["models"], key=lambda m: m["final_test_accuracy"]["mean"])
    others = [m for m in summary["models"] if m is not best]
    alone = all(separated(best["final_test_accuracy"], m["final_test_accuracy"]) for m in others)
    # "best" only when its seed range separates from every other model's
    assert ("so it is the best model of this sweep" in sentences[0]) == alone
    assert ("no single best model is singled out" in sentences[0]) == (not alone)
    # the verdict follows the peak model it is about; the smallest model comes after it, named by its size
    smallest = summary["models"][0]
    assert sentences[0].endswith(f"; the smallest model ({smallest['num_params']:,} parameters) reaches "
                                 f"{100 * smallest['final_test_accuracy']['mean']:.1f}%.")
    columns, rows = table(summary)
    assert len(rows) == len(summary["models"]) and all(len(r) == len(columns) for r in rows)


def test_gap_trend_is_computed_by_the_run_and_quoted_by_the_report(smoke_run):
    _, run_dir = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    trend = summary["spearman"]["accuracy_gap"]
    models = summary["models"]
    assert trend["n"] == len(models)  # every smoke model has a finite gap
    params = [m["num_params"] for m in models]
    gaps = [m["accuracy_gap"]["mean"] for m in models]
    assert (trend["rho"], trend["p_value"]) == rank_correlation(params, gaps)
    assert 0 < trend["p_value"] <= 1
    (sentence,) = [s for s in observe(summary, {}) if s.startswith("Train-test accuracy gap vs parameter count")]
    assert describe_trend(trend["rho"], trend["p_value"]) in sentence
    assert f"p = {format_number(trend['p_value'], 2)}" in sentence
    # the report reads the stored numbers: a different stored p-value shows in the sentence
    stored = {**summary, "spearman": {"accuracy_gap": {**trend, "rho": 1.0, "p_value": 0.0123}}}
    (sentence,) = [s for s in observe(stored, {}) if s.startswith("Train-test accuracy gap vs parameter count")]
    assert "Spearman ρ = +1.00, p = 0.012" in sentence


def test_rerun_is_skipped(smoke_run):
    root, run_dir = smoke_run
    assert_rerun_is_skipped(SMOKE + ["--out", str(root)], run_dir)


def test_geometric_widths():
    widths = geometric_widths(4, 1024, 14)
    assert widths[0] == 4 and widths[-1] == 1024 and len(widths) == 14
    ratios = np.diff(np.log(widths))
    assert np.allclose(ratios, np.log(256) / 13, atol=0.1)


def test_duplicate_widths_are_a_one_line_error(tmp_path, capsys):
    assert main(SMOKE + ["--out", str(tmp_path), "--widths", "8,8"]) == 2
    assert "widths" in capsys.readouterr().err
