import math
import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal
from scipy.stats import norm
from torch.distributions import MultivariateNormal, kl_divergence
import numpy as np
import pytest
import torch

import vaelib
from helpers import (
    F64,
    data_from,
    gaussian_kl,
    mp_log_marginal,
    random_linear_gaussian,
)


def dense_marginal(model):
    W, b, s2 = model.W.numpy(), model.b.numpy(), model.sigma.item() ** 2
    return b, W @ W.T + s2 * np.eye(model.data_dim)


def dense_posterior(model, x):
    """Bayes' rule for Gaussians with dense inverses: Σ = (I + WᵀW/σ²)⁻¹, m = Σ
    Wᵀ(x−b)/σ²."""
    W, b, s2 = model.W.numpy(), model.b.numpy(), model.sigma.item() ** 2
    cov = np.linalg.inv(np.eye(model.latent_dim) + W.T @ W / s2)
    mean = (x.numpy() - b) @ W @ cov / s2
    return mean, cov


@settings(max_examples=40, deadline=None)
@given(
    D=st.integers(1, 8),
    d=st.integers(1, 4),
    sigma=st.floats(0.05, 5.0),
    seed=st.integers(0, 10**6),
)
def test_log_marginal_matches_scipy(D, d, sigma, seed):
    model = random_linear_gaussian(D, d, sigma, seed)
    x = data_from(model, torch.randn(5, d, dtype=F64))
    mean, cov = dense_marginal(model)
    expected = multivariate_normal(mean, cov).logpdf(x.numpy()).reshape(-1)
    np.testing.assert_allclose(
        model.log_marginal(x).numpy(), expected, rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize(
    "singular_values, sigma, x_scale",
    [
        ([1e3, 1.0, 1e-6], 1e-4, 1.0),  # ill-conditioned W, tiny noise
        ([2.0, 1.0, 0.5], 50.0, 1.0),  # large noise
        ([1.0, 1.0, 1.0], 0.3, 1e3),  # x far from the data
        ([0.0, 0.0, 0.0], 0.7, 1.0),  # W = 0: P(x) = N(b, σ²I)
    ],
)
def test_log_marginal_hard_cases_against_high_precision(
    singular_values, sigma, x_scale
):
    g = torch.Generator().manual_seed(3)
    D, d = 5, 3
    U, _ = torch.linalg.qr(torch.randn(D, d, generator=g, dtype=F64))
    V, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    W = U @ torch.diag(torch.tensor(singular_values, dtype=F64)) @ V.T
    model = vaelib.LinearGaussian(
        W, torch.randn(D, generator=g, dtype=F64), sigma
    )
    x = x_scale * torch.randn(3, D, generator=g, dtype=F64)
    expected = [mp_log_marginal(model, xi) for xi in x.numpy()]
    np.testing.assert_allclose(
        model.log_marginal(x).numpy(), expected, rtol=1e-9
    )


def test_more_latents_than_data_dimensions():
    model = random_linear_gaussian(D=2, d=5, sigma=0.3, seed=4)
    x = data_from(model, torch.randn(4, 5, dtype=F64))
    mean, cov = dense_marginal(model)
    np.testing.assert_allclose(
        model.log_marginal(x).numpy(),
        multivariate_normal(mean, cov).logpdf(x.numpy()),
        rtol=1e-10,
    )
    post = model.posterior(x)
    m, S = dense_posterior(model, x)
    np.testing.assert_allclose(post.mean.numpy(), m, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        post.covariance_matrix[0].numpy(), S, rtol=1e-9, atol=1e-12
    )


@settings(max_examples=30, deadline=None)
@given(
    D=st.integers(1, 8),
    d=st.integers(1, 4),
    sigma=st.floats(0.01, 3.0),
    seed=st.integers(0, 10**6),
)
def test_posterior_matches_dense_bayes(D, d, sigma, seed):
    model = random_linear_gaussian(D, d, sigma, seed)
    x = data_from(model, 3 * torch.randn(4, d, dtype=F64))
    post = model.posterior(x)
    assert post.batch_shape == (4,) and post.event_shape == (d,)
    mean, cov = dense_posterior(model, x)
    np.testing.assert_allclose(post.mean.numpy(), mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        post.covariance_matrix[0].numpy(), cov, rtol=1e-8, atol=1e-12
    )


def test_bayes_rule_holds_at_any_z():
    """log P(x|z) + log P(z) − log P(z|x) = log P(x) for every z."""
    model = random_linear_gaussian(6, 2, 0.4, seed=1)
    x = data_from(model, torch.randn(3, 2, dtype=F64))
    z = 2 * torch.randn(10, 3, 2, dtype=F64)
    lhs = vaelib.log_joint(model, x, z) - model.posterior(x).log_prob(z)
    np.testing.assert_allclose(
        lhs.numpy(), model.log_marginal(x).expand(10, 3).numpy(), rtol=1e-11
    )


def random_gaussian_q(N, d, seed, full):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(N, d, generator=g, dtype=F64)
    if not full:
        return vaelib.diagonal_normal(
            loc, 0.1 + torch.rand(N, d, generator=g, dtype=F64)
        )
    A = torch.randn(N, d, d, generator=g, dtype=F64)
    return MultivariateNormal(
        loc, covariance_matrix=A @ A.mT + 0.1 * torch.eye(d, dtype=F64)
    )


@settings(max_examples=40, deadline=None)
@given(
    D=st.integers(1, 10),
    d=st.integers(1, 4),
    sigma=st.floats(1e-3, 10.0),
    seed=st.integers(0, 10**6),
    full=st.booleans(),
)
def test_identity_log_px_minus_kl_equals_elbo(D, d, sigma, seed, full):
    """log P(x) − KL(Q ‖ P(Z|x)) = E_Q[log P(x|z)] − KL(Q ‖ P(Z)), each side
    independent."""
    model = random_linear_gaussian(D, d, sigma, seed)
    x = data_from(model, 2 * torch.randn(5, d, dtype=F64))
    q = random_gaussian_q(5, d, seed + 1, full)
    cov_q = q.covariance_matrix if full else torch.diag_embed(q.variance)
    post = model.posterior(x)
    lhs = model.log_marginal(x) - torch.as_tensor(
        gaussian_kl(q.mean, cov_q, post.mean, post.covariance_matrix)
    )
    rhs = model.elbo(x, q)
    np.testing.assert_allclose(rhs.numpy(), lhs.numpy(), rtol=1e-9, atol=0)


def test_closed_form_elbo_matches_monte_carlo():
    model = random_linear_gaussian(4, 2, 0.5, seed=2)
    x = data_from(model, torch.randn(3, 2, dtype=F64))
    q = random_gaussian_q(3, 2, seed=5, full=True)
    z = q.sample((200_000,))
    draws = vaelib.log_joint(model, x, z) - q.log_prob(z)
    mc, se = draws.mean(0), draws.std(0) / math.sqrt(z.shape[0])
    assert ((model.elbo(x, q) - mc).abs() < 5 * se).all()


def test_elbo_at_true_posterior_is_log_px():
    model = random_linear_gaussian(7, 3, 0.2, seed=8)
    x = data_from(model, torch.randn(4, 3, dtype=F64))
    np.testing.assert_allclose(
        model.elbo(x, model.posterior(x)).numpy(),
        model.log_marginal(x).numpy(),
        rtol=1e-11,
    )


def test_large_data_dimension_never_forms_a_D_by_D_matrix():
    """Peak memory of log_marginal and posterior at D = 20 000 stays far below
    the 3.2 GB one D × D float64 matrix would take (measured in a fresh
    process)."""
    code = textwrap.dedent(
        """
        import resource, torch, vaelib
        g = torch.Generator().manual_seed(0)
        F64 = torch.float64
        D, d = 20_000, 3
        W = torch.randn(D, d, generator=g, dtype=F64)
        model = vaelib.LinearGaussian(W, torch.zeros(D, dtype=F64), 0.5)
        z = torch.randn(2, d, generator=g, dtype=F64)
        x = model.likelihood(z).sample()
        assert torch.isfinite(model.log_marginal(x)).all()
        assert model.posterior(x).batch_shape == (2,)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_gb = int(out.stdout.split()[-1]) / 2**20
    assert peak_gb < 1.5, (
        f"peak memory {peak_gb:.2f} GB: a D x D matrix was formed"
    )


def test_float32_agrees_with_float64():
    m64 = random_linear_gaussian(6, 2, 0.5, seed=3)
    m32 = vaelib.LinearGaussian(m64.W.float(), m64.b.float(), 0.5)
    x = data_from(m64, torch.randn(4, 2, dtype=F64))
    q = random_gaussian_q(4, 2, seed=3, full=False)
    q32 = vaelib.diagonal_normal(q.mean.float(), q.stddev.float())
    assert m32.log_marginal(x.float()).dtype == torch.float32
    np.testing.assert_allclose(
        m32.log_marginal(x.float()), m64.log_marginal(x), rtol=1e-5
    )
    np.testing.assert_allclose(
        m32.elbo(x.float(), q32), m64.elbo(x, q), rtol=1e-5
    )
    np.testing.assert_allclose(
        m32.posterior(x.float()).mean, m64.posterior(x).mean, atol=1e-5
    )


def test_prior_and_likelihood_shapes_and_densities():
    model = random_linear_gaussian(3, 2, 0.5, seed=0)
    assert (
        model.prior().event_shape == (2,) and model.prior().batch_shape == ()
    )
    z = torch.randn(7, 5, 2, dtype=F64)
    lik = model.likelihood(z)
    assert lik.batch_shape == (7, 5) and lik.event_shape == (3,)
    x = torch.randn(3, dtype=F64)
    mean = z[0, 0] @ model.W.T + model.b
    expected = multivariate_normal(mean.numpy(), 0.25 * np.eye(3)).logpdf(
        x.numpy()
    )
    assert lik.log_prob(x)[0, 0].item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "args, match",
    [
        (
            (torch.randn(3, 2, dtype=F64), torch.zeros(3, dtype=F64), 0.0),
            "sigma",
        ),
        (
            (torch.randn(3, 2, dtype=F64), torch.zeros(3, dtype=F64), -1.0),
            "sigma",
        ),
        (
            (
                torch.randn(3, 2, dtype=F64),
                torch.zeros(3, dtype=F64),
                float("nan"),
            ),
            "sigma",
        ),
        ((torch.randn(3, dtype=F64), torch.zeros(3, dtype=F64), 1.0), "W"),
        ((torch.randn(3, 2, dtype=F64), torch.zeros(4, dtype=F64), 1.0), "b"),
        (
            (
                torch.full((3, 2), float("nan"), dtype=F64),
                torch.zeros(3, dtype=F64),
                1.0,
            ),
            "W",
        ),
    ],
)
def test_bad_construction_raises(args, match):
    with pytest.raises(ValueError, match=match):
        vaelib.LinearGaussian(*args)


def test_bad_inputs_raise_named_errors():
    model = random_linear_gaussian(3, 2, 0.5)
    x = torch.zeros(4, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 3\)"):
        model.log_marginal(torch.zeros(4, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"^x: contains NaN"):
        model.log_marginal(torch.full((2, 3), float("nan"), dtype=F64))
    with pytest.raises(ValueError, match=r"^z: expected shape"):
        model.likelihood(torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"^q: expected batch_shape \(4,\)"):
        model.elbo(x, random_gaussian_q(5, 2, 0, full=False))
    with pytest.raises(ValueError, match=r"^q: expected a Gaussian"):
        model.elbo(
            x,
            torch.distributions.Independent(
                torch.distributions.Laplace(torch.zeros(4, 2), 1.0), 1
            ),
        )


def test_likelihood_is_gaussian_around_the_decoder_output():
    model = vaelib.NonlinearGaussian(
        lambda z: torch.cat([torch.sin(z), z**2], -1), 1, 0.3
    )
    z = torch.randn(5, 4, 1, dtype=F64)
    lik = model.likelihood(z)
    assert lik.batch_shape == (5, 4) and lik.event_shape == (2,)
    x = torch.randn(4, 2, dtype=F64)
    mean = np.concatenate([np.sin(z.numpy()), z.numpy() ** 2], -1)
    np.testing.assert_allclose(
        lik.log_prob(x), norm.logpdf(x.numpy(), mean, 0.3).sum(-1), rtol=1e-12
    )
    assert model.prior().event_shape == (1,)


def test_random_mlp_is_reproducible_and_nonlinear():
    a = vaelib.NonlinearGaussian.random_mlp(2, 5, sigma=0.1, seed=3)
    b = vaelib.NonlinearGaussian.random_mlp(2, 5, sigma=0.1, seed=3)
    c = vaelib.NonlinearGaussian.random_mlp(2, 5, sigma=0.1, seed=4)
    z = torch.randn(10, 2, dtype=F64)
    assert torch.equal(a.decoder(z), b.decoder(z)) and not torch.equal(
        a.decoder(z), c.decoder(z)
    )
    f0, f1, f2 = (
        a.decoder(torch.zeros(2, dtype=F64)),
        a.decoder(torch.ones(2, dtype=F64)),
        a.decoder(2 * torch.ones(2, dtype=F64)),
    )
    assert not torch.allclose(f2 - f1, f1 - f0)  # not affine along a line


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(latent_dim=0, data_dim=3, sigma=1.0), "latent_dim"),
        (dict(latent_dim=2, data_dim=3, sigma=0.0), "sigma"),
        (dict(latent_dim=2, data_dim=0, sigma=1.0), "data_dim"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vaelib.NonlinearGaussian.random_mlp(**kwargs)


def test_log_joint_matches_scipy_densities():
    model = random_linear_gaussian(3, 2, 0.4, seed=0)
    x = torch.randn(4, 3, dtype=F64)
    z = torch.randn(6, 4, 2, dtype=F64)
    mean = (z @ model.W.T + model.b).numpy()
    expected = norm.logpdf(x.numpy(), mean, 0.4).sum(-1) + norm.logpdf(
        z.numpy()
    ).sum(-1)
    out = vaelib.log_joint(model, x, z)
    assert out.shape == (6, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_log_joint_shape_errors():
    model = random_linear_gaussian(3, 2, 0.4)
    x = torch.randn(4, 3, dtype=F64)
    with pytest.raises(
        ValueError, match=r"^z: expected shape \(\.\.\., 4, 2\)"
    ):
        vaelib.log_joint(model, x, torch.randn(6, 5, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 3\)"):
        vaelib.log_joint(
            model, torch.randn(4, 2, dtype=F64), torch.randn(4, 2, dtype=F64)
        )
