"""Gaussians as the book uses them: a diagonal ``Independent(Normal)`` or a
full ``MultivariateNormal``, both with event shape ``(d,)``.

torch registers KL(Independent ‖ Independent) and KL(MVN ‖ MVN) but not the
mixed pairs (a diagonal encoder against a full-covariance posterior, Chapter
5); importing vaelib registers them with ``torch.distributions.register_kl``,
so ``kl_divergence`` just works. Derived in Chapter 4 (the KL term of the
ELBO)."""

import math

import torch
from torch.distributions import (
    Independent,
    MultivariateNormal,
    Normal,
    kl_divergence,
    register_kl,
)


def diagonal_normal(loc, scale, validate_args=None):
    """N(loc, diag(scale²)) with event shape ``(d,)``: the usual VAE encoder
    output.

    ``validate_args=False`` skips torch's elementwise argument and sample
    checks, which cost as much as the density itself on large batches; only for
    callers that have validated their inputs."""
    return Independent(
        Normal(loc, scale, validate_args=validate_args),
        1,
        validate_args=validate_args,
    )


def _is_diagonal_normal(q):
    return (
        isinstance(q, Independent)
        and isinstance(q.base_dist, Normal)
        and q.reinterpreted_batch_ndims == 1
    )


def gaussian_params(q):
    """``(loc, scale_tril)`` of a Gaussian ``q``: loc ``(..., d)``, scale_tril
    ``(..., d, d)`` with ``scale_tril @ scale_tril.mT`` the covariance.
    ``ValueError`` if ``q`` is not Gaussian."""
    if isinstance(q, MultivariateNormal):
        return q.loc, q.scale_tril
    if _is_diagonal_normal(q):
        return q.base_dist.loc, torch.diag_embed(q.base_dist.scale)
    raise ValueError(
        "q: expected a Gaussian (Independent(Normal(loc, scale), 1) or "
        "MultivariateNormal), "
        f"got {type(q).__name__}"
    )


def as_mvn(q):
    """The same Gaussian as a ``MultivariateNormal``."""
    if isinstance(q, MultivariateNormal):
        return q
    loc, scale_tril = gaussian_params(q)
    return MultivariateNormal(loc, scale_tril=scale_tril)


@register_kl(Independent, MultivariateNormal)
def _kl_diagonal_full(q, p):
    if not _is_diagonal_normal(q):
        raise NotImplementedError
    return kl_divergence(as_mvn(q), p)


@register_kl(MultivariateNormal, Independent)
def _kl_full_diagonal(q, p):
    if not _is_diagonal_normal(p):
        raise NotImplementedError
    return kl_divergence(q, as_mvn(p))


def gaussian_proposal(posterior, shift, scale):
    """Q = N(m + Lδ, s²Σ): a Gaussian posterior N(m, Σ = LLᵀ)
    (``MultivariateNormal``, batch ``(N,)``) moved by ``shift`` δ (shape
    ``(d,)``, in posterior standard deviations along the Cholesky axes, the
    columns of L) and widened by ``scale`` s > 0.

    These are the proposals whose importance weights
    :func:`vaelib.theory.gaussian_is_log_second_moment` describes in closed
    form. Derived in Chapter 3."""
    if not isinstance(posterior, MultivariateNormal):
        raise ValueError(
            f"posterior: expected a MultivariateNormal, got "
            f"{type(posterior).__name__}"
        )
    L = posterior.scale_tril
    shift = torch.as_tensor(shift, dtype=L.dtype)
    if shift.shape != posterior.event_shape:
        raise ValueError(
            f"shift: expected shape {tuple(posterior.event_shape)}, got "
            f"{tuple(shift.shape)}"
        )
    if not 0 < float(scale) < math.inf:
        raise ValueError(f"scale: expected a finite value > 0, got {scale!r}")
    return MultivariateNormal(
        posterior.loc + (L @ shift[:, None])[..., 0], scale_tril=scale * L
    )
