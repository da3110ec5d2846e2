"""Latent-variable models: the contract every vaelib function relies on, and
the two reference models of Part I.

A **model** has ``prior()`` — P(Z), event shape ``(d,)`` — and
``likelihood(z)`` — P(X|Z=z), batch shape ``z.shape[:-1]``, event shape
``(D,)``. Any object with those two methods works with the estimators and the
quadrature; subclassing :class:`LatentVariableModel` adds the explicit
dimensions, the dtype rule and the input checks. (The neural-network VAE of
Part II is in :mod:`vaelib.nets`.)"""

import math

import torch
from torch.distributions import (
    Distribution,
    MultivariateNormal,
    constraints,
    kl_divergence,
)
from torch.distributions.utils import lazy_property

from . import _validate
from .distributions import diagonal_normal, gaussian_params


class LatentVariableModel:
    """Base of the book's models: P(z) = N(0, I_d) and a likelihood P(x|z).

    Subclasses set ``latent_dim`` (d) and ``data_dim`` (D) and implement
    ``_likelihood(z)``. **dtype rule:** the model has one dtype
    (``self.dtype``); the prior, and every ``z`` and ``x`` it is given, are in
    that dtype. ``data_support`` is the set of values one coordinate of x can
    take (real numbers unless a subclass says otherwise); data outside it is
    rejected, not silently rounded."""

    data_support = constraints.real

    def prior(self):
        """P(Z) = N(0, I_d)."""
        zeros = torch.zeros(self.latent_dim, dtype=self.dtype)
        return diagonal_normal(zeros, torch.ones_like(zeros))

    def likelihood(self, z):
        """P(X | Z=z) as a ``Distribution`` with batch shape ``z.shape[:-1]``,
        event ``(D,)``."""
        return self._likelihood(
            _validate.latent(z, self.latent_dim, self.dtype)
        )

    def _likelihood(self, z):
        raise NotImplementedError


def log_joint(model, x, z):
    """log P(x, z) = log P(x|z) + log P(z), the integrand of everything in Part
    I.

    ``x`` has shape ``(N, D)``; ``z`` has shape ``(..., N, d)`` (e.g. a stack
    of samples for every data point) or ``(..., 1, d)`` (e.g. a grid shared by
    all data points); the result has shape ``(..., N)``.
    Derived in Chapter 1."""
    d, _, dtype, _ = _validate.model_info(model)
    x = _validate.data(model, x)
    z = _validate.latent(z, d, dtype)
    if z.ndim < 2 or z.shape[-2] not in (1, x.shape[0]):
        raise ValueError(
            f"z: expected shape (..., {x.shape[0]}, {d}) or (..., 1, {d}), "
            f"got {tuple(z.shape)}"
        )
    with _validate.trusted():
        return _log_joint(model, x, z)


def _log_joint(model, x, z):
    """:func:`log_joint` without input checks, for loops over checked
    inputs."""
    return model.likelihood(z).log_prob(x) + model.prior().log_prob(z)


class LinearGaussian(LatentVariableModel):
    r"""P(z) = N(0, I_d),  P(x|z) = N(W z + b, σ² I_D): probabilistic PCA.

    With the thin SVD W = U diag(s) Vᵀ (k = min(D, d) singular values) and r =
    x − b:

    - marginal   P(x) = N(x; b, C),  C = W Wᵀ + σ² I_D, so
      log det C = Σᵢ log(sᵢ² + σ²) + (D − k) log σ² and
      rᵀ C⁻¹ r = Σᵢ (Uᵀr)ᵢ² / (sᵢ² + σ²) + ‖r − U Uᵀ r‖² / σ²;
    - posterior  P(z|x) = N(m, Λ⁻¹),  Λ = WᵀW / σ² + I_d,  m = V diag(sᵢ / (sᵢ²
      + σ²)) Uᵀ r.

    Nothing of size D × D is formed: every method costs O(N D d + D d²).
    (torch's ``LowRankMultivariateNormal(b, W, σ²)`` is the same density at the
    same cost, but its Woodbury form subtracts two large terms and loses about
    five digits for an ill-conditioned W with small σ; here both terms of
    rᵀC⁻¹r are non-negative.) ``W`` and ``b`` may require grad: :meth:`elbo`
    and :meth:`log_marginal` are differentiable (Chapter 9 evaluates a trained
    linear VAE through them).

    Args:
        W: ``(D, d)`` loading matrix (its dtype is the model's dtype).
        b: ``(D,)`` offset.
        sigma: observation noise standard deviation σ > 0.

    Derived in Chapter 1 (marginal), Chapter 3 (posterior) and Chapter 5
    (closed-form ELBO)."""

    def __init__(self, W, b, sigma):
        W = torch.as_tensor(W)
        if W.ndim != 2 or not W.is_floating_point():
            raise ValueError(
                f"W: expected a floating-point matrix of shape (D, d), got "
                f"{tuple(W.shape)}"
            )
        if not torch.isfinite(W).all():
            raise ValueError("W: contains NaN or infinite values")
        self.data_dim, self.latent_dim = W.shape
        self.dtype = W.dtype
        b = torch.as_tensor(b, dtype=W.dtype)
        if tuple(b.shape) != (self.data_dim,):
            raise ValueError(
                f"b: expected shape ({self.data_dim},), got {tuple(b.shape)}"
            )
        if not torch.isfinite(b).all():
            raise ValueError("b: contains NaN or infinite values")
        self.W, self.b = W, b
        self.sigma = _validate.positive(sigma, "sigma").to(W.dtype)
        self._U, self._s, Vh = torch.linalg.svd(W, full_matrices=False)
        self._V = Vh.mT

    def _likelihood(self, z):
        return _LinearGaussianLikelihood(self, z)

    def log_marginal(self, x):
        """log P(x) = log N(x; b, W Wᵀ + σ² I), exact; shape ``(N,)``."""
        r = _validate.data(self, x) - self.b
        var = self._s**2 + self.sigma**2
        proj = r @ self._U  # Uᵀr, (N, k)
        outside = r - proj @ self._U.mT  # the part of r that W cannot reach
        quad = (proj**2 / var).sum(-1) + (outside**2).sum(-1) / self.sigma**2
        k = self._s.numel()
        logdet = torch.log(var).sum() + (self.data_dim - k) * torch.log(
            self.sigma**2
        )
        return -0.5 * (self.data_dim * math.log(2 * math.pi) + logdet + quad)

    def posterior(self, x):
        """P(Z | x) = N(m, Λ⁻¹), exact, as a ``MultivariateNormal`` with batch
        ``(N,)``."""
        r = _validate.data(self, x) - self.b
        loc = (
            (r @ self._U) * (self._s / (self._s**2 + self.sigma**2))
        ) @ self._V.mT
        precision = self.W.mT @ self.W / self.sigma**2 + torch.eye(
            self.latent_dim, dtype=self.dtype
        )
        return MultivariateNormal(loc, precision_matrix=precision)

    def elbo(self, x, q):
        """ELBO = E_Q[log P(x|z)] − KL(Q(Z|x) ‖ P(Z)) in closed form for
        Gaussian ``q``.

        With q = N(μ, S), S = L Lᵀ:
        E_Q[log P(x|z)] = −D/2 log(2πσ²) − (‖x − Wμ − b‖² + tr(Wᵀ W S)) /
        (2σ²)."""
        x = _validate.data(self, x)
        _validate.q_for(q, x.shape[0], self.latent_dim)
        mu, L = (t.to(self.dtype) for t in gaussian_params(q))
        resid = x - mu @ self.W.mT - self.b
        trace = ((self.W.mT @ self.W) @ L * L).sum((-2, -1))
        expected_loglik = -0.5 * self.data_dim * torch.log(
            2 * math.pi * self.sigma**2
        ) - ((resid**2).sum(-1) + trace) / (2 * self.sigma**2)
        return expected_loglik - kl_divergence(q, self.prior())


class _LinearGaussianLikelihood(Distribution):
    """P(X | Z=z) = N(W z + b, σ² I_D) of a :class:`LinearGaussian`: batch
    ``z.shape[:-1]``, event ``(D,)``. With W = U diag(s) Vᵀ and r = x − b,

        ‖x − W z − b‖² = ‖Uᵀr − diag(s) Vᵀz‖² + ‖r − U Uᵀ r‖²,

    so ``log_prob`` costs O(d²) per z (plus O(D d) per x) instead of O(D) per
    pair: the estimators of Part I draw thousands of z per x, and this keeps
    their time and memory traffic independent of D. Both terms are sums of
    squares, so nothing cancels. The mean W z + b is formed only when asked
    (``mean``, ``sample``, ``base_dist``)."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, model, z):
        self._model, self._z = model, z
        super().__init__(z.shape[:-1], (model.data_dim,), validate_args=False)

    @lazy_property
    def mean(self):
        return self._z @ self._model.W.mT + self._model.b

    @property
    def stddev(self):
        return self._model.sigma.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return self.stddev**2

    @lazy_property
    def base_dist(self):
        """The same distribution as ``Independent(Normal(mean, σ), 1)``'s
        base."""
        return diagonal_normal(
            self.mean, self.stddev, validate_args=False
        ).base_dist

    def rsample(self, sample_shape=torch.Size()):
        eps = torch.randn(
            torch.Size(sample_shape) + self.batch_shape + self.event_shape,
            dtype=self._z.dtype,
        )
        return self.mean + self._model.sigma * eps

    def log_prob(self, value):
        m = self._model
        r = value - m.b  # (..., D)
        proj = r @ m._U  # Uᵀr, (..., k)
        outside = ((r - proj @ m._U.mT) ** 2).sum(
            -1
        )  # the part of r that W cannot reach
        reach = (self._z @ m._V) * m._s  # diag(s) Vᵀz, (batch..., k)
        quad = ((proj - reach) ** 2).sum(-1) + outside
        return (
            -0.5 * quad / m.sigma**2
            - m.data_dim * torch.log(m.sigma)
            - 0.5 * m.data_dim * math.log(2 * math.pi)
        )

    def entropy(self):
        m = self._model
        return (
            0.5 * m.data_dim * (1 + math.log(2 * math.pi))
            + m.data_dim * torch.log(m.sigma)
        ).expand(self.batch_shape)

    def expand(self, batch_shape, _instance=None):
        return _LinearGaussianLikelihood(
            self._model, self._z.expand(*batch_shape, self._z.shape[-1])
        )


class NonlinearGaussian(LatentVariableModel):
    """P(z) = N(0, I_d),  P(x|z) = N(f(z), σ² I_D)  for a decoder f: R^d → R^D.

    Args:
        decoder: callable mapping ``(..., d)`` to ``(..., D)`` with torch
            ops (so it works on batches of z); an ``nn.Module`` is fine.
        latent_dim: d.
        sigma: observation noise standard deviation σ > 0.
        dtype: the model's dtype. For an ``nn.Module`` decoder with
            parameters it is always the parameters' dtype (so
            ``decoder.double()`` makes a float64 model).

    Introduced in Chapter 1; its integrals are done by quadrature
    (:mod:`vaelib.quadrature`)."""

    def __init__(self, decoder, latent_dim, sigma, dtype=torch.float64):
        self.decoder = decoder
        self.latent_dim = _validate.count(latent_dim, "latent_dim")
        self._dtype = dtype
        self._sigma = _validate.positive(sigma, "sigma")
        out = decoder(torch.zeros(1, self.latent_dim, dtype=self.dtype))
        if out.ndim != 2 or out.shape[0] != 1:
            raise ValueError(
                f"decoder: expected output of shape (..., D) for input (..., "
                f"d), got {tuple(out.shape)}"
            )
        self.data_dim = out.shape[-1]

    @property
    def dtype(self):
        parameters = getattr(self.decoder, "parameters", None)
        first = next(parameters(), None) if callable(parameters) else None
        return self._dtype if first is None else first.dtype

    @property
    def sigma(self):
        return self._sigma.to(self.dtype)

    @classmethod
    def random_mlp(
        cls,
        latent_dim,
        data_dim,
        sigma,
        hidden=16,
        seed=0,
        dtype=torch.float64,
    ):
        """A fixed random one-hidden-layer decoder f(z) = A tanh(B z + c) + e,
        with weights drawn N(0, 1) (B scaled by 1.5 so that tanh bends) from
        ``seed``."""
        _validate.count(data_dim, "data_dim")
        _validate.count(hidden, "hidden")
        _validate.count(latent_dim, "latent_dim")
        g = torch.Generator().manual_seed(seed)
        B = 1.5 * torch.randn(hidden, latent_dim, generator=g, dtype=dtype)
        c = torch.randn(hidden, generator=g, dtype=dtype)
        A = (
            torch.randn(data_dim, hidden, generator=g, dtype=dtype)
            / hidden**0.5
        )
        e = torch.randn(data_dim, generator=g, dtype=dtype)

        def decoder(z):
            return torch.tanh(z @ B.mT + c) @ A.mT + e

        return cls(decoder, latent_dim, sigma, dtype)

    def _likelihood(self, z):
        loc = self.decoder(z)
        return diagonal_normal(
            loc, self.sigma.expand_as(loc), validate_args=False
        )
