"""From a command line to configs: the shared fields (config_fields.py) and the resolution (config_resolution.py).

Nothing here trains: configs are resolved and their run directories named, as `dlprobe run` does first.
"""

from dataclasses import fields
from pathlib import Path

import pytest

from dlprobe.config_resolution import RunRequest, resolve_configs
from dlprobe.errors import ConfigError
from dlprobe.experiments import all_experiments, get_experiment
from dlprobe.experiments.runner import run_directory_for

NAMES = {e.name for e in all_experiments()}


def resolve(name: str, profile: str = "smoke", **request):
    experiment = get_experiment(name)
    (config,) = resolve_configs([experiment], RunRequest(profile=profile, **request), NAMES)
    return config


def run_dir(name: str, **request) -> Path:
    return run_directory_for(get_experiment(name), resolve(name, **request), "smoke", Path("runs"))


@pytest.mark.parametrize("spellings", [["mnist", "MNIST", " Mnist "], ["fashion-mnist", "Fashion_MNIST", "FashionMNIST"],
                                       ["cifar10", "CIFAR-10"], ["mnist-5k", "MNIST5k"]])
def test_dataset_spellings_make_one_run_directory(spellings):
    """The dataset name is canonical before the config hash: `--dataset MNIST` and `--dataset mnist` are one run."""
    for name in ("interpolation", "grad-norm"):
        directories = {run_dir(name, options={"dataset": [spelling]}) for spelling in spellings}
        assert len(directories) == 1, (name, directories)
        assert resolve(name, options={"dataset": [spellings[-1]]}).dataset == spellings[0]
    from_file = run_dir("random-labels", file_data={"dataset": spellings[-1]})
    assert from_file == run_dir("random-labels", set_items=[f"dataset={spellings[0]}"])


def test_dataset_lists_are_canonical_too():
    assert run_dir("fit-task", options={"dataset": ["MNIST", "CIFAR-10"]}) == run_dir("fit-task", options={"dataset": ["mnist", "cifar10"]})
    with pytest.raises(ConfigError, match="datasets must be distinct"):
        resolve("fit-task", options={"dataset": ["MNIST", "mnist"]})


def test_default_dataset_spelled_out_is_the_default_run():
    assert run_dir("interpolation", options={"dataset": ["MNIST-5K"]}) == run_dir("interpolation")


def test_unknown_dataset_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'; known: mnist"):
        resolve("sensitivity", options={"dataset": ["nope"]})


def test_seed_shifts_the_seeds_in_one_build():
    assert resolve("fit-function").seeds == (0, 1)  # the smoke profile's
    config = resolve("fit-function", options={"seed": "5"})
    assert (config.seed, config.seeds) == (5, (5, 6))  # same count as the profile's
    assert resolve("fit-function", options={"seed": "2", "seeds": "3"}).seeds == (2, 3, 4)
    assert resolve("fit-function", options={"seed": "2", "seeds": "7,9"}).seeds == (7, 9)  # a list is taken as given
    assert resolve("fit-function", options={"seeds": "3"}, set_items=["seed=4"]).seeds == (4, 5, 6)  # S: the resolved seed
    assert resolve("fit-function", options={"seeds": "3"}, set_items=["seeds=8"]).seeds == (8,)  # --set wins
    assert resolve("critical-points", options={"seed": "3"}).seed == 3  # no seeds field: only the seed


def test_layers_profile_file_and_command_line():
    config = resolve("interpolation", file_data={"epochs": 4, "interpolation": {"seeds": [3]}},
                     field_values={"epochs": "5"}, set_items=["num-alphas=70"])
    assert (config.epochs, config.seeds, config.num_alphas, config.train_size) == (5, (3,), 70, 600)
    assert resolve("interpolation", field_values={"epochs": "5"}, set_items=["epochs=6"]).epochs == 6  # --set last


def test_run_all_takes_each_shared_key_where_it_exists():
    configs = resolve_configs(all_experiments(), RunRequest(profile="smoke", file_data={"max-epochs": 7, "epochs": 8},
                                                            set_items=["budget=400"]), NAMES)
    by_name = dict(zip((e.name for e in all_experiments()), configs))
    assert by_name["fit-function"].max_epochs == 7 and by_name["fit-function"].budget == 400
    assert by_name["interpolation"].epochs == 8 and not hasattr(by_name["interpolation"], "budget")


@pytest.mark.parametrize("request_values, message", [
    ({"set_items": ["epochs"]}, "--set expects KEY=VALUE, got 'epochs'"),
    ({"set_items": ["nokey=1"]}, "--set nokey: no such config field in interpolation"),
    ({"options": {"seeds": "0"}}, "--seeds count must be >= 1"),
    ({"options": {"seeds": "x"}}, "--seeds expects a count N or a list like 0,1,2, got 'x'"),
    ({"options": {"seed": "x", "seeds": "3"}}, "invalid value 'x' for seed"),
    ({"options": {"function": ["sinc"]}}, "--function: interpolation has no such setting"),
    ({"options": {"dataset": ["mnist", "cifar10"]}}, "--dataset was given 2 times"),
    ({"file_data": {"epochz": 1}}, "unknown config file key 'epochz'"),
    ({"file_data": {"interpolation": {"epochz": 1}}}, "unknown config file key 'epochz' for interpolation"),
    ({"file_data": {"nope": {"epochs": 1}}}, "config file table [nope] is not an experiment"),
])
def test_mistakes_are_one_line_config_errors(request_values, message):
    with pytest.raises(ConfigError) as info:
        resolve("interpolation", **request_values)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_shared_fields_have_one_help_and_one_set_of_bounds():
    """Each knob several experiments share is declared once (config_fields.py): the same bounds and choices
    everywhere, and help texts that differ only by their context words."""
    shared = ("activation", "learning_rate", "batch_size", "train_size", "test_size", "dataset", "seeds", "optimizer")
    for name in shared:
        declared = [f for e in all_experiments() for f in fields(e.config_class) if f.name == name]
        assert len(declared) >= 2, name
        bounds = {(f.metadata["minimum"], f.metadata["maximum"], f.metadata["choices"], f.metadata["check"]) for f in declared}
        assert len(bounds) == 1, (name, bounds)


def test_every_profile_satisfies_the_bounds():
    """A bound that rejects what a profile sets would be a bug: every profile of every experiment resolves."""
    for experiment in all_experiments():
        for profile in experiment.profiles:
            resolve(experiment.name, profile=profile)
