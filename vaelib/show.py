"""Showing results in the chapters: numbers for the prose, where a reader
should see "10⁹" and "4.6 × 10²⁹", not ``1e+09`` or ``4.6e+29``, glued many at
once; and the contour plot of a 2-D density that several chapters draw."""

import math

import torch

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(log10):
    """10 to the nearest integer power of ``log10``: ``8.86 -> "10⁹"``,
    ``-27.2 -> "10⁻²⁷"``. Chapters 2, 7 and 8 glue orders of magnitude with
    it."""
    if not math.isfinite(log10):
        raise ValueError(f"log10: expected a finite number, got {log10}")
    return "10" + str(round(log10)).translate(_SUPERSCRIPT)


def scientific(log10):
    """The number 10^``log10`` with a one-decimal mantissa:
    ``29.66 -> "4.6 × 10²⁹"`` (Chapter 2: sample counts too large for a float's
    exponent to be read)."""
    if not math.isfinite(log10):
        raise ValueError(f"log10: expected a finite number, got {log10}")
    k = math.floor(log10)
    mantissa = round(10 ** (log10 - k), 1)
    if mantissa >= 10:  # 9.96 rounds up to the next power
        mantissa, k = 1.0, k + 1
    return f"{mantissa} × 10" + str(k).translate(_SUPERSCRIPT)


def glue_numbers(prefix, **values):
    """Glue every ``name=text`` as ``{prefix}_{name}`` for the prose (myst-nb's
    ``glue``, not displayed). The texts are formatted by the caller, to the
    digits that are stable across machines."""
    from myst_nb import glue  # only the chapters need it

    for name, text in values.items():
        if not isinstance(text, str):
            raise ValueError(
                f"{name}: expected the text to glue, got {type(text).__name__}"
            )
        glue(f"{prefix}_{name}", text, display=False)


def mean_se(values):
    """The mean of ``values`` ``(N,)`` (one per data point, seed, …) and its
    standard error sd/√N, as two floats: what the chapters print as
    "mean ± s.e.". NaN raises ``ValueError`` (drop refused rows first)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(
            "values: expected shape (N,) with N >= 2, got "
            f"{tuple(values.shape)}"
        )
    if values.isnan().any():
        raise ValueError("values: contains NaN")
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


LEVELS = (-4.5, -2.0, -0.5)  # log density below its peak: 3, 2, 1 sd


def density_contours(ax, z1, z2, log_density, colour, style="solid"):
    """Contours of a density on the grid ``z1`` × ``z2`` (``log_density``
    ``[i, j]`` at (z1[i], z2[j])) where it has fallen to e^-0.5, e^-2 and
    e^-4.5 of its peak: for a Gaussian, the ellipses at 1, 2 and 3 standard
    deviations (Chapters 5 and 7)."""
    log_density = torch.as_tensor(log_density)
    rel = log_density - log_density.max()
    return ax.contour(
        z1, z2, rel.T, levels=LEVELS, colors=colour, linestyles=style
    )


def expected_grey_levels(likelihood):
    """The mean grey level of every pixel under a categorical P(x|z) (a
    :class:`vaelib.nets.PixelCategorical`): Σ_v v·P(x_j = v|z), shape
    ``batch + (D,)``. What the chapters draw as "the decoder's image"."""
    probs = likelihood.base_dist.probs  # (..., D, levels)
    return probs @ torch.arange(probs.shape[-1], dtype=probs.dtype)


def show_digits(axes, images, label=None, levels=17):
    """Draw 8 × 8 digits (``images`` ``(n, 64)``, grey levels 0 to 16) into a
    row of ``axes``, black ink on white, with ``label`` at the row's left."""
    for ax, image in zip(axes, images):
        ax.imshow(image.reshape(8, 8), cmap="Greys", vmin=0, vmax=levels - 1)
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
    if label is not None:
        axes[0].set_ylabel(label, rotation=0, ha="right", va="center")
