import math

import numpy as np
import pytest
import torch
from scipy import stats

import vaelib
from helpers import F64


def test_ess_against_direct_formula():
    g = torch.Generator().manual_seed(0)
    log_w = torch.randn(100, 4, generator=g, dtype=F64)
    w = log_w.exp().numpy()
    np.testing.assert_allclose(
        vaelib.ess(log_w), w.sum(0) ** 2 / (w**2).sum(0), rtol=1e-12
    )
    assert vaelib.ess(torch.zeros(50, dtype=F64)).item() == pytest.approx(50)
    dominated = torch.tensor([0.0, -1000.0, -1000.0], dtype=F64)
    assert vaelib.ess(dominated).item() == pytest.approx(1.0)
    # Huge log weights, where exp overflows, are handled in the log domain.
    np.testing.assert_allclose(
        vaelib.ess(log_w + 1e4), vaelib.ess(log_w), rtol=1e-10
    )


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_pareto_khat_finds_the_tail_of_pareto_weights(k):
    """Weights w = U^(-k), U uniform, have a Pareto tail of shape k exactly;
    k̂ must find it, and agree with scipy's maximum-likelihood fit of a
    generalised Pareto distribution to the same exceedances."""
    g = torch.Generator().manual_seed(0)
    S = 20_000
    u = torch.rand(S, generator=g, dtype=F64)
    log_w = -k * torch.log(u)
    k_hat = vaelib.pareto_khat(log_w).item()
    M = min(math.ceil(S / 5), math.ceil(3 * math.sqrt(S)))
    top = np.sort(log_w.numpy())[-(M + 1) :]
    y = np.exp(top - top[-1])
    c, _, _ = stats.genpareto.fit(y[1:] - y[0], floc=0)
    assert k_hat == pytest.approx(k, abs=0.15)
    assert k_hat == pytest.approx(c, abs=0.06)


def test_pareto_khat_shapes_and_light_tails():
    g = torch.Generator().manual_seed(1)
    log_w = torch.randn(4, 3000, generator=g, dtype=F64) * 0.3  # log-normal
    k = vaelib.pareto_khat(log_w, dim=1)
    assert k.shape == (4,)
    assert (k < 0.3).all()  # light tails: nowhere near the 0.7 alarm
    flat = vaelib.pareto_khat(torch.zeros(100, dtype=F64))
    assert flat.item() == -math.inf  # equal weights: no tail at all


def test_bad_weights():
    with pytest.raises(ValueError, match="^log_w: expected at least 10"):
        vaelib.pareto_khat(torch.zeros(5))
    with pytest.raises(ValueError, match="^log_w: contains NaN"):
        vaelib.pareto_khat(torch.full((20,), math.nan))
