"""Run store (atomic writes, trials, checkpoints) and configuration (types, bounds, hashes, files)."""

import json
import os
from dataclasses import dataclass

import pytest
import torch

from dlprobe.config import ExperimentConfig, build_config, load_config_file, param
from dlprobe.errors import ConfigError, RunDirError
from dlprobe.store import RunDir, atomic_torch_save, atomic_write_text, dumps_json, load_checkpoint


@dataclass(frozen=True)
class DemoConfig(ExperimentConfig):
    epochs: int = param(10, "epochs", minimum=1)
    widths: tuple[int, ...] = param((4, 8), "widths", minimum=1)
    lr: float = param(1e-3, "learning rate", minimum=1e-9)
    batch_size: int | None = param(None, "batch size", minimum=1)
    activation: str = param("relu", "activation", choices=("relu", "tanh"))
    flag: bool = param(False, "a switch")


def test_build_config_layers_profile_file_and_cli():
    config = build_config(DemoConfig, {"epochs": 5}, {"lr": 0.01}, {"widths": "3,4", "batch_size": "none", "flag": "true"}, "demo")
    assert (config.epochs, config.widths, config.lr, config.batch_size, config.flag) == (5, (3, 4), 0.01, None, True)
    assert build_config(DemoConfig, {}, {}, {"epochs": "1e3"}, "demo").epochs == 1000


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": "-3"}, "epochs must be >= 1"),
        ({"epochs": "2.5"}, "expected int"),
        ({"epochs": "ten"}, "expected int"),
        ({"epochs": True}, "expected int"),
        ({"lr": "nan"}, "expected float"),
        ({"lr": "0"}, "lr must be >="),
        ({"widths": "4,-1"}, "widths must be >= 1"),
        ({"activation": "swish"}, "choose one of"),
        ({"flag": "maybe"}, "expected bool"),
        ({"unknown_key": 1}, "unknown command line key 'unknown_key'"),
    ],
)
def test_bad_values_are_one_line_config_errors(values, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_config(DemoConfig, {}, {}, values, "demo")
    assert "\n" not in str(info.value)


def test_identity_hash_ignores_defaults_and_device():
    assert DemoConfig().identity_hash() == DemoConfig(device="cpu").identity_hash()
    assert DemoConfig().identity_hash() != DemoConfig(epochs=11).identity_hash()


def test_config_files_toml_and_json(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('epochs = 3\n[fit-function]\nbudget = 500\n')
    assert load_config_file(toml) == {"epochs": 3, "fit-function": {"budget": 500}}
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"epochs": 4}))
    assert load_config_file(js) == {"epochs": 4}
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.toml")


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path):
    target = tmp_path / "x.pt"
    atomic_write_text(target, "old")

    class Boom:
        def __reduce__(self):
            raise RuntimeError("fails half way")

    with pytest.raises(Exception):
        atomic_torch_save({"a": torch.ones(3), "b": Boom()}, target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]  # no temp file left behind


def test_trials_are_computed_once_and_reused(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    calls = []

    def compute():
        calls.append(1)
        return {"loss": torch.tensor([1.0, 2.0]), "name": "a", "values": [1, 2.5]}

    first = run_dir.trial("t1", compute)
    second = run_dir.trial("t1", compute)
    assert len(calls) == 1
    assert torch.equal(first["loss"], second["loss"]) and second["values"] == [1, 2.5]


def test_checkpoints_refuse_code_and_damage(tmp_path):
    path = tmp_path / "evil.pt"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"x": Payload()}, path)
    with pytest.raises(RunDirError, match="cannot load checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()
    truncated = tmp_path / "trunc.pt"
    atomic_torch_save({"w": torch.ones(100)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:50])
    with pytest.raises(RunDirError):
        load_checkpoint(truncated)


def test_json_is_deterministic_and_standard():
    text = dumps_json({"b": float("nan"), "a": (1, 2.5), "c": torch.tensor(3.0)})
    assert json.loads(text) == {"a": [1, 2.5], "b": None, "c": 3.0}
    assert text == dumps_json({"c": torch.tensor(3.0), "a": [1, 2.5], "b": float("nan")})
