"""Neural networks that return distributions: a Gaussian encoder Q(z|x),
decoders P(x|z) for grey levels (categorical), binary pixels (Bernoulli) and
real values (Gaussian), and :class:`VAE`, which puts them together under the
model contract of :mod:`vaelib.models` — so every estimator and the quadrature
apply to it unchanged.

**Smooth activations** (ELU, SiLU, tanh, softplus; no ReLU). Chapters 7 and 8
integrate a trained decoder over z by the trapezoid rule, whose error falls
geometrically as the spacing h halves only when the integrand is analytic; the
kinks of a ReLU network make it fall like h², too slowly for the 1e-6-nat
checks (:mod:`vaelib.quadrature`). SiLU, tanh and softplus are analytic. ELU,
the default for the 16-dimensional digits model (best on validation,
``benchmarks/README.md``), is only once differentiable (its second derivative
jumps at 0): give a model that a chapter integrates ``activation="silu"``.

Introduced in Chapter 6.
"""

import math

import torch
from torch import nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    constraints,
)
from torch.distributions.utils import lazy_property

from . import _validate
from .autoregressive import AutoregressiveNormal
from .data import GREY_LEVELS
from .distributions import diagonal_normal
from .models import LatentVariableModel

ACTIVATIONS = {
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}
LIKELIHOODS = ("categorical", "bernoulli", "gaussian")


def mlp(sizes, activation="elu", dropout=0.0):
    """Fully connected network sizes[0] → sizes[1] → … → sizes[-1], with
    ``activation`` (and dropout with probability ``dropout``) after every layer
    but the last."""
    _validate.choice(activation, "activation", tuple(ACTIVATIONS))
    if not 0 <= dropout < 1:
        raise ValueError(
            f"dropout: expected a probability in [0, 1), got {dropout!r}"
        )
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def _hidden(hidden):
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    for h in hidden:
        _validate.count(h, "hidden")
    return hidden


class GaussianEncoder(nn.Module):
    """Q(z|x) = N(μ(x), diag σ(x)²): one network outputs μ and ρ, and σ =
    softplus(ρ) (smooth, and it grows only linearly, so a large ρ cannot
    overflow as exp would).

    ``forward(x)`` takes ``(N, D)`` (multiplied by ``input_scale`` first, e.g.
    1/16 for grey levels) and returns ``Independent(Normal)`` with batch
    ``(N,)``, event ``(latent_dim,)``, which has ``rsample``."""

    def __init__(
        self,
        data_dim,
        latent_dim,
        hidden=(256, 256),
        activation="elu",
        dropout=0.0,
        input_scale=1.0,
    ):
        super().__init__()
        self.input_scale = input_scale
        self.net = mlp(
            (data_dim, *_hidden(hidden), 2 * latent_dim), activation, dropout
        )

    def forward(self, x):
        loc, rho = self.net(x * self.input_scale).chunk(2, dim=-1)
        return diagonal_normal(loc, nn.functional.softplus(rho))


class _Categorical(Categorical):
    """``Categorical`` over the last axis with logits ℓ = ``offset`` + ``a`` @
    ``basis``ᵀ (or ℓ = ``a`` without a basis), formed only when asked:
    sampling, ``probs`` and ``entropy`` are torch's, on the logits;
    :class:`PixelCategorical` reads its log-density straight from the
    factors."""

    def __init__(self, a, basis=None, offset=None):
        self._a, self._basis, self._offset = a, basis, offset
        self._num_events = a.shape[-1] if basis is None else basis.shape[0]
        Distribution.__init__(self, a.shape[:-1], validate_args=False)

    @lazy_property
    def _param(self):  # the unnormalised logits ℓ, (..., levels)
        if self._basis is None:
            return self._a
        return self._a @ self._basis.mT + self._offset

    @lazy_property
    def logits(self):
        return self._param - self._param.logsumexp(-1, keepdim=True)

    def expand(self, batch_shape, _instance=None):
        return Categorical(logits=self.logits, validate_args=False).expand(
            batch_shape, _instance
        )


# dtype -> a flat buffer for the normaliser's logits, reused across calls
_workspace = {}


def _logits_buffer(shape, dtype):
    """A reused ``shape`` buffer: evaluating the decoder on a lattice or on
    samples makes the same (..., D, levels) temporary thousands of times, and a
    fresh one each time is faulted in page by page by the operating system
    (half the time of the quadrature of a trained network). Only outside
    autograd, which must keep its tensors."""
    n = math.prod(shape)
    if dtype not in _workspace or _workspace[dtype].numel() < n:
        _workspace[dtype] = torch.empty(n, dtype=dtype)
    return _workspace[dtype][:n].view(shape)


def _log_normaliser(a, basis, offset):
    """Σⱼ logsumexp_v ℓⱼ,ᵥ for ℓ = offset + a basisᵀ (or ℓ = a), shape
    ``a.shape[:-2]``: one (..., D, levels) temporary, exponentiated in place.
    Where a bound on |ℓ| from the factors is below half the log of the dtype's
    largest number (354 in float64, 44 in float32), e^ℓ can neither overflow
    nor leave the normal range, so the usual shift by the largest logit (two
    more passes over the temporary) is skipped."""
    if basis is None:
        logits = a.clone()
    else:
        shape = (*a.shape[:-1], basis.shape[0])
        grad = torch.is_grad_enabled() and (
            a.requires_grad or basis.requires_grad or offset.requires_grad
        )
        out = None if grad else _logits_buffer(shape, a.dtype)
        if basis.shape[-1] == 1:  # rank 1: (..., D, 1) * (1, levels)
            logits = torch.addcmul(offset, a, basis.mT, out=out)
        else:
            logits = torch.matmul(a, basis.mT, out=out).add_(offset)
        with torch.no_grad():
            bound = (
                offset.abs().amax()
                + a.abs().amax() * basis.abs().sum(-1).amax()
            )
        if bound < math.log(torch.finfo(a.dtype).max) / 2:
            return logits.exp_().sum(-1).log().sum(-1)
    # a constant shift: the gradient is still softmax
    peak = logits.detach().amax(-1, keepdim=True)
    return (logits.sub_(peak).exp_().sum(-1).log() + peak[..., 0]).sum(-1)


class PixelCategorical(Independent):
    """P(x|z) = Πⱼ Categorical(xⱼ; softmax(ℓⱼ)) over the D pixels: batch
    ``a.shape[:-2]``, event ``(D,)``, with ℓ = ``offset`` + ``a`` ``basis``ᵀ
    (``a``: ``(..., D, M)``, ``basis``: ``(levels, M)``, ``offset``:
    ``(D, levels)``) or ℓ = ``a`` (free logits).

    log P(x|z) = Σⱼ ℓⱼ,ₓⱼ − Σⱼ logsumexp ℓⱼ, computed as

    - Σⱼ ℓⱼ,ₓⱼ = Σⱼ offsetⱼ,ₓⱼ + Σⱼ,ₘ aⱼ,ₘ basisₓⱼ,ₘ: a product of ``a`` with
      the rows of ``basis`` that x picks (one-hot rows for free logits), by
      ``einsum`` — a matrix product when one z is shared by many x (a
      quadrature grid: (G, D·M) @ (D·M, N));
    - the normaliser from one (…, D, levels) temporary, exponentiated in place.

    The same number as ``Independent(Categorical(logits=ℓ), 1).log_prob(x)``
    (tested), in a fifth of the time and memory traffic on the quadrature's and
    the estimators' batches (``benchmarks/quadrature.py``). ``base_dist`` is
    the per-pixel ``_Categorical`` (torch's ``Categorical``, its logits
    formed on demand)."""

    def __init__(self, a, basis=None, offset=None):
        super().__init__(
            _Categorical(a, basis, offset), 1, validate_args=False
        )

    def expand(self, batch_shape, _instance=None):
        base = self.base_dist.expand(
            torch.Size(batch_shape) + self.event_shape
        )
        return Independent(base, 1, validate_args=False)

    def log_prob(self, value):
        base = self.base_dist
        a, basis, offset = base._a, base._basis, base._offset
        index = value.long()  # (..., D)
        if basis is None:  # one-hot rows pick the logits
            picked = torch.einsum(
                "...jv,...jv->...",
                a,
                nn.functional.one_hot(index, a.shape[-1]).to(a.dtype),
            )
        else:
            pixels = torch.arange(index.shape[-1])
            picked = torch.einsum(
                "...jm,...jm->...", a, basis[index]
            ) + offset[pixels, index].sum(-1)
        return picked - _log_normaliser(a, basis, offset)


class CategoricalDecoder(nn.Module):
    """P(x|z) = Πⱼ Categorical(xⱼ; softmax(ℓⱼ(z))) over the ``levels`` values
    0, …, levels − 1 of each of the D coordinates. ``forward(z)`` returns
    a :class:`PixelCategorical` with batch ``z.shape[:-1]`` and event ``(D,)``;
    log P(x|z) = Σⱼ [ℓⱼ,ₓⱼ − logsumexp ℓⱼ].

    The logits ℓ (D × levels of them):

    - ``rank=None``: free, the network outputs all of them;
    - ``rank=M``: ℓⱼ,ᵥ = cⱼ,ᵥ + Σₘ aⱼ,ₘ(z) Bᵥ,ₘ. The network outputs M numbers
      aⱼ(z) per pixel; the basis B (levels × M) is shared by all pixels and the
      offset cⱼ,ᵥ does not depend on z. For each pixel this is an exponential
      family over the levels with M sufficient statistics B (learned, shared)
      and base measure exp(cⱼ) (learned, per pixel). It is still a full
      categorical distribution; only how z can move it is restricted, which on
      the 1000 training digits generalises far better
      (``benchmarks/README.md``: 9 nats on the validation split at M = 1).
    """

    def __init__(
        self,
        latent_dim,
        data_dim,
        hidden=(256, 256),
        activation="elu",
        dropout=0.0,
        levels=GREY_LEVELS,
        rank=None,
    ):
        super().__init__()
        self.data_dim, self.levels = data_dim, levels
        self.support = constraints.integer_interval(0, levels - 1)
        outputs = levels if rank is None else _validate.count(rank, "rank")
        self.net = mlp(
            (latent_dim, *_hidden(hidden), data_dim * outputs),
            activation,
            dropout,
        )
        if rank is not None:
            self.basis = nn.Linear(rank, levels, bias=False)
            self.offset = nn.Parameter(torch.zeros(data_dim, levels))
        self.rank = rank

    def forward(self, z):
        a = self.net(z).unflatten(
            -1, (self.data_dim, -1)
        )  # (..., D, rank or levels)
        if self.rank is None:
            return PixelCategorical(a)
        return PixelCategorical(a, self.basis.weight, self.offset)


class BernoulliDecoder(nn.Module):
    """P(x|z) = Πⱼ Bernoulli(xⱼ; sigmoid(ℓⱼ(z))) for binary x (see
    :func:`vaelib.data.binarize`). Batch ``z.shape[:-1]``, event ``(D,)``."""

    support = constraints.boolean

    def __init__(
        self,
        latent_dim,
        data_dim,
        hidden=(256, 256),
        activation="elu",
        dropout=0.0,
    ):
        super().__init__()
        self.net = mlp(
            (latent_dim, *_hidden(hidden), data_dim), activation, dropout
        )

    def forward(self, z):
        return Independent(
            Bernoulli(logits=self.net(z), validate_args=False),
            1,
            validate_args=False,
        )


class GaussianDecoder(nn.Module):
    """P(x|z) = N(f(z), diag σ²) for real-valued x. ``sigma=None`` learns one
    σⱼ per coordinate, ``sigma="shared"`` one σ for all (as probabilistic PCA
    has), both stored as log σ and initialised at σ = 1; a number fixes σ for
    every coordinate (the decoder variance: it weights the reconstruction
    term against the KL, Chapter 11). ``autoregressive=True`` adds the pixels
    before each one to its mean (A learned, starting at 0; a D × D parameter of
    which only the strict lower triangle is used):
    :class:`~vaelib.autoregressive.AutoregressiveNormal`. Batch
    ``z.shape[:-1]``, event ``(D,)``."""

    support = constraints.real

    def __init__(
        self,
        latent_dim,
        data_dim,
        hidden=(256, 256),
        activation="elu",
        dropout=0.0,
        sigma=None,
        autoregressive=False,
    ):
        super().__init__()
        self.net = mlp(
            (latent_dim, *_hidden(hidden), data_dim), activation, dropout
        )
        if isinstance(sigma, str) and sigma != "shared":
            raise ValueError(
                f"sigma: expected None, 'shared' or a number, got {sigma!r}"
            )
        if sigma is None or sigma == "shared":
            n = data_dim if sigma is None else 1
            self.log_sigma = nn.Parameter(torch.zeros(n))
        else:
            self.register_buffer(
                "log_sigma",
                torch.full(
                    (data_dim,), math.log(_validate.positive(sigma, "sigma"))
                ),
            )
        self.A = (
            nn.Parameter(torch.zeros(data_dim, data_dim))
            if autoregressive
            else None
        )

    def forward(self, z):
        loc = self.net(z)
        scale = self.log_sigma.exp().expand_as(loc)
        if self.A is None:
            return diagonal_normal(loc, scale, validate_args=False)
        return AutoregressiveNormal(loc, scale, self.A)


class VAE(LatentVariableModel, nn.Module):
    """A variational autoencoder: prior P(z) = N(0, I), decoder P(x|z)
    (``likelihood``) and encoder Q(z|x) (``posterior``), all
    ``Distribution``-valued.

    Args:
        data_dim: D, e.g. 64 for the 8 × 8 digits.
        latent_dim: d.
        likelihood: ``"categorical"`` (x a grey level 0–16,
            :class:`CategoricalDecoder`), ``"bernoulli"`` (x ∈ {0, 1}) or
            ``"gaussian"`` (x real; ``sigma`` as in :class:`GaussianDecoder`).
        hidden: widths of the hidden layers of both networks.
        activation: ``"elu"``, ``"silu"``, ``"tanh"`` or ``"softplus"``
            (smooth: see the module docstring).
        dropout: dropout probability after each hidden layer (training mode
            only).
        sigma: the Gaussian decoder's σ (``None``: learned per coordinate,
            ``"shared"``: one learned σ, a number: fixed); Gaussian
            likelihood only.
        autoregressive: the Gaussian decoder also sees the pixels before
            each one (:class:`GaussianDecoder`); Gaussian likelihood only.
        rank: the rank of the categorical decoder's logits
            (:class:`CategoricalDecoder`; ``None``: free logits); ignored by
            the other likelihoods.

    The defaults are the book's digits recipe (``benchmarks/README.md``).
    Follows the model contract: ``prior()``, ``likelihood(z)`` (batch
    ``z.shape[:-1]``, event ``(D,)``), and ``posterior(x)`` for ``x`` of shape
    ``(N, D)`` (batch ``(N,)``, event ``(d,)``, with ``rsample``). ``dtype`` is
    the parameters' dtype: train in float32, then ``.double()`` for exact
    evaluation. Data outside ``data_support`` (a grey level of 17 or 3.5, a
    non-binary pixel) raises ``ValueError``."""

    def __init__(
        self,
        data_dim,
        latent_dim,
        likelihood="categorical",
        hidden=(256, 256),
        activation="elu",
        dropout=0.0,
        sigma=None,
        rank=1,
        autoregressive=False,
    ):
        super().__init__()
        self.data_dim = _validate.count(data_dim, "data_dim")
        self.latent_dim = _validate.count(latent_dim, "latent_dim")
        self.likelihood_name = _validate.choice(
            likelihood, "likelihood", LIKELIHOODS
        )
        if sigma is not None and likelihood != "gaussian":
            raise ValueError(
                f"sigma: only the gaussian likelihood has one, got "
                f"likelihood={likelihood!r}"
            )
        if autoregressive and likelihood != "gaussian":
            raise ValueError(
                f"autoregressive: only the gaussian likelihood has it, got "
                f"likelihood={likelihood!r}"
            )
        net = dict(hidden=hidden, activation=activation, dropout=dropout)
        input_scale = (
            1.0 / (GREY_LEVELS - 1) if likelihood == "categorical" else 1.0
        )
        self.encoder = GaussianEncoder(
            data_dim, latent_dim, input_scale=input_scale, **net
        )
        if likelihood == "categorical":
            self.decoder = CategoricalDecoder(
                latent_dim, data_dim, rank=rank, **net
            )
        elif likelihood == "bernoulli":
            self.decoder = BernoulliDecoder(latent_dim, data_dim, **net)
        else:
            self.decoder = GaussianDecoder(
                latent_dim,
                data_dim,
                sigma=sigma,
                autoregressive=autoregressive,
                **net,
            )
        self.data_support = self.decoder.support

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def _likelihood(self, z):
        # z was checked by likelihood(); x is checked by whoever evaluates
        # log_prob
        # (the estimators, fit), so the decoder's distributions skip torch's
        # checks.
        return self.decoder(z)

    def posterior(self, x):
        """Q(Z|x), the encoder's diagonal Gaussian: batch ``(N,)``, event
        ``(latent_dim,)``."""
        return self.encoder(_validate.data(self, x))
