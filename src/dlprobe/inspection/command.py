"""The `dlprobe inspect` command: its options (InspectSettings, every size with a default) and what it runs.

    dlprobe inspect --model models.py:make_cnn --checkpoint model.pt --dataset mnist-5k --out inspect/

Parsing stays light (cli.py builds every parser on each call): torch, the library and matplotlib load in
command_inspect. measure.py does the measuring, report/card.py writes the card.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__, paths
from ..config import ExperimentConfig, field_help, layered_values, make_config, param

BN_CHOICES = ("keep", "train")
DESCRIPTION = (
    "Measure one trained model and write a self-contained HTML card (inspect.html) and inspect.json to --out: training and "
    "test loss and accuracy; on a training subset the largest and smallest Hessian eigenvalues, the trace (with its standard "
    "error), the spectral density, 1-D and 2-D filter-normalized loss landscapes and epsilon-sharpness; on a test subset the "
    "input-gradient and Jacobian sensitivities; the layer table. The model is built by your factory (--model FILE.py:FUNCTION): "
    "the file is your own code and runs in this process, as a pytest conftest.py does. The weights (--checkpoint) are read "
    "with torch.load(weights_only=True), which runs no code from the file. The defaults take well under a minute on a "
    "2-core CPU for a small CNN on mnist-5k; the options below set every size.")


@dataclass(frozen=True)
class InspectSettings(ExperimentConfig):
    """The sizes of the measurements, each a `dlprobe inspect` option (device comes from ExperimentConfig)."""

    seed: int = param(0, "seed of the subsets, the random directions, the probes and start vectors; the factory gets it as "
                      "its seed argument", minimum=0)
    normalize: str = param("standard", "pixel normalisation, as the experiments train with: standard (the training set's "
                           "per-channel mean/std), unit ([0, 1]) or none", choices=("standard", "unit", "none"))
    max_examples: int = param(256, "training examples (a fixed stratified subset) for the Hessian, landscapes and sharpness; "
                              "as many test examples for the sensitivities", minimum=2)
    batch_size: int = param(256, "examples per batch of every pass (memory: one batch's graph)", minimum=1)
    eigenvalues: int = param(3, "largest and smallest Hessian eigenvalues found (Lanczos, each end)", minimum=1)
    probes: int = param(30, "Rademacher probes of the Hutchinson trace", minimum=2)
    density_steps: int = param(40, "Lanczos steps of the spectral density (stochastic Lanczos quadrature)", minimum=2)
    density_runs: int = param(1, "independent quadrature runs averaged in the density", minimum=1)
    grid: int = param(11, "points per side of the 2-D landscape (grid x grid evaluations)", minimum=2)
    line_points: int = param(41, "points of the 1-D landscape", minimum=2)
    span: float = param(1.0, "both landscapes reach +-span in filter-normalized units", minimum=1e-6)
    bn: str = param("keep", "BatchNorm statistics on the landscapes: keep the model's, or recompute them at every point "
                    "on the training subset (slower)", choices=BN_CHOICES)
    epsilon: float = param(1e-3, "epsilon of Keskar's sharpness box |z_i| <= epsilon (|theta_i| + 1)", minimum=0.0, maximum=1.0)
    sharpness_steps: int = param(10, "projected sign-gradient ascent steps of the sharpness search", minimum=0)


STEPS = ("data and model", "loss and accuracy", "top eigenvalues", "bottom eigenvalues", "trace", "spectral density",
         "1-D landscape", "2-D landscape", "sharpness", "sensitivity", "card")


def add_arguments(parser) -> None:
    """The options of `dlprobe inspect` (parse only: heavy modules load when the command runs)."""
    parser.add_argument("--model", required=True, metavar="FILE.py:FUNCTION",
                        help="your model: a factory in your file (or package.module:FUNCTION), called with the arguments its "
                             "signature names from input_shape (C, H, W), num_outputs (the classes), seed, generator; the "
                             "file is your own code and runs in this process, as a pytest conftest.py does")
    parser.add_argument("--checkpoint", type=Path, metavar="CKPT",
                        help="the trained weights: torch.save(model.state_dict()) or a dlprobe checkpoint (a dict whose "
                             "'model' is a state dict), loaded with torch.load(weights_only=True), so it runs no code; "
                             "without it the factory's freshly initialised model is measured")
    parser.add_argument("--dataset", required=True, metavar="NAME|PATH",
                        help="mnist, fashion-mnist, cifar10, mnist-5k, digits, or your own: a folder train/<class>/*.png|jpg "
                             "+ test/<class>/..., or an .npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where dataset files are looked for first")
    parser.add_argument("--out", type=Path, default=paths.DEFAULT_INSPECT_DIR, metavar="DIR",
                        help=f"folder for {paths.INSPECT_CARD} and {paths.INSPECT_JSON} (default: {paths.DEFAULT_INSPECT_DIR}/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="CPU threads for torch (default: 1)")
    for name, type_text, help_text, default, choices in field_help(InspectSettings):
        option = f"--{name.replace('_', '-')}"
        metavar = "auto|cpu|cuda" if name == "device" else "|".join(choices) if choices else type_text.upper()
        parser.add_argument(option, dest=f"setting__{name}", metavar=metavar, help=f"{help_text} (default: {default})".replace("%", "%%"))


def settings_from(args) -> InspectSettings:
    """The settings the options give (ConfigError, one line, for a bad value)."""
    given = {k[len("setting__"):]: v for k, v in vars(args).items() if k.startswith("setting__") and v is not None}
    return make_config(InspectSettings, layered_values(InspectSettings, [("command line", given)], "inspect"), "inspect")


def command_inspect(args) -> int:
    """Run `dlprobe inspect`: everything is checked (model, checkpoint, data, --out) before measuring starts."""
    from tqdm.auto import tqdm

    from ..errors import ConfigError, ReportError
    from ..report.card import render_card
    from ..store import atomic_write_json, atomic_write_text

    settings = settings_from(args)
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    try:  # fail before measuring when --out cannot be written
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.out):
            pass
    except OSError as error:
        raise ReportError(f"cannot write to --out {args.out}: {error.strerror or error}") from None
    started = time.perf_counter()
    bar = tqdm(total=len(STEPS), desc="inspect", leave=False, file=sys.stderr, disable=True if args.quiet else None, dynamic_ncols=True)
    with bar:
        from .measure import measure, prepare

        bar.set_description("inspect: data and model")
        prepared = prepare(args.model, args.checkpoint, args.dataset, args.data_dir, settings)
        bar.update(1)
        record, figures = measure(prepared, settings, progress=False if args.quiet else None, bar=bar)
        record["dlprobe_version"], record["torch_version"] = __version__, torch.__version__
        record["wall_time_s"] = time.perf_counter() - started
        bar.set_description("inspect: card")
        card = render_card(record, figures)
        atomic_write_json(args.out / paths.INSPECT_JSON, record)
        atomic_write_text(args.out / paths.INSPECT_CARD, card)
        bar.update(1)
    print(f"inspect card: {(args.out / paths.INSPECT_CARD).resolve()} (numbers in {paths.INSPECT_JSON} beside it)")
    return 0
