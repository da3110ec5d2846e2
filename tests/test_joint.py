import numpy as np
import pytest
import torch
from scipy.stats import norm

import vaelib
from conftest import F64, random_linear_gaussian


def test_log_joint_matches_scipy_densities():
    model = random_linear_gaussian(3, 2, 0.4, seed=0)
    x = torch.randn(4, 3, dtype=F64)
    z = torch.randn(6, 4, 2, dtype=F64)
    mean = (z @ model.W.T + model.b).numpy()
    expected = norm.logpdf(x.numpy(), mean, 0.4).sum(-1) + norm.logpdf(z.numpy()).sum(-1)
    out = vaelib.log_joint(model, x, z)
    assert out.shape == (6, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_log_joint_shape_errors():
    model = random_linear_gaussian(3, 2, 0.4)
    x = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"z: expected shape \(\.\.\., 4, 2\)"):
        vaelib.log_joint(model, x, torch.randn(6, 5, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\)"):
        vaelib.log_joint(model, torch.randn(4, 2, dtype=F64), torch.randn(4, 2, dtype=F64))
