r"""A normalising-flow posterior: one small flow per data point.

    u ~ N(loc, diag(scale²)),    z = T_K ∘ … ∘ T_1(u),

each T_k an affine coupling layer (RealNVP, Dinh et al. 2017). Layer k
keeps the coordinates i with i mod 2 ≠ k mod 2 (the mask m_k marks the
others) and moves the marked ones given the kept ones:

    y = x ⊙ exp(s) + t,
    [t̃, s̃] = W₂ tanh(W₁ ((1 − m_k) ⊙ x) + b₁) + b₂,
    t = m_k ⊙ t̃,   s = m_k ⊙ 2 tanh(s̃ / 2)   (|s| < 2, for stability).

s and t see only the kept coordinates, which pass unchanged (s = t = 0
there), so the layer inverts in closed form, x = (y − t) ⊙ exp(−s) with
s, t computed from y, and its Jacobian is triangular with
log|det ∂T_k/∂x| = Σᵢ sᵢ. Hence

    log q(z) = log N(u; loc, scale²) − Σ_k Σᵢ sᵢ^(k),   u = T⁻¹(z).

Every row n has its own weights (W₁, b₁, W₂, b₂ carry a leading dimension
N), so each data point gets its own flow, fitted by itself. ``mean``,
``variance`` and ``entropy`` have no closed form and are not defined
(torch's base class raises ``NotImplementedError``).

Derived in Chapter 12.
"""

import math

import torch
from torch.distributions import Distribution, Normal, constraints

from . import _validate

_KEYS = ("loc", "log_scale", "w1", "b1", "w2", "b2")


def flow_parameters(
    loc, scale, n_layers=4, hidden=8, generator=None, init_scale=0.01
):
    """Fresh leaf tensors for a :class:`FlowPosterior` around the diagonal
    Gaussian N(loc, diag(scale²)) (``loc``, ``scale`` of shape ``(N, d)``,
    d ≥ 2): ``loc``, ``log_scale`` ``(N, d)``; ``w1`` ``(N, K, H, d)``,
    ``b1`` ``(N, K, H)``, ``w2`` ``(N, K, 2d, H)``, ``b2`` ``(N, K, 2d)``
    (rows 0..d−1 of the output are t̃, rows d..2d−1 are s̃).

    The output layer is ``init_scale`` · N(0, 1), so the flow starts near
    the identity (exactly, for ``init_scale = 0``); W₁ gets the usual
    N(0, 1/d) so that the gradients of W₂ are not zero at the start. The
    caller sets ``requires_grad`` or wraps them in ``nn.Parameter``."""
    loc = torch.as_tensor(loc)
    if not loc.is_floating_point() or loc.ndim != 2:
        raise ValueError(
            f"loc: expected a floating-point tensor of shape (N, d), got "
            f"dtype {loc.dtype} and shape {tuple(loc.shape)}"
        )
    N, d = loc.shape
    if d < 2:
        raise ValueError(
            f"loc: a coupling flow needs d >= 2 coordinates, got d = {d}"
        )
    scale = torch.as_tensor(scale, dtype=loc.dtype)
    if scale.shape != loc.shape:
        raise ValueError(
            f"scale: expected shape {tuple(loc.shape)} like loc, got "
            f"{tuple(scale.shape)}"
        )
    if not (torch.isfinite(scale) & (scale > 0)).all():
        raise ValueError("scale: expected finite values > 0")
    K = _validate.count(n_layers, "n_layers")
    H = _validate.count(hidden, "hidden")
    if not 0 <= float(init_scale) < math.inf:
        raise ValueError(
            f"init_scale: expected a finite value >= 0, got {init_scale!r}"
        )

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=loc.dtype)

    return {
        "loc": loc.detach().clone(),
        "log_scale": scale.detach().log(),
        "w1": randn(N, K, H, d) / math.sqrt(d),
        "b1": torch.zeros(N, K, H, dtype=loc.dtype),
        "w2": init_scale * randn(N, K, 2 * d, H),
        "b2": init_scale * randn(N, K, 2 * d),
    }


class FlowPosterior(Distribution):
    """q(z) = N(T⁻¹(z); loc, scale²) |det ∂T⁻¹/∂z|: batch ``(N,)``, event
    ``(d,)``, built from a dict like :func:`flow_parameters` returns (the
    tensors are used as they are, so gradients reach them)."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, params, validate_args=False):
        missing = [k for k in _KEYS if k not in params]
        if missing:
            raise ValueError(f"params: missing {', '.join(missing)}")
        self.loc, self.log_scale = params["loc"], params["log_scale"]
        self.w1, self.b1 = params["w1"], params["b1"]
        self.w2, self.b2 = params["w2"], params["b2"]
        N, K, H, d = self.w1.shape
        shapes = {
            "loc": (N, d),
            "log_scale": (N, d),
            "b1": (N, K, H),
            "w2": (N, K, 2 * d, H),
            "b2": (N, K, 2 * d),
        }
        for k, shape in shapes.items():
            if tuple(params[k].shape) != shape:
                raise ValueError(
                    f"params: {k} should have shape {shape} (from w1), got "
                    f"{tuple(params[k].shape)}"
                )
        i = torch.arange(d, device=self.loc.device)
        # (K, d): mask[k, i] = 1 where layer k moves coordinate i
        self.mask = (
            i % 2 == torch.arange(K, device=i.device)[:, None] % 2
        ).to(self.loc)
        super().__init__((N,), (d,), validate_args)

    def _coupling(self, k, x):  # (..., N, d) -> t, s of layer k, (..., N, d)
        m = self.mask[k]
        h = torch.tanh(
            torch.einsum("nhd,...nd->...nh", self.w1[:, k], x * (1 - m))
            + self.b1[:, k]
        )  # (..., N, H)
        out = torch.einsum("noh,...nh->...no", self.w2[:, k], h)
        t, s = (out + self.b2[:, k]).chunk(2, dim=-1)
        return m * t, m * 2 * torch.tanh(s / 2)

    def _forward(self, u):  # z = T(u) and log|det ∂T/∂u|, (..., N)
        x, log_det = u, 0
        for k in range(self.mask.shape[0]):
            t, s = self._coupling(k, x)
            x = x * torch.exp(s) + t  # s = t = 0 where the mask is 0
            log_det = log_det + s.sum(-1)
        return x, log_det

    def _inverse(self, z):  # u = T⁻¹(z) and log|det ∂T/∂u| at that u
        y, log_det = z, 0
        for k in reversed(range(self.mask.shape[0])):
            t, s = self._coupling(k, y)  # kept coordinates: y's = x's
            y = (y - t) * torch.exp(-s)
            log_det = log_det + s.sum(-1)
        return y, log_det

    def _base(self):
        return Normal(self.loc, self.log_scale.exp(), validate_args=False)

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)  # (*S, N, d)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self._forward(self.loc + self.log_scale.exp() * eps)[0]

    def log_prob(self, value):
        z = _validate.latent(value, self.event_shape[0], self.loc.dtype)
        if z.ndim < 2 or z.shape[-2] not in (1, self.batch_shape[0]):
            raise ValueError(
                f"z: expected shape (..., {self.batch_shape[0]}, "
                f"{self.event_shape[0]}), got {tuple(z.shape)}"
            )
        z = z.expand(*z.shape[:-2], *self.loc.shape)  # one z for all rows
        u, log_det = self._inverse(z)
        return self._base().log_prob(u).sum(-1) - log_det  # (..., N)
