import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import vaelib
from helpers import F64
from vaelib.linear import LinearVAE, ppca_kl_per_dimension, ppca_mle


def ppca_data(N=400, D=6, seed=0):
    """Data from a pPCA-like model with distinct eigenvalues: 2 strong
    directions, noise, and a non-zero mean."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, 2, generator=g, dtype=F64) * torch.tensor(
        [3.0, 1.5], dtype=F64
    )
    z = torch.randn(N, 2, generator=g, dtype=F64)
    scales = torch.linspace(
        0.3, 0.8, D, dtype=F64
    )  # anisotropic noise: not exactly pPCA
    return z @ W.T + 2.0 + scales * torch.randn(N, D, generator=g, dtype=F64)


def numpy_spectrum(x):
    """Eigenvalues (descending) of the 1/N sample covariance from numpy's SVD
    of the centred data (a different algorithm from the eigendecomposition
    vaelib uses)."""
    x = np.asarray(x, dtype=np.float64)
    r = x - x.mean(0)
    s = np.linalg.svd(r, compute_uv=False)
    lam = np.zeros(x.shape[1])
    lam[: len(s)] = s**2 / x.shape[0]
    return lam


def dense_mean_log_lik(x, W, b, sigma):
    """Mean over rows of log N(x; b, W Wᵀ + σ² I) by scipy, with C formed
    densely."""
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    C = W @ W.T + float(sigma) ** 2 * np.eye(W.shape[0])
    return (
        multivariate_normal(b, C)
        .logpdf(np.asarray(x, dtype=np.float64))
        .mean()
    )


def torch_dense_mean_log_lik(x, W, b, log_sigma):
    """The same, differentiable: torch's MultivariateNormal with a dense
    covariance."""
    C = W @ W.T + torch.exp(2 * log_sigma) * torch.eye(
        W.shape[0], dtype=W.dtype
    )
    return MultivariateNormal(b, covariance_matrix=C).log_prob(x).mean()


# ---------------------------------------------------------------- ppca_mle


@pytest.mark.parametrize("d", [1, 2, 4])
def test_mle_sigma_is_the_mean_of_the_discarded_eigenvalues(d):
    x = ppca_data()
    model = ppca_mle(x, d)
    lam = numpy_spectrum(x)
    np.testing.assert_allclose(
        model.sigma.item() ** 2, lam[d:].mean(), rtol=1e-12
    )
    np.testing.assert_allclose(model.b.numpy(), x.numpy().mean(0), rtol=1e-13)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_mle_loadings_match_numpy_eigh(d):
    """W Wᵀ = U_d (Λ_d − σ²) U_dᵀ (rotation- and sign-free), from
    numpy.linalg.eigh."""
    x = ppca_data(seed=1)
    model = ppca_mle(x, d)
    lam, U = np.linalg.eigh(np.cov(x.numpy().T, bias=True))
    lam, U = lam[::-1], U[:, ::-1]
    s2 = lam[d:].mean()
    expected = U[:, :d] @ np.diag(lam[:d] - s2) @ U[:, :d].T
    W = model.W.numpy()
    np.testing.assert_allclose(W @ W.T, expected, rtol=0, atol=1e-11)
    # the columns are orthogonal, with squared norms λᵢ − σ²
    np.testing.assert_allclose(
        W.T @ W, np.diag(lam[:d] - s2), rtol=0, atol=1e-11
    )


@pytest.mark.parametrize("d", [1, 2, 4])
def test_mle_log_likelihood_matches_scipy_and_the_closed_form_maximum(d):
    """At the MLE, mean log-likelihood = −½ [D log 2π + Σ_{i≤d} log λᵢ + (D −
    d) log σ² + D] (Tipping & Bishop 1999, eq. 14 at the optimum, where
    tr(C⁻¹S) = D)."""
    x = ppca_data(seed=2)
    model = ppca_mle(x, d)
    D = x.shape[1]
    lam = numpy_spectrum(x)
    s2 = lam[d:].mean()
    closed = -0.5 * (
        D * math.log(2 * math.pi)
        + np.log(lam[:d]).sum()
        + (D - d) * math.log(s2)
        + D
    )
    ours = model.log_marginal(x).mean().item()
    np.testing.assert_allclose(
        ours, dense_mean_log_lik(x, model.W, model.b, model.sigma), rtol=1e-12
    )
    np.testing.assert_allclose(ours, closed, rtol=1e-12)


def test_mle_beats_perturbations_and_is_rotation_invariant():
    """Moving σ or the scale of W (either way), W or b (random directions) away
    from the MLE lowers the log-likelihood (scipy, dense C); rotating W by an
    orthogonal R does not change it."""
    x = ppca_data(seed=3)
    model = ppca_mle(x, 2)
    W0, b0, sigma0 = model.W.numpy(), model.b.numpy(), model.sigma.item()
    best = dense_mean_log_lik(x, W0, b0, sigma0)
    g = np.random.default_rng(0)
    for eps in (1e-1, 1e-2, 1e-3):
        for sign in (1, -1):
            assert (
                dense_mean_log_lik(x, W0, b0, sigma0 * math.exp(sign * eps))
                < best
            )
            assert (
                dense_mean_log_lik(x, W0 * math.exp(sign * eps), b0, sigma0)
                < best
            )
        for _ in range(5):
            assert (
                dense_mean_log_lik(
                    x, W0 + eps * g.standard_normal(W0.shape), b0, sigma0
                )
                < best
            )
            assert (
                dense_mean_log_lik(
                    x, W0, b0 + eps * g.standard_normal(b0.shape), sigma0
                )
                < best
            )
    R, _ = np.linalg.qr(g.standard_normal((2, 2)))
    np.testing.assert_allclose(
        dense_mean_log_lik(x, W0 @ R, b0, sigma0), best, rtol=1e-13
    )


@pytest.mark.parametrize("sigma", [None, 0.9])
def test_log_likelihood_is_stationary_at_the_mle(sigma):
    """Autograd gradient of the mean log-likelihood (dense torch
    MultivariateNormal, not LinearGaussian) w.r.t. W, b and log σ vanishes at
    ppca_mle's solution (w.r.t. W and b only when σ is fixed), and does not at
    a nearby point."""
    x = ppca_data(seed=4)
    model = ppca_mle(x, 3, sigma=sigma)
    if sigma is not None:  # σ² lies between the eigenvalues: a clipped column
        lam = numpy_spectrum(x)
        assert lam[2] < sigma**2 < lam[1]
    for shift in (0.0, 0.05):
        W = (model.W + shift).requires_grad_()
        b = model.b.clone().requires_grad_()
        log_sigma = model.sigma.log().clone().requires_grad_()
        torch_dense_mean_log_lik(x, W, b, log_sigma).backward()
        grads = [W.grad, b.grad] + ([log_sigma.grad] if sigma is None else [])
        worst = max(gr.abs().max().item() for gr in grads)
        if shift == 0:
            assert worst < 1e-10
        else:
            assert worst > 1e-3


def test_log_marginal_gradient_vanishes_at_the_mle():
    """The same stationarity through LinearGaussian.log_marginal's own
    autograd."""
    x = ppca_data(seed=5)
    model = ppca_mle(x, 2)
    W = model.W.clone().requires_grad_()
    b = model.b.clone().requires_grad_()
    sigma = model.sigma.clone().requires_grad_()
    vaelib.LinearGaussian(W, b, sigma).log_marginal(x).mean().backward()
    for grad in (W.grad, b.grad, sigma.grad):
        assert grad.abs().max().item() < 1e-10


def test_fixed_sigma_clips_eigenvalues_below_sigma_squared():
    x = ppca_data(seed=6)
    lam = numpy_spectrum(x)
    sigma = math.sqrt(
        0.5 * (lam[1] + lam[2])
    )  # two eigenvalues above σ², four below
    model = ppca_mle(x, 5, sigma=sigma)
    assert model.sigma.item() == pytest.approx(sigma, rel=1e-15)
    norms = model.W.norm(dim=0).numpy()
    np.testing.assert_allclose(
        norms[:2], np.sqrt(lam[:2] - sigma**2), rtol=1e-10
    )
    assert (norms[2:] == 0).all()
    # the clipped model is the best W for this σ: better than any perturbation
    # of W, b
    best = dense_mean_log_lik(x, model.W, model.b, sigma)
    g = np.random.default_rng(1)
    for eps in (1e-1, 1e-2, 1e-3):
        W = model.W.numpy() + eps * g.standard_normal(model.W.shape)
        b = model.b.numpy() + eps * g.standard_normal(model.b.shape)
        assert dense_mean_log_lik(x, W, b, sigma) < best


def test_fixed_sigma_at_the_mle_sigma_gives_the_mle():
    x = ppca_data(seed=7)
    free = ppca_mle(x, 2)
    fixed = ppca_mle(x, 2, sigma=free.sigma.item())
    np.testing.assert_allclose(
        fixed.W @ fixed.W.T, free.W @ free.W.T, rtol=0, atol=1e-11
    )
    np.testing.assert_allclose(
        fixed.log_marginal(x), free.log_marginal(x), rtol=1e-12
    )


def test_float32_data_gives_a_float32_model():
    x = ppca_data(seed=8)
    model = ppca_mle(x.float(), 2)
    assert model.dtype == torch.float32 and model.b.dtype == torch.float32
    np.testing.assert_allclose(
        model.W @ model.W.T,
        (ppca_mle(x, 2).W @ ppca_mle(x, 2).W.T).float(),
        rtol=0,
        atol=1e-4,
    )


@pytest.mark.parametrize(
    "args, pattern",
    [
        ((torch.zeros(5), 1), r"^x: expected shape \(N, D\)"),
        ((torch.zeros(1, 4), 1), r"^x: expected shape \(N, D\) with N >= 2"),
        (
            (torch.zeros(5, 4, dtype=torch.int64), 1),
            r"^x: expected a floating-point tensor",
        ),
        (
            (torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]), 1),
            r"^x: contains NaN",
        ),
        ((torch.randn(5, 4), 0), r"^latent_dim: expected an integer >= 1"),
        (
            (torch.randn(5, 4), 4),
            r"^latent_dim: expected d < D = 4 when sigma is learned",
        ),
        ((torch.randn(5, 4), 5, 1.0), r"^latent_dim: expected d <= D = 4"),
        ((torch.randn(5, 4), 2, 0.0), r"^sigma: expected a finite value > 0"),
        (
            (torch.randn(5, 4), 2, float("nan")),
            r"^sigma: expected a finite value > 0",
        ),
    ],
)
def test_ppca_mle_bad_input(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        ppca_mle(*args)


def test_ppca_mle_rejects_data_in_a_subspace():
    x = torch.randn(10, 2, dtype=F64) @ torch.randn(2, 5, dtype=F64)  # rank 2
    with pytest.raises(
        ValueError,
        match=r"^latent_dim: the 3 discarded eigenvalues .* are all 0",
    ):
        ppca_mle(x, 2)
    assert ppca_mle(x, 2, sigma=0.1).sigma.item() == pytest.approx(0.1)


# ---------------------------------------------------------------- KL per
# dimension


def test_kl_per_dimension_matches_the_exact_posterior_of_the_closed_form():
    """½ log⁺(λᵢ/σ²) against torch's KL of each coordinate of the exact
    posterior of the fixed-σ closed-form model (diagonal there: W's columns are
    orthogonal), averaged over data."""
    x = ppca_data(seed=9)
    lam = numpy_spectrum(x)
    sigma = math.sqrt(0.5 * (lam[1] + lam[2]))
    model = ppca_mle(x, 4, sigma=sigma)
    post = model.posterior(x)
    cov = post.covariance_matrix[0]
    np.testing.assert_allclose(
        cov - torch.diag(torch.diag(cov)), 0, rtol=0, atol=1e-13
    )
    per_dim = kl_divergence(
        Normal(post.mean, cov.diagonal().sqrt()), Normal(0.0, 1.0)
    ).mean(0)
    np.testing.assert_allclose(
        ppca_kl_per_dimension(lam[:4], sigma), per_dim, rtol=0, atol=1e-12
    )
    assert (ppca_kl_per_dimension(lam[2:4], sigma) == 0).all()


def test_kl_per_dimension_bad_input():
    with pytest.raises(ValueError, match=r"^eigenvalues: expected a vector"):
        ppca_kl_per_dimension([[1.0]], 1.0)
    with pytest.raises(ValueError, match=r"^eigenvalues: expected a vector"):
        ppca_kl_per_dimension([-1.0], 1.0)
    with pytest.raises(
        ValueError, match=r"^sigma: expected a finite value > 0"
    ):
        ppca_kl_per_dimension([1.0], -1.0)


# ---------------------------------------------------------------- LinearVAE


def random_linear_vae(D=5, d=2, sigma=None, seed=0):
    torch.manual_seed(seed)
    vae = LinearVAE(D, d, sigma=sigma).double()
    with torch.no_grad():  # move every parameter away from its initial value
        for p in vae.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return vae


def test_model_contract_shapes():
    vae = LinearVAE(6, 3)
    assert (
        vae.dtype == torch.float32
        and vae.data_dim == 6
        and vae.latent_dim == 3
    )
    assert vae.prior().event_shape == (3,)
    p = vae.likelihood(torch.zeros(4, 5, 3))
    assert p.batch_shape == (4, 5) and p.event_shape == (6,)
    q = vae.posterior(p.sample()[0])
    assert q.batch_shape == (5,) and q.event_shape == (3,) and q.has_rsample
    assert (
        vae.double().dtype == torch.float64
        and vae.prior().mean.dtype == torch.float64
    )


def test_likelihood_and_posterior_are_the_stated_gaussians():
    vae = random_linear_vae()
    W, b = vae.decoder.weight.detach(), vae.decoder.bias.detach()
    V, c = vae.encoder.weight.detach(), vae.encoder.bias.detach()
    z = torch.randn(3, 2, dtype=F64)
    x = torch.randn(3, 5, dtype=F64)
    p = vae.likelihood(z)
    expected = Normal(z @ W.T + b, vae.sigma.detach()).log_prob(x).sum(-1)
    np.testing.assert_allclose(p.log_prob(x).detach(), expected, rtol=1e-13)
    q = vae.posterior(x)
    np.testing.assert_allclose(q.mean.detach(), x @ V.T + c, rtol=1e-13)
    np.testing.assert_allclose(
        q.stddev.detach(), vae.log_s.exp().detach().expand(3, 2), rtol=1e-13
    )


def test_as_linear_gaussian_log_marginal_matches_scipy():
    vae = random_linear_vae(D=7, d=3)
    lg = vae.as_linear_gaussian()
    W, b, sigma = (
        vae.decoder.weight.detach(),
        vae.decoder.bias.detach(),
        vae.sigma.item(),
    )
    x = 2 * torch.randn(10, 7, dtype=F64)
    C = W.numpy() @ W.numpy().T + sigma**2 * np.eye(7)
    np.testing.assert_allclose(
        lg.log_marginal(x),
        multivariate_normal(b.numpy(), C).logpdf(x.numpy()),
        rtol=1e-12,
    )
    assert not lg.W.requires_grad and lg.dtype == torch.float64


def test_monte_carlo_elbo_and_importance_sampling_apply():
    """vaelib.elbo on the VAE agrees with the closed-form ELBO of its
    LinearGaussian within error bars, and log_px_is with many samples
    approaches the exact log P(x)."""
    vae = random_linear_vae(D=5, d=2)
    lg = vae.as_linear_gaussian()
    x = 2 * torch.randn(4, 5, dtype=F64)
    with torch.no_grad():
        q = vae.posterior(x)
        estimate, se = vaelib.elbo(vae, q, x, 20000, stderr=True)
        assert ((estimate - lg.elbo(x, q)).abs() < 5 * se).all()
        exact = lg.log_marginal(x)
        is_estimate = vaelib.log_px_is(
            vae, lg.posterior(x), x, 10
        )  # Q = P(z|x): zero variance
        np.testing.assert_allclose(is_estimate, exact, rtol=1e-10)


def test_gradients_reach_every_parameter():
    vae = random_linear_vae()
    x = torch.randn(6, 5, dtype=F64)
    vaelib.elbo(vae, vae.posterior(x), x, 2).sum().backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_fixed_sigma_is_a_buffer():
    vae = LinearVAE(4, 2, sigma=0.3)
    assert "log_sigma" not in dict(vae.named_parameters())
    assert vae.sigma.item() == pytest.approx(0.3, rel=1e-6)
    assert vae.double().as_linear_gaussian().sigma.item() == pytest.approx(
        0.3, rel=1e-6
    )
    assert "log_sigma" in dict(LinearVAE(4, 2).named_parameters())


def test_fit_reaches_the_ppca_maximum():
    """A short fit on pPCA-like data: the exact log-likelihood of the trained
    decoder is below the closed-form maximum, and within 0.1 nats of it
    (measured: 0.03)."""
    x = ppca_data(N=600, D=6, seed=10)
    torch.manual_seed(0)
    vae = LinearVAE(6, 2).double()
    vaelib.fit(
        vae,
        x[:400],
        x[400:],
        max_epochs=150,
        seed=0,
        lr=3e-2,
        valid_draws=10,
        progress=False,
    )
    learned = vae.as_linear_gaussian().log_marginal(x[:400]).mean().item()
    best = ppca_mle(x[:400], 2).log_marginal(x[:400]).mean().item()
    assert learned <= best + 1e-9
    assert best - learned < 0.1


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (
            dict(data_dim=0, latent_dim=2),
            r"^data_dim: expected an integer >= 1",
        ),
        (
            dict(data_dim=4, latent_dim=1.5),
            r"^latent_dim: expected an integer >= 1",
        ),
        (
            dict(data_dim=4, latent_dim=2, sigma=-0.1),
            r"^sigma: expected a finite value > 0",
        ),
    ],
)
def test_linear_vae_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        LinearVAE(**kwargs)


def test_posterior_rejects_nan_and_wrong_width():
    vae = LinearVAE(4, 2)
    with pytest.raises(ValueError, match=r"^x: contains NaN"):
        vae.posterior(torch.tensor([[0.0, float("nan"), 1.0, 2.0]]))
    with pytest.raises(
        ValueError, match=r"^x: expected shape \(N, 4\), got \(1, 5\)"
    ):
        vae.posterior(torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"^z: expected shape \(\.\.\., 2\)"):
        vae.likelihood(torch.zeros(3, 4))
