import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import multivariate_normal

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
    with pytest.raises(ValueError, match="rel_err"):
        vaelib.naive_log_samples_needed(model, x, rel_err=0)
    with pytest.raises(ValueError, match="model: expected a LinearGaussian"):
        vaelib.naive_log_second_moment(vaelib.NonlinearGaussian(torch.sin, 3, 1.0), x)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\)"):
        vaelib.naive_log_second_moment(model, torch.zeros(1, 4, dtype=F64))
