"""Everything that changes while one model (or an ensemble of M) trains, saved and restored as one file.

    state = TrainState(model, optimizer, num_models=1)
    if checkpoint_path is not None and checkpoint_path.exists():
        state.restore(checkpoint_path)       # RunDirError (one line) when the file is another model's
    ... the trainer advances state.epoch and state.step; its Recorder writes log, snapshots, stopping memory ...
    state.save_if_due(checkpoint_path, every=1, epochs=spec.epochs)

Both trainers keep here what a resumed run needs: the weights and optimizer moments (through the model's
and optimizer's own state_dict), epochs and updates done, each model's status, the metric log, the weight
snapshots with their metrics, and the stopping rule's memory (recorder.py). The file holds tensors and
plain data only, written atomically (store.atomic_torch_save) and read with weights_only=True
(store.load_checkpoint). Since data order depends only on (seed, epoch), a resumed run ends with the same
numbers as a straight one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import RunDirError
from ..store import atomic_torch_save, load_checkpoint
from .metrics import MetricLog

# Saved as they are (plain data, or tensors in the snapshots); the log is saved as MetricLog.state().
_PLAIN = ("epoch", "step", "status", "snapshots", "snapshot_epochs", "snapshot_metrics", "best_loss", "last_improved",
          "converged", "lr_decays")


@dataclass(eq=False)
class TrainState:
    """A trainer's model, optimizer and records (see the module docstring); M = num_models."""

    model: nn.Module
    optimizer: Any  # a torch.optim.Optimizer or an EnsembleOptimizer: anything with state_dict/load_state_dict
    num_models: int = 1
    epoch: int = 0  # epochs completed
    step: int = 0  # updates done
    log: MetricLog = field(default_factory=MetricLog)
    snapshots: list = field(default_factory=list)  # the trainer's snapshot of the weights, one per snapshot epoch
    snapshot_epochs: list[int] = field(default_factory=list)
    snapshot_metrics: list[dict] = field(default_factory=list)  # per snapshot: name -> value(s), as evaluated
    # Per model (lists of num_models): "ok" or "diverged at step N", and the stopping rule's memory.
    status: list[str] = field(init=False)
    best_loss: list[float] = field(init=False)  # lowest train loss that counted as an improvement
    last_improved: list[int] = field(init=False)  # epoch of that improvement
    converged: list[int | None] = field(init=False)  # epoch the stopping rule fired (None: not yet)
    lr_decays: list[list[int]] = field(init=False)  # epochs at which the model's learning rate was decayed

    def __post_init__(self):
        self.status = ["ok"] * self.num_models
        self.best_loss = [math.inf] * self.num_models
        self.last_improved = [0] * self.num_models
        self.converged = [None] * self.num_models
        self.lr_decays = [[] for _ in range(self.num_models)]

    def save(self, path: Path) -> None:
        plain = {name: getattr(self, name) for name in _PLAIN}
        checkpoint = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "log": self.log.state()}
        atomic_torch_save({**checkpoint, **plain}, path)

    def save_if_due(self, path: Path | None, every: int, epochs: int) -> None:
        """Save after every `every`-th epoch, but not after the last (the trainer's result follows it)."""
        if path is not None and self.epoch % every == 0 and self.epoch < epochs:
            self.save(path)

    def restore(self, path: Path) -> None:
        """Load a checkpoint written by `save`; one of another model, size or format is a RunDirError."""
        saved = load_checkpoint(path)
        mismatch = f"checkpoint {path} does not match this model; rerun with --fresh"
        if not self._matches(saved):
            raise RunDirError(mismatch)
        try:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.log = MetricLog.from_state(saved["log"])
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError):  # e.g. another optimizer's moments
            raise RunDirError(mismatch) from None
        for name in _PLAIN:
            setattr(self, name, saved[name])

    def _matches(self, saved) -> bool:
        """A dict with every field, weights with this model's names and shapes, one status per model."""
        if not isinstance(saved, dict) or not {"model", "optimizer", "log", *_PLAIN} <= saved.keys():
            return False
        own, weights = self.model.state_dict(), saved["model"]
        return (
            isinstance(weights, dict)
            and weights.keys() == own.keys()
            and all(getattr(weights[name], "shape", None) == tensor.shape for name, tensor in own.items())
            and isinstance(saved["status"], list)
            and len(saved["status"]) == self.num_models
        )
