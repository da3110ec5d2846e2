"""Rate, distortion and active units against independent computations."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

import vaelib
from helpers import gaussian_kl, random_linear_gaussian

F64 = torch.float64


def random_q(N=6, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(N, d, generator=g, dtype=F64)
    scale = 0.2 + torch.rand(N, d, generator=g, dtype=F64)
    return vaelib.diagonal_normal(loc, scale)


def standard_prior(d=3):
    return vaelib.diagonal_normal(
        torch.zeros(d, dtype=F64), torch.ones(d, dtype=F64)
    )


def test_kl_per_dimension_sums_to_the_textbook_kl():
    q = random_q()
    kl = vaelib.kl_per_dimension(q, standard_prior())  # (6, 3)
    m, s = q.mean.numpy(), q.stddev.numpy()
    want = gaussian_kl(
        m, np.stack([np.diag(v**2) for v in s]), np.zeros(3), np.eye(3)
    )
    np.testing.assert_allclose(kl.sum(-1).numpy(), want, rtol=1e-12)
    one = 0.5 * (m[:, 0] ** 2 + s[:, 0] ** 2 - 1 - np.log(s[:, 0] ** 2))
    np.testing.assert_allclose(kl[:, 0].numpy(), one, rtol=1e-12)


def test_kl_per_dimension_needs_a_diagonal_gaussian():
    full = MultivariateNormal(torch.zeros(2, 3), torch.eye(3))
    with pytest.raises(ValueError, match=r"^q: expected a diagonal Gaussian"):
        vaelib.kl_per_dimension(full, standard_prior())


def test_active_units_count_the_variance_of_the_means():
    q = random_q(N=50, d=4)
    means = q.mean.numpy().copy()
    means[:, 2] = 0.05 * means[:, 2]  # variance about 0.0025: inactive
    q = vaelib.diagonal_normal(torch.tensor(means), q.stddev)
    count, variance = vaelib.active_units(q)
    np.testing.assert_allclose(variance.numpy(), means.var(0, ddof=1))
    assert count == int((means.var(0, ddof=1) > 0.01).sum()) == 3
    assert vaelib.active_units(q, threshold=10.0)[0] == 0
    with pytest.raises(ValueError, match=r"^q: expected batch \(N,\)"):
        vaelib.active_units(random_q(N=1))


def test_rate_plus_distortion_is_minus_the_closed_form_elbo():
    """On a linear-Gaussian model the ELBO of a Gaussian q is closed-form
    (LinearGaussian.elbo); the Monte Carlo distortion must match it."""
    model = random_linear_gaussian(D=5, d=3, sigma=0.7)
    x = model.likelihood(torch.randn(6, 3, dtype=F64)).sample()
    q = random_q()
    torch.manual_seed(0)
    rate, distortion, se = vaelib.rate_distortion(model, q, x, 4000)
    want = -model.elbo(x, q) - rate  # distortion from the closed form
    z = (distortion - want) / se
    assert z.abs().max() < 4, "within 4 standard errors"
    torch.testing.assert_close(
        rate,
        torch.tensor(
            gaussian_kl(
                q.mean.numpy(),
                np.stack([np.diag(v**2) for v in q.stddev.numpy()]),
                np.zeros(3),
                np.eye(3),
            )
        ),
    )
    assert (se > 0).all()


@pytest.mark.parametrize("sigma", [0.3, 0.55, 0.9])
def test_ppca_active_units_from_the_exact_posterior(sigma):
    """The count from the eigenvalues against the variance over the data of
    the exact posterior means of the fixed-σ maximum-likelihood pPCA."""
    g = torch.Generator().manual_seed(1)
    scales = torch.tensor([1.5, 1.0, 0.7, 0.45, 0.2, 0.1], dtype=F64)
    x = torch.randn(4000, 6, generator=g, dtype=F64) * scales
    _, lam, _ = vaelib.sample_covariance_eigh(x)
    model = vaelib.ppca_mle(x, 4, sigma=sigma)
    means = model.posterior(x).mean  # (N, 4)
    want = int((means.var(0) > 1e-2).sum())
    assert vaelib.ppca_active_units(lam, sigma, 4) == want
    assert vaelib.ppca_active_units(lam, sigma, 2) == min(2, want)


def test_ppca_active_units_bad_input():
    with pytest.raises(ValueError, match=r"^eigenvalues: expected a vector"):
        vaelib.ppca_active_units([1.0, -1.0], 0.5, 2)
    with pytest.raises(ValueError, match=r"^latent_dim: expected an integer"):
        vaelib.ppca_active_units([1.0], 0.5, 0)
