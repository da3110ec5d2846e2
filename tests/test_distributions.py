import numpy as np
import pytest
import torch
from torch.distributions import (
    Independent,
    Laplace,
    MultivariateNormal,
    Normal,
    StudentT,
    kl_divergence,
)

import vaelib
from helpers import F64


def kl_formula(m0, S0, m1, S1):
    """KL(N(m0, S0) ‖ N(m1, S1)) = ½[tr(S1⁻¹S0) + (m1−m0)ᵀS1⁻¹(m1−m0) − d + log
    det S1 − log det S0]."""
    S1inv = np.linalg.inv(S1)
    dm = m1 - m0
    return 0.5 * (
        np.trace(S1inv @ S0)
        + dm @ S1inv @ dm
        - len(m0)
        + np.linalg.slogdet(S1)[1]
        - np.linalg.slogdet(S0)[1]
    )


def test_gaussian_params_of_both_kinds():
    loc, scale = (
        torch.randn(4, 3, dtype=F64),
        torch.rand(4, 3, dtype=F64) + 0.1,
    )
    l, L = vaelib.gaussian_params(vaelib.diagonal_normal(loc, scale))
    assert torch.equal(l, loc) and torch.equal(L, torch.diag_embed(scale))
    cov = torch.diag_embed(scale**2) + 0.05
    mvn = MultivariateNormal(loc, covariance_matrix=cov)
    l, L = vaelib.gaussian_params(mvn)
    np.testing.assert_allclose(L @ L.mT, cov, rtol=1e-12)
    with pytest.raises(ValueError, match=r"^q: expected a Gaussian"):
        vaelib.gaussian_params(Independent(Laplace(loc, scale), 1))
    with pytest.raises(ValueError, match=r"^q: expected a Gaussian"):
        vaelib.gaussian_params(
            Normal(loc, scale)
        )  # batch (4, 3), not event (3,)


@pytest.mark.parametrize(
    "q_full, p_full",
    [(False, False), (False, True), (True, False), (True, True)],
)
def test_kl_for_every_pairing_matches_formula(q_full, p_full):
    g = torch.Generator().manual_seed(0)

    def make(full):
        loc = torch.randn(3, generator=g, dtype=F64)
        if full:
            A = torch.randn(3, 3, generator=g, dtype=F64)
            return MultivariateNormal(
                loc, covariance_matrix=A @ A.T + 0.5 * torch.eye(3, dtype=F64)
            )
        return vaelib.diagonal_normal(
            loc, torch.rand(3, generator=g, dtype=F64) + 0.2
        )

    q, p = make(q_full), make(p_full)

    def cov(dist):  # built here, not by vaelib.as_mvn (the code under test)
        if isinstance(dist, MultivariateNormal):
            return dist.covariance_matrix.numpy()
        return np.diag(dist.base_dist.scale.numpy() ** 2)

    expected = kl_formula(q.mean.numpy(), cov(q), p.mean.numpy(), cov(p))
    assert kl_divergence(q, p).item() == pytest.approx(expected, rel=1e-12)


def test_mixed_pair_registrations_accept_only_diagonal_normals():
    """The (Independent, MVN) registrations must not claim other Independent
    pairs."""
    q = Independent(StudentT(5.0, torch.zeros(2), torch.ones(2)), 1)
    full = MultivariateNormal(torch.zeros(2), torch.eye(2))
    with pytest.raises(NotImplementedError):
        kl_divergence(q, full)
    with pytest.raises(NotImplementedError):
        kl_divergence(full, q)


def test_as_mvn_keeps_the_distribution():
    q = vaelib.diagonal_normal(
        torch.randn(5, 2, dtype=F64), torch.rand(5, 2, dtype=F64) + 0.1
    )
    z = torch.randn(7, 5, 2, dtype=F64)
    np.testing.assert_allclose(
        vaelib.as_mvn(q).log_prob(z), q.log_prob(z), rtol=1e-12
    )
