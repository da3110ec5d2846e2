"""``check_close``: the assertion the chapters use to say "both sides agree",
with the tolerance written where the reader sees it."""

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
