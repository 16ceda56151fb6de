"""What both trainers record: evaluations and weight snapshots at epoch boundaries, per-update losses and
gradient norms, and the stopping rule.

    recorder = Recorder(train_spec, state, data, runs=["0"], evaluate=evaluate_one, snapshot=copy_weights)
    for epoch in range(state.epoch, train_spec.epochs):
        metrics = recorder.at_epoch(epoch)                  # the weights after `epoch` epochs
        ... each update: recorder.at_iteration(losses, grad_norms) before the optimizer steps ...
    final = recorder.at_epoch(state.epoch, last=True)       # the weights training ends with

Records describe the weights *before* the next update, as in open_lth: the boundary record of epoch e is the
model after e epochs, an iteration record at step t is measured on batch t before update t. At the boundary
of epoch e the recorder
- evaluates train and test (`evaluate(x, y) -> {name: value}`, logged as train_<name>, test_<name>) when e
  is a multiple of eval_every or of snapshot_every, is listed in snapshot_at, or at the last boundary;
- logs, for every run, "epoch" and the metrics at step `state.step` when e is a multiple of eval_every or
  at the last boundary;
- keeps `snapshot()` and its metrics when e is a multiple of snapshot_every (then also at the last boundary)
  or is listed in snapshot_at;
- feeds every evaluated train loss to the stopping rule (when stop_patience > 0): a model has converged at
  the first evaluated epoch that is stop_patience or more epochs after its train loss last improved by more
  than stop_rel_improvement (relative). With max_lr_decays, the rule firing first calls `on_plateau(index)`
  (the trainer multiplies that model's learning rate by lr_decay), records the epoch in state.lr_decays and
  starts the rule over, up to max_lr_decays times; only the rule firing after the last decay is convergence.
  `all_converged` tells the ensemble trainer when to stop; the plain loop does not stop early.
Values are floats for one model and (M,) tensors for an ensemble of M (runs names them, one per model; an
empty runs logs nothing). All of it is kept in the TrainState, so a checkpoint carries it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from .state import TrainState

if TYPE_CHECKING:
    from ..data.tensors import TensorData
    from .loop import TrainSpec


class Recorder:
    def __init__(self, spec: TrainSpec, state: TrainState, data: TensorData, runs: list[str],
                 evaluate: Callable[[torch.Tensor, torch.Tensor], dict], snapshot: Callable[[], object],
                 on_plateau: Callable[[int], None] | None = None):
        if spec.max_lr_decays and on_plateau is None:
            raise ValueError("max_lr_decays needs an on_plateau callback that decays the learning rate")
        self.spec, self.state, self.data, self.runs = spec, state, data, runs
        self.evaluate, self.snapshot, self.on_plateau = evaluate, snapshot, on_plateau

    @property
    def records_iterations(self) -> bool:
        """Whether the trainer should measure and pass per-update losses and gradient norms."""
        return self.spec.record_iterations and bool(self.runs)

    def at_epoch(self, epoch: int, last: bool = False) -> dict:
        """The boundary records of `epoch` (see the module docstring); returns the metrics ({} if none)."""
        spec, state = self.spec, self.state
        logged = epoch % spec.eval_every == 0 or last
        snapshot = (bool(spec.snapshot_every) and (epoch % spec.snapshot_every == 0 or last)) or epoch in spec.snapshot_at
        metrics = {}
        if logged or snapshot:
            splits = {"train": (self.data.x_train, self.data.y_train), "test": (self.data.x_test, self.data.y_test)}
            for split, (x, y) in splits.items():
                for name, value in self.evaluate(x, y).items():
                    metrics[f"{split}_{name}"] = value
            self._update_stopping(epoch, _per_run(metrics["train_loss"]))
        if logged:
            per_run = {name: _per_run(values) for name, values in metrics.items()}
            for index, run in enumerate(self.runs):
                state.log.add(run, state.step, "epoch", epoch)
                for name, values in per_run.items():
                    state.log.add(run, state.step, name, values[index])
        if snapshot:
            state.snapshots.append(self.snapshot())
            state.snapshot_epochs.append(epoch)
            state.snapshot_metrics.append(metrics)
        return metrics

    def at_iteration(self, losses: list[float], grad_norms: list[float]) -> None:
        """Per run: the loss of the batch and the gradient norm, at step `state.step` (before the update)."""
        for run, loss, norm in zip(self.runs, losses, grad_norms):
            self.state.log.add(run, self.state.step, "iteration_loss", loss)
            self.state.log.add(run, self.state.step, "grad_norm", norm)

    def all_converged(self, alive: torch.Tensor) -> bool:
        """The stopping rule has fired for every model still training (alive: (M,) bool)."""
        if not self.spec.stop_patience:
            return False
        return all(epoch is not None or not training for epoch, training in zip(self.state.converged, alive.tolist()))

    def _update_stopping(self, epoch: int, train_losses: list[float]) -> None:
        spec, state = self.spec, self.state
        if not spec.stop_patience:
            return
        for index, value in enumerate(train_losses):
            if value < state.best_loss[index] * (1 - spec.stop_rel_improvement):
                state.best_loss[index] = value
                state.last_improved[index] = epoch
            elif state.converged[index] is None and epoch - state.last_improved[index] >= spec.stop_patience:
                if len(state.lr_decays[index]) < spec.max_lr_decays:
                    self.on_plateau(index)
                    state.lr_decays[index].append(epoch)
                    state.last_improved[index] = epoch
                else:
                    state.converged[index] = epoch


def _per_run(values) -> list[float]:
    """A float (one model) or an (M,) tensor -> one float per model."""
    return values.tolist() if isinstance(values, torch.Tensor) else [values]
