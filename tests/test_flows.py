"""The flow posterior against change of variables done independently: a
reference forward map T written here coordinate by coordinate, Jacobians
from autograd, and a grid integral of the density."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from vaelib.flows import FlowPosterior, flow_parameters

F64 = torch.float64


def random_params(N=3, d=2, K=4, H=8, init_scale=0.5, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(N, d, generator=g, dtype=dtype)
    scale = 0.5 + torch.rand(N, d, generator=g, dtype=dtype)
    return flow_parameters(loc, scale, K, H, g, init_scale)


def reference_forward(p, n, u):
    """T(u) for row n, u ``(d,)``: layer k moves coordinates i ≡ k (mod 2)
    given the others, by explicit index selection (no masks)."""
    K, d = p["w1"].shape[1], u.shape[-1]
    x = u
    for k in range(K):
        moved = [i for i in range(d) if i % 2 == k % 2]
        kept = [i for i in range(d) if i % 2 != k % 2]
        w1 = p["w1"][n, k][:, kept]  # (H, |kept|)
        h = torch.tanh(w1 @ x[kept] + p["b1"][n, k])
        out = p["w2"][n, k] @ h + p["b2"][n, k]  # (2d,): [t̃, s̃]
        t, s = out[:d][moved], 2 * torch.tanh(out[d:][moved] / 2)
        y = x.clone()
        y[moved] = x[moved] * torch.exp(s) + t
        x = y
    return x


def base_log_prob(p, n, u):
    scale = p["log_scale"][n].exp()
    return Normal(p["loc"][n], scale).log_prob(u).sum(-1)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_log_prob_is_change_of_variables_with_autograd_jacobian(d):
    p = random_params(d=d)
    q = FlowPosterior(p)
    z = 1.5 * torch.randn(3, d, dtype=F64)
    u, _ = q._inverse(z)
    for n in range(3):  # the inverse really inverts the reference T
        torch.testing.assert_close(
            reference_forward(p, n, u[n]), z[n], rtol=1e-12, atol=1e-12
        )
    J = torch.autograd.functional.jacobian(lambda z: q._inverse(z)[0], z)
    J = J.reshape(3 * d, 3 * d)
    for n in range(3):
        block = J[n * d : (n + 1) * d, n * d : (n + 1) * d]
        want = base_log_prob(p, n, u[n]) + torch.linalg.slogdet(block)[1]
        assert q.log_prob(z)[n].item() == pytest.approx(want.item(), abs=1e-8)
        J[n * d : (n + 1) * d, n * d : (n + 1) * d] = 0
    assert J.abs().max() == 0  # rows do not see each other
    assert q.log_prob(z).std() > 0.1  # not a constant


def test_log_prob_of_samples_uses_the_forward_jacobian():
    p = random_params()
    q = FlowPosterior(p)
    torch.manual_seed(7)
    z = q.rsample((5,))  # (5, N, d)
    torch.manual_seed(7)
    u = p["loc"] + p["log_scale"].exp() * torch.randn(5, 3, 2, dtype=F64)
    got = q.log_prob(z)
    for s in range(5):
        for n in range(3):
            zn = reference_forward(p, n, u[s, n])
            torch.testing.assert_close(z[s, n], zn, rtol=1e-12, atol=1e-12)
            J = torch.autograd.functional.jacobian(
                lambda u: reference_forward(p, n, u), u[s, n]
            )
            assert (
                abs(torch.linalg.det(J)) > 1.05
                or abs(torch.linalg.det(J)) < 0.95
            )  # a non-trivial volume change
            want = base_log_prob(p, n, u[s, n]) - torch.linalg.slogdet(J)[1]
            assert got[s, n].item() == pytest.approx(want.item(), abs=1e-8)


def test_density_integrates_to_one():
    # init_scale 0.3: stds (1.9, 3.4) from a base of (0.96, 1.42)
    p = random_params(N=1, seed=0, init_scale=0.3)
    q = FlowPosterior(p)
    L, M = 20.0, 801  # box [−L, L]², spacing 0.05
    x = torch.linspace(-L, L, M, dtype=F64)
    grid = torch.stack(torch.meshgrid(x, x, indexing="ij"), -1)  # (M, M, 2)
    log_q = q.log_prob(grid.reshape(-1, 1, 2)).reshape(M, M)
    dens = log_q.exp()
    total = torch.trapezoid(torch.trapezoid(dens, x), x)
    assert total.item() == pytest.approx(1.0, abs=1e-4)
    edge = torch.cat([dens[0], dens[-1], dens[:, 0], dens[:, -1]])
    assert edge.max() < 1e-8  # the box holds the mass
    base = Independent(Normal(p["loc"], p["log_scale"].exp()), 1)
    gap = log_q - base.log_prob(grid.reshape(-1, 1, 2)).reshape(M, M)
    assert gap[dens > 1e-3].abs().max() > 1  # not just the base Gaussian


def test_identity_initialisation_is_the_diagonal_gaussian():
    g = torch.Generator().manual_seed(1)
    loc = torch.randn(4, 3, generator=g, dtype=F64)
    scale = 0.3 + torch.rand(4, 3, generator=g, dtype=F64)
    q = FlowPosterior(flow_parameters(loc, scale, init_scale=0.0))
    gauss = Independent(Normal(loc, scale), 1)
    z = 2 * torch.randn(6, 4, 3, dtype=F64)
    torch.testing.assert_close(
        q.log_prob(z), gauss.log_prob(z), rtol=1e-12, atol=1e-12
    )
    torch.manual_seed(2)
    zs = q.rsample((6,))
    torch.manual_seed(2)
    want = loc + scale * torch.randn(6, 4, 3, dtype=F64)
    torch.testing.assert_close(zs, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_shapes_dtypes_and_gradients(dtype):
    p = random_params(N=3, d=2, K=3, H=5, dtype=dtype)
    for t in p.values():
        t.requires_grad_(True)
    q = FlowPosterior(p)
    assert q.batch_shape == (3,) and q.event_shape == (2,)
    assert q.rsample().shape == (3, 2)
    z = q.rsample((4, 5))
    assert z.shape == (4, 5, 3, 2) and z.dtype == dtype
    assert q.log_prob(z).shape == (4, 5, 3)
    assert q.log_prob(torch.zeros(7, 1, 2)).shape == (7, 3)  # one z, all rows
    s = q.sample((2,))
    assert s.shape == (2, 3, 2) and not s.requires_grad
    q.log_prob(z).sum().backward()
    for k, t in p.items():
        assert t.grad is not None, k
        assert torch.isfinite(t.grad).all() and t.grad.abs().max() > 0, k
    with pytest.raises(NotImplementedError):
        q.mean
    with pytest.raises(NotImplementedError):
        q.variance


def test_float32_agrees_with_float64():
    p64 = random_params()
    p32 = {k: v.float() for k, v in p64.items()}
    z = torch.randn(5, 3, 2, dtype=F64)
    lp32 = FlowPosterior(p32).log_prob(z.float())
    assert lp32.dtype == torch.float32
    torch.testing.assert_close(
        lp32.double(), FlowPosterior(p64).log_prob(z), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(loc=torch.zeros(4)), r"^loc: expected a floating-point"),
        (dict(loc=torch.zeros(3, 2, dtype=torch.long)), r"^loc: expected"),
        (
            dict(loc=torch.zeros(3, 1), scale=torch.ones(3, 1)),
            r"^loc: .*d >= 2",
        ),
        (dict(scale=torch.ones(3, 3)), r"^scale: expected shape \(3, 2\)"),
        (dict(scale=torch.ones(2)), r"^scale: expected shape"),
        (dict(scale=torch.zeros(3, 2)), r"^scale: expected finite values > 0"),
        (dict(scale=-torch.ones(3, 2)), r"^scale: expected finite values"),
        (dict(scale=torch.full((3, 2), math.nan)), r"^scale: expected finite"),
        (dict(n_layers=0), r"^n_layers: expected an integer >= 1"),
        (dict(n_layers=2.0), r"^n_layers: expected an integer >= 1"),
        (dict(hidden=0), r"^hidden: expected an integer >= 1"),
        (dict(init_scale=-0.1), r"^init_scale: expected a finite value"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = dict(loc=torch.zeros(3, 2), scale=torch.ones(3, 2)) | kwargs
    with pytest.raises(ValueError, match=message):
        flow_parameters(**args)


def test_bad_params_and_bad_z_are_named():
    p = random_params()
    with pytest.raises(ValueError, match=r"^params: missing w2"):
        FlowPosterior({k: v for k, v in p.items() if k != "w2"})
    with pytest.raises(ValueError, match=r"^params: b2 should have shape"):
        FlowPosterior(p | {"b2": p["b2"][:, :, :3]})
    q = FlowPosterior(p)
    with pytest.raises(ValueError, match=r"^z: expected shape \(\.\.\., 2\)"):
        q.log_prob(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"^z: expected shape \(\.\.\., 3, 2"):
        q.log_prob(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"^z: contains NaN"):
        q.log_prob(torch.full((3, 2), math.nan, dtype=F64))
