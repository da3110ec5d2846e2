"""How good an importance-sampling proposal is, in closed form when the posterior is
Gaussian. Derived in Chapter 3."""

import math

import torch
from torch.distributions import MultivariateNormal

from ._validate import check_count


def gaussian_is_log_second_moment(shift_sq, scale, d):
    """log E_Q[w²] / P(x)² for importance weights w = P(x|z)P(z)/Q(z|x) when the posterior
    is Gaussian, P(z|x) = N(m, Σ), and the proposal is Q = N(m + Lδ, s²Σ) with Σ = LLᵀ
    (a proposal shifted by δ posterior standard deviations and scaled by s).

    In whitened coordinates each of the d axes contributes
    ∫ N(u; 0, 1)² / N(u; δᵢ, s²) du = s²/√(2s² − 1) · exp(δᵢ² / (2s² − 1)), so

        log E_Q[w²]/P(x)² = d·log(s²/√(2s² − 1)) + ‖δ‖² / (2s² − 1),

    finite only for s² > 1/2: a proposal narrower than that gives weights of infinite
    variance (``inf`` is returned). The relative variance of an S-sample estimate of P(x)
    is (exp(this) − 1)/S, and ESS/S → exp(−this) as S grows.

    Args:
        shift_sq: ‖δ‖², the squared shift in posterior standard deviations (≥ 0).
        scale: s > 0, the proposal's scale relative to the posterior.
        d: latent dimension.
    """
    shift_sq = torch.as_tensor(shift_sq, dtype=torch.float64)
    scale = torch.as_tensor(scale, dtype=torch.float64)
    check_count(d, "d")
    if (shift_sq < 0).any() or not torch.isfinite(shift_sq).all():
        raise ValueError("shift_sq: expected finite values >= 0")
    if (scale <= 0).any() or not torch.isfinite(scale).all():
        raise ValueError("scale: expected finite values > 0")
    denom = 2 * scale**2 - 1
    finite = denom > 0
    safe = torch.where(finite, denom, torch.ones_like(denom))
    value = d * (torch.log(scale**2) - 0.5 * torch.log(safe)) + shift_sq / safe
    return torch.where(finite, value, torch.full_like(value, math.inf))


def gaussian_proposal(posterior, shift, scale):
    """Q = N(m + Lδ, s²Σ): a Gaussian posterior N(m, Σ = LLᵀ) (``MultivariateNormal``, batch
    ``(N,)``) moved by ``shift`` δ (shape ``(d,)``, in posterior standard deviations along
    L's axes) and widened by ``scale`` s > 0 — the proposals of
    :func:`gaussian_is_log_second_moment`. Derived in Chapter 3."""
    if not isinstance(posterior, MultivariateNormal):
        raise ValueError(f"posterior: expected a MultivariateNormal, got {type(posterior).__name__}")
    L = posterior.scale_tril
    shift = torch.as_tensor(shift, dtype=L.dtype)
    if shift.shape != posterior.event_shape:
        raise ValueError(f"shift: expected shape {tuple(posterior.event_shape)}, got {tuple(shift.shape)}")
    if not 0 < float(scale) < math.inf:
        raise ValueError(f"scale: expected a finite value > 0, got {scale!r}")
    return MultivariateNormal(posterior.loc + (L @ shift[:, None])[..., 0], scale_tril=scale * L)
