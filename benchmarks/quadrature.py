"""Quadrature throughput, 2 threads, fresh process, no allocator switch. Prints
seconds for

1. ``log_px_quad`` on 100 points of a small random MLP decoder
   (``NonlinearGaussian.random_mlp``, d = 2, D = 10, σ = 0.1) — target 0.3 s;
2. ``log_px_quad`` on all 447 test digits of chapter 8's 2-D categorical VAE
   (hidden 256, SiLU, ``fit`` for 80 epochs with seed 0), in float64 at the
   default tolerance (1e-6 nats) — target 10 s; with how many digits it
   refused, and why.

``--check`` adds the accuracy: for every test digit, a reference log P(x) by
the Gauss–Legendre rule (``log_px_legendre``) on a box found from a 0.05-spaced
grid over [−8, 8]² (every point within 50 nats of its highest, padded by 0.15),
with 300 and 450 nodes per axis; it prints the largest change between the two
node counts and the largest
|log_px_quad − reference| (target ≤ 1e-6 nats). About ten minutes. Asserts
nothing.

    .venv/bin/python benchmarks/quadrature.py [--check]
"""

import argparse
import time

import torch

import vaelib
from vaelib._grids import log_joint_on_grid


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def chapter_8_model():
    x_train, x_valid = (vaelib.load_digits(s)[0] for s in ("train", "valid"))
    torch.manual_seed(0)
    vae = vaelib.VAE(64, 2, activation="silu")
    vaelib.fit(vae, x_train, x_valid, seed=0, max_epochs=80)
    return vae.double()


@torch.no_grad()
def reference(model, x):
    """(N, 2): Gauss–Legendre log P(x) with 300 and 450 nodes per axis, each
    digit on the box where its log P(x, z) on a 0.05 grid is within 50 nats of
    the grid's highest."""
    axis = torch.linspace(-8, 8, 321, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    out = torch.empty(len(x), 2, dtype=torch.float64)
    for start in range(0, len(x), 16):
        values = log_joint_on_grid(
            model, x[start : start + 16], grid
        )  # (G, n)
        for j in range(values.shape[1]):
            inside = grid[values[:, j] > values[:, j].max() - 50]
            lower, upper = inside.amin(0) - 0.15, inside.amax(0) + 0.15
            xj = x[start + j : start + j + 1]
            out[start + j] = torch.cat(
                [
                    vaelib.log_px_legendre(model, xj, lower, upper, n_nodes=n)
                    for n in (300, 450)
                ]
            )
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with a dense Gauss-Legendre reference",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)

    mlp = vaelib.NonlinearGaussian.random_mlp(
        latent_dim=2, data_dim=10, sigma=0.1, seed=0
    )
    torch.manual_seed(0)
    x = mlp.likelihood(mlp.prior().sample((100,))).sample()
    _, seconds = timed(lambda: vaelib.log_px_quad(mlp, x))
    print(f"random MLP decoder, 100 points: {seconds:.2f} s (target 0.3 s)")

    vae = chapter_8_model()
    x = vaelib.load_digits("test")[0].double()
    (log_px, refused), seconds = timed(
        lambda: vaelib.log_px_quad(
            vae, x, on_failure="nan", return_reasons=True
        )
    )
    print(
        f"chapter 8's 2-D digits VAE, {len(x)} test digits: {seconds:.1f} s "
        f"(target 10 s), "
        f"mean log P(x) {log_px.nanmean():.4f} nats, {len(refused)} refused"
    )
    for row, reason in refused.items():
        print(f"  digit {row}: {reason}")
    if args.check:
        ref, seconds = timed(lambda: reference(vae, x))
        ok = ~log_px.isnan()
        print(
            f"reference ({seconds:.0f} s): 300 vs 450 nodes differ by at most "
            f"{(ref[:, 0] - ref[:, 1]).abs().max():.1e} nats; |log_px_quad - "
            f"reference| at most "
            f"{(log_px[ok] - ref[ok, 1]).abs().max():.1e} nats (target 1e-6)"
        )


if __name__ == "__main__":
    main()
