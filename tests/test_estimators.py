import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, StudentT, kl_divergence

import vaelib
from vaelib import _grids
from helpers import F64, data_from, random_linear_gaussian


@pytest.fixture
def setup():
    model = random_linear_gaussian(D=4, d=2, sigma=0.8, seed=0)
    x = data_from(model, torch.randn(3, 2, dtype=F64))
    post = model.posterior(x)
    q = vaelib.diagonal_normal(post.mean + 0.3, 1.5 * post.stddev)
    return model, x, q


def assert_unbiased_for_px(log_estimates, log_px, n_se=4.5):
    """Estimates of P(x) (not log P(x)) average to P(x) within n_se standard
    errors."""
    ratio = torch.exp(
        log_estimates - log_px
    )  # estimate of P(x) / P(x), mean 1
    mean, se = ratio.mean(0), ratio.std(0) / math.sqrt(ratio.shape[0])
    assert ((mean - 1).abs() < n_se * se).all(), (mean, se)


def test_naive_estimate_of_px_is_unbiased(setup):
    model, x, _ = setup
    reps = torch.stack([vaelib.log_px_naive(model, x, 50) for _ in range(400)])
    assert reps.shape == (400, 3)
    assert_unbiased_for_px(reps, model.log_marginal(x))


def test_importance_sampling_estimate_of_px_is_unbiased(setup):
    model, x, q = setup
    reps = torch.stack([vaelib.log_px_is(model, q, x, 20) for _ in range(400)])
    assert_unbiased_for_px(reps, model.log_marginal(x))


@settings(max_examples=25, deadline=None)
@given(
    D=st.integers(1, 30),
    d=st.integers(1, 4),
    sigma=st.floats(1e-3, 10.0),
    seed=st.integers(0, 10**6),
)
def test_true_posterior_gives_zero_variance(D, d, sigma, seed):
    model = random_linear_gaussian(D, d, sigma, seed)
    x = data_from(model, 3 * torch.randn(4, d, dtype=F64))
    post = model.posterior(x)
    for estimate in (
        vaelib.log_px_is(model, post, x, 7),
        vaelib.iwae(model, post, x, 3, n_draws=5),
    ):
        np.testing.assert_allclose(
            estimate.numpy(),
            model.log_marginal(x).numpy(),
            rtol=1e-9,
            atol=1e-9,
        )


def test_estimators_converge_to_log_px(setup):
    model, x, q = setup
    log_px = model.log_marginal(x)
    np.testing.assert_allclose(
        vaelib.log_px_is(model, q, x, 200_000), log_px, atol=0.01
    )
    np.testing.assert_allclose(
        vaelib.log_px_naive(model, x, 200_000), log_px, atol=0.05
    )


def test_monte_carlo_elbo_matches_closed_form(setup):
    model, x, q = setup
    estimate, se = vaelib.elbo(model, q, x, 100_000, stderr=True)
    assert ((estimate - model.elbo(x, q)).abs() < 4.5 * se).all()
    assert (se < 0.05).all()


def test_elbo_without_closed_form_kl_estimates_the_whole_integrand():
    """A Student-t Q has no closed-form KL to N(0, I); the expected log weight
    is then
    estimated whole. Reference from Q's mean m, variance v and entropy H:
    E_Q[log P(x|z)] + E_Q[log P(z)] + H(Q), each a quadratic expectation."""
    model = random_linear_gaussian(D=3, d=2, sigma=0.7, seed=1)
    x = data_from(model, torch.randn(2, 2, dtype=F64))
    m = torch.tensor([[0.2, -0.4], [1.0, 0.5]], dtype=F64)
    q = Independent(
        StudentT(5.0, m, torch.tensor([[0.3, 0.5], [0.2, 0.4]], dtype=F64)), 1
    )
    with pytest.raises(NotImplementedError):
        kl_divergence(q, model.prior())
    v = q.variance
    W, b, s2 = model.W, model.b, model.sigma**2
    resid = x - m @ W.T - b
    e_loglik = -0.5 * 3 * math.log(2 * math.pi * s2) - (
        (resid**2).sum(-1) + (v * (W**2).sum(0)).sum(-1)
    ) / (2 * s2)
    e_logprior = -math.log(2 * math.pi) - 0.5 * (m**2 + v).sum(-1)
    expected = e_loglik + e_logprior + q.entropy()
    estimate, se = vaelib.elbo(model, q, x, 200_000, stderr=True)
    assert ((estimate - expected).abs() < 4.5 * se).all()


def test_iwae_bounds_increase_with_k_towards_log_px(setup):
    model, x, q = setup
    bounds = [
        vaelib.iwae(model, q, x, k, n_draws=4000, stderr=True)
        for k in (1, 5, 50)
    ]
    (l1, se1), (l5, se5), (l50, se50) = bounds
    assert ((l1 - model.elbo(x, q)).abs() < 4.5 * se1).all()  # L_1 is the ELBO
    assert (l1 + 3 * se1 < l5).all() and (l5 < l50 + 3 * se5).all()
    assert (l50 < model.log_marginal(x) + 3 * se50).all()


def test_one_iwae_draw_is_log_px_is_with_k_samples(setup):
    model, x, q = setup
    torch.manual_seed(7)
    a = vaelib.iwae(model, q, x, 10)
    torch.manual_seed(7)
    b = vaelib.log_px_is(model, q, x, 10)
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_chunked_streaming_gives_exact_results(setup, monkeypatch):
    """Shrinking the chunk budget forces many chunks (and the streamed-draw
    path of iwae); with the true posterior as Q every weight is P(x), so the
    result must stay exact."""
    model, x, _ = setup
    post = model.posterior(x)
    monkeypatch.setattr(_grids, "MAX_CHUNK_ELEMENTS", 20)
    log_px = model.log_marginal(x).numpy()
    np.testing.assert_allclose(
        vaelib.log_px_is(model, post, x, 1001), log_px, rtol=1e-12
    )
    np.testing.assert_allclose(
        vaelib.iwae(model, post, x, 50, n_draws=3), log_px, rtol=1e-12
    )
    np.testing.assert_allclose(
        vaelib.iwae(model, post, x, 1, n_draws=7), log_px, rtol=1e-12
    )
    estimate, se = vaelib.elbo(model, post, x, 5000, stderr=True)
    assert ((estimate - model.elbo(x, post)).abs() < 4.5 * se).all()


def test_chunks_cover_all_samples():
    assert [p.stop - p.start for p in _grids.chunks(10, 3 * 2**20)] == [1] * 10
    parts = _grids.chunks(10_000, 1000)
    assert [i for p in parts for i in range(10_000)[p]] == list(range(10_000))
    assert (
        max(p.stop - p.start for p in parts) * 1000
        <= _grids.MAX_CHUNK_ELEMENTS
    )


def test_far_away_data_does_not_underflow():
    model = random_linear_gaussian(D=50, d=2, sigma=0.1, seed=2)
    x = 100 * torch.ones(2, 50, dtype=F64)
    log_px = model.log_marginal(x)
    assert (log_px < -1e5).all()  # P(x) itself underflows to 0 in float64
    q = model.posterior(x)
    for estimate in (
        vaelib.log_px_naive(model, x, 100),
        vaelib.log_px_is(model, q, x, 10),
        vaelib.elbo(model, q, x, 10),
    ):
        assert torch.isfinite(estimate).all()
    np.testing.assert_allclose(
        vaelib.log_px_is(model, q, x, 10), log_px, rtol=1e-10
    )


def test_float32_estimators():
    m64 = random_linear_gaussian(D=4, d=2, sigma=0.8, seed=0)
    m32 = vaelib.LinearGaussian(m64.W.float(), m64.b.float(), 0.8)
    x = data_from(m64, torch.randn(3, 2, dtype=F64)).float()
    post = m32.posterior(x)
    out = vaelib.log_px_is(m32, post, x, 100)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(
        out, m64.log_marginal(x.double()).float(), rtol=1e-4
    )
    assert vaelib.elbo(m32, post, x, 10).dtype == torch.float32
    assert vaelib.log_px_naive(m32, x, 10).dtype == torch.float32


def test_log_importance_weights_shapes(setup):
    model, x, q = setup
    assert vaelib.log_importance_weights(model, q, x, 11).shape == (11, 3)
    assert vaelib.log_importance_weights(model, None, x, 11).shape == (11, 3)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_bad_sample_counts_raise(setup, bad):
    model, x, q = setup
    with pytest.raises(ValueError, match=r"^n_samples: "):
        vaelib.log_px_naive(model, x, bad)
    with pytest.raises(ValueError, match=r"^n_samples: "):
        vaelib.log_px_is(model, q, x, bad)
    with pytest.raises(ValueError, match=r"^n_samples: "):
        vaelib.elbo(model, q, x, bad)
    with pytest.raises(ValueError, match=r"^k: "):
        vaelib.iwae(model, q, x, bad)
    with pytest.raises(ValueError, match=r"^n_draws: "):
        vaelib.iwae(model, q, x, 5, n_draws=bad)


def test_bad_data_and_q_raise(setup):
    model, x, q = setup
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 4\)"):
        vaelib.log_px_is(model, q, x[:, :3], 5)
    with pytest.raises(ValueError, match=r"^x: contains NaN"):
        vaelib.log_px_naive(model, x * float("nan"), 5)
    with pytest.raises(ValueError, match=r"^x: expected shape"):
        vaelib.elbo(model, q, x[0], 5)
    with pytest.raises(ValueError, match=r"^q: expected batch_shape \(2,\)"):
        vaelib.log_px_is(model, q, x[:2], 5)
    with pytest.raises(
        ValueError, match=r"^q: expected a torch.distributions"
    ):
        vaelib.iwae(model, "not a distribution", x, 5)
    bad_event = vaelib.diagonal_normal(
        torch.zeros(3, 3, dtype=F64), torch.ones(3, 3, dtype=F64)
    )
    with pytest.raises(
        ValueError,
        match=r"^q: expected batch_shape \(3,\) and event_shape \(2,\)",
    ):
        vaelib.elbo(model, bad_event, x, 5)
    with pytest.raises(ValueError, match=r"^log_w: "):
        vaelib.ess(torch.zeros(0))


# --- gradients
# -----------------------------------------------------------------------


def _elbo_gradient_draws(gradient, n_rep, seed=0):
    """``n_rep`` single-sample gradients of the Monte Carlo ELBO w.r.t. (W, b,
    q's loc, q's log scale), and the exact gradient of the closed-form ELBO."""
    g = torch.Generator().manual_seed(seed)
    W0, b0 = (
        torch.randn(4, 2, generator=g, dtype=F64),
        torch.randn(4, generator=g, dtype=F64),
    )
    x = torch.randn(3, 4, generator=g, dtype=F64)
    loc0 = 0.3 * torch.randn(3, 2, generator=g, dtype=F64)
    params = [
        t.clone().requires_grad_(True)
        for t in (W0, b0, loc0, torch.full((3, 2), -0.5, dtype=F64))
    ]

    def model_and_q():
        W, b, loc, log_scale = params
        return vaelib.LinearGaussian(W, b, 0.8), vaelib.diagonal_normal(
            loc, log_scale.exp()
        )

    model, q = model_and_q()
    exact = torch.autograd.grad(model.elbo(x, q).sum(), params)
    torch.manual_seed(seed)
    draws = []
    for _ in range(n_rep):
        model, q = model_and_q()
        draws.append(
            torch.autograd.grad(
                vaelib.elbo(model, q, x, 1, gradient=gradient).sum(), params
            )
        )
    return [torch.stack(d) for d in zip(*draws)], exact


def _assert_unbiased(draws, exact, n_se=4.5):
    for d, e in zip(draws, exact):
        mean, se = d.mean(0), d.std(0) / math.sqrt(d.shape[0])
        assert ((mean - e).abs() <= n_se * se + 1e-12).all(), (mean, e, se)


def test_reparameterised_elbo_gradient_is_unbiased():
    """Averaged over draws, the gradient of the 1-sample ELBO w.r.t. W, b and
    q's loc and scale is the autograd gradient of LinearGaussian.elbo (closed
    form)."""
    draws, exact = _elbo_gradient_draws("reparam", 2000)
    _assert_unbiased(draws, exact)


def test_score_function_elbo_gradient_is_unbiased_with_larger_variance():
    reparam, exact = _elbo_gradient_draws("reparam", 2000)
    score, _ = _elbo_gradient_draws("score", 2000)
    _assert_unbiased(score, exact)
    # for q's loc, REINFORCE is far noisier than the reparameterisation trick
    assert score[2].var(0).sum() > 5 * reparam[2].var(0).sum()


def test_iwae_gradient_at_the_exact_posterior_averages_to_grad_log_px():
    """With q = P(z|x) (held fixed) the IWAE gradient w.r.t. the model's
    parameters is Σᵢ w̃ᵢ ∇ log P(x, zᵢ); averaged, it is ∇ log P(x) (Fisher's
    identity)."""
    g = torch.Generator().manual_seed(1)
    W = torch.randn(5, 2, generator=g, dtype=F64).requires_grad_(True)
    b = torch.randn(5, generator=g, dtype=F64).requires_grad_(True)
    x = torch.randn(2, 5, generator=g, dtype=F64)
    exact = torch.autograd.grad(
        vaelib.LinearGaussian(W, b, 0.7).log_marginal(x).sum(), [W, b]
    )
    with torch.no_grad():
        post = vaelib.LinearGaussian(W, b, 0.7).posterior(x)
    torch.manual_seed(0)
    draws = [
        torch.autograd.grad(
            vaelib.iwae(vaelib.LinearGaussian(W, b, 0.7), post, x, 5).sum(),
            [W, b],
        )
        for _ in range(1500)
    ]
    _assert_unbiased([torch.stack(d) for d in zip(*draws)], exact)


def test_gradient_argument_is_checked(setup):
    model, x, q = setup
    with pytest.raises(
        ValueError, match=r"^gradient: expected one of 'reparam', 'score'"
    ):
        vaelib.elbo(model, q, x, 2, gradient="pathwise")

    class NoRsample(Independent):
        has_rsample = False

    no_rsample = NoRsample(
        StudentT(
            5.0, torch.zeros(3, 2, dtype=F64), torch.ones(3, 2, dtype=F64)
        ),
        1,
    )
    with pytest.raises(
        ValueError, match=r"^gradient: 'reparam' needs a q with rsample"
    ):
        vaelib.log_px_is(model, no_rsample, x, 2, gradient="reparam")
