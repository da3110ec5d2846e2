"""Chapter 10's table across the amount of the image given and across seeds,
too long for the chapter's time budget: writes ``book/data/cvae.json``.

For 1, 2 and 3 given quadrants (``vaelib.split_image``) and each seed, a 2-D
CVAE and its baseline without z (``uses_z=False``), both with hidden layers
(64, 64), ``fit`` with at most 100 epochs and early stopping. On all 447 test
digits, in nats per image: −log P(y|c) exactly (quadrature, tol 1e-3, for the
CVAE; the decoder itself for the baseline) and by importance sampling with the
CVAE's encoder (K = 5000), with the standard error over digits. Every run is
seeded, so one run reproduces its stored numbers (``tests/test_seeds.py``
re-runs the cheapest, a baseline).

    .venv/bin/python benchmarks/cvae.py [--given 2] [--seeds 0 1 2]
"""

import argparse
import json
import math
from pathlib import Path

import torch

import vaelib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "data" / "cvae.json"
SEEDS = (0, 1, 2)
HIDDEN = (64, 64)
TOL = 1e-3


def train(given, uses_z, seed):
    """The CVAE (or baseline) completing digits from ``given`` quadrants."""
    seen = 16 * given
    torch.manual_seed(seed)
    model = vaelib.CVAE(seen, 64 - seen, 2, uses_z=uses_z, hidden=HIDDEN)
    rows = {
        split: model.rows(
            *vaelib.split_image(vaelib.load_digits(split)[0], given)
        )
        for split in ("train", "valid")
    }
    history = vaelib.fit(
        model, rows["train"], rows["valid"], seed=seed, max_epochs=100
    )
    return model.double().eval(), history


def test_rows(model, given):
    x = vaelib.load_digits("test", torch.float64)[0]
    return model.rows(*vaelib.split_image(x, given))


@torch.no_grad()
def baseline_nll(model, rows):
    """−log P(y|c) of a model without z: its decoder's, at any z."""
    return -model.likelihood(model.prior().mean).log_prob(rows)


@torch.no_grad()
def cvae_nll(model, rows, seed):
    """−log P(y|c) by quadrature and by importance sampling (K = 5000)."""
    exact = -vaelib.log_px_quad(model, rows, tol=TOL)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        q = model.posterior(rows)
        sampled = -vaelib.log_px_is(model, q, rows, 5000)
    return exact, sampled


def run(given, seed):
    out = {}
    model, history = train(given, False, seed)
    out["baseline"] = {
        "best_epoch": history.best_epoch,
        "nll": vaelib.mean_se(baseline_nll(model, test_rows(model, given))),
    }
    model, history = train(given, True, seed)
    exact, sampled = cvae_nll(model, test_rows(model, given), seed)
    out["cvae"] = {
        "best_epoch": history.best_epoch,
        "nll": vaelib.mean_se(exact),
        "nll_is": vaelib.mean_se(sampled),
    }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--given", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for given in args.given:
        runs = results.setdefault(str(given), {})
        for seed in args.seeds:
            runs[str(seed)] = run(given, seed)
            print(given, seed, json.dumps(runs[str(seed)]), flush=True)
            RESULTS.write_text(
                json.dumps(results, indent=1, sort_keys=True) + "\n"
            )


if __name__ == "__main__":
    main()
