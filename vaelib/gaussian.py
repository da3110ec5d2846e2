"""Gaussian distributions as the book uses them: a diagonal ``Independent(Normal)``
or a full ``MultivariateNormal``, both with event shape ``(d,)``.

torch registers KL(Independent ‖ Independent) and KL(MVN ‖ MVN) but not the mixed
pairs; :func:`kl` fills that gap by viewing a diagonal Gaussian as an MVN.
Derived in Chapter 4 (the KL term of the ELBO).
"""

import torch
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal, kl_divergence


def diagonal_normal(loc, scale, validate_args=None):
    """N(loc, diag(scale²)) with event shape ``(d,)``: the usual VAE encoder output.

    ``validate_args=False`` skips torch's elementwise argument and sample checks, which
    cost as much as the density itself on large batches; only for callers that have
    validated their inputs."""
    return Independent(Normal(loc, scale, validate_args=validate_args), 1, validate_args=validate_args)


def gaussian_params(q):
    """``(loc, scale_tril)`` of a Gaussian ``q``: loc ``(..., d)``, scale_tril ``(..., d, d)``
    with ``scale_tril @ scale_tril.mT`` the covariance. ``ValueError`` if ``q`` is not Gaussian."""
    if isinstance(q, MultivariateNormal):
        return q.loc, q.scale_tril
    if (
        isinstance(q, Independent)
        and isinstance(q.base_dist, Normal)
        and q.reinterpreted_batch_ndims == 1
    ):
        return q.base_dist.loc, torch.diag_embed(q.base_dist.scale)
    raise ValueError(
        "q: expected a Gaussian (Independent(Normal(loc, scale), 1) or MultivariateNormal), "
        f"got {type(q).__name__}"
    )


def as_mvn(q):
    """The same Gaussian as a ``MultivariateNormal``."""
    if isinstance(q, MultivariateNormal):
        return q
    loc, scale_tril = gaussian_params(q)
    return MultivariateNormal(loc, scale_tril=scale_tril)


def kl(q, p):
    """KL(q ‖ p) = E_q[log q(z) − log p(z)], in closed form.

    Uses ``torch.distributions.kl_divergence``; a diagonal Gaussian paired with a full one
    is first converted to ``MultivariateNormal``. Raises ``NotImplementedError`` when no
    closed form is known (callers then fall back to Monte Carlo).
    """
    if not isinstance(q, Distribution) or not isinstance(p, Distribution):
        raise ValueError("q, p: expected torch.distributions.Distribution objects")
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        pass
    try:
        q, p = as_mvn(q), as_mvn(p)
    except ValueError:
        raise NotImplementedError(
            f"no closed-form KL({type(q).__name__} ‖ {type(p).__name__})"
        ) from None
    return kl_divergence(q, p)
