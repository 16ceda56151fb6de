"""The plain training loop for one nn.Module (regression with MSE, classification with cross-entropy).

    result = train(model, data, TrainSpec(loss="cross_entropy", epochs=5, batch_size=64), seed=0)
    result.log.rows()   # (step, name, value) records

Callbacks run *before* each update: a record at step t describes the weights before update t (the
per-iteration loss and gradient norm are measured on batch t, then the optimizer steps). Epoch-level
callbacks run at the start of every epoch and once more after the last one, so epoch e's record is the
model after e epochs. With a `checkpoint_path`, the loop saves model, optimizer, callbacks and epoch
atomically every `checkpoint_every` epochs and resumes from there; since data order depends only on
(seed, epoch), a resumed run ends with the same weights as a straight one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import RunDirError
from ..losses import check_loss, per_example_loss
from ..store import atomic_torch_save, load_checkpoint
from .common import OptimizerSettings, batch_slices, epoch_permutation, make_optimizer
from .metrics import MetricLog


@dataclass(frozen=True)
class TensorData:
    """Training and test tensors. x: (N, ...) inputs; y: (N, K) float targets (mse) or (N,) int classes."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device) -> "TensorData":
        return TensorData(*(t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)))


@dataclass(frozen=True)
class TrainSpec:
    loss: str = "mse"
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    batch_size: int | None = None  # None: full batch
    epochs: int = 10
    eval_every: int = 1  # epochs between train/test evaluations (plus always the last epoch)
    record_iterations: bool = False  # per-iteration loss and gradient norm
    grad_norm_p: float = 2.0
    snapshot_every: int = 0  # epochs between weight snapshots; 0: none
    eval_batch_size: int = 4096
    # Stopping rule (ensemble trainer): a model has converged when its train loss has not improved by more
    # than stop_rel_improvement (relative) over the last stop_patience epochs; training stops when all
    # models have. 0 disables it. Checked at evaluation epochs.
    stop_patience: int = 0
    stop_rel_improvement: float = 1e-3

    def __post_init__(self):
        check_loss(self.loss)


@dataclass
class TrainResult:
    status: str  # "ok" or "diverged at step N"
    epochs_done: int
    steps_done: int
    log: MetricLog
    snapshots: list[dict[str, torch.Tensor]]  # state dicts on CPU, one per snapshot epoch
    snapshot_epochs: list[int]
    snapshot_metrics: list[dict[str, float]]


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
) -> TrainResult:
    """Train `model` in place. `seed` fixes the data order; the caller fixed the initial weights."""
    optimizer = make_optimizer(model.parameters(), spec.optimizer)
    log = MetricLog()
    snapshots, snapshot_epochs, snapshot_metrics = [], [], []
    start_epoch, step, status = 0, 0, "ok"
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = load_checkpoint(checkpoint_path)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            log = MetricLog.from_state(state["log"])
            snapshots, snapshot_epochs, snapshot_metrics = state["snapshots"], state["snapshot_epochs"], state["snapshot_metrics"]
            start_epoch, step, status = state["epoch"], state["step"], state["status"]
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError):
            raise RunDirError(f"checkpoint {checkpoint_path} does not match this model; rerun with --fresh") from None

    def epoch_boundary(epoch: int) -> None:
        last = epoch == spec.epochs or status != "ok"
        metrics = {}
        if epoch % spec.eval_every == 0 or last:
            for split, (x, y) in {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}.items():
                for name, value in evaluate(model, x, y, spec.loss, spec.eval_batch_size).items():
                    metrics[f"{split}_{name}"] = value
            log.add(run, step, "epoch", epoch)
            for name, value in metrics.items():
                log.add(run, step, name, value)
        if spec.snapshot_every and (epoch % spec.snapshot_every == 0 or last):
            snapshots.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            snapshot_epochs.append(epoch)
            snapshot_metrics.append(metrics or {k: v for k, v in _train_metrics(model, data, spec).items()})

    model.train()
    for epoch in range(start_epoch, spec.epochs):
        epoch_boundary(epoch)
        order = epoch_permutation(len(data.x_train), seed, epoch, data.x_train.device)
        for batch in batch_slices(len(order), spec.batch_size):
            index = order[batch]
            output = model(data.x_train[index])
            loss = per_example_loss(output, data.y_train[index], spec.loss).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                status = f"diverged at step {step}"
                break
            if spec.record_iterations:
                log.add(run, step, "iteration_loss", loss_value)
                log.add(run, step, "grad_norm", grad_norm(model.parameters(), spec.grad_norm_p))
            optimizer.step()
            step += 1
        if status != "ok":
            break
        if progress is not None:
            progress.update(1)
        if checkpoint_path is not None and ((epoch + 1) % checkpoint_every == 0) and epoch + 1 < spec.epochs:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "log": log.state(),
                    "snapshots": snapshots,
                    "snapshot_epochs": snapshot_epochs,
                    "snapshot_metrics": snapshot_metrics,
                    "epoch": epoch + 1,
                    "step": step,
                    "status": status,
                },
                checkpoint_path,
            )
    epochs_done = spec.epochs if status == "ok" else epoch
    if status == "ok":
        epoch_boundary(spec.epochs)
    return TrainResult(status, epochs_done, step, log, snapshots, snapshot_epochs, snapshot_metrics)


def _train_metrics(model, data, spec):
    return {f"train_{k}": v for k, v in evaluate(model, data.x_train, data.y_train, spec.loss, spec.eval_batch_size).items()}
