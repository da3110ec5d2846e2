r"""The identity as a live figure in the book's web page, with no kernel: a
1-D model's log P(x, z) on a grid goes into the page, and the page's script
(``_static/live_identity.js``) computes, for the Q = N(m, s²) the reader sets
with two sliders,

    log P(x)        = log Σ_g w_g P(x, z_g)              (trapezoid weights w),
    ELBO            = Σ_g w_g Q(z_g) log P(x|z_g) − KL(Q ‖ P(Z)) (closed form),
    KL(Q ‖ P(Z|x))  = Σ_g w_g Q(z_g) [log Q(z_g) − log P(x, z_g)] + log P(x).

Why a grid and not a precomputed table: the page then computes every number
from the model for any slider position, in a few milliseconds, and the grid is
small (a 1-D latent: 3201 numbers). The trapezoid rule is exact to far below
the three decimals shown once Q's standard deviation spans several spacings,
so the sliders keep s ≥ 0.05 (10 spacings) and Q's mass inside the grid.

Derived in Chapter 5.
"""

import json
import math

import torch

from . import _validate

GRID = (-8.0, 8.0, 3201)  # lo, hi, points: spacing 0.005
MEAN_RANGE = (-3.0, 3.0)
SCALE_RANGE = (0.05, 1.0)


class LiveIdentity:
    """``_repr_html_`` is the figure's container: a ``div`` the page's script
    finds, with the data as JSON inside (a Jupyter notebook without the book's
    script shows the fallback text); ``repr`` is one line for the stored text
    output. ``data``: the dict written to the page."""

    def __init__(self, data):
        self.data = data

    def _repr_html_(self):
        # inside <script> nothing is HTML-decoded: only "</" must not occur
        payload = json.dumps(self.data, separators=(",", ":"))
        payload = payload.replace("</", "<\\/")
        return (
            '<div class="vaebook-live" data-live="identity">'
            f'<script type="application/json">{payload}</script>'
            "<p>The live figure runs in the book's web page.</p></div>"
        )

    def __repr__(self):
        return (
            f"live figure: log P(x, z) on {len(self.data['log_joint'])} "
            f"grid points, z from {self.data['lo']} to {self.data['hi']}"
        )


def live_identity(model, x, initial=(0.0, 0.5)):
    """The live figure (:class:`LiveIdentity`) for a model with a 1-D latent
    and prior N(0, 1), and one data point ``x`` ``(1, D)``: log P(x, z) at
    the ``GRID`` points (in the model's dtype; use float64), rounded to 1e-7
    nats, with x itself, the sliders' ranges and their starting values
    ``initial`` = (m, s)."""
    d, _, _, _ = _validate.model_info(model)
    if d != 1:
        raise ValueError(f"model: expected latent dimension 1, got d = {d}")
    x = _validate.data(model, x)
    if x.shape[0] != 1:
        raise ValueError(f"x: expected one data point (1, D), got {x.shape}")
    m0, s0 = (float(v) for v in initial)
    if not (
        MEAN_RANGE[0] <= m0 <= MEAN_RANGE[1]
        and SCALE_RANGE[0] <= s0 <= SCALE_RANGE[1]
    ):
        raise ValueError(
            f"initial: expected m in {MEAN_RANGE} and s in {SCALE_RANGE}, "
            f"got {initial}"
        )
    lo, hi, n = GRID
    z = torch.linspace(lo, hi, n, dtype=x.dtype)[:, None]  # (n, 1)
    with torch.no_grad(), _validate.trusted():
        log_lik = model.likelihood(z).log_prob(x).double()  # (n,)
        log_prior = model.prior().log_prob(z).double()  # (n,)
    standard = -0.5 * z[:, 0].double() ** 2 - 0.5 * math.log(2 * math.pi)
    if not torch.allclose(log_prior, standard, rtol=1e-6, atol=1e-6):
        raise ValueError("model: the page assumes the prior N(0, 1)")
    log_joint = (log_lik + log_prior).tolist()
    if not all(math.isfinite(v) for v in log_joint):
        raise ValueError("model: log P(x, z) is not finite on the grid")
    return LiveIdentity(
        {
            "lo": lo,
            "hi": hi,
            "log_joint": [round(v, 7) for v in log_joint],
            "x": x[0].tolist(),
            "mean_range": list(MEAN_RANGE),
            "scale_range": list(SCALE_RANGE),
            "initial": [m0, s0],
        }
    )
