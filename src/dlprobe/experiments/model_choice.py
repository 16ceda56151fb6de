"""dlprobe's own model or the user's (`--model FILE.py:FUNCTION`): building, training and describing either.

    user = single_user_model(config)                        # UserModelSpec or None (config.model == ())
    model = user_or_builtin(user, lambda: build_mlp(spec, generator), input_shape=(1, 28, 28), num_outputs=10, seed=0)
    result = train_seeded(model, data, train_spec, seed=0, ...)   # the ordinary loop, torch's global RNG seeded (dropout)
    ctx.describe_model("model", model, x[:2], "loop", **user_details(user))

A user model always trains with the ordinary loop (training/loop.py), one model at a time; dlprobe's own MLPs
keep the ensemble fast path where an experiment has one. Every run records which path each model took
(summary.json's layer_tables.<name>.training, and `training_path` where an experiment states it).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..models.user import UserModelSpec, build_user_model, model_digest, model_source, parse_model_spec
from ..training.loop import train

TRAINING_PATHS = {
    "ensemble": "dlprobe's own MLPs, all seeds trained together as one stacked module (training/ensemble.py)",
    "loop": "the ordinary training loop, one model at a time (training/loop.py)",
}


def user_models(config) -> list[UserModelSpec]:
    """The config's user models (config.model), parsed; [] when the experiment uses its own."""
    return [parse_model_spec(text) for text in getattr(config, "model", ())]


def single_user_model(config) -> UserModelSpec | None:
    """The one user model of an experiment that trains one architecture, or None."""
    specs = user_models(config)
    if len(specs) > 1:  # the experiment's validate() says so first; this guards a config built by hand
        raise ConfigError(f"this experiment takes one --model, got {len(specs)}")
    return specs[0] if specs else None


def check_one_model(models: tuple[str, ...], experiment: str) -> None:
    """For validate(): an experiment that trains one architecture takes at most one --model."""
    if len(models) > 1:
        raise ConfigError(f"{experiment} trains one architecture: give --model once, got {len(models)}")


def user_or_builtin(user: UserModelSpec | None, builtin: Callable[[], nn.Module], *, input_shape, num_outputs: int,
                    seed: int, size: int | None = None, device="cpu") -> nn.Module:
    """builtin() when user is None, else the user's factory called with these arguments (checked, models/user.py)."""
    if user is None:
        return builtin().to(device)
    return build_user_model(user, input_shape=input_shape, num_outputs=num_outputs, seed=seed, size=size, device=device)


def train_seeded(model: nn.Module, data, spec, seed: int, **options):
    """training.loop.train with torch's global RNG seeded from (seed, epoch) at every epoch (dropout masks and any other
    random layer draw from it; a resumed run draws what a straight one does), the caller's RNG state kept."""
    with torch.random.fork_rng(devices=[data.x_train.device] if data.x_train.is_cuda else []):
        return train(model, data, spec, seed=seed, reseed_global_rng=True, **options)


def user_details(user: UserModelSpec | None, **arguments) -> dict:
    """What a layer table records about where a model came from: dlprobe's own, or the user's file, content hash
    and the arguments its factory got."""
    if user is None:
        return {"source": "dlprobe"}
    return {"source": "user", "model": user.text, "file": str(model_source(user)), "sha256": model_digest(user),
            "arguments": {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}}


def model_name(user: UserModelSpec | None, builtin: str) -> str:
    """The model as summaries and figure titles name it: 'models.py:make_cnn' or dlprobe's own description."""
    return builtin if user is None else user.text


def final_value(values: list[float], status: str) -> float:
    """A seed's last logged value of a metric, NaN unless its run finished ("ok"): a diverged run never counts as a
    result (nor wins a learning-rate search), as in the ensemble trainer's final values."""
    return values[-1] if status == "ok" and values else float("nan")


def num_params(model: nn.Module) -> int:
    """Exact parameter count: every parameter tensor once."""
    return sum(p.numel() for p in model.parameters())
