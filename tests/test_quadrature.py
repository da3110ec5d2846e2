import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize
from torch.distributions import MultivariateNormal, kl_divergence

import vaelib
from vaelib import lattice
from helpers import F64, data_from, gaussian_kl, random_linear_gaussian


class TwinDecoder:
    """f(z) = A tanh(B z + c) + e, in torch (for vaelib) and numpy (for scipy),
    so the reference integrals never go through vaelib or torch."""

    def __init__(self, d, D, seed, bend=1.5):
        rng = np.random.default_rng(seed)
        self.B = bend * rng.standard_normal((8, d))
        self.c = rng.standard_normal(8)
        self.A = rng.standard_normal((D, 8)) / math.sqrt(8)
        self.e = rng.standard_normal(D)
        self.t = [
            torch.tensor(a, dtype=F64)
            for a in (self.A, self.B, self.c, self.e)
        ]

    def __call__(self, z):
        A, B, c, e = self.t
        return torch.tanh(z @ B.T + c) @ A.T + e

    def numpy(self, z):
        return np.tanh(z @ self.B.T + self.c) @ self.A.T + self.e


def numpy_log_joint(dec, sigma, x):
    D = x.shape[-1]

    def f(z):
        z = np.atleast_2d(z)
        r = x - dec.numpy(z)
        return (
            -0.5 * (r**2).sum(-1) / sigma**2
            - D * math.log(sigma)
            - 0.5 * (D + z.shape[-1]) * math.log(2 * math.pi)
            - 0.5 * (z**2).sum(-1)
        )

    return f


def scipy_log_px(dec, sigma, x, d):
    """log ∫ P(x|z)P(z) dz with scipy: find the highest mode by multi-start
    BFGS, then adaptive (nested) quad over [−10, 10]^d, told where the peak
    is."""
    f = numpy_log_joint(dec, sigma, x)
    starts = np.random.default_rng(0).uniform(-4, 4, size=(40, d))
    best = min(
        (
            optimize.minimize(lambda z: -f(z)[0], s0, method="BFGS")
            for s0 in starts
        ),
        key=lambda r: r.fun,
    )
    mode, peak = best.x, -best.fun
    opts = dict(epsabs=0, epsrel=1e-12, limit=2000)
    if d == 1:
        val, _ = integrate.quad(
            lambda z: math.exp(f(np.array([z]))[0] - peak),
            -10,
            10,
            points=[mode[0]],
            **opts,
        )
        return peak + math.log(val)

    def inner(z1):
        return integrate.quad(
            lambda z2: math.exp(f(np.array([z1, z2]))[0] - peak),
            -10,
            10,
            points=[mode[1]],
            **opts,
        )[0]

    val, _ = integrate.quad(inner, -10, 10, points=[mode[0]], **opts)
    return peak + math.log(val)


@settings(max_examples=20, deadline=None)
@given(
    d=st.integers(1, 2),
    D=st.integers(1, 12),
    sigma=st.floats(2e-3, 3.0),
    z_far=st.floats(-4.5, 4.5),
    seed=st.integers(0, 10**6),
)
def test_log_px_quad_matches_closed_form(d, D, sigma, z_far, seed):
    model = random_linear_gaussian(D, d, sigma, seed)
    z = torch.tensor([[z_far] * d, [0.3] * d], dtype=F64)
    x = data_from(model, z)
    np.testing.assert_allclose(
        vaelib.log_px_quad(model, x), model.log_marginal(x), rtol=0, atol=1e-6
    )


def peaked_off_centre(d):
    """Posterior std ~1e-3 around |z| ≈ 4 (far out in the prior's tail)."""
    model = random_linear_gaussian(D=20, d=d, sigma=3e-3, seed=11)
    z = torch.tensor([[4.0, -0.5][:d], [-2.9, -2.8][:d]], dtype=F64)
    return model, data_from(model, z)


@pytest.mark.parametrize("d", [1, 2])
def test_peaked_off_centre_posterior(d):
    model, x = peaked_off_centre(d)
    post_std = model.posterior(x).stddev
    assert (post_std < 2e-3).all()
    np.testing.assert_allclose(
        vaelib.log_px_quad(model, x), model.log_marginal(x), rtol=0, atol=1e-6
    )
    q = MultivariateNormal(
        model.posterior(x).mean + 2e-3,
        covariance_matrix=4e-6 * torch.eye(d, dtype=F64),
    )
    exact_kl = torch.distributions.kl_divergence(q, model.posterior(x))
    np.testing.assert_allclose(
        vaelib.kl_to_posterior_quad(model, q, x), exact_kl, rtol=0, atol=1e-6
    )


@settings(max_examples=15, deadline=None)
@given(
    d=st.integers(1, 2),
    sigma=st.floats(0.01, 2.0),
    shift=st.floats(-2, 2),
    seed=st.integers(0, 10**6),
)
def test_kl_to_posterior_matches_closed_form(d, sigma, shift, seed):
    model = random_linear_gaussian(6, d, sigma, seed)
    x = data_from(model, torch.randn(3, d, dtype=F64))
    post = model.posterior(x)
    q = vaelib.diagonal_normal(
        post.mean + shift * post.stddev, 0.7 * post.stddev
    )
    exact = gaussian_kl(
        q.mean, torch.diag_embed(q.variance), post.mean, post.covariance_matrix
    )
    np.testing.assert_allclose(
        vaelib.kl_to_posterior_quad(model, q, x), exact, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    "d, D, sigma", [(1, 3, 0.2), (1, 5, 0.02), (2, 4, 0.3), (2, 10, 0.05)]
)
def test_nonlinear_log_px_against_scipy(d, D, sigma):
    dec = TwinDecoder(d, D, seed=d * 100 + D)
    model = vaelib.NonlinearGaussian(dec, d, sigma)
    x = data_from(
        model, torch.tensor([[1.2, -0.7][:d], [-3.0, 2.5][:d]], dtype=F64)
    )
    expected = [scipy_log_px(dec, sigma, xi, d) for xi in x.numpy()]
    np.testing.assert_allclose(
        vaelib.log_px_quad(model, x), expected, rtol=0, atol=1e-6
    )


def test_bimodal_posterior():
    """f(z) = z², x ≈ 4: two equal modes at z = ±2 that a single Gaussian
    cannot cover."""
    model = vaelib.NonlinearGaussian(lambda z: z**2, 1, 0.1)
    x = torch.tensor([[4.0]], dtype=F64)

    def joint(z):
        return math.exp(-0.5 * ((4 - z * z) / 0.1) ** 2 - 0.5 * z * z) / (
            2 * math.pi * 0.1
        )

    val = sum(
        integrate.quad(joint, a, b, epsabs=0, epsrel=1e-13, limit=500)[0]
        for a, b in [(-10, 0), (0, 10)]
    )
    assert vaelib.log_px_quad(model, x).item() == pytest.approx(
        math.log(val), abs=1e-6
    )


def test_identity_through_quadrature_on_a_nonlinear_decoder():
    """log P(x) − KL(Q ‖ P(Z|x)) = E_Q[log P(x|z)] − KL(Q ‖ P(Z)) for a tanh
    decoder with a sharply peaked posterior far from the origin; left side by
    vaelib's quadrature, right side by Gauss–Hermite (vaelib.gauss_hermite,
    tested on its own) plus torch's closed-form KL."""
    dec = TwinDecoder(2, 40, seed=5)
    model = vaelib.NonlinearGaussian(dec, 2, 2e-3)
    x = data_from(model, torch.tensor([[3.8, -1.2], [-0.5, 0.4]], dtype=F64))
    # Q near the posterior: centred at the MAP point, a little off in scale and
    # shape.
    mode = torch.tensor(
        np.array(
            [
                optimize.minimize(
                    lambda z: -numpy_log_joint(dec, 2e-3, xi)(z)[0],
                    z0,
                    method="BFGS",
                ).x
                for xi, z0 in zip(x.numpy(), [[3.8, -1.2], [-0.5, 0.4]])
            ]
        ),
        dtype=F64,
    )
    q = MultivariateNormal(
        mode + 1e-4,
        scale_tril=torch.tensor([[1e-3, 0.0], [3e-4, 8e-4]], dtype=F64).expand(
            2, 2, 2
        ),
    )
    lhs = vaelib.log_px_quad(model, x) - vaelib.kl_to_posterior_quad(
        model, q, x
    )
    rhs = vaelib.expected_log_likelihood(
        model, q, x, n_nodes=60
    ) - kl_divergence(q, model.prior())
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-6)
    assert (
        vaelib.kl_to_posterior_quad(model, q, x) > 0.01
    ).all()  # a real gap, not 0 = 0


def test_non_gaussian_q():
    """A Student-t Q: the grid follows its mean and variance; reference by
    scipy quad."""
    model = random_linear_gaussian(3, 1, 0.5, seed=0)
    x = data_from(model, torch.zeros(1, 1, dtype=F64))
    q = torch.distributions.Independent(
        torch.distributions.StudentT(
            30.0,
            torch.zeros(1, 1, dtype=F64),
            0.5 * torch.ones(1, 1, dtype=F64),
        ),
        1,
    )
    post = model.posterior(x)

    def integrand(z):
        zz = torch.tensor([[z]], dtype=F64)
        log_q = q.log_prob(zz).item()
        return math.exp(log_q) * (log_q - post.log_prob(zz).item())

    expected = integrate.quad(
        integrand,
        -30,
        30,
        points=[0.0, post.mean.item()],
        epsabs=1e-13,
        limit=500,
    )[0]
    assert vaelib.kl_to_posterior_quad(model, q, x).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_discontinuous_integrand_does_not_pass_silently():
    """A step decoder makes the integrand jump; trapezoid refinement then
    cannot reach 1e-10 and the function must say so rather than return a
    guess."""
    model = vaelib.NonlinearGaussian(lambda z: torch.sign(z), 1, 1.0)
    with pytest.raises(
        RuntimeError,
        match=r"^log_px_quad: quadrature refused 1 of 1 .* not geometrically",
    ):
        vaelib.log_px_quad(model, torch.tensor([[0.5]], dtype=F64))


def test_float32_model():
    m64 = random_linear_gaussian(5, 2, 0.3, seed=0)
    m32 = vaelib.LinearGaussian(m64.W.float(), m64.b.float(), 0.3)
    x = data_from(m64, torch.randn(3, 2, dtype=F64))
    out = vaelib.log_px_quad(m32, x.float())
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out, m64.log_marginal(x), atol=1e-3)


def test_bad_inputs():
    model = random_linear_gaussian(3, 3, 0.5)
    x = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(
        ValueError,
        match=r"^model: quadrature needs latent dimension 1 or 2, got d = 3$",
    ):
        vaelib.log_px_quad(model, x)
    model2 = random_linear_gaussian(3, 2, 0.5)
    with pytest.raises(ValueError, match=r"^x: contains NaN"):
        vaelib.log_px_quad(model2, x * float("nan"))
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 3\)"):
        vaelib.log_px_quad(model2, torch.zeros(2, 4, dtype=F64))
    q = vaelib.diagonal_normal(
        torch.zeros(5, 2, dtype=F64), torch.ones(5, 2, dtype=F64)
    )
    with pytest.raises(ValueError, match=r"^q: expected batch_shape \(2,\)"):
        vaelib.kl_to_posterior_quad(model2, q, x)


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, 2),
    log10_sd=st.floats(-6, 0),
    mean=st.floats(-20, 20),
    seed=st.integers(0, 10**6),
)
def test_posteriors_anywhere_within_the_guarantee(d, log10_sd, mean, seed):
    """|posterior mean| ≤ 20 and sd ≥ 1e-6: within 1e-6 nats of the closed
    form, or a RuntimeError (the rounding floor) — never a silent miss."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(6, d, generator=g, dtype=F64)
    sigma = 10**log10_sd * float(
        torch.linalg.svdvals(W)[-1]
    )  # posterior sd ≈ 10**log10_sd
    model = vaelib.LinearGaussian(W, torch.zeros(6, dtype=F64), sigma)
    z = torch.full((1, d), mean, dtype=F64) + torch.tensor(
        [0.0, 0.7][:d], dtype=F64
    )
    x = data_from(model, z)
    try:
        got = vaelib.log_px_quad(model, x)
    except RuntimeError as err:
        assert "rounding of z limits the accuracy" in str(err)
        return
    np.testing.assert_allclose(got, model.log_marginal(x), rtol=0, atol=1e-6)


def mlp_model(activation, D, sigma, n, seed):
    """A small random network decoder (parameters that require grad) and n data
    points."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 32), activation(), torch.nn.Linear(32, D)
    ).double()
    model = vaelib.NonlinearGaussian(net, 2, sigma)
    with torch.no_grad():
        return model, model.likelihood(model.prior().sample((n,))).sample()


def test_parameters_that_require_grad_build_no_graph():
    model, x = mlp_model(torch.nn.Tanh, 6, 0.3, 3, seed=0)
    assert not vaelib.log_px_quad(model, x).requires_grad


def test_relu_decoder_fails_clearly():
    model, x = mlp_model(torch.nn.ReLU, 10, 0.1, 20, seed=1)
    with pytest.raises(
        RuntimeError, match=r"^log_px_quad: quadrature refused .*ReLU"
    ):
        vaelib.log_px_quad(model, x)


def test_laplace_approximation_is_exact_for_the_linear_gaussian():
    model, x = peaked_off_centre(2)
    laplace, post = vaelib.laplace_approximation(model, x), model.posterior(x)
    np.testing.assert_allclose(laplace.mean, post.mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        laplace.covariance_matrix, post.covariance_matrix, rtol=1e-6, atol=0
    )


def test_log_posterior_grid_is_the_normalised_posterior():
    """On a linear-Gaussian model the grid values are log P(z|x) in closed
    form."""
    model = random_linear_gaussian(4, 2, 0.5, seed=2)
    x = data_from(model, torch.randn(2, 2, dtype=F64))
    z1, z2 = (
        torch.linspace(-2, 2, 7, dtype=F64),
        torch.linspace(-1, 3, 5, dtype=F64),
    )
    grid = vaelib.log_posterior_grid(model, x, z1, z2)
    assert grid.shape == (2, 7, 5)
    z = torch.stack(torch.meshgrid(z1, z2, indexing="ij"), -1)  # (7, 5, 2)
    post = model.posterior(x)
    mean, cov = post.mean.numpy(), post.covariance_matrix.numpy()
    for n in range(2):
        diff = z.numpy() - mean[n]
        inv = np.linalg.inv(cov[n])
        expected = (
            -0.5 * np.einsum("...i,ij,...j->...", diff, inv, diff)
            - 0.5 * np.linalg.slogdet(2 * np.pi * cov[n])[1]
        )
        np.testing.assert_allclose(
            grid[n].numpy(), expected, rtol=0, atol=1e-6
        )


# --- each row on its own
# ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_vae():
    """A small 2-D SiLU VAE trained briefly on the digits, in float64, and 40
    test digits: the posteriors of a real network (skewed, some split)."""
    torch.manual_seed(0)
    vae = vaelib.VAE(64, 2, activation="silu", hidden=64)
    vaelib.fit(vae, vaelib.load_digits("train")[0], max_epochs=40, seed=0)
    return vae.double(), vaelib.load_digits("test")[0][:40].double()


def test_a_row_does_not_depend_on_its_batch(trained_vae, monkeypatch):
    vae, x = trained_vae
    # a small budget, so that some rows are refused
    monkeypatch.setattr(lattice, "MAX_POINTS", {1: 2**12, 2: 3000})
    whole, why = vaelib.log_px_quad(
        vae, x, on_failure="nan", return_reasons=True
    )
    assert 0 < len(why) < len(x) // 2
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    shuffled, why_shuffled = vaelib.log_px_quad(
        vae, x[perm], on_failure="nan", return_reasons=True
    )
    pieces = [
        vaelib.log_px_quad(vae, x[a:b], on_failure="nan", return_reasons=True)
        for a, b in [(0, 1), (1, 2), (2, 9), (9, 22), (22, 40)]
    ]
    split = torch.cat([p[0] for p in pieces])
    why_split = {
        a + n
        for (a, _), (_, r) in zip(
            [(0, 1), (1, 2), (2, 9), (9, 22), (22, 40)], pieces
        )
        for n in r
    }
    for other, refused in [
        (shuffled[perm.argsort()], {int(perm[n]) for n in why_shuffled}),
        (split, why_split),
    ]:
        assert refused == set(why)
        np.testing.assert_allclose(
            other, whole, rtol=1e-12, atol=0, equal_nan=True
        )


def test_kl_rows_do_not_depend_on_their_batch(trained_vae):
    vae, x = trained_vae
    x = x[:12]
    with torch.no_grad():
        q = vae.posterior(x)
    whole = vaelib.kl_to_posterior_quad(vae, q, x)
    single = torch.cat(
        [
            vaelib.kl_to_posterior_quad(
                vae,
                vaelib.diagonal_normal(q.mean[n : n + 1], q.stddev[n : n + 1]),
                x[n : n + 1],
            )
            for n in range(len(x))
        ]
    )
    np.testing.assert_allclose(single, whole, rtol=1e-12, atol=0)


def test_refused_rows_raise_or_give_nan_with_their_reasons():
    model, x = mlp_model(torch.nn.ReLU, 10, 0.1, 20, seed=1)
    values, reasons = vaelib.log_px_quad(
        model, x, on_failure="nan", return_reasons=True
    )
    refused = sorted(reasons)
    kept = [n for n in range(len(x)) if n not in reasons]
    assert refused and kept
    assert (
        torch.isnan(values[refused]).all()
        and torch.isfinite(values[kept]).all()
    )
    assert all(
        "not geometrically" in r and "ReLU" in r for r in reasons.values()
    )
    assert isinstance(
        vaelib.log_px_quad(model, x[kept]), torch.Tensor
    )  # the kept rows alone: no refusal
    with pytest.raises(
        RuntimeError,
        match=rf"^log_px_quad: quadrature refused {len(refused)} of 20 data "
        rf"point\(s\), "
        rf"rows \[{', '.join(map(str, refused))}\] \(on_failure='nan'",
    ):
        vaelib.log_px_quad(model, x)
    q = vaelib.diagonal_normal(
        torch.zeros(20, 2, dtype=F64), torch.ones(20, 2, dtype=F64)
    )
    kl, kl_reasons = vaelib.kl_to_posterior_quad(
        model, q, x, on_failure="nan", return_reasons=True
    )
    assert (
        set(reasons) <= set(kl_reasons)
        and torch.isnan(kl[sorted(kl_reasons)]).all()
    )
    assert all(kl_reasons[n].startswith("log P(x): ") for n in reasons)
    with pytest.raises(
        ValueError,
        match=r"^on_failure: expected one of 'raise', 'nan', got 'skip'$",
    ):
        vaelib.log_px_quad(model, x, on_failure="skip")


class _Value(torch.distributions.Distribution):
    """A 'likelihood' whose log_prob(x) is a given function of z alone (for any
    x)."""

    arg_constraints = {}
    support = torch.distributions.constraints.real_vector

    def __init__(self, log_value):
        self.log_value = log_value
        super().__init__(log_value.shape, (1,), validate_args=False)

    def log_prob(self, x):
        return self.log_value.expand(
            torch.broadcast_shapes(self.log_value.shape, x.shape[:-1])
        )


class MixtureModel:
    """P(z) = N(0, I₂) and P(x|z) = Σₖ aₖ N(z; mₖ, diag sₖ²) for every x, so
    that P(x) = Σₖ aₖ N(mₖ; 0, I + diag sₖ²) in closed form."""

    def __init__(self, weights, means, sds):
        self.a, self.m, self.s = (
            torch.tensor(v, dtype=F64) for v in (weights, means, sds)
        )

    def prior(self):
        return vaelib.diagonal_normal(
            torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
        )

    def likelihood(self, z):
        parts = vaelib.diagonal_normal(self.m, self.s).log_prob(
            z[..., None, :]
        )  # (..., K)
        return _Value(torch.logsumexp(parts + self.a.log(), -1))

    def log_px(self):
        return torch.logsumexp(
            self.a.log()
            + vaelib.diagonal_normal(
                torch.zeros(2, dtype=F64), (1 + self.s**2).sqrt()
            ).log_prob(self.m),
            0,
        )


def test_a_sharp_peak_on_a_wide_shoulder():
    """Chapter 8's digit 208 in miniature: the highest point is a peak of sd
    0.05, but most of the mass lies on a shoulder 40 of its sds away. The
    located box must grow over the shoulder (the shared grid's mass outside it)
    and resolve both."""
    model = MixtureModel(
        [0.3, 0.7], [[0.0, 0.0], [2.0, -1.0]], [[0.05, 0.05], [1.0, 0.7]]
    )
    x = torch.zeros(1, 1, dtype=F64)
    assert vaelib.log_px_quad(model, x).item() == pytest.approx(
        model.log_px().item(), abs=1e-6
    )


# --- the blind spots named in the docstring: each one shown
# -----------------------------


def spike(main, z0, width):
    """A 1-D decoder f(z) = main(z) − main(z0)·exp(−((z − z0)/width)²/2): for x
    = 0 the likelihood peaks where main(z) = 0 and again in a spike of width
    about ``width`` at z0, where f(z0) = 0 too. Returns the torch and the numpy
    version."""

    def torch_f(z):
        return main(z) - main(torch.tensor(z0)) * torch.exp(
            -0.5 * ((z - z0) / width) ** 2
        )

    def numpy_f(z):
        return main(np.asarray(z)) - main(np.asarray(z0)) * np.exp(
            -0.5 * ((z - z0) / width) ** 2
        )

    return torch_f, numpy_f


def scipy_log_px_1d(numpy_f, sigma, edges):
    """log ∫ P(x = 0|z) P(z) dz by scipy's adaptive quad on each interval
    between consecutive ``edges`` (so that a spike gets an interval of its
    own)."""

    def integrand(z):
        return math.exp(-0.5 * (numpy_f(z) / sigma) ** 2 - 0.5 * z * z) / (
            2 * math.pi * sigma
        )

    return math.log(
        sum(
            integrate.quad(
                integrand, a, b, epsabs=0, epsrel=1e-13, limit=2000
            )[0]
            for a, b in zip(edges, edges[1:])
        )
    )


def test_blind_spot_a_narrow_second_mode_between_the_shared_grid_points():
    """A spike of width 0.003 at z0 = 2 + 1/64, halfway between two shared-grid
    points (spacing 1/32) and 200 standard deviations from the main mode (sd
    0.01): nothing sees it, and about 2e-3 of the mass is missed."""
    z0 = 2 + 1 / 64
    f, f_np = spike(lambda z: 10 * z, z0, 0.003)
    model = vaelib.NonlinearGaussian(f, 1, 0.1)
    got = vaelib.log_px_quad(model, torch.zeros(1, 1, dtype=F64)).item()
    truth = scipy_log_px_1d(f_np, 0.1, [-1, 1, z0 - 0.01, z0, z0 + 0.01])
    assert truth - got > 1e-3  # missed, silently


def test_blind_spot_b_mass_beyond_the_shared_grid():
    """f(z) = 3 + tanh z keeps P(x = 0|z) below e⁻⁵⁰ on the whole shared grid
    [−8, 8]; a bump of f to 0 around z = 9 holds nearly all the mass, and the
    grid never sees it."""
    f, f_np = spike(
        lambda z: 3 + (torch.tanh(z) if torch.is_tensor(z) else np.tanh(z)),
        9.0,
        0.5,
    )
    model = vaelib.NonlinearGaussian(f, 1, 0.2)
    got = vaelib.log_px_quad(model, torch.zeros(1, 1, dtype=F64)).item()
    truth = scipy_log_px_1d(f_np, 0.2, [-12, -2.5, 0, 7, 9, 11, 14])
    assert truth - got > 5


def test_blind_spot_c_structure_finer_than_the_finest_spacing():
    """A spike of width 1e-5 inside the located box (posterior sd 0.01), placed
    halfway between lattice points down to spacing 1/16 and between shared-grid
    points: all three nested sums miss it alike, and they agree."""
    T = 0.1 / math.sqrt(100 + 0.01)  # the posterior sd of f(z) = 10 z, σ = 0.1
    # halfway between the points u = k/16 of the (stretched) lattice
    z0 = (
        T
        * lattice.stretch(torch.tensor([32.5 / 16]), lattice.STRETCH)[0].item()
    )
    assert (
        min(abs(z0 * 32 - k) for k in range(-256, 257)) > 0.2
    )  # and between shared-grid points
    f, f_np = spike(lambda z: 10 * z, z0, 1e-5)
    model = vaelib.NonlinearGaussian(f, 1, 0.1)
    got = vaelib.log_px_quad(model, torch.zeros(1, 1, dtype=F64)).item()
    truth = scipy_log_px_1d(
        f_np, 0.1, [-0.5, 0, z0 - 1e-3, z0, z0 + 1e-3, 0.5]
    )
    assert truth - got > 1e-4


def test_kl_reuses_a_given_log_px():
    model = random_linear_gaussian(5, 2, 0.4, seed=4)
    x = data_from(model, torch.randn(3, 2, dtype=F64))
    post = model.posterior(x)
    q = vaelib.diagonal_normal(post.mean + 0.1, post.stddev)
    log_px = vaelib.log_px_quad(model, x)
    np.testing.assert_allclose(
        vaelib.kl_to_posterior_quad(model, q, x, log_px=log_px),
        vaelib.kl_to_posterior_quad(model, q, x),
        rtol=0,
        atol=1e-12,
    )
    # the normaliser is used as given: 1 nat off makes the KL 1 nat off
    shifted = vaelib.kl_to_posterior_quad(model, q, x, log_px=log_px + 1)
    np.testing.assert_allclose(
        shifted - 1, vaelib.kl_to_posterior_quad(model, q, x), atol=1e-12
    )
    with pytest.raises(ValueError, match=r"^log_px: expected shape \(3,\)"):
        vaelib.kl_to_posterior_quad(model, q, x, log_px=log_px[:2])
