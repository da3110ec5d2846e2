"""Time and peak memory of ``log_px_is`` in a fresh process with no allocator
switch,
2 threads, float64:

1. the linear-Gaussian model, S = 5000 samples for N = 1000 points, D = 64, d =
   2 — the library issue's target: at most 2.5 s, memory rise at most 100 MB;
2. a digits VAE (``VAE(64, 2, activation="silu")``, untrained: the cost does
   not depend on the weights), K = 1000 samples from its encoder for the 447
   test digits — the workload of chapter 8, for a decoder whose log-density has
   no shortcut.

Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/log_px_is.py
"""

import resource
import time

import torch

import vaelib
from vaelib import _grids

N, D, d, S = 1000, 64, 2, 5000


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    before = peak_rss_mb()
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start, peak_rss_mb() - before


def main():
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    model = vaelib.LinearGaussian(
        torch.randn(D, d, generator=g, dtype=torch.float64),
        torch.zeros(D, dtype=torch.float64),
        0.5,
    )
    x = model.likelihood(
        torch.randn(N, d, generator=g, dtype=torch.float64)
    ).sample()
    post = model.posterior(x)
    q = vaelib.diagonal_normal(
        post.mean + 0.5 * post.stddev, 1.2 * post.stddev
    )  # near, not at, P(z|x)
    torch.manual_seed(0)
    vaelib.log_px_is(model, q, x, 10)  # warm-up
    log_px, seconds, rise = timed(lambda: vaelib.log_px_is(model, q, x, S))
    err = (log_px - model.log_marginal(x)).abs().max().item()
    print(
        f"log_px_is, linear-Gaussian: N={N} points, D={D}, d={d}, S={S} "
        f"samples, float64, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  time                 {seconds:.2f} s (target 2.5 s)")
    print(
        f"  peak RSS             {peak_rss_mb():.0f} MB (rose by {rise:.0f} "
        f"MB in the estimator; target 100 MB)"
    )
    print(
        f"  one S x N x D array  {S * N * D * 8 / 2**20:.0f} MB (never "
        f"formed; chunks of at most "
        f"{_grids.MAX_CHUNK_ELEMENTS * 8 / 2**20:.0f} MB)"
    )
    print(f"  max |log_px_is - log P(x)| = {err:.2e} nats")

    torch.manual_seed(0)
    vae = vaelib.VAE(64, 2, activation="silu").double().eval()
    digits = vaelib.load_digits("test")[0].double()
    with torch.no_grad():
        q = vae.posterior(digits)
        _, seconds, rise = timed(
            lambda: vaelib.log_px_is(vae, q, digits, 1000)
        )
    print(
        f"log_px_is, digits VAE(64, 2): {len(digits)} digits, K=1000, "
        f"float64: {seconds:.2f} s, "
        f"memory rise {rise:.0f} MB"
    )


if __name__ == "__main__":
    main()
