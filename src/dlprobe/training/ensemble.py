"""Train M MLPs of one architecture at once: the fast path for seeds and repeated runs.

    result = train_ensemble(spec, seeds=range(100), data=data, train_spec=TrainSpec(epochs=300), lrs=None)
    result.final["train_loss"]   # (M,) tensor

The M models are one EnsembleMLP (models/ensemble_mlp.py, stacked weights, one batched kernel per layer).
Model m starts from exactly the weights
`build_mlp(spec, Generator().manual_seed(seeds[m]))` has, sees its own data order
(`epoch_permutation(N, seeds[m], epoch)`), and its loss is its own mean loss; the summed loss gives each
model its own gradient, and Adam/SGD are elementwise, so every model follows the trajectory it would
follow alone (tests check this against the plain loop). Each model may have its own learning rate.
A model whose loss becomes NaN/inf is marked diverged and frozen; the others continue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import RunDirError
from ..losses import per_example_loss
from ..models.ensemble_mlp import EnsembleMLP
from ..models.mlp import MLPSpec
from ..store import atomic_torch_save, load_checkpoint
from .common import batch_slices, epoch_permutation
from .ensemble_optim import EnsembleOptimizer
from .ensemble_step import StepBuffers, loss_and_gradients, supports
from .loop import TensorData, TrainSpec
from .metrics import MetricLog


@dataclass
class EnsembleResult:
    model: EnsembleMLP
    status: list[str]  # per model: "ok" or "diverged at step N"
    log: MetricLog  # run = str(model index)
    final: dict[str, torch.Tensor]  # metric name -> (M,) values after training (NaN for diverged models)
    snapshots: list[torch.Tensor]  # each (M, P) flat weights
    snapshot_epochs: list[int]
    snapshot_metrics: list[dict[str, torch.Tensor]]  # per snapshot: name -> (M,)
    epochs_done: int = 0
    converged_epoch: list[int | None] | None = None  # per model: epoch the stopping rule fired (None: never)


@torch.no_grad()
def evaluate_ensemble(model: EnsembleMLP, x, y, loss: str, batch_size: int = 4096) -> dict[str, torch.Tensor]:
    """Per-model mean loss (and accuracy) over a dataset shared by all models: name -> (M,)."""
    total = torch.zeros(model.num_models, dtype=torch.float64, device=x.device)
    correct = torch.zeros(model.num_models, dtype=torch.float64, device=x.device)
    for start in range(0, len(x), batch_size):
        output = model(x[start : start + batch_size], shared=True, fast=True)  # (M, B, K)
        target = y[start : start + batch_size].unsqueeze(0).expand(model.num_models, *y[start : start + batch_size].shape)
        total += per_example_loss(output, target, loss).double().sum(dim=1)
        if loss == "cross_entropy":
            correct += (output.argmax(dim=-1) == target).double().sum(dim=1)
    metrics = {"loss": (total / len(x)).cpu()}
    if loss == "cross_entropy":
        metrics["accuracy"] = (correct / len(x)).cpu()
    return metrics


def train_ensemble(
    spec: MLPSpec,
    seeds,
    data: TensorData,
    train_spec: TrainSpec,
    lrs=None,
    device="cpu",
    progress=None,
    record_runs: bool = True,
    checkpoint_path=None,
    checkpoint_every: int = 1,
    manual_backward: bool = True,
) -> EnsembleResult:
    """Train len(seeds) MLPs together; `lrs` (M,) overrides train_spec.optimizer.lr per model.

    With `checkpoint_path`, everything that changes (weights, optimizer moments, statuses, records,
    snapshots, the stopping rule's memory) is saved atomically every `checkpoint_every` epochs and a later
    call resumes from it, ending with the same numbers as a straight run.
    manual_backward: use the hand-written backward of ensemble_step.py where it applies (tanh/relu/sigmoid);
    False forces autograd (the tests' reference)."""
    seeds = [int(s) for s in seeds]
    num_models = len(seeds)
    data = data.to(device)
    model = EnsembleMLP(spec, seeds).to(device)
    if lrs is None:
        lrs = [train_spec.optimizer.lr] * num_models
    optimizer = EnsembleOptimizer(model.parameters(), train_spec.optimizer, torch.as_tensor(lrs, dtype=torch.float64, device=device))
    alive = torch.ones(num_models, dtype=torch.bool, device=device)
    status = ["ok"] * num_models
    log = MetricLog()
    snapshots, snapshot_epochs, snapshot_metrics = [], [], []
    num_train = len(data.x_train)
    flat_x = data.x_train.reshape(num_train, -1)
    step = 0
    spec_t = train_spec
    best_loss = torch.full((num_models,), float("inf"), dtype=torch.float64)
    last_improved = [0] * num_models
    converged: list[int | None] = [None] * num_models

    def update_convergence(epoch: int, train_loss: torch.Tensor) -> None:
        for index in range(num_models):
            value = train_loss[index].item()
            if value < best_loss[index] * (1 - spec_t.stop_rel_improvement):
                best_loss[index] = value
                last_improved[index] = epoch
            elif converged[index] is None and epoch - last_improved[index] >= spec_t.stop_patience:
                converged[index] = epoch

    def epoch_boundary(epoch: int, last: bool = False) -> dict[str, torch.Tensor]:
        metrics: dict[str, torch.Tensor] = {}
        if epoch % spec_t.eval_every == 0 or last or (spec_t.snapshot_every and epoch % spec_t.snapshot_every == 0):
            for split, (x, y) in {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}.items():
                for name, values in evaluate_ensemble(model, x, y, spec_t.loss, spec_t.eval_batch_size).items():
                    metrics[f"{split}_{name}"] = torch.where(alive.cpu(), values, torch.nan)
            if spec_t.stop_patience:
                update_convergence(epoch, metrics["train_loss"])
            if record_runs and (epoch % spec_t.eval_every == 0 or last):
                for index in range(num_models):
                    log.add(str(index), step, "epoch", epoch)
                    for name, values in metrics.items():
                        log.add(str(index), step, name, values[index].item())
        if spec_t.snapshot_every and (epoch % spec_t.snapshot_every == 0 or last):
            snapshots.append(model.flat_params().cpu().clone())
            snapshot_epochs.append(epoch)
            snapshot_metrics.append(metrics)
        return metrics

    epochs_done, final, start_epoch = 0, None, 0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        saved = load_checkpoint(checkpoint_path)
        _check_ensemble_checkpoint(saved, model, checkpoint_path)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        alive.copy_(saved["alive"])
        status[:] = saved["status"]
        log = MetricLog.from_state(saved["log"])
        snapshots[:], snapshot_epochs[:], snapshot_metrics[:] = saved["snapshots"], saved["snapshot_epochs"], saved["snapshot_metrics"]
        best_loss.copy_(saved["best_loss"])
        last_improved[:], converged[:] = saved["last_improved"], saved["converged"]
        start_epoch = epochs_done = saved["epoch"]
        step = saved["step"]
    manual = manual_backward and supports(spec.activation, spec_t.loss)
    buffers = StepBuffers()  # the hand-written step's scratch memory, for this run only
    for epoch in range(start_epoch, spec_t.epochs):
        metrics = epoch_boundary(epoch)
        if spec_t.stop_patience and all(c is not None or not a for c, a in zip(converged, alive.tolist())):
            final = metrics  # every model has converged: this boundary is the end of training
            break
        if spec_t.batch_size and spec_t.batch_size < num_train:
            orders = torch.stack([epoch_permutation(num_train, seed, epoch) for seed in seeds]).to(device)  # (M, N)
        else:
            orders = None  # full batch: every model sees all examples; order does not change the mean
        for batch in batch_slices(num_train, spec_t.batch_size):
            if orders is None:
                x = flat_x
                target = data.y_train.unsqueeze(0).expand(num_models, *data.y_train.shape)
            else:
                index = orders[:, batch]  # (M, B)
                x = flat_x[index]  # (M, B, D)
                target = data.y_train[index]
            if manual:  # the hand-written backward (ensemble_step.py): same gradients, less overhead
                losses = loss_and_gradients(model, x, target, spec_t.loss, orders is None, alive, buffers)  # (M,)
            else:
                output = model(x, shared=orders is None, fast=True)
                losses = per_example_loss(output, target, spec_t.loss).mean(dim=1)  # (M,)
            finite = torch.isfinite(losses.detach())
            newly_failed = alive & ~finite
            if newly_failed.any():
                for index in newly_failed.nonzero().flatten().tolist():
                    status[index] = f"diverged at step {step}"
                alive &= finite
            if not manual:
                for p in model.parameters():
                    p.grad = None
                torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
            if not alive.all():
                for p in model.parameters():  # freeze diverged models: no gradient, no optimizer motion
                    p.grad[~alive] = 0
            if spec_t.record_iterations and record_runs:
                norms = ensemble_grad_norm(model, spec_t.grad_norm_p)
                for index in range(num_models):
                    log.add(str(index), step, "iteration_loss", losses[index].item())
                    log.add(str(index), step, "grad_norm", norms[index].item())
            frozen = [p.detach()[~alive].clone() for p in model.parameters()] if not alive.all() else None
            optimizer.step()
            if frozen is not None:
                with torch.no_grad():
                    for p, saved in zip(model.parameters(), frozen):
                        p[~alive] = saved
            step += 1
        epochs_done = epoch + 1
        if progress is not None:
            progress.update(1)
        if not alive.any():
            break
        if checkpoint_path is not None and epochs_done % checkpoint_every == 0 and epochs_done < spec_t.epochs:
            atomic_torch_save(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "alive": alive.cpu(), "status": list(status),
                 "log": log.state(), "snapshots": snapshots, "snapshot_epochs": snapshot_epochs, "snapshot_metrics": snapshot_metrics,
                 "best_loss": best_loss, "last_improved": list(last_improved), "converged": list(converged),
                 "epoch": epochs_done, "step": step},
                checkpoint_path,
            )
    if final is None:
        final = epoch_boundary(epochs_done, last=True)
    return EnsembleResult(model, status, log, final, snapshots, snapshot_epochs, snapshot_metrics, epochs_done, converged)


def _check_ensemble_checkpoint(saved, model: EnsembleMLP, path) -> None:
    """A checkpoint of another ensemble (size, architecture) is refused with a one-line error."""
    own = model.state_dict()
    ok = isinstance(saved, dict) and isinstance(saved.get("model"), dict) and saved["model"].keys() == own.keys() and all(
        getattr(saved["model"][k], "shape", None) == v.shape for k, v in own.items())
    if not ok:
        raise RunDirError(f"checkpoint {path} does not match this ensemble; rerun with --fresh")


def ensemble_grad_norm(model: EnsembleMLP, p: float = 2.0) -> torch.Tensor:
    """(M,) p-norm of each model's gradient over all its parameters."""
    grads = torch.cat([q.grad.reshape(model.num_models, -1) for q in model.parameters()], dim=1)
    return torch.linalg.vector_norm(grads, ord=p, dim=1)
