import math

import numpy as np
import pytest
import torch

from vaelib import elbo, iwae
from vaelib.data import binarize, load_digits
from vaelib.nets import VAE
from vaelib.train import _bound, fit


@pytest.fixture(scope="module")
def digits():
    x, _ = load_digits("train")
    return x[:60], x[60:100]


def tiny_vae(seed=0, **kwargs):
    torch.manual_seed(seed)
    return VAE(64, 2, hidden=16, **kwargs)


def overfitting_vae():
    """Free logits on 20 images: the validation bound peaks within about 12
    epochs."""
    return tiny_vae(rank=None)


def parameters(model):
    return [p.detach().clone() for p in model.parameters()]


def test_same_seed_same_parameters_whatever_the_global_rng(digits):
    x_train, x_valid = digits
    a, b, c = tiny_vae(), tiny_vae(), tiny_vae()
    torch.manual_seed(1)
    fit(a, x_train, x_valid, max_epochs=3, seed=5)
    torch.manual_seed(2)
    torch.rand(17)
    state = torch.get_rng_state()
    fit(b, x_train, x_valid, max_epochs=3, seed=5)
    assert torch.equal(
        torch.get_rng_state(), state
    )  # fit leaves the global RNG alone
    assert all(torch.equal(p, q) for p, q in zip(parameters(a), parameters(b)))
    fit(c, x_train, x_valid, max_epochs=3, seed=6)
    assert not any(
        torch.equal(p, q) for p, q in zip(parameters(a), parameters(c))
    )


def test_early_stopping_restores_the_best_state(digits):
    x_train, x_valid = digits
    model = overfitting_vae()
    history = fit(
        model,
        x_train[:20],
        x_valid,
        max_epochs=40,
        patience=40,
        lr=1e-2,
        batch_size=10,
    )
    best = history.best_epoch
    assert best < 40, "the setup should overfit before the last epoch"
    assert history.valid[best - 1] == max(history.valid)
    # the model holds the best epoch's parameters: retrain to exactly that
    # epoch ...
    again = (
        overfitting_vae()
    )  # (no stall halves the step size before the best epoch here)
    fit(again, x_train[:20], max_epochs=best, lr=1e-2, batch_size=10)
    assert all(
        torch.equal(p, q) for p, q in zip(parameters(model), parameters(again))
    )
    # ... and its validation bound, recomputed with fit's random numbers, is
    # the best one
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        recomputed = (
            elbo(model, model.posterior(x_valid), x_valid, 1).mean().item()
        )
    assert recomputed == history.valid[best - 1]


def test_patience_and_history(digits):
    x_train, x_valid = digits
    history = fit(
        overfitting_vae(),
        x_train[:20],
        x_valid,
        max_epochs=60,
        patience=3,
        lr=1e-2,
        batch_size=10,
    )
    n = len(history.epoch)
    assert n < 60 and n == history.best_epoch + 3
    assert history.epoch == list(range(1, n + 1))
    assert (
        len(history.train) == len(history.valid) == len(history.seconds) == n
    )
    assert all(np.diff(history.seconds) > 0)


def test_history_is_in_nats_per_data_point(digits):
    x_train, _ = digits
    model = tiny_vae()
    before = tiny_vae()
    history = fit(
        model, x_train, max_epochs=1, batch_size=60
    )  # one batch: the bound before the step
    assert math.isnan(history.valid[0])
    # the same batch and z as fit: its shuffle generator and the global RNG,
    # both seeded with seed=0
    batch = x_train[
        torch.randperm(60, generator=torch.Generator().manual_seed(0))
    ]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        per_point = elbo(
            before, before.posterior(batch), batch, 1
        )  # summed over pixels
    assert per_point.shape == (60,)
    np.testing.assert_allclose(
        history.train[0], per_point.mean().item(), rtol=1e-6
    )


def test_time_budget_stops_after_the_first_epoch(digits):
    x_train, x_valid = digits
    history = fit(tiny_vae(), x_train, x_valid, max_seconds=1e-6)
    assert len(history.epoch) == 1


def test_quiet_unless_asked(digits, capsys):
    x_train, x_valid = digits
    fit(tiny_vae(), x_train, x_valid, max_epochs=2)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


def test_iwae_objective_runs_and_exceeds_elbo(digits):
    x_train, x_valid = digits
    model = tiny_vae()
    fit(model, x_train, x_valid, objective="iwae", k=5, max_epochs=2)
    with torch.no_grad():
        q = model.posterior(x_valid)
        assert (
            iwae(model, q, x_valid, 50, n_draws=4).mean()
            > elbo(model, q, x_valid, 200).mean()
        )


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_other_likelihoods_train(digits, likelihood):
    x_train, x_valid = (binarize(x) for x in digits)
    history = fit(
        tiny_vae(likelihood=likelihood), x_train, x_valid, max_epochs=3
    )
    assert all(math.isfinite(v) for v in history.train + history.valid)
    assert history.valid[-1] > history.valid[0]


def gradients(model, x, objective, seed):
    model.zero_grad()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        _bound(model, x, objective, 1).mean().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_iwae_with_k1_has_the_elbo_gradient(digits):
    """Same z: the decoder's gradients are identical (log P(z) − log Q(z|x) and
    the analytic KL do not involve the decoder). The encoder's differ by
    ∇[log P(z) − log Q(z|x) + KL(Q‖P)], which has mean zero: checked on the
    gradient of the encoder's output bias (μ and ρ of each latent), 300
    draws."""
    x = digits[0][:8]
    model = tiny_vae()
    out_bias = f"encoder.net.{len(model.encoder.net) - 1}.bias"
    diffs = []
    for seed in range(300):
        g_iwae, g_elbo = (
            gradients(model, x, "iwae", seed),
            gradients(model, x, "elbo", seed),
        )
        for name in g_iwae:
            if name.startswith("decoder"):
                torch.testing.assert_close(
                    g_iwae[name], g_elbo[name], rtol=1e-5, atol=1e-6
                )
        diffs.append(g_iwae[out_bias] - g_elbo[out_bias])
    diffs = torch.stack(diffs).double()  # (draws, 2 d)
    assert (diffs.std(0) > 1e-3).all()  # they do differ draw by draw
    z = diffs.mean(0) / (diffs.std(0) / math.sqrt(len(diffs)))
    assert (z.abs() < 4).all(), z


def test_divergence_names_the_epoch(digits):
    x_train, _ = digits
    model = tiny_vae()
    with torch.no_grad():
        model.decoder.net[-1].bias[0] = float("nan")
    with pytest.raises(
        FloatingPointError,
        match=r"^fit: the training loss became nan in epoch 1$",
    ):
        fit(model, x_train, max_epochs=2)


NAN_ROW = torch.full((1, 64), float("nan"))


@pytest.mark.parametrize(
    "which, bad, pattern",
    [
        ("x_train", NAN_ROW, r"^x_train: contains NaN or infinite values"),
        (
            "x_train",
            torch.zeros(3, 63),
            r"^x_train: expected shape \(N, 64\), got \(3, 63\)",
        ),
        (
            "x_train",
            torch.full((2, 64), 17.0),
            r"^x_train: row 0 is outside the support",
        ),
        (
            "x_train",
            torch.full((2, 64), 3.5),
            r"^x_train: row 0 is outside the support",
        ),
        (
            "x_train",
            torch.zeros(0, 64),
            r"^x_train: expected at least one data point",
        ),
        ("x_valid", NAN_ROW, r"^x_valid: contains NaN or infinite values"),
        (
            "x_valid",
            torch.full((2, 64), 3.5),
            r"^x_valid: row 0 is outside the support",
        ),
    ],
)
def test_bad_data(digits, which, bad, pattern):
    data = dict(zip(("x_train", "x_valid"), digits)) | {which: bad}
    with pytest.raises(ValueError, match=pattern):
        fit(tiny_vae(), data["x_train"], data["x_valid"], max_epochs=1)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(objective="vi"), r"^objective: expected one of 'elbo', 'iwae'"),
        (dict(objective="iwae", k=0), r"^k: expected an integer >= 1"),
        (dict(k=5), r"^k: the ELBO uses k = 1"),
        (dict(max_epochs=0), r"^max_epochs: expected an integer >= 1"),
        (dict(max_seconds=-1.0), r"^max_seconds: expected a finite value > 0"),
        (dict(batch_size=0), r"^batch_size: expected an integer >= 1"),
        (dict(lr=float("nan")), r"^lr: expected a finite value > 0"),
        (dict(patience=0), r"^patience: expected an integer >= 1"),
        (dict(kl_weight=-1.0), r"^kl_weight: expected a finite number >= 0"),
        (dict(free_bits="a"), r"^free_bits: expected a finite number >= 0"),
        (dict(warmup=1.5), r"^warmup: expected an integer >= 0"),
        (
            dict(objective="iwae", k=2, free_bits=0.5),
            r"^objective: kl_weight, warmup and free_bits weight",
        ),
    ],
)
def test_bad_options(digits, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        fit(tiny_vae(), *digits, **({"max_epochs": 1} | kwargs))


def test_no_validation_needs_a_budget(digits):
    with pytest.raises(ValueError, match=r"^max_epochs: without x_valid"):
        fit(tiny_vae(), digits[0])


def test_model_must_be_a_module_with_posterior(digits):
    with pytest.raises(
        ValueError, match=r"^model: expected an nn.Module with posterior"
    ):
        fit(object(), *digits, max_epochs=1)


@pytest.mark.parametrize(
    "tty, kernel, env, shown",
    [
        (True, None, None, True),
        (False, "running", None, True),
        (False, None, None, False),
        (False, "imported", None, False),
        (True, "running", "0", False),
    ],
)
def test_progress_bar_only_when_watched_and_not_switched_off(
    digits, monkeypatch, capsys, tty, kernel, env, shown
):
    """kernel: None (plain Python), "imported" (IPython loaded, no kernel: as
    under nbval's own process) or "running" (inside a Jupyter kernel)."""
    import sys
    from types import SimpleNamespace

    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    if kernel is None:
        monkeypatch.delitem(sys.modules, "IPython", raising=False)
    else:
        shell = (
            SimpleNamespace(kernel=object()) if kernel == "running" else None
        )
        monkeypatch.setitem(
            sys.modules, "IPython", SimpleNamespace(get_ipython=lambda: shell)
        )
    if env is None:
        monkeypatch.delenv("VAEBOOK_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("VAEBOOK_PROGRESS", env)
    fit(tiny_vae(), *digits, max_epochs=2)
    assert ("epoch" in capsys.readouterr().err) == shown


def test_kl_weight_and_free_bits_objective_against_its_formula(digits):
    """E_Q[log P(x|z)] − β Σᵤ max(λ, KLᵤ) with the same draw of z, KLᵤ from
    the textbook formula ½(m² + s² − 1 − log s²) averaged over the batch."""
    x = digits[0].double()
    model = tiny_vae().double()
    q = model.posterior(x)
    m, s = q.mean, q.stddev
    kl_u = 0.5 * (m**2 + s**2 - 1 - torch.log(s**2))  # (N, d)
    for beta, free_bits in [(1.0, 0.0), (0.3, 0.0), (2.0, 0.7)]:
        torch.manual_seed(3)
        got = _bound(model, x, "elbo", 1, 1, beta, free_bits)
        torch.manual_seed(3)
        z = model.posterior(x).rsample()
        recon = model.likelihood(z).log_prob(x)
        if free_bits:
            want = recon - beta * kl_u.mean(0).clamp_min(free_bits).sum()
        else:
            want = recon - beta * kl_u.sum(-1)
        torch.testing.assert_close(got.mean(), want.mean())


def test_sigma_squared_and_kl_weight_are_one_knob(digits):
    """Chapter 11: with σ fixed, the ELBO is (up to a positive factor and a
    constant) the β-weighted objective at σ = 1 with β = σ², and Adam is
    blind to the factor: the validation curves map onto each other."""
    x_train, x_valid = (x.double() / 16 for x in digits)
    s2 = 0.05
    curves = []
    for sigma, beta in [(math.sqrt(s2), 1.0), (1.0, s2), (1.0, 1.1 * s2)]:
        model = tiny_vae(likelihood="gaussian", sigma=sigma).double()
        history = fit(
            model, x_train, x_valid, max_epochs=5, seed=1, kl_weight=beta
        )
        curves.append(np.array(history.valid))
    shift = 32 * s2 * math.log(2 * math.pi * s2) - 32 * math.log(2 * math.pi)
    same = (curves[1] - shift) / s2  # the σ² run's ELBO, from the β run
    np.testing.assert_allclose(same, curves[0], atol=1e-6)
    other = (curves[2] - shift) / s2  # a β 10 % off: a different path
    assert np.abs(other - curves[0]).max() > 1e-3


def test_warmup_starts_from_no_kl_weight(digits, monkeypatch):
    """Epoch e trains with weight β·min(1, (e − 1)/W)."""
    import vaelib.train as train

    seen = []
    original = train._train_epoch

    def spy(model, optimiser, batches, options, epoch):
        seen.append(options[2])
        return original(model, optimiser, batches, options, epoch)

    monkeypatch.setattr(train, "_train_epoch", spy)
    fit(tiny_vae(), *digits, max_epochs=6, kl_weight=2.0, warmup=4)
    assert seen == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
