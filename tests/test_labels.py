"""Label corruption (data/labels.py): the chosen fraction exactly, shuffle keeps the class counts, random draws
new classes, the same generator seed the same draw, the input never modified, bad fractions and modes refused."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from dlprobe.data.images import load_dataset
from dlprobe.data.labels import corrupt_labels, randomize_labels, shuffle_labels
from dlprobe.errors import ConfigError


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    """mnist-5k's 4000 training labels (400 per class), as random-labels corrupts them."""
    return load_dataset("mnist-5k").y_train


def corrupted(labels: torch.Tensor, fraction: float, seed: int, mode: str = "random") -> torch.Tensor:
    """What random-labels trains on for this fraction, seed and label_mode."""
    return corrupt_labels(labels, fraction, mode, 10, torch.Generator().manual_seed(seed))


def test_label_noise(clean):
    before = clean.clone()
    noisy = corrupted(clean, 1.0, seed=3)
    changed = float((noisy != clean).float().mean())
    assert 0.87 < changed < 0.93  # a replacement equals the true label 1 time in 10
    assert torch.bincount(noisy, minlength=10).min() > 330  # uniform classes
    assert torch.equal(clean, before)  # the clean labels (and so the test labels) are never touched
    assert torch.equal(corrupted(clean, 0.0, seed=3), clean)
    assert torch.equal(corrupted(clean, 1.0, seed=3), noisy)
    assert not torch.equal(corrupted(clean, 1.0, seed=4), noisy)


def test_randomize_labels_touches_exactly_the_chosen_fraction():
    labels = torch.zeros(1000, dtype=torch.int64)
    noisy = randomize_labels(labels, 0.3, 10, torch.Generator().manual_seed(0))
    assert int(labels.sum()) == 0  # input untouched
    assert 240 < int((noisy != 0).sum()) <= 300  # 300 replaced, ~1/10 of them by class 0 again
    with pytest.raises(ConfigError):
        randomize_labels(labels, 1.5, 10, torch.Generator())


def test_shuffle_labels_keeps_the_class_counts_exactly(clean):
    before = clean.clone()
    shuffled = corrupted(clean, 1.0, seed=3, mode="shuffle")
    assert torch.equal(torch.bincount(shuffled, minlength=10), torch.bincount(clean, minlength=10))
    # An image keeps its label when the permutation hands it one of its own class: 400 of 4000 per class,
    # so 1 - 10 * 0.1^2 = 90% change in expectation; one binomial std is ~0.5 points.
    changed = float((shuffled != clean).float().mean())
    assert 0.87 < changed < 0.93
    assert torch.equal(clean, before)  # the clean labels (and so the test labels) are never touched
    assert torch.equal(corrupted(clean, 0.0, seed=3, mode="shuffle"), clean)
    assert torch.equal(corrupted(clean, 1.0, seed=3, mode="shuffle"), shuffled)
    assert not torch.equal(corrupted(clean, 1.0, seed=4, mode="shuffle"), shuffled)
    # The random mode draws new classes: its class counts move.
    random = corrupted(clean, 1.0, seed=3, mode="random")
    assert not torch.equal(random, shuffled)
    assert not torch.equal(torch.bincount(random, minlength=10), torch.bincount(clean, minlength=10))


def test_shuffle_labels_permutes_only_the_chosen_fraction():
    labels = torch.arange(1000)  # all distinct: every moved label is visible, and where it came from
    shuffled = shuffle_labels(labels, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(labels, torch.arange(1000))  # input untouched
    moved = torch.nonzero(shuffled != labels).flatten()
    # 300 chosen; a random permutation of 300 leaves ~1 of them in place (Poisson(1) fixed points).
    assert 290 <= moved.numel() <= 300
    # The moved labels came from the moved positions only: the other 700 entries are untouched.
    assert torch.equal(torch.sort(shuffled[moved]).values, moved)
    assert torch.equal(shuffle_labels(labels, 0.0, torch.Generator().manual_seed(0)), labels)
    with pytest.raises(ConfigError, match="label_noise"):
        shuffle_labels(labels, -0.5, torch.Generator())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=200), st.floats(0.0, 1.0), st.integers(0, 2**31))
def test_shuffle_labels_keeps_the_label_multiset(values, fraction, seed):
    labels = torch.tensor(values)
    shuffled = shuffle_labels(labels, fraction, torch.Generator().manual_seed(seed))
    assert sorted(shuffled.tolist()) == sorted(values)
    assert int((shuffled != labels).sum()) <= round(fraction * len(values))


def test_corrupt_labels_dispatches_on_the_mode():
    labels = torch.arange(10).repeat(50)
    for mode, reference in (("shuffle", lambda g: shuffle_labels(labels, 0.5, g)),
                            ("random", lambda g: randomize_labels(labels, 0.5, 10, g))):
        assert torch.equal(corrupt_labels(labels, 0.5, mode, 10, torch.Generator().manual_seed(1)),
                           reference(torch.Generator().manual_seed(1)))
    with pytest.raises(ConfigError, match="label_mode must be one of shuffle, random"):
        corrupt_labels(labels, 0.5, "permute", 10, torch.Generator())
    with pytest.raises(ConfigError, match="label_mode"):
        corrupt_labels(labels, 0.5, "Shuffle", 10, torch.Generator())
    with pytest.raises(ConfigError, match="label_noise"):
        corrupt_labels(labels, -0.1, "random", 10, torch.Generator())
