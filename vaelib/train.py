"""``fit``: train a model's parameters by maximising a lower bound on log P(x).

**Units.** Every bound here is in nats per data point: log P(x|z) is *summed*
over the D pixels of an image (it is the log-density of the whole image), and
the per-image bounds are *averaged* over the images of a batch (the training
loss is minus that mean) or of a whole split (the history). Multiply by N for a
split's total; divide by D (and log 2) for bits per pixel.

Introduced in Chapter 6.
"""

import math
import os
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from . import _validate
from .estimators import elbo, iwae
from .rate import kl_per_dimension

OBJECTIVES = ("elbo", "iwae")


@dataclass
class History:
    """What :func:`fit` did, one entry per epoch: ``train`` (the mean of the
    training objective over the epoch's batches, taken while the parameters
    moved), ``valid`` (the validation bound at the end of the epoch; NaN
    without validation data), both in nats per data point, and ``seconds``
    since the start. ``best_epoch`` is the epoch whose parameters the model
    holds on return."""

    epoch: list = field(default_factory=list)
    train: list = field(default_factory=list)
    valid: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    best_epoch: int = 0


def _bound(model, x, objective, k, n_draws=1, kl_weight=1.0, free_bits=0.0):
    """The per-data-point bound ``(N,)`` through :mod:`vaelib.estimators`: the
    ELBO (``n_draws`` draws of z, analytic KL) or the IWAE bound L_k
    (``n_draws`` draws of k samples each). With ``kl_weight`` β ≠ 1 or
    ``free_bits`` λ > 0, the ELBO's KL term is replaced by
    β Σᵤ max(λ, KLᵤ), KLᵤ the KL of latent coordinate u averaged over the
    batch (:func:`~vaelib.rate.kl_per_dimension`): a number shared by the
    batch's rows, so only the batch mean of the result is meaningful."""
    q = model.posterior(x)
    if objective == "iwae":
        return iwae(model, q, x, k, n_draws)
    value = elbo(model, q, x, n_draws)
    if kl_weight == 1 and free_bits == 0:
        return value
    kl = kl_per_dimension(q, model.prior())  # (N, d)
    if free_bits:
        penalty = kl.mean(0).clamp_min(free_bits).sum()
    else:
        penalty = kl.sum(-1)
    return value + kl.sum(-1) - kl_weight * penalty


def _check_options(
    objective,
    k,
    max_seconds,
    max_epochs,
    batch_size,
    lr,
    lr_patience,
    patience,
    valid_draws,
    has_valid,
    kl_weight,
    warmup,
    free_bits,
):
    _validate.choice(objective, "objective", OBJECTIVES)
    for value, name in [(kl_weight, "kl_weight"), (free_bits, "free_bits")]:
        if isinstance(value, bool) or not (
            isinstance(value, (int, float)) and 0 <= value < math.inf
        ):
            raise ValueError(
                f"{name}: expected a finite number >= 0, got {value!r}"
            )
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: expected an integer >= 0, got {warmup!r}")
    if objective != "elbo" and (kl_weight != 1 or warmup or free_bits):
        raise ValueError(
            f"objective: kl_weight, warmup and free_bits weight the ELBO's "
            f"KL term; got objective={objective!r}"
        )
    _validate.count(k, "k")
    if objective == "elbo" and k != 1:
        raise ValueError(
            f"k: the ELBO uses k = 1 (for k > 1 use objective='iwae'), got {k}"
        )
    if max_seconds is not None:
        _validate.positive(max_seconds, "max_seconds")
    if max_epochs is not None:
        _validate.count(max_epochs, "max_epochs")
    if max_seconds is None and max_epochs is None and not has_valid:
        raise ValueError(
            "max_epochs: without x_valid (no early stopping) give max_epochs "
            "or max_seconds"
        )
    _validate.count(batch_size, "batch_size")
    _validate.positive(lr, "lr")
    _validate.count(lr_patience, "lr_patience")
    _validate.count(patience, "patience")
    _validate.count(valid_draws, "valid_draws")


def fit(
    model,
    x_train,
    x_valid=None,
    *,
    objective="elbo",
    k=1,
    max_seconds=None,
    max_epochs=None,
    seed=0,
    batch_size=64,
    lr=3e-3,
    lr_patience=10,
    patience=30,
    valid_draws=1,
    kl_weight=1.0,
    warmup=0,
    free_bits=0.0,
    progress=None,
):
    """Train ``model`` (an ``nn.Module`` following the model contract, with
    ``posterior(x)``, e.g. :class:`vaelib.nets.VAE`) in place, and return its
    :class:`History`.

    Each step maximises the mean over a shuffled batch of ``batch_size`` of the
    bound, by Adam with step size ``lr``, halved whenever the validation bound
    has not reached
    a new best for ``lr_patience`` epochs:
    ``objective="elbo"``: ELBO = E_Q[log P(x|z)] − KL(Q(Z|x) ‖ P(Z)), one
    reparameterised z per data point; ``"iwae"``: L_k = E[log 1/k Σᵢ w(zᵢ)]
    with k samples (:func:`vaelib.estimators.iwae`). Units: nats per data point
    (module docstring).

    The defaults are the book's digits recipe (``benchmarks/README.md``).

    **The KL term** (Chapter 11): ``kl_weight`` β trains on
    E_Q[log P(x|z)] − β KL(Q(Z|x) ‖ P(Z)) (the β-VAE objective; β = 1 is the
    ELBO); ``warmup`` W > 0 raises the weight linearly from 0 in epoch 1 to
    β in epoch W + 1 (KL warm-up); ``free_bits`` λ > 0 charges each latent
    coordinate at least λ nats, β Σᵤ max(λ, KLᵤ) with KLᵤ averaged over the
    batch (Kingma et al. 2016, one group per coordinate). The validation bound
    that early stopping watches is the β-weighted one, without warm-up or
    free bits, and ``History.train`` records the objective trained on (with
    free bits, not the ELBO). ``warmup`` counts epochs: with ``max_epochs`` ≤
    W the full weight is never reached. They need ``objective="elbo"`` and a
    diagonal Gaussian Q and prior.

    **Early stopping.** After each epoch the same bound (``valid_draws`` draws
    averaged) is computed on ``x_valid`` without gradients and with the same
    random numbers every epoch, so epochs compare; training stops after
    ``patience`` epochs without a new best, and the best epoch's parameters are
    put back. Without ``x_valid`` the last epoch's parameters are kept.

    **Budget.** ``max_epochs`` and/or ``max_seconds`` (no new epoch is started
    that would, at the last epoch's pace, end after ``max_seconds``).

    **Reproducible.** All randomness (shuffling, the draws of z, dropout) comes
    from ``seed``, inside ``torch.random.fork_rng``: the same seed gives the
    same parameters whatever the global RNG state, which is left as it was. (A
    time budget can stop at a different epoch on a slower machine.)

    ``progress``: show a ``tqdm`` bar over epochs; ``None`` shows it when
    someone is watching (standard error is a terminal, or a Jupyter kernel runs
    the code) unless the environment sets ``VAEBOOK_PROGRESS=0``, as the test
    suite and ``make execute`` do so that stored chapter outputs and nbval stay
    free of bars.

    Raises ``ValueError`` naming the argument for bad data (NaN, wrong width,
    outside the likelihood's support, an empty training set) or options, and
    ``FloatingPointError`` naming the epoch if the loss becomes NaN or
    infinite."""
    if not isinstance(model, nn.Module) or not callable(
        getattr(model, "posterior", None)
    ):
        raise ValueError(
            f"model: expected an nn.Module with posterior(x), got "
            f"{type(model).__name__}"
        )
    x_train = _validate.data(model, x_train, "x_train")
    x_valid = (
        None if x_valid is None else _validate.data(model, x_valid, "x_valid")
    )
    _check_options(
        objective,
        k,
        max_seconds,
        max_epochs,
        batch_size,
        lr,
        lr_patience,
        patience,
        valid_draws,
        x_valid is not None,
        kl_weight,
        warmup,
        free_bits,
    )
    show = _interactive() if progress is None else bool(progress)
    history = History()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    # halve the step size when the validation bound stalls (0.6 nats on valid,
    # README)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser,
        "max",
        factor=0.5,
        patience=lr_patience,
        threshold=0.0,
        threshold_mode="abs",
    )
    stopping = _EarlyStopping(patience)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        bar = _bar(max_epochs) if show else None
        while max_epochs is None or len(history.epoch) < max_epochs:
            epoch, epoch_start = len(history.epoch) + 1, time.perf_counter()
            batches = torch.randperm(
                x_train.shape[0], generator=shuffle
            ).split(batch_size)
            weight = kl_weight * (
                min(1, (epoch - 1) / warmup) if warmup else 1
            )
            train = _train_epoch(
                model,
                optimiser,
                [x_train[idx] for idx in batches],
                (objective, k, weight, free_bits),
                epoch,
            )
            valid = (
                math.nan
                if x_valid is None
                else _valid_bound(
                    model,
                    x_valid,
                    (objective, k, kl_weight),
                    valid_draws,
                    seed,
                )
            )
            if x_valid is not None and not math.isfinite(valid):
                raise FloatingPointError(
                    f"fit: the validation bound became {valid} in epoch "
                    f"{epoch}"
                )
            now = time.perf_counter()
            for key, value in zip(
                ("epoch", "train", "valid", "seconds"),
                (epoch, train, valid, now - start),
            ):
                getattr(history, key).append(value)
            if x_valid is not None:
                scheduler.step(valid)
            stop = stopping.update(model, valid, epoch)
            if bar is not None:
                bar.update()
                bar.set_postfix(
                    train=f"{train:.2f}",
                    valid=f"{valid:.2f}",
                    best=f"{stopping.best:.2f}",
                )
            if stop or (
                max_seconds is not None
                and now - start + (now - epoch_start) > max_seconds
            ):
                break
        if bar is not None:
            bar.close()
    history.best_epoch = stopping.restore(model)
    model.eval()
    return history


class _EarlyStopping:
    """The best validation bound so far, the parameters at that epoch, and how
    long since: ``update`` says when ``patience`` epochs have passed without a
    new best. Without validation data (NaN bounds) every epoch counts as the
    best."""

    def __init__(self, patience):
        self.patience, self.best, self.state, self.epoch, self.waited = (
            patience,
            -math.inf,
            None,
            0,
            0,
        )

    def update(self, model, valid, epoch):
        if math.isnan(valid):
            self.epoch = epoch
            return False
        if valid > self.best:
            self.best, self.epoch, self.waited = valid, epoch, 0
            self.state = {
                name: t.detach().clone()
                for name, t in model.state_dict().items()
            }
        else:
            self.waited += 1
        return self.waited >= self.patience

    def restore(self, model):
        """Put the best epoch's parameters back; returns that epoch."""
        if self.state is not None:
            model.load_state_dict(self.state)
        return self.epoch


def _train_epoch(model, optimiser, batches, options, epoch):
    """One pass over the batches; returns the mean bound per data point.
    ``options``: objective, k, KL weight and free bits for :func:`_bound`."""
    objective, k, kl_weight, free_bits = options
    model.train()
    total = n = 0
    for x in batches:
        bound = _bound(model, x, objective, k, 1, kl_weight, free_bits)
        loss = -bound.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"fit: the training loss became {loss.item()} in epoch {epoch}"
            )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total, n = total + bound.detach().sum().item(), n + x.shape[0]
    return total / n


def _valid_bound(model, x, options, n_draws, seed):
    """The mean validation bound, with the same random numbers at every
    call. ``options``: objective, k and KL weight."""
    objective, k, kl_weight = options
    model.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bound = _bound(model, x, objective, k, n_draws, kl_weight)
        return bound.mean().item()


def _interactive():
    if os.environ.get("VAEBOOK_PROGRESS") == "0":
        return False
    # a running Jupyter kernel, not merely an imported ipykernel (nbval imports
    # it)
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return sys.stderr.isatty() or getattr(shell, "kernel", None) is not None


def _bar(total):
    from tqdm import (
        tqdm,
    )  # text bar: works in a terminal and in Jupyter without ipywidgets

    return tqdm(total=total, unit="epoch", desc="fit")
