r"""What the latent code carries: rate, distortion and active units.

The ELBO splits into two terms (Alemi et al. 2018), both in nats per image:

    ELBO = −(distortion + rate),
    rate = KL(Q(Z|x) ‖ P(Z)),   distortion = −E_Q[log P(x|z)].

For a diagonal Gaussian Q and a standard normal prior the rate is a sum over
latent coordinates u, KLᵤ = ½(mᵤ² + sᵤ² − 1 − log sᵤ²). A coordinate is
*active* (Burda et al. 2016) when its posterior mean moves with x:
Cov_x(E_Q[zᵤ]) > 10⁻²; an inactive one has collapsed to the prior.

Derived in Chapter 11.
"""

from torch.distributions import Independent, Normal, kl_divergence

from . import _validate
from .estimators import elbo


def _normal_coordinates(dist, name):
    """The per-coordinate Normal of a diagonal Gaussian ``Independent``."""
    base = getattr(dist, "base_dist", None)
    if not (isinstance(dist, Independent) and isinstance(base, Normal)):
        raise ValueError(
            f"{name}: expected a diagonal Gaussian (Independent(Normal)), got "
            f"{type(dist).__name__}"
        )
    return base


def kl_per_dimension(q, prior):
    """KLᵤ = KL(Q(zᵤ|x) ‖ P(zᵤ)) for each row and latent coordinate,
    ``(N, d)``, nats; ``q`` and ``prior`` diagonal Gaussians. Their sum over u
    is KL(Q(Z|x) ‖ P(Z))."""
    q_u = _normal_coordinates(q, "q")
    prior_u = _normal_coordinates(prior, "prior")
    return kl_divergence(q_u, prior_u)


def active_units(q, threshold=1e-2):
    """``(count, variance)``: variance ``(d,)`` is Cov_x(E_Q[zᵤ]), the
    variance over the rows of q's means (denominator N − 1), and count the
    number of coordinates where it exceeds ``threshold`` (Burda et al.'s
    10⁻²). ``q``: batch ``(N,)`` with N ≥ 2, event ``(d,)``."""
    mean = q.mean.detach()
    if mean.ndim != 2 or mean.shape[0] < 2:
        raise ValueError(
            f"q: expected batch (N,) with N >= 2 and event (d,), got mean "
            f"of shape {tuple(mean.shape)}"
        )
    threshold = _validate.positive(threshold, "threshold").item()
    variance = mean.var(0)  # (d,)
    return int((variance > threshold).sum()), variance


def rate_distortion(model, q, x, n_samples):
    """``(rate, distortion, distortion_se)``, each ``(N,)`` in nats: the
    closed-form KL(Q ‖ P(Z)) and −E_Q[log P(x|z)] by Monte Carlo with
    ``n_samples`` draws per row (and its standard error), through
    :func:`~vaelib.estimators.elbo`. The rate needs a closed-form KL
    (``torch.distributions.kl_divergence``; NotImplementedError otherwise)."""
    rate = kl_divergence(q, model.prior())
    value, se = elbo(model, q, x, n_samples, stderr=True)
    return rate, -(value + rate), se
