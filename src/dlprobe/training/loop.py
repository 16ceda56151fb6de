"""The plain training loop for one nn.Module (regression with MSE, classification with cross-entropy).

    result = train(model, data, TrainSpec(loss="cross_entropy", epochs=5, batch_size=64), seed=0)
    result.log.rows()   # (run, step, name, value) records

Each epoch visits the training set in the order `epoch_permutation(N, seed, epoch)`, one optimizer update
per batch. The Recorder (recorder.py) evaluates, logs and snapshots at the start of every epoch and once
more after the last, so epoch e's record is the model after e epochs; with record_iterations, the loss and
gradient norm of batch t are logged before update t. A loss that becomes NaN/inf ends training ("diverged
at step N"; no record after it). With a `checkpoint_path`, the TrainState (state.py) is saved every
`checkpoint_every` epochs and a later call resumes from it; since data order depends only on (seed, epoch),
a resumed run ends with the same weights as a straight one. TrainSpec serves the ensemble trainer
(ensemble.py) too; the data both train on is a data.tensors.TensorData.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data.tensors import TensorData
from ..losses import check_loss, per_example_loss
from .common import OptimizerSettings, batch_slices, epoch_permutation, make_optimizer
from .metrics import MetricLog
from .recorder import Recorder
from .state import TrainState


LR_SCHEDULES = ("constant", "cosine")


def scheduled_lr(base_lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """The learning rate of 0-based `epoch` of `epochs` under `schedule` (TrainSpec.lr_schedule)."""
    if schedule == "constant":
        return base_lr
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


@dataclass(frozen=True)
class TrainSpec:
    loss: str = "mse"
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    batch_size: int | None = None  # None: full batch
    epochs: int = 10
    eval_every: int = 1  # epochs between logged train/test evaluations (plus always the last epoch)
    record_iterations: bool = False  # per-iteration loss and gradient norm
    grad_norm_p: float = 2.0
    snapshot_every: int = 0  # epochs between weight snapshots; 0: none
    snapshot_at: tuple[int, ...] = ()  # further epochs with a snapshot (e.g. log-spaced stages of training)
    eval_batch_size: int = 4096
    # Stopping rule (the ensemble trainer stops on it; the plain loop does not): a model has converged when its
    # train loss has not improved by more than stop_rel_improvement (relative) over the last stop_patience
    # epochs; training stops when all models have. 0 disables it. Checked at evaluation epochs (recorder.py).
    stop_patience: int = 0
    stop_rel_improvement: float = 1e-3
    # Learning-rate decay on plateau (ensemble trainer only): when the stopping rule fires for a model that has
    # been decayed fewer than max_lr_decays times, its learning rate is multiplied by lr_decay and its rule starts
    # over; it has converged when the rule fires at its last learning rate. 0 decays: the plain stopping rule.
    lr_decay: float = 0.1
    max_lr_decays: int = 0
    # Learning-rate schedule of the plain loop: "constant", or "cosine": epoch e (0-based) trains at
    # lr * (1 + cos(pi * e / epochs)) / 2, from lr down to nearly 0 in the last epoch (set per epoch, so a resumed
    # run follows the same schedule).
    lr_schedule: str = "constant"

    def __post_init__(self):
        check_loss(self.loss)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.max_lr_decays and not (0.0 < self.lr_decay < 1.0 and self.stop_patience):
            raise ValueError("learning-rate decay needs 0 < lr_decay < 1 and a stopping rule (stop_patience > 0)")


@dataclass
class TrainResult:
    status: str  # "ok" or "diverged at step N"
    epochs_done: int
    steps_done: int
    log: MetricLog
    snapshots: list[dict[str, torch.Tensor]]  # state dicts on CPU, one per snapshot epoch
    snapshot_epochs: list[int]
    snapshot_metrics: list[dict[str, float]]  # per snapshot: train_/test_ loss (and accuracy)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, batch_size: int = 4096) -> dict[str, float]:
    """Mean loss (and accuracy for classification) over (x, y) in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        output = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        total_loss += per_example_loss(output, target, loss).double().sum().item()
        if loss == "cross_entropy":
            correct += (output.argmax(dim=-1) == target).sum().item()
    model.train(was_training)
    metrics = {"loss": total_loss / len(x)}
    if loss == "cross_entropy":
        metrics["accuracy"] = correct / len(x)
    return metrics


def grad_norm(parameters, p: float) -> float:
    """p-norm of all gradients concatenated (p = inf allowed)."""
    grads = [q.grad.detach().flatten() for q in parameters if q.grad is not None]
    return torch.linalg.vector_norm(torch.cat(grads), ord=p).item()


def train(
    model: nn.Module,
    data: TensorData,
    spec: TrainSpec,
    seed: int,
    run: str = "0",
    checkpoint_path: Path | None = None,
    checkpoint_every: int = 1,
    progress=None,
    reseed_global_rng: bool = False,
) -> TrainResult:
    """Train `model` in place. `seed` fixes the data order; the caller fixed the initial weights.
    reseed_global_rng: seed torch's global RNG from (seed, epoch) at the start of every epoch, so random layers
    (dropout) draw the same numbers in a resumed run as in a straight one (user models; dlprobe's own have none)."""
    if spec.max_lr_decays:
        raise ValueError("learning-rate decay on plateau is the ensemble trainer's (train_ensemble)")
    optimizer = make_optimizer(model.parameters(), spec.optimizer)
    state = TrainState(model, optimizer)
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state.restore(checkpoint_path)
    recorder = Recorder(spec, state, data, runs=[run],
                        evaluate=lambda x, y: evaluate(model, x, y, spec.loss, spec.eval_batch_size),
                        snapshot=lambda: {name: value.detach().cpu().clone() for name, value in model.state_dict().items()})
    model.train()
    for epoch in range(state.epoch, spec.epochs):
        recorder.at_epoch(epoch)
        if spec.lr_schedule != "constant":
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(spec.optimizer.lr, spec.lr_schedule, epoch, spec.epochs)
        if reseed_global_rng:
            torch.manual_seed(seed * 1_000_003 + epoch + 1)
        order = epoch_permutation(len(data.x_train), seed, epoch, data.x_train.device)
        for batch in batch_slices(len(order), spec.batch_size):
            index = order[batch]
            loss = per_example_loss(model(data.x_train[index]), data.y_train[index], spec.loss).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                state.status[0] = f"diverged at step {state.step}"
                break
            if recorder.records_iterations:
                recorder.at_iteration([loss_value], [grad_norm(model.parameters(), spec.grad_norm_p)])
            optimizer.step()
            state.step += 1
        if state.status[0] != "ok":
            break
        state.epoch = epoch + 1
        if progress is not None:
            progress.update(1)
        state.save_if_due(checkpoint_path, checkpoint_every, spec.epochs)
    if state.status[0] == "ok":
        recorder.at_epoch(spec.epochs, last=True)
    return TrainResult(state.status[0], state.epoch, state.step, state.log, state.snapshots, state.snapshot_epochs,
                       state.snapshot_metrics)
