"""Train M MLPs of one architecture at once: the fast path for seeds and repeated runs.

    result = train_ensemble(spec, seeds=range(100), data=data, train_spec=TrainSpec(epochs=300), lrs=None)
    result.final["train_loss"]   # (M,) tensor

The M models are one EnsembleMLP (models/ensemble_mlp.py, stacked weights, one batched kernel per layer).
Model m starts from exactly the weights `build_mlp(spec, Generator().manual_seed(seeds[m]))` has, sees its
own data order (`epoch_permutation(N, seeds[m], epoch)`), and its loss is its own mean loss; the summed loss
gives each model its own gradient, and Adam/SGD are elementwise (ensemble_optim.py), so every model follows
the trajectory it would follow alone (tests check this against the plain loop). Each model may have its own
learning rate. A model whose loss becomes NaN/inf is marked diverged and frozen; the others continue.
Training ends after train_spec.epochs, after the epoch in which the last model diverged, or at the first
epoch boundary where the stopping rule has fired for every model still training. Records, snapshots and the
stopping rule are the Recorder's (recorder.py), checkpoints the TrainState's (state.py), as in the plain
loop; where the hand-written step applies (ensemble_step.py), the trainer owns its StepBuffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from ..data.tensors import TensorData
from ..losses import per_example_loss
from ..models.ensemble_mlp import EnsembleMLP
from ..models.mlp import MLPSpec
from .common import batch_slices, epoch_permutation
from .ensemble_optim import EnsembleOptimizer
from .ensemble_step import StepBuffers, loss_and_gradients, supports
from .loop import TrainSpec
from .metrics import MetricLog
from .recorder import Recorder
from .state import TrainState


@dataclass
class EnsembleResult:
    model: EnsembleMLP
    status: list[str]  # per model: "ok" or "diverged at step N"
    log: MetricLog  # run = str(model index)
    final: dict[str, torch.Tensor]  # metric name -> (M,) values after training (NaN for diverged models)
    snapshots: list[torch.Tensor]  # each (M, P) flat weights
    snapshot_epochs: list[int]
    snapshot_metrics: list[dict[str, torch.Tensor]]  # per snapshot: name -> (M,)
    epochs_done: int
    converged_epoch: list[int | None]  # per model: epoch the stopping rule fired (None: never)
    lr_decays: list[list[int]]  # per model: epochs its learning rate was multiplied by train_spec.lr_decay
    learning_rates: list[float]  # per model: the learning rate training ended with


@torch.no_grad()
def evaluate_ensemble(model: EnsembleMLP, x, y, loss: str, batch_size: int, alive: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-model mean loss (and accuracy) over a dataset shared by all models: name -> (M,) on the CPU,
    NaN for the models not alive ((M,) bool)."""
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
    return {name: torch.where(alive.cpu(), values, torch.nan) for name, values in metrics.items()}


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

    record_runs=False logs nothing (result.final and the snapshots remain). With `checkpoint_path`, the
    TrainState is saved every `checkpoint_every` epochs and a later call resumes from it, ending with the
    same numbers as a straight run. manual_backward: use the hand-written backward of ensemble_step.py where
    it applies (tanh/relu/sigmoid); False forces autograd (the tests' reference)."""
    seeds = [int(s) for s in seeds]
    data = data.to(device)
    model = EnsembleMLP(spec, seeds).to(device)
    if train_spec.lr_schedule != "constant":
        raise ValueError("a learning-rate schedule is the plain loop's (train); the ensemble decays on plateau")
    lrs = [train_spec.optimizer.lr] * len(seeds) if lrs is None else lrs
    lrs = torch.as_tensor(lrs, dtype=torch.float64, device=device)  # (M,)
    optimizer = EnsembleOptimizer(model.parameters(), train_spec.optimizer, lrs)
    state = TrainState(model, optimizer, num_models=len(seeds))
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state.restore(checkpoint_path)
    alive = torch.tensor([status == "ok" for status in state.status], device=device)  # (M,), updated in place
    runs = [str(index) for index in range(len(seeds))] if record_runs else []
    recorder = Recorder(train_spec, state, data, runs,
                        evaluate=lambda x, y: evaluate_ensemble(model, x, y, train_spec.loss, train_spec.eval_batch_size, alive),
                        snapshot=lambda: model.flat_params().cpu().clone(),
                        on_plateau=partial(_decay_lr, optimizer, train_spec.lr_decay))
    buffers = StepBuffers() if manual_backward and supports(spec.activation, train_spec.loss) else None
    flat_x = data.x_train.reshape(len(data.x_train), -1)
    final = None
    for epoch in range(state.epoch, train_spec.epochs):
        metrics = recorder.at_epoch(epoch)
        if recorder.all_converged(alive):
            final = metrics  # every model still training has converged: this boundary is the end of training
            break
        for batch in _batches(flat_x, data.y_train, seeds, epoch, train_spec.batch_size):
            losses = _gradients(model, batch, train_spec.loss, alive, buffers, state)
            if recorder.records_iterations:
                recorder.at_iteration(losses.tolist(), ensemble_grad_norm(model, train_spec.grad_norm_p).tolist())
            _step_alive(model, optimizer, alive)
            state.step += 1
        state.epoch = epoch + 1
        if progress is not None:
            progress.update(1)
        if not alive.any():
            break
        state.save_if_due(checkpoint_path, checkpoint_every, train_spec.epochs)
    if final is None:
        final = recorder.at_epoch(state.epoch, last=True)
    return EnsembleResult(model, state.status, state.log, final, state.snapshots, state.snapshot_epochs,
                          state.snapshot_metrics, state.epoch, state.converged, state.lr_decays, optimizer.lrs.tolist())


def _decay_lr(optimizer: EnsembleOptimizer, factor: float, index: int) -> None:
    """Model `index`'s learning rate times `factor` (the plateau rule of recorder.py)."""
    optimizer.lrs[index] *= factor


def _batches(flat_x: torch.Tensor, y: torch.Tensor, seeds: list[int], epoch: int, batch_size: int | None):
    """The epoch's batches as (x, target, shared). Full batch: every model sees all examples (order does not
    change the mean), x (N, D) shared and target (M, N) or (M, N, K). Else model m's batches follow its own
    order: x (M, B, D), target (M, B) or (M, B, K)."""
    num_models, num_train = len(seeds), len(flat_x)
    if not batch_size or batch_size >= num_train:
        yield flat_x, y.unsqueeze(0).expand(num_models, *y.shape), True
        return
    orders = torch.stack([epoch_permutation(num_train, seed, epoch) for seed in seeds]).to(flat_x.device)  # (M, N)
    for batch in batch_slices(num_train, batch_size):
        index = orders[:, batch]  # (M, B)
        yield flat_x[index], y[index], False


def _gradients(model: EnsembleMLP, batch, loss: str, alive: torch.Tensor, buffers: StepBuffers | None,
               state: TrainState) -> torch.Tensor:
    """The models' mean losses on the batch (M,); in each parameter's .grad the gradients of the models
    alive after this batch, zeros for the others. A model whose loss is NaN/inf here is marked diverged
    (in `alive` and state.status)."""
    x, target, shared = batch
    if buffers is not None:  # the hand-written backward (ensemble_step.py): same gradients, less overhead
        losses = loss_and_gradients(model, x, target, loss, shared, alive, buffers)  # (M,)
    else:
        losses = per_example_loss(model(x, shared=shared, fast=True), target, loss).mean(dim=1)  # (M,)
    finite = torch.isfinite(losses.detach())
    newly_failed = alive & ~finite
    if newly_failed.any():
        for index in newly_failed.nonzero().flatten().tolist():
            state.status[index] = f"diverged at step {state.step}"
        alive &= finite
    if buffers is None:
        for p in model.parameters():
            p.grad = None
        torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
    if not alive.all():
        for p in model.parameters():  # diverged models get no gradient (NaNs included)
            p.grad[~alive] = 0
    return losses


def _step_alive(model: EnsembleMLP, optimizer: EnsembleOptimizer, alive: torch.Tensor) -> None:
    """optimizer.step() that leaves the diverged models where they are (weight decay and momentum would move
    them even with a zero gradient)."""
    frozen = [p.detach()[~alive].clone() for p in model.parameters()] if not alive.all() else None
    optimizer.step()
    if frozen is not None:
        with torch.no_grad():
            for p, saved in zip(model.parameters(), frozen):
                p[~alive] = saved


def ensemble_grad_norm(model: EnsembleMLP, p: float = 2.0) -> torch.Tensor:
    """(M,) p-norm of each model's gradient over all its parameters."""
    grads = torch.cat([q.grad.reshape(model.num_models, -1) for q in model.parameters()], dim=1)
    return torch.linalg.vector_norm(grads, ord=p, dim=1)
