"""vaelib: the small, tested library behind the vaebook chapters.

Models follow one contract: ``prior()`` returns P(Z) (event shape ``(d,)``) and
``likelihood(z)`` returns P(X|Z=z) (batch ``z.shape[:-1]``, event ``(D,)``). An
approximate posterior ``q`` is a torch ``Distribution`` with batch ``(N,)``,
event ``(d,)``.

One module per concept: ``distributions`` (Gaussians, KL registrations),
``models`` (the contract and Part I's models), ``estimators`` (Monte Carlo),
``theory`` (closed-form variances), ``quadrature``, ``laplace``,
``gauss_hermite`` and ``legendre`` (numerical integration), ``data`` (the
digits), ``nets`` (encoders, decoders, VAE), ``train`` (fit), ``linear`` (the
linear VAE and probabilistic PCA), ``cvae`` (the conditional VAE),
``fit_q`` (the best Q per data point), ``flows`` (a normalising-flow
posterior, one flow per data point), ``diagnostics`` (of importance
weights), ``rate`` (rate, distortion, active units), ``autoregressive`` (a
Gaussian that sees the pixels before each one), ``checks``, ``show``
(numbers and figures in the prose), ``live`` (the live figure of the web
page).
Importing vaelib only registers two KL pairs with ``torch.distributions``; it
changes nothing else process-wide."""

from .checks import check_close, check_markov
from .cvae import CVAE, join_image, one_hot, split_image
from .data import binarize, binarize_stochastic, load_digits
from .distributions import (
    as_mvn,
    diagonal_normal,
    gaussian_params,
    gaussian_proposal,
)
from .diagnostics import ess, pareto_khat
from .estimators import (
    elbo,
    iwae,
    log_importance_weights,
    log_px_is,
    log_px_naive,
)
from .fit_q import PosteriorPoints, best_q, posterior_points
from .flows import FlowPosterior, flow_parameters
from .gauss_hermite import expected_log_likelihood, log_px_prior_gh
from .linear import (
    LinearVAE,
    ppca_active_units,
    ppca_kl_per_dimension,
    ppca_mle,
    sample_covariance_eigh,
)
from .models import (
    LatentVariableModel,
    LinearGaussian,
    NonlinearGaussian,
    log_joint,
)
from .nets import VAE
from .rate import active_units, kl_per_dimension, rate_distortion
from .autoregressive import AutoregressiveNormal
from .laplace import laplace_approximation
from .quadrature import kl_to_posterior_quad, log_posterior_grid, log_px_quad
from .legendre import log_px_legendre
from .live import live_identity
from .theory import (
    gaussian_is_log_second_moment,
    naive_log_samples_needed,
    naive_log_second_moment,
    naive_samples_needed_scaling,
)
from .show import (
    density_contours,
    expected_grey_levels,
    glue_numbers,
    mean_se,
    power_of_ten,
    scientific,
    show_digits,
)
from .train import History, fit

__all__ = [
    "AutoregressiveNormal",
    "CVAE",
    "FlowPosterior",
    "PosteriorPoints",
    "History",
    "LatentVariableModel",
    "LinearGaussian",
    "LinearVAE",
    "NonlinearGaussian",
    "VAE",
    "active_units",
    "as_mvn",
    "best_q",
    "binarize",
    "binarize_stochastic",
    "check_close",
    "check_markov",
    "density_contours",
    "diagonal_normal",
    "elbo",
    "ess",
    "expected_grey_levels",
    "expected_log_likelihood",
    "fit",
    "flow_parameters",
    "gaussian_is_log_second_moment",
    "gaussian_params",
    "gaussian_proposal",
    "glue_numbers",
    "iwae",
    "join_image",
    "kl_per_dimension",
    "kl_to_posterior_quad",
    "laplace_approximation",
    "live_identity",
    "load_digits",
    "log_importance_weights",
    "log_joint",
    "log_posterior_grid",
    "log_px_is",
    "log_px_legendre",
    "log_px_naive",
    "log_px_prior_gh",
    "log_px_quad",
    "mean_se",
    "naive_log_samples_needed",
    "naive_log_second_moment",
    "naive_samples_needed_scaling",
    "one_hot",
    "pareto_khat",
    "posterior_points",
    "rate_distortion",
    "power_of_ten",
    "ppca_active_units",
    "ppca_kl_per_dimension",
    "ppca_mle",
    "sample_covariance_eigh",
    "scientific",
    "show_digits",
    "split_image",
]
