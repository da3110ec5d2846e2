"""How many prior samples naive Monte Carlo needs, in closed form for the
linear-Gaussian model. Derived in Chapter 2."""

import math

import torch

from ._validate import as_data
from .linear_gaussian import LinearGaussian


def naive_log_second_moment(model, x):
    """log E_{z~P(Z)}[P(x|z)²] for a :class:`LinearGaussian`, exactly.

    A squared Gaussian density is a Gaussian density again:
    N(x; μ, σ²I)² = (4πσ²)^(−D/2) N(x; μ, σ²/2·I), so
    E_{P(z)}[P(x|z)²] = (4πσ²)^(−D/2) N(x; b, WWᵀ + σ²/2·I).  Shape ``(N,)``."""
    if not isinstance(model, LinearGaussian):
        raise ValueError(f"model: expected a LinearGaussian, got {type(model).__name__}")
    x = as_data(x, model.D, model.W.dtype)
    half_noise = LinearGaussian(model.W, model.b, model.sigma / math.sqrt(2))
    return -0.5 * model.D * torch.log(4 * math.pi * model.sigma**2) + half_noise.log_marginal(x)


def naive_log_samples_needed(model, x, rel_err=0.1):
    """log of the number of prior samples S for which the naive estimate of P(x) has
    relative standard error ``rel_err``:

        S = (E[w²] / P(x)² − 1) / rel_err²,   w = P(x|z), z ~ P(Z),

    since Var(1/S Σ wₛ) = (E[w²] − P(x)²) / S. Returned as a natural log because S
    overflows float64 long before it stops growing. Shape ``(N,)``."""
    if not 0 < rel_err < math.inf:
        raise ValueError(f"rel_err: expected a positive number, got {rel_err!r}")
    log_ratio = naive_log_second_moment(model, x) - 2 * model.log_marginal(x)  # ≥ 0
    log_rel_var = log_ratio + torch.log1p(-torch.exp(-log_ratio))  # log(ratio − 1)
    return log_rel_var - 2 * math.log(rel_err)
