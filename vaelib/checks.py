"""``check_close``: the assertion the chapters use to say "both sides agree",
with the tolerance written where the reader sees it."""

import math

import torch


def check_close(actual, expected, *, atol=0.0, rtol=0.0, what="values"):
    """Assert ``|actual − expected| ≤ atol + rtol·|expected|`` elementwise, and
    return the largest absolute error (a number to quote in the text).

    Raises ``AssertionError`` naming ``what``, the worst error and the
    tolerance."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    if actual.shape != expected.shape:
        raise ValueError(
            f"actual, expected: shapes differ, {tuple(actual.shape)} vs "
            f"{tuple(expected.shape)}"
        )
    if atol < 0 or rtol < 0 or (atol == 0 and rtol == 0):
        raise ValueError(
            f"atol, rtol: expected non-negative tolerances, not both 0, got "
            f"{atol}, {rtol}"
        )
    if not (torch.isfinite(actual).all() and torch.isfinite(expected).all()):
        raise AssertionError(f"{what}: non-finite values")
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    if (err > bound).any():
        i = int(torch.argmax(err - bound))
        raise AssertionError(
            f"{what}: not close; worst |error| "
            f"{err.reshape(-1)[i].item():.3g} exceeds "
            f"tolerance {bound.reshape(-1)[i].item():.3g} (atol={atol}, "
            f"rtol={rtol})"
        )
    return err.max().item()


def check_markov(errors, ts=(0.1, 0.25, 0.5, 1.0, 2.0), z=3.0, what="errors"):
    """A check that an estimator of P(x) is not biased upwards, from the errors
    ``errors`` = log P̂ − log P of N independent estimates. If E[P̂] = P,
    Markov's inequality gives P(log P̂ − log P ≥ t) ≤ e^−t, so the count of
    errors of at least t is at most binomial(N, e^−t): assert, for each t in
    ``ts``, count ≤ N e^−t + z·sd. Returns ``[(t, count, bound), ...]``.

    It can fail: an estimator shifted up by 0.1 nats is caught when most
    estimates are accurate. Importance sampling (unbiased for P(x)) must pass
    it; Chapter 8 uses it against quadrature."""
    errors = torch.as_tensor(errors, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(errors).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    N, rows = errors.numel(), []
    for t in ts:
        p = math.exp(-t)
        bound = N * p + z * math.sqrt(N * p * (1 - p))
        count = int((errors >= t).sum())
        rows.append((t, count, bound))
        if count > bound:
            raise AssertionError(
                f"{what}: {count} of {N} estimates are above the truth by "
                f"{t} nats or more; an estimator unbiased for P(x) allows at "
                f"most {bound:.1f} (Markov's inequality, {z} sd)"
            )
    return rows
