"""PCA and t-SNE of weight snapshots: invariants and scikit-learn as the reference."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from dlprobe.analysis.trajectory import embed_tsne, fit_pca, transform
from dlprobe.errors import ConfigError


def snapshots(num_points=12, num_features=30, seed=0):
    generator = np.random.default_rng(seed)
    scales = np.array([5.0, 2.0, 1.0] + [0.1] * (num_features - 3))  # distinct variances: unique axes
    return generator.normal(size=(num_points, num_features)) * scales + generator.normal(size=num_features)


def test_collinear_snapshots_have_all_variance_on_the_first_component():
    generator = np.random.default_rng(1)
    start, direction = generator.normal(size=40), generator.normal(size=40)
    points = start + np.linspace(-2, 3, 9)[:, None] * direction  # (9, 40) on one line
    result = fit_pca(points, num_components=2)
    assert result.explained_variance_ratio[0] == pytest.approx(1.0, abs=1e-12)
    assert result.explained_variance_ratio[1] == pytest.approx(0.0, abs=1e-12)
    unit = direction / np.linalg.norm(direction)
    assert abs(result.components[0] @ unit) == pytest.approx(1.0, abs=1e-12)


def test_pca_matches_scikit_learn_up_to_sign():
    points = snapshots()
    result = fit_pca(points, num_components=3)
    reference = PCA(n_components=3, svd_solver="full").fit(points)
    assert np.allclose(result.components @ result.components.T, np.eye(3), atol=1e-12)  # orthonormal rows
    signs = np.sign(np.sum(result.components * reference.components_, axis=1))
    assert np.allclose(result.components, signs[:, None] * reference.components_, atol=1e-10)
    assert np.allclose(result.explained_variance_ratio, reference.explained_variance_ratio_, atol=1e-12)
    assert np.allclose(result.mean, reference.mean_)
    new_points = snapshots(seed=5)
    assert np.allclose(transform(result, new_points), signs * reference.transform(new_points), atol=1e-10)


def test_pca_signs_are_fixed_and_transform_of_mean_is_origin():
    points = snapshots()
    result = fit_pca(points)
    largest = result.components[np.arange(2), np.argmax(np.abs(result.components), axis=1)]
    assert np.all(largest > 0)
    flipped = fit_pca(points[::-1])  # same cloud, other order: same axes and signs
    assert np.allclose(flipped.components, result.components, atol=1e-10)
    assert np.allclose(transform(result, result.mean[None]), 0.0)


def test_pca_rejects_bad_input():
    with pytest.raises(ConfigError):
        fit_pca(snapshots()[:1])
    with pytest.raises(ConfigError):
        fit_pca(snapshots(num_points=4), num_components=5)
    with pytest.raises(ConfigError):
        fit_pca(np.zeros(10))
    with pytest.raises(ConfigError):
        transform(fit_pca(snapshots()), np.zeros((2, 7)))


def test_tsne_clips_perplexity_and_is_seeded():
    points = snapshots(num_points=10)
    first = embed_tsne(points, perplexity=30.0, seed=0)  # 30 > 10 points: clipped, not an error
    assert first.shape == (10, 2) and np.all(np.isfinite(first))
    assert np.array_equal(first, embed_tsne(points, perplexity=30.0, seed=0))
    with pytest.raises(ConfigError, match="at least 4"):
        embed_tsne(points[:3])
