"""Exact Hessians, Hessian-vector products and Hessian spectra of a loss f(theta).

    f = make_flat_loss(model, loss_fn, x, y); theta = flatten_params(model)   # params.py
    H = dense_hessian(f, theta)                   # (P, P), exact, small P only
    top = lanczos_eigenvalues(f, theta, k=5)      # any P, via Hessian-vector products
    trace, stderr = hutchinson_trace(f, theta, num_samples=100, generator=g)
    grid, density = spectral_density(f, theta, num_runs=3, lanczos_steps=80, generator=g)

theta is a 1-D tensor of P parameters; f maps it to a 0-D tensor and must be written with
torch.func-compatible operations (`make_flat_loss` is). Hessian-vector products use
reverse-over-reverse (`vjp` of `grad`): forward-over-reverse (`jvp` of `grad`) fails in torch 2.13
on `F.mse_loss` ("ZeroTensors are immutable", pytorch#123996).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch.func import grad, vjp, vmap

from dlprobe.analysis.params import FlatLoss, unflatten_params
from dlprobe.errors import ConfigError

Loss = Callable[[torch.Tensor], torch.Tensor]
DEFAULT_CHUNK = 16  # HVPs per vmap call: fastest measured (1 thread, N=1000); memory grows with it


@contextlib.contextmanager
def _intra_op_threads(num_threads: int | None) -> Iterator[None]:
    # torch's thread count is process-wide: set it for the duration only and put it back.
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _hvp_function(f: Loss, theta: torch.Tensor, vectorized: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    # Linearise grad(f) once at theta; the returned function maps v (P,) -> H v (P,) and can be
    # called many times without recomputing the forward and first backward pass. vectorized=True: the
    # torch.func form, which vmap accepts. vectorized=False (one v at a time, as Lanczos asks): the gradient
    # graph built once with torch.autograd and reused (retain_graph), per parameter tensor for a FlatLoss;
    # measured for a 120k-parameter CNN on 1024 images: 0.18 s per product vs 0.33 s for the torch.func form.
    if vectorized:
        _, pullback = vjp(grad(f), theta.detach())
        return lambda v: pullback(v)[0]
    with torch.enable_grad():
        if isinstance(f, FlatLoss):
            leaves = [t.detach().clone().requires_grad_(True) for t in unflatten_params(theta.detach(), f.like).values()]
            value = f.dict_loss(dict(zip(f.like, leaves)))
        else:
            leaves = [theta.detach().clone().requires_grad_(True)]
            value = f(leaves[0])
        gradients = torch.autograd.grad(value, leaves, create_graph=True)
    sizes = [leaf.numel() for leaf in leaves]
    # A gradient that does not depend on the parameters (f linear in them) contributes a zero Hessian block.
    linked = [index for index, g in enumerate(gradients) if g.requires_grad]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        parts = [part.view_as(leaf) for part, leaf in zip(torch.split(v.to(theta), sizes), leaves)]
        if not linked:
            return torch.zeros_like(theta)
        with torch.enable_grad():
            products = torch.autograd.grad([gradients[i] for i in linked], leaves, grad_outputs=[parts[i] for i in linked],
                                           retain_graph=True, allow_unused=True)
        return torch.cat([(torch.zeros_like(leaf) if product is None else product).reshape(-1) for product, leaf in zip(products, leaves)])

    return hvp


def hessian_vector_product(f: Loss, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact H(theta) @ v by double backprop; theta, v: (P,) -> (P,)."""
    return _hvp_function(f, theta)(v.to(theta))


def hvp_batch(f: Loss, theta: torch.Tensor, vectors: torch.Tensor,
              chunk_size: int | None = None) -> torch.Tensor:
    """Exact H @ v for each row v of `vectors` (k, P) -> (k, P), vmapped in chunks."""
    hvp = vmap(_hvp_function(f, theta))
    chunk = chunk_size or DEFAULT_CHUNK
    vectors = vectors.to(theta)
    return torch.cat([hvp(vectors[i:i + chunk]) for i in range(0, vectors.shape[0], chunk)])


def _parameter_groups(sizes: list[int], chunk: int) -> list[tuple[int, int]]:
    """Consecutive parameter tensors [first, last) grouped up to `chunk` values (one if larger)."""
    groups, first = [], 0
    while first < len(sizes):
        last, total = first + 1, sizes[first]
        while last < len(sizes) and total + sizes[last] <= chunk:
            total += sizes[last]
            last += 1
        groups.append((first, last))
        first = last
    return groups


def _dense_hessian_structured(f: FlatLoss, theta: torch.Tensor, chunk: int) -> torch.Tensor:
    """Upper triangle, one group of parameter tensors (rows s0:s1) at a time, then mirrored.

    For rows s0:s1 only H[s0:s1, s0:] is needed, so tensors before the group are held constant
    and the first backward returns only the group's gradient: autograd then skips the earlier
    layers and the other tensors' weight-gradient branches in both passes. For a feed-forward
    net in named order this roughly halves the work of full HVP columns; any order stays exact,
    only slower. Measured vs torch.func.hessian (1-16-16-16-16-1 tanh MLP, 1000 points, float32,
    2 cores): 5-7x on a quiet machine, 10-20x on a busy one (see `dense_hessian`).
    """
    names = list(f.like)
    sizes = [t.numel() for t in f.like.values()]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    num_params = offsets[-1]
    params = unflatten_params(theta, f.like)
    hessian = theta.new_zeros(num_params, num_params)
    for first, last in _parameter_groups(sizes, chunk):
        s0, s1 = offsets[first], offsets[last]
        fixed = {name: params[name] for name in names[:first]}
        group_like = {name: f.like[name] for name in names[first:last]}
        rest_like = {name: f.like[name] for name in names[last:]}

        def split_loss(group_flat: torch.Tensor, rest_flat: torch.Tensor) -> torch.Tensor:
            return f.dict_loss({**fixed, **unflatten_params(group_flat, group_like),
                                **unflatten_params(rest_flat, rest_like)})

        # pullback(v) = (H[s0:s1, s0:s1] v, H[s1:, s0:s1] v) for v of length s1 - s0.
        _, pullback = vjp(grad(split_loss, argnums=0), theta[s0:s1], theta[s1:])
        rows = vmap(lambda v: torch.cat(pullback(v)))
        identity = torch.eye(s1 - s0, dtype=theta.dtype, device=theta.device)
        for i in range(0, s1 - s0, chunk):
            block = rows(identity[i:i + chunk])  # (<= chunk, P - s0)
            hessian[s0 + i:s0 + i + block.shape[0], s0:] = block
    return torch.triu(hessian) + torch.triu(hessian, 1).T


def dense_hessian(f: Loss, theta: torch.Tensor, chunk_size: int | None = None,
                  num_threads: int | None = 1) -> torch.Tensor:
    """The exact, full (P, P) Hessian of f at theta, symmetric, in theta's dtype.

    Built from Hessian-vector products against basis vectors, `chunk_size` (default 16) at a
    time with vmap, so memory is about chunk_size backward passes plus the (P, P) result.
    Any f works (columns by double backprop, then (H + H^T)/2); a `FlatLoss` from
    `make_flat_loss` takes a faster path that computes only the upper triangle.
    num_threads: torch intra-op threads while building H (restored afterwards; None keeps the
    current setting). The default 1 is deliberate: the many small batched ops gain little from a
    second thread, and on a busy machine 2 threads ran 3-10x slower (thread barriers), measured
    on 2 cores for a 865-parameter MLP on 1000 and 10000 points.
    """
    theta = theta.detach()
    if theta.dim() != 1:
        raise ConfigError(f"dense_hessian: theta must be 1-D, got shape {tuple(theta.shape)}")
    chunk = chunk_size or DEFAULT_CHUNK
    with _intra_op_threads(num_threads):
        if isinstance(f, FlatLoss):
            return _dense_hessian_structured(f, theta, chunk)
        num_params = theta.numel()
        hvp = vmap(_hvp_function(f, theta))
        identity = torch.eye(num_params, dtype=theta.dtype, device=theta.device)
        hessian = torch.cat([hvp(identity[i:i + chunk]) for i in range(0, num_params, chunk)])
        return (hessian + hessian.T) / 2


def hessian_eigenvalues(hessian: torch.Tensor) -> np.ndarray:
    """All eigenvalues of a symmetric (P, P) matrix, ascending, computed in float64."""
    h64 = hessian.detach().to(torch.float64)
    return torch.linalg.eigvalsh((h64 + h64.T) / 2).cpu().numpy()


def _linear_operator(f: Loss, theta: torch.Tensor) -> LinearOperator:
    hvp = _hvp_function(f, theta, vectorized=False)
    num_params = theta.numel()

    def matvec(v: np.ndarray) -> np.ndarray:
        tangent = torch.as_tensor(np.ascontiguousarray(v).reshape(-1)).to(theta)
        return hvp(tangent).detach().cpu().to(torch.float64).numpy()

    return LinearOperator((num_params, num_params), matvec=matvec, dtype=np.float64)


def lanczos_eigenvalues(f: Loss, theta: torch.Tensor, k: int = 5, which: str = "LA",
                        tol: float | None = None, maxiter: int | None = None,
                        seed: int = 0) -> np.ndarray:
    """Extreme Hessian eigenvalues by implicitly restarted Lanczos (scipy eigsh) on HVPs.

    which: "LA" the k largest (algebraic), "SA" the k smallest, "both" the k smallest and the
    k largest (2k values). Returns a float64 array, ascending. tol is eigsh's relative accuracy
    (default 1e-10 for float64 theta, 1e-5 otherwise, since HVPs carry theta's rounding).
    """
    num_params = theta.numel()
    if which not in ("LA", "SA", "both"):
        raise ConfigError(f"lanczos_eigenvalues: which must be 'LA', 'SA' or 'both', got {which!r}")
    if not 1 <= k < num_params:
        raise ConfigError(f"lanczos_eigenvalues: need 1 <= k < P={num_params}, got k={k}")
    if tol is None:
        tol = 1e-10 if theta.dtype == torch.float64 else 1e-5
    operator = _linear_operator(f, theta)
    start = np.random.default_rng(seed).standard_normal(num_params)
    ends = ["SA", "LA"] if which == "both" else [which]
    values = [eigsh(operator, k=k, which=end, tol=tol, maxiter=maxiter, v0=start,
                    return_eigenvectors=False) for end in ends]
    return np.sort(np.concatenate(values))


def _rademacher(shape: tuple[int, ...], generator: torch.Generator | None,
                like: torch.Tensor) -> torch.Tensor:
    # Fixed seed 0 when no generator is passed: deterministic, never the global RNG.
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64) * 2 - 1
    return signs.to(dtype=like.dtype, device=like.device)


def hutchinson_trace(f: Loss, theta: torch.Tensor, num_samples: int = 100,
                     generator: torch.Generator | None = None) -> tuple[float, float]:
    """Stochastic trace estimate tr(H) ~ mean of z^T H z over Rademacher probes z (P,).

    Returns (estimate, standard error of the mean over the num_samples >= 2 probes).
    """
    if num_samples < 2:
        raise ConfigError(f"hutchinson_trace: num_samples must be at least 2, got {num_samples}")
    probes = _rademacher((num_samples, theta.numel()), generator, theta)
    quadratic = (probes * hvp_batch(f, theta, probes)).sum(dim=1).to(torch.float64)
    return quadratic.mean().item(), (quadratic.std() / num_samples ** 0.5).item()


def _lanczos_tridiagonal(hvp: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor,
                         steps: int, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    """m-step Lanczos, full reorthogonalisation, float64 basis; HVPs in `dtype`.

    Returns (alpha (m,), beta (m-1,)), the diagonal and off-diagonal of the tridiagonal T.
    """
    basis = [start / start.norm()]
    alphas, betas = [], []
    for step in range(steps):
        w = hvp(basis[-1].to(dtype)).to(torch.float64)
        alphas.append(torch.dot(w, basis[-1]).item())
        stacked = torch.stack(basis)
        for _ in range(2):  # twice is enough for orthogonality to rounding level
            w = w - stacked.T @ (stacked @ w)
        beta = w.norm().item()
        scale = max(abs(a) for a in alphas) or 1.0
        if step == steps - 1 or beta <= 1e-10 * scale:  # Krylov space exhausted: T is exact
            break
        betas.append(beta)
        basis.append(w / beta)
    return np.array(alphas), np.array(betas)


def spectral_density(f: Loss, theta: torch.Tensor, num_runs: int = 3, lanczos_steps: int = 80,
                     generator: torch.Generator | None = None, grid: np.ndarray | None = None,
                     sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Hessian eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019).

    Each run starts Lanczos from a Rademacher vector; the Ritz values theta_i with weights
    tau_i = (first component of the i-th Ritz vector)^2 (sum 1) form a quadrature for the
    spectral measure; each node is a Gaussian of width sigma (default 1% of the Ritz-value range)
    and the runs are averaged. Default grid: 2000 points spanning the Ritz values +- 6 sigma,
    so the density integrates to ~1. Returns (grid (G,), density (G,)) as float64 arrays.
    """
    if num_runs < 1 or lanczos_steps < 1:
        raise ConfigError("spectral_density: num_runs and lanczos_steps must be positive")
    hvp = _hvp_function(f, theta, vectorized=False)
    steps = min(lanczos_steps, theta.numel())
    nodes, weights = [], []
    for start in _rademacher((num_runs, theta.numel()), generator, theta):
        alphas, betas = _lanczos_tridiagonal(hvp, start.to(torch.float64), steps, theta.dtype)
        tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        ritz_values, ritz_vectors = np.linalg.eigh(tridiagonal)
        nodes.append(ritz_values)
        weights.append(ritz_vectors[0] ** 2 / num_runs)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    if sigma is None:
        spread = nodes.max() - nodes.min()
        sigma = 0.01 * spread if spread > 0 else 1e-3 * max(abs(nodes.max()), 1.0)
    if grid is None:
        grid = np.linspace(nodes.min() - 6 * sigma, nodes.max() + 6 * sigma, 2000)
    grid = np.asarray(grid, dtype=np.float64)
    gaussians = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2)
    density = gaussians @ weights / (sigma * np.sqrt(2 * np.pi))
    return grid, density
