"""Monte Carlo estimators of log P(x) and its lower bounds, for any model with
``prior()`` and ``likelihood(z)``.

All of them are built from log importance weights

    log w(z) = log P(x|z) + log P(z) − log Q(z|x),   z ~ Q(Z|x)

(with Q = P(Z) the weight is just P(x|z)). Everything stays in the log domain and is
vectorised over data points and samples; samples are drawn in chunks of at most
``_memory.MAX_CHUNK_ELEMENTS`` numbers of size N × D, whatever n_samples is.
"""

import math

import torch

from . import _memory
from ._memory import chunk_sizes
from ._validate import as_data, check_count, check_q, model_dims
from .gaussian import kl


def _prepare(model, q, x):
    d, D = model_dims(model)
    x = as_data(x, D)
    if q is not None:
        check_q(q, x.shape[0], d)
    return x


def _log_weights(model, q, x, n):
    """``(n, N)`` log importance weights; ``q=None`` samples from the prior (naive MC)."""
    prior = model.prior()
    if q is None:
        z = prior.sample((n, x.shape[0]))
        return model.likelihood(z).log_prob(x)
    z = q.sample((n,))
    return model.likelihood(z).log_prob(x) + prior.log_prob(z) - q.log_prob(z)


def log_importance_weights(model, q, x, n_samples):
    """All ``(n_samples, N)`` log weights at once (for diagnostics such as :func:`ess`;
    use the estimators below when n_samples is large). ``q=None``: naive, z ~ P(Z).

    Derived in Chapters 2 and 3."""
    x = _prepare(model, q, x)
    return _log_weights(model, q, x, check_count(n_samples, "n_samples"))


def _log_mean_exp(model, q, x, n_samples):
    total = None
    for n in chunk_sizes(n_samples, x.numel()):
        part = torch.logsumexp(_log_weights(model, q, x, n), 0)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(n_samples)


def log_px_naive(model, x, n_samples):
    """log of the naive Monte Carlo estimate  P(x) ≈ 1/S Σₛ P(x|zₛ),  zₛ ~ P(Z).

    The estimate of P(x) is unbiased; its log is biased low (Jensen). Shape ``(N,)``;
    each data point gets its own S prior samples. Derived in Chapter 2."""
    x = _prepare(model, None, x)
    return _log_mean_exp(model, None, x, check_count(n_samples, "n_samples"))


def log_px_is(model, q, x, n_samples):
    """log of the importance-sampling estimate
    P(x) ≈ 1/S Σₛ P(x|zₛ) P(zₛ) / Q(zₛ|x),  zₛ ~ Q(Z|x).

    ``q`` has batch shape ``(N,)``: one proposal per data point. Shape ``(N,)``.
    Derived in Chapter 3."""
    x = _prepare(model, q, x)
    return _log_mean_exp(model, q, x, check_count(n_samples, "n_samples"))


def _mean_and_stderr(draws_sum, draws_sq_sum, n, stderr):
    mean = draws_sum / n
    if not stderr:
        return mean
    var = (draws_sq_sum / n - mean**2).clamp_min(0) * n / max(n - 1, 1)
    return mean, (var / n).sqrt()


def elbo(model, q, x, n_samples, stderr=False):
    """Monte Carlo ELBO = E_Q[log P(x|z)] − KL(Q(Z|x) ‖ P(Z)),  z ~ Q(Z|x).

    The KL is closed-form where torch has one (Gaussian Q and prior); otherwise the
    whole integrand is estimated, E_Q[log P(x|z) + log P(z) − log Q(z|x)]. Shape ``(N,)``;
    with ``stderr=True`` returns ``(estimate, standard error)``. Derived in Chapter 4."""
    x = _prepare(model, q, x)
    check_count(n_samples, "n_samples")
    prior = model.prior()
    try:
        kl_term = kl(q, prior)
    except NotImplementedError:
        kl_term = None
    s1 = s2 = 0.0
    for n in chunk_sizes(n_samples, x.numel()):
        z = q.sample((n,))
        term = model.likelihood(z).log_prob(x)
        if kl_term is None:
            term = term + prior.log_prob(z) - q.log_prob(z)
        s1, s2 = s1 + term.sum(0), s2 + (term**2).sum(0)
    out = _mean_and_stderr(s1, s2, n_samples, stderr)
    if kl_term is None:
        return out
    return (out[0] - kl_term, out[1]) if stderr else out - kl_term


def iwae(model, q, x, k, n_draws=1, stderr=False):
    """The importance-weighted bound  L_k = E[log 1/k Σᵢ w(zᵢ)],  z₁..z_k ~ Q(Z|x),
    estimated by averaging ``n_draws`` independent draws of the k-sample log-mean weight.

    L_1 is the ELBO; L_k rises with k towards log P(x) (Burda et al. 2015). One draw of
    L_k is exactly :func:`log_px_is` with k samples. Shape ``(N,)``; ``stderr=True``
    returns ``(estimate, standard error over draws)``. Derived in Chapter 8."""
    x = _prepare(model, q, x)
    check_count(k, "k")
    check_count(n_draws, "n_draws")
    s1 = s2 = 0.0
    if k * x.numel() <= _memory.MAX_CHUNK_ELEMENTS:
        for c in chunk_sizes(n_draws, k * x.numel()):
            log_w = _log_weights(model, q, x, c * k).reshape(c, k, -1)
            bound = torch.logsumexp(log_w, 1) - math.log(k)
            s1, s2 = s1 + bound.sum(0), s2 + (bound**2).sum(0)
    else:  # a single draw does not fit in one chunk: stream its k samples
        for _ in range(n_draws):
            bound = _log_mean_exp(model, q, x, k)
            s1, s2 = s1 + bound, s2 + bound**2
    return _mean_and_stderr(s1, s2, n_draws, stderr)


def ess(log_w, dim=0):
    """Effective sample size (Σ w)² / Σ w² of importance weights given as logs.

    Equals S for equal weights and 1 when one weight dominates. Derived in Chapter 2."""
    log_w = torch.as_tensor(log_w)
    if log_w.ndim == 0 or log_w.shape[dim] < 1:
        raise ValueError(f"log_w: expected at least one weight along dim {dim}")
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))
