"""The autoregressive Gaussian against the Gaussian it implies:
x = (I − A)⁻¹(loc + σε) is N((I − A)⁻¹ loc, (I − A)⁻¹ diag σ² (I − A)⁻ᵀ)."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

import vaelib
from vaelib import AutoregressiveNormal

F64 = torch.float64


def random_ar(D=5, batch=(3,), seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(*batch, D, generator=g, dtype=F64)
    scale = 0.5 + torch.rand(D, generator=g, dtype=F64)
    A = torch.randn(D, D, generator=g, dtype=F64)  # upper part is ignored
    return AutoregressiveNormal(loc, scale, A), loc, scale, torch.tril(A, -1)


def implied_gaussian(loc, scale, A):
    inv = torch.linalg.inv(torch.eye(len(scale), dtype=F64) - A)
    cov = inv @ torch.diag(scale**2) @ inv.T
    return MultivariateNormal(loc @ inv.T, covariance_matrix=cov)


def test_log_prob_is_the_implied_gaussian():
    ar, loc, scale, A = random_ar()
    x = torch.randn(7, 3, 5, dtype=F64)
    want = implied_gaussian(loc, scale, A).log_prob(x)
    torch.testing.assert_close(ar.log_prob(x), want, rtol=1e-12, atol=1e-12)
    assert ar.batch_shape == (3,) and ar.event_shape == (5,)


def test_samples_have_the_implied_mean_and_covariance():
    ar, loc, scale, A = random_ar(batch=())
    torch.manual_seed(0)
    x = ar.rsample((200_000,))  # (S, D)
    ref = implied_gaussian(loc, scale, A)
    se = ref.covariance_matrix.diagonal().sqrt() / math.sqrt(len(x))
    assert ((x.mean(0) - ref.mean).abs() < 4 * se).all()
    torch.testing.assert_close(ar.mean, ref.mean)
    torch.testing.assert_close(
        torch.cov(x.T), ref.covariance_matrix, atol=0.02, rtol=0.02
    )


def test_bad_A_is_named():
    with pytest.raises(ValueError, match=r"^A: expected shape \(4, 4\)"):
        AutoregressiveNormal(torch.zeros(4), torch.ones(4), torch.zeros(3, 3))


def test_vae_with_an_autoregressive_decoder_follows_the_contract():
    torch.manual_seed(0)
    vae = vaelib.VAE(
        6, 2, "gaussian", hidden=8, sigma="shared", autoregressive=True
    ).double()
    with torch.no_grad():
        vae.decoder.A.normal_()
    x = torch.randn(4, 6, dtype=F64)
    z = torch.randn(5, 4, 2, dtype=F64)
    p = vae.likelihood(z)
    assert p.batch_shape == (5, 4)
    assert vae.decoder.log_sigma.shape == (1,)
    loc = vae.decoder.net(z)
    scale = vae.decoder.log_sigma.exp().expand(6)
    want = implied_gaussian(loc, scale, torch.tril(vae.decoder.A, -1))
    torch.testing.assert_close(p.log_prob(x), want.log_prob(x))
    log_px = vaelib.log_px_is(vae, vae.posterior(x), x, 10)
    assert log_px.shape == (4,) and torch.isfinite(log_px).all()


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(sigma="one"), r"^sigma: expected None, 'shared' or a number"),
        (
            dict(likelihood="bernoulli", autoregressive=True),
            r"^autoregressive: only the gaussian likelihood",
        ),
    ],
)
def test_bad_decoder_options(kwargs, pattern):
    options = {"likelihood": "gaussian"} | kwargs
    with pytest.raises(ValueError, match=pattern):
        vaelib.VAE(6, 2, **options)
