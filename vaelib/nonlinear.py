"""A latent-variable model with a nonlinear decoder, where P(x) has no closed form.
Introduced in Chapter 1; its integrals are done by quadrature (``vaelib.quadrature``)."""

import torch

from ._validate import as_latent, check_count, check_positive
from .gaussian import diagonal_normal


class NonlinearGaussian:
    """P(z) = N(0, I_d),  P(x|z) = N(f(z), σ² I_D)  for a decoder f: R^d → R^D.

    Args:
        decoder: callable mapping ``(..., d)`` to ``(..., D)`` (torch ops, so it works on
            batches of z).
        latent_dim: d.
        sigma: observation noise standard deviation σ > 0.
        dtype: floating dtype of the prior (and of the z given to the decoder).
    """

    def __init__(self, decoder, latent_dim, sigma, dtype=torch.float64):
        self.decoder = decoder
        self.d = check_count(latent_dim, "latent_dim")
        self.dtype = dtype
        self.sigma = check_positive(sigma, "sigma").to(dtype)

    @classmethod
    def random_mlp(cls, latent_dim, data_dim, sigma, hidden=16, seed=0, dtype=torch.float64):
        """A fixed random one-hidden-layer decoder f(z) = A tanh(B z + c) + e, with
        weights drawn N(0, 1) (B scaled by 1.5 so that tanh bends) from ``seed``."""
        check_count(data_dim, "data_dim")
        check_count(hidden, "hidden")
        g = torch.Generator().manual_seed(seed)
        B = 1.5 * torch.randn(hidden, latent_dim, generator=g, dtype=dtype)
        c = torch.randn(hidden, generator=g, dtype=dtype)
        A = torch.randn(data_dim, hidden, generator=g, dtype=dtype) / hidden**0.5
        e = torch.randn(data_dim, generator=g, dtype=dtype)

        def decoder(z):
            return torch.tanh(z @ B.mT + c) @ A.mT + e

        return cls(decoder, latent_dim, sigma, dtype)

    def prior(self):
        """P(Z) = N(0, I_d)."""
        zeros = torch.zeros(self.d, dtype=self.dtype)
        return diagonal_normal(zeros, torch.ones_like(zeros))

    def likelihood(self, z):
        """P(X | Z=z) = N(f(z), σ² I_D); batch shape ``z.shape[:-1]``."""
        loc = self.decoder(as_latent(z, self.d).to(self.dtype))
        # z was checked above and σ > 0 at construction: skip torch's elementwise checks.
        return diagonal_normal(loc, self.sigma.expand_as(loc), validate_args=False)
