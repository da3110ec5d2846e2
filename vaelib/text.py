"""Numbers for the prose: the chapters glue values into sentences, where a reader
should see "10⁹" and "4.6 × 10²⁹", not ``1e+09`` or ``4.6e+29``."""

import math

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(log10):
    """10 to the nearest integer power of ``log10``: ``8.86 -> "10⁹"``, ``-27.2 -> "10⁻²⁷"``.
    Chapters 2, 7 and 8 glue orders of magnitude with it."""
    if not math.isfinite(log10):
        raise ValueError(f"log10: expected a finite number, got {log10}")
    return "10" + str(round(log10)).translate(_SUPERSCRIPT)


def scientific(log10):
    """The number 10^``log10`` with a one-decimal mantissa: ``29.66 -> "4.6 × 10²⁹"``
    (Chapter 2: sample counts too large for a float's exponent to be read)."""
    if not math.isfinite(log10):
        raise ValueError(f"log10: expected a finite number, got {log10}")
    k = math.floor(log10)
    mantissa = round(10 ** (log10 - k), 1)
    if mantissa >= 10:  # 9.96 rounds up to the next power
        mantissa, k = 1.0, k + 1
    return f"{mantissa} × 10" + str(k).translate(_SUPERSCRIPT)
