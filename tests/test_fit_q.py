import numpy as np
import pytest
import torch

import vaelib
from helpers import F64, data_from, gaussian_kl, random_linear_gaussian


@pytest.fixture(scope="module")
def problem():
    """A 2-D linear-Gaussian model: correlated posteriors in closed form."""
    model = random_linear_gaussian(D=4, d=2, sigma=0.8, seed=3)
    x = data_from(model, torch.tensor([[1.0, -0.5], [-1.5, 0.8], [0.2, 0.1]]))
    post = model.posterior(x)
    assert post.covariance_matrix[:, 0, 1].abs().min() > 0.02  # correlated
    return model, x, post, vaelib.posterior_points(model, x)


def test_grid_kl_of_the_posterior_itself_is_zero(problem):
    _, _, post, grid = problem
    np.testing.assert_allclose(grid.kl(post), 0, atol=1e-8)


def test_best_diagonal_gaussian_matches_the_closed_form(problem):
    """For a Gaussian target N(m, S), the diagonal q minimising KL(q‖P) has
    mean m and variances 1/(S⁻¹)ᵢᵢ (it matches the precision's diagonal)."""
    _, _, post, grid = problem
    start = vaelib.diagonal_normal(post.mean + 0.3, 0.5 * post.stddev)
    q = vaelib.best_q(grid, start, "diagonal")
    precision = torch.linalg.inv(post.covariance_matrix)
    np.testing.assert_allclose(q.mean, post.mean, atol=1e-5)
    sd = 1 / precision.diagonal(dim1=-2, dim2=-1).sqrt()
    np.testing.assert_allclose(q.stddev, sd, rtol=1e-5)
    # and its KL is the closed-form one, which is > 0 for these posteriors
    cov = torch.diag_embed(q.variance)
    exact = gaussian_kl(q.mean, cov, post.mean, post.covariance_matrix)
    np.testing.assert_allclose(grid.kl(q), exact, atol=1e-7)
    assert (torch.as_tensor(exact) > 1e-4).all()


def test_best_full_gaussian_is_the_posterior(problem):
    _, _, post, grid = problem
    start = vaelib.diagonal_normal(post.mean - 0.2, 2 * post.stddev)
    q = vaelib.best_q(grid, [start], "full")
    np.testing.assert_allclose(q.mean, post.mean, atol=1e-5)
    np.testing.assert_allclose(
        q.covariance_matrix, post.covariance_matrix, atol=1e-5
    )


def test_the_best_start_is_kept_per_row(problem):
    """Two starts, each good for different rows after a single step: the result
    takes each row from the start that ends lower."""
    _, _, post, grid = problem
    bad = vaelib.diagonal_normal(post.mean + 3.0, 0.2 * post.stddev)
    q_bad = vaelib.best_q(grid, bad, "diagonal", max_iter=1)
    good = vaelib.diagonal_normal(post.mean, post.stddev)
    q_both = vaelib.best_q(grid, [bad, good], "diagonal", max_iter=1)
    assert (grid.kl(q_both) <= grid.kl(q_bad)).all()
    assert (grid.kl(q_both) < grid.kl(q_bad)).any()


def test_bad_arguments(problem):
    model, x, post, grid = problem
    with pytest.raises(ValueError, match="^family: expected one of"):
        vaelib.best_q(grid, post, "flow")
    with pytest.raises(ValueError, match="^tol: expected"):
        vaelib.posterior_points(model, x, tol=0)
