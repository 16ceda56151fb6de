"""The report's sentences and headline table for critical-points (experiments/critical_points.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says: the gradient norms reached, minima vs saddles, the minimal ratio's trend with the loss and the
three estimates of it.
"""

from __future__ import annotations

from ..text import format_number
from ..wording import describe_trend


def observe(summary: dict, config: dict) -> list[str]:
    good = [r for r in summary["runs"] if r["status"] == "ok"]
    grads = summary["grad_norm_reached"]
    sentences = [
        f"{len(good)} of {summary['num_runs']} runs were analysed; gradient norms reached range from {format_number(grads['min'])} to "
        f"{format_number(grads['max'])} (median {format_number(summary['grad_norm_median'])}); {summary['fraction_below_1e-6']:.0%} are below 1e-6.",
        f"By the Hessian, {summary['num_minima']} runs have no negative eigenvalue beyond the tolerance band (minima, possibly with flat "
        f"directions) and {summary['num_saddles']} are saddle points.",
    ]
    ratios, estimates = [r["minimal_ratio"] for r in good], summary["estimates"]
    sentences.append(
        f"Minimal ratios (tolerance {format_number(summary['settings']['eigen_rel_tol'])} × max|eigenvalue|) range from "
        f"{format_number(min(ratios))} to {format_number(max(ratios))}; on average {estimates['num_near_zero_mean']:.1f} of "
        f"{summary['num_params']} eigenvalues lie inside the band, which is why the ratio stays below 1 even at minima "
        f"(strict ratio without tolerance: mean {format_number(estimates['minimal_ratio_strict_mean'])}).")
    rho = summary["spearman_loss_vs_minimal_ratio"]
    sentences.append(f"Minimal ratio vs loss over {len(good)} runs: {describe_trend(rho, summary.get('spearman_loss_vs_minimal_ratio_p'))}.")
    sentences.append(_compare_estimates(summary, good))
    rho_s = summary["spearman_minimal_vs_sampling_ratio"]
    if rho_s is not None:
        sentences.append(f"Sampling ratio at radius {format_number(summary['settings']['sampling_radii'][0])} against the Hessian minimal ratio: "
                         f"{describe_trend(rho_s, summary.get('spearman_minimal_vs_sampling_ratio_p'))}.")
    return sentences


def _compare_estimates(summary: dict, good: list[dict]) -> str:
    """One sentence: the mean of each estimate, probing vs Hessian signs outside the band, sampling across radii."""
    estimates, settings = summary["estimates"], summary["settings"]
    outside, disagreements = estimates["probe_directions_outside_band"], estimates["probe_disagreements"]
    if estimates["probe_agreement"] is None:
        agreement = "no eigenvalue lies outside the tolerance band, so there is no sign to check"
    else:
        agreement = f"its verdict matches the eigenvalue sign on {estimates['probe_agreement']:.1%} of the {outside} directions outside the band"
    if disagreements:
        agreement += (f" ({disagreements} disagree, {disagreements - estimates['probe_unexplained']} of them where the measured gradient's "
                      "slope |v·g| is at least r·|λ|/2, so the second-order model predicts one side to be lower)")
    radii, means = settings["sampling_radii"], estimates["sampling_ratio_means"]
    sampling = ", ".join(f"{format_number(mean)} at radius {format_number(radius)}" for mean, radius in zip(means, radii))
    if len({ratio for r in good for ratio in r["sampling_ratios"]}) == 1:
        sampling += f" (the same value, {format_number(good[0]['sampling_ratio'])}, in every run at every radius)"
    return (f"Three minimal-ratio estimates, means over {len(good)} runs: Hessian {format_number(estimates['minimal_ratio_mean'])} (strict "
            f"{format_number(estimates['minimal_ratio_strict_mean'])}); eigen-direction probing {format_number(estimates['probed_ratio_mean'])} "
            f"(radius {format_number(settings['probe_radius'])}), and {agreement}; random sampling {sampling}.")


def table(summary: dict) -> tuple[list[str], list[list]]:
    settings = summary["settings"]
    columns = ["seed", "loss", "grad norm", "minimal ratio", "strict ratio", f"probed ratio (r={format_number(settings['probe_radius'])})",
               "probe agreement", *(f"sampling ratio (r={format_number(radius)})" for radius in settings["sampling_radii"]), "negative eigs",
               "near-zero eigs"]
    rows = [[r["seed"], format_number(r["loss"]), format_number(r["grad_norm"]), format_number(r["minimal_ratio"]), format_number(r["minimal_ratio_strict"]), format_number(r["probed_ratio"]),
             format_number(r["probe_agreement"]), *(format_number(ratio) for ratio in r["sampling_ratios"]), r["num_negative"], r["num_near_zero"]]
            for r in summary["runs"] if r["status"] == "ok"]
    return columns, rows
