"""Chapter 11's models over several seeds, too many for its time budget:
writes ``book/data/ch11.json``, which the chapter loads for the
seed-to-seed spread (it trains seed 0 of every configuration itself and
checks that it reproduces the stored numbers; ``tests/test_seeds.py``
re-runs the cheapest here).

Every model: ``VAE(64, 16, "gaussian", activation="silu")`` on the digits
divided by 16, ``fit`` with early stopping and at most 60 epochs. Numbers on
the 447 test digits, nats per image:

- ``sweep``: σ fixed at 0.1 and KL weight β (σ² = β·0.01, Chapter 11): rate,
  distortion (100 draws), active units, the KL of each coordinate (sorted);
- ``learned``: one learned σ (``sigma="shared"``): σ², rate, active units,
  log P(x) by importance sampling (K = 1000; mean and standard error);
- ``ar``: the same with the autoregressive decoder, trained plainly, with KL
  warm-up over 20 epochs, and with free bits (0.5 nats per coordinate).

    .venv/bin/python benchmarks/ch11.py [--seeds 0 1 2]
"""

import argparse
import json
from pathlib import Path

import torch

import vaelib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "data" / "ch11.json"
SEEDS = (0, 1, 2)
EPOCHS = 60
SIGMA0 = 0.1  # the sweep's fixed σ
BETAS = (0.4, 1.0, 2.5, 5.0, 13.0, 35.0)
REMEDIES = {
    "plain": {},
    "warmup": {"warmup": 20},
    "free_bits": {"free_bits": 0.5},
}


def digits():
    """Train, validation and test digits in [0, 1]."""
    return [vaelib.load_digits(s)[0] / 16 for s in ("train", "valid", "test")]


def train(data, seed, sigma, autoregressive=False, **options):
    torch.manual_seed(seed)
    vae = vaelib.VAE(
        64,
        16,
        "gaussian",
        activation="silu",
        sigma=sigma,
        autoregressive=autoregressive,
    )
    history = vaelib.fit(
        vae, data[0], data[1], seed=seed, max_epochs=EPOCHS, **options
    )
    return vae.eval(), history


@torch.no_grad()
def summary(vae, history, x, log_px=False):
    """The numbers the chapter shows for one trained model."""
    torch.manual_seed(0)
    q = vae.posterior(x)
    rate, distortion, _ = vaelib.rate_distortion(vae, q, x, 100)
    kl = vaelib.kl_per_dimension(q, vae.prior()).mean(0)
    out = {
        "best_epoch": history.best_epoch,
        "rate": rate.mean().item(),
        "distortion": distortion.mean().item(),
        "active": vaelib.active_units(q)[0],
        "kl_per_dim": kl.sort(descending=True).values.tolist(),
        "sigma2": vae.decoder.log_sigma.exp().pow(2).mean().item(),
    }
    if log_px:
        out["log_px"] = vaelib.mean_se(vaelib.log_px_is(vae, q, x, 1000))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = digits()
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for seed in args.seeds:
        key = str(seed)
        sweep = {}
        for beta in BETAS:
            vae, history = train(data, seed, SIGMA0, kl_weight=beta)
            sweep[str(beta)] = summary(vae, history, data[2])
        stored.setdefault("sweep", {})[key] = sweep
        vae, history = train(data, seed, "shared")
        stored.setdefault("learned", {})[key] = summary(
            vae, history, data[2], log_px=True
        )
        ar = {}
        for name, options in REMEDIES.items():
            vae, history = train(data, seed, "shared", True, **options)
            ar[name] = summary(vae, history, data[2], log_px=True)
        stored.setdefault("ar", {})[key] = ar
        print(f"seed {seed}: done")
        RESULTS.write_text(json.dumps(stored, indent=1) + "\n")


if __name__ == "__main__":
    main()
