"""The live figure's data: what the page computes from must be the model's
log P(x, z) on the grid, and the HTML must carry it parseably."""

import json
import math
import re

import pytest
import torch

import vaelib
from vaelib.live import GRID

F64 = torch.float64


def toy():
    model = vaelib.NonlinearGaussian.random_mlp(
        latent_dim=1, data_dim=2, sigma=0.3, seed=4
    )
    x = model.likelihood(torch.tensor([[1.0]], dtype=F64)).sample()
    return model, x


def test_grid_values_are_the_log_joint_and_give_log_px():
    model, x = toy()
    figure = vaelib.live_identity(model, x)
    html = figure._repr_html_()
    payload = re.search(r'json">(.*)</script>', html).group(1)
    data = json.loads(payload)
    assert data == figure.data and data["x"] == x[0].tolist()
    lo, hi, n = GRID
    z = torch.linspace(lo, hi, n, dtype=F64)[:, None, None]  # (n, 1, 1)
    want = vaelib.log_joint(model, x, z)[:, 0]
    got = torch.tensor(data["log_joint"], dtype=F64)
    assert (got - want).abs().max() <= 5e-8  # rounded to 1e-7
    h = (hi - lo) / (n - 1)
    log_w = torch.full((n,), math.log(h), dtype=F64)
    log_w[[0, -1]] -= math.log(2)
    log_px_page = torch.logsumexp(got + log_w, 0).item()  # the page's rule
    assert abs(log_px_page - vaelib.log_px_quad(model, x).item()) < 1e-6
    assert "live figure: log P(x, z) on 3201 grid points" in repr(figure)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (
            lambda m, x: vaelib.live_identity(m, x.repeat(2, 1)),
            r"^x: expected one data point",
        ),
        (
            lambda m, x: vaelib.live_identity(m, x, initial=(5.0, 0.5)),
            r"^initial: expected m in",
        ),
        (
            lambda m, x: vaelib.live_identity(
                vaelib.NonlinearGaussian.random_mlp(2, 2, 0.3), x
            ),
            r"^model: expected latent dimension 1",
        ),
    ],
)
def test_bad_input_is_named(make, pattern):
    model, x = toy()
    with pytest.raises(ValueError, match=pattern):
        make(model, x)
