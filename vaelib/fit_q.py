"""The best Q of a family for each data point, fitted to its true posterior:
what a family can do without a network (latent dimension 1 or 2).

Since log P(x) does not depend on q, the q that maximises the ELBO is the one
that minimises

    KL(q ‖ P(Z|x)) = ∫ q(z) [log q(z) − log P(z|x)] dz.

The helpers work on a quadrature rule adapted to each posterior:
:func:`posterior_points` keeps, for each data point, the points and weights of
the lattice on which :func:`~vaelib.quadrature.log_px_quad` integrated it,
with log P(z|x) at every point (no decoder evaluations beyond those of the
quadrature). :func:`best_q` minimises the KL as a sum over those points, for
every data point at once by L-BFGS, from one or more starts (the best one is
kept per data point: a posterior with two bumps has a local optimum on each).
The result is then judged where it matters by
:func:`~vaelib.quadrature.kl_to_posterior_quad`, on q's own lattice.

Derived in Chapter 7 (the approximation gap).
"""

import math

import torch
from torch.distributions import MultivariateNormal

from . import _validate, lattice
from .distributions import diagonal_normal, gaussian_params
from .quadrature import _check, _lattices

FAMILIES = ("diagonal", "full")


class PosteriorPoints:
    """Each row's true posterior as a quadrature rule, all rows' points in one
    flat list: ``z`` ``(P, d)``, the ``row`` ``(P,)`` each point belongs to,
    log weights ``log_w`` ``(P,)`` and log P(z|x) ``log_p`` ``(P,)``;
    ``log_px`` ``(N,)`` (NaN where quadrature refused the row) and the
    ``reasons`` for that."""

    def __init__(self, z, row, log_w, log_p, log_px, reasons, keep):
        self.z, self.row, self.log_w, self.log_p = z, row, log_w, log_p
        self.log_px, self.reasons, self.keep = log_px, reasons, keep

    def kl_of(self, log_q):
        """KL(q ‖ P(Z|x)) per row ``(N,)`` by the rule, from q's log density
        at the points ``log_q`` ``(P,)``. q's mass off the rule's points (where
        the posterior is below e^−keep of its peak) is charged ``keep`` nats,
        at least what it would cost there."""
        N = self.log_px.shape[0]
        mass = torch.exp(log_q + self.log_w)
        inner = torch.zeros(N, dtype=mass.dtype).index_add(
            0, self.row, mass * (log_q - self.log_p)
        )
        total = torch.zeros(N, dtype=mass.dtype).index_add(0, self.row, mass)
        return inner + (1 - total).clamp_min(0) * self.keep

    def kl(self, q):
        """:meth:`kl_of` for a Gaussian ``q`` with batch ``(N,)``."""
        loc, L = gaussian_params(q)
        rows = self.row
        return self.kl_of(_gaussian_log_prob(loc[rows], L[rows], self.z))


def _gaussian_log_prob(loc, L, z):
    """log N(z; loc, L Lᵀ) per point, ``(P,)`` for ``(P, d)``, ``(P, d, d)``,
    d ≤ 2: forward substitution written out (a batched triangular solve of
    millions of 2 × 2 systems is much slower)."""
    r = z - loc
    w1 = r[:, 0] / L[:, 0, 0]
    square, log_det = w1**2, torch.log(L[:, 0, 0])
    if z.shape[-1] == 2:
        w2 = (r[:, 1] - L[:, 1, 0] * w1) / L[:, 1, 1]
        square, log_det = square + w2**2, log_det + torch.log(L[:, 1, 1])
    return -0.5 * square - log_det - 0.5 * z.shape[-1] * math.log(2 * math.pi)


def posterior_points(model, x, tol=None, keep=40.0):
    """:class:`PosteriorPoints` for the rows of ``x``: the lattices of
    :func:`~vaelib.quadrature.log_px_quad` at tolerance ``tol``, their points
    within ``keep`` nats of each row's highest."""
    d, dtype, x, tol = _check(model, x, tol, "nan")
    lattices = _lattices(model, x, tol)
    N = x.shape[0]
    parts, log_px = [], torch.full((N,), math.nan, dtype=dtype)
    for n in range(N):
        lat = lattices[n]
        if lat.reason is None:
            z, log_w, log_joint = lattice.points(lat)
            kept = log_joint >= log_joint.max() - keep
            log_px[n] = lat.value
            row = torch.full((int(kept.sum()),), n)
            parts.append(
                (z[kept], row, log_w[kept], log_joint[kept] - lat.value)
            )
    z, row, log_w, log_p = (
        (torch.cat(t) for t in zip(*parts))
        if parts
        else (
            torch.zeros(0, d, dtype=dtype),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, dtype=dtype),
            torch.zeros(0, dtype=dtype),
        )
    )
    reasons = {n: lattices[n].reason for n in range(N) if lattices[n].reason}
    return PosteriorPoints(z, row, log_w, log_p, log_px, reasons, keep)


def _params(q, family):
    """Unconstrained parameters of the Gaussian ``q`` in ``family``."""
    loc, L = (t.detach().clone() for t in gaussian_params(q))
    if family == "diagonal":
        return [loc, L.diagonal(dim1=-2, dim2=-1).log()]
    raw = L.clone()
    raw.diagonal(dim1=-2, dim2=-1).copy_(L.diagonal(dim1=-2, dim2=-1).log())
    return [loc, raw]


def _scale_tril(params, family):
    loc, scale = params
    if family == "diagonal":
        return loc, torch.diag_embed(scale.exp())
    diagonal = torch.diag_embed(scale.diagonal(dim1=-2, dim2=-1).exp())
    return loc, torch.tril(scale, -1) + diagonal


def _gaussian(params, family):
    loc, L = _scale_tril(params, family)
    if family == "diagonal":
        return diagonal_normal(loc, L.diagonal(dim1=-2, dim2=-1))
    return MultivariateNormal(loc, scale_tril=L)


def best_q(posterior, starts, family="diagonal", max_iter=500):
    """The Gaussian of ``family`` (``"diagonal"`` or ``"full"`` covariance)
    closest to each row's true posterior in KL(q ‖ P(Z|x)), as a Distribution
    with batch ``(N,)``: L-BFGS on the KL by ``posterior`` (a
    :class:`PosteriorPoints`) from each of ``starts`` (Gaussians with batch
    ``(N,)``), keeping per row the start that ends lowest. Rows that quadrature
    refused keep their first start."""
    _validate.choice(family, "family", FAMILIES)
    if not isinstance(starts, (list, tuple)):
        starts = [starts]
    rows = posterior.row
    best, best_kl = None, None
    for start in starts:
        params = [p.requires_grad_() for p in _params(start, family)]
        optimiser = torch.optim.LBFGS(
            params,
            max_iter=max_iter,
            tolerance_grad=1e-10,
            tolerance_change=1e-14,
            line_search_fn="strong_wolfe",
        )

        def kl(params):
            loc, L = _scale_tril(params, family)
            log_q = _gaussian_log_prob(loc[rows], L[rows], posterior.z)
            return posterior.kl_of(log_q)

        def closure():
            optimiser.zero_grad()
            loss = kl(params).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        params = [p.detach() for p in params]
        with torch.no_grad():
            value = kl(params)
        if best is None:
            best, best_kl = params, value
        else:
            better = value < best_kl
            for b, p in zip(best, params):
                b[better] = p[better]
            best_kl = torch.minimum(value, best_kl)
    return _gaussian(best, family)
