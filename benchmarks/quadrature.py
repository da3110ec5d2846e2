"""Quadrature throughput (issue: "quadrature that is fast, bounded and never silently
wrong"). Prints seconds for

1. ``log_px_quad`` on all 447 test digits of a 2-D categorical VAE (hidden 256, SiLU),
   trained ``--train-seconds`` by ``fit`` and evaluated in float64 at the default
   tolerance (1e-6 nats) — target 10 s on 2 cores;
2. ``log_px_quad`` on 100 points of a small random MLP decoder
   (``NonlinearGaussian.random_mlp``, d = 2, D = 10, σ = 0.1) — target 2 s.

Asserts nothing.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/quadrature.py [--train-seconds 5]
"""

import argparse
import time

import torch

import vaelib


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vaelib.keep_freed_memory()

    mlp = vaelib.NonlinearGaussian.random_mlp(latent_dim=2, data_dim=10, sigma=0.1, seed=0)
    torch.manual_seed(0)
    x = mlp.likelihood(mlp.prior().sample((100,))).sample()
    _, seconds = timed(lambda: vaelib.log_px_quad(mlp, x))
    print(f"random MLP decoder, 100 points: {seconds:.2f} s")

    x_train, x_valid, x_test = (vaelib.load_digits(s)[0] for s in ("train", "valid", "test"))
    torch.manual_seed(0)
    vae = vaelib.VAE(64, 2, activation="silu")
    vaelib.fit(vae, x_train, x_valid, max_seconds=args.train_seconds)
    vae = vae.double()
    x = x_test.double()
    try:
        log_px, seconds = timed(lambda: vaelib.log_px_quad(vae, x))
        print(f"2-D digits VAE, {x.shape[0]} test digits: {seconds:.1f} s, mean log P(x) {log_px.mean():.3f} nats")
    except RuntimeError as err:
        print(f"2-D digits VAE: RuntimeError: {err}")


if __name__ == "__main__":
    main()
