"""Reference helpers shared by vaelib's tests (independent of vaelib's own
routes)."""

import mpmath
import numpy as np
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
    """log N(x; b, W Wᵀ + σ² I) with C formed and solved in 60-digit arithmetic
    from the float64 W, b, σ: an independent reference that float64 rounding
    cannot spoil."""
    with mpmath.workdps(digits):
        W = mpmath.matrix(model.W.tolist())
        C = W * W.T + mpmath.mpf(model.sigma.item()) ** 2 * mpmath.eye(
            model.data_dim
        )
        r = mpmath.matrix((np.asarray(x) - model.b.numpy()).tolist())
        quad = (r.T * mpmath.lu_solve(C, r))[0]
        D = len(x)
        return float(
            -0.5
            * (
                D * mpmath.log(2 * mpmath.pi)
                + mpmath.log(mpmath.det(C))
                + quad
            )
        )


def gaussian_kl(m0, S0, m1, S1):
    """KL(N(m0, S0) ‖ N(m1, S1)) from the textbook formula, in numpy (a
    reference that shares no code with torch or vaelib)."""
    m0, S0, m1, S1 = (
        np.asarray(a, dtype=np.float64) for a in (m0, S0, m1, S1)
    )
    k = m0.shape[-1]
    S1inv = np.linalg.inv(S1)
    diff = m1 - m0
    return 0.5 * (
        np.trace(S1inv @ S0, axis1=-2, axis2=-1)
        + np.einsum("...i,...ij,...j->...", diff, S1inv, diff)
        - k
        + np.linalg.slogdet(S1)[1]
        - np.linalg.slogdet(S0)[1]
    )
