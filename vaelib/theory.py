"""Closed-form second moments of importance weights: how many samples naive
Monte Carlo needs (Chapter 2) and what a mismatched Gaussian proposal costs
(Chapter 3).

Both rest on one fact: the relative variance of an S-sample estimate of P(x) is
(E[w²]/P(x)² − 1)/S, so everything follows from log E[w²]/P(x)².
"""

import math

import torch

from . import _validate
from .models import LinearGaussian


def naive_log_second_moment(model, x):
    """log E_{z~P(Z)}[P(x|z)²] for a :class:`~vaelib.models.LinearGaussian`,
    exactly.

    A squared Gaussian density is a Gaussian density again:
    N(x; μ, σ²I)² = (4πσ²)^(−D/2) N(x; μ, σ²/2·I), so
    E_{P(z)}[P(x|z)²] = (4πσ²)^(−D/2) N(x; b, WWᵀ + σ²/2·I).  Shape ``(N,)``.
    Derived in Chapter 2."""
    if not isinstance(model, LinearGaussian):
        raise ValueError(
            f"model: expected a LinearGaussian, got {type(model).__name__}"
        )
    x = _validate.data(model, x)
    half_noise = LinearGaussian(model.W, model.b, model.sigma / math.sqrt(2))
    return -0.5 * model.data_dim * torch.log(
        4 * math.pi * model.sigma**2
    ) + half_noise.log_marginal(x)


def naive_log_samples_needed(model, x, rel_err=0.1):
    """log of the number of prior samples S for which the naive estimate of
    P(x) has
    relative standard error ``rel_err``:

        S = (E[w²] / P(x)² − 1) / rel_err²,   w = P(x|z), z ~ P(Z),

    since Var(1/S Σ wₛ) = (E[w²] − P(x)²) / S. Returned as a natural log
    because S overflows float64 long before it stops growing. Shape ``(N,)``.
    Derived in Chapter 2."""
    if not 0 < rel_err < math.inf:
        raise ValueError(
            f"rel_err: expected a positive number, got {rel_err!r}"
        )
    log_ratio = naive_log_second_moment(model, x) - 2 * model.log_marginal(
        x
    )  # ≥ 0
    log_rel_var = log_ratio + torch.log1p(
        -torch.exp(-log_ratio)
    )  # log(ratio − 1)
    return log_rel_var - 2 * math.log(rel_err)


def naive_samples_needed_scaling(data_dim, latent_dim, sigma, rel_err=0.1):
    """The scaling law behind :func:`naive_log_samples_needed`, as a log:

        S ≈ (eD / 2σ²)^(d/2) / rel_err²

    for W with independent N(0, 1) entries and D ≫ d. By Bayes' rule
    E[w²]/P(x)² = ∫ P(z|x)² / P(z) dz, the posterior density over the prior
    density averaged over the posterior. With WᵀW ≈ D·I the posterior is N(m,
    σ²/D·I) (width σ/√D in each of the d latent directions), and as σ²/D → 0
    the integral becomes (D/2σ²)^(d/2) exp(‖m‖²/2); a typical x has ‖m‖² ≈ ‖z‖²
    ≈ d (χ²_d, mean d). So this is the mean over x of log S (the log of the
    geometric mean), to O(√(d/D)). Exponential in the latent dimension d,
    polynomial in D and 1/σ. Derived in Chapter 2."""
    _validate.count(data_dim, "data_dim")
    _validate.count(latent_dim, "latent_dim")
    _validate.positive(sigma, "sigma")
    if not 0 < rel_err < math.inf:
        raise ValueError(
            f"rel_err: expected a positive number, got {rel_err!r}"
        )
    return 0.5 * latent_dim * (
        1 + math.log(data_dim / (2 * sigma**2))
    ) - 2 * math.log(rel_err)


def gaussian_is_log_second_moment(shift_sq, scale, d):
    """log E_Q[w²] / P(x)² for importance weights w = P(x|z)P(z)/Q(z|x) when
    the posterior is Gaussian, P(z|x) = N(m, Σ), and the proposal is Q = N(m +
    Lδ, s²Σ) with Σ = LLᵀ (a proposal shifted by δ posterior standard
    deviations and scaled by s; build it with
    :func:`vaelib.distributions.gaussian_proposal`).

    In whitened coordinates each of the d axes contributes
    ∫ N(u; 0, 1)² / N(u; δᵢ, s²) du = s²/√(2s² − 1) · exp(δᵢ² / (2s² − 1)), so

        log E_Q[w²]/P(x)² = d·log(s²/√(2s² − 1)) + ‖δ‖² / (2s² − 1),

    finite only for s² > 1/2: a proposal narrower than that gives weights of
    infinite variance (``inf`` is returned). The relative variance of an
    S-sample estimate of P(x) is (exp(this) − 1)/S, and ESS/S → exp(−this) as S
    grows.

    Args:
        shift_sq: ‖δ‖², the squared shift in posterior standard deviations
            (≥ 0).
        scale: s > 0, the proposal's scale relative to the posterior.
        d: latent dimension.

    Derived in Chapter 3.
    """
    shift_sq = torch.as_tensor(shift_sq, dtype=torch.float64)
    scale = torch.as_tensor(scale, dtype=torch.float64)
    _validate.count(d, "d")
    if (shift_sq < 0).any() or not torch.isfinite(shift_sq).all():
        raise ValueError("shift_sq: expected finite values >= 0")
    if (scale <= 0).any() or not torch.isfinite(scale).all():
        raise ValueError("scale: expected finite values > 0")
    denom = 2 * scale**2 - 1
    finite = denom > 0
    safe = torch.where(finite, denom, torch.ones_like(denom))
    value = d * (torch.log(scale**2) - 0.5 * torch.log(safe)) + shift_sq / safe
    return torch.where(finite, value, torch.full_like(value, math.inf))
