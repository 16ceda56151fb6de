"""Trainers: the plain loop learns, the ensemble equals one-by-one training, resume equals a straight run,
divergence is contained."""

import math

import pytest
import torch

from dlprobe.data.functions import function_dataset, get_function
from dlprobe.data.tensors import TensorData
from dlprobe.errors import RunDirError
from dlprobe.models.mlp import MLPSpec, build_mlp
from dlprobe.store import atomic_torch_save
from dlprobe.training.common import OptimizerSettings, batch_slices, epoch_permutation
from dlprobe.training.ensemble import train_ensemble
from dlprobe.training.loop import TrainSpec, grad_norm, train
from dlprobe.training.recorder import Recorder
from dlprobe.training.state import TrainState


def sinc_data(num_train=200, num_test=50):
    return TensorData(*function_dataset(get_function("sinc"), num_train, num_test))


def flat(model):
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach()


def test_plain_loop_learns_a_simple_function():
    data = sinc_data()
    model = build_mlp(MLPSpec(1, (32, 32), 1, "tanh"), torch.Generator().manual_seed(0))
    result = train(model, data, TrainSpec(loss="mse", optimizer=OptimizerSettings("adam", lr=1e-2), epochs=400, eval_every=50), seed=0)
    _, losses = result.log.series("train_loss")
    assert result.status == "ok" and result.epochs_done == 400
    assert losses[-1] < 0.05 * losses[0]  # 20x below the constant predictor's loss
    assert result.log.last("test_loss") < 0.01


def test_records_come_before_each_update_with_exact_counts():
    data = sinc_data(num_train=100)
    model = build_mlp(MLPSpec(1, (8,), 1, "tanh"), torch.Generator().manual_seed(1))
    result = train(model, data, TrainSpec(epochs=3, batch_size=32, record_iterations=True), seed=0)
    steps, _ = result.log.series("grad_norm")
    assert steps == list(range(3 * 4))  # 100 examples, batches of 32 -> 4 per epoch
    epochs, _ = result.log.series("epoch")
    assert len(epochs) == 4  # before epochs 0, 1, 2 and after the last


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_ensemble_equals_one_by_one(optimizer, batch_size):
    data = sinc_data()
    spec = MLPSpec(1, (16, 16), 1, "tanh")
    train_spec = TrainSpec(loss="mse", optimizer=OptimizerSettings(optimizer, lr=1e-2, weight_decay=1e-4), batch_size=batch_size, epochs=50 if batch_size is None else 8)
    seeds = [3, 4, 5]
    ensemble = train_ensemble(spec, seeds, data, train_spec)
    for index, seed in enumerate(seeds):
        model = build_mlp(spec, torch.Generator().manual_seed(seed))
        single = train(model, data, train_spec, seed=seed)
        single_loss = single.log.last("train_loss")
        assert abs(ensemble.final["train_loss"][index].item() - single_loss) <= 1e-4 * single_loss
        assert torch.allclose(ensemble.model.flat_params()[index], flat(model), atol=1e-5)
        member = ensemble.model.member(index)
        assert torch.allclose(flat(member), flat(model), atol=1e-5)


def test_ensemble_per_model_learning_rates_match_single_runs():
    data = sinc_data()
    spec = MLPSpec(1, (8,), 1, "tanh")
    rates = [1e-3, 1e-2]
    ensemble = train_ensemble(spec, [0, 0], data, TrainSpec(epochs=30), lrs=rates)
    for index, rate in enumerate(rates):
        model = build_mlp(spec, torch.Generator().manual_seed(0))
        train(model, data, TrainSpec(epochs=30, optimizer=OptimizerSettings("adam", lr=rate)), seed=0)
        assert torch.allclose(ensemble.model.flat_params()[index], flat(model), atol=1e-5)


def test_ensemble_grad_norm_matches_single_model():
    data = sinc_data()
    spec = MLPSpec(1, (8, 8), 1, "tanh")
    result = train_ensemble(spec, [0, 1], data, TrainSpec(epochs=1, record_iterations=True, grad_norm_p=2.0))
    _, ensemble_norms = result.log.series("grad_norm", "1")
    model = build_mlp(spec, torch.Generator().manual_seed(1))
    single = train(model, data, TrainSpec(epochs=1, record_iterations=True), seed=1)
    assert abs(ensemble_norms[0] - single.log.series("grad_norm")[1][0]) <= 1e-5 * ensemble_norms[0]


def test_divergence_marks_one_model_and_spares_the_others():
    data = sinc_data()
    spec = MLPSpec(1, (16,), 1, "relu")
    train_spec = TrainSpec(loss="mse", optimizer=OptimizerSettings("sgd", lr=1e-2, momentum=0.0), epochs=40)
    result = train_ensemble(spec, [0, 1], data, train_spec, lrs=[1e-2, 1e6])
    assert result.status[0] == "ok" and result.status[1].startswith("diverged")
    alone = train_ensemble(spec, [0], data, train_spec, lrs=[1e-2])
    assert math.isnan(result.final["train_loss"][1].item())
    assert result.final["train_loss"][0].item() == pytest.approx(alone.final["train_loss"][0].item(), rel=1e-6)


def test_plain_loop_reports_divergence():
    data = sinc_data()
    model = build_mlp(MLPSpec(1, (16,), 1, "relu"), torch.Generator().manual_seed(0))
    result = train(model, data, TrainSpec(optimizer=OptimizerSettings("sgd", lr=1e8, momentum=0.0), epochs=20), seed=0)
    assert result.status.startswith("diverged at step")


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_resume_equals_straight_run(tmp_path, schedule):
    data = sinc_data()
    spec = MLPSpec(1, (16,), 1, "tanh")
    train_spec = TrainSpec(epochs=6, batch_size=64, snapshot_every=2, record_iterations=True, lr_schedule=schedule)
    straight = build_mlp(spec, torch.Generator().manual_seed(0))
    straight_result = train(straight, data, train_spec, seed=7)

    checkpoint = tmp_path / "ckpt.pt"
    interrupted = build_mlp(spec, torch.Generator().manual_seed(0))
    with pytest.raises(_Interrupt):  # stopped after 3 of 6 epochs, as by Ctrl-C
        train(interrupted, data, train_spec, seed=7, checkpoint_path=checkpoint, checkpoint_every=1, progress=_StopAfter(3))
    assert checkpoint.exists()
    resumed = build_mlp(spec, torch.Generator().manual_seed(0))
    resumed_result = train(resumed, data, train_spec, seed=7, checkpoint_path=checkpoint)
    assert torch.equal(flat(resumed), flat(straight))
    assert resumed_result.log.rows() == straight_result.log.rows()
    assert resumed_result.snapshot_epochs == straight_result.snapshot_epochs


def test_cosine_schedule_sets_each_epochs_rate_from_the_formula(monkeypatch):
    data = sinc_data()
    model = build_mlp(MLPSpec(1, (8,), 1, "tanh"), torch.Generator().manual_seed(0))
    seen = []
    original = torch.optim.Adam.step

    def spy(optimizer, *args, **kwargs):
        seen.append(optimizer.param_groups[0]["lr"])
        return original(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    train(model, data, TrainSpec(epochs=4, optimizer=OptimizerSettings("adam", lr=0.02), lr_schedule="cosine"), seed=0)
    # full batch: one step per epoch, epoch e at 0.02 * (1 + cos(pi e / 4)) / 2
    assert seen == pytest.approx([0.02, 0.01 * (1 + math.cos(math.pi / 4)), 0.01, 0.01 * (1 - math.cos(math.pi / 4))], rel=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainSpec(lr_schedule="linear")
    with pytest.raises(ValueError, match="plain loop"):
        train_ensemble(MLPSpec(1, (8,), 1, "tanh"), seeds=[0], data=data, train_spec=TrainSpec(epochs=2, lr_schedule="cosine"))


class _StopAfter:
    """A progress object that interrupts training in the n-th epoch's progress update (like Ctrl-C), so the
    last checkpoint is the one after epoch n - 1."""

    def __init__(self, epochs):
        self.remaining = epochs

    def update(self, n):
        self.remaining -= n
        if self.remaining == 0:
            raise _Interrupt


class _Interrupt(Exception):
    pass


def test_data_order_depends_only_on_seed_and_epoch():
    assert torch.equal(epoch_permutation(50, 3, 2), epoch_permutation(50, 3, 2))
    assert not torch.equal(epoch_permutation(50, 3, 2), epoch_permutation(50, 3, 3))
    assert [s.stop - s.start for s in batch_slices(10, 4)] == [4, 4, 2]
    assert batch_slices(10, None) == [slice(0, 10)]


def test_grad_norm_p_norms():
    layer = torch.nn.Linear(3, 1)
    layer.weight.grad = torch.tensor([[3.0, -4.0, 0.0]])
    layer.bias.grad = torch.tensor([0.0])
    assert grad_norm(layer.parameters(), 2) == pytest.approx(5.0)
    assert grad_norm(layer.parameters(), 1) == pytest.approx(7.0)
    assert grad_norm(layer.parameters(), float("inf")) == pytest.approx(4.0)


def test_ensemble_resume_equals_straight_run(tmp_path):
    data = sinc_data()
    spec = MLPSpec(1, (8, 8), 1, "tanh")
    train_spec = TrainSpec(epochs=6, batch_size=64, snapshot_every=2, eval_every=2, stop_patience=4)
    straight = train_ensemble(spec, [0, 1], data, train_spec)
    checkpoint = tmp_path / "ensemble.pt"
    with pytest.raises(_Interrupt):
        train_ensemble(spec, [0, 1], data, train_spec, checkpoint_path=checkpoint, progress=_StopAfter(3))
    assert checkpoint.exists()
    resumed = train_ensemble(spec, [0, 1], data, train_spec, checkpoint_path=checkpoint)
    assert torch.equal(resumed.model.flat_params(), straight.model.flat_params())
    assert resumed.log.rows() == straight.log.rows()
    assert all(torch.equal(a, b) for a, b in zip(resumed.snapshots, straight.snapshots))
    assert resumed.epochs_done == straight.epochs_done and resumed.converged_epoch == straight.converged_epoch


@pytest.mark.parametrize("trainer", ["plain", "ensemble"])
def test_checkpoint_of_another_model_is_refused_in_one_line(tmp_path, trainer):
    data = sinc_data(num_train=40, num_test=10)
    checkpoint = tmp_path / "ckpt.pt"

    def run(widths, seeds=(0, 1)):
        spec, train_spec = MLPSpec(1, widths, 1, "tanh"), TrainSpec(epochs=2)
        if trainer == "plain":
            return train(build_mlp(spec, torch.Generator().manual_seed(0)), data, train_spec, seed=0, checkpoint_path=checkpoint)
        return train_ensemble(spec, seeds, data, train_spec, checkpoint_path=checkpoint)

    run((8,))  # saves its state after epoch 1 of 2
    others = [dict(widths=(4,)), dict(widths=(8, 8))] + ([dict(widths=(8,), seeds=(0, 1, 2))] if trainer == "ensemble" else [])
    for other in others:
        with pytest.raises(RunDirError) as refused:
            run(**other)
        assert "does not match this model" in str(refused.value) and "\n" not in str(refused.value)
    atomic_torch_save({"model": {}, "epoch": 1}, checkpoint)  # another format (e.g. an older dlprobe's)
    with pytest.raises(RunDirError, match="does not match this model"):
        run((8,))


def test_stopping_rule_fires_patience_epochs_after_the_last_real_improvement():
    # stop_rel_improvement 0.1: model 0 improves at epochs 0, 1 and 4 (0.48 and 0.47 are within 10 % of 0.5);
    # model 1 never improves after epoch 0. Patience 2: they converge at epochs 3 and 2.
    train_losses = [[1.0, 1.0], [0.5, 1.0], [0.48, 1.0], [0.47, 1.0], [0.2, 1.0]]
    spec = TrainSpec(epochs=5, stop_patience=2, stop_rel_improvement=0.1)
    state = TrainState(torch.nn.Linear(1, 1), optimizer=None, num_models=2)
    x = torch.zeros(1, 1)
    current = {}
    recorder = Recorder(spec, state, TensorData(x, x, x, x), runs=["0", "1"],
                        evaluate=lambda x, y: {"loss": torch.tensor(current["losses"], dtype=torch.float64)}, snapshot=list)
    stopped = []
    for epoch, losses in enumerate(train_losses):
        current["losses"] = losses
        recorder.at_epoch(epoch)
        stopped.append(recorder.all_converged(torch.tensor([True, True])))
    assert state.converged == [3, 2] and state.best_loss == [0.2, 1.0] and state.last_improved == [4, 0]
    assert stopped == [False, False, False, True, True]
    assert state.log.series("train_loss", "0")[1] == [1.0, 0.5, 0.48, 0.47, 0.2]
    assert state.snapshots == []  # snapshot_every 0: none


def test_plateau_decays_the_learning_rate_before_it_counts_as_converged():
    # patience 2, no improvement after epoch 0 for model 1: the rule fires at epoch 2 (decay 1), again 2 epochs later
    # at 4 (decay 2), and only the third firing, at 6, is convergence. Model 0 keeps improving and is never decayed.
    spec = TrainSpec(epochs=8, stop_patience=2, stop_rel_improvement=0.1, lr_decay=0.5, max_lr_decays=2)
    state = TrainState(torch.nn.Linear(1, 1), optimizer=None, num_models=2)
    x = torch.zeros(1, 1)
    current, decayed = {}, []
    recorder = Recorder(spec, state, TensorData(x, x, x, x), runs=["0", "1"], snapshot=list, on_plateau=decayed.append,
                        evaluate=lambda x, y: {"loss": torch.tensor(current["losses"], dtype=torch.float64)})
    for epoch in range(8):
        current["losses"] = [0.5**epoch, 1.0]
        recorder.at_epoch(epoch)
    assert decayed == [1, 1] and state.lr_decays == [[], [2, 4]] and state.converged == [None, 6]
    with pytest.raises(ValueError, match="on_plateau"):
        Recorder(spec, state, TensorData(x, x, x, x), runs=[], evaluate=None, snapshot=list)
    with pytest.raises(ValueError, match="ensemble trainer"):
        train(torch.nn.Linear(1, 1), TensorData(x, x, x, x), spec, seed=0)


def test_ensemble_plateau_decay_scales_that_model_only_and_resumes_exactly(tmp_path):
    data = sinc_data()
    spec = MLPSpec(1, (8,), 1, "tanh")
    # a loose rule (50% improvement within 2 epochs) fires early, so the decays happen inside 8 epochs
    train_spec = TrainSpec(epochs=8, batch_size=64, eval_every=1, snapshot_every=1, stop_patience=2, stop_rel_improvement=0.5,
                           lr_decay=0.1, max_lr_decays=1, optimizer=OptimizerSettings("adam", lr=1e-2))
    straight = train_ensemble(spec, [0, 1], data, train_spec)
    assert all(len(epochs) == 1 for epochs in straight.lr_decays)
    assert straight.learning_rates == pytest.approx([1e-2 * 0.1 ** len(epochs) for epochs in straight.lr_decays], rel=1e-12)
    # each model's decays are its own: model 1 trained alone follows the same trajectory (alone it stops when it
    # converges; in the pair it trains on until model 0 has too, so compare at the epoch where it stopped alone)
    alone = train_ensemble(spec, [1], data, train_spec)
    assert alone.lr_decays == straight.lr_decays[1:]
    paired = straight.snapshots[straight.snapshot_epochs.index(alone.epochs_done)][1]
    assert torch.allclose(alone.model.flat_params()[0], paired, rtol=1e-6, atol=1e-7)
    decay_epoch = straight.lr_decays[0][0]
    checkpoint = tmp_path / "ensemble.pt"
    with pytest.raises(_Interrupt):
        train_ensemble(spec, [0, 1], data, train_spec, checkpoint_path=checkpoint, progress=_StopAfter(decay_epoch + 1))
    resumed = train_ensemble(spec, [0, 1], data, train_spec, checkpoint_path=checkpoint)
    assert torch.equal(resumed.model.flat_params(), straight.model.flat_params())
    assert resumed.lr_decays == straight.lr_decays and resumed.converged_epoch == straight.converged_epoch
