import pytest
import torch

import vaelib


def test_returns_largest_error_when_close():
    err = vaelib.check_close(
        torch.tensor([1.0, 2.0 + 1e-9], dtype=torch.float64),
        torch.tensor([1.0, 2.0], dtype=torch.float64),
        atol=1e-8,
    )
    assert err == pytest.approx(1e-9, rel=1e-3)


def test_relative_tolerance_scales_with_expected():
    vaelib.check_close([1000.001], [1000.0], rtol=2e-6)
    with pytest.raises(AssertionError, match=r"^log P\(x\): not close; worst"):
        vaelib.check_close([1000.01], [1000.0], rtol=2e-6, what="log P(x)")


def test_non_finite_values_fail():
    with pytest.raises(AssertionError, match=r"^values: non-finite values$"):
        vaelib.check_close([float("nan")], [1.0], atol=1.0)
    with pytest.raises(AssertionError, match=r"^values: non-finite values$"):
        vaelib.check_close([float("-inf")], [float("-inf")], atol=1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^actual, expected: shapes differ"):
        vaelib.check_close([1.0, 2.0], [1.0], atol=1)
    with pytest.raises(ValueError, match=r"^atol, rtol"):
        vaelib.check_close([1.0], [1.0])
    with pytest.raises(ValueError, match=r"^atol, rtol"):
        vaelib.check_close([1.0], [1.0], atol=-1)


def test_check_markov_passes_an_unbiased_estimator_and_catches_a_shift():
    """P̂ = mean of 2000 exponential draws with mean P: unbiased, log errors of
    sd 0.02 both ways; shifting log P̂ up by 0.15 nats must be caught (the
    bound is weak for widely spread errors: Chapter 8 says when it has
    power)."""
    g = torch.Generator().manual_seed(0)
    draws = -torch.log(torch.rand(447, 2000, generator=g, dtype=torch.float64))
    errors = torch.log(draws.mean(1))  # log P̂ − log P with P = 1
    rows = vaelib.check_markov(errors)
    assert [t for t, _, _ in rows] == [0.1, 0.25, 0.5, 1.0, 2.0]
    with pytest.raises(AssertionError, match="above the truth by"):
        vaelib.check_markov(errors + 0.15)
    with pytest.raises(ValueError, match="^errors: contains NaN"):
        vaelib.check_markov(torch.tensor([0.0, float("nan")]))
