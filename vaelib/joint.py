"""The log joint density, the integrand of everything in Part I. Chapter 1."""

from ._validate import as_data, model_dims


def log_joint(model, x, z):
    """log P(x, z) = log P(x|z) + log P(z).

    ``x`` has shape ``(N, D)``; ``z`` has shape ``(..., N, d)`` (e.g. a grid or a stack of
    samples for every data point) and the result has shape ``z.shape[:-1]``."""
    d, D = model_dims(model)
    x = as_data(x, D)
    if z.ndim < 2 or z.shape[-2:] != (x.shape[0], d):
        raise ValueError(f"z: expected shape (..., {x.shape[0]}, {d}), got {tuple(z.shape)}")
    return model.likelihood(z).log_prob(x) + model.prior().log_prob(z)
