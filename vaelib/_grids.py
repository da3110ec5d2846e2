"""Evaluating log P(x, z) over many points: bounded-size chunks, product grids,
and the grid over the prior that the quadrature and the Laplace approximation
start from."""

import torch

from .models import _log_joint

# Numbers per chunk: 4 MiB per float64 array, so the temporaries of one chunk
# stay small
# and memory use is bounded whatever the number of samples or grid points.
MAX_CHUNK_ELEMENTS = 2**19

SHARED_HALF_WIDTH = 8.0  # the shared grid covers [−8, 8]^d
SHARED_POINTS = {1: 513, 2: 65}  # per axis: spacing 1/32 in 1-D, 1/4 in 2-D


def chunks(total, per_item):
    """Slices covering ``range(total)``, each of at most MAX_CHUNK_ELEMENTS
    numbers when an item holds ``per_item`` of them (at least one item per
    slice)."""
    size = max(1, MAX_CHUNK_ELEMENTS // per_item)
    return [
        slice(start, min(start + size, total))
        for start in range(0, total, size)
    ]


def product(axes):
    """The ``(Π nᵢ, d)`` points of the product of the 1-D tensors ``axes`` (the
    first axis varies slowest)."""
    return axes[0][:, None] if len(axes) == 1 else torch.cartesian_prod(*axes)


def shared_grid(d, dtype):
    """The grid over [−8, 8]^d shared by all data points: points ``(G, d)`` and
    spacing."""
    n = SHARED_POINTS[d]
    axis = torch.linspace(
        -SHARED_HALF_WIDTH, SHARED_HALF_WIDTH, n, dtype=dtype
    )
    return product([axis] * d), 2 * SHARED_HALF_WIDTH / (n - 1)


def log_joint_on_grid(model, x, grid):
    """log P(x_n, z_g) for grid points ``grid`` ``(G, d)`` shared by all data
    points ``x`` ``(N, D)``: ``(G, N)``. The decoder runs once per grid
    point."""
    N, D = x.shape
    return torch.cat(
        [
            _log_joint(model, x, grid[part, None, :])
            for part in chunks(grid.shape[0], N * D)
        ]
    )
