"""One data point's integral over a 1-D or 2-D latent space by the trapezoid
rule on an adaptive lattice: the engine behind :mod:`vaelib.quadrature`, whose
docstring states the algorithm, what its error control guarantees and its blind
spots.

A row's :class:`Lattice` lives in whitened coordinates, z = loc + T w(u), on
the points u = h·k (k integer) of a box. Each round :func:`integrate` evaluates
every open row's missing points in one batch, and :func:`judge` then does one
of four things to each row: accept it, refuse it with a reason, grow its box,
or halve h. Nothing a row does depends on the other rows.

Derived in Chapter 7.
"""

import functools
import math
from dataclasses import dataclass

import torch

from ._grids import chunks, product

H0 = 0.5  # first spacing, in standard deviations of the located posterior
HALF_WIDTH0 = 6.0  # first box: [-6, 6]^d in u
STRETCH = (
    0.25  # c in w = sinh(c u) / c around one mode (0 once the box spreads)
)
MAX_POINTS = {1: 2**16, 2: 2**18}  # per row
MAX_REWHITEN = 2
SKIP_MARGIN = 10.0  # nats below "negligible" at which a new point is skipped
_PER_POINT = (
    16  # numbers per point and data coordinate: a decoder's temporaries
)
_KINKS = (
    "the integrand has a kink or a jump (a ReLU-family or step decoder; "
    "quadrature needs a smooth one) or structure finer than this spacing"
)


@dataclass
class Lattice:
    """One row: z = loc + T w(u), u = h·k for integer k in the box [lo, hi]
    (per axis, multiples of 4, so that the sub-lattices of spacing 2h and 4h
    end on the box too). ``log_f`` holds the log integrand per unit of u at
    each point (NaN: not yet evaluated; -inf: skipped as negligible); ``g`` the
    second factor of an integral of e^f g (None for log ∫ e^f)."""

    loc: torch.Tensor  # (d,)
    T: torch.Tensor  # (d, d), lower triangular
    h: float
    lo: tuple
    hi: tuple
    log_f: torch.Tensor = None
    g: torch.Tensor = None
    stretch: float = STRETCH
    rewhitened: int = 0
    spread: bool = False  # grew over mass away from the mode: no re-whitening
    evaluated: int = 0
    shared_w: torch.Tensor = None  # the shared grid's points in w, once
    value: float = math.nan
    reason: str = None

    @property
    def done(self):
        return self.reason is not None or not math.isnan(self.value)


def start(loc, T, with_g=False, stretch=STRETCH, box=None):
    """A new lattice with spacing H0 on [-6, 6]^d in u, or on ``box``."""
    d = loc.shape[-1]
    k = 4 * math.ceil(HALF_WIDTH0 / H0 / 4)
    lo, hi = ((-k,) * d, (k,) * d) if box is None else box
    lattice = Lattice(loc, T, H0, tuple(lo), tuple(hi), stretch=stretch)
    return _move(lattice, lo, hi, H0, with_g)


def refuse(lattice, reason):
    lattice.reason = reason
    return lattice


def _move(lattice, lo, hi, h, with_g=None):
    """The lattice on the box [lo, hi] with spacing h (the old h or half of
    it), keeping the values computed: old point k is new point k·(old h /
    h)."""
    with_g = lattice.g is not None if with_g is None else with_g
    shape = [b - a + 1 for a, b in zip(lo, hi)]
    log_f = torch.full(shape, math.nan, dtype=lattice.loc.dtype)
    g = torch.zeros(shape, dtype=lattice.loc.dtype) if with_g else None
    if lattice.log_f is not None:
        r = round(lattice.h / h)
        old = tuple(
            slice(a * r - n, b * r - n + 1, r)
            for a, b, n in zip(lattice.lo, lattice.hi, lo)
        )
        log_f[old] = lattice.log_f
        if with_g:
            g[old] = lattice.g
    lattice.lo, lattice.hi, lattice.h = tuple(lo), tuple(hi), h
    lattice.log_f, lattice.g = log_f, g
    return lattice


def stretch(u, c):
    """w = sinh(c u)/c per axis and log ``|dw/du|`` = Σ log cosh(c u): a
    lattice uniform in u is as fine as one in w near the mode and coarser far
    out, where a trained decoder's posterior has long, exponential tails. With
    c = 0, w = u."""
    if c == 0:
        return u, torch.zeros(u.shape[:-1], dtype=u.dtype)
    return torch.sinh(c * u) / c, torch.log(torch.cosh(c * u)).sum(-1)


# --- evaluation
# ----------------------------------------------------------------


def evaluate(lattices, fn, D):
    """Fill in the missing points of every lattice in ``lattices`` (row ->
    lattice) in one batch. ``fn(rows, z, w)`` gives the log density in z (and
    g) at points z = loc + T w(u) of the data points ``rows``, all ``(P,)``;
    the lattice stores it plus log ``|dz/du|`` = log ``|det T|`` +
    Σ log cosh(c u)."""
    rows, index, us, cs = [], [], [], []
    for row, lattice in lattices.items():
        k = torch.isnan(lattice.log_f).nonzero()  # (P_row, d) box positions
        lo = torch.tensor(lattice.lo, dtype=lattice.loc.dtype)
        rows.append(torch.full((len(k),), row))
        index.append(k)
        us.append((k + lo) * lattice.h)
        cs.append(torch.full((len(k), 1), lattice.stretch, dtype=lo.dtype))
        lattice.evaluated += len(k)
    rows, u, c = torch.cat(rows), torch.cat(us), torch.cat(cs)  # (P,), (P, d)
    if not len(rows):  # every new point was skipped
        return
    w = torch.where(c > 0, torch.sinh(c * u) / c.clamp_min(1e-300), u)
    log_jac = torch.where(c > 0, torch.log(torch.cosh(c * u)), 0).sum(-1)
    loc = torch.stack([lat.loc for lat in lattices.values()])  # (R, d)
    T = torch.stack([lat.T for lat in lattices.values()])  # (R, d, d)
    log_det = torch.logdet(T)
    slot = torch.cat([torch.full((len(k),), j) for j, k in enumerate(index)])
    values, factors = [], []
    for part in chunks(len(rows), _PER_POINT * D):
        s = slot[part]
        z = loc[s] + (T[s] @ w[part, :, None])[..., 0]  # (P, d)
        log_f, g = fn(rows[part], z, w[part])
        values.append(log_f + log_det[s] + log_jac[part])
        factors.append(g)
    values = torch.cat(values).split([len(k) for k in index])
    if factors[0] is not None:
        factors = torch.cat(factors).split([len(k) for k in index])
    for j, (lattice, k) in enumerate(zip(lattices.values(), index)):
        lattice.log_f[tuple(k.T)] = values[j]
        if lattice.g is not None:
            lattice.g[tuple(k.T)] = factors[j]


# --- what the points say
# ------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _log_cell_weights(shape, h):
    """log of the trapezoid weights of a product lattice with spacing h
    (shared between calls: do not modify)."""
    out = torch.zeros((), dtype=torch.float64)
    for n in shape:
        w = torch.full((n,), math.log(h), dtype=torch.float64)
        w[[0, -1]] -= math.log(2)
        out = out[..., None] + w
    return out


def sums(lattice):
    """The trapezoid sums with spacings h, 2h and 4h, nested sub-lattices of
    the same points: log ∫ e^f, or ∫ e^f g. ``(3,)``, finest first."""
    out = []
    for step in (1, 2, 4):
        view = (slice(None, None, step),) * lattice.log_f.ndim
        log_f = lattice.log_f[view]
        terms = log_f + _log_cell_weights(
            tuple(log_f.shape), step * lattice.h
        ).to(log_f.dtype)
        if lattice.g is None:
            out.append(torch.logsumexp(terms.reshape(-1), 0))
        else:
            mass = torch.exp(terms) * lattice.g[view]
            out.append(torch.where(terms > -math.inf, mass, 0).sum())
    return torch.stack(out)


def changes(values):
    """How much the sums moved from 2h to h (fine), and from 4h to 2h."""
    fine = (values[0] - values[1]).abs().item()
    return fine, (values[1] - values[2]).abs().item()


def converged(values, coarsest, tol):
    """The three sums (finest first) are accepted, the coarsest having spacing
    ``coarsest`` in posterior standard deviations. Judged only once that is at
    most 1: coarser sums can agree by accident (a chapter 8 digit agreed to
    4e-4 at spacings 1, 2 and 4 and was 0.01 off). Then the finest is within
    tol when both changes are; or when the change falls geometrically (fine ≤
    coarse/16) and either ``fine`` is within tol (it bounds the middle sum's
    error, and the finest is far better) or, once ``coarsest`` ≤ 1/2, the next
    change at the same rate, fine²/coarse, is."""
    fine, coarse = changes(values)
    if not (math.isfinite(fine) and math.isfinite(coarse)) or coarsest > 1:
        return False
    if coarse <= tol and fine <= tol:
        return True
    if fine > coarse / 16:
        return False
    return fine <= tol or (coarsest <= 0.5 and fine * fine <= tol * coarse)


def _magnitude(lattice):
    """log |e^f g| (or f) per point: what the tail and cover tests weigh."""
    log_f = torch.nan_to_num(lattice.log_f, nan=-math.inf)
    return log_f if lattice.g is None else log_f + torch.log(lattice.g.abs())


def tails(lattice, negligible):
    """Per face (axis, side): the mass beyond it, relative to the total
    (absolute for ∫ e^f g), and the decay per line r. The face's line mass is
    continued geometrically at the decay of the lines' largest values between
    the face and the nearest line inside that has one (a refinement skips
    negligible points, which no largest value depends on). A face whose own
    line carries less than ``negligible`` of the total has nothing beyond: only
    a second mode could, and that is the shared grid's job."""
    mag = _magnitude(lattice)
    log_cell = mag.ndim * math.log(lattice.h)
    total = torch.logsumexp(mag.reshape(-1), 0)
    out = {}
    for axis in range(mag.ndim):
        by_line = mag.movedim(axis, 0).reshape(mag.shape[axis], -1)
        mass, top = torch.logsumexp(by_line, 1), by_line.amax(1)  # per line
        for side in (0, 1):
            if side:
                mass, top = mass.flip(0), top.flip(0)
            inside = (top[1:] > -math.inf).nonzero()
            if (mass[0] - total).item() < math.log(negligible):
                out[axis, side] = (0.0, 0.0)
            elif not len(inside):
                out[axis, side] = (math.inf, 1.0)
            else:
                k = int(inside[0]) + 1  # lines to the nearest one with mass
                r = math.exp(min((top[0] - top[k]).item() / k, 0.0))
                scale = mass[0] - (total if lattice.g is None else -log_cell)
                beyond = (
                    math.exp(scale.item()) * r / (1 - r) if r < 1 else math.inf
                )
                out[axis, side] = (beyond, r)
    return out


def weighted_moments(log_w, points):
    """Mean ``(..., d)`` and covariance ``(..., d, d)`` of ``points``
    ``(G, d)`` under the normalised weights exp(``log_w``), ``(G, ...)``."""
    p = torch.softmax(log_w, 0).movedim(0, -1)  # (..., G)
    mean = p @ points
    second = (p[..., None] * points).mT @ points
    return mean, second - mean[..., :, None] * mean[..., None, :]


def moments(lattice):
    """Mean ``(d,)`` and covariance ``(d, d)`` of w under e^f."""
    axes = [
        torch.arange(a, b + 1, dtype=lattice.loc.dtype) * lattice.h
        for a, b in zip(lattice.lo, lattice.hi)
    ]
    w, _ = stretch(product(axes), lattice.stretch)
    log_f = torch.nan_to_num(lattice.log_f, nan=-math.inf)
    return weighted_moments(log_f.reshape(-1), w)


def _outside(lattice, shared):
    """The shared grid's points outside the box, in w and in u, with their log
    masses; ``shared`` = (points ``(G, d)``, log mass per point, spacing)."""
    points, log_mass, _ = shared
    if lattice.shared_w is None:  # loc and T are fixed for a lattice's life
        lattice.shared_w = torch.linalg.solve_triangular(
            lattice.T, (points - lattice.loc).mT, upper=False
        ).mT  # (G, d)
    w = lattice.shared_w
    c = lattice.stretch
    u = w if c == 0 else torch.asinh(c * w) / c
    lo = torch.tensor(lattice.lo, dtype=u.dtype) * lattice.h
    hi = torch.tensor(lattice.hi, dtype=u.dtype) * lattice.h
    out = ((u < lo) | (u > hi)).any(-1)
    return w[out], u[out], log_mass[out]


# --- one round for one row
# ----------------------------------------------------


def _points(lo, hi):
    return math.prod(b - a + 1 for a, b in zip(lo, hi))


def _grown_for_tails(lattice, tol):
    """The box with each face that has mass beyond it moved out: by as many
    lines as its decay needs, at most half the box."""
    lo, hi = list(lattice.lo), list(lattice.hi)
    target = tol / (8 * len(lo))
    for (axis, side), (beyond, r) in tails(lattice, target * 1e-9).items():
        if beyond > target:
            half = (hi[axis] - lo[axis]) / 2
            lines = (
                half
                if r >= 1
                else min(math.log(target / beyond) / math.log(r), half)
            )
            grow = 4 * math.ceil(lines / 4)
            if side == 0:
                lo[axis] -= grow
            else:
                hi[axis] += grow
    return lo, hi


def _covering(lattice, shared, total, tol):
    """Where the shared grid sees more than tol/4 of the mass outside the box:
    the box grown over every shared point that carries mass, or a new lattice
    with no stretch where the stretched one would there be coarser than the
    shared grid. None when nothing lies outside."""
    w, u, log_mass = _outside(lattice, shared)
    if not len(u) or (log_mass.logsumexp(0) - total).item() <= math.log(
        tol / 4
    ):
        return None
    carries = log_mass > total + math.log(tol / 4 / len(u))
    w, u = w[carries], u[carries]
    spacing = (  # in z: the lattice's there against the shared grid's
        lattice.h * torch.cosh(lattice.stretch * u) * lattice.T.norm(dim=0)
    )
    d = len(lattice.lo)
    if lattice.stretch and spacing.max() > shared[2]:
        ends = (
            torch.tensor([lattice.lo, lattice.hi], dtype=w.dtype) * lattice.h
        )
        reach = stretch(ends, lattice.stretch)[0]
        low = torch.minimum(reach[0], w.amin(0)).tolist()
        high = torch.maximum(reach[1], w.amax(0)).tolist()
        box = (
            [4 * math.floor(v / H0 / 4) - 4 for v in low],
            [4 * math.ceil(v / H0 / 4) + 4 for v in high],
        )
        if _points(*box) <= MAX_POINTS[d]:
            fresh = start(
                lattice.loc, lattice.T, lattice.g is not None, 0.0, box
            )
            fresh.spread, fresh.evaluated = True, lattice.evaluated
            return fresh
    lattice.spread = True
    h = lattice.h
    low, high = u.amin(0).tolist(), u.amax(0).tolist()
    lo = [
        min(a, 4 * math.floor(v / h / 4) - 4) for a, v in zip(lattice.lo, low)
    ]
    hi = [
        max(b, 4 * math.ceil(v / h / 4) + 4) for b, v in zip(lattice.hi, high)
    ]
    return lo, hi


def _poorly_whitened(mean, cov):
    sd = cov.diagonal().sqrt()
    return bool(
        (mean.abs() > 0.5).any() or (sd < 0.75).any() or (sd > 1.35).any()
    )


def judge(lattice, tol, shared, rewhiten):
    """One round for one row whose points are evaluated: accept it (``value``),
    refuse it (``reason``), or return it with a bigger box or half the spacing,
    re-whitened or unstretched if need be. ``shared``: the shared grid's
    points, log masses and spacing for this row (None: no cover test)."""
    d = len(lattice.lo)
    if torch.isnan(lattice.log_f).any() or (lattice.log_f == math.inf).any():
        return refuse(lattice, "the integrand is NaN or +inf on the grid")
    if lattice.log_f.amax() == -math.inf:
        return refuse(lattice, "the integrand is 0 everywhere on the grid")
    values = sums(lattice)
    lo, hi = _grown_for_tails(lattice, tol)
    if shared is not None and (lo, hi) == (list(lattice.lo), list(lattice.hi)):
        cover = _covering(lattice, shared, values[0], tol)
        if isinstance(cover, Lattice):
            return cover
        lo, hi = cover or (lo, hi)
    if (lo, hi) != (list(lattice.lo), list(lattice.hi)):
        if _points(lo, hi) > MAX_POINTS[d]:
            return refuse(
                lattice,
                f"the mass outside the box of {lattice.evaluated} points does "
                "not fall off: heavy tails, or a second mode that the shared "
                "grid sees outside the box",
            )
        return _move(lattice, lo, hi, lattice.h)
    if converged(values, 4 * lattice.h, tol):
        lattice.value = values[0].item()
        return lattice
    if rewhiten and not lattice.spread and lattice.rewhitened < MAX_REWHITEN:
        mean, cov = moments(lattice)
        L, info = torch.linalg.cholesky_ex(cov)
        if info == 0 and _poorly_whitened(mean, cov):
            fresh = start(lattice.loc + lattice.T @ mean, lattice.T @ L)
            fresh.rewhitened = lattice.rewhitened + 1
            fresh.evaluated = lattice.evaluated
            return fresh
    if _points(lattice.lo, lattice.hi) * 2**d > MAX_POINTS[d]:
        fine, coarse = changes(values)
        rate = (
            math.log2(coarse / fine) if coarse > 0 and fine > 0 else math.inf
        )
        return refuse(
            lattice,
            f"after {lattice.evaluated} points (spacing {lattice.h:.3g} "
            "standard deviations of the located posterior) the trapezoid "
            f"sums at spacings 4h, 2h, h still change by {coarse:.3g}, then "
            f"{fine:.3g} nats (tol {tol:.3g}): the error falls like "
            f"h^{rate:.1f}, not geometrically: {_KINKS}",
        )
    return _refine(lattice, tol)


def _refine(lattice, tol):
    """Halve h, keeping the values. A new point whose cell on the old lattice
    has all its corners below e⁻¹⁰·tol/(points) of the total mass is skipped
    (set to 0): the far tails of a large box, on which no sum depends. This
    assumes the integrand does not rise e¹⁰-fold inside an old cell."""
    mag = _magnitude(lattice)
    corners = mag
    for axis in range(mag.ndim):  # each new point's largest old corner
        n = corners.shape[axis]
        shape = list(corners.shape)
        shape[axis] = 2 * n - 1
        up = torch.empty(shape, dtype=mag.dtype)
        index = [slice(None)] * mag.ndim
        index[axis] = slice(0, None, 2)
        up[tuple(index)] = corners
        index[axis] = slice(1, None, 2)
        up[tuple(index)] = torch.maximum(
            corners.narrow(axis, 0, n - 1), corners.narrow(axis, 1, n - 1)
        )
        corners = up
    total = torch.logsumexp(mag.reshape(-1), 0)
    threshold = total + math.log(tol / corners.numel()) - SKIP_MARGIN
    twice = ([2 * a for a in lattice.lo], [2 * b for b in lattice.hi])
    _move(lattice, *twice, lattice.h / 2)
    lattice.log_f[
        (corners < threshold) & torch.isnan(lattice.log_f)
    ] = -math.inf
    return lattice


def integrate(lattices, fn, D, tol, shared=None, rewhiten=True):
    """Rounds of :func:`evaluate` and :func:`judge` until every lattice in
    ``lattices`` (row -> lattice, updated in place) is accepted or refused.
    ``shared(row)`` gives the shared grid's points, log masses and spacing."""
    pending = {row: lat for row, lat in lattices.items() if not lat.done}
    while pending:
        evaluate(pending, fn, D)
        for row, lattice in list(pending.items()):
            lattice = judge(
                lattice, tol, None if shared is None else shared(row), rewhiten
            )
            lattices[row] = pending[row] = lattice
            if lattice.done:
                del pending[row]


def points(lattice):
    """The points that carry the integral: z ``(P, d)``, the log of each one's
    quadrature weight in z ``(P,)`` (trapezoid weight times ``|dz/du|``), and
    the log integrand in z ``(P,)`` (what ``fn`` of :func:`evaluate` gave)."""
    k = (lattice.log_f > -math.inf).nonzero()  # (P, d)
    u = (k + torch.tensor(lattice.lo, dtype=lattice.loc.dtype)) * lattice.h
    w, log_jac = stretch(u, lattice.stretch)
    log_jac = log_jac + torch.logdet(lattice.T)
    z = lattice.loc + w @ lattice.T.mT
    shape = tuple(lattice.log_f.shape)
    log_trapezoid = _log_cell_weights(shape, lattice.h).to(u.dtype)[tuple(k.T)]
    return z, log_trapezoid + log_jac, lattice.log_f[tuple(k.T)] - log_jac


def rounding_floor(lattice):
    """The largest change of log P(x, z) that rounding z = loc + T w can cause
    where the mass is, ‖w‖ ≤ W = 6 (module docstring of vaelib.quadrature)."""
    sv = torch.linalg.svdvals(lattice.T).tolist()  # descending
    eps, W = torch.finfo(lattice.T.dtype).eps, HALF_WIDTH0
    m = lattice.loc.abs().max().item()
    return eps * W * (m / sv[-1] + W * sv[0] / sv[-1])
