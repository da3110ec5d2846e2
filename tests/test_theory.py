import math

from scipy import integrate
from scipy.stats import multivariate_normal
from scipy.stats import norm
import numpy as np
import pytest
import torch

import vaelib
from helpers import F64, data_from, random_linear_gaussian


def test_second_moment_against_a_brute_force_integral():
    """E_{P(z)}[P(x|z)²] = ∫ N(x; Wz+b, σ²I)² N(z; 0, 1) dz, by scipy quad (d =
    1)."""
    model = random_linear_gaussian(D=3, d=1, sigma=0.6, seed=2)
    x = data_from(model, torch.tensor([[0.7]], dtype=F64))
    W, b, s2 = model.W.numpy(), model.b.numpy(), 0.36

    def integrand(z):
        return (
            multivariate_normal(W[:, 0] * z + b, s2 * np.eye(3)).pdf(
                x[0].numpy()
            )
            ** 2
            * math.exp(-z * z / 2)
            / math.sqrt(2 * math.pi)
        )

    expected = integrate.quad(
        integrand, -12, 12, epsabs=0, epsrel=1e-12, limit=500
    )[0]
    assert vaelib.naive_log_second_moment(model, x).item() == pytest.approx(
        math.log(expected), abs=1e-9
    )


def test_samples_needed_matches_monte_carlo_relative_variance():
    model = random_linear_gaussian(D=3, d=2, sigma=0.8, seed=0)
    x = data_from(model, torch.randn(2, 2, dtype=F64))
    w = torch.exp(
        vaelib.log_importance_weights(model, None, x, 400_000)
        - model.log_marginal(x)
    )
    rel_var = w.var(0)  # Var(w) / P(x)², estimated
    predicted = torch.exp(
        vaelib.naive_log_samples_needed(model, x, rel_err=1.0)
    )
    np.testing.assert_allclose(rel_var, predicted, rtol=0.05)
    ten_percent = torch.exp(
        vaelib.naive_log_samples_needed(model, x, rel_err=0.1)
    )
    np.testing.assert_allclose(ten_percent, 100 * predicted, rtol=1e-12)


def test_huge_sample_counts_stay_finite():
    model = random_linear_gaussian(D=400, d=200, sigma=0.05, seed=1)
    x = data_from(model, torch.randn(1, 200, dtype=F64))
    log_s = vaelib.naive_log_samples_needed(model, x)
    assert (
        torch.isfinite(log_s).all() and log_s.item() > 710
    )  # S > e^710: beyond float64


def test_samples_needed_bad_arguments():
    model = random_linear_gaussian(D=3, d=2, sigma=0.8)
    x = torch.zeros(1, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"^rel_err: "):
        vaelib.naive_log_samples_needed(model, x, rel_err=0)
    with pytest.raises(ValueError, match=r"^model: expected a LinearGaussian"):
        vaelib.naive_log_second_moment(
            vaelib.NonlinearGaussian(torch.sin, 3, 1.0), x
        )
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 3\)"):
        vaelib.naive_log_second_moment(model, torch.zeros(1, 4, dtype=F64))


@pytest.mark.parametrize(
    "delta, s", [(0.0, 1.0), (1.3, 1.0), (0.5, 0.8), (2.0, 1.7), (-1.0, 3.0)]
)
def test_one_axis_against_scipy_integral(delta, s):
    """∫ N(u; 0, 1)² / N(u; δ, s²) du, integrated by scipy."""
    value = integrate.quad(
        lambda u: math.exp(2 * norm.logpdf(u) - norm.logpdf(u, delta, s)),
        -30,
        30,
        epsabs=0,
        epsrel=1e-12,
        limit=500,
    )[0]
    out = vaelib.gaussian_is_log_second_moment(delta**2, s, 1).item()
    assert out == pytest.approx(math.log(value), abs=1e-9)


def test_linear_gaussian_weights_match_monte_carlo():
    model = random_linear_gaussian(D=6, d=2, sigma=0.4, seed=3)
    x = data_from(model, torch.randn(1, 2, dtype=F64))
    post = model.posterior(x)
    delta, s = torch.tensor([0.8, -0.5], dtype=F64), 1.3
    q = vaelib.gaussian_proposal(post, delta, s)
    w = torch.exp(
        vaelib.log_importance_weights(model, q, x, 400_000)
        - model.log_marginal(x)
    )[:, 0]
    predicted = math.exp(
        vaelib.gaussian_is_log_second_moment((delta**2).sum(), s, 2).item()
    )
    assert (w**2).mean().item() == pytest.approx(predicted, rel=0.03)


def test_exact_posterior_and_too_narrow_proposals():
    assert vaelib.gaussian_is_log_second_moment(
        0.0, 1.0, 5
    ).item() == pytest.approx(0.0, abs=1e-15)
    assert (
        vaelib.gaussian_is_log_second_moment(1.0, 0.7, 2).item() == math.inf
    )  # s² < 1/2
    out = vaelib.gaussian_is_log_second_moment(
        torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.0]), 1
    )
    assert out[0].item() == math.inf and out[1].item() == pytest.approx(1.0)


def test_second_moment_bad_arguments():
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
    np.testing.assert_allclose(
        q.mean,
        post.mean + L @ torch.tensor([1.0, -2.0], dtype=F64),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        q.covariance_matrix, 0.25 * post.covariance_matrix, rtol=1e-12
    )
    np.testing.assert_allclose(
        vaelib.gaussian_proposal(post, [0.0, 0.0], 1.0).log_prob(post.mean),
        post.log_prob(post.mean),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match=r"^shift: "):
        vaelib.gaussian_proposal(post, [1.0], 1.0)
    with pytest.raises(ValueError, match=r"^scale: "):
        vaelib.gaussian_proposal(post, [0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match=r"^posterior: "):
        vaelib.gaussian_proposal(
            vaelib.diagonal_normal(torch.zeros(3, 2), torch.ones(3, 2)),
            [0.0, 0.0],
            1.0,
        )


def _np_log_posterior_over_prior(model, x):
    """log ∫ P(z|x)² / P(z) dz (= log E[w²]/P(x)², Bayes' rule) in numpy, from
    the posterior N(m, Σ), Σ = (I + WᵀW/σ²)⁻¹, m = ΣWᵀ(x − b)/σ², and the
    Gaussian integral ∫ N(z; m, Σ)² / N(z; 0, I) dz = |Σ|⁻¹ |A|^(−1/2) exp(½
    hᵀA⁻¹h − mᵀΣ⁻¹m), A = 2Σ⁻¹ − I, h = 2Σ⁻¹m: a route that shares nothing with
    vaelib's (which goes through the marginal with halved noise)."""
    W, b, s2 = model.W.numpy(), model.b.numpy(), model.sigma.item() ** 2
    prec = np.eye(W.shape[1]) + W.T @ W / s2  # Σ⁻¹
    m = np.linalg.solve(prec, W.T @ (np.asarray(x) - b).T / s2).T  # (N, d)
    A = 2 * prec - np.eye(W.shape[1])
    h = 2 * m @ prec
    quad = 0.5 * np.einsum(
        "ni,ni->n", h, np.linalg.solve(A, h.T).T
    ) - np.einsum("ni,ij,nj->n", m, prec, m)
    return np.linalg.slogdet(prec)[1] - 0.5 * np.linalg.slogdet(A)[1] + quad


def test_posterior_route_matches_the_second_moment():
    """E[w²]/P(x)² = ∫ P(z|x)²/P(z) dz, the identity Chapter 2 derives the
    scaling from."""
    model = random_linear_gaussian(D=7, d=3, sigma=0.4, seed=4)
    x = data_from(model, torch.randn(5, 3, dtype=F64))
    log_ratio = vaelib.naive_log_second_moment(
        model, x
    ) - 2 * model.log_marginal(x)
    np.testing.assert_allclose(
        log_ratio.numpy(),
        _np_log_posterior_over_prior(model, x),
        rtol=0,
        atol=1e-9,
    )


@pytest.mark.parametrize("d", [1, 2, 4])
def test_scaling_law_is_the_typical_exact_count_for_large_D(d):
    """S ≈ 100 (eD/2σ²)^(d/2): the mean over x of the exact log S (numpy,
    posterior route), for W with N(0, 1) entries, D = 4000 ≫ d and 4000 data
    points from the model. Expected deviation: eigenvalues of WᵀW/D are 1 ±
    O(√(d/D)) (≲ 0.05 nats), the mean of ‖m‖²/2 over 4000 x has a standard
    error √(d/2)/√4000 ≤ 0.03 nats, and the posterior width σ²/D ≈ 2e-5 is not
    quite 0; the tolerance is 0.15 nats, while dropping the factor e (the ‖m‖²
    ≈ d term) would be off by d/2 ≥ 0.5 nats."""
    D, sigma, n_x = 4000, 0.3, 4000
    g = torch.Generator().manual_seed(d)
    model = vaelib.LinearGaussian(
        torch.randn(D, d, generator=g, dtype=F64),
        torch.zeros(D, dtype=F64),
        sigma,
    )
    x = data_from(model, torch.randn(n_x, d, generator=g, dtype=F64))
    log_ratio = _np_log_posterior_over_prior(model, x)
    exact = np.mean(log_ratio + np.log1p(-np.exp(-log_ratio))) - 2 * math.log(
        0.1
    )  # mean log S
    assert vaelib.naive_samples_needed_scaling(
        D, d, sigma, rel_err=0.1
    ) == pytest.approx(exact, abs=0.15)


def test_scaling_law_bad_arguments():
    with pytest.raises(ValueError, match=r"^data_dim: "):
        vaelib.naive_samples_needed_scaling(0, 2, 0.5)
    with pytest.raises(ValueError, match=r"^latent_dim: "):
        vaelib.naive_samples_needed_scaling(10, 0, 0.5)
    with pytest.raises(ValueError, match=r"^sigma: "):
        vaelib.naive_samples_needed_scaling(10, 2, -1.0)
    with pytest.raises(ValueError, match=r"^rel_err: "):
        vaelib.naive_samples_needed_scaling(10, 2, 0.5, rel_err=0)
