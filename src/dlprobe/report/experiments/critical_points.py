"""The report's sentences and headline table for critical-points (experiments/critical_points.py).

    sentences = observe(summary, config)   # summary.json and config.json's config, as dicts
    columns, rows = table(summary)

What it says, first bullet first: what the points reached are (saddles, minima, undetermined, by measured
signs), how the Hessian was measured (summary.json's hessian_method: "exact", all P eigenvalues, or "lanczos",
a model above the exact limit: Lanczos extremes and quadrature estimates, never more than those support) and
how the minimal ratio relates to the loss (rank correlation with its p-value, or plainly no relation); then
what kind of points they are (critical points or gradient-flat regions), the gradient norms reached, what
Dauphin et al. found next to what was measured, and why the sampling ratio is what it is. A summary written
before hessian_method existed is an exact one.
"""

from __future__ import annotations

from ..text import format_number
from ..wording import SIGNIFICANCE, describe_trend


def _method(summary: dict) -> str:
    return summary.get("hessian_method", "exact")


def _classes(summary: dict, total: int) -> str:
    classes = summary["classes"]
    if _method(summary) == "lanczos":
        return (f"{classes['saddle']} saddle points (the smallest Lanczos eigenvalue negative beyond what the residual "
                f"gradient's Newton step can change), {classes['minimum']} minima (the smallest Lanczos eigenvalue minus its "
                f"residual not negative beyond float64 rounding, if Lanczos found the bottom of the spectrum) and "
                f"{classes['undetermined']} undetermined (a sign the measurements do not vouch for), of {total} runs")
    return (f"{classes['saddle']} saddle points (a negative eigenvalue whose sign the residual gradient cannot flip), "
            f"{classes['minimum']} minima (no eigenvalue negative beyond float64 rounding) and {classes['undetermined']} "
            f"undetermined (negative eigenvalues, none of them trusted), of {total} runs")


def _ratio_name(summary: dict) -> str:
    if _method(summary) == "lanczos":
        return ("the minimal ratio (fraction of Hessian eigenvalues > 0, estimated by stochastic Lanczos quadrature: with "
                f"{summary['num_params']} parameters the Hessian was not formed)")
    return "the minimal ratio (fraction of the exact Hessian's eigenvalues > 0)"


WIDE_INTERVAL = 0.2  # a Lanczos minimal ratio whose interval is wider than this may not rank the runs as the true ones


def _interval_caveat(summary: dict, good: list[dict]) -> str:
    """On the Lanczos path, what wide intervals mean for a rank correlation of the estimates ('' when none is wide)."""
    if _method(summary) != "lanczos":
        return ""
    widths = [r["minimal_ratio_high"] - r["minimal_ratio_low"] for r in good]
    if max(widths) <= WIDE_INTERVAL:
        return ""
    return f", a correlation of estimates from intervals up to {format_number(max(widths))} wide"


def observe(summary: dict, config: dict) -> list[str]:
    good = [r for r in summary["runs"] if r["status"] == "ok"]
    settings = summary["settings"]
    rho, p_value = summary["spearman_loss_vs_minimal_ratio"], summary["spearman_loss_vs_minimal_ratio_p"]
    low, high = min(r["loss"] for r in good), max(r["loss"] for r in good)
    sentences = [
        f"Driven to a small gradient from {_stages(settings)}, the runs ended at {_classes(summary, len(good))}, at losses from "
        f"{format_number(low)} to {format_number(high)}; {_ratio_name(summary)} against the loss: {describe_trend(rho, p_value)}"
        f"{_interval_caveat(summary, good)}.",
        _kind_of_points(summary, good),
        _gradient_norms(summary, good),
        _dauphin(summary, good),
        _ratio_ranges(summary, good),
        _sampling(summary, good),
        _probing(summary),
    ]
    return sentences


def _stages(settings: dict) -> str:
    if settings["stages"] == "end":
        return f"the end of {settings['train_epochs']} Adam epochs (every run)"
    spacing = "log-spaced" if settings["stages"] == "log" else "evenly spaced"
    return f"points of training {spacing} between epoch 0 and {settings['train_epochs']}"


def _kind_of_points(summary: dict, good: list[dict]) -> str:
    if _method(summary) == "lanczos":
        ratios = sorted(r["hg_ratio"] for r in good)
        return ("Whether the residual gradient lies along undetermined directions (a gradient-flat region, Frye et al. 2021) "
                "needs every eigenvector, which the Lanczos path does not compute; from the other side, ||Hg|| / "
                f"(max|λ| ||g||) ranges from {format_number(ratios[0])} to {format_number(ratios[-1])} over the runs (near 0: "
                "the residual gradient lies in near-flat directions).")
    flat = summary["gradient_flat_runs"]
    shares = sorted(r["gradient_flat_share"] for r in good)
    text = (f"In {flat} of {len(good)} runs more than {summary['settings']['gradient_flat_threshold']:.0%} of the residual gradient "
            "(its squared norm) lies along eigen-directions whose sign is undetermined")
    if flat:
        text += (": there the search stopped in a gradient-flat region, not at a critical point (Frye et al. 2021), and the "
                 "eigenvalue signs describe the point reached")
    else:
        text += ": the points reached are close to true critical points along every determined direction"
    return text + f" (share per run from {format_number(shares[0])} to {format_number(shares[-1])})."


def _gradient_norms(summary: dict, good: list[dict]) -> str:
    grads = summary["grad_norm_reached"]
    return (f"Gradient norms reached range from {format_number(grads['min'])} to {format_number(grads['max'])} (median "
            f"{format_number(summary['grad_norm_median'])}); {summary['fraction_below_1e-6']:.0%} of the runs are below 1e-6.")


def _dauphin(summary: dict, good: list[dict]) -> str:
    """What Dauphin et al. found, next to what this run measured (the index against the loss)."""
    rho, p_value = summary["spearman_loss_vs_index"], summary["spearman_loss_vs_index_p"]
    measured = describe_trend(rho, p_value)
    caveat = _interval_caveat(summary, good)
    if caveat:  # lower ends of wide intervals: their ranks are not the indices' ranks
        verdict = f"{caveat[2:]}, so it neither confirms nor contradicts theirs"
    elif rho is not None and p_value is not None and p_value < SIGNIFICANCE:
        verdict = ("the same direction as theirs" if rho > 0 else "the opposite direction to theirs")
    else:
        verdict = "no relation that this number of runs can establish"
    index = ("the least fraction of negative eigenvalues the minimal ratio's interval allows" if _method(summary) == "lanczos"
             else "trusted negatives")
    return (f"Dauphin et al. (2014) found the index (fraction of negative eigenvalues) of critical points growing with the training "
            f"error; here the index ({index}) against the loss shows {measured}: {verdict}.")


def _ratio_ranges(summary: dict, good: list[dict]) -> str:
    estimates = summary["estimates"]
    if _method(summary) == "lanczos":
        return _lanczos_ranges(summary, good)
    widths = [r["minimal_ratio_high"] - r["minimal_ratio_low"] for r in good]
    return (f"On average {estimates['num_undetermined_mean']:.1f} of {summary['num_params']} eigenvalues per run have a sign the "
            f"first-order bound cannot vouch for, so each minimal ratio is a range (width {format_number(min(widths))} to "
            f"{format_number(max(widths))}); the mean minimal ratio is {format_number(estimates['minimal_ratio_mean'])}, while the "
            f"banded ratio (eigenvalues within {format_number(summary['settings']['eigen_rel_tol'])} × max|λ| counted as not "
            f"positive) averages {format_number(estimates['minimal_ratio_banded_mean'])}.")


def _lanczos_ranges(summary: dict, good: list[dict]) -> str:
    """What the Lanczos path measured and how far its numbers go: residuals of the extremes, the intervals' widths."""
    estimates, lanczos = summary["estimates"], summary["lanczos_settings"]
    widths = [r["minimal_ratio_high"] - r["minimal_ratio_low"] for r in good]
    banded = [r["minimal_ratio_banded_high"] - r["minimal_ratio_banded_low"] for r in good]
    residual = max(max(r["bottom_residuals"] + r["top_residuals"]) for r in good)
    text = (f"The Hessian was measured by products only: its {lanczos['extreme_eigenvalues']} smallest and largest eigenvalues "
            f"by Lanczos (largest residual ||Hv - λv|| of any run {format_number(residual)}), the minimal ratio by stochastic "
            f"Lanczos quadrature ({lanczos['density_runs']} runs of {lanczos['density_steps']} steps), each with an interval "
            "(the quadrature's Chebyshev-Markov-Stieltjes bounds widened by two worst-case standard deviations of its random "
            f"start vectors) of width {format_number(min(widths))} to {format_number(max(widths))}; the mean estimate is "
            f"{format_number(estimates['minimal_ratio_mean'])}")
    if max(widths) > 0.5:
        text += (", but an interval that wide says the fraction of positive eigenvalues is not measured: a cluster of "
                 "eigenvalues around zero, which the quadrature cannot split, holds much of the spectrum")
    return (text + f". The banded ratio (eigenvalues within {format_number(summary['settings']['eigen_rel_tol'])} × max|λ| "
            f"counted as not positive) averages {format_number(estimates['minimal_ratio_banded_mean'])} (interval width "
            f"{format_number(min(banded))} to {format_number(max(banded))}).")


def _sampling(summary: dict, good: list[dict]) -> str:
    estimates, settings = summary["estimates"], summary["settings"]
    radii, means = settings["sampling_radii"], estimates["sampling_ratio_means"]
    ratios = ", ".join(f"{format_number(mean)} at radius {format_number(radius)}" for mean, radius in zip(means, radii))
    text = (f"The sampling ratio (random neighbours with higher loss) averages {ratios}. It counts neighbours, not eigenvalues: "
            f"along the sampled unit directions u the curvature u^T H u averages {format_number(estimates['sampled_curvature_mean_mean'])} "
            f"(tr(H)/P averages {format_number(estimates['trace_over_params_mean'])}"
            f"{', a quadrature estimate' if _method(summary) == 'lanczos' else ''}) and is negative for at most "
            f"{estimates['sampled_curvature_negative_max']:.1%} of them in any run, although the most negative eigenvalue of any run is "
            f"{format_number(estimates['lambda_min_min'])}")
    if estimates["saddle_sampling_ratio_means"] is None:
        return text + "; no run is a saddle, so there is no saddle to compare it with."
    return (text + f"; at the {summary['classes']['saddle']} saddles it gives {format_number(estimates['saddle_sampling_ratio_means'][-1])} at "
            f"radius {format_number(radii[-1])}, where their minimal ratio{' (estimate)' if _method(summary) == 'lanczos' else ''} averages {format_number(estimates['saddle_minimal_ratio_mean'])}: "
            "it does not check the Hessian's ratio.")


def _probing(summary: dict) -> str:
    estimates, settings = summary["estimates"], summary["settings"]
    outside, disagreements = estimates["probe_directions_outside_band"], estimates["probe_disagreements"]
    if estimates["probe_agreement"] is None:
        return "No eigenvalue lies outside the tolerance band, so eigen-direction probing has no sign to check."
    which = "of the Lanczos extreme eigenvectors " if _method(summary) == "lanczos" else ""
    text = (f"Eigen-direction probing (loss only, radius {format_number(settings['probe_radius'])}) matches the eigenvalue sign on "
            f"{estimates['probe_agreement']:.1%} of the {outside} directions {which}outside the tolerance band")
    if disagreements:
        text += (f"; of the {disagreements} that disagree, {disagreements - estimates['probe_unexplained']} are where the measured "
                 "slope |v·g| is at least r·|λ|/2, so the second-order model predicts one side to be lower")
    return text + "."


def table(summary: dict) -> tuple[list[str], list[list]]:
    settings = summary["settings"]
    if _method(summary) == "lanczos":
        return _lanczos_table(summary)
    columns = ["seed", "switch epoch", "loss", "grad norm", "class", "minimal ratio", "range", "negative", "undetermined",
               "gradient-flat share", "banded ratio", f"probed ratio (r={format_number(settings['probe_radius'])})",
               *(f"sampling ratio (r={format_number(radius)})" for radius in settings["sampling_radii"]), "min u^T H u"]
    rows = [[r["seed"], r["switch_epoch"], format_number(r["loss"]), format_number(r["grad_norm"]), r["classification"],
             format_number(r["minimal_ratio"]), f"{format_number(r['minimal_ratio_low'])}-{format_number(r['minimal_ratio_high'])}",
             r["num_negative"], r["num_undetermined"], format_number(r["gradient_flat_share"]), format_number(r["minimal_ratio_banded"]),
             format_number(r["probed_ratio"]), *(format_number(ratio) for ratio in r["sampling_ratios"]),
             format_number(r["sampled_curvature_min"])]
            for r in summary["runs"] if r["status"] == "ok"]
    return columns, rows


def _lanczos_table(summary: dict) -> tuple[list[str], list[list]]:
    """The Lanczos path's columns: estimates with their intervals and the smallest eigenvalue's bound."""
    settings = summary["settings"]
    columns = ["seed", "switch epoch", "loss", "grad norm", "class", "minimal ratio (estimate)", "interval", "λ_min (Lanczos)",
               "λ_min bound", "λ_min residual", "λ_max", "||Hg|| / (max|λ| ||g||)", "banded ratio",
               *(f"sampling ratio (r={format_number(radius)})" for radius in settings["sampling_radii"]), "min u^T H u"]
    rows = [[r["seed"], r["switch_epoch"], format_number(r["loss"]), format_number(r["grad_norm"]), r["classification"],
             format_number(r["minimal_ratio"]), f"{format_number(r['minimal_ratio_low'])}-{format_number(r['minimal_ratio_high'])}",
             format_number(r["lambda_min"]), format_number(r["lambda_min_uncertainty"]), format_number(r["lambda_min_residual"]),
             format_number(r["lambda_max"]), format_number(r["hg_ratio"]), format_number(r["minimal_ratio_banded"]),
             *(format_number(ratio) for ratio in r["sampling_ratios"]), format_number(r["sampled_curvature_min"])]
            for r in summary["runs"] if r["status"] == "ok"]
    return columns, rows
