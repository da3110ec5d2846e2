r"""The Laplace approximation: the Gaussian N(ẑ, (−∇² log P(x, ẑ))⁻¹) at the
mode ẑ of the true posterior, for latent dimension 1 or 2.

The quadrature (:mod:`vaelib.quadrature`) starts from it: ẑ says where the
posterior is, the curvature how wide. Each mode is found by damped Newton
(Levenberg–Marquardt) steps on log P(x, z) from the best point of the grid over
the prior, data point by data point: a row's mode does not depend on the other
rows.

Derived in Chapter 5.
"""

import torch
from torch.distributions import MultivariateNormal

from . import _validate
from ._grids import log_joint_on_grid, shared_grid
from .models import _log_joint

_NEWTON_BATCH = (
    4096  # data points per Newton solve (bounds its autograd graph)
)


def _derivatives(model, x, z):
    """log P(x, z), its gradient and Hessian in z: ``(N,)``, ``(N, d)``,
    ``(N, d, d)``."""
    d = z.shape[-1]
    with torch.inference_mode(False), torch.enable_grad():
        z = z.detach().clone().requires_grad_(True)
        f = _log_joint(model, x.clone(), z)
        (g,) = torch.autograd.grad(f.sum(), z, create_graph=True)
        rows = [
            torch.autograd.grad(g[:, i].sum(), z, retain_graph=i < d - 1)[0]
            for i in range(d)
        ]
    return f.detach(), g.detach(), torch.stack(rows, -2).detach()


def _newton(model, x, z, max_iter=100):
    """The mode of log P(x, z) for every row from the starting points ``z``
    ``(N, d)``, and the Hessian there. Each row has its own damping; it stops
    when the predicted rise gᵀA⁻¹g is at rounding level or no damped step
    helps."""
    N, d = z.shape
    eye = torch.eye(d, dtype=z.dtype)
    f, g, H = _derivatives(model, x, z)
    damping = torch.full((N,), 1e-3, dtype=z.dtype)
    active = torch.ones(N, dtype=torch.bool)
    for _ in range(max_iter):
        act = active.nonzero()[:, 0]
        if act.numel() == 0:
            break
        scale = H[act].diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1.0)
        L, info = torch.linalg.cholesky_ex(
            -H[act] + (damping[act] * scale)[:, None, None] * eye
        )
        ok = info == 0
        step = torch.zeros_like(z[act])
        step[ok] = torch.cholesky_solve(g[act][ok][..., None], L[ok])[..., 0]
        gain = (g[act] * step).sum(-1)  # gᵀ A⁻¹ g: the predicted rise, in nats
        converged = (
            ok & (damping[act] < 1e-2) & (gain < 1e-14 * (1 + f[act].abs()))
        )
        active[act[converged]] = False
        trial = act[ok & ~converged]
        if trial.numel():
            z_new = z[trial] + step[ok & ~converged]
            f_new, g_new, H_new = _derivatives(model, x[trial], z_new)
            better = f_new >= f[trial]
            up = trial[better]
            z[up], f[up], g[up], H[up] = (
                z_new[better],
                f_new[better],
                g_new[better],
                H_new[better],
            )
            damping[up] = (damping[up] / 10).clamp_min(1e-12)
            damping[trial[~better]] *= 10
        damping[act[~ok]] *= 10
        active &= (
            damping <= 1e12
        )  # no step helps: flat, or at the mode to rounding
    return z, H


def locate(model, x, start):
    """Mode ``(N, d)`` and ``scale_tril`` ``(N, d, d)`` of N(mode, (−H)⁻¹) from
    the starting points ``start``, and ``ok`` ``(N,)``: False where the Hessian
    at the mode is not negative definite (then ``scale_tril`` is the
    identity)."""
    modes, trils, oks = [], [], []
    for s in range(0, x.shape[0], _NEWTON_BATCH):
        mode, H = _newton(
            model,
            x[s : s + _NEWTON_BATCH],
            start[s : s + _NEWTON_BATCH].clone(),
        )
        L, info = torch.linalg.cholesky_ex(-H)
        ok = info == 0
        eye = torch.eye(mode.shape[-1], dtype=mode.dtype).expand_as(H)
        cov = torch.cholesky_inverse(
            torch.where(ok[:, None, None], L, eye)
        )  # (−H)⁻¹
        modes.append(mode)
        trils.append(torch.linalg.cholesky(cov))
        oks.append(ok)
    return torch.cat(modes), torch.cat(trils), torch.cat(oks)


def laplace_approximation(model, x):
    """The Laplace approximation of the true posterior, N(ẑ, (−∇² log P(x,
    ẑ))⁻¹) at the mode ẑ of log P(x, z), found by damped Newton steps from the
    best point of a grid over the prior (latent dimension 1 or 2). A
    ``MultivariateNormal`` with batch ``(N,)``.

    Exact for the linear-Gaussian model; for a nonlinear decoder it is the
    Gaussian that matches the posterior's curvature at its peak (Chapter 5
    compares it with an ELBO-fitted Q). Needs a model differentiable in z.
    ``RuntimeError`` where the log-density is not strictly concave at the mode
    found."""
    d, _, dtype, _ = _validate.model_info(model)
    if d not in (1, 2):
        raise ValueError(
            f"model: the Laplace approximation here needs latent dimension 1 "
            f"or 2, got d = {d}"
        )
    x = _validate.data(model, x)
    with torch.no_grad(), _validate.trusted():
        grid, _ = shared_grid(d, dtype)
        values = log_joint_on_grid(model, x, grid)
        mode, scale_tril, ok = locate(model, x, grid[values.argmax(0)])
    if not ok.all():
        i = int((~ok).nonzero()[0])
        raise RuntimeError(
            f"laplace_approximation: row {i}: log P(x, z) is not strictly "
            f"concave at the mode found"
        )
    return MultivariateNormal(mode, scale_tril=scale_tril)
