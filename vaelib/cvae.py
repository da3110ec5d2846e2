"""The conditional VAE: P(y|c) = ∫ P(y|z, c) P(z) dz, for an output y (the
pixels to predict) given a condition c (a label, or the pixels that are seen).

**One row per pair.** A data row is x = (c, y): the C condition columns, then
the D output columns. ``likelihood(z)`` is P(y|z, c) as a distribution over
whole rows: its ``log_prob(x)`` reads c from the row and returns log P(y|z, c)
(c itself is not modelled). The prior is Doersch's fixed P(z) = N(0, I), the
encoder Q(z|c, y) sees the whole row. So the model contract holds with
"x" = (c, y), and every estimator, the quadrature and :func:`~vaelib.train.fit`
apply unchanged: ``log_px_quad(cvae, rows)`` is log P(y|c) per row, and
``fit(cvae, rows)`` maximises the conditional ELBO

    E_Q[log P(y|z, c)] − KL(Q(z|c, y) ‖ P(z)).

``uses_z=False`` gives the deterministic baseline: the same decoder fed only c,
trained by the same ``fit`` (its Q goes to the prior, its ELBO to log P(y|c));
its prediction is the mean of P(y|c).

Derived in Chapter 10.
"""

import torch
from torch import nn
from torch.distributions import Distribution, constraints

from . import _validate
from .data import GREY_LEVELS
from .models import LatentVariableModel
from .nets import CategoricalDecoder, GaussianEncoder
from .show import expected_grey_levels


def one_hot(labels, n_classes=10, dtype=torch.float32):
    """Labels ``(N,)`` in 0 … n_classes − 1 as one-hot rows ``(N, n_classes)``
    (the condition of a class-conditional CVAE)."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(
            f"labels: expected integer labels of shape (N,), got dtype "
            f"{labels.dtype} and shape {tuple(labels.shape)}"
        )
    if ((labels < 0) | (labels >= n_classes)).any():
        raise ValueError(
            f"labels: expected values in 0 … {n_classes - 1}, got "
            f"{labels.min().item()} … {labels.max().item()}"
        )
    return nn.functional.one_hot(labels, n_classes).to(dtype)


QUADRANTS = [
    (slice(0, 4), slice(0, 4)),
    (slice(0, 4), slice(4, 8)),
    (slice(4, 8), slice(0, 4)),
]  # in the order they are given; the bottom right is never seen


def quadrant_mask(given):
    """Which of the 8 × 8 pixels are seen when ``given`` quadrants are (1: the
    top left; 2: the top half; 3: all but the bottom right): bool ``(64,)``,
    row-major."""
    if given not in (1, 2, 3):
        raise ValueError(f"given: expected 1, 2 or 3 quadrants, got {given!r}")
    seen = torch.zeros(8, 8, dtype=torch.bool)
    for rows, cols in QUADRANTS[:given]:
        seen[rows, cols] = True
    return seen.reshape(64)


def split_image(x, given):
    """Images ``(N, 64)`` → (seen pixels ``(N, 16·given)``, hidden pixels
    ``(N, 64 − 16·given)``), each in row-major order."""
    seen = quadrant_mask(given)
    return x[..., seen], x[..., ~seen]


def join_image(seen_part, hidden_part, given):
    """The inverse of :func:`split_image`: whole images ``(..., 64)``."""
    seen = quadrant_mask(given)
    shape = torch.broadcast_shapes(
        seen_part.shape[:-1], hidden_part.shape[:-1]
    )
    out = torch.empty(*shape, 64, dtype=hidden_part.dtype)
    out[..., seen] = seen_part.to(out.dtype).expand(*shape, -1)
    out[..., ~seen] = hidden_part.expand(*shape, -1)
    return out


class ConditionalLikelihood(Distribution):
    """P(y|z, c) over rows x = (c, y): batch ``z.shape[:-1]``, event
    ``(C + D,)``. ``log_prob(x)`` broadcasts z's batch against x's rows (a
    grid ``(G, 1, d)`` against ``(N, C + D)`` gives ``(G, N)``) and runs the
    decoder on every (z, c) pair."""

    arg_constraints = {}

    def __init__(self, model, z):
        self.model, self.z = model, z
        super().__init__(
            z.shape[:-1],
            torch.Size([model.data_dim]),
            validate_args=False,
        )

    @property
    def support(self):
        return self.model.data_support

    def log_prob(self, value):
        c, y = self.model.split(value)
        log_p = self.model.decode(self.z, c).log_prob(y)
        # the baseline's decoder never saw z: broadcast over z's batch
        return log_p.expand(
            torch.broadcast_shapes(self.z.shape[:-1], log_p.shape)
        )


class CVAE(LatentVariableModel, nn.Module):
    """A conditional VAE on rows (c, y) of grey levels (module docstring).

    Args:
        cond_dim: C, the condition's width (10 for one-hot labels, the number
            of seen pixels for completion).
        out_dim: D, the number of output pixels (grey levels 0–16, modelled
            by :class:`vaelib.nets.CategoricalDecoder`, rank ``rank``).
        latent_dim: d.
        cond_scale: the condition is multiplied by it before the networks
            (1/16 for grey levels, the default; 1 for one-hot labels).
        uses_z: ``False`` for the baseline that ignores z.
        hidden, activation, rank: as for :class:`vaelib.nets.VAE`.

    ``data_dim`` is C + D (the row's width); ``decode(z, c)`` is P(y|z, c)
    over the D outputs, with batch the broadcast of ``z.shape[:-1]`` and
    ``c.shape[:-1]``."""

    data_support = constraints.integer_interval(0, GREY_LEVELS - 1)

    def __init__(
        self,
        cond_dim,
        out_dim,
        latent_dim,
        cond_scale=1.0 / (GREY_LEVELS - 1),
        uses_z=True,
        hidden=(256, 256),
        activation="silu",
        rank=1,
    ):
        super().__init__()
        self.cond_dim = _validate.count(cond_dim, "cond_dim")
        self.out_dim = _validate.count(out_dim, "out_dim")
        self.latent_dim = _validate.count(latent_dim, "latent_dim")
        self.data_dim = self.cond_dim + self.out_dim
        self.uses_z = bool(uses_z)
        scale = float(_validate.positive(cond_scale, "cond_scale"))
        self.register_buffer(
            "scale",
            torch.cat(
                [
                    torch.full((cond_dim,), scale),
                    torch.full((out_dim,), 1.0 / (GREY_LEVELS - 1)),
                ]
            ),
        )
        net = dict(hidden=hidden, activation=activation)
        self.encoder = GaussianEncoder(self.data_dim, latent_dim, **net)
        inputs = cond_dim + (latent_dim if uses_z else 0)
        self.decoder = CategoricalDecoder(inputs, out_dim, rank=rank, **net)

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def split(self, x):
        """Rows ``(..., C + D)`` → condition ``(..., C)``, output
        ``(..., D)``."""
        return x[..., : self.cond_dim], x[..., self.cond_dim :]

    def rows(self, c, y):
        """The rows (c, y) ``(N, C + D)``, checked (widths, NaN, grey
        levels)."""
        c, y = torch.as_tensor(c), torch.as_tensor(y)
        for t, name, width in (
            (c, "c", self.cond_dim),
            (y, "y", self.out_dim),
        ):
            if t.ndim != 2 or t.shape[-1] != width:
                raise ValueError(
                    f"{name}: expected shape (N, {width}), got "
                    f"{tuple(t.shape)}"
                )
        if c.shape[0] != y.shape[0]:
            raise ValueError(
                f"y: expected {c.shape[0]} rows like c, got {y.shape[0]}"
            )
        return _validate.data(self, torch.cat([c, y], -1).to(self.dtype))

    def decode(self, z, c):
        """P(y|z, c), the decoder on the broadcast of z ``(..., d)`` and c
        ``(..., C)``."""
        c = c * self.scale[: self.cond_dim]
        if not self.uses_z:
            return self.decoder(c)
        batch = torch.broadcast_shapes(z.shape[:-1], c.shape[:-1])
        inputs = [z.expand(*batch, -1), c.expand(*batch, -1)]
        return self.decoder(torch.cat(inputs, -1))

    def _likelihood(self, z):
        return ConditionalLikelihood(self, z)

    def posterior(self, x):
        """Q(z|c, y) for rows x = (c, y): batch ``(N,)``, event ``(d,)``."""
        return self.encoder(_validate.data(self, x) * self.scale)

    @torch.no_grad()
    def complete(self, c, n_samples):
        """``n_samples`` outputs per condition, drawn from P(y|c): z ~ P(z),
        then the expected grey level of each pixel under P(y|z, c) (the
        picture of a sample without per-pixel noise). ``(n_samples, N, D)``."""
        c = torch.as_tensor(c, dtype=self.dtype)
        if c.ndim != 2 or c.shape[-1] != self.cond_dim:
            raise ValueError(
                f"c: expected shape (N, {self.cond_dim}), got {tuple(c.shape)}"
            )
        z = self.prior().sample((n_samples, c.shape[0]))  # (S, N, d)
        means = expected_grey_levels(self.decode(z, c))  # (S or 1, N, D)
        return means.expand(n_samples, -1, -1)
