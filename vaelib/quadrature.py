r"""Ground truth by numerical integration over a 1-D or 2-D latent space:

    log P(x) = log ∫ P(x|z) P(z) dz,
    KL(Q(Z|x) ‖ P(Z|x)) = ∫ Q(z|x) [log Q(z|x) − log P(x, z)] dz + log P(x),

for each data point on its own: a row's value and verdict do not depend on the
other rows of its batch or on their order. Bounded memory, no autograd graph
(parameters that require grad are fine).

How, for each row (:mod:`vaelib.lattice` does steps 3 and 4):

1. **The shared grid.** One grid over [−8, 8]^d (spacing 1/4 in 2-D, 1/32 in
   1-D) is evaluated once for all rows: the decoder depends on z alone. A
   posterior at least four spacings wide that passes the tests of step 3 on
   this grid is done.
2. **Locate** the posterior: its mode ẑ and curvature by damped Newton steps
   from the best shared-grid point (:mod:`vaelib.laplace`); where Newton
   finds no strict maximum, the shared grid's mean and covariance instead.
3. **A lattice in whitened coordinates**: z = ẑ + T w(u), with T Tᵀ that
   covariance, w = sinh(u/4)·4 per axis (as fine as a plain lattice near the
   mode, coarser in the long tails a trained decoder gives its posteriors),
   and u on the lattice h·ℤ^d in a box, first h = 1/2 and the box [−6, 6]^d.
   The trapezoid sums with spacings h, 2h and 4h (nested sub-lattices of the
   same points) give three estimates. Each round, for each open row:

   - **tails**: a face beyond which the integrand still carries mass (the
     face's line mass continued geometrically at the decay towards it) of more
     than ``tol``/(8d) moves out, by as many lines as that decay needs;
   - **cover**: the shared grid's mass outside the box (a second mode, a
     ridge) must be below ``tol``/4; else the box grows over every shared
     point that carries mass — on a plain lattice (no stretch) where the
     stretched one would there be coarser than the shared grid;
   - **convergence**: judged once even 4h is at most one standard deviation
     (coarser sums can agree by accident). The sums changed by d₁ (4h to 2h),
     then d₂ (2h to h); the finest is accepted when both are within ``tol``,
     or when the change falls geometrically (d₂ ≤ d₁/16) and d₂ is within
     ``tol`` (it bounds the middle sum's error, and the finest is far better),
     or — once 4h is at most half a standard deviation — the next change at
     that rate, d₂²/d₁, is. Otherwise h is halved, after re-whitening with the
     measured mean and covariance (at most twice, never once the box has
     spread over mass away from the mode) where they show that T was poor.

   Points already evaluated are kept when the box grows or h halves; a new
   point whose old cell has all its corners below e⁻¹⁰·``tol``/(points) of the
   mass is skipped (the far tails of a large box). A row whose box would
   exceed 2^18 points (2^16 in 1-D) is refused, with the test that failed and
   its numbers.
4. **Rounding floor.** Where the mass is, ‖w‖ ≤ W = 6, z = ẑ + T w is rounded
   to about ε·(‖ẑ‖ + W‖T‖) (ε: the dtype's machine epsilon), which moves
   log P(x, z) by up to ε·W·(‖ẑ‖/σ_min + W·σ_max/σ_min) nats (σ: the singular
   values of T): 2.6e-8 nats for σ = 1e-6 at ‖ẑ‖ = 20 in float64. A row
   whose floor exceeds ``tol`` is refused.

**What the error control guarantees, and what it cannot see.** The control is
a-posteriori: it judges the integral by the points it evaluated. For an
integrand analytic in z (smooth activations: tanh, softplus, SiLU, ...) the
trapezoid error falls geometrically as h halves, so once the three sums show
that rate the finest is within ``tol`` (default 1e-6 nats in float64, 1e-3 in
float32) of the integral over the box; the tail test bounds what lies beyond
the faces if the integrand keeps decaying there, and the shared grid vouches
for the rest of [−8, 8]^d at its own resolution. Checked on posteriors with
``|mean| ≤ 20`` and standard deviations from 1e-6 to 1, and on the 447 test
digits of a trained network against a dense Gauss–Legendre reference
(``benchmarks/quadrature.py --check``). What no such test can see (each blind
spot is shown by a test):

- **(a) a narrow second mode**: mass narrower than the shared grid's spacing
  and outside the box falls between the shared grid's points and is missed;
- **(b) mass beyond the shared grid** (a coordinate beyond ±8) not connected to
  the located mode;
- **(c) structure finer than the finest spacing** inside the box, which the
  three nested sums miss alike (a spike between the lattice points).

A decoder with kinks or jumps (ReLU, a step) makes the error fall only like h²
or h: the convergence test fails, and the row is refused rather than guessed.

Derived in Chapter 1 (log P(x)), Chapter 5 (the KL to the true posterior) and
Chapter 7 (trained networks).
"""

import math

import torch

from . import _validate, lattice
from ._grids import log_joint_on_grid, product, shared_grid
from .distributions import gaussian_params
from .laplace import locate
from .models import _log_joint

ON_FAILURE = ("raise", "nan")


def _default_tol(dtype):
    return 1e-6 if dtype == torch.float64 else 1e-3


def _check(model, x, tol, on_failure):
    d, _, dtype, _ = _validate.model_info(model)
    if d not in (1, 2):
        raise ValueError(
            f"model: quadrature needs latent dimension 1 or 2, got d = {d}"
        )
    x = _validate.data(model, x)
    tol = _default_tol(dtype) if tol is None else tol
    if not 0 < tol < math.inf:
        raise ValueError(
            f"tol: expected a positive number of nats, got {tol!r}"
        )
    _validate.choice(on_failure, "on_failure", ON_FAILURE)
    return d, dtype, x, tol


def _on_shared_grid(values, grid, h, tol):
    """Step 1: row -> lattice for the rows that the shared grid resolves."""
    d = grid.shape[-1]
    n = round(2 * grid[-1, 0].item() / h) + 1  # points per axis
    k = (n - 1) // 2
    eye, zero = (
        torch.eye(d, dtype=grid.dtype),
        torch.zeros(d, dtype=grid.dtype),
    )
    target = tol / (8 * d)
    done = {}
    for row in range(values.shape[1]):
        on_grid = lattice.Lattice(
            zero, eye, h, (-k,) * d, (k,) * d, values[:, row].reshape((n,) * d)
        )
        on_grid.stretch = 0.0
        _, cov = lattice.moments(on_grid)
        sd = torch.linalg.eigvalsh(cov)[0].clamp_min(0).sqrt().item()
        sums = lattice.sums(on_grid)
        if not (sd > 0 and lattice.converged(sums, 4 * h / sd, tol)):
            continue
        tails = lattice.tails(on_grid, target * 1e-9).values()
        if max(beyond for beyond, _ in tails) <= target:
            on_grid.value = sums[0].item()
            done[row] = on_grid
    return done


def _located(model, x, values, grid, h):
    """Step 2: ``(loc, T)`` per row, ``(n, d)`` and ``(n, d, d)``."""
    loc, T, ok = locate(model, x, grid[values.argmax(0)])
    if not ok.all():  # no strict maximum: the shared grid's moments
        mean, cov = lattice.weighted_moments(values[:, ~ok], grid)
        eye = torch.eye(grid.shape[-1], dtype=grid.dtype)
        loc[~ok] = mean
        T[~ok] = torch.linalg.cholesky(cov + (h / 2) ** 2 * eye)
    return loc, T


def _with_floor(lat, tol):
    """``lat``, refused if rounding of z limits the accuracy beyond ``tol``."""
    floor = lattice.rounding_floor(lat)
    if floor <= tol:
        return lat
    return lattice.refuse(
        lat,
        f"the posterior is too narrow for {lat.T.dtype} where it lies "
        f"(|m| = {lat.loc.abs().max().item():.3g}): rounding of z limits the "
        f"accuracy to about {floor:.2g} nats > tol {tol:.2g}",
    )


def _finish(lattices, N, dtype, what, on_failure, return_reasons):
    out = torch.tensor(
        [
            lattices[n].value if lattices[n].reason is None else math.nan
            for n in range(N)
        ],
        dtype=dtype,
    )
    reasons = {
        n: lattices[n].reason
        for n in range(N)
        if lattices[n].reason is not None
    }
    if reasons and on_failure == "raise":
        shown = "; ".join(
            f"row {n}: {r}" for n, r in list(reasons.items())[:3]
        )
        raise RuntimeError(
            f"{what}: quadrature refused {len(reasons)} of {N} data "
            f"point(s), rows {sorted(reasons)} (on_failure='nan' gives NaN "
            f"there and keeps the rest). {shown}"
        )
    return (out, reasons) if return_reasons else out


def log_px_quad(
    model, x, tol=None, *, on_failure="raise", return_reasons=False
):
    """log P(x) = log ∫ P(x|z) P(z) dz by adaptive quadrature (module
    docstring), for latent dimension 1 or 2, each row on its own. Shape
    ``(N,)``; error ≤ ``tol`` nats (default 1e-6 in float64, 1e-3 in float32)
    under the guarantee above.

    A row the error control cannot vouch for is refused: ``on_failure="raise"``
    (the default) raises a ``RuntimeError`` naming the refused rows and why;
    ``on_failure="nan"`` puts NaN in those rows and keeps the rest. With
    ``return_reasons=True`` the result is ``(log_px, reasons)``, ``reasons`` a
    dict from each refused row to why it was refused (empty if none was).
    Derived in Chapter 1."""
    d, dtype, x, tol = _check(model, x, tol, on_failure)
    lattices = _lattices(model, x, tol)
    return _finish(
        lattices, x.shape[0], dtype, "log_px_quad", on_failure, return_reasons
    )


def _lattices(model, x, tol):
    """Steps 1 to 4 of the module docstring for checked ``x``: row -> its
    accepted or refused lattice."""
    N, D = x.shape
    d, dtype = _validate.model_info(model)[0], x.dtype
    with torch.no_grad(), _validate.trusted():
        grid, h = shared_grid(d, dtype)
        values = log_joint_on_grid(model, x, grid)  # (G, N)
        lattices = _on_shared_grid(values, grid, h, tol)
        rest = [n for n in range(N) if n not in lattices]
        if rest:
            loc, T = _located(model, x[rest], values[:, rest], grid, h)
            for j, n in enumerate(rest):
                lattices[n] = _with_floor(lattice.start(loc[j], T[j]), tol)
            log_cell = d * math.log(h)

            def shared(row):  # the shared grid's points, log masses, spacing
                return grid, values[:, row] + log_cell, h

            def log_joint(rows, z, w):
                return _log_joint(model, x[rows], z), None

            lattice.integrate(lattices, log_joint, D, tol, shared)
            for n in rest:
                if lattices[n].reason is None:
                    lattices[n] = _with_floor(lattices[n], tol)
    return lattices


def _log_q_pairs(q, rows, z):
    """log Q(z|x_row) for points z ``(P, d)`` of the data points ``rows``
    ``(P,)``: q has batch ``(N,)``, so the points are laid out as
    ``(M, N, d)``, row n's in column n (the rest at q's means)."""
    N, d = q.batch_shape[0], z.shape[-1]
    order = torch.argsort(rows, stable=True)
    ranked = rows[order]
    rank = torch.empty_like(rows)  # each point's place among its row's points
    rank[order] = torch.arange(len(rows)) - torch.searchsorted(ranked, ranked)
    full = q.mean.detach().to(z.dtype).expand(int(rank.max()) + 1, N, d)
    full = full.clone()
    full[rank, rows] = z
    log_q = q.log_prob(full.to(q.mean.dtype))  # (M, N)
    return log_q[rank, rows].to(z.dtype)


def kl_to_posterior_quad(
    model,
    q,
    x,
    tol=None,
    *,
    on_failure="raise",
    return_reasons=False,
    log_px=None,
):
    """KL(Q(Z|x) ‖ P(Z|x))
    = ∫ Q(z|x) [log Q(z|x) − log P(x|z) − log P(z)] dz + log P(x), with
    log P(x) from :func:`log_px_quad`; ``q`` has batch shape ``(N,)``.

    The cross term is integrated on a lattice in q's own coordinates,
    z = μ + L w (step 3 of the module docstring, without re-whitening): for a
    Gaussian q, μ and L are its mean and scale and
    log Q(z|x) = −½‖w‖² − log|det L| − (d/2) log 2π exactly; any other q needs
    ``mean``, ``variance`` (a diagonal L) and ``log_prob``. Shape ``(N,)``;
    error ≤ ``tol`` nats on each of the two integrals. ``on_failure`` and
    ``return_reasons`` as for :func:`log_px_quad`: a row is refused when
    either integral is. ``log_px``: the result of
    ``log_px_quad(model, x, tol, on_failure="nan")``, to reuse it (the KL of
    several q for the same x). Derived in Chapter 5."""
    d, dtype, x, tol = _check(model, x, tol, on_failure)
    N, D = x.shape
    _validate.q_for(q, N, d)
    try:
        loc, L = gaussian_params(q)
        gaussian = True
    except ValueError:
        loc, L = q.mean, torch.diag_embed(q.variance.sqrt())
        gaussian = False
    loc, L = (
        t.detach().to(dtype).expand(N, *t.shape[1:]).clone() for t in (loc, L)
    )
    if log_px is None:
        log_px, refused = log_px_quad(
            model, x, tol, on_failure="nan", return_reasons=True
        )
    else:  # the caller's log_px_quad(model, x, tol), reused
        log_px = torch.as_tensor(log_px, dtype=dtype)
        if log_px.shape != (N,):
            raise ValueError(
                f"log_px: expected shape ({N},), got {tuple(log_px.shape)}"
            )
        refused = {
            n: "refused by the log_px given"
            for n in range(N)
            if torch.isnan(log_px[n])
        }
    with torch.no_grad(), _validate.trusted():
        log_norm = -torch.logdet(L) - 0.5 * d * math.log(2 * math.pi)  # (N,)

        def cross(rows, z, w):  # log Q(z|x), and log Q − log P(x, z)
            if gaussian:
                log_q = -0.5 * (w**2).sum(-1) + log_norm[rows]
            else:
                log_q = _log_q_pairs(q, rows, z)
            return log_q, log_q - _log_joint(model, x[rows], z)

        lattices = {
            n: _with_floor(lattice.start(loc[n], L[n], with_g=True), tol)
            for n in range(N)
            if n not in refused
        }
        lattice.integrate(lattices, cross, D, tol, rewhiten=False)
    for n, reason in refused.items():
        lattices[n] = lattice.Lattice(loc[n], L[n], 0.0, (0,), (0,))
        lattices[n].reason = f"log P(x): {reason}"
    for n, lat in lattices.items():
        if lat.reason is None:
            lat.value += log_px[n].item()
        elif n not in refused:
            lat.reason = f"the cross term: {lat.reason}"
    return _finish(
        lattices, N, dtype, "kl_to_posterior_quad", on_failure, return_reasons
    )


def log_posterior_grid(model, x, z1, z2=None, tol=None):
    """log P(z|x) = log P(x|z) + log P(z) − log P(x) on the grid ``z1``
    (× ``z2`` for a 2-D latent), normalised with :func:`log_px_quad`, for
    contour plots of the true posterior (Chapter 7). Returns
    ``(N, len(z1))`` or ``(N, len(z1), len(z2))``, indexed
    ``[n, i, j]`` ↔ z = (z1[i], z2[j])."""
    d, dtype, x, tol = _check(model, x, tol, "raise")
    axes = [torch.as_tensor(z1, dtype=dtype)]
    if z2 is not None:
        axes.append(torch.as_tensor(z2, dtype=dtype))
    if len(axes) != d or any(a.ndim != 1 or a.numel() < 1 for a in axes):
        raise ValueError(
            f"z1, z2: expected {d} non-empty one-dimensional axes for latent "
            f"dimension {d}"
        )
    if not all(torch.isfinite(a).all() for a in axes):
        raise ValueError("z1, z2: contain NaN or infinite values")
    log_px = log_px_quad(model, x, tol)
    with torch.no_grad(), _validate.trusted():
        values = log_joint_on_grid(model, x, product(axes))  # (G, N)
    return (values - log_px).mT.reshape(x.shape[0], *[a.numel() for a in axes])
