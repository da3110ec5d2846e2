import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent

import vaelib
from vaelib.nets import VAE, CategoricalDecoder, PixelCategorical


def constant_decoder(decoder, logits):
    """Make ``decoder`` ignore z and output ``logits`` (flattened): last layer
    W = 0."""
    last = decoder.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(
            torch.as_tensor(logits, dtype=last.bias.dtype).reshape(-1)
        )


def test_categorical_log_prob_by_hand():
    # 2 pixels, 3 levels each: P(x|z) = softmax(a)[x0] * softmax(b)[x1]
    decoder = CategoricalDecoder(latent_dim=1, data_dim=2, hidden=4, levels=3)
    a, b = [0.0, 1.0, 2.0], [math.log(5), 0.0, math.log(3)]
    constant_decoder(decoder, [a, b])
    x = torch.tensor([[2.0, 0.0], [1.0, 2.0]])
    log_p = decoder(torch.randn(2, 1)).log_prob(x)
    # counts: pixel 1 has weights e^0, e^1, e^2; pixel 2 has weights 5, 1, 3
    by_hand = [
        math.log(math.e**2 / (1 + math.e + math.e**2)) + math.log(5 / 9),
        math.log(math.e / (1 + math.e + math.e**2)) + math.log(3 / 9),
    ]
    np.testing.assert_allclose(log_p.detach().numpy(), by_hand, rtol=1e-6)


def test_low_rank_logits_by_hand():
    # rank 1, 2 pixels, 3 levels: logits of pixel j are c_j + a_j * B
    decoder = CategoricalDecoder(
        latent_dim=1, data_dim=2, hidden=4, levels=3, rank=1
    )
    constant_decoder(decoder, [2.0, -1.0])  # a = (2, -1)
    B, c = [0.0, 1.0, 0.5], [[0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0]]
    with torch.no_grad():
        decoder.basis.weight.copy_(torch.tensor(B).reshape(3, 1))
        decoder.offset.copy_(torch.tensor(c))
    x = torch.tensor([[1.0, 0.0]])
    log_p = decoder(torch.randn(1, 1)).log_prob(x)
    # pixel 1: logits (0, 2, 1); pixel 2: logits (log 2, -1, -0.5)
    by_hand = math.log(math.e**2 / (1 + math.e**2 + math.e)) + math.log(
        2 / (2 + math.exp(-1) + math.exp(-0.5))
    )
    np.testing.assert_allclose(log_p.item(), by_hand, rtol=1e-6)


@pytest.mark.parametrize("rank", [None, 1, 3])
@pytest.mark.parametrize(
    "batch", [(5, 4), (5, 1)]
)  # a z per data point; one z shared by all
@pytest.mark.parametrize(
    "scale", [1.0, 400.0]
)  # logits of a few nats; beyond the unshifted range
def test_pixel_categorical_matches_torch(rank, batch, scale):
    g = torch.Generator().manual_seed(0)
    levels = 17
    a = scale * torch.randn(
        *batch,
        6,
        levels if rank is None else rank,
        generator=g,
        dtype=torch.float64,
    )
    basis = (
        None
        if rank is None
        else 2 * torch.randn(levels, rank, generator=g, dtype=torch.float64)
    )
    offset = (
        None
        if rank is None
        else torch.randn(6, levels, generator=g, dtype=torch.float64)
    )
    a.requires_grad_()
    logits = a if rank is None else a @ basis.T + offset
    x = torch.randint(0, levels, (4, 6), generator=g).double()
    ours, theirs = (
        PixelCategorical(a, basis, offset),
        Independent(Categorical(logits=logits), 1),
    )
    mine, ref = ours.log_prob(x), theirs.log_prob(x)
    assert mine.shape == (5, 4)
    np.testing.assert_allclose(mine.detach(), ref.detach(), rtol=1e-12)
    (grad,) = torch.autograd.grad(mine.sum(), a)
    (grad_ref,) = torch.autograd.grad(ref.sum(), a)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        ours.base_dist.probs.detach(),
        theirs.base_dist.probs.detach(),
        rtol=1e-12,
    )
    assert ours.batch_shape == batch and ours.event_shape == (6,)
    assert ours.expand((2, *batch)).batch_shape == (2, *batch)


@pytest.mark.parametrize(
    "likelihood", ["categorical", "bernoulli", "gaussian"]
)
def test_model_contract_shapes(likelihood):
    vae = VAE(64, 3, likelihood=likelihood, hidden=(8, 8))
    assert vae.prior().event_shape == (3,)
    p = vae.likelihood(torch.zeros(5, 7, 3))
    assert p.batch_shape == (5, 7) and p.event_shape == (64,)
    x = p.sample()[0]
    q = vae.posterior(x)
    assert q.batch_shape == (7,) and q.event_shape == (3,) and q.has_rsample
    assert vae.dtype == torch.float32


@pytest.mark.parametrize(
    "likelihood", ["categorical", "bernoulli", "gaussian"]
)
def test_estimators_apply_unchanged_and_reach_all_parameters(likelihood):
    vae = VAE(64, 2, likelihood=likelihood, hidden=8)
    x = vae.likelihood(torch.randn(4, 2)).sample()
    bound = vaelib.elbo(vae, vae.posterior(x), x, 3)
    assert bound.shape == (4,) and torch.isfinite(bound).all()
    bound.sum().backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_double_gives_a_float64_model_that_quadrature_accepts():
    vae = VAE(64, 1, hidden=8, activation="silu").double()
    assert (
        vae.dtype == torch.float64 and vae.prior().mean.dtype == torch.float64
    )
    x = vae.likelihood(torch.randn(3, 1, dtype=torch.float64)).sample()
    q = vae.posterior(x)
    assert q.mean.dtype == torch.float64
    # an independent sum: a plain Riemann sum on a fine grid over [-10, 10]
    z = torch.linspace(-10, 10, 20001, dtype=torch.float64)[
        :, None, None
    ].expand(-1, 3, 1)
    with torch.no_grad():
        log_joint = vae.likelihood(z).log_prob(x) + vae.prior().log_prob(z)
        riemann = torch.logsumexp(log_joint, 0) + math.log(20 / 20000)
        np.testing.assert_allclose(
            vaelib.log_px_quad(vae, x), riemann, atol=1e-6
        )


@pytest.mark.parametrize(
    "likelihood, bad",
    [
        ("categorical", 17.0),
        ("categorical", 3.5),
        ("categorical", -1.0),
        ("bernoulli", 0.5),
        ("bernoulli", 2.0),
    ],
)
def test_data_outside_support_is_rejected(likelihood, bad):
    vae = VAE(4, 2, likelihood=likelihood, hidden=8)
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, bad, 1.0]])
    with pytest.raises(ValueError, match=r"^x: row 1 is outside the support"):
        vae.posterior(x)
    with pytest.raises(ValueError, match=r"^x: row 1 is outside the support"):
        vaelib.elbo(vae, vae.posterior(x[:1].expand(2, 4)), x, 1)


def test_posterior_rejects_nan_and_wrong_width():
    vae = VAE(4, 2, hidden=8)
    with pytest.raises(ValueError, match=r"^x: contains NaN"):
        vae.posterior(torch.tensor([[0.0, float("nan"), 1.0, 2.0]]))
    with pytest.raises(
        ValueError, match=r"^x: expected shape \(N, 4\), got \(1, 5\)"
    ):
        vae.posterior(torch.zeros(1, 5))


def test_gaussian_sigma_fixed_or_learned():
    fixed = VAE(4, 2, likelihood="gaussian", hidden=8, sigma=0.3)
    p = fixed.likelihood(torch.zeros(2, 2))
    np.testing.assert_allclose(p.base_dist.scale.detach(), 0.3, rtol=1e-6)
    assert not any("sigma" in name for name, _ in fixed.named_parameters())
    learned = VAE(4, 2, likelihood="gaussian", hidden=8)
    assert "decoder.log_sigma" in dict(learned.named_parameters())
    np.testing.assert_allclose(
        learned.likelihood(torch.zeros(2, 2)).base_dist.scale.detach(), 1.0
    )


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(likelihood="poisson"), r"^likelihood: expected one of"),
        (
            dict(activation="relu"),
            r"^activation: expected one of 'elu', 'silu'",
        ),
        (dict(sigma=0.5), r"^sigma: only the gaussian likelihood"),
        (
            dict(likelihood="gaussian", sigma=-1.0),
            r"^sigma: expected a finite value > 0",
        ),
        (dict(hidden=0), r"^hidden: expected an integer >= 1"),
        (dict(dropout=1.0), r"^dropout: expected a probability in \[0, 1\)"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        VAE(4, 2, **kwargs)


def test_bad_dims():
    with pytest.raises(
        ValueError, match=r"^latent_dim: expected an integer >= 1"
    ):
        VAE(4, 0)
    with pytest.raises(
        ValueError, match=r"^data_dim: expected an integer >= 1"
    ):
        VAE(2.5, 2)


@pytest.mark.parametrize("scale", [1.0, 30.0])  # in and beyond float32's range
def test_pixel_categorical_in_float32(scale):
    """Logits of ±60 overflow e^ℓ in float32 (at 88): the normaliser must shift
    them there, where float64 need not."""
    g = torch.Generator().manual_seed(1)
    a = scale * torch.randn(5, 4, 6, 1, generator=g)
    basis, offset = 2 * torch.randn(17, 1, generator=g), torch.randn(6, 17)
    x = torch.randint(0, 17, (4, 6), generator=g).float()
    ours = PixelCategorical(a, basis, offset).log_prob(x)
    logits = (a @ basis.T + offset).double()
    theirs = Independent(Categorical(logits=logits), 1).log_prob(x.double())
    assert torch.isfinite(ours).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
