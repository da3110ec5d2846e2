"""Input checks at the public boundary: bad input raises ``ValueError`` naming
the argument, never a silent NaN.

Public functions check their inputs once and then run their inner loops inside
:func:`trusted`, where ``model.likelihood(z)`` skips the value checks of ``z``
(the loop's own samples or grid points) and keeps only the cheap shape check.
"""

import contextlib
import contextvars

import torch
from torch.distributions import Distribution, constraints

_trusted = contextvars.ContextVar("vaelib_trusted", default=False)


@contextlib.contextmanager
def trusted():
    """Inside this block, models skip value checks of the ``z`` they are
    given."""
    token = _trusted.set(True)
    try:
        yield
    finally:
        _trusted.reset(token)


def model_info(model):
    """``(latent_dim, data_dim, dtype, support)`` of a model following the
    contract.

    Models built on :class:`vaelib.models.LatentVariableModel` say so directly;
    any other object with ``prior()`` and ``likelihood(z)`` is asked once."""
    if all(
        hasattr(model, a)
        for a in ("latent_dim", "data_dim", "dtype", "data_support")
    ):
        return (
            model.latent_dim,
            model.data_dim,
            model.dtype,
            model.data_support,
        )
    if not (
        callable(getattr(model, "prior", None))
        and callable(getattr(model, "likelihood", None))
    ):
        raise ValueError(
            f"model: expected an object with prior() and likelihood(z), got "
            f"{type(model).__name__}"
        )
    prior = model.prior()
    if len(prior.event_shape) != 1:
        raise ValueError(
            f"model: prior() must have event_shape (d,), got "
            f"{tuple(prior.event_shape)}"
        )
    likelihood = model.likelihood(prior.mean)
    if len(likelihood.event_shape) != 1:
        raise ValueError(
            f"model: likelihood(z) must have event_shape (D,), got "
            f"{tuple(likelihood.event_shape)}"
        )
    return (
        prior.event_shape[0],
        likelihood.event_shape[0],
        prior.mean.dtype,
        likelihood.support,
    )


def data(model, x, name="x"):
    """``x`` as a tensor of the model's dtype and shape ``(N, D)``: finite, N ≥
    1, and inside the support of P(x|z) (e.g. integer grey levels for a
    categorical decoder). Errors name the argument ``name``."""
    _, D, dtype, support = model_info(model)
    x = torch.as_tensor(x)
    if not (
        x.is_floating_point()
        or x.dtype in (torch.int32, torch.int64, torch.uint8, torch.bool)
    ):
        raise ValueError(
            f"{name}: expected a real-valued tensor, got dtype {x.dtype}"
        )
    x = x.to(dtype)
    if x.ndim != 2 or x.shape[-1] != D:
        raise ValueError(
            f"{name}: expected shape (N, {D}), got {tuple(x.shape)}"
        )
    if x.shape[0] < 1:
        raise ValueError(
            f"{name}: expected at least one data point (N >= 1), got N = 0"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    if support is not constraints.real:
        ok = support.check(x).reshape(x.shape[0], -1).all(-1)  # (N,)
        if not ok.all():
            n = int((~ok).nonzero()[0])
            raise ValueError(
                f"{name}: row {n} is outside the support of P(x|z), "
                f"{support}: {x[n].tolist()}"
            )
    return x


def latent(z, d, dtype):
    """``z`` as a tensor of ``dtype`` and shape ``(..., d)``; finite unless
    trusted."""
    z = torch.as_tensor(z)
    if not z.is_floating_point():
        raise ValueError(
            f"z: expected a floating-point tensor, got dtype {z.dtype}"
        )
    if z.ndim < 1 or z.shape[-1] != d:
        raise ValueError(f"z: expected shape (..., {d}), got {tuple(z.shape)}")
    if not _trusted.get() and not torch.isfinite(z).all():
        raise ValueError("z: contains NaN or infinite values")
    return z.to(dtype)


def q_for(q, N, d):
    """``q`` must hold one Q(z|x_n) per data point: batch ``(N,)``, event
    ``(d,)``."""
    if not isinstance(q, Distribution):
        raise ValueError(
            f"q: expected a torch.distributions.Distribution, got "
            f"{type(q).__name__}"
        )
    if tuple(q.batch_shape) != (N,) or tuple(q.event_shape) != (d,):
        raise ValueError(
            f"q: expected batch_shape ({N},) and event_shape ({d},) (one "
            f"Q(z|x_n) per row "
            f"of x), got batch_shape {tuple(q.batch_shape)} and event_shape "
            f"{tuple(q.event_shape)}"
        )


def count(n, name):
    """A positive integer (a sample count, a number of nodes)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {n!r}")
    return n


def positive(value, name):
    """A finite, strictly positive scalar (e.g. a standard deviation) as a 0-d
    tensor. A Python float stays float64; the caller casts it to the model's
    dtype."""
    t = (
        value
        if torch.is_tensor(value)
        else torch.as_tensor(value, dtype=torch.float64)
    )
    if t.numel() != 1:
        raise ValueError(
            f"{name}: expected a scalar, got shape {tuple(t.shape)}"
        )
    if not torch.isfinite(t) or t <= 0:
        raise ValueError(
            f"{name}: expected a finite value > 0, got {t.item()!r}"
        )
    return t.reshape(())


def choice(value, name, options):
    if value not in options:
        raise ValueError(
            f"{name}: expected one of {', '.join(map(repr, options))}, got "
            f"{value!r}"
        )
    return value
