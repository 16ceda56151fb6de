"""Exact dense Hessians of a loss f(theta) of one flat parameter vector, for the critical-point tools.

    f = make_flat_loss(model, loss_fn, x, y); theta = flatten_params(model)   # params.py
    H = dense_hessian(f, theta)                   # (P, P), exact, small P only
    eigenvalues = hessian_eigenvalues(H)

theta is a 1-D tensor of P parameters; f maps it to a 0-D tensor and must be written with
torch.func-compatible operations (`make_flat_loss` and `dlprobe.Hessian.flat_loss` are), because
the critical-point search differentiates through it (Newton steps, the gradient of ||grad f||^2).
Hessian-vector products, Lanczos eigenvalues, traces and densities of any model over any DataLoader
are `dlprobe.Hessian` (library/hessian.py), the one implementation the experiments use too.
Columns here are reverse-over-reverse products (`vjp` of `grad`): forward-over-reverse (`jvp` of
`grad`) fails in torch 2.13 on `F.mse_loss` ("ZeroTensors are immutable", pytorch#123996).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
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
        _, pullback = vjp(grad(f), theta)  # grad(f) linearised once at theta: v -> H v
        hvp = vmap(lambda v: pullback(v)[0])
        identity = torch.eye(num_params, dtype=theta.dtype, device=theta.device)
        hessian = torch.cat([hvp(identity[i:i + chunk]) for i in range(0, num_params, chunk)])
        return (hessian + hessian.T) / 2


def hessian_eigenvalues(hessian: torch.Tensor) -> np.ndarray:
    """All eigenvalues of a symmetric (P, P) matrix, ascending, computed in float64."""
    h64 = hessian.detach().to(torch.float64)
    return torch.linalg.eigvalsh((h64 + h64.T) / 2).cpu().numpy()
