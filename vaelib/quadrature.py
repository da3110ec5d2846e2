r"""Ground truth by numerical integration over a 1-D or 2-D latent space:

    log P(x) = log ∫ P(x|z) P(z) dz,
    KL(Q(Z|x) ‖ P(Z|x)) = ∫ Q(z|x) [log Q(z|x) − log P(x|z) − log P(z)] dz + log P(x),

for every data point at once, in bounded memory and without an autograd graph
(parameters that require grad are fine).

How:

1. **A shared grid.** The decoder depends on z alone, so one grid over [−8, 8]^d
   (spacing 1/4 in 2-D; 1/32, then 1/256 and 1/2048 in 1-D) is evaluated once for all
   data points. A posterior that this grid resolves (standard deviations of at least two
   spacings, and the checks of step 3) is done.
2. **Locate** every other posterior: its mode and curvature by damped Newton steps on
   log P(x, z) from the best shared-grid point (:func:`laplace_approximation`), which
   moves the window as far as it must — also beyond the shared grid.
3. **Integrate** on a whitened, stretched grid z = m + T w, w = sinh(u/2)·2, uniform in
   u ∈ [−R, R]^d (first R = 6.6, spacing 0.55: w reaches 27 standard deviations, for
   heavy tails) by the trapezoid rule in the log domain (logsumexp). Three nested levels (spacings h, 2h, 4h) come from one evaluation.
   A data point is done when

   - the two finest levels agree to ``tol`` and the convergence looks geometric (the
     last change at most 1/16 of the one before, or both within ``tol``), and
   - the mass beyond the grid's edge, extrapolated from how fast the outer two frames
     decay (times 4 for safety), is below ``tol``/4.

   Otherwise the grid is re-whitened with the moments it measured (a non-Gaussian
   posterior), widened (heavy tails) or refined (finer structure), and tried again.
4. **Cross-check** that the shared grid saw no mass outside each local window (a
   second mode), else ``RuntimeError``.

**Guarantee.** For an integrand analytic in z (smooth activations: tanh, softplus,
SiLU, ...) the trapezoid error falls geometrically as h halves, so the returned value is
within ``tol`` (default 1e-6 nats in float64, 1e-3 in float32) of the integral of the
model *as evaluated*, for posteriors with ``|mean| ≤ 20`` and standard deviations ≥ 1e-6
(float64). When no grid within the budget passes the checks a ``RuntimeError`` says
which check failed — never a silent guess.

**Piecewise-linear (ReLU-family) decoders fail clearly:** their kinks make the error
fall only like h², the geometric test fails, and once the grid is fine enough for that
to be the asymptotic rate the ``RuntimeError`` says so. Use a smooth activation for any
network you want to integrate.

**Rounding floor:** z = m + T w is rounded to about ``ε·(|m| + W‖T‖)``, which moves
log P(x, z) by up to ``ε·W·(|m|/σ_min + W·σ_max/σ_min)`` nats (σ: the posterior's standard
deviations, W = 27 the grid's reach, ε: the dtype's machine epsilon): 1.2e-7 nats for
σ = 1e-6 at ``|m| = 20`` in float64. A data point whose floor exceeds ``tol`` raises ``RuntimeError``.

**Blind spot:** a second posterior mode narrower than the shared grid's spacing and
away from the located one.

Derived in Chapter 1 (log P(x)), Chapter 5 (the KL to the true posterior) and
Chapter 7 (trained networks).
"""

import math

import torch
from torch.distributions import MultivariateNormal

from . import _validate
from ._memory import chunk_sizes
from .distributions import gaussian_params
from .models import _log_joint

SHARED_HALF_WIDTH = 8.0
_SHARED_POINTS = {1: 513, 2: 65}  # per axis on [−8, 8]: spacing 1/32 in 1-D, 1/4 in 2-D
_MAX_SHARED_POINTS = {1: 2**16, 2: 2**18}  # refined shared grids (spacing ≥ 2⁻¹¹, 2⁻⁶)
R0 = 6.6  # half-width of the first local grid in u (reaching 27 standard deviations)
_STRETCH = 0.5  # c in w = sinh(c u) / c
_INTERVALS0 = 24  # intervals per axis of the first local grid (spacing 0.55)
_MAX_INTERVALS = {1: 2**14, 2: 2**9}  # per axis: at most 263 000 points per data point
_KINKS_INTERVALS = 192  # from spacing 0.07 on, slow convergence is the asymptotic rate
_MAX_ROUNDS = 12
_BATCH_ELEMENTS = 2**22  # local grid points × data points handled together
_NEWTON_BATCH = 4096  # data points per Newton solve (bounds its autograd graph)


_KINKS = (
    "the integrand has kinks (a ReLU-family activation? quadrature needs a smooth decoder) "
    "or structure the located window does not resolve (a second, narrow mode?)"
)


def _default_tol(dtype):
    return 1e-6 if dtype == torch.float64 else 1e-3


def _check(model, x, tol):
    d, _, dtype, _ = _validate.model_info(model)
    if d not in (1, 2):
        raise ValueError(f"model: quadrature needs latent dimension 1 or 2, got d = {d}")
    x = _validate.data(model, x)
    tol = _default_tol(dtype) if tol is None else tol
    if not 0 < tol < math.inf:
        raise ValueError(f"tol: expected a positive number of nats, got {tol!r}")
    return d, dtype, x, tol


# --- grids ---------------------------------------------------------------------------


def _grid(n, half_width, d, dtype):
    """The ``(n^d, d)`` points of the product grid with n points per axis on [−w, w]."""
    t = torch.linspace(-half_width, half_width, n, dtype=dtype)
    return t[:, None] if d == 1 else torch.cartesian_prod(t, t)


def _log_weights(ns, hs, dtype):
    """Trapezoid log weights of a product grid with ``ns[i]`` points spaced ``hs[i]``
    on axis i, shape ``ns``."""
    out = torch.zeros((), dtype=dtype)
    for n, h in zip(ns, hs):
        w = torch.full((n,), math.log(h), dtype=dtype)
        w[[0, -1]] -= math.log(2)
        out = out[..., None] + w
    return out


def _shared_values(model, x, u):
    """log P(x_n, u_g) for every shared grid point and data point: ``(G, N)``."""
    N, D = x.shape
    start, out = 0, []
    for size in chunk_sizes(u.shape[0], N * D):
        out.append(_log_joint(model, x, u[start : start + size, None, :]))  # z: (g, 1, d)
        start += size
    return torch.cat(out)


def _stretch(u):
    """w = sinh(c u)/c per axis and log |dw/du| = Σ log cosh(c u): the local grids are
    uniform in u but reach sinh(c R0)/c ≈ 27 standard deviations, so that exponential
    tails (a categorical decoder's posterior has them) are covered by a few points."""
    return torch.sinh(_STRETCH * u) / _STRETCH, torch.log(torch.cosh(_STRETCH * u)).sum(-1)


def _local_values(fn, loc, T, w, D):
    """``fn(z, w)`` on each data point's grid z = loc + T w: ``(G, n)`` for loc ``(n, d)``."""
    start, out = 0, []
    for size in chunk_sizes(w.shape[0], loc.shape[0] * D):
        wc = w[start : start + size]
        z = loc + torch.einsum("nij,gj->gni", T, wc)  # (g, n, d)
        out.append(fn(z, wc))
        start += size
    return torch.cat(out)


# --- the trapezoid rule at three levels ----------------------------------------------


def _levels(terms, value, ns, hs, coords):
    """Trapezoid sums at spacings h, 2h, 4h from one product grid's log integrand
    ``terms`` ``(Π ns, b)`` (log density plus log det of the map to the grid's
    coordinates), ``ns[i]`` points (≡ 1 mod 4) spaced ``hs[i]`` on axis i.

    ``value=None``: log ∫ exp(terms), ``(3, b)``; otherwise ∫ exp(terms)·value.
    Also returns the tail estimate ``(b,)`` (relative to the total) and, for
    ``value=None``, the mean ``(b, d)`` and covariance ``(b, d, d)`` of ``coords``
    ``(n^d, d)`` (the grid points in whitened coordinates) under the integrand."""
    b, d = terms.shape[-1], len(ns)
    terms = terms.reshape(*ns, b)
    value = None if value is None else value.reshape(*ns, b)
    sums = []
    for step in (4, 2, 1):
        index = (slice(None, None, step),) * d
        log_w = _log_weights([(n - 1) // step + 1 for n in ns], [step * h for h in hs], terms.dtype)
        flat = (terms[index] + log_w[..., None]).reshape(-1, b)
        if value is None:
            sums.append(torch.logsumexp(flat, 0))
        else:
            sums.append(torch.where(flat > -math.inf, torch.exp(flat) * value[index].reshape(-1, b), 0).sum(0))
    # finest level (step 1): frames for the tail, moments for re-whitening
    mag = flat if value is None else flat + torch.log(value.reshape(-1, b).abs())
    to_edge = [torch.minimum(torch.arange(n), n - 1 - torch.arange(n)) for n in ns]
    frame = to_edge[0] if d == 1 else torch.minimum(to_edge[0][:, None], to_edge[1][None, :]).reshape(-1)
    outer, inner = (torch.logsumexp(mag[frame == k], 0) for k in (0, 1))
    log_ratio = (outer - inner).clamp_max(0)
    tail = torch.exp(outer - torch.logsumexp(mag, 0)) * 4 * torch.exp(log_ratio) / -torch.expm1(log_ratio)
    tail = torch.where(outer == -math.inf, torch.zeros_like(tail), tail)
    moments = None
    if value is None:
        p = torch.softmax(flat, 0)  # (n^d, b)
        mean = p.mT @ coords
        cov = torch.einsum("gb,gi,gj->bij", p, coords, coords) - mean[:, :, None] * mean[:, None, :]
        moments = (mean, cov)
    return torch.stack(sums[::-1]), tail, moments  # sums: finest first


def _verdict(levels, tail, tol, intervals, scale=1.0):
    """Per data point: done, or why not (``None`` if done)."""
    d2, d1 = (levels[0] - levels[1]).abs(), (levels[1] - levels[2]).abs()
    # d2 bounds the error of the middle level; the finest is far better once the error
    # falls geometrically (16x or more per halving of h) or both changes are within tol
    converged = (d2 <= tol) & ((d1 <= tol) | (d2 <= d1 / 16))
    tail_ok = tail * scale <= tol / 4
    reasons = []
    for i in range(levels.shape[1]):
        if not torch.isfinite(levels[0, i]):
            reasons.append("the integrand is not finite on the grid")
        elif converged[i] and tail_ok[i]:
            reasons.append(None)
        elif not tail_ok[i]:
            reasons.append("tail")
        else:
            rate = math.log2(d1[i] / d2[i]) if d2[i] > 0 and d1[i] > 0 else math.inf
            if intervals >= _KINKS_INTERVALS and rate < 2.5:
                reasons.append(f"the error falls only like h^{rate:.1f}, not geometrically: {_KINKS}")
            else:
                reasons.append("refine")
    return reasons


def _poorly_whitened(mean, cov):
    sd = cov.diagonal().sqrt()
    return bool((mean.abs() > 0.5).any() or (sd < 0.75).any() or (sd > 1.35).any())


def _integrate(fn, loc, T, D, tol, what, value_fn=None, rewhiten=True):
    """Step 3 of the module docstring for every data point; ``loc`` ``(N, d)`` and ``T``
    ``(N, d, d)`` are updated in place when re-whitening. ``fn(j, z, u)`` is the log
    density of data points ``j`` at z = loc + T u; with ``value_fn`` the result is
    ∫ exp(fn)·value_fn, else log ∫ exp(fn). Returns the integrals ``(N,)`` and each
    grid's final half-width R ``(N,)``."""
    N, d = loc.shape
    dtype = loc.dtype
    out = torch.full((N,), math.nan, dtype=dtype)
    intervals = [_INTERVALS0] * N
    R = [R0] * N
    rewhitened = [0] * N
    pending = set(range(N))
    failure = {}
    for _ in range(_MAX_ROUNDS):
        if not pending:
            break
        groups = {}
        for i in sorted(pending):
            groups.setdefault((intervals[i], R[i]), []).append(i)
        for (k, r), members in groups.items():
            n = k + 1
            u = _grid(n, r, d, dtype)
            w, log_jac = _stretch(u)
            batch = max(1, _BATCH_ELEMENTS // n**d)
            for start in range(0, len(members), batch):
                j = torch.tensor(members[start : start + batch])
                log_det = torch.logdet(T[j])  # dz = |det T| |dw/du| du
                terms = _local_values(lambda z, wc: fn(j, z, wc), loc[j], T[j], w, D) + log_det + log_jac[:, None]
                value = None if value_fn is None else _local_values(lambda z, wc: value_fn(j, z, wc), loc[j], T[j], w, D)
                levels, tail, moments = _levels(terms, value, (n,) * d, (2 * r / k,) * d, w)
                scale = 1.0 if value is None else levels[0].abs().clamp_min(1)
                for b, (i, reason) in enumerate(zip(j.tolist(), _verdict(levels, tail, tol, k, scale))):
                    if reason is None:
                        out[i] = levels[0, b]
                        pending.discard(i)
                    elif reason == "tail":
                        R[i], intervals[i] = 2 * R[i], 2 * intervals[i]
                        failure[i] = f"mass beyond ±{R[i] / 2:g} posterior standard deviations (heavy tails)"
                    elif reason == "refine":
                        mean, cov = (m[b] for m in moments) if moments else (None, None)
                        if rewhiten and moments and rewhitened[i] < 2 and _poorly_whitened(mean, cov):
                            L, info = torch.linalg.cholesky_ex(cov)
                            if info == 0:
                                rewhitened[i] += 1
                                loc[i] += T[i] @ mean
                                T[i] = T[i] @ L
                                continue
                        intervals[i] *= 2
                        d2, d1 = (levels[0, b] - levels[1, b]).abs(), (levels[1, b] - levels[2, b]).abs()
                        failure[i] = f"the grid levels still change by {d1:.3g} then {d2:.3g} nats (tol {tol:.3g})"
                        if d2 > 0 and d1 / d2 < 16:  # not geometric
                            failure[i] += f"; the error falls only like h^{math.log2(d1 / d2):.1f}: {_KINKS}"
                        if intervals[i] > _MAX_INTERVALS[d]:
                            pending.discard(i)
                    else:
                        failure[i] = reason
                        pending.discard(i)
    bad = [i for i in range(N) if i in pending or math.isnan(out[i])]
    if bad:
        i = bad[0]
        raise RuntimeError(
            f"{what}: quadrature did not converge for {len(bad)} data point(s), e.g. row {i}: "
            f"{failure.get(i, 'too many rounds')} (after {(intervals[i] + 1) ** d} grid points)"
        )
    return out, torch.tensor(R, dtype=dtype)


# --- locating the posterior ----------------------------------------------------------


def _derivatives(model, x, z):
    """log P(x, z), its gradient and Hessian in z: ``(N,)``, ``(N, d)``, ``(N, d, d)``."""
    d = z.shape[-1]
    with torch.inference_mode(False), torch.enable_grad():
        z = z.detach().clone().requires_grad_(True)
        f = _log_joint(model, x.clone(), z)
        (g,) = torch.autograd.grad(f.sum(), z, create_graph=True)
        rows = [torch.autograd.grad(g[:, i].sum(), z, retain_graph=i < d - 1)[0] for i in range(d)]
    return f.detach(), g.detach(), torch.stack(rows, -2).detach()


def _newton(model, x, z, max_iter=100):
    """Mode of log P(x, z) for every data point by damped Newton (Levenberg–Marquardt)
    steps from the starting points ``z`` ``(N, d)``; returns the mode and the Hessian."""
    N, d = z.shape
    eye = torch.eye(d, dtype=z.dtype)
    f, g, H = _derivatives(model, x, z)
    damping = torch.full((N,), 1e-3, dtype=z.dtype)
    active = torch.ones(N, dtype=torch.bool)
    for _ in range(max_iter):
        act = active.nonzero()[:, 0]
        if act.numel() == 0:
            break
        scale = H[act].diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1.0)
        L, info = torch.linalg.cholesky_ex(-H[act] + (damping[act] * scale)[:, None, None] * eye)
        ok = info == 0
        step = torch.zeros_like(z[act])
        step[ok] = torch.cholesky_solve(g[act][ok][..., None], L[ok])[..., 0]
        gain = (g[act] * step).sum(-1)  # gᵀ A⁻¹ g: the predicted rise, in nats
        converged = ok & (damping[act] < 1e-2) & (gain < 1e-14 * (1 + f[act].abs()))
        active[act[converged]] = False
        trial = act[ok & ~converged]
        if trial.numel():
            z_new = z[trial] + step[ok & ~converged]
            f_new, g_new, H_new = _derivatives(model, x[trial], z_new)
            better = f_new >= f[trial]
            up = trial[better]
            z[up], f[up], g[up], H[up] = z_new[better], f_new[better], g_new[better], H_new[better]
            damping[up] = (damping[up] / 10).clamp_min(1e-12)
            damping[trial[~better]] *= 10
        damping[act[~ok]] *= 10
        active &= damping <= 1e12  # no step helps: flat or at the mode to rounding
    return z, H


def _laplace(model, x, start):
    """Mode ``(N, d)`` and ``scale_tril`` of N(mode, (−H)⁻¹), with ``ok`` ``(N,)`` False
    where the Hessian at the mode is not negative definite."""
    modes, trils, oks = [], [], []
    for s in range(0, x.shape[0], _NEWTON_BATCH):
        mode, H = _newton(model, x[s : s + _NEWTON_BATCH], start[s : s + _NEWTON_BATCH].clone())
        L, info = torch.linalg.cholesky_ex(-H)
        ok = info == 0
        eye = torch.eye(mode.shape[-1], dtype=mode.dtype).expand_as(H)
        cov = torch.cholesky_inverse(torch.where(ok[:, None, None], L, eye))  # (−H)⁻¹
        modes.append(mode)
        trils.append(torch.linalg.cholesky(cov))
        oks.append(ok)
    return torch.cat(modes), torch.cat(trils), torch.cat(oks)


def laplace_approximation(model, x):
    """The Laplace approximation of the true posterior, N(ẑ, (−∇² log P(x, ẑ))⁻¹) at the
    mode ẑ of log P(x, z), found by damped Newton steps from the best point of a grid over
    the prior (latent dimension 1 or 2). A ``MultivariateNormal`` with batch ``(N,)``.

    Exact for the linear-Gaussian model; for a nonlinear decoder it is the Gaussian that
    matches the posterior's curvature at its peak (Chapter 5 compares it with an
    ELBO-fitted Q). Needs a model differentiable in z. ``RuntimeError`` where the
    log-density is not strictly concave at the mode found."""
    d, dtype, x, _ = _check(model, x, None)
    with torch.no_grad(), _validate.trusted():
        u = _grid(_SHARED_POINTS[d], SHARED_HALF_WIDTH, d, dtype)
        values = _shared_values(model, x, u)
        mode, scale_tril, ok = _laplace(model, x, u[values.argmax(0)])
    if not ok.all():
        i = int((~ok).nonzero()[0])
        raise RuntimeError(f"laplace_approximation: row {i}: log P(x, z) is not strictly concave at the mode found")
    return MultivariateNormal(mode, scale_tril=scale_tril)


# --- the public functions ------------------------------------------------------------


def _rounding_floor(loc, T, dtype):
    """Largest change of log P(x, z) that rounding z = m + T w can cause (docstring)."""
    sv = torch.linalg.svdvals(T)  # descending
    eps = torch.finfo(dtype).eps
    W = math.sinh(_STRETCH * R0) / _STRETCH  # the grid's reach in standard deviations
    return eps * W * (loc.abs().amax(-1) / sv[:, -1] + W * sv[:, 0] / sv[:, -1])


def _check_floor(loc, T, dtype, tol, what):
    floor = _rounding_floor(loc, T, dtype)
    if (floor > tol).any():
        i = int((floor > tol).nonzero()[0])
        raise RuntimeError(
            f"{what}: row {i}: the posterior is too narrow for {dtype} where it lies (|m| = "
            f"{loc[i].abs().max().item():.3g}): rounding of z limits the accuracy to about "
            f"{floor[i].item():.2g} nats > tol {tol:.2g}"
        )


def log_px_quad(model, x, tol=None):
    """log P(x) = log ∫ P(x|z) P(z) dz by adaptive quadrature (module docstring), for
    latent dimension 1 or 2. Shape ``(N,)``; error ≤ ``tol`` nats (default 1e-6 in
    float64, 1e-3 in float32) under the guarantee above, else ``RuntimeError``.
    Derived in Chapter 1."""
    d, dtype, x, tol = _check(model, x, tol)
    N, D = x.shape
    log_px = torch.full((N,), math.nan, dtype=dtype)
    n = _SHARED_POINTS[d]
    h = 2 * SHARED_HALF_WIDTH / (n - 1)
    with torch.no_grad(), _validate.trusted():
        u = _grid(n, SHARED_HALF_WIDTH, d, dtype)
        values = _shared_values(model, x, u)  # (G, N)
        levels, tail, (_, cov) = _levels(values, None, (n,) * d, (h,) * d, u)
        verdict = torch.tensor([r is None for r in _verdict(levels, tail, tol, n - 1)])
        done = verdict & (torch.linalg.eigvalsh(cov)[:, 0] >= (2 * h) ** 2)
        log_px[done] = levels[0, done]
        # spread out, away from the edge: refine a grid shared by these data points
        log_w = _log_weights((n,) * d, (h,) * d, dtype).reshape(-1, 1)
        ess = torch.exp(-torch.logsumexp(2 * torch.log_softmax(values + log_w, 0), 0))
        spread = (~done & (ess >= 4) & (tail <= tol / 4)).nonzero()[:, 0]
        if spread.numel():
            refined = _refine_shared(model, x[spread], values[:, spread], u, h, tol)
            log_px[spread] = refined
            done[spread] = ~torch.isnan(refined)
        local = (~done).nonzero()[:, 0]
        if not local.numel():
            return log_px
        values = values[:, local]
        xl = x[local]
        loc, T, ok = _laplace(model, xl, u[values.argmax(0)])
        # where Newton found no strict maximum, start from the shared grid's moments
        p = torch.softmax(values[:, ~ok], 0)
        mean = p.mT @ u
        cov = torch.einsum("gn,gi,gj->nij", p, u, u) - mean[:, :, None] * mean[:, None, :]
        loc[~ok], T[~ok] = mean, torch.linalg.cholesky(cov + (h / 2) ** 2 * torch.eye(d, dtype=dtype))
        _check_floor(loc, T, dtype, tol, "log_px_quad")
        integral, R = _integrate(lambda j, z, _: _log_joint(model, xl[j], z), loc, T, D, tol, "log_px_quad")
        log_px[local] = integral
        _check_wings(values, u, n, loc, T, R, local, integral, tol)
    return log_px


def _refine_shared(model, x, values, u, h0, tol):
    """Step 1 continued, for posteriors spread over many shared grid points but not yet
    converged on it (a trained network's posterior can be lumpy): one grid, shared by
    these data points, over the box holding their mass, halving the spacing until each
    converges or the grid would exceed ``_MAX_SHARED_POINTS``. NaN where not converged."""
    d = u.shape[-1]
    out = torch.full((x.shape[0],), math.nan, dtype=x.dtype)
    # the box: every shared grid point within 40 nats of its data point's peak, plus h0
    mass = (values >= values.amax(0) - 40).any(1)
    lo = (u[mass].amin(0) - h0).clamp_min(-SHARED_HALF_WIDTH)
    hi = (u[mass].amax(0) + h0).clamp_max(SHARED_HALF_WIDTH)
    pending = torch.arange(x.shape[0])
    h = h0 / 2
    while pending.numel():
        lo_h, hi_h = torch.floor(lo / (4 * h)) * 4 * h, torch.ceil(hi / (4 * h)) * 4 * h
        ns = [int(round(v)) + 1 for v in ((hi_h - lo_h) / h).tolist()]
        if math.prod(ns) > _MAX_SHARED_POINTS[d]:
            break
        axes = [torch.linspace(a, b, n, dtype=x.dtype) for a, b, n in zip(lo_h.tolist(), hi_h.tolist(), ns)]
        grid = axes[0][:, None] if d == 1 else torch.cartesian_prod(*axes)
        levels, tail, _ = _levels(_shared_values(model, x[pending], grid), None, ns, (h,) * d, grid)
        done = torch.tensor([r is None for r in _verdict(levels, tail, tol, 0)])
        out[pending[done]] = levels[0, done]
        pending, h = pending[~done], h / 2
    return out


def _check_wings(values, u, n, loc, T, R, local, log_px, tol):
    """The shared grid's mass outside each local window must be negligible (step 4).
    ``values`` ``(G, n_local)`` are the shared grid's log P(x, z) for the rows ``local``."""
    d = u.shape[-1]
    h = 2 * SHARED_HALF_WIDTH / (n - 1)
    log_w = _log_weights((n,) * d, (h,) * d, u.dtype).reshape(-1)
    diff = (u[:, None, :] - loc).transpose(0, 1)[..., None]  # (n_local, G, d, 1)
    w = torch.linalg.solve_triangular(T[:, None], diff, upper=False)[..., 0]  # whitened
    reach = torch.sinh(_STRETCH * R) / _STRETCH  # (n_local,)
    outside = (w.abs() > reach[:, None, None]).any(-1).mT  # (G, n_local)
    log_out = torch.logsumexp(torch.where(outside, values + log_w[:, None], -math.inf), 0)
    share = torch.exp(log_out - log_px)
    if (share > tol / 4).any():
        b = int((share > tol / 4).nonzero()[0])
        raise RuntimeError(
            f"log_px_quad: row {int(local[b])}: a share {share[b].item():.2g} of the posterior mass lies "
            "away from the located mode and was not integrated: the posterior is multimodal"
        )


def kl_to_posterior_quad(model, q, x, tol=None):
    """KL(Q(Z|x) ‖ P(Z|x)) = ∫ Q(z|x) [log Q(z|x) − log P(x|z) − log P(z)] dz + log P(x),
    with log P(x) from :func:`log_px_quad`; ``q`` has batch shape ``(N,)``.

    The cross term is integrated on q's own grid z = μ + L w (stretched as in step 3):
    for a Gaussian q, μ and L are its mean and scale and log Q(z|x) = −½‖w‖² − log|det L|
    − (d/2) log 2π exactly; any other q needs ``mean`` and ``variance`` (a diagonal L)
    and ``log_prob``. Shape ``(N,)``; error ≤ ``tol`` on each of the two integrals
    (module docstring). Derived in Chapter 5."""
    d, dtype, x, tol = _check(model, x, tol)
    N, D = x.shape
    _validate.q_for(q, N, d)
    try:
        loc, L = gaussian_params(q)
        gaussian = True
    except ValueError:
        loc, L, gaussian = q.mean, torch.diag_embed(q.variance.sqrt()), False
    loc, L = (t.detach().to(dtype).expand(N, *t.shape[1:]).clone() for t in (loc, L))
    log_px = log_px_quad(model, x, tol)
    with torch.no_grad(), _validate.trusted():
        _check_floor(loc, L, dtype, tol, "kl_to_posterior_quad")
        log_norm = -torch.logdet(L) - 0.5 * d * math.log(2 * math.pi)  # (N,)

        def log_q(j, z, w):  # z = μ + L w: (g, n, d) for the data points j
            if gaussian:
                return -0.5 * (w**2).sum(-1)[:, None] + log_norm[j]  # (g, n)
            full = loc.expand(z.shape[0], N, d).clone()  # q.log_prob wants all N rows
            full[:, j] = z
            return q.log_prob(full.to(q.mean.dtype))[:, j].to(dtype)

        def ratio(j, z, w):
            return log_q(j, z, w) - _log_joint(model, x[j], z)

        cross, _ = _integrate(log_q, loc, L, D, tol, "kl_to_posterior_quad", value_fn=ratio, rewhiten=False)
    return cross + log_px


def log_posterior_grid(model, x, z1, z2=None, tol=None):
    """log P(z|x) = log P(x|z) + log P(z) − log P(x) on the grid ``z1`` (× ``z2`` for a
    2-D latent), normalised with :func:`log_px_quad`, for contour plots of the true
    posterior (Chapter 7). Returns ``(N, len(z1))`` or ``(N, len(z1), len(z2))``,
    indexed ``[n, i, j]`` ↔ z = (z1[i], z2[j])."""
    d, dtype, x, tol = _check(model, x, tol)
    axes = [torch.as_tensor(z1, dtype=dtype)] + ([] if z2 is None else [torch.as_tensor(z2, dtype=dtype)])
    if len(axes) != d or any(a.ndim != 1 or a.numel() < 1 for a in axes):
        raise ValueError(f"z1, z2: expected {d} non-empty one-dimensional axes for latent dimension {d}")
    if not all(torch.isfinite(a).all() for a in axes):
        raise ValueError("z1, z2: contain NaN or infinite values")
    log_px = log_px_quad(model, x, tol)
    grid = torch.cartesian_prod(*axes) if d == 2 else axes[0][:, None]
    with torch.no_grad(), _validate.trusted():
        values = _shared_values(model, x, grid)  # (G, N)
    return (values - log_px).mT.reshape(x.shape[0], *[a.numel() for a in axes])
