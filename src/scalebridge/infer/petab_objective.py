"""Log-likelihood of PEtab measurements (PEtab v1 conventions).

For a measurement ``m`` with simulated observable ``y`` and noise parameter ``sigma`` on an
observable transformation ``h`` (``lin``: h(x) = x, ``log``: h(x) = ln x, ``log10``:
h(x) = log10 x) the residual is ``r = (h(m) - h(y)) / sigma`` and the log-likelihood of the
measurement is

* ``normal``:  ``-1/2 ln(2 pi sigma^2) - 1/2 r^2 - ln J(m)``
* ``laplace``: ``-ln(2 sigma) - |r| - ln J(m)``

with the Jacobian ``J(m) = |h'(m)|^-1`` of the transformation at the measurement
(``J = 1``, ``m`` and ``m ln 10`` for lin, log and log10), so that the density is one of the
untransformed measurement.  ``chi2 = sum r^2`` for every noise distribution.  The PEtab
objective is the negative log-likelihood ``-llh``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError, UnsupportedFeatureError

TRANSFORMATIONS = ("lin", "log", "log10")
DISTRIBUTIONS = ("normal", "laplace")


def transform(x: np.ndarray, scale: str) -> np.ndarray:
    """``h(x)`` for an observable transformation (``lin``, ``log``, ``log10``)."""
    x = np.asarray(x, dtype=np.float64)
    if scale == "lin":
        return x
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "log":
            return np.log(x)
        if scale == "log10":
            return np.log10(x)
    raise UnsupportedFeatureError(f"observable transformation '{scale}'")


def log_jacobian(m: np.ndarray, scale: str) -> np.ndarray:
    """``ln J(m)``: ln of ``|h'(m)|^-1`` (0, ln m, ln(m ln 10) for lin, log, log10)."""
    m = np.asarray(m, dtype=np.float64)
    if scale == "lin":
        return np.zeros_like(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "log":
            return np.log(m)
        if scale == "log10":
            return np.log(m * math.log(10.0))
    raise UnsupportedFeatureError(f"observable transformation '{scale}'")


def residuals(
    measurement: np.ndarray, simulation: np.ndarray, sigma: np.ndarray, scale: str
) -> np.ndarray:
    """``(h(m) - h(y)) / sigma`` elementwise."""
    return (transform(measurement, scale) - transform(simulation, scale)) / np.asarray(
        sigma, dtype=np.float64
    )


def log_likelihood_terms(
    measurement: np.ndarray,
    simulation: np.ndarray,
    sigma: np.ndarray,
    scale: str,
    distribution: str,
) -> np.ndarray:
    """Per-measurement log-likelihoods (see the module docstring)."""
    m = np.asarray(measurement, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    if np.any(~(s > 0)):
        raise ModelError(f"noise parameters must be positive, got {s[~(s > 0)][0]!r}")
    r = residuals(m, simulation, s, scale)
    lj = log_jacobian(m, scale)
    if distribution == "normal":
        out: np.ndarray = -0.5 * np.log(2.0 * math.pi * s**2) - 0.5 * r**2 - lj
    elif distribution == "laplace":
        out = -np.log(2.0 * s) - np.abs(r) - lj
    else:
        raise UnsupportedFeatureError(f"noise distribution '{distribution}'")
    return out


def chi2_terms(
    measurement: np.ndarray, simulation: np.ndarray, sigma: np.ndarray, scale: str
) -> np.ndarray:
    """Per-measurement ``r^2``."""
    r = residuals(measurement, simulation, sigma, scale)
    out: np.ndarray = r**2
    return out
