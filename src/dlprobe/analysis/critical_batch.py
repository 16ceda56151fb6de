"""Critical points of R small MLPs at once: batched losses, exact Hessians, Levenberg-Marquardt.

    loss = BatchedMLPLoss(spec, x, y)                          # loss(thetas (R, P)) -> (R,) MSE
    thetas, values = lbfgs(loss.value_and_gradients, thetas, 1000)  # polish (batched_lbfgs.py)
    thetas, values = lbfgs(loss.grad_norm_objective, thetas, 100)   # minimise ||grad L||^2 (double backprop)
    thetas, norms = levenberg_marquardt(loss, thetas, steps=100)    # each run to grad L = 0
    hessians = loss.hessians(thetas)                           # (R, P, P), exact

The R runs never interact: run r's loss depends only on thetas[r], and every step, damping level, line
search and accept/reject decision is per run (tensors of shape (R,)). So each run follows the trajectory the
one-run code would (`levenberg_marquardt` takes `critical.damped_newton`'s steps, tests check it), while a
step of all runs is one batched Hessian, one batched eigendecomposition and one batched forward pass instead
of R of each. Parameter order is `MLP(spec).named_parameters()` (weight (out, in) row-major, bias).
"""

from __future__ import annotations

import torch

from ..models.mlp import MLPSpec, activation_module
from ..models.ensemble_mlp import ensemble_linear

MU_UP, MU_DOWN = 2.0, 10.0  # damped_newton's schedule (critical.py)


class BatchedMLPLoss:
    """Mean squared error of R MLPs (one spec) on shared data: __call__(thetas (R, P)) -> (R,).

    x (N, in_features), y (N, out_features); both are cast to thetas' dtype on each call."""

    def __init__(self, spec: MLPSpec, x: torch.Tensor, y: torch.Tensor):
        self.spec = spec
        self.activation = activation_module(spec.activation)
        self.x = x.reshape(len(x), -1)
        self.y = y.reshape(len(y), -1)
        self.num_params = spec.num_params

    def __call__(self, thetas: torch.Tensor) -> torch.Tensor:
        runs = thetas.shape[0]
        x, y = self.x.to(thetas), self.y.to(thetas)
        hidden = x.expand(runs, *x.shape)
        offset, last = 0, len(self.spec.layer_sizes) - 1
        for index, (fan_in, fan_out) in enumerate(self.spec.layer_sizes):
            weight = thetas[:, offset : offset + fan_in * fan_out].reshape(runs, fan_out, fan_in)
            offset += fan_in * fan_out
            bias = thetas[:, offset : offset + fan_out].unsqueeze(1)
            offset += fan_out
            hidden = ensemble_linear(hidden, weight.transpose(1, 2), bias)
            if index < last:
                hidden = self.activation(hidden)
        return (hidden - y).square().mean(dim=(1, 2))

    def single(self, theta: torch.Tensor) -> torch.Tensor:
        """The loss of one run, theta (P,) -> () (for one-run tools such as `sampling_minimal_ratio`)."""
        return self(theta.unsqueeze(0))[0]

    def value_and_gradients(self, thetas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R,) losses and (R, P) exact gradients (runs are independent, so the gradient of the sum is each
        run's own gradient)."""
        point = thetas.detach().requires_grad_(True)
        values = self(point)
        return values.detach(), torch.autograd.grad(values.sum(), point)[0]

    def gradients(self, thetas: torch.Tensor) -> torch.Tensor:
        return self.value_and_gradients(thetas)[1]

    def hessians(self, thetas: torch.Tensor) -> torch.Tensor:
        """(R, P, P) exact Hessians. One hidden layer, one output and a tanh/sigmoid/softplus activation (the
        assignment's nets): the closed form of `one_hidden_layer_hessians`. Otherwise P reverse passes through
        the batched gradient, column j = d g / d theta_j. (Measured for R=100, 1-16-1: closed form ~5 ms,
        reverse passes 94 ms, the vmapped torch.func forms 500-1100 ms.)"""
        if len(self.spec.widths) == 1 and self.spec.out_features == 1 and self.spec.activation in ACTIVATION_DERIVATIVES:
            return one_hidden_layer_hessians(self.spec, thetas.detach(), self.x.to(thetas), self.y.to(thetas))
        return self.autograd_hessians(thetas)

    def autograd_hessians(self, thetas: torch.Tensor) -> torch.Tensor:
        """(R, P, P) exact Hessians by P reverse passes (any MLP; the reference for the closed form)."""
        point = thetas.detach().requires_grad_(True)
        gradient = torch.autograd.grad(self(point).sum(), point, create_graph=True)[0]
        columns = [torch.autograd.grad(gradient[:, j].sum(), point, retain_graph=True)[0] for j in range(point.shape[1])]
        return torch.stack(columns, dim=2)

    def grad_norm_objective(self, thetas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R,) ||grad L||^2 and (R, P) its gradient 2 H grad L, by true double backprop."""
        point = thetas.detach().requires_grad_(True)
        gradient = torch.autograd.grad(self(point).sum(), point, create_graph=True)[0]
        values = gradient.square().sum(dim=1)
        return values.detach(), torch.autograd.grad(values.sum(), point)[0]

    def second_directional(self, thetas: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """(R, P): d^2/dt^2 grad L(theta + t v) at t = 0 for each run's (theta, v), i.e. grad (v^T H v)."""
        point = thetas.detach().requires_grad_(True)
        gradient = torch.autograd.grad(self(point).sum(), point, create_graph=True)[0]
        product = torch.autograd.grad((gradient * steps).sum(), point, create_graph=True)[0]  # H v per run
        return torch.autograd.grad((product * steps).sum(), point)[0]


def _tanh_derivatives(z):
    a = torch.tanh(z)
    first = 1 - a * a
    return a, first, -2 * a * first


def _sigmoid_derivatives(z):
    a = torch.sigmoid(z)
    first = a * (1 - a)
    return a, first, first * (1 - 2 * a)


def _softplus_derivatives(z):
    a = torch.nn.functional.softplus(z)
    first = torch.sigmoid(z)
    return a, first, first * (1 - first)


# activation -> z -> (sigma(z), sigma'(z), sigma''(z)); the nn.Softplus default (beta 1, threshold 20) equals
# log(1 + e^z) to float precision only below the threshold, so softplus inputs are checked in the tests.
ACTIVATION_DERIVATIVES = {"tanh": _tanh_derivatives, "sigmoid": _sigmoid_derivatives, "softplus": _softplus_derivatives}


def one_hidden_layer_hessians(spec: MLPSpec, thetas: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(R, P, P) exact Hessians of the MSE of f(x) = v . sigma(W x + b) + c, in closed form.

    thetas (R, P) in MLP order (W (H, D) row-major, b (H,), v (H,), c); x (N, D); y (N, 1). With residuals
    r_n = f(x_n) - y_n and output Jacobians J_n: H = (2/N) (sum_n J_n J_n^T + sum_n r_n d^2 f_n), where the
    second-derivative term only couples the (W_j, b_j, v_j) of one hidden unit j: with u = (x, 1),
    d^2 f / d(W_j, b_j)^2 = v_j sigma''(z_j) u u^T and d^2 f / d(W_j, b_j) dv_j = sigma'(z_j) u."""
    runs, (num_points, dim), width = len(thetas), x.shape, spec.widths[0]
    weight = thetas[:, : width * dim].reshape(runs, width, dim)
    offset = width * dim
    bias, out_weight = thetas[:, offset : offset + width], thetas[:, offset + width : offset + 2 * width]
    out_bias = thetas[:, offset + 2 * width]
    z = torch.einsum("nd,rhd->rnh", x, weight) + bias.unsqueeze(1)  # (R, N, H)
    a, first, second = ACTIVATION_DERIVATIVES[spec.activation](z)
    residual = (a * out_weight.unsqueeze(1)).sum(dim=2) + out_bias.unsqueeze(1) - y[:, 0]  # (R, N)
    scaled = out_weight.unsqueeze(1) * first  # v_j sigma'(z): d f / d b_j, (R, N, H)
    jacobian = torch.cat([(scaled.unsqueeze(3) * x.view(1, num_points, 1, dim)).reshape(runs, num_points, width * dim), scaled, a,
                          torch.ones(runs, num_points, 1, dtype=thetas.dtype, device=thetas.device)], dim=2)  # (R, N, P)
    hessian = torch.bmm(jacobian.transpose(1, 2), jacobian)
    augmented = torch.cat([x, torch.ones(num_points, 1, dtype=x.dtype, device=x.device)], dim=1)  # u_n (N, D + 1)
    unit = torch.arange(width, device=x.device)
    rows = torch.cat([unit.view(-1, 1) * dim + torch.arange(dim, device=x.device), offset + unit.view(-1, 1)], dim=1)  # (H, D + 1)
    blocks = torch.einsum("rnh,nd,ne->rhde", residual.unsqueeze(2) * second, augmented, augmented) * out_weight.view(runs, width, 1, 1)
    hessian[:, rows.unsqueeze(2), rows.unsqueeze(1)] += blocks
    cross = torch.einsum("rnh,nd->rhd", residual.unsqueeze(2) * first, augmented)  # (R, H, D + 1)
    columns = (offset + width + unit).view(-1, 1).expand(-1, dim + 1)
    hessian[:, rows, columns] += cross
    hessian[:, columns, rows] += cross
    return hessian * (2.0 / num_points)


def _eigh(loss: BatchedMLPLoss, thetas: torch.Tensor):
    return torch.linalg.eigh(loss.hessians(thetas).to(torch.float64))  # (R, P), (R, P, P)


def _project(basis, vectors):  # Q^T v per run: (R, P, P), (R, P) -> (R, P)
    return torch.einsum("rpq,rp->rq", basis, vectors.to(basis))


def _expand(basis, coordinates):  # Q c per run
    return torch.einsum("rpq,rq->rp", basis, coordinates)


def levenberg_marquardt(loss: BatchedMLPLoss, thetas: torch.Tensor, steps: int = 100, damping: float = 1e-6,
                        tol: float = 1e-10, acceleration: bool = True, max_retries: int = 40
                        ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`critical.damped_newton` for every run at once: LM on grad L = 0 with the exact Hessian.

    Per run: v = -Q diag(l / (l^2 + mu)) Q^T g, plus the geodesic correction a / 2 (rejected with mu *= 2
    when |a| > 0.75 |v|); accepted when ||g|| falls (mu /= 10), else mu *= 2. A run stops after `steps`
    accepted steps, `max_retries` failed tries in a row, or ||g|| < tol; the loop ends when every run has
    stopped. Returns (thetas (R, P), list of (R,) gradient norms: the start, then after each sweep)."""
    current = thetas.detach().clone()
    gradient = loss.gradients(current)
    norms = gradient.norm(dim=1)
    history = [norms.clone()]
    curvature, basis = _eigh(loss, current)
    mu = damping * curvature.pow(2).amax(dim=1)
    mu = torch.where(mu > 0, mu, torch.full_like(mu, damping))
    accepted = torch.zeros(len(current), dtype=torch.long)
    retries = torch.zeros(len(current), dtype=torch.long)
    while True:
        active = (accepted < steps) & (retries < max_retries) & (norms >= tol)
        if not active.any():
            break
        rows = active.nonzero().flatten()
        scale = curvature[rows] / (curvature[rows].pow(2) + mu[rows].unsqueeze(1))

        def solve(vectors):
            return -_expand(basis[rows], scale * _project(basis[rows], vectors))

        step = solve(gradient[rows]).to(current)
        ok = torch.ones(len(rows), dtype=torch.bool)
        if acceleration:
            correction = solve(loss.second_directional(current[rows], step)).to(current)
            ok = correction.norm(dim=1) <= 0.75 * step.norm(dim=1)
            step = step + correction / 2
        trial = current[rows] + step
        trial_gradient = loss.gradients(trial)
        trial_norms = trial_gradient.norm(dim=1)
        accept = ok & (trial_norms < norms[rows])
        good, bad = rows[accept], rows[~accept]
        current[good], gradient[good], norms[good] = trial[accept], trial_gradient[accept], trial_norms[accept]
        mu[good] /= MU_DOWN
        mu[bad] *= MU_UP
        accepted[good] += 1
        retries[good] = 0
        retries[bad] += 1
        if len(good):
            curvature[good], basis[good] = _eigh(loss, current[good])
        history.append(norms.clone())
    return current, history
