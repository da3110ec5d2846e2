import math

import pytest
import torch
from scipy import integrate

import vaelib
from vaelib.legendre import log_px_legendre

from helpers import F64, data_from, random_linear_gaussian


@pytest.mark.parametrize("d, sigma", [(1, 0.5), (2, 0.3), (2, 0.02)])
def test_matches_the_closed_form_marginal(d, sigma):
    model = random_linear_gaussian(D=6, d=d, sigma=sigma)
    x = data_from(model, torch.tensor([[1.5, -2.0][:d], [0.1, 0.4][:d]]))
    post = model.posterior(x)
    sd = post.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()  # (N, d)
    got = log_px_legendre(model, x, post.mean - 12 * sd, post.mean + 12 * sd)
    assert torch.allclose(got, model.log_marginal(x), rtol=0, atol=1e-10)


def test_nonlinear_1d_matches_scipy_adaptive_quadrature():
    model = vaelib.NonlinearGaussian.random_mlp(
        latent_dim=1, data_dim=4, sigma=0.2, seed=5
    )
    x = data_from(model, torch.tensor([[0.7]]))

    def log_f(z):
        return vaelib.log_joint(
            model, x, torch.tensor([[[z]]], dtype=F64)
        ).item()

    peak = max(log_f(z / 100) for z in range(-600, 601))
    value, _ = integrate.quad(
        lambda z: math.exp(log_f(z) - peak),
        -6,
        6,
        points=[0.7],
        epsabs=1e-14,
        epsrel=1e-13,
        limit=500,
    )
    got = log_px_legendre(model, x, -6.0, 6.0, n_nodes=400)
    assert abs(got.item() - (peak + math.log(value))) < 1e-9


def test_a_box_that_cuts_off_mass_is_refused():
    model = random_linear_gaussian(D=6, d=2, sigma=0.3)
    x = data_from(model, torch.tensor([[1.5, -2.0]]))
    post = model.posterior(x)
    with pytest.raises(
        ValueError, match=r"^lower, upper: the box for row 0 cuts off mass"
    ):
        log_px_legendre(model, x, post.mean - 0.5, post.mean + 3.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lower=1.0, upper=-1.0), r"^lower, upper: expected finite boxes"),
        (
            dict(lower=-1.0, upper=math.inf),
            r"^lower, upper: expected finite boxes",
        ),
        (dict(lower=-1.0, upper=1.0, n_nodes=0), r"^n_nodes"),
        (
            dict(lower=-1.0, upper=1.0, n_nodes=5000),
            r"^n_nodes: expected at most 1000",
        ),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    model = random_linear_gaussian(D=6, d=2, sigma=0.3)
    with pytest.raises(ValueError, match=match):
        log_px_legendre(model, torch.zeros(1, 6, dtype=F64), **kwargs)


def test_latent_dimension_above_two_is_refused():
    model = random_linear_gaussian(D=6, d=3, sigma=0.3)
    with pytest.raises(
        ValueError, match=r"^model: expected latent dimension 1 or 2"
    ):
        log_px_legendre(model, torch.zeros(1, 6, dtype=F64), -1.0, 1.0)
