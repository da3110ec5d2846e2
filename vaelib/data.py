"""The digits of Part II: scikit-learn's 8 × 8 handwritten digits (1797 images
shipped with scikit-learn, so nothing is downloaded), each pixel a grey level
0, 1, …, 16.

The split is fixed, in the file's order (no shuffling), and is the one of
Tomczak's
*intro_dgm*, so log-likelihoods compare with that tutorial's:

    train = rows 0–999,  valid = rows 1000–1349,  test = rows 1350–1796.

The grey levels are kept as they are (a categorical decoder models them as 17
classes); :func:`binarize` and :func:`binarize_stochastic` make the 0/1 images
that a Bernoulli decoder needs. Used from Chapter 6 on.
"""

import sklearn.datasets
import torch

GREY_LEVELS = 17  # pixel values 0..16
SPLITS = {
    "train": slice(0, 1000),
    "valid": slice(1000, 1350),
    "test": slice(1350, 1797),
}


def load_digits(split, dtype=torch.float32):
    """``(x, y)`` of one split: ``x`` of shape ``(N, 64)``, the grey levels
    0–16 as floats of ``dtype`` (row-major 8 × 8 images); ``y`` the digit
    labels, int64 ``(N,)``.

    ``split`` is ``"train"`` (N = 1000), ``"valid"`` (N = 350) or ``"test"`` (N
    = 447)."""
    if split not in SPLITS:
        raise ValueError(
            f"split: expected one of {', '.join(map(repr, SPLITS))}, got "
            f"{split!r}"
        )
    if not dtype.is_floating_point:
        raise ValueError(
            f"dtype: expected a floating-point dtype, got {dtype}"
        )
    digits = sklearn.datasets.load_digits()
    rows = SPLITS[split]
    x = torch.as_tensor(digits.data[rows], dtype=dtype)
    y = torch.as_tensor(digits.target[rows], dtype=torch.int64)
    return x, y


def _grey(x):
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if (
        not torch.isfinite(x).all()
        or (x < 0).any()
        or (x > GREY_LEVELS - 1).any()
    ):
        raise ValueError(
            f"x: expected grey levels in [0, {GREY_LEVELS - 1}], finite"
        )
    return x


def binarize(x, threshold=8):
    """Fixed binarisation: 1 where the grey level exceeds ``threshold``, else
    0.

    The default 8 is the usual rule x / 16 > 0.5. Same shape and dtype as
    ``x``."""
    x = _grey(x)
    return (x > threshold).to(x.dtype)


def binarize_stochastic(x, generator=None):
    """Stochastic binarisation: each pixel ~ Bernoulli(x / 16), independently
    (drawn afresh per call, e.g. per epoch, it acts as data augmentation).

    ``generator``: a ``torch.Generator`` for reproducible draws (default: the
    global RNG). Same shape and dtype as ``x``."""
    x = _grey(x)
    return torch.bernoulli(x / (GREY_LEVELS - 1), generator=generator)
