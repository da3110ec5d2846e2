"""log P(x) by the Gauss–Legendre product rule on a box you give: a reference
for checks that shares nothing with :mod:`vaelib.quadrature` but the integrand.

``log_px_quad`` (:mod:`vaelib.quadrature`) finds the posterior's mass,
stretches its grid over it and refines until converged;
``kl_to_posterior_quad`` normalises the posterior with that same log P(x). A
check of the identity log P(x) − KL(Q‖P(Z|x)) = ELBO that used ``log_px_quad``
on the left would pass even if ``log_px_quad`` were off by 5 nats: the error
cancels. This module shares nothing with :mod:`vaelib.quadrature` but the
integrand — no locating, no stretching, no refinement, a different rule — so a
check that pits one against the other can fail. Introduced in Chapter 5.
"""

import numpy as np
import torch

from . import _validate
from ._grids import chunks, product
from .models import _log_joint


@torch.no_grad()
def log_px_legendre(model, x, lower, upper, n_nodes=200):
    """log P(x) = log ∫_box P(x|z) P(z) dz by the tensor-product Gauss–Legendre
    rule with ``n_nodes`` nodes per latent axis on the box [lower, upper] (one
    box per data point).

    The rule is exact for polynomials of degree < 2·n_nodes per axis and
    converges geometrically for a smooth integrand that is negligible outside
    the box; it is the caller's job to choose a box that holds the posterior's
    mass. As a guard, the integrand on the box's faces must stay below
    ``edge_tol`` = 1e-13 of its largest value at the nodes, else ``ValueError``
    (the box cuts off mass).

    Args:
        model: latent dimension 1 or 2.
        x: ``(N, D)``.
        lower, upper: the box, broadcastable to ``(N, d)``, ``lower < upper``.
        n_nodes: nodes per axis (≤ 1000).

    Returns ``(N,)``: log P(x) in nats per data point.
    """
    d, D, dtype, _ = _validate.model_info(model)
    if d > 2:
        raise ValueError(
            f"model: expected latent dimension 1 or 2, got d = {d}"
        )
    x = _validate.data(model, x)
    N = x.shape[0]
    lower = torch.as_tensor(lower, dtype=dtype).broadcast_to(N, d)
    upper = torch.as_tensor(upper, dtype=dtype).broadcast_to(N, d)
    if not (
        torch.isfinite(lower).all()
        and torch.isfinite(upper).all()
        and (lower < upper).all()
    ):
        raise ValueError(
            "lower, upper: expected finite boxes with lower < upper in every "
            "coordinate"
        )
    if _validate.count(n_nodes, "n_nodes") > 1000:
        raise ValueError(f"n_nodes: expected at most 1000, got {n_nodes}")

    t, w = np.polynomial.legendre.leggauss(n_nodes)  # on [-1, 1]
    t = torch.tensor(t, dtype=dtype)
    log_w = torch.tensor(np.log(w), dtype=dtype)
    half = (upper - lower) / 2  # (N, d)
    u, log_wu = product([t] * d), product([log_w] * d).sum(-1)
    # the faces: each coordinate at ±1 with the other at the rule's nodes
    edge = torch.tensor([-1.0, 1.0], dtype=dtype)
    faces = (
        edge[:, None]
        if d == 1
        else torch.cat([product([edge, t]), product([t, edge])])
    )

    def log_integrand(
        v,
    ):  # v: (G, d) points of [-1, 1]^d -> log P(x, z(v)), (G, N)
        return torch.cat(
            [
                _log_joint(
                    model, x, lower + half * (v[part, None, :] + 1)
                )  # z: (g, N, d)
                for part in chunks(v.shape[0], N * D)
            ]
        )

    with _validate.trusted():
        log_f = log_integrand(u)  # (G, N)
        peak = log_f.max(0).values  # (N,)
        leak = log_integrand(faces).max(0).values - peak
    if (leak > np.log(1e-13)).any():
        n = int((leak > np.log(1e-13)).nonzero()[0])
        raise ValueError(
            f"lower, upper: the box for row {n} cuts off mass: the integrand "
            f"on its faces "
            f"reaches exp({leak[n].item():.1f}) of its peak (needs < 1e-13); "
            f"widen the box"
        )
    # ∫ f dz = Π half · Σ_g w_g f(z_g), in the log domain
    return torch.logsumexp(log_wu[:, None] + log_f, 0) + half.log().sum(-1)
