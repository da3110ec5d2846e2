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
linear VAE and probabilistic PCA), ``checks``. Importing vaelib only registers
two KL pairs with ``torch.distributions``; it changes nothing else
process-wide."""

from .checks import check_close
from .data import binarize, binarize_stochastic, load_digits
from .distributions import (
    as_mvn,
    diagonal_normal,
    gaussian_params,
    gaussian_proposal,
)
from .estimators import (
    elbo,
    ess,
    iwae,
    log_importance_weights,
    log_px_is,
    log_px_naive,
)
from .gauss_hermite import expected_log_likelihood, log_px_prior_gh
from .linear import (
    LinearVAE,
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
from .laplace import laplace_approximation
from .quadrature import kl_to_posterior_quad, log_posterior_grid, log_px_quad
from .legendre import log_px_legendre
from .theory import (
    gaussian_is_log_second_moment,
    naive_log_samples_needed,
    naive_log_second_moment,
    naive_samples_needed_scaling,
)
from .show import density_contours, glue_numbers, power_of_ten, scientific
from .train import History, fit

__all__ = [
    "History",
    "LatentVariableModel",
    "LinearGaussian",
    "LinearVAE",
    "NonlinearGaussian",
    "VAE",
    "as_mvn",
    "binarize",
    "binarize_stochastic",
    "check_close",
    "density_contours",
    "diagonal_normal",
    "elbo",
    "ess",
    "expected_log_likelihood",
    "fit",
    "gaussian_is_log_second_moment",
    "gaussian_params",
    "gaussian_proposal",
    "glue_numbers",
    "iwae",
    "kl_to_posterior_quad",
    "laplace_approximation",
    "load_digits",
    "log_importance_weights",
    "log_joint",
    "log_posterior_grid",
    "log_px_is",
    "log_px_legendre",
    "log_px_naive",
    "log_px_prior_gh",
    "log_px_quad",
    "naive_log_samples_needed",
    "naive_log_second_moment",
    "naive_samples_needed_scaling",
    "power_of_ten",
    "ppca_kl_per_dimension",
    "ppca_mle",
    "sample_covariance_eigh",
    "scientific",
]
