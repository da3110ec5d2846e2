"""vaelib.cvae: the conditional VAE on rows (c, y), checked against the
decoder evaluated by hand and against a dense Gauss–Legendre integral with the
condition held fixed."""

import pytest
import torch
from torch.distributions import Categorical, Independent

import vaelib
from vaelib.cvae import CVAE, one_hot

F64 = torch.float64


def small(uses_z=True, seed=0):
    torch.manual_seed(seed)
    return CVAE(3, 5, 2, uses_z=uses_z, hidden=(8,)).double()


def some_rows(model, n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, 17, (n, model.cond_dim), generator=g)
    y = torch.randint(0, 17, (n, model.out_dim), generator=g)
    return model.rows(c, y)


class _Fixed:
    """The model of one row's y with its condition c fixed: prior N(0, I),
    likelihood P(y|z, c) over y alone."""

    def __init__(self, model, c):
        self.model, self.c = model, c

    def prior(self):
        return self.model.prior()

    def likelihood(self, z):
        return self.model.decode(z, self.c)


def test_contract_shapes_and_broadcast_of_a_grid():
    model = small()
    x = some_rows(model)  # (4, 8)
    grid = torch.randn(7, 1, 2, dtype=F64)
    assert model.likelihood(grid).log_prob(x).shape == (7, 4)
    q = model.posterior(x)
    assert q.batch_shape == (4,) and q.event_shape == (2,)
    assert q.rsample((3,)).shape == (3, 4, 2)


def test_log_prob_is_the_decoder_by_hand():
    """log P(y|z, c) from the decoder's network on [z, c/16] and torch's
    Categorical, against the row-reading distribution."""
    model = small()
    x = some_rows(model)
    z = torch.randn(4, 2, dtype=F64)
    c, y = x[:, :3], x[:, 3:]
    decoder = model.decoder
    a = decoder.net(torch.cat([z, c / 16], -1)).unflatten(-1, (5, -1))
    logits = decoder.offset + a @ decoder.basis.weight.T  # (4, 5, 17)
    want = Independent(Categorical(logits=logits), 1).log_prob(y)
    vaelib.check_close(model.likelihood(z).log_prob(x), want, rtol=1e-12)


def test_quadrature_is_log_p_y_given_c_row_by_row():
    """log_px_quad on rows (c, y) against Gauss–Legendre on each row's model
    with c fixed: log P(y|c) = ∫ P(y|z, c) P(z) dz."""
    model = small()
    x = some_rows(model)
    got = vaelib.log_px_quad(model, x, tol=1e-9)
    for n in range(x.shape[0]):
        fixed = _Fixed(model, x[n, :3])
        want = vaelib.log_px_legendre(fixed, x[n : n + 1, 3:], -9.0, 9.0)
        vaelib.check_close(got[n : n + 1], want, atol=1e-8)


def test_baseline_is_its_decoder_and_ignores_z():
    model = small(uses_z=False)
    x = some_rows(model)
    exact = model.decoder(x[:, :3] / 16).log_prob(x[:, 3:])  # (4,)
    vaelib.check_close(vaelib.log_px_quad(model, x), exact, atol=1e-9)
    z = torch.randn(6, 4, 2, dtype=F64)
    assert model.likelihood(z).log_prob(x).shape == (6, 4)


def test_complete_draws_grey_levels_per_condition():
    model = small()
    out = model.complete(torch.zeros(2, 3, dtype=F64), 5)
    assert out.shape == (5, 2, 5)
    assert ((out >= 0) & (out <= 16)).all()
    assert not torch.allclose(out[0], out[1])  # different z, other images


def test_fit_trains_on_rows_and_is_reproducible():
    x, labels = vaelib.load_digits("train")
    states = []
    for _ in range(2):
        torch.manual_seed(5)  # the initial weights
        model = CVAE(10, 64, 2, cond_scale=1.0, hidden=(16,))
        rows = model.rows(one_hot(labels[:200]), x[:200])
        history = vaelib.fit(model, rows, max_epochs=2, seed=3)
        states.append(model.state_dict())
    assert history.train[1] > history.train[0]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


@pytest.mark.parametrize(
    "c, y, pattern",
    [
        (torch.zeros(2, 4), torch.zeros(2, 5), r"^c: expected shape \(N, 3\)"),
        (torch.zeros(2, 3), torch.zeros(2, 6), r"^y: expected shape \(N, 5\)"),
        (torch.zeros(2, 3), torch.zeros(3, 5), r"^y: expected 2 rows"),
        (torch.full((2, 3), float("nan")), torch.zeros(2, 5), "NaN"),
        (torch.zeros(2, 3), torch.full((2, 5), 17.0), "outside the support"),
    ],
)
def test_bad_rows(c, y, pattern):
    with pytest.raises(ValueError, match=pattern):
        small().rows(c, y)


def test_bad_labels_and_options():
    with pytest.raises(ValueError, match=r"^labels: expected values in 0"):
        one_hot(torch.tensor([3, 10]))
    with pytest.raises(ValueError, match=r"^labels: expected integer"):
        one_hot(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"^cond_dim"):
        CVAE(0, 5, 2)
    with pytest.raises(ValueError, match=r"^cond_scale"):
        CVAE(3, 5, 2, cond_scale=-1.0)
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 8\)"):
        small().posterior(torch.zeros(2, 5, dtype=F64))


HAND_MASKS = {  # row r, column c of the 8 x 8 image is seen
    1: lambda r, c: r < 4 and c < 4,
    2: lambda r, c: r < 4,
    3: lambda r, c: r < 4 or c < 4,
}


@pytest.mark.parametrize("given", [1, 2, 3])
def test_split_and_join_images(given):
    x = torch.arange(128.0).reshape(2, 64)
    seen, hidden = vaelib.split_image(x, given)
    by_hand = torch.tensor(
        [HAND_MASKS[given](r, c) for r in range(8) for c in range(8)]
    )
    assert torch.equal(seen, x[:, by_hand])
    assert torch.equal(hidden, x[:, ~by_hand])
    assert torch.equal(vaelib.join_image(seen, hidden, given), x)
    with pytest.raises(ValueError, match=r"^given"):
        vaelib.split_image(x, 4)
