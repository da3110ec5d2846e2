"""The digits recipe, measured: ``VAE(64, 16)`` trained by ``fit``'s defaults
on the train split (early stopping on the valid split), at a 5 s and a 25 s
training budget, 2 threads. Prints the training seconds, and on the valid and
test splits the ELBO (100 draws of z per image) and log P(x) by importance
sampling with K = 5000 draws from Q (Burda et al.'s protocol), each ± its
standard error over images. Nats per image (summed over the 64 pixels, averaged
over images). Asserts nothing; the search that chose the defaults is in
``README.md`` beside this file.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/digits.py [--seeds 0 1 2]
    [--threads 2]

Use ``--threads 1`` (and OMP_NUM_THREADS=1) when another process keeps a core
busy: two threads on one free core ran 5x slower than one thread here.
"""

import argparse
import math

import torch

from vaelib import elbo, log_px_is
from vaelib.data import load_digits
from vaelib.nets import VAE
from vaelib.train import fit

BUDGETS = (5, 25)  # seconds of training
K = 5000


def mean_and_stderr(values):
    return values.mean().item(), values.std().item() / math.sqrt(
        values.numel()
    )


def evaluate(model, x, seed):
    """(ELBO, its stderr, IS log-likelihood, its stderr) in nats per image, in
    the training dtype (float32; all in the log domain)."""
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        q = model.posterior(x)
        bound = elbo(model, q, x, 100)
        log_px = log_px_is(model, q, x, K)
    return (*mean_and_stderr(bound), *mean_and_stderr(log_px))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x_train, _ = load_digits("train")
    x_valid, _ = load_digits("valid")
    x_test, _ = load_digits("test")
    print(
        f"VAE(64, 16), fit defaults, {torch.get_num_threads()} threads; K = "
        f"{K}; nats per image"
    )
    print(
        "budget seed epochs best  seconds | valid ELBO   valid log P(x) | "
        "test ELBO    test log P(x)"
    )
    for budget in BUDGETS:
        for seed in args.seeds:
            torch.manual_seed(seed)
            model = VAE(64, 16)
            history = fit(
                model, x_train, x_valid, max_seconds=budget, seed=seed
            )
            v = evaluate(model, x_valid, seed)
            t = evaluate(model, x_test, seed)
            print(
                f"{budget:5d}s {seed:4d} {len(history.epoch):6d} "
                f"{history.best_epoch:4d} "
                f"{history.seconds[-1]:8.1f} | {v[0]:7.2f}±{v[1]:.2f} "
                f"{v[2]:7.2f}±{v[3]:.2f}    | "
                f"{t[0]:7.2f}±{t[1]:.2f} {t[2]:7.2f}±{t[3]:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
