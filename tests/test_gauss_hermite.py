from scipy import integrate
from scipy.stats import multivariate_normal, norm
from torch.distributions import MultivariateNormal, kl_divergence
import numpy as np
import pytest
import torch

import vaelib
from helpers import F64, data_from, random_linear_gaussian


@pytest.mark.parametrize("d", [1, 2, 3])
def test_exact_for_the_linear_gaussian_reconstruction_term(d):
    """For P(x|z) = N(Wz+b, σ²I), log P(x|z) is quadratic in z, so
    Gauss–Hermite is exact; reference: the closed-form ELBO plus torch's
    closed-form KL(Q ‖ P(Z))."""
    model = random_linear_gaussian(D=5, d=d, sigma=0.3, seed=d)
    x = data_from(model, torch.randn(4, d, dtype=F64))
    A = torch.randn(4, d, d, dtype=F64)
    q = MultivariateNormal(
        torch.randn(4, d, dtype=F64),
        covariance_matrix=A @ A.mT + 0.1 * torch.eye(d, dtype=F64),
    )
    expected = model.elbo(x, q) + kl_divergence(q, model.prior())
    np.testing.assert_allclose(
        vaelib.expected_log_likelihood(model, q, x, n_nodes=5),
        expected,
        rtol=1e-12,
    )


def test_nonlinear_decoder_against_monte_carlo():
    model = vaelib.NonlinearGaussian.random_mlp(2, 6, sigma=0.2, seed=1)
    x = data_from(model, torch.tensor([[0.5, -1.0]], dtype=F64))
    q = vaelib.diagonal_normal(
        torch.tensor([[0.4, -0.9]], dtype=F64),
        torch.tensor([[0.3, 0.2]], dtype=F64),
    )
    gh = vaelib.expected_log_likelihood(model, q, x, n_nodes=40)
    draws = model.likelihood(q.sample((200_000,))).log_prob(x)
    assert (gh - draws.mean(0)).abs().item() < 4.5 * (
        draws.std(0) / 200_000**0.5
    ).item()
    np.testing.assert_allclose(
        vaelib.expected_log_likelihood(model, q, x, n_nodes=60), gh, rtol=1e-10
    )


def test_bad_arguments():
    model = random_linear_gaussian(D=3, d=4, sigma=0.3)
    q = vaelib.diagonal_normal(
        torch.zeros(2, 4, dtype=F64), torch.ones(2, 4, dtype=F64)
    )
    with pytest.raises(
        ValueError,
        match=r"^model: Gauss–Hermite needs latent dimension <= 3, got d = 4$",
    ):
        vaelib.expected_log_likelihood(model, q, torch.zeros(2, 3, dtype=F64))
    model2 = random_linear_gaussian(D=3, d=2, sigma=0.3)
    q2 = vaelib.diagonal_normal(
        torch.zeros(2, 2, dtype=F64), torch.ones(2, 2, dtype=F64)
    )
    with pytest.raises(ValueError, match=r"^n_nodes: "):
        vaelib.expected_log_likelihood(
            model2, q2, torch.zeros(2, 3, dtype=F64), n_nodes=0
        )
    with pytest.raises(ValueError, match=r"^q: expected batch_shape \(3,\)"):
        vaelib.expected_log_likelihood(
            model2, q2, torch.zeros(3, 3, dtype=F64)
        )


def _linear(sigma, dtype=F64):
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 2, generator=g, dtype=dtype)
    return vaelib.LinearGaussian(
        W, torch.tensor([0.5, -1.0, 0.2], dtype=dtype), sigma
    )


def test_prior_gh_matches_the_closed_form_for_a_broad_likelihood():
    model = _linear(1.0)
    x = torch.randn(
        4, 3, generator=torch.Generator().manual_seed(1), dtype=F64
    )
    cov = (model.W @ model.W.T + torch.eye(3, dtype=F64)).numpy()
    expected = multivariate_normal(model.b.numpy(), cov).logpdf(x.numpy())
    got = vaelib.log_px_prior_gh(model, x, n_nodes=200)
    assert got.shape == (4,) and got.dtype == F64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10, rtol=0)


def test_prior_gh_matches_scipy_quad_for_a_1d_nonlinear_decoder():
    model = vaelib.NonlinearGaussian(
        lambda z: torch.cat([torch.sin(z), z**2], -1), 1, 0.5
    )
    x = torch.tensor([[0.3, 0.8], [-0.5, 0.4]], dtype=F64)
    got = vaelib.log_px_prior_gh(model, x, n_nodes=300)
    for n in range(2):
        f = lambda z: (
            norm.pdf(z)
            * np.prod(norm.pdf(x[n].numpy(), [np.sin(z), z**2], 0.5))
        )
        value, _ = integrate.quad(
            f, -12, 12, epsabs=0, epsrel=1e-12, limit=400
        )
        assert abs(got[n].item() - np.log(value)) < 1e-7


def test_prior_gh_is_exact_for_a_polynomial_likelihood_in_1d():
    # A constant-in-z likelihood: the average over the prior is the likelihood
    # itself.
    model = vaelib.NonlinearGaussian(
        lambda z: torch.zeros(*z.shape[:-1], 2, dtype=z.dtype), 1, 0.7
    )
    x = torch.tensor([[0.1, -0.4]], dtype=F64)
    expected = norm.logpdf(x.numpy(), 0, 0.7).sum()
    assert (
        abs(vaelib.log_px_prior_gh(model, x, n_nodes=3).item() - expected)
        < 1e-13
    )


def test_prior_gh_misses_a_sharp_likelihood():
    # The documented failure: a narrow P(x|z) falls between the nodes.
    model = _linear(0.05)
    x = (model.W @ torch.tensor([1.2, -0.8], dtype=F64) + model.b)[None]
    err = (
        (vaelib.log_px_prior_gh(model, x, n_nodes=20) - model.log_marginal(x))
        .abs()
        .item()
    )
    assert err > 1.0


def test_prior_gh_float32():
    model = _linear(1.0, dtype=torch.float32)
    x = torch.zeros(2, 3, dtype=torch.float32)
    got = vaelib.log_px_prior_gh(model, x, n_nodes=120)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(
        got.numpy(), model.log_marginal(x).numpy(), atol=1e-4
    )


def test_prior_gh_bad_input():
    model = _linear(1.0)
    x = torch.zeros(1, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"^n_nodes: "):
        vaelib.log_px_prior_gh(model, x, n_nodes=0)
    with pytest.raises(ValueError, match=r"^n_nodes: "):
        vaelib.log_px_prior_gh(model, x, n_nodes=301)
    with pytest.raises(ValueError, match=r"^x: "):
        vaelib.log_px_prior_gh(model, torch.zeros(1, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"^x: "):
        vaelib.log_px_prior_gh(
            model, torch.full((1, 3), float("nan"), dtype=F64)
        )
    big = vaelib.NonlinearGaussian(lambda z: z, 4, 1.0)
    with pytest.raises(ValueError, match=r"^model: "):
        vaelib.log_px_prior_gh(big, torch.zeros(1, 4, dtype=F64))
