"""Monte Carlo estimators of log P(x) and its lower bounds, for any model with
``prior()`` and ``likelihood(z)``.

All of them are built from log importance weights

    log w(z) = log P(x|z) + log P(z) − log Q(z|x),   z ~ Q(Z|x)

(with Q = P(Z) the weight is just P(x|z)). Everything stays in the log domain
and is vectorised over data points and samples; samples are drawn in chunks of
at most ``_grids.MAX_CHUNK_ELEMENTS`` numbers of size N × D, whatever the
sample count.

**Gradients.** The estimators are differentiable in the model's and q's
parameters. With ``gradient="reparam"`` (the default when ``q.has_rsample``) z
= g(ε; q) is drawn with ``rsample``, so gradients flow through z: the
reparameterisation trick (Kingma & Welling 2014). With ``gradient="score"``
(the default otherwise) z is drawn without a path and the score-function
(REINFORCE) term f(z)·∇ log Q(z|x) is added to the gradient. Both give unbiased
estimates of the gradient of the quantity's expectation; Chapter 6 measures
their variance."""

import math

import torch
from torch.distributions import kl_divergence

from . import _grids, _validate
from ._grids import chunks
from .models import _log_joint


def _prepare(model, q, x):
    d, _, _, _ = _validate.model_info(model)
    x = _validate.data(model, x)
    if q is not None:
        _validate.q_for(q, x.shape[0], d)
    return x


def _gradient_mode(q, gradient):
    if gradient is None:
        return "reparam" if q.has_rsample else "score"
    _validate.choice(gradient, "gradient", ("reparam", "score"))
    if gradient == "reparam" and not q.has_rsample:
        raise ValueError(
            f"gradient: 'reparam' needs a q with rsample, and "
            f"{type(q).__name__} has none"
        )
    return gradient


def _with_score(value, log_q):
    """``value`` unchanged, with value·∇ log q added to its gradient (score
    function)."""
    return value + value.detach() * (log_q - log_q.detach())


def _log_weights(model, q, x, n, mode):
    """``(n, N)`` log importance weights and ``(n, N)`` log Q(z|x) (None for
    naive MC, ``q=None``, which samples the prior)."""
    prior = model.prior()
    if q is None:
        z = prior.rsample((n, x.shape[0]))
        return model.likelihood(z).log_prob(x), None
    z = q.rsample((n,)) if mode == "reparam" else q.sample((n,))
    log_q = q.log_prob(z)
    return _log_joint(model, x, z) - log_q, log_q


def log_importance_weights(model, q, x, n_samples):
    """All ``(n_samples, N)`` log weights at once (for diagnostics such as
    :func:`~vaelib.diagnostics.ess`; use the estimators below when n_samples
    is large). ``q=None``: naive, z ~ P(Z).

    Derived in Chapters 2 and 3."""
    x = _prepare(model, q, x)
    n = _validate.count(n_samples, "n_samples")
    with _validate.trusted():
        return _log_weights(
            model, q, x, n, None if q is None else _gradient_mode(q, None)
        )[0]


def _log_mean_weight(model, q, x, n_samples, mode):
    """log 1/S Σₛ wₛ over S = n_samples draws, streamed in chunks; ``(N,)``."""
    total = None
    log_q_sum = 0.0
    for part in chunks(n_samples, x.numel()):
        log_w, log_q = _log_weights(model, q, x, part.stop - part.start, mode)
        part = torch.logsumexp(log_w, 0)
        total = part if total is None else torch.logaddexp(total, part)
        if mode == "score":
            log_q_sum = log_q_sum + log_q.sum(0)
    value = total - math.log(n_samples)
    return _with_score(value, log_q_sum) if mode == "score" else value


def log_px_naive(model, x, n_samples):
    """log of the naive Monte Carlo estimate  P(x) ≈ 1/S Σₛ P(x|zₛ),  zₛ ~
    P(Z).

    The estimate of P(x) is unbiased; its log is biased low (Jensen). Shape
    ``(N,)``; each data point gets its own S prior samples. Derived in Chapter
    2."""
    x = _prepare(model, None, x)
    n = _validate.count(n_samples, "n_samples")
    with _validate.trusted():
        return _log_mean_weight(model, None, x, n, None)


def log_px_is(model, q, x, n_samples, *, gradient=None):
    """log of the importance-sampling estimate
    P(x) ≈ 1/S Σₛ P(x|zₛ) P(zₛ) / Q(zₛ|x),  zₛ ~ Q(Z|x).

    ``q`` has batch shape ``(N,)``: one proposal per data point. Shape
    ``(N,)``. ``gradient``: ``"reparam"`` or ``"score"`` (module docstring).
    Derived in Chapter 3."""
    x = _prepare(model, q, x)
    n = _validate.count(n_samples, "n_samples")
    mode = _gradient_mode(q, gradient)
    with _validate.trusted():
        return _log_mean_weight(model, q, x, n, mode)


def _mean_and_stderr(total, total_sq, n, stderr):
    mean = total / n
    if not stderr:
        return mean
    var = (total_sq / n - mean.detach() ** 2).clamp_min(0) * n / max(n - 1, 1)
    return mean, (var / n).sqrt()


def elbo(model, q, x, n_samples, stderr=False, *, gradient=None):
    """Monte Carlo ELBO = E_Q[log P(x|z)] − KL(Q(Z|x) ‖ P(Z)),  z ~ Q(Z|x).

    The KL is closed-form where torch has one (``kl_divergence``; Gaussian Q
    and prior), and then only the reconstruction term is sampled; otherwise the
    whole integrand E_Q[log P(x|z) + log P(z) − log Q(z|x)] is. Shape ``(N,)``,
    nats per data point; with ``stderr=True`` returns
    ``(estimate, standard error)``. ``gradient``: ``"reparam"`` or ``"score"``
    (module docstring). Derived in Chapter 4; its gradients in Chapter 6."""
    x = _prepare(model, q, x)
    n_samples = _validate.count(n_samples, "n_samples")
    mode = _gradient_mode(q, gradient)
    prior = model.prior()
    try:
        kl_term = kl_divergence(q, prior)
    except NotImplementedError:
        kl_term = None
    total = total_sq = 0.0
    with _validate.trusted():
        for part in chunks(n_samples, x.numel()):
            n = part.stop - part.start
            z = q.rsample((n,)) if mode == "reparam" else q.sample((n,))
            term = model.likelihood(z).log_prob(x)  # (n, N)
            if kl_term is None or mode == "score":
                log_q = q.log_prob(z)
            if kl_term is None:
                term = term + prior.log_prob(z) - log_q
            if mode == "score":
                term = _with_score(term, log_q)
            total, total_sq = (
                total + term.sum(0),
                total_sq + (term.detach() ** 2).sum(0),
            )
    out = _mean_and_stderr(total, total_sq, n_samples, stderr)
    if kl_term is None:
        return out
    return (out[0] - kl_term, out[1]) if stderr else out - kl_term


def iwae(model, q, x, k, n_draws=1, stderr=False, *, gradient=None):
    """The importance-weighted bound  L_k = E[log 1/k Σᵢ w(zᵢ)],  z₁..z_k ~
    Q(Z|x), estimated by averaging ``n_draws`` independent draws of the
    k-sample log-mean weight.

    L_1 is the ELBO; L_k rises with k towards log P(x) (Burda et al. 2016). One
    draw of L_k is exactly :func:`log_px_is` with k samples; its
    reparameterised gradient is the IWAE gradient Σᵢ w̃ᵢ ∇ log w(zᵢ), w̃ᵢ = wᵢ
    / Σⱼ wⱼ. Shape ``(N,)``; ``stderr=True`` returns
    ``(estimate, standard error over draws)``. Derived in Chapter 8."""
    x = _prepare(model, q, x)
    k = _validate.count(k, "k")
    n_draws = _validate.count(n_draws, "n_draws")
    mode = _gradient_mode(q, gradient)
    total = total_sq = 0.0
    with _validate.trusted():
        if k * x.numel() <= _grids.MAX_CHUNK_ELEMENTS:
            for part in chunks(n_draws, k * x.numel()):
                c = part.stop - part.start
                log_w, log_q = _log_weights(model, q, x, c * k, mode)
                B, N = c, x.shape[0]
                bound = torch.logsumexp(log_w.reshape(B, k, N), 1) - math.log(
                    k
                )  # (B, N)
                if mode == "score":
                    bound = _with_score(bound, log_q.reshape(B, k, N).sum(1))
                total, total_sq = (
                    total + bound.sum(0),
                    total_sq + (bound.detach() ** 2).sum(0),
                )
        else:  # a single draw does not fit in one chunk: stream its k samples
            for _ in range(n_draws):
                bound = _log_mean_weight(model, q, x, k, mode)
                total, total_sq = total + bound, total_sq + bound.detach() ** 2
    return _mean_and_stderr(total, total_sq, n_draws, stderr)
