"""The linear VAE and probabilistic PCA: a VAE whose decoder is linear-Gaussian
with one shared noise level, P(x|z) = N(W z + b, σ² I), and whose encoder is
linear, Q(z|x) = N(V x + c, diag s²) with s a free vector, trained by
:func:`vaelib.train.fit` — and the closed-form maximum-likelihood solution of
the same model, probabilistic PCA (Tipping & Bishop 1999), that the trained VAE
is compared with.

With one shared σ this is pPCA; a separate σⱼ per coordinate would make it
factor analysis, which has no closed-form solution. Derived in Chapter 9.
"""

import math

import torch
from torch import nn

from . import _validate
from .distributions import diagonal_normal
from .models import LatentVariableModel, LinearGaussian


def _data_matrix(x):
    """``x`` as a finite floating-point tensor of shape ``(N, D)`` with N ≥
    2."""
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise ValueError(
            f"x: expected a floating-point tensor, got dtype {x.dtype}"
        )
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(
            f"x: expected shape (N, D) with N >= 2 data points, got "
            f"{tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("x: contains NaN or infinite values")
    return x


def sample_covariance_eigh(x):
    """Eigenvalues (descending) and eigenvectors of the sample covariance
    S = 1/N Σₙ (xₙ − x̄)(xₙ − x̄)ᵀ (the maximum-likelihood normalisation 1/N,
    not 1/(N − 1)), computed in float64. Returns
    ``(mean (D,), eigenvalues (D,), U (D, D))`` with S = U diag(eigenvalues)
    Uᵀ; tiny negative eigenvalues from rounding are set to 0."""
    x = _data_matrix(x).to(torch.float64)
    mean = x.mean(0)
    r = x - mean  # (N, D)
    S = r.mT @ r / x.shape[0]  # (D, D)
    lam, U = torch.linalg.eigh(S)  # ascending
    return mean, lam.flip(0).clamp_min(0.0), U.flip(1)


def ppca_mle(x, latent_dim, sigma=None):
    r"""The closed-form maximum-likelihood probabilistic PCA model of the rows
    of ``x`` (Tipping & Bishop 1999), as a
    :class:`vaelib.models.LinearGaussian`.

    With the sample mean x̄, the sample covariance S = 1/N Σₙ (xₙ − x̄)(xₙ −
    x̄)ᵀ and its eigendecomposition S = U Λ Uᵀ (λ₁ ≥ … ≥ λ_D), the maximiser of
    Σₙ log N(xₙ; b, W Wᵀ + σ² I) is

    - b = x̄;
    - ``sigma=None``: σ² = (λ_{d+1} + … + λ_D) / (D − d), the mean of the
      discarded eigenvalues, and W = U_d (Λ_d − σ² I)^{1/2};
    - ``sigma`` a number: σ is held fixed and W = U_d (max(Λ_d − σ², 0))^{1/2},
      so the columns whose eigenvalue is below σ² are 0 (those latent
      directions are unused).

    W is unique only up to W R for an orthogonal d × d matrix R (and the sign
    of each eigenvector); this returns R = I, columns in order of decreasing
    eigenvalue.

    Args:
        x: ``(N, D)`` data, N ≥ 2 (computed in float64; the model has x's
            dtype).
        latent_dim: d, with d < D when σ is learned (at least one eigenvalue
            must be discarded) and d ≤ D when it is fixed.
        sigma: ``None`` for the maximum-likelihood σ, or a fixed σ > 0.

    Raises ``ValueError`` if the discarded eigenvalues are all 0 up to rounding
    (σ² would be 0: the data lie in a d-dimensional subspace). Derived in
    Chapter 9."""
    x = _data_matrix(x)
    D = x.shape[1]
    d = _validate.count(latent_dim, "latent_dim")
    if sigma is None and d >= D:
        raise ValueError(
            f"latent_dim: expected d < D = {D} when sigma is learned, got {d}"
        )
    if d > D:
        raise ValueError(f"latent_dim: expected d <= D = {D}, got {d}")
    mean, lam, U = sample_covariance_eigh(x)
    if sigma is None:
        var = lam[d:].mean()
        # eigenvalues within rounding of 0 (D ε λ₁) count as 0: then σ² would
        # be 0
        if not var > D * torch.finfo(torch.float64).eps * lam[0]:
            raise ValueError(
                f"latent_dim: the {D - d} discarded eigenvalues of the sample "
                f"covariance are all 0, "
                "so the maximum-likelihood sigma is 0; use a smaller "
                "latent_dim or fix sigma"
            )
    else:
        var = _validate.positive(sigma, "sigma").to(torch.float64) ** 2
    W = U[:, :d] * (lam[:d] - var).clamp_min(0.0).sqrt()  # (D, d)
    return LinearGaussian(
        W.to(x.dtype), mean.to(x.dtype), var.sqrt().to(x.dtype)
    )


class LinearVAE(LatentVariableModel, nn.Module):
    """The linear VAE: P(z) = N(0, I_d), decoder P(x|z) = N(W z + b, σ² I_D)
    with one shared σ, encoder Q(z|x) = N(V x + c, diag s²) with a free vector
    s (the same for every x, as the exact pPCA posterior covariance is).

    Parameters: ``decoder`` (``nn.Linear(d, D)``: weight W ``(D, d)``, bias b
    ``(D,)``), ``encoder`` (``nn.Linear(D, d)``: weight V ``(d, D)``, bias c
    ``(d,)``), ``log_s`` ``(d,)`` (initialised at s = 1) and ``log_sigma`` (a
    scalar parameter initialised at σ = 1 if ``sigma=None``, else a buffer
    holding the fixed σ). W and V start as ``nn.Linear``'s default random
    initialisation (seed torch before building).

    Follows the model contract (``prior()``, ``likelihood(z)``,
    ``posterior(x)``, ``data_dim``, ``latent_dim``, ``dtype``, real
    ``data_support``), so :func:`vaelib.train.fit`,
    :func:`vaelib.estimators.elbo` and :func:`vaelib.estimators.log_px_is`
    apply unchanged; ``dtype`` is the parameters' dtype (``.double()`` for
    float64). :meth:`as_linear_gaussian` gives the decoder as a
    :class:`vaelib.models.LinearGaussian`, with exact log P(x), P(z|x) and
    ELBO.

    Args:
        data_dim: D.
        latent_dim: d.
        sigma: ``None`` to learn σ, or a fixed σ > 0.

    Derived in Chapter 9.
    """

    def __init__(self, data_dim, latent_dim, sigma=None):
        super().__init__()
        self.data_dim = _validate.count(data_dim, "data_dim")
        self.latent_dim = _validate.count(latent_dim, "latent_dim")
        self.decoder = nn.Linear(latent_dim, data_dim)  # W (D, d), b (D,)
        self.encoder = nn.Linear(data_dim, latent_dim)  # V (d, D), c (d,)
        self.log_s = nn.Parameter(torch.zeros(latent_dim))  # (d,)
        if sigma is None:
            self.log_sigma = nn.Parameter(torch.zeros(()))
        else:
            self.register_buffer(
                "log_sigma",
                torch.log(_validate.positive(sigma, "sigma")).to(
                    torch.float32
                ),
            )

    @property
    def dtype(self):
        return self.decoder.weight.dtype

    @property
    def sigma(self):
        """σ, the decoder's noise standard deviation (a 0-d tensor)."""
        return self.log_sigma.exp()

    def _likelihood(self, z):
        loc = self.decoder(z)  # (..., D)
        # z was checked by likelihood(); x is checked by whoever evaluates
        # log_prob.
        return diagonal_normal(
            loc, self.sigma.expand_as(loc), validate_args=False
        )

    def posterior(self, x):
        """Q(Z|x) = N(V x + c, diag s²): batch ``(N,)``, event
        ``(latent_dim,)``, with rsample."""
        loc = self.encoder(_validate.data(self, x))  # (N, d)
        return diagonal_normal(loc, self.log_s.exp().expand_as(loc))

    def as_linear_gaussian(self):
        """The decoder as a :class:`vaelib.models.LinearGaussian` (W, b, σ), a
        detached snapshot of the current parameters in the model's dtype: its
        ``log_marginal(x)`` is the exact log P(x), ``posterior(x)`` the exact
        P(z|x), and ``elbo(x, q)`` the closed-form ELBO of any Gaussian q, e.g.
        ``self.posterior(x)``."""
        return LinearGaussian(
            self.decoder.weight.detach().clone(),
            self.decoder.bias.detach().clone(),
            self.sigma.detach().clone().to(self.dtype),
        )


def ppca_kl_per_dimension(eigenvalues, sigma):
    """The data-averaged KL(Q(z_i|x) ‖ N(0, 1)) of each latent coordinate at
    the optimum of a linear VAE with fixed σ whose coordinate i sits on the
    eigenvector with eigenvalue λᵢ: ½ log(λᵢ / σ²) where λᵢ > σ², and 0 (a
    collapsed coordinate) where λᵢ ≤ σ².

    (At the optimum Q(z_i|x) is the exact posterior: variance sᵢ² = σ²/λᵢ, mean
    with variance (λᵢ − σ²)/λᵢ over the data; the averaged KL ½(E[m²] + s² − 1
    − log s²) reduces to the expression above.) Derived in Chapter 9."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    if lam.ndim != 1 or not torch.isfinite(lam).all() or (lam < 0).any():
        raise ValueError(
            "eigenvalues: expected a vector of finite values >= 0"
        )
    var = _validate.positive(sigma, "sigma").to(torch.float64) ** 2
    return 0.5 * torch.log(torch.maximum(lam, var) / var)


def ppca_active_units(eigenvalues, sigma, latent_dim, threshold=1e-2):
    """The number of active latent coordinates (Cov_x(E_Q[zᵢ]) > threshold,
    :func:`~vaelib.rate.active_units`) at the optimum of a linear VAE with
    fixed σ and ``latent_dim`` L coordinates: coordinate i sits on the
    eigenvector with eigenvalue λᵢ (the L largest), and its posterior mean
    varies over the data with variance (λᵢ − σ²)/λᵢ where λᵢ > σ², 0 where it
    has collapsed (:func:`ppca_kl_per_dimension`). So the count is
    #{i ≤ L : (λᵢ − σ²)/λᵢ > threshold}, about min(L, #{λᵢ > σ²}).
    Derived in Chapters 9 and 11."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    if lam.ndim != 1 or not torch.isfinite(lam).all() or (lam < 0).any():
        raise ValueError(
            "eigenvalues: expected a vector of finite values >= 0"
        )
    var = _validate.positive(sigma, "sigma").to(torch.float64) ** 2
    L = _validate.count(latent_dim, "latent_dim")
    threshold = _validate.positive(threshold, "threshold").item()
    top = lam.sort(descending=True).values[:L]
    spread = (top - var).clamp_min(0) / top.clamp_min(1e-300)
    return int((spread > threshold).sum())
