"""E_Q[log P(x|z)] for a Gaussian Q by Gauss–Hermite quadrature: the reconstruction
term of the ELBO to near machine precision, for Chapter 5's checks of the identity on
models where it has no closed form."""

import numpy as np
import torch

from ._validate import as_data, check_count, check_q, model_dims
from .gaussian import gaussian_params


def expected_log_likelihood(model, q, x, n_nodes=40):
    """E_{z~Q(Z|x)}[log P(x|z)] ≈ Σ_g w_g log P(x | μ + L u_g) for Gaussian Q = N(μ, LLᵀ),
    with the tensor-product probabilists' Gauss–Hermite rule (nodes u_g, weights w_g
    summing to 1; exact for polynomials of degree < 2·n_nodes in each coordinate).

    Costs n_nodes^d likelihood evaluations per data point, so latent dimension ≤ 3.
    Shape ``(N,)``. Derived in Chapter 5."""
    d, D = model_dims(model)
    if d > 3:
        raise ValueError(f"model: Gauss–Hermite needs latent dimension ≤ 3, got d = {d}")
    check_count(n_nodes, "n_nodes")
    loc, L = gaussian_params(q)
    x = as_data(x, D, loc.dtype)
    check_q(q, x.shape[0], d)
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    grids = np.meshgrid(*[nodes] * d, indexing="ij")
    u = torch.tensor(np.stack(grids, -1).reshape(-1, d), dtype=loc.dtype)
    w = torch.tensor(np.prod(np.meshgrid(*[weights / weights.sum()] * d, indexing="ij"), 0).reshape(-1), dtype=loc.dtype)
    z = loc + torch.einsum("nij,gj->gni", L, u)  # (G, N, d)
    return (w[:, None] * model.likelihood(z).log_prob(x)).sum(0)
