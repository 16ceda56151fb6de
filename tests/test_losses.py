"""The one per-example loss (dlprobe.losses): the trainers' and the landscape tools' shapes, against torch."""

import pytest
import torch
import torch.nn.functional as F

from dlprobe.errors import ConfigError
from dlprobe.losses import check_loss, per_example_loss


def close(mine, reference):
    return torch.allclose(mine, reference, rtol=1e-15, atol=0)


def test_mse_per_example_for_the_layouts_of_every_caller():
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(3, 5, 2, dtype=torch.float64, generator=generator)  # (A points or M models, N, K)
    targets = torch.randn(5, 2, dtype=torch.float64, generator=generator)
    expected = torch.stack([F.mse_loss(point, targets, reduction="none").mean(-1) for point in outputs])  # (3, 5)
    assert close(per_example_loss(outputs, targets, "mse"), expected)  # landscape: one target set for all points
    assert close(per_example_loss(outputs, targets.expand(3, 5, 2), "mse"), expected)  # ensemble: (M, B, K)
    assert close(per_example_loss(outputs[0], targets, "mse"), expected[0])  # one model: (B, K)
    single = outputs[..., :1]  # K = 1 with targets (N,)
    assert close(per_example_loss(single, targets[:, 0], "mse"), (single[..., 0] - targets[:, 0]) ** 2)


def test_cross_entropy_per_example_with_shared_or_per_model_labels():
    generator = torch.Generator().manual_seed(1)
    outputs = torch.randn(3, 5, 4, dtype=torch.float64, generator=generator)
    labels = torch.randint(0, 4, (5,), generator=generator)
    expected = torch.stack([F.cross_entropy(point, labels, reduction="none") for point in outputs])
    assert close(per_example_loss(outputs, labels, "cross_entropy"), expected)
    per_model = torch.randint(0, 4, (3, 5), generator=generator)  # the ensemble trainer: (M, B)
    expected = torch.stack([F.cross_entropy(point, row, reduction="none") for point, row in zip(outputs, per_model)])
    assert close(per_example_loss(outputs, per_model, "cross_entropy"), expected)


def test_mismatched_targets_and_unknown_losses_are_config_errors():
    with pytest.raises(ConfigError, match="do not match outputs"):
        per_example_loss(torch.zeros(3, 5, 2), torch.zeros(5, 1), "mse")
    with pytest.raises(ConfigError, match="unknown loss 'hinge'; choose one of mse, cross_entropy"):
        per_example_loss(torch.zeros(5, 2), torch.zeros(5, 2), "hinge")
    assert check_loss("mse") == "mse"
