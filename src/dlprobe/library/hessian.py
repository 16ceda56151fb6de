"""The Hessian of a model's mean loss over a dataset, as one object: products, eigenvalues, trace, density.

    import dlprobe, torch
    model.eval()                                                  # BatchNorm statistics fixed, no dropout
    hessian = dlprobe.Hessian(model, torch.nn.CrossEntropyLoss(), loader)   # or data=(x, y)
    hessian.eigenvalues(5).values             # (5,), descending
    hessian.trace(probes=100, seed=0)         # TraceEstimate(estimate, standard_error, samples)
    hessian.density()                         # SpectralDensity(grid, density, nodes, weights, sigma)
    dlprobe.Hessian(model, loss, loader, params="features.0").eigenvalues(1)  # one layer's block

H is the Hessian of L(theta) = (1/N) sum_b size_b * loss_fn(model(x_b), y_b) (loss_fn returns each batch's
mean) with respect to the selected parameters theta (P numbers, `select_parameters` order), every other
parameter and buffer held at its value. Products are accumulated batch by batch: each batch's graph is built,
used and freed, so peak memory is one batch's graph (with a single batch the graph is kept between products,
which spares its forward and first backward pass). On the CPU, a model in eval mode whose examples do not
interact runs a large batch in sub-batches (`library.sub_batches`: the same H to rounding, about twice as fast
per product for a conv net on 1024 images). The model runs in the mode it is in: call model.eval()
first for the deterministic network (dropout off, BatchNorm with its running statistics); in train mode
BatchNorm uses batch statistics (buffers are restored after every pass, so measuring never changes the model).
Everything runs on the model's device, in its dtype, or in `dtype` (e.g. torch.float64) on a copy of the model.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from dlprobe.analysis.critical import minimal_ratio as ratio_of_spectrum
from dlprobe.analysis.params import FlatLoss
from dlprobe.errors import UsageError
from dlprobe.library.batches import Batches, Output, batch_loss, check_loss_fn, check_scalar, select_output
from dlprobe.library.progress import progress_bar
from dlprobe.library.results import Eigenvalues, MinimalRatio, SpectralDensity, TraceEstimate
from dlprobe.library.selection import select_parameters
from dlprobe.library.sub_batches import plan_sub_batches, split_batch

WHICH = {"largest": "LA", "smallest": "SA", "magnitude": "LM"}
# Vectors per batched backward (is_grads_batched): trace of 40 probes, 13.8k-parameter CNN with BatchNorm on 512
# 8x8 images, 1 thread: 0.79 s at 8, 1.18 s at 32, 1.15 s one at a time. Whether batching pays is timed per model.
PROBE_CHUNK = 8
# Products before top_lanczos hands over to eigsh (at least 3k + 3): a basis as large as eigsh's default one.
TOP_LANCZOS_STEPS = 20
DENSE_LIMIT = 4096  # parameters: a (P, P) float64 matrix of 128 MiB and P backward passes per batch
SAMPLING_SPREAD = 2.0  # standard deviations of the start vectors' average added to a density ratio's bracket


def rademacher_probes(num_probes: int, num_params: int, seed: int) -> torch.Tensor:
    """(num_probes, num_params) float64 matrix of independent +-1 entries, drawn on the CPU from `seed`
    (the same on every device)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (num_probes, num_params), generator=generator) * 2 - 1).to(torch.float64)


def lanczos_runs(products, starts: torch.Tensor, steps: int, return_basis: bool = False) -> list[tuple]:
    """m-step Lanczos from each row of starts (R, P) at once, full reorthogonalisation (twice), float64.

    products maps a block (R, P) to the Hessian times each row (R, P). A run whose Krylov space is exhausted
    (beta <= 1e-10 max|alpha|: its tridiagonal is then exact) stops growing while the others go on.
    Returns per run (alphas (m_r,), betas (m_r - 1,)), the diagonal and off-diagonal of its tridiagonal T, and
    with return_basis also its orthonormal Lanczos vectors Q (m_r, P) float64 (H ~ Q^T T Q on their span).
    """
    num_runs = len(starts)
    current = starts.double() / starts.double().norm(dim=1, keepdim=True)  # (R, P)
    basis = [current]
    alphas, betas = [[] for _ in range(num_runs)], [[] for _ in range(num_runs)]
    active = [True] * num_runs
    for step in range(steps):
        w = products(current)  # (R, P)
        step_alphas = (w * current).sum(dim=1).tolist()
        stacked = torch.stack(basis, dim=1)  # (R, j, P)
        for _ in range(2):  # twice is enough for orthogonality to rounding level
            w = w - torch.einsum("rjp,rj->rp", stacked, torch.einsum("rjp,rp->rj", stacked, w))
        norms = w.norm(dim=1)
        for run in range(num_runs):
            if not active[run]:
                continue
            alphas[run].append(step_alphas[run])
            scale = max(abs(a) for a in alphas[run]) or 1.0
            if step == steps - 1 or norms[run].item() <= 1e-10 * scale:
                active[run] = False
            else:
                betas[run].append(norms[run].item())
        if not any(active):
            break
        # Finished runs continue with a zero vector (their products are not used).
        current = torch.where(torch.tensor(active, device=w.device)[:, None], w / norms.clamp_min(1e-300)[:, None], 0.0)
        basis.append(current)
    if return_basis:
        stacked = torch.stack(basis, dim=1)  # (R, steps taken, P)
        return [(np.array(a), np.array(b), stacked[run, :len(a)]) for run, (a, b) in enumerate(zip(alphas, betas))]
    return [(np.array(a), np.array(b)) for a, b in zip(alphas, betas)]


def quadrature_fraction_above(nodes: np.ndarray, weights: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """What one Lanczos run's Gauss quadrature says about the share of its start vector's spectral measure mu above
    threshold: (estimate, low, high), with mu(lambda > threshold) / mu(R) guaranteed in [low, high].

    nodes, weights (m,): the Ritz values and weights of one run (any order; normalised here to sum 1). estimate: the
    weight of the nodes above threshold. The bounds are the Chebyshev-Markov-Stieltjes inequalities for the nodes
    x_1 < ... < x_m: sum_{i<k} w_i <= mu(lambda < x_k) and mu(lambda <= x_k) <= sum_{i<=k} w_i; with x_j <= threshold
    < x_{j+1}, mu(lambda > threshold) lies between the weight above x_{j+1} and the weight from x_j up (exact
    arithmetic; with full reorthogonalisation the Ritz values are accurate to rounding). So the two nodes around the
    threshold carry all the uncertainty: an eigenvalue cluster at the threshold, which m steps cannot split, shows as
    a wide interval, never as a confident wrong value."""
    order = np.argsort(nodes, kind="stable")
    values = np.asarray(nodes, dtype=np.float64)[order]
    shares = np.asarray(weights, dtype=np.float64)[order]
    shares = shares / shares.sum()
    below = int(np.sum(values <= threshold))  # j: nodes x_1 .. x_j at or below the threshold
    estimate = float(shares[below:].sum())
    low = float(shares[below + 1:].sum())
    high = float(shares[below - 1:].sum()) if below else 1.0
    return estimate, low, high


def smoothed_density(nodes: np.ndarray, weights: np.ndarray, sigma: float | None, grid) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian-smoothed quadrature: nodes, weights (Q,) -> (grid (G,), density (G,), sigma). sigma None: 1% of the
    nodes' spread; grid: a point count (spanning the nodes +- 6 sigma, so the density integrates to ~1) or points."""
    if sigma is None:
        spread = nodes.max() - nodes.min()
        sigma = 0.01 * spread if spread > 0 else 1e-3 * max(abs(nodes.max()), 1.0)
    if isinstance(grid, int):
        grid = np.linspace(nodes.min() - 6 * sigma, nodes.max() + 6 * sigma, grid)
    grid = np.asarray(grid, dtype=np.float64)
    gaussians = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2)
    return grid, gaussians @ weights / (sigma * np.sqrt(2 * np.pi)), float(sigma)


class TopRitz(NamedTuple):
    values: np.ndarray  # (k,)
    vectors: torch.Tensor  # (k, P) float64, unit norm
    converged: bool
    steps: int  # products used


def top_lanczos(product, start: torch.Tensor, k: int, which: str, tol: float, vectors: bool, steps: int) -> TopRitz:
    """The k largest ("largest") or largest-magnitude ("magnitude") eigenvalues of a symmetric operator by
    Lanczos with full reorthogonalisation (twice, float64), stopped as soon as the bounds guarantee tol.

    product maps a (P,) float64 vector to H times it. After step j, each Ritz value theta of the tridiagonal T_j
    has the residual r = beta_j |last entry of its eigenvector of T_j| = ||H y - theta y|| for its Ritz vector y,
    so an eigenvalue lies within r of theta, and within r^2 / gap (Kato-Temple) when no other eigenvalue is
    closer than gap; gap is estimated conservatively as the distance to the other Ritz values less their own
    residuals. Stops when every wanted theta has min(r, r^2 / gap) <= tol |theta| (vectors=True: r <= tol |theta|,
    eigsh's test, which also makes the vector accurate), or when the Krylov space is exhausted (beta <= 1e-10
    max|alpha|: T_j is then exact). Measured (benchmark case 7's CNN on 1024 images, tol 1e-5, float32 products): k=1
    11 products where eigsh needs 16, k=5 15-16 where it needs 19 (PyHessian 66-70); the top 5 within 1.2e-7 of a
    float64 eigsh at tol 1e-10. Hessian.eigenvalues calls it for k = 1 only: a single Krylov sequence sees one copy
    of a repeated eigenvalue, so with k > 1 the bounds can all hold while the second copy is missing from the k
    returned (a quadratic with 10 twice among its eigenvalues: 1 came back in its place).
    Returns TopRitz(values (k,), Ritz vectors (k, P), converged, products used); not converged within `steps`
    products: the best Ritz pairs reached.
    """
    num_params = len(start)
    basis = torch.empty(steps + 1, num_params, dtype=torch.float64, device=start.device)  # (j, P) orthonormal rows
    basis[0] = start.double() / start.double().norm()
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(steps):
        w = product(basis[step])
        alphas.append(float(w @ basis[step]))
        known = basis[:step + 1]
        for _ in range(2):  # twice is enough for orthogonality to rounding level
            w = w - known.T @ (known @ w)
        beta = float(w.norm())
        ritz_values, ritz_vectors = np.linalg.eigh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
        exhausted = beta <= 1e-10 * max(abs(a) for a in alphas)
        if len(ritz_values) >= k:
            key = -ritz_values if which == "largest" else -np.abs(ritz_values)
            wanted = np.argsort(key, kind="stable")[:k]
            residuals = beta * np.abs(ritz_vectors[-1])  # (j,)
            bounds = residuals[wanted]
            if not vectors:
                for position, index in enumerate(wanted):
                    others = np.delete(np.arange(len(ritz_values)), index)
                    gap = np.min(np.abs(ritz_values[others] - ritz_values[index]) - residuals[others]) if len(others) else 0.0
                    if gap > 0:
                        bounds[position] = min(bounds[position], bounds[position] ** 2 / gap)
            converged = exhausted or bool(np.all(bounds <= tol * np.abs(ritz_values[wanted])))
            if converged or exhausted or step == steps - 1:
                ritz = torch.as_tensor(ritz_vectors[:, wanted].T.copy(), device=start.device) @ basis[:step + 1]  # (k, P)
                ritz = ritz / ritz.norm(dim=1, keepdim=True)
                return TopRitz(ritz_values[wanted], ritz, converged, step + 1)
        elif exhausted:  # an invariant subspace of fewer than k dimensions: eigsh's business
            break
        betas.append(beta)
        basis[step + 1] = w / beta
    return TopRitz(np.zeros(k), basis[:1].expand(k, -1).clone(), False, len(alphas))


def _sorted(values: np.ndarray, eigenvectors: np.ndarray | None, which: str) -> Eigenvalues:
    key = {"largest": -values, "smallest": values, "magnitude": -np.abs(values)}[which]
    order = np.argsort(key, kind="stable")
    return Eigenvalues(values=values[order], vectors=eigenvectors[order].copy() if eigenvectors is not None else None,
                       which=which)


@contextlib.contextmanager
def _buffers_kept(model: nn.Module) -> Iterator[None]:
    # A train-mode forward updates BatchNorm running statistics; a measurement must leave the model as it was.
    # Only the buffers that changed are written back: a write bumps the tensor's version, and a buffer that the
    # forward used and autograd saved (a fixed matrix, a mask) would then break the graph kept for the next
    # products ("modified by an inplace operation").
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()] if model.training else []
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                if not torch.equal(buffer, value):
                    buffer.copy_(value)


class Hessian:
    """Hessian of `model`'s mean `loss_fn` over `data` w.r.t. the selected parameters (see the module docstring).

    model: an nn.Module (its parameters are never changed). loss_fn: any callable (outputs, targets) -> scalar
    batch mean (torch.nn.CrossEntropyLoss(label_smoothing=0.1), F.nll_loss, ...). data: (inputs, targets)
    tensors or a re-iterable of such batches (a DataLoader). params: None (every parameter with
    requires_grad; frozen ones are excluded), or names, prefixes ("layer1"), submodules, Parameters: see
    `select_parameters`. output: how to get the loss's input from the model's output (a dict key, a tuple
    index, a callable) when it is not a tensor. dtype: compute in this dtype (a copy of the model is cast).
    progress: a tqdm bar on long work (None: only on a terminal; False: never).
    Attributes: names (the selected parameters), num_params (P), num_examples (N), num_batches, loss (L, float).
    Vectors are flat (P,) in the order of `names`. H is taken at the parameters as they are: after changing the
    model (an optimizer step), build a new Hessian.
    """

    def __init__(self, model: nn.Module, loss_fn, data, params=None, output: Output = None,
                 dtype: torch.dtype | None = None, progress: bool | None = None):
        if not isinstance(model, nn.Module):
            raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_loss_fn(loss_fn)
        self.names = select_parameters(model, params)
        named = dict(model.named_parameters())
        if dtype is not None and named[self.names[0]].dtype != dtype:
            if not dtype.is_floating_point:
                raise UsageError(f"dtype must be a floating dtype such as torch.float64, got {dtype}")
            model = copy.deepcopy(model).to(dtype)
            named = dict(model.named_parameters())
        self.model, self.loss_fn, self.progress = model, loss_fn, progress
        self._params = [named[name] for name in self.names]
        self._sizes = [p.numel() for p in self._params]
        self.num_params = sum(self._sizes)
        self.device, self.dtype = self._params[0].device, self._params[0].dtype
        self._data = Batches(data)
        self._select = select_output(output)
        self._cached_gradients: list[torch.Tensor] | None = None  # one batch: its (sub-batch) graphs, kept
        self._sub_batch: int | None = None  # examples per sub-batch (plan_sub_batches), None: whole batches
        self._batched: bool | None = None  # several vectors per vmapped backward: None until timed (_batch_products)
        self._timings: dict[str, float] = {}
        self.loss = self._mean_loss()  # one pass: counts the examples, checks every batch
        self.num_examples, self.num_batches = self._data.num_examples, self._data.num_batches

    def _mean_loss(self) -> float:
        sized, plan = [], None
        with torch.no_grad(), _buffers_kept(self.model):
            for index, inputs, targets, size in self._data.iterate(self.device, self.dtype):
                sized.append((size, batch_loss(self.model, self.loss_fn, inputs, targets, self._select, index).double()))
                if index == 0:
                    plan = plan_sub_batches(self.model, self._select, inputs, targets, self.loss_fn)
        total = sum(size for size, _ in sized)
        if plan is not None:
            self._sub_batch, bytes_per_example = plan
            if len(sized) == 1:
                # One batch: the graphs of all its sub-batches are kept, each with a few parameter-sized tensors
                # (the gradients, their concatenation): split only while those are small next to one activation.
                parts = -(-total // self._sub_batch)
                if 3 * parts * self.num_params * self._params[0].element_size() > total * bytes_per_example:
                    self._sub_batch = None
        return float(sum(size * value for size, value in sized) / total)

    def _gradients(self) -> Iterator[tuple[torch.Tensor, bool]]:
        """(the flat gradient (P,) of each (sub-)batch's share of L with its graph (create_graph), whether it is
        the last part of its batch)."""
        with torch.enable_grad(), _buffers_kept(self.model):
            kept = []
            for index, inputs, targets, size in self._data.iterate(self.device, self.dtype):
                parts = split_batch(inputs, targets, self._sub_batch)
                for number, (part_inputs, part_targets) in enumerate(parts):
                    loss = batch_loss(self.model, self.loss_fn, part_inputs, part_targets, self._select, index)
                    loss = loss * ((size if len(parts) == 1 else len(part_targets)) / self.num_examples)
                    gradients = torch.autograd.grad(loss, self._params, create_graph=True, materialize_grads=True)
                    flat = torch.cat([g.reshape(-1) for g in gradients])
                    if self.num_batches == 1:
                        kept.append(flat)  # one batch: keep its graphs for the next products
                    yield flat, number == len(parts) - 1
            if self.num_batches == 1:
                self._cached_gradients = kept

    def _products(self, vectors: torch.Tensor, description: str = "Hessian-vector products") -> torch.Tensor:
        """H @ v for each row of vectors (k, P) in self.dtype on self.device -> (k, P)."""
        total = torch.zeros_like(vectors)
        bar = progress_bar(self.progress, total=len(vectors) * self.num_batches, description=description)
        chunks = [(first, vectors[first:first + PROBE_CHUNK]) for first in range(0, len(vectors), PROBE_CHUNK)]
        with bar:
            if self._cached_gradients is not None:  # one batch, its graphs kept: chunk by chunk, for the bar
                for first, chunk in chunks:
                    for flat in self._cached_gradients:
                        if flat.requires_grad:  # else L is linear in the selected parameters: H = 0
                            total[first:first + len(chunk)] += self._batch_products(flat, chunk)
                    bar.update(len(chunk))
                return total
            for flat, last_part in self._gradients():  # batch by batch (a batch's sub-batches one after the other)
                if flat.requires_grad:
                    for first, chunk in chunks:
                        total[first:first + len(chunk)] += self._batch_products(flat, chunk)
                bar.update(len(vectors) if last_part else 0)
        return total

    def _batch_products(self, flat: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        # Reverse over reverse: d(g . v) / d theta = H v, the batch's graph reused for every v (retain_graph).
        # Several v at once through autograd's vmap (is_grads_batched) or one at a time, whichever is faster for
        # this model: the first two full chunks are timed one way each and the faster way is kept. Measured, 1
        # thread: a BatchNorm CNN on 8x8 images 1.45x faster batched; a 20.6k one on 28x28 images 1.5-1.9x slower.
        if len(chunk) < PROBE_CHUNK or self._batched is False:
            return self._looped_products(flat, chunk)
        if self._batched is True:
            return self._vmapped_products(flat, chunk)
        start = self._clock()
        if "batched" not in self._timings:
            products = self._vmapped_products(flat, chunk)
            if self._batched is not False:  # not refused by an op
                self._timings["batched"] = self._clock() - start
            return products
        products = self._looped_products(flat, chunk)
        # Batched only when clearly faster (a 20% margin: on a shared machine one timing is noisy).
        self._batched = self._timings["batched"] < 0.8 * (self._clock() - start)
        return products

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _vmapped_products(self, flat: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        try:
            parts = torch.autograd.grad(flat, self._params, grad_outputs=chunk, retain_graph=True,
                                        is_grads_batched=True, materialize_grads=True)
        except RuntimeError:  # an op without a batching rule: one vector at a time from now on
            self._batched = False
            return self._looped_products(flat, chunk)
        return torch.cat([part.reshape(len(chunk), -1) for part in parts], dim=1)

    def _looped_products(self, flat: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        rows = []
        for vector in chunk:
            parts = torch.autograd.grad(flat, self._params, grad_outputs=vector, retain_graph=True, materialize_grads=True)
            rows.append(torch.cat([part.reshape(-1) for part in parts]))
        return torch.stack(rows)

    def _as_matrix(self, vectors) -> torch.Tensor:
        matrix = torch.as_tensor(vectors).to(device=self.device, dtype=self.dtype)
        if matrix.dim() == 1:
            matrix = matrix.unsqueeze(0)
        if matrix.dim() != 2 or matrix.shape[1] != self.num_params:
            raise UsageError(f"vectors must be (P,) or (k, P) with P = {self.num_params}, got {tuple(matrix.shape)}")
        return matrix

    def hvp(self, vectors):
        """H v for v (P,) or each row of (k, P); a tensor in gives a tensor (model's device, dtype) out,
        anything else (numpy) a float64 numpy array."""
        matrix = self._as_matrix(vectors)
        products = self._products(matrix).detach()
        products = products[0] if torch.as_tensor(vectors).dim() == 1 else products
        return products if isinstance(vectors, torch.Tensor) else products.cpu().double().numpy()

    def eigenvalues(self, k: int = 1, which: str = "largest", vectors: bool = False, tol: float | None = None,
                    max_iterations: int | None = None, seed: int = 0, basis_size: int | None = None) -> Eigenvalues:
        """k extreme eigenvalues by Lanczos on products.

        which: "largest" (algebraic, descending), "smallest" (ascending), "magnitude" (largest |value|, by |value|
        descending: what PyHessian's power iteration estimates). tol: the relative accuracy of each eigenvalue
        (and with vectors=True of each residual, ||H v - value v|| <= tol |value|, eigsh's test), default 1e-10 in
        float64, 1e-5 otherwise (products carry the dtype's rounding). seed: the start vector. max_iterations:
        eigsh's restarts. basis_size: eigsh's ncv (Lanczos vectors kept between restarts; at most P), None for
        the choice below. One eigenvalue at the top ("largest", "magnitude", k=1, no basis_size) goes through
        `top_lanczos` first, which stops as soon as the bounds guarantee tol; everything else (k > 1, where one Krylov
        sequence can miss the second copy of a repeated eigenvalue), and a top not converged within its basis,
        through scipy's implicitly restarted eigsh. Returns
        Eigenvalues(values (k,), vectors (k, P) or None, which).
        """
        from scipy.sparse.linalg import LinearOperator, eigsh

        if which not in WHICH:
            raise UsageError(f"which must be one of {', '.join(map(repr, WHICH))}, got {which!r}")
        if not 1 <= k < self.num_params:
            raise UsageError(f"need 1 <= k < P = {self.num_params} for Lanczos, got k={k}; use dense() for all of them")
        if tol is None:
            tol = 1e-10 if self.dtype == torch.float64 else 1e-5
        bar = progress_bar(self.progress, total=None, description="Lanczos products")

        def product(vector: torch.Tensor) -> torch.Tensor:  # (P,) float64 on the device -> (P,) float64
            bar.update(1)
            return self._products(vector.to(self.dtype)[None], description="")[0].detach().double()

        def matvec(v: np.ndarray) -> np.ndarray:
            return product(torch.as_tensor(np.ascontiguousarray(v).reshape(-1)).to(self.device)).cpu().numpy()

        operator = LinearOperator((self.num_params, self.num_params), matvec=matvec, dtype=np.float64)
        start = np.random.default_rng(seed).standard_normal(self.num_params)
        # For the top of the spectrum, an eigsh basis of 3k + 3 (at least 6) instead of eigsh's max(2k + 1, 20):
        # products to tol 1e-5 for the trained 20.6k-parameter BatchNorm CNN of benchmark case 7: k=1 16 instead
        # of 21, k=5 19 instead of 21 (top_lanczos: 11 and 15). The bottom of a Hessian spectrum is a dense cluster
        # around zero, where a small basis needs many more restarts: eigsh's default there.
        # A larger basis can pay at the bottom too: critical_lanczos.py measured it for near-critical points.
        explicit_basis = basis_size is not None
        if basis_size is None:
            basis_size = min(self.num_params, max(3 * k + 3, 6)) if which != "smallest" else None
        elif not k < basis_size <= self.num_params:
            raise UsageError(f"need k < basis_size <= P = {self.num_params}, got k={k}, basis_size={basis_size}")
        with bar, _quiet_inner(self):
            # one eigenvalue only: a single Krylov sequence sees one copy of a repeated eigenvalue, so for k > 1 it can
            # stop converged with the second copy left out (a quadratic with 10 twice: 1 came back in its place)
            if which != "smallest" and tol > 0 and not explicit_basis and k == 1:
                steps = min(self.num_params, max(3 * k + 3, TOP_LANCZOS_STEPS))
                found = top_lanczos(product, torch.as_tensor(start, device=self.device), k, which, tol, vectors, steps)
                if found.converged:
                    return _sorted(found.values, found.vectors.cpu().numpy() if vectors else None, which)
                start = found.vectors.sum(dim=0).cpu().numpy()  # eigsh goes on from the Ritz vectors reached
            values, eigenvectors = eigsh(operator, k=k, which=WHICH[which], tol=tol, maxiter=max_iterations, v0=start,
                                         ncv=basis_size)
        return _sorted(values, eigenvectors.T if vectors else None, which)

    def trace(self, probes=100, seed: int = 0) -> TraceEstimate:
        """Hutchinson estimate of tr(H): the mean of z^T H z over Rademacher probes z.

        probes: a number (>= 2) of probes drawn by `rademacher_probes(probes, P, seed)`, or the probes
        themselves, (m, P) (any vectors with E[z z^T] = I). Returns TraceEstimate(estimate, standard_error,
        samples (m,)).
        """
        matrix = rademacher_probes(probes, self.num_params, seed) if isinstance(probes, int) else torch.as_tensor(probes)
        if matrix.dim() != 2 or len(matrix) < 2:
            raise UsageError(f"trace needs at least 2 probes, got {probes if isinstance(probes, int) else tuple(matrix.shape)}")
        matrix = self._as_matrix(matrix)
        samples = (matrix * self._products(matrix, description="Hutchinson probes")).sum(dim=1).double().cpu().numpy()
        return TraceEstimate(estimate=float(samples.mean()), standard_error=float(samples.std(ddof=1) / np.sqrt(len(samples))),
                             samples=samples)

    def density(self, steps: int = 80, runs: int = 3, seed: int = 0, sigma: float | None = None, grid=2000) -> SpectralDensity:
        """Eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019).

        Each of `runs` runs starts Lanczos (full reorthogonalisation, float64 basis on the model's device) from
        a Rademacher vector (`rademacher_probes(runs, P, seed)`), `steps` products long, the runs in lockstep
        (one pass over the data per step serves all of them, `lanczos_runs`); the Ritz values of
        run r with weights (first component of their Ritz vectors)^2 / runs are a quadrature for the spectral
        measure. density: each node a Gaussian of width sigma (default 1% of the nodes' range); grid: a number
        of points spanning the nodes +- 6 sigma (so the density integrates to ~1) or the points themselves.
        Returns SpectralDensity(grid (G,), density (G,), nodes (M,), weights (M,), sigma).
        """
        if runs < 1 or steps < 1:
            raise UsageError(f"density needs runs >= 1 and steps >= 1, got runs={runs}, steps={steps}")
        steps = min(steps, self.num_params)
        starts = rademacher_probes(runs, self.num_params, seed).to(self.device)
        bar = progress_bar(self.progress, total=steps, description="Lanczos quadrature steps")

        def products(block: torch.Tensor) -> torch.Tensor:  # (R, P) float64 -> (R, P) float64
            bar.update(1)
            return self._products(block.to(self.dtype), description="").detach().double()

        nodes, weights = [], []
        with bar, _quiet_inner(self):
            for alphas, betas in lanczos_runs(products, starts, steps):
                ritz_values, ritz_vectors = np.linalg.eigh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
                nodes.append(ritz_values)
                weights.append(ritz_vectors[0] ** 2 / runs)
        lengths = tuple(len(run) for run in nodes)
        nodes, weights = np.concatenate(nodes), np.concatenate(weights)
        grid, density, sigma = smoothed_density(nodes, weights, sigma, grid)
        return SpectralDensity(grid=grid, density=density, nodes=nodes, weights=weights, sigma=sigma, run_lengths=lengths)

    def dense(self, max_params: int = DENSE_LIMIT) -> np.ndarray:
        """The exact (P, P) Hessian as a float64 numpy array, symmetrised ((H + H^T) / 2): P products (columns
        of the identity), so for small models only (P <= max_params)."""
        if self.num_params > max_params:
            raise UsageError(f"dense() builds a {self.num_params} x {self.num_params} matrix (more than max_params="
                             f"{max_params}); use eigenvalues(), trace() or density(), or raise max_params")
        identity = torch.eye(self.num_params, dtype=self.dtype, device=self.device)
        matrix = self._products(identity, description="dense Hessian columns").detach().double().cpu().numpy()
        return (matrix + matrix.T) / 2

    def minimal_ratio(self, rel_tol: float = 1e-6, dense_limit: int = 2000, density: SpectralDensity | None = None,
                      **density_options) -> MinimalRatio:
        """Fraction of eigenvalues > rel_tol * max|eigenvalue| (1.0: a strict local minimum).

        With P <= dense_limit it is counted on the exact spectrum (method "dense"; low = high = value); otherwise
        it is the weight of the quadrature nodes above the threshold (method "density") of `density` (a result
        of density(), reused) or of a new `density(**density_options)`: an estimate whose resolution near zero is
        limited by the number of Lanczos steps, so it comes with an interval [low, high]:
        - each run's quadrature brackets its start vector z's share of eigenvalues above the threshold
          (`quadrature_fraction_above`: the two Ritz nodes around the threshold are the
          uncertainty), and the runs' brackets are averaged;
        - the average over R Rademacher start vectors estimates the fraction without bias, with a standard
          deviation of at most 1 / sqrt(P R) (Var z^T A z <= 2 ||A||_F^2 for Rademacher z; A the projector on
          the eigenvalues above, or below, divided by P: at most P / 2 of them in one of the two, so ||A||_F^2
          <= 1 / (2P)); the bracket is widened by SAMPLING_SPREAD = 2 of those (about 95% if the average is
          near normal; Chebyshev guarantees 75%).
        The threshold is rel_tol * max|node| (the largest Ritz value is the largest eigenvalue to rounding).
        """
        if self.num_params <= dense_limit:
            spectrum = np.linalg.eigvalsh(self.dense(max_params=dense_limit))
            value = ratio_of_spectrum(spectrum, rel_tol)
            return MinimalRatio(value, "dense", rel_tol, self.num_params, low=value, high=value)
        quadrature = density if density is not None else self.density(**density_options)
        threshold = rel_tol * np.abs(quadrature.nodes).max()
        value = float(quadrature.weights[quadrature.nodes > threshold].sum() / quadrature.weights.sum())
        if not quadrature.run_lengths:
            return MinimalRatio(value, "density", rel_tol, self.num_params)
        ends = np.cumsum(quadrature.run_lengths)
        brackets = np.array([quadrature_fraction_above(quadrature.nodes[end - length:end], quadrature.weights[end - length:end],
                                                       threshold)[1:] for end, length in zip(ends, quadrature.run_lengths)])
        spread = SAMPLING_SPREAD / np.sqrt(self.num_params * len(quadrature.run_lengths))
        return MinimalRatio(value, "density", rel_tol, self.num_params, low=max(0.0, float(brackets[:, 0].mean()) - spread),
                            high=min(1.0, float(brackets[:, 1].mean()) + spread))

    def parameters(self) -> torch.Tensor:
        """The selected parameters as one flat (P,) tensor (a detached copy), in the order of `names`."""
        return torch.cat([p.detach().reshape(-1) for p in self._params])

    def flat_loss(self) -> FlatLoss:
        """L as a torch.func-compatible function of a flat (P,) vector (an `analysis.params.FlatLoss`), for the
        tools of analysis/ (critical.py, dense_hessian). Under torch.func the whole dataset's graph is kept:
        for small data and models."""
        model, loss_fn, select, data = self.model, self.loss_fn, self._select, self._data

        def dict_loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            total = None
            with _buffers_kept(model):
                for index, inputs, targets, size in data.iterate(self.device, self.dtype):
                    outputs = functional_call(model, params, (inputs,))  # the other parameters: the model's own
                    term = check_scalar(loss_fn(select(outputs), targets), "loss_fn", index) * (size / self.num_examples)
                    total = term if total is None else total + term
            return total

        return FlatLoss(dict_loss, dict(zip(self.names, self._params)))

    def __repr__(self) -> str:
        return (f"Hessian({type(self.model).__name__}, P={self.num_params} in {len(self.names)} tensors, "
                f"N={self.num_examples} in {self.num_batches} batches, loss={self.loss:.6g})")


@contextlib.contextmanager
def _quiet_inner(hessian: Hessian) -> Iterator[None]:
    # One outer bar (products of Lanczos) rather than one bar per product.
    saved, hessian.progress = hessian.progress, False
    try:
        yield
    finally:
        hessian.progress = saved
