"""Time and peak memory of log_px_is with S = 5000 samples for N = 1000 points
(D = 64, d = 2), the foundation issue's target (well under 10 s on 2 cores, bounded
memory). Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/log_px_is.py
"""

import resource
import time

import torch

import vaelib
from vaelib import _memory

N, D, d, S = 1000, 64, 2, 5000


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    vaelib.keep_freed_memory()  # opt-in: importing vaelib does not change the allocator
    g = torch.Generator().manual_seed(0)
    model = vaelib.LinearGaussian(torch.randn(D, d, generator=g, dtype=torch.float64),
                                  torch.zeros(D, dtype=torch.float64), 0.5)
    x = model.likelihood(torch.randn(N, d, generator=g, dtype=torch.float64)).sample()
    post = model.posterior(x)
    q = vaelib.diagonal_normal(post.mean + 0.5 * post.stddev, 1.2 * post.stddev)  # near, not at, P(z|x)
    torch.manual_seed(0)
    before = peak_rss_mb()
    vaelib.log_px_is(model, q, x, 10)  # warm-up
    start = time.perf_counter()
    log_px = vaelib.log_px_is(model, q, x, S)
    seconds = time.perf_counter() - start
    after = peak_rss_mb()
    err = (log_px - model.log_marginal(x)).abs().max().item()
    print(f"log_px_is: N={N} points, D={D}, d={d}, S={S} samples, float64, {torch.get_num_threads()} threads")
    print(f"  time                 {seconds:.2f} s")
    print(f"  peak RSS             {after:.0f} MB (rose by {after - before:.0f} MB in the estimator)")
    print(f"  one S x N x D array  {S * N * D * 8 / 2**20:.0f} MB (never formed; chunks of "
          f"{_memory.MAX_CHUNK_ELEMENTS * 8 / 2**20:.0f} MB)")
    print(f"  max |log_px_is - log P(x)| = {err:.2e} nats")


if __name__ == "__main__":
    main()
