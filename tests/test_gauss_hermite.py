import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

import vaelib
from conftest import F64, data_from, random_linear_gaussian


@pytest.mark.parametrize("d", [1, 2, 3])
def test_exact_for_the_linear_gaussian_reconstruction_term(d):
    """For P(x|z) = N(Wz+b, σ²I), log P(x|z) is quadratic in z, so Gauss–Hermite is exact;
    reference: the closed-form ELBO plus torch's closed-form KL(Q ‖ P(Z))."""
    model = random_linear_gaussian(D=5, d=d, sigma=0.3, seed=d)
    x = data_from(model, torch.randn(4, d, dtype=F64))
    A = torch.randn(4, d, d, dtype=F64)
    q = MultivariateNormal(torch.randn(4, d, dtype=F64), covariance_matrix=A @ A.mT + 0.1 * torch.eye(d, dtype=F64))
    expected = model.elbo(x, q) + vaelib.kl(q, model.prior())
    np.testing.assert_allclose(vaelib.expected_log_likelihood(model, q, x, n_nodes=5), expected, rtol=1e-12)


def test_nonlinear_decoder_against_monte_carlo():
    model = vaelib.NonlinearGaussian.random_mlp(2, 6, sigma=0.2, seed=1)
    x = data_from(model, torch.tensor([[0.5, -1.0]], dtype=F64))
    q = vaelib.diagonal_normal(torch.tensor([[0.4, -0.9]], dtype=F64), torch.tensor([[0.3, 0.2]], dtype=F64))
    gh = vaelib.expected_log_likelihood(model, q, x, n_nodes=40)
    draws = model.likelihood(q.sample((200_000,))).log_prob(x)
    assert (gh - draws.mean(0)).abs().item() < 4.5 * (draws.std(0) / 200_000**0.5).item()
    np.testing.assert_allclose(vaelib.expected_log_likelihood(model, q, x, n_nodes=60), gh, rtol=1e-10)


def test_bad_arguments():
    model = random_linear_gaussian(D=3, d=4, sigma=0.3)
    q = vaelib.diagonal_normal(torch.zeros(2, 4, dtype=F64), torch.ones(2, 4, dtype=F64))
    with pytest.raises(ValueError, match="latent dimension ≤ 3"):
        vaelib.expected_log_likelihood(model, q, torch.zeros(2, 3, dtype=F64))
    model2 = random_linear_gaussian(D=3, d=2, sigma=0.3)
    q2 = vaelib.diagonal_normal(torch.zeros(2, 2, dtype=F64), torch.ones(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="n_nodes"):
        vaelib.expected_log_likelihood(model2, q2, torch.zeros(2, 3, dtype=F64), n_nodes=0)
    with pytest.raises(ValueError, match=r"q: expected batch_shape \(3,\)"):
        vaelib.expected_log_likelihood(model2, q2, torch.zeros(3, 3, dtype=F64))
