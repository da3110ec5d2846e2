r"""A Gaussian decoder that also sees the pixels before each one:

    P(x|z) = Πⱼ N(xⱼ; fⱼ(z) + Σ_{i<j} Aⱼᵢ xᵢ, σⱼ²),

pixels in raster order (left to right, top to bottom), A strictly lower
triangular. Without z (f constant) it is a Gaussian with a full covariance,
which can model the pixels' correlations by itself (each pixel's variance
given the earlier ones is σⱼ², so not every covariance): the decoder that does
not need z, with which Chapter 11 makes posterior collapse happen.

Sampling solves x − A x = f(z) + σ ε for x (a unit lower-triangular system),
so a sample costs one triangular solve rather than D sequential steps.

Derived in Chapter 11.
"""

import torch
from torch.distributions import Distribution, Normal, constraints


class AutoregressiveNormal(Distribution):
    """x with xⱼ ~ N(locⱼ + Σ_{i<j} Aⱼᵢ xᵢ, scaleⱼ²): batch
    ``loc.shape[:-1]``, event ``(D,)``; ``A`` ``(D, D)`` (its upper triangle
    and diagonal are ignored), ``scale`` broadcast against ``loc``.

    log P(x) = Σⱼ log N(xⱼ; locⱼ + (A x)ⱼ, scaleⱼ²). Equivalently
    x = (I − A)⁻¹ (loc + scale·ε), ε ~ N(0, I): that is ``rsample``, and
    ``mean`` = (I − A)⁻¹ loc; the covariance (I − A)⁻¹ diag(scale²) (I − A)⁻ᵀ
    is not formed (no ``variance`` or ``entropy``)."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, scale, A, validate_args=False):
        D = loc.shape[-1]
        if A.shape != (D, D):
            raise ValueError(
                f"A: expected shape ({D}, {D}), got {tuple(A.shape)}"
            )
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.A = torch.tril(A, diagonal=-1)
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args)

    def _solve(self, b):  # x with (I − A) x = b, b (..., D)
        eye = torch.eye(self.A.shape[0], dtype=self.A.dtype, device=b.device)
        x = torch.linalg.solve_triangular(
            eye - self.A, b.unsqueeze(-1), upper=False, unitriangular=True
        )
        return x.squeeze(-1)

    @property
    def mean(self):
        return self._solve(self.loc)

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self._solve(self.loc + self.scale * eps)

    def log_prob(self, value):
        shift = value @ self.A.mT  # (..., D): Σ_{i<j} Aⱼᵢ xᵢ
        base = Normal(self.loc + shift, self.scale, validate_args=False)
        return base.log_prob(value).sum(-1)
