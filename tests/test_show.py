import math

import pytest

import matplotlib
import numpy as np
import torch

import vaelib

from vaelib.show import (
    density_contours,
    glue_numbers,
    power_of_ten,
    scientific,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SUPERSCRIPT = dict(zip("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789"))


def read_back(
    text,
):  # "4.6 × 10²⁹" -> 4.6e29, parsed independently of the formatter
    mantissa, _, power = text.rpartition("10")
    exponent = int("".join(SUPERSCRIPT[c] for c in power))
    return float(mantissa.rstrip(" ×") or 1) * 10.0**exponent


@pytest.mark.parametrize(
    "value", [1.0, 3.2e-27, 7.3e8, 4.6e29, 9.96e5, 1e-3, 0.5]
)
def test_scientific_reads_back_within_its_rounding(value):
    text = scientific(math.log10(value))
    assert read_back(text) == pytest.approx(value, rel=0.05 / 1.0)


@pytest.mark.parametrize(
    "log10, text",
    [(8.86, "10⁹"), (-27.2, "10⁻²⁷"), (0.2, "10⁰"), (17.4, "10¹⁷")],
)
def test_power_of_ten(log10, text):
    assert power_of_ten(log10) == text


def test_scientific_rounds_up_to_the_next_power():
    assert scientific(math.log10(9.96e5)) == "1.0 × 10⁶"


@pytest.mark.parametrize("f", [power_of_ten, scientific])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_is_refused(f, bad):
    with pytest.raises(ValueError, match="^log10:"):
        f(bad)


def test_density_contours_are_the_1_2_3_sd_ellipses_of_a_gaussian():
    z1 = torch.linspace(-4, 4, 401, dtype=torch.float64)
    z2 = torch.linspace(-7, 7, 701, dtype=torch.float64)
    Z1, Z2 = torch.meshgrid(z1, z2, indexing="ij")
    log_density = -0.5 * (Z1**2 + (Z2 / 2) ** 2) + 3.0  # sd 1 and 2
    fig, ax = plt.subplots()
    lines = density_contours(ax, z1, z2, log_density, "k")
    for radius, segments in zip((3, 2, 1), lines.allsegs):  # levels ascend
        xy = np.concatenate(segments)
        np.testing.assert_allclose(
            np.hypot(xy[:, 0], xy[:, 1] / 2), radius, atol=0.02
        )
    plt.close(fig)


def test_glue_numbers_refuses_what_is_not_text():
    with pytest.raises(ValueError, match="^gap: expected the text to glue"):
        glue_numbers("ch0", gap=1.25)


def test_expected_grey_levels_is_the_mean_of_each_pixel():
    from torch.distributions import Categorical

    from vaelib.nets import PixelCategorical
    from vaelib.show import expected_grey_levels

    logits = torch.randn(3, 64, 17, dtype=torch.float64)
    mean = expected_grey_levels(PixelCategorical(logits))
    samples = Categorical(logits=logits).sample((20000,)).double()
    np.testing.assert_allclose(mean, samples.mean(0), atol=0.15)
    assert mean.shape == (3, 64)


def test_mean_se_against_numpy():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    mean, se = vaelib.mean_se(torch.tensor(values))
    assert mean == pytest.approx(3.5)
    assert se == pytest.approx(values.std(ddof=1) / 2)
    with pytest.raises(ValueError, match="^values: contains NaN"):
        vaelib.mean_se(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="^values: expected shape"):
        vaelib.mean_se(torch.zeros(2, 2))
