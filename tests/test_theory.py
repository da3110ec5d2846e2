import math

from scipy import integrate
from scipy.stats import multivariate_normal
from scipy.stats import norm
import numpy as np
import pytest
import torch

import vaelib
from conftest import F64, data_from, random_linear_gaussian


def test_second_moment_against_a_brute_force_integral():
    """E_{P(z)}[P(x|z)²] = ∫ N(x; Wz+b, σ²I)² N(z; 0, 1) dz, by scipy quad (d = 1)."""
    model = random_linear_gaussian(D=3, d=1, sigma=0.6, seed=2)
    x = data_from(model, torch.tensor([[0.7]], dtype=F64))
    W, b, s2 = model.W.numpy(), model.b.numpy(), 0.36

    def integrand(z):
        return multivariate_normal(W[:, 0] * z + b, s2 * np.eye(3)).pdf(x[0].numpy()) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    expected = integrate.quad(integrand, -12, 12, epsabs=0, epsrel=1e-12, limit=500)[0]
    assert vaelib.naive_log_second_moment(model, x).item() == pytest.approx(math.log(expected), abs=1e-9)


def test_samples_needed_matches_monte_carlo_relative_variance():
    model = random_linear_gaussian(D=3, d=2, sigma=0.8, seed=0)
    x = data_from(model, torch.randn(2, 2, dtype=F64))
    w = torch.exp(vaelib.log_importance_weights(model, None, x, 400_000) - model.log_marginal(x))
    rel_var = w.var(0)  # Var(w) / P(x)², estimated
    predicted = torch.exp(vaelib.naive_log_samples_needed(model, x, rel_err=1.0))
    np.testing.assert_allclose(rel_var, predicted, rtol=0.05)
    ten_percent = torch.exp(vaelib.naive_log_samples_needed(model, x, rel_err=0.1))
    np.testing.assert_allclose(ten_percent, 100 * predicted, rtol=1e-12)


def test_huge_sample_counts_stay_finite():
    model = random_linear_gaussian(D=400, d=200, sigma=0.05, seed=1)
    x = data_from(model, torch.randn(1, 200, dtype=F64))
    log_s = vaelib.naive_log_samples_needed(model, x)
    assert torch.isfinite(log_s).all() and log_s.item() > 710  # S > e^710: beyond float64


def test_bad_arguments():
    model = random_linear_gaussian(D=3, d=2, sigma=0.8)
    x = torch.zeros(1, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"^rel_err: "):
        vaelib.naive_log_samples_needed(model, x, rel_err=0)
    with pytest.raises(ValueError, match=r"^model: expected a LinearGaussian"):
        vaelib.naive_log_second_moment(vaelib.NonlinearGaussian(torch.sin, 3, 1.0), x)
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 3\)"):
        vaelib.naive_log_second_moment(model, torch.zeros(1, 4, dtype=F64))


@pytest.mark.parametrize("delta, s", [(0.0, 1.0), (1.3, 1.0), (0.5, 0.8), (2.0, 1.7), (-1.0, 3.0)])
def test_one_axis_against_scipy_integral(delta, s):
    """∫ N(u; 0, 1)² / N(u; δ, s²) du, integrated by scipy."""
    value = integrate.quad(lambda u: math.exp(2 * norm.logpdf(u) - norm.logpdf(u, delta, s)), -30, 30, epsabs=0, epsrel=1e-12, limit=500)[0]
    out = vaelib.gaussian_is_log_second_moment(delta**2, s, 1).item()
    assert out == pytest.approx(math.log(value), abs=1e-9)


def test_linear_gaussian_weights_match_monte_carlo():
    model = random_linear_gaussian(D=6, d=2, sigma=0.4, seed=3)
    x = data_from(model, torch.randn(1, 2, dtype=F64))
    post = model.posterior(x)
    delta, s = torch.tensor([0.8, -0.5], dtype=F64), 1.3
    q = vaelib.gaussian_proposal(post, delta, s)
    w = torch.exp(vaelib.log_importance_weights(model, q, x, 400_000) - model.log_marginal(x))[:, 0]
    predicted = math.exp(vaelib.gaussian_is_log_second_moment((delta**2).sum(), s, 2).item())
    assert (w**2).mean().item() == pytest.approx(predicted, rel=0.03)


def test_exact_posterior_and_too_narrow_proposals():
    assert vaelib.gaussian_is_log_second_moment(0.0, 1.0, 5).item() == pytest.approx(0.0, abs=1e-15)
    assert vaelib.gaussian_is_log_second_moment(1.0, 0.7, 2).item() == math.inf  # s² < 1/2
    out = vaelib.gaussian_is_log_second_moment(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.0]), 1)
    assert out[0].item() == math.inf and out[1].item() == pytest.approx(1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^shift_sq: "):
        vaelib.gaussian_is_log_second_moment(-1.0, 1.0, 1)
    with pytest.raises(ValueError, match=r"^scale: "):
        vaelib.gaussian_is_log_second_moment(0.0, 0.0, 1)
    with pytest.raises(ValueError, match=r"^d: "):
        vaelib.gaussian_is_log_second_moment(0.0, 1.0, 0)


def test_gaussian_proposal_moments():
    model = random_linear_gaussian(D=5, d=2, sigma=0.4, seed=1)
    post = model.posterior(data_from(model, torch.randn(3, 2, dtype=F64)))
    q = vaelib.gaussian_proposal(post, [1.0, -2.0], 0.5)
    L = post.scale_tril
    np.testing.assert_allclose(q.mean, post.mean + L @ torch.tensor([1.0, -2.0], dtype=F64), rtol=1e-12)
    np.testing.assert_allclose(q.covariance_matrix, 0.25 * post.covariance_matrix, rtol=1e-12)
    np.testing.assert_allclose(vaelib.gaussian_proposal(post, [0.0, 0.0], 1.0).log_prob(post.mean), post.log_prob(post.mean), rtol=1e-12)
    with pytest.raises(ValueError, match=r"^shift: "):
        vaelib.gaussian_proposal(post, [1.0], 1.0)
    with pytest.raises(ValueError, match=r"^scale: "):
        vaelib.gaussian_proposal(post, [0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match=r"^posterior: "):
        vaelib.gaussian_proposal(vaelib.diagonal_normal(torch.zeros(3, 2), torch.ones(3, 2)), [0.0, 0.0], 1.0)
