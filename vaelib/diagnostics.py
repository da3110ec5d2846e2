"""Diagnostics of importance weights w = P(x, z)/Q(z|x), given as logs: can the
estimate of P(x) they make be trusted?

- :func:`ess`, the effective sample size (Σ w)² / Σ w² (Kong 1992);
- :func:`pareto_khat`, the shape k̂ of a generalised Pareto distribution fitted
  to the largest weights, the diagnostic of Pareto-smoothed importance sampling
  (Vehtari et al. 2024): the weights have finite variance only for k < 1/2,
  and with k̂ above min(1 − 1/log10 S, 0.7) the estimate is unreliable.

Both see only the weights that were drawn: mass that Q misses entirely leaves
no trace in them (Chapter 8 shows it on the digits).
"""

import math

import torch


def _check(log_w, dim):
    log_w = torch.as_tensor(log_w)
    if log_w.ndim == 0 or log_w.shape[dim] < 1:
        raise ValueError(
            f"log_w: expected at least one weight along dim {dim}"
        )
    if torch.isnan(log_w).any():
        raise ValueError("log_w: contains NaN")
    return log_w


def ess(log_w, dim=0):
    """Effective sample size (Σ w)² / Σ w² of importance weights given as logs.

    Equals S for equal weights and 1 when one weight dominates. Derived in
    Chapter 2."""
    log_w = _check(log_w, dim)
    return torch.exp(
        2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim)
    )


def _gpd_shape(y):
    """The shape k of a generalised Pareto distribution fitted to the
    exceedances ``y`` (ascending, positive) by Zhang & Stephens' (2009)
    empirical Bayes method, with the weak prior towards k = 1/2 that PSIS
    uses (Vehtari et al. 2024, appendix)."""
    n = len(y)
    m = 30 + int(math.sqrt(n))
    grid = 1 - torch.sqrt(m / (torch.arange(1, m + 1, dtype=y.dtype) - 0.5))
    theta = grid / (3 * y[int(n / 4 + 0.5) - 1]) + 1 / y[-1]  # (m,) candidates
    k = torch.log1p(-theta[:, None] * y).mean(1)  # profile: k(θ), (m,)
    log_lik = n * (torch.log(-theta / k) - k - 1)
    weights = torch.softmax(log_lik, 0)  # posterior over the candidates
    theta_hat = (weights * theta).sum()
    k_hat = torch.log1p(-theta_hat * y).mean()
    return (n * k_hat + 10 * 0.5) / (n + 10)


def pareto_khat(log_w, dim=0):
    """k̂ of the largest of S importance weights (given as logs along ``dim``):
    the M = min(⌈S/5⌉, ⌈3√S⌉) largest minus the next one, fitted by a
    generalised Pareto distribution (Zhang & Stephens 2009, as in PSIS). Shape
    of ``log_w`` without ``dim``; needs S ≥ 10. k̂ < 0.5: finite variance;
    above min(1 − 1/log10 S, 0.7): the estimate of P(x) is unreliable (Vehtari
    et al. 2024). Derived in Chapter 8."""
    log_w = _check(log_w, dim).movedim(dim, -1)
    S = log_w.shape[-1]
    if S < 10:
        raise ValueError(f"log_w: expected at least 10 weights, got {S}")
    M = min(math.ceil(S / 5), math.ceil(3 * math.sqrt(S)))
    flat = log_w.reshape(-1, S).to(torch.float64)
    out = torch.empty(flat.shape[0], dtype=torch.float64)
    for i, row in enumerate(flat):
        top = torch.sort(row).values[-(M + 1) :]
        w = torch.exp(top - top[-1])  # scaled so the largest is 1
        y = w[1:] - w[0]  # exceedances over the (M+1)-th largest, ascending
        # equal largest weights have no tail at all
        out[i] = -math.inf if (y <= 0).all() else _gpd_shape(y[y > 0])
    return out.reshape(log_w.shape[:-1]).to(log_w.dtype)
