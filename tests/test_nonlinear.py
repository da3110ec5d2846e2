import numpy as np
import pytest
import torch
from scipy.stats import norm

import vaelib
from conftest import F64


def test_likelihood_is_gaussian_around_the_decoder_output():
    model = vaelib.NonlinearGaussian(lambda z: torch.cat([torch.sin(z), z**2], -1), 1, 0.3)
    z = torch.randn(5, 4, 1, dtype=F64)
    lik = model.likelihood(z)
    assert lik.batch_shape == (5, 4) and lik.event_shape == (2,)
    x = torch.randn(4, 2, dtype=F64)
    mean = np.concatenate([np.sin(z.numpy()), z.numpy() ** 2], -1)
    np.testing.assert_allclose(lik.log_prob(x), norm.logpdf(x.numpy(), mean, 0.3).sum(-1), rtol=1e-12)
    assert model.prior().event_shape == (1,)


def test_random_mlp_is_reproducible_and_nonlinear():
    a = vaelib.NonlinearGaussian.random_mlp(2, 5, sigma=0.1, seed=3)
    b = vaelib.NonlinearGaussian.random_mlp(2, 5, sigma=0.1, seed=3)
    c = vaelib.NonlinearGaussian.random_mlp(2, 5, sigma=0.1, seed=4)
    z = torch.randn(10, 2, dtype=F64)
    assert torch.equal(a.decoder(z), b.decoder(z)) and not torch.equal(a.decoder(z), c.decoder(z))
    f0, f1, f2 = a.decoder(torch.zeros(2, dtype=F64)), a.decoder(torch.ones(2, dtype=F64)), a.decoder(2 * torch.ones(2, dtype=F64))
    assert not torch.allclose(f2 - f1, f1 - f0)  # not affine along a line


@pytest.mark.parametrize("kwargs, match", [
    (dict(latent_dim=0, data_dim=3, sigma=1.0), "latent_dim"),
    (dict(latent_dim=2, data_dim=3, sigma=0.0), "sigma"),
    (dict(latent_dim=2, data_dim=0, sigma=1.0), "data_dim"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vaelib.NonlinearGaussian.random_mlp(**kwargs)
