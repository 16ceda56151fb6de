"""The report's words for numbers (report/wording.py) and its one number format (report/text.format_number)."""

from dlprobe.analysis.stats import seed_stats
from dlprobe.report.text import format_number, format_value
from dlprobe.report.wording import below_minimum, compare_lower_is_better, describe_trend, mean_std, ranking


def test_format_number_three_significant_digits_scientific_when_small_or_large():
    assert format_number(0.012345) == "0.0123" and format_number(123.456) == "123" and format_number(0) == "0"
    assert format_number(0.00012345) == "1.23e-04" and format_number(123456.0) == "1.23e+05"
    assert format_number(3.2e-7, 2) == "3.2e-07"
    assert format_number(None) == "n/a" == format_number(float("nan"))
    assert format_value(0.012345) == format_number(0.012345) and format_value([0.5, None]) == "0.5, n/a"


def test_mean_std_shows_the_spread_only_with_several_seeds():
    assert mean_std(seed_stats([1.0, 3.0])) == "2 ± 1"
    assert mean_std(seed_stats([0.25])) == "0.25"
    assert mean_std(None) == "n/a" == mean_std(seed_stats([float("nan")]))


def test_compare_lower_is_better_calls_a_difference_clear_only_when_ranges_separate():
    clear = compare_lower_is_better("deep", seed_stats([1.0, 1.2]), "shallow", seed_stats([2.0, 2.4]), "test MSE")
    assert clear.startswith("The deep's test MSE (1.1) is 2.00× lower than the shallow's (2.2)")
    unclear = compare_lower_is_better("deep", seed_stats([1.0, 2.2]), "shallow", seed_stats([2.0, 2.4]), "test MSE")
    assert unclear.startswith("No clear difference in test MSE")


def test_below_minimum_warns_only_under_the_minimum():
    assert below_minimum("models", 10, 10) == []
    (warning,) = below_minimum("models", 3, 10)
    assert warning.startswith("Fewer models than the assignment asks for (3, at least 10)")


def test_describe_trend_says_when_there_is_no_monotonic_trend():
    assert describe_trend(0.1, 0.8).startswith("no monotonic trend")
    assert describe_trend(-0.9, 0.01).startswith("strong decreasing")
    assert describe_trend(0.5, 0.01).startswith("moderate increasing")
    # 5 runs, rho = -0.9: exact permutation p = 0.083 (rank_correlation); a lean, not a trend
    assert describe_trend(-0.9, 0.083).startswith("no significant trend: the ranks lean decreasing")
    assert describe_trend(0.5, 0.1).startswith("no significant trend: the ranks lean increasing")
    assert "trend (" not in describe_trend(0.6, None)
    assert describe_trend(None, None).startswith("not measurable")


def test_ranking_writes_an_order_only_where_seed_ranges_separate():
    low, middle, overlapping = seed_stats([1.0, 1.1]), seed_stats([2.0, 2.2]), seed_stats([2.1, 2.5])
    sentence = ranking([("c", overlapping), ("a", low), ("b", middle)], "test MSE")
    assert sentence.index("a (") < sentence.index("b (") < sentence.index("c (")
    assert "a (1.05 ± 0.05) < b (2.1 ± 0.1) ≈ c (2.3 ± 0.2)" in sentence
    higher = ranking([("a", low), ("b", middle)], "accuracy", lower_is_better=False, scale=100, unit="%")
    assert "b (210 ± 10%) > a (105 ± 5%)" in higher
    single = ranking([("a", seed_stats([1.0])), ("b", seed_stats([3.0]))], "loss")
    assert "a (1) ≈ b (3)" in single  # one seed each: never called separated
    assert "fewer than two" in ranking([("a", low)], "loss")
