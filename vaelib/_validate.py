"""Input checks shared by every public function: bad input raises ``ValueError``
naming the argument, never a silent NaN."""

import torch
from torch.distributions import Distribution


def as_data(x, D, dtype=None):
    """``x`` as a finite floating tensor of shape ``(N, D)``."""
    x = torch.as_tensor(x, dtype=dtype)
    if not x.is_floating_point():
        raise ValueError(f"x: expected a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[-1] != D:
        raise ValueError(f"x: expected shape (N, {D}), got {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError("x: expected at least one data point (N >= 1), got N = 0")
    if not torch.isfinite(x).all():
        raise ValueError("x: contains NaN or infinite values")
    return x


def as_latent(z, d):
    """``z`` as a finite floating tensor of shape ``(..., d)``."""
    z = torch.as_tensor(z)
    if not z.is_floating_point():
        raise ValueError(f"z: expected a floating-point tensor, got dtype {z.dtype}")
    if z.ndim < 1 or z.shape[-1] != d:
        raise ValueError(f"z: expected shape (..., {d}), got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("z: contains NaN or infinite values")
    return z


def check_q(q, N, d):
    """``q`` must hold one Q(z|x_n) per data point: batch ``(N,)``, event ``(d,)``."""
    if not isinstance(q, Distribution):
        raise ValueError(f"q: expected a torch.distributions.Distribution, got {type(q).__name__}")
    if tuple(q.batch_shape) != (N,) or tuple(q.event_shape) != (d,):
        raise ValueError(
            f"q: expected batch_shape ({N},) and event_shape ({d},) (one Q(z|x_n) per row "
            f"of x), got batch_shape {tuple(q.batch_shape)} and event_shape {tuple(q.event_shape)}"
        )


def check_count(n, name):
    """A positive integer sample count."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {n!r}")
    return n


def check_positive(value, name):
    """A finite, strictly positive scalar (e.g. a standard deviation)."""
    # A Python float stays float64 here; the caller casts to the model's dtype.
    t = value if torch.is_tensor(value) else torch.as_tensor(value, dtype=torch.float64)
    if t.numel() != 1:
        raise ValueError(f"{name}: expected a scalar, got shape {tuple(t.shape)}")
    if not torch.isfinite(t) or t <= 0:
        raise ValueError(f"{name}: expected a finite value > 0, got {t.item()!r}")
    return t.reshape(())


def model_dims(model):
    """(latent dim d, data dim D) of a model following the vaelib contract."""
    prior = model.prior()
    if len(prior.event_shape) != 1:
        raise ValueError(f"model: prior() must have event_shape (d,), got {tuple(prior.event_shape)}")
    d = prior.event_shape[0]
    likelihood = model.likelihood(prior.mean)
    if len(likelihood.event_shape) != 1:
        raise ValueError(
            f"model: likelihood(z) must have event_shape (D,), got {tuple(likelihood.event_shape)}"
        )
    return d, likelihood.event_shape[0]
