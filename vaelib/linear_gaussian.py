"""The linear-Gaussian latent-variable model, where every quantity of Part I is
closed-form. Derived in Chapter 1 (marginal), Chapter 3 (posterior) and Chapter 5
(closed-form ELBO)."""

import math

import torch
from torch.distributions import MultivariateNormal

from ._validate import as_data, as_latent, check_positive, check_q
from .gaussian import diagonal_normal, gaussian_params, kl


class LinearGaussian:
    r"""P(z) = N(0, I_d),  P(x|z) = N(W z + b, σ² I_D).

    With the thin SVD W = U diag(s) Vᵀ (k = min(D, d) singular values) and r = x − b:

    - marginal   P(x) = N(x; b, C),  C = W Wᵀ + σ² I_D, so
      log det C = Σᵢ log(sᵢ² + σ²) + (D − k) log σ² and
      rᵀ C⁻¹ r = Σᵢ (Uᵀr)ᵢ² / (sᵢ² + σ²) + ‖r − U Uᵀ r‖² / σ²;
    - posterior  P(z|x) = N(m, Λ⁻¹),  Λ = WᵀW / σ² + I_d,  m = V diag(sᵢ / (sᵢ² + σ²)) Uᵀ r.

    Nothing of size D × D is formed: every method costs O(N D d + D d²). (torch's
    ``LowRankMultivariateNormal(b, W, σ²)`` is the same density at the same cost, but its
    Woodbury form subtracts two large terms and loses about five digits for an
    ill-conditioned W with small σ; here both terms of rᵀC⁻¹r are non-negative.)

    Args:
        W: ``(D, d)`` loading matrix (its dtype is the model's dtype).
        b: ``(D,)`` offset.
        sigma: observation noise standard deviation σ > 0.
    """

    def __init__(self, W, b, sigma):
        W = torch.as_tensor(W)
        if W.ndim != 2 or not W.is_floating_point():
            raise ValueError(f"W: expected a floating-point matrix of shape (D, d), got {tuple(W.shape)}")
        if not torch.isfinite(W).all():
            raise ValueError("W: contains NaN or infinite values")
        self.D, self.d = W.shape
        b = torch.as_tensor(b, dtype=W.dtype)
        if tuple(b.shape) != (self.D,):
            raise ValueError(f"b: expected shape ({self.D},), got {tuple(b.shape)}")
        if not torch.isfinite(b).all():
            raise ValueError("b: contains NaN or infinite values")
        self.W, self.b = W, b
        self.sigma = check_positive(sigma, "sigma").to(W.dtype)
        self._U, self._s, Vh = torch.linalg.svd(W, full_matrices=False)
        self._V = Vh.mT
        self._precision = W.mT @ W / self.sigma**2 + torch.eye(self.d, dtype=W.dtype)

    def prior(self):
        """P(Z) = N(0, I_d)."""
        zeros = torch.zeros(self.d, dtype=self.W.dtype)
        return diagonal_normal(zeros, torch.ones_like(zeros))

    def likelihood(self, z):
        """P(X | Z=z) = N(W z + b, σ² I_D); batch shape ``z.shape[:-1]``."""
        z = as_latent(z, self.d).to(self.W.dtype)
        loc = z @ self.W.mT + self.b
        # z was checked above and σ > 0 at construction: skip torch's elementwise checks.
        return diagonal_normal(loc, self.sigma.expand_as(loc), validate_args=False)

    def log_marginal(self, x):
        """log P(x) = log N(x; b, W Wᵀ + σ² I), exact; shape ``(N,)``."""
        r = as_data(x, self.D, self.W.dtype) - self.b
        var = self._s**2 + self.sigma**2
        proj = r @ self._U  # Uᵀr, (N, k)
        outside = r - proj @ self._U.mT  # the part of r that W cannot reach
        quad = (proj**2 / var).sum(-1) + (outside**2).sum(-1) / self.sigma**2
        k = self._s.numel()
        logdet = torch.log(var).sum() + (self.D - k) * torch.log(self.sigma**2)
        return -0.5 * (self.D * math.log(2 * math.pi) + logdet + quad)

    def posterior(self, x):
        """P(Z | x) = N(m, Λ⁻¹), exact, as a ``MultivariateNormal`` with batch ``(N,)``."""
        r = as_data(x, self.D, self.W.dtype) - self.b
        loc = ((r @ self._U) * (self._s / (self._s**2 + self.sigma**2))) @ self._V.mT
        return MultivariateNormal(loc, precision_matrix=self._precision)

    def elbo(self, x, q):
        """ELBO = E_Q[log P(x|z)] − KL(Q(Z|x) ‖ P(Z)) in closed form for Gaussian ``q``.

        With q = N(μ, S), S = L Lᵀ:
        E_Q[log P(x|z)] = −D/2 log(2πσ²) − (‖x − Wμ − b‖² + tr(Wᵀ W S)) / (2σ²).
        """
        x = as_data(x, self.D, self.W.dtype)
        check_q(q, x.shape[0], self.d)
        mu, L = gaussian_params(q)
        mu, L = mu.to(self.W.dtype), L.to(self.W.dtype)
        resid = x - mu @ self.W.mT - self.b
        trace = ((self.W.mT @ self.W) @ L * L).sum((-2, -1))
        expected_loglik = -0.5 * self.D * torch.log(2 * math.pi * self.sigma**2) - (
            (resid**2).sum(-1) + trace
        ) / (2 * self.sigma**2)
        return expected_loglik - kl(q, self.prior())
