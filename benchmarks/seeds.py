"""Comparisons across training seeds, too long for the chapters' time budgets:
trains each configuration with several seeds and writes the numbers the
chapters load and glue to ``book/data/seeds.json``. Every run is seeded
(``vaelib.fit`` is reproducible under its seed), so a run of one seed
reproduces its stored numbers (``tests/test_seeds.py`` checks the cheapest).

- ``ch6``: 2-D against 16-D latent, like for like: the same SiLU networks, the
  same ``fit`` defaults (early stopping); test ELBO (100 draws) and log P(x)
  by importance sampling (K = 1000), nats per image, all 447 test digits.
- ``ch7``: the 2-D SiLU model of chapter 7 (``fit`` with ``max_epochs=200``):
  on the first 100 test digits, log P(x) by quadrature and the gap
  log P(x) − ELBO after the first epoch and at the best epoch.
- ``ch8``: ELBO- against IWAE-trained (k = 5) 2-D SiLU models, 80 epochs:
  on all test digits, exact log P(x) (quadrature, tol 1e-3), the exact ELBO
  (Gauss–Hermite) and the error of importance sampling with the model's own
  encoder (K = 1000).

    .venv/bin/python benchmarks/seeds.py [--only ch8] [--seeds 0 1 2]
"""

import argparse
import json
import math
from pathlib import Path

import torch
from torch.distributions import kl_divergence

import vaelib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "data" / "seeds.json"
SEEDS = (0, 1, 2, 3, 4)
TOL = 1e-3


def digits():
    return {s: vaelib.load_digits(s) for s in ("train", "valid", "test")}


def train(data, latent_dim, seed, **options):
    torch.manual_seed(seed)
    vae = vaelib.VAE(64, latent_dim, activation="silu")
    history = vaelib.fit(
        vae, data["train"][0], data["valid"][0], seed=seed, **options
    )
    return vae.double().eval(), history


def kept(values):
    """The rows quadrature vouched for (it returns NaN for the others)."""
    return values[~values.isnan()]


@torch.no_grad()
def exact(vae, x):
    """log P(x) by quadrature and the ELBO by Gauss–Hermite, per digit."""
    q = vae.posterior(x)
    log_px = vaelib.log_px_quad(vae, x, tol=TOL, on_failure="nan")
    recon = vaelib.expected_log_likelihood(vae, q, x, n_nodes=20)
    return log_px, recon - kl_divergence(q, vae.prior())


def ch6(data, seed):
    x = data["test"][0].double()
    out = {}
    for d in (2, 16):
        vae, history = train(data, d, seed)
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            q = vae.posterior(x)
            bound = vaelib.elbo(vae, q, x, 100)
            log_px = vaelib.log_px_is(vae, q, x, 1000)
        out[f"d{d}"] = {
            "best_epoch": history.best_epoch,
            "test_elbo": vaelib.mean_se(bound)[0],
            "test_log_px": vaelib.mean_se(log_px)[0],
            "test_log_px_se": vaelib.mean_se(log_px)[1],
        }
    return out


def ch7(data, seed):
    x = data["test"][0][:100].double()
    out = {}
    for when, options in [
        ("epoch_1", {"max_epochs": 1}),
        ("best", {"max_epochs": 200}),
    ]:
        vae, history = train(data, 2, seed, **options)
        log_px, elbo = exact(vae, x)
        out[when] = {
            "epoch": history.best_epoch,
            "log_px": vaelib.mean_se(kept(log_px))[0],
            "gap": vaelib.mean_se(kept(log_px - elbo))[0],
        }
    return out


def ch8(data, seed, objectives=("elbo", "iwae")):
    x = data["test"][0].double()
    out = {}
    for objective in objectives:
        k = 5 if objective == "iwae" else 1
        vae, history = train(
            data, 2, seed, objective=objective, k=k, max_epochs=80
        )
        log_px, elbo = exact(vae, x)
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            is_error = (
                vaelib.log_px_is(vae, vae.posterior(x), x, 1000) - log_px
            )
        out[objective] = {
            "best_epoch": history.best_epoch,
            "refused": int(log_px.isnan().sum()),
            "log_px": vaelib.mean_se(kept(log_px))[0],
            "elbo": vaelib.mean_se(kept(elbo))[0],
            "gap": vaelib.mean_se(kept(log_px - elbo))[0],
            "is_error": vaelib.mean_se(kept(is_error))[0],
            "is_error_se": vaelib.mean_se(kept(is_error))[1],
        }
    return out


EXPERIMENTS = {"ch6": ch6, "ch7": ch7, "ch8": ch8}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(EXPERIMENTS), nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data = digits()
    for name in args.only or sorted(EXPERIMENTS):
        runs = results.setdefault(name, {})
        for seed in args.seeds:
            runs[str(seed)] = EXPERIMENTS[name](data, seed)
            print(name, seed, json.dumps(runs[str(seed)]), flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
