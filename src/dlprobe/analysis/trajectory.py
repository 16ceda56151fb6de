"""Low-dimensional views of optimization trajectories: PCA (fitted jointly) and t-SNE.

    from dlprobe.analysis.trajectory import fit_pca, transform
    snapshots = np.concatenate(per_run_snapshots)           # (T, P): all runs, all saved epochs
    pca = fit_pca(snapshots, num_components=2)
    paths = [transform(pca, run) for run in per_run_snapshots]   # each (T_run, 2)

Fitting one PCA on the snapshots of all runs together puts every run in the same coordinates;
fitting one per run would give each path its own axes and make the runs incomparable.
"""

from dataclasses import dataclass

import numpy as np

from dlprobe.errors import ConfigError


@dataclass(frozen=True)
class PCAResult:
    """mean (P,), components (k, P) with orthonormal rows, explained_variance_ratio (k,)."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray


def _as_snapshots(snapshots):
    array = np.asarray(snapshots, dtype=np.float64)
    if array.ndim != 2:
        raise ConfigError(f"snapshots must be a (T, P) array of flattened weights, got shape {array.shape}")
    return array


def fit_pca(snapshots, num_components=2):
    """Principal axes of snapshots (T, P) by SVD of the centered data (numpy, float64).

    explained_variance_ratio[i] = s_i^2 / sum_j s_j^2 over all singular values s of the centered
    data (the same as scikit-learn's PCA). Signs are fixed so that the largest-magnitude entry of
    each component is positive, which makes results reproducible across LAPACK builds.
    """
    data = _as_snapshots(snapshots)
    num_points, num_features = data.shape
    if num_points < 2:
        raise ConfigError(f"PCA needs at least 2 snapshots, got {num_points}")
    if not 1 <= num_components <= min(num_points, num_features):
        limit = min(num_points, num_features)
        raise ConfigError(f"num_components must be between 1 and min(T, P) = {limit}, got {num_components}")
    mean = data.mean(axis=0)
    # Thin SVD: U (T, r), s (r,), Vt (r, P) with r = min(T, P); P can be millions, T stays small.
    _, singular_values, right_vectors = np.linalg.svd(data - mean, full_matrices=False)
    components = right_vectors[:num_components]
    largest = np.argmax(np.abs(components), axis=1)
    components = components * np.sign(components[np.arange(num_components), largest])[:, None]
    variances = singular_values**2
    total = variances.sum()
    ratio = variances[:num_components] / total if total > 0 else np.zeros(num_components)
    return PCAResult(mean=mean, components=components, explained_variance_ratio=ratio)


def transform(result, points):
    """Coordinates (M, k) of points (M, P) along the fitted components."""
    data = _as_snapshots(points)
    if data.shape[1] != result.mean.shape[0]:
        fitted = result.mean.shape[0]
        raise ConfigError(f"points have {data.shape[1]} features, the PCA was fitted on {fitted}")
    return (data - result.mean) @ result.components.T


def embed_tsne(snapshots, perplexity=30.0, seed=0):
    """2-D t-SNE embedding (T, 2) of snapshots (T, P) with scikit-learn.

    The perplexity is an effective number of neighbours and must stay well below T: it is clipped
    to at most (T - 1) / 3 (the usual guideline 3 * perplexity < T - 1), and at least 1.
    """
    from sklearn.manifold import TSNE  # imported here: scikit-learn is slow to import

    data = _as_snapshots(snapshots)
    num_points = data.shape[0]
    if not perplexity > 0:
        raise ConfigError(f"t-SNE perplexity must be positive, got {perplexity}")
    if num_points < 4:
        raise ConfigError(f"t-SNE needs at least 4 snapshots, got {num_points}")
    used_perplexity = float(min(perplexity, max(1.0, (num_points - 1) / 3)))
    embedding = TSNE(n_components=2, perplexity=used_perplexity, init="pca", random_state=seed)
    return embedding.fit_transform(data)
