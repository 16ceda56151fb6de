"""The config fields several experiments share, declared once: help text, bounds, choices and checks.

    @dataclass(frozen=True)
    class Config(ExperimentConfig):
        dataset: str = dataset_field("mnist-5k")
        train_size: int | None = train_size_field()
        seeds: tuple[int, ...] = seeds_field((0, 1, 2), "per noise level")
        learning_rate: float = learning_rate_field(1e-3, "of every model")

Each constructor fixes what must not drift between experiments (bounds, choices, checks, the core of the
help text) and takes what genuinely differs: the default, a few words of context after the noun
("seeds per width") and a `note` added to the parenthesis ("(initial weights and data order; trained together)").
The type annotation stays on the Config (`str | None` where none is allowed). A knob only one experiment
has is a plain `param` (config.py).
"""

from __future__ import annotations

from .config import param
from .data.functions import get_function
from .data.user import dataset_identity, dataset_key
from .errors import ConfigError, DatasetError
from .models.mlp import ACTIVATIONS
from .models.user import model_digest, parse_model_spec
from .training.common import OPTIMIZERS

DATASETS_NOTE = ("mnist-5k and digits are built in; mnist, fashion-mnist, cifar10 need files; or the PATH of your own: "
                 "a folder train/<class>/*.png|jpg + test/<class>/..., or an .npz with x_train, y_train, x_test, y_test")
SUBSET_NOTE = "a deterministic stratified subset of this many; none: all"
FUNCTION_NOTE = "a registered name or an expression in x"
LEARNING_RATE_BOUNDS = dict(minimum=1e-8, maximum=10.0)
MODEL_NOTE = ("your own model: FILE.py:FUNCTION or package.module:FUNCTION, a factory called with the keyword arguments "
              "it names of input_shape, num_outputs, seed, generator{size}; the file is your own code and runs in this "
              "process, as a pytest conftest.py does; its content is part of the run identity")


def _help(noun: str, context: str = "", *notes: str) -> str:
    """'seeds' + ' per width' + ' (initial weights and data order; also the label corruption)'."""
    notes = "; ".join(note for note in notes if note)
    return noun + (f" {context}" if context else "") + (f" ({notes})" if notes else "")


def _canonical_dataset(name: str | None) -> str | None:
    """'MNIST', 'CIFAR-10', 'fashion_mnist' -> the registry's name, './data/my.npz' -> its absolute resolved path,
    before the config hash: one run per dataset (a path's content digest joins the hash: data/user.py)."""
    try:
        return None if name is None else dataset_key(name)
    except DatasetError as error:
        raise ConfigError(str(error)) from None


def _canonical_datasets(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_canonical_dataset(name) for name in names)


def _known_function(name: str | None) -> str | None:
    """A registered name or a valid expression, checked before any run directory exists (kept as written)."""
    if name is not None:
        get_function(name)
    return name


def _known_functions(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_known_function(name) for name in names)


def _user_models(texts: tuple[str, ...]) -> tuple[str, ...]:
    """Each FILE.py:FUNCTION / package.module:FUNCTION well formed and its file present (nothing imported yet); a
    file is written as its absolute path (symlinks resolved), so two spellings of one file are one run, as for a
    dataset PATH."""
    specs = [parse_model_spec(text) for text in texts]
    return tuple(f"{spec.path}:{spec.function}" if spec.path is not None else spec.text for spec in specs)


def _model_identity(texts: tuple[str, ...]) -> dict:
    """What the run identity hashes for user models: the texts and each one's file content hash with the function
    name (models/user.py), so the same text naming an edited file is another run."""
    return {"value": list(texts), "digest": [model_digest(parse_model_spec(text)) for text in texts]}


def _distinct_seeds(seeds: tuple[int, ...]) -> tuple[int, ...]:
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must list at least one seed, all distinct, got {seeds}")
    return seeds


# --- data -----------------------------------------------------------------------------------------


def dataset_field(default: str | None, context: str = "", *, note: str = ""):
    return param(default, _help("image dataset", context, DATASETS_NOTE, note), check=_canonical_dataset,
                 identity=dataset_identity)


def datasets_field(default: tuple[str, ...], context: str = "", *, note: str = ""):
    return param(default, _help("image datasets", context, DATASETS_NOTE, note), check=_canonical_datasets,
                 identity=dataset_identity)


def train_size_field(context: str = ""):
    return param(None, _help("training images used", context, SUBSET_NOTE), minimum=1)


def test_size_field(context: str = ""):
    return param(None, _help("test images used", context, SUBSET_NOTE), minimum=1)


def function_field(default: str | None, context: str = "", *, note: str = ""):
    return param(default, _help("target function", context, FUNCTION_NOTE, note), check=_known_function)


def functions_field(default: tuple[str, ...], context: str = ""):
    return param(default, _help("target functions", context, "registered names or expressions in x"), check=_known_functions)


def num_train_field(default: int):
    return param(default, "training grid points over the target function's domain", minimum=2)


def num_test_field(default: int):
    return param(default, "test grid points over the target function's domain (a separate grid)", minimum=1)


# --- model and training ---------------------------------------------------------------------------


def model_field(context: str = "", *, size: bool = False, note: str = "", noun: str = "user model"):
    """`model: tuple[str, ...] = model_field(...)`: () is dlprobe's own model; the help names what the factory
    gets (size=True: param-count's size knob too) and `context` what it replaces (noun "user models" where the
    experiment compares several)."""
    notes = MODEL_NOTE.format(size=", size" if size else "")
    return param((), _help(noun, context, notes, note), check=_user_models, identity=_model_identity)


def widths_field(default: tuple[int, ...], context: str = ""):
    return param(default, _help("hidden layer widths of the MLP", context), minimum=1)


def activation_field(default: str, *, note: str = ""):
    return param(default, _help("hidden activation", "", note), choices=tuple(ACTIVATIONS))


def optimizer_field(default: str = "adam"):
    return param(default, "optimizer", choices=OPTIMIZERS)


def learning_rate_field(default: float, context: str = "", *, optimizer: str | None = "Adam"):
    """optimizer=None where the Config has an `optimizer` field (the rate is that optimizer's)."""
    noun = f"{optimizer} learning rate" if optimizer else "learning rate of the chosen optimizer"
    return param(default, _help(noun, context), **LEARNING_RATE_BOUNDS)


def learning_rates_field(default: tuple[float, ...], context: str = ""):
    return param(default, _help("Adam learning rates", context), **LEARNING_RATE_BOUNDS)


def batch_size_field(default: int, context: str = ""):
    return param(default, _help("mini-batch size", context), minimum=1)


def batch_sizes_field(default: tuple[int, ...], context: str = ""):
    return param(default, _help("mini-batch sizes", context), minimum=1)


def epochs_field(default: int, context: str = ""):
    return param(default, _help("training epochs", context), minimum=1)


def seeds_field(default: tuple[int, ...], context: str = "", *, note: str = ""):
    return param(default, _help("seeds", context, "initial weights and data order", note), minimum=0, check=_distinct_seeds)


def eval_every_field(default: int, *, note: str = ""):
    return param(default, _help("epochs between recorded train/test metrics", "", "metrics.csv", note), minimum=1)


def snapshot_every_field(default: int, *, note: str = ""):
    return param(default, _help("epochs between weight snapshots", "", note), minimum=1)
