import mpmath
import numpy as np
import pytest
import torch

import vaelib

F64 = torch.float64


def random_linear_gaussian(D, d, sigma, seed=0, scale=1.0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(D, d, generator=g, dtype=dtype)
    b = torch.randn(D, generator=g, dtype=dtype)
    return vaelib.LinearGaussian(W, b, sigma)


def data_from(model, z):
    """Noisy x generated from given latent points z ``(N, d)``."""
    return model.likelihood(torch.as_tensor(z, dtype=F64)).sample()


def mp_log_marginal(model, x, digits=60):
    """log N(x; b, W Wᵀ + σ² I) with C formed and solved in 60-digit arithmetic from the
    float64 W, b, σ: an independent reference that float64 rounding cannot spoil."""
    with mpmath.workdps(digits):
        W = mpmath.matrix(model.W.tolist())
        C = W * W.T + mpmath.mpf(model.sigma.item()) ** 2 * mpmath.eye(model.D)
        r = mpmath.matrix((np.asarray(x) - model.b.numpy()).tolist())
        quad = (r.T * mpmath.lu_solve(C, r))[0]
        D = len(x)
        return float(-0.5 * (D * mpmath.log(2 * mpmath.pi) + mpmath.log(mpmath.det(C)) + quad))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
