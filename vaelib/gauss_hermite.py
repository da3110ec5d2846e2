"""Gauss–Hermite quadrature: expectations under a Gaussian, for latent
dimension ≤ 3.

Two uses in the book: P(x) as an average over the prior, E_{z~P(Z)}[P(x|z)]
(Chapter 1, accurate only while the likelihood is broad), and the
reconstruction term of the ELBO, E_{z~Q(Z|x)}[log P(x|z)], to near machine
precision (Chapter 5). Both evaluate the likelihood at n_nodes^d points per
data point, in chunks of bounded size."""

import numpy as np
import torch

from . import _validate
from ._grids import chunks, product
from .distributions import gaussian_params

MAX_NODES = (
    300  # numpy's Gauss–Hermite weights underflow to 0 beyond about 360 nodes
)


def _rule(n_nodes, d, dtype):
    """Tensor-product probabilists' rule for N(0, I_d): nodes ``(G, d)``, log
    weights ``(G,)`` summing (in probability) to 1; exact for polynomials of
    degree < 2·n_nodes per axis."""
    _validate.count(n_nodes, "n_nodes")
    if n_nodes > MAX_NODES:
        raise ValueError(
            f"n_nodes: expected at most {MAX_NODES} (the weights underflow "
            f"beyond), got {n_nodes}"
        )
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    t = torch.tensor(nodes, dtype=dtype)
    log_w = torch.tensor(np.log(weights / weights.sum()), dtype=dtype)
    return product([t] * d), product([log_w] * d).sum(-1)


def _dims(model):
    d, D, dtype, _ = _validate.model_info(model)
    if d > 3:
        raise ValueError(
            f"model: Gauss–Hermite needs latent dimension <= 3, got d = {d}"
        )
    return d, D, dtype


@torch.no_grad()
def log_px_prior_gh(model, x, n_nodes=40):
    """log E_{z~P(Z)}[P(x|z)] ≈ logsumexp_g(log w_g + log P(x|u_g)) for the
    prior P(Z) = N(0, I_d), with Gauss–Hermite nodes u_g and weights w_g.

    Accurate when P(x|z) is smooth on the prior's scale (a broad likelihood);
    *not* when P(x|z) is sharply peaked: all nodes then miss the peak — the
    same failure as sampling from the prior (Chapter 2). ``n_nodes`` ≤ 300,
    latent dimension ≤ 3. ``x`` has shape ``(N, D)``; returns ``(N,)`` in nats
    per data point. Derived in Chapter 1."""
    d, D, dtype = _dims(model)
    x = _validate.data(model, x)
    u, log_w = _rule(n_nodes, d, dtype)
    out = torch.empty(x.shape[0], dtype=dtype)
    with _validate.trusted():
        for part in chunks(x.shape[0], u.shape[0] * D):
            log_lik = model.likelihood(u[:, None, :]).log_prob(
                x[part]
            )  # (G, n)
            out[part] = torch.logsumexp(log_w[:, None] + log_lik, dim=0)
    return out


def expected_log_likelihood(model, q, x, n_nodes=40):
    """E_{z~Q(Z|x)}[log P(x|z)] ≈ Σ_g w_g log P(x | μ + L u_g) for a Gaussian
    Q = N(μ, L Lᵀ), with the Gauss–Hermite rule for N(0, I_d).

    Differentiable in q's and the model's parameters. Latent dimension ≤ 3;
    returns shape ``(N,)``. Derived in Chapter 5."""
    d, D, dtype = _dims(model)
    x = _validate.data(model, x)
    _validate.q_for(q, x.shape[0], d)
    loc, L = (t.to(dtype) for t in gaussian_params(q))
    u, log_w = _rule(n_nodes, d, dtype)
    w = log_w.exp()
    parts = []
    with _validate.trusted():
        for part in chunks(x.shape[0], u.shape[0] * D):
            z = loc[part] + torch.einsum(
                "nij,gj->gni", L[part], u
            )  # (G, n, d)
            parts.append(
                (w[:, None] * model.likelihood(z).log_prob(x[part])).sum(0)
            )
    return torch.cat(parts)
