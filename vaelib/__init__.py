"""vaelib: the small, tested library behind the vaebook chapters.

Models follow one contract: ``prior()`` returns P(Z) (event shape ``(d,)``) and
``likelihood(z)`` returns P(X|Z=z) (batch ``z.shape[:-1]``, event ``(D,)``). An
approximate posterior ``q`` is a torch ``Distribution`` with batch ``(N,)``, event ``(d,)``.
"""

from . import _memory
from .checks import check_close
from .estimators import elbo, ess, iwae, log_importance_weights, log_px_is, log_px_naive
from .gauss_hermite import expected_log_likelihood
from .gaussian import as_mvn, diagonal_normal, gaussian_params, kl
from .importance import gaussian_is_log_second_moment, gaussian_proposal
from .joint import log_joint
from .linear_gaussian import LinearGaussian
from .naive import naive_log_samples_needed, naive_log_second_moment
from .nonlinear import NonlinearGaussian
from .quadrature import kl_to_posterior_quad, log_px_quad

_memory.keep_freed_memory()

__all__ = [
    "LinearGaussian",
    "NonlinearGaussian",
    "as_mvn",
    "check_close",
    "diagonal_normal",
    "elbo",
    "ess",
    "expected_log_likelihood",
    "gaussian_is_log_second_moment",
    "gaussian_params",
    "gaussian_proposal",
    "iwae",
    "kl",
    "kl_to_posterior_quad",
    "log_importance_weights",
    "log_joint",
    "log_px_is",
    "log_px_naive",
    "log_px_quad",
    "naive_log_samples_needed",
    "naive_log_second_moment",
]
