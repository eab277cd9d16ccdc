"""Bounded local optimisation of the PEtab objective, shared by estimation and profiles.

The objective is ``nllh(x) = -llh(x)`` with ``x`` the estimated parameters on their parameter
scales; every evaluation goes through :meth:`PetabGradient.measurement_sensitivities`, which
gives the simulations, the noise and their derivatives in one forward-sensitivity solve (the
value, the residuals, the residual Jacobian, the gradient and the Fisher information all come
from that one solve, cached per ``x``).

Two optimizers, both from scipy, with fixed tolerances (:data:`TOL`):

* ``"least-squares"``: ``scipy.optimize.least_squares(method="trf")`` on the residuals
  ``r = (h(m) - h(y)) / sigma`` with Jacobian ``dr/dx``.  Exact for the objective only when
  every noise model is normal and no ``sigma`` depends on ``x``: then
  ``nllh = chi2 / 2 + const``.
* ``"trust-region"``: ``scipy.optimize.minimize(method="trust-constr")`` on ``nllh`` with the
  sensitivity gradient and the Fisher information as a Gauss-Newton approximation of the
  Hessian (the expected Hessian: exact at a perfect fit, positive semi-definite everywhere).
  Used when a ``sigma`` depends on ``x`` or the noise is Laplace.

A failed simulation (or noise <= 0) at a trial point is reported to the optimizer as a
non-finite value, which makes both optimizers shrink their trust region; a failure at the
starting point fails the start (:attr:`LocalFit.message`), never the whole run.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ScalebridgeError
from .petab_gradient import MeasurementSensitivities, PetabGradient
from .petab_problem import PetabProblem, to_scale

__all__ = ["OPTIMIZERS", "TOL", "CachedObjective", "LocalFit", "choose_optimizer", "local_fit",
           "scaled_bounds"]  # fmt: skip

OPTIMIZERS = ("least-squares", "trust-region")
# Fixed tolerances: relative change of the cost / of x, and the gradient norm.
TOL = {"ftol": 1e-10, "xtol": 1e-10, "gtol": 1e-8}
_FAILURES = (ScalebridgeError, ArithmeticError, ValueError, np.linalg.LinAlgError)


def scaled_bounds(problem: PetabProblem) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of the estimated parameters on their parameter scales."""
    pdf = problem.problem.parameter_df
    lo, hi = [], []
    for pid in problem.estimated_ids:
        scale = problem.parameter_scales[pid]
        pair = []
        for col in ("lowerBound", "upperBound"):
            v = float(pdf.loc[pid, col]) if col in pdf.columns else float("nan")
            if scale != "lin" and v <= 0.0:
                pair.append(-np.inf)
            else:
                pair.append(to_scale(v, scale) if np.isfinite(v) else v)
        lo.append(pair[0])
        hi.append(pair[1])
    return np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)


class CachedObjective:
    """``PetabGradient`` evaluations cached per ``x`` (the last few points), counting solves
    and remembering the last failure message."""

    def __init__(self, gradient: PetabGradient, keep: int = 4):
        self.gradient = gradient
        self.keep = keep
        self._cache: list[tuple[bytes, MeasurementSensitivities | None]] = []
        self.n_evaluations = 0
        self.last_error: str | None = None
        self.best: tuple[float, np.ndarray | None] = (np.inf, None)  # since reset_best()

    def reset_best(self) -> None:
        """Forget the best point seen (called at the start of every local fit)."""
        self.best = (np.inf, None)

    def at(self, x: np.ndarray) -> MeasurementSensitivities | None:
        """The measurement sensitivities at ``x``, or None when the evaluation failed."""
        key = np.asarray(x, dtype=np.float64).tobytes()
        for k, v in self._cache:
            if k == key:
                return v
        self.n_evaluations += 1
        ms: MeasurementSensitivities | None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                ms = self.gradient.measurement_sensitivities(np.array(x, dtype=np.float64))
                llh = ms.llh
            if not np.isfinite(llh):
                raise ArithmeticError(f"log-likelihood is {llh}")
        except _FAILURES as e:
            self.last_error = f"{type(e).__name__}: {e}"
            ms = None
        if ms is not None and -ms.llh < self.best[0]:
            self.best = (-ms.llh, np.array(x, dtype=np.float64))
        self._cache.append((key, ms))
        if len(self._cache) > self.keep:
            self._cache.pop(0)
        return ms

    def nllh(self, x: np.ndarray) -> float:
        ms = self.at(x)
        return float("nan") if ms is None else -ms.llh


def choose_optimizer(ms: MeasurementSensitivities, requested: str) -> tuple[str, str | None]:
    """(optimizer used, note) for a requested optimizer, given sensitivities at some point:
    least squares is exact only for normal noise with ``sigma`` independent of ``x``."""
    if requested not in OPTIMIZERS:
        from ..errors import OptionError

        raise OptionError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {requested!r}")
    if requested == "trust-region":
        return requested, None
    laplace = any(d == "laplace" for d in ms.distribution)
    sigma_x = bool(np.any(ms.dsigma_dx != 0.0))
    if laplace or sigma_x:
        why = "Laplace noise" if laplace else "noise parameters that depend on x"
        return "trust-region", f"least-squares is not the likelihood with {why}: used trust-region"
    return requested, None


@dataclass
class LocalFit:
    """One local optimisation: the final point, its objective and how it ended."""

    x: np.ndarray
    nllh: float
    chi2: float
    success: bool
    converged: bool
    message: str
    n_evaluations: int
    seconds: float


def local_fit(
    obj: CachedObjective,
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    optimizer: str,
    free: np.ndarray | None = None,
    max_nfev: int | None = None,
) -> LocalFit:
    """Minimise ``nllh`` from ``x0`` within ``[lower, upper]`` over the ``free`` entries of
    ``x`` (a boolean mask; the others stay at their ``x0`` values).

    ``success``: the optimizer reached a point (no failure at the start); ``converged``: it
    stopped on a tolerance, not on ``max_nfev`` or an error.
    """
    t0 = time.perf_counter()
    n0 = obj.n_evaluations
    x0 = np.clip(np.asarray(x0, dtype=np.float64), lower, upper)
    mask = np.ones(x0.size, dtype=bool) if free is None else np.asarray(free, dtype=bool)
    idx = np.flatnonzero(mask)

    def full(z: np.ndarray) -> np.ndarray:
        x = x0.copy()
        x[idx] = z
        return x

    def done(x: np.ndarray, converged: bool, message: str) -> LocalFit:
        ms = obj.at(x)
        # An interior-point or trust-region method may end a hair above a point it visited
        # (barrier term, last rejected step): report the best point evaluated.
        if obj.best[1] is not None and (ms is None or obj.best[0] < -ms.llh):
            x = obj.best[1]
            ms = obj.at(x)
        ok = ms is not None
        return LocalFit(
            x=x,
            nllh=-ms.llh if ms is not None else float("nan"),
            chi2=ms.chi2 if ms is not None else float("nan"),
            success=ok,
            converged=ok and converged,
            message=message if ok else f"failed at the final point: {obj.last_error}",
            n_evaluations=obj.n_evaluations - n0,
            seconds=time.perf_counter() - t0,
        )

    obj.reset_best()
    start = obj.at(x0)
    if start is None:
        return LocalFit(x0, float("nan"), float("nan"), False, False,
                        f"failed at the start: {obj.last_error}", obj.n_evaluations - n0,
                        time.perf_counter() - t0)  # fmt: skip
    if idx.size == 0:
        return done(x0, True, "no free parameters")
    lo, hi = lower[idx], upper[idx]
    z0 = x0[idx]
    # least_squares/trust-constr need lo < hi; a parameter pinned by its bounds stays put.
    if np.any(lo >= hi):
        raise ValueError("empty bounds for a free parameter")
    try:
        if optimizer == "least-squares":
            return _least_squares(obj, full, idx, z0, lo, hi, max_nfev, done)
        return _trust_region(obj, full, idx, z0, lo, hi, max_nfev, done)
    except _FAILURES as e:
        return LocalFit(x0, float("nan"), float("nan"), False, False,
                        f"optimizer failed: {type(e).__name__}: {e}", obj.n_evaluations - n0,
                        time.perf_counter() - t0)  # fmt: skip


def _least_squares(
    obj: CachedObjective,
    full: Any,
    idx: np.ndarray,
    z0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_nfev: int | None,
    done: Any,
) -> LocalFit:
    from scipy.optimize import least_squares

    n_res = len(obj.at(full(z0)) or [])

    def res(z: np.ndarray) -> np.ndarray:
        ms = obj.at(full(z))
        return np.full(n_res, np.nan) if ms is None else ms.residuals()

    def jac(z: np.ndarray) -> np.ndarray:
        ms = obj.at(full(z))
        if ms is None:  # only asked at accepted points, which evaluated
            raise ArithmeticError(obj.last_error or "evaluation failed")
        return ms.residual_jacobian()[:, idx]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sol = least_squares(res, z0, jac=jac, bounds=(lo, hi), method="trf",
                            max_nfev=max_nfev, x_scale="jac", **TOL)  # fmt: skip
    return done(full(sol.x), bool(sol.status > 0), str(sol.message))


def _trust_region(
    obj: CachedObjective,
    full: Any,
    idx: np.ndarray,
    z0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_nfev: int | None,
    done: Any,
) -> LocalFit:
    from scipy.optimize import Bounds, minimize

    def fun(z: np.ndarray) -> float:
        ms = obj.at(full(z))
        return float("inf") if ms is None else float(-ms.llh)

    def grad(z: np.ndarray) -> np.ndarray:
        ms = obj.at(full(z))
        return np.zeros(idx.size) if ms is None else ms.gradient()[idx]

    def hess(z: np.ndarray) -> np.ndarray:
        ms = obj.at(full(z))
        if ms is None:
            return np.eye(idx.size)
        h = ms.fim()[np.ix_(idx, idx)]
        return h + 1e-12 * max(1.0, float(np.max(np.abs(np.diag(h))))) * np.eye(idx.size)

    # Strictly inside the bounds: trust-constr's barrier method starts from an interior point.
    width = hi - lo
    pad = np.where(np.isfinite(width), 1e-9 * width, 0.0)
    z0 = np.clip(z0, lo + pad, hi - pad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "delta_grad == 0.0" and bound-infeasibility chatter
        sol = minimize(fun, z0, jac=grad, hess=hess, method="trust-constr",
                       bounds=Bounds(lo, hi, keep_feasible=True),
                       options={"maxiter": max_nfev or 1000, "gtol": TOL["gtol"],
                                "xtol": TOL["xtol"],
                                # a small barrier: the default (0.1) pulls the iterates
                                # far from an optimum near a bound
                                "initial_barrier_parameter": 1e-6})  # fmt: skip
    converged = bool(sol.status in (1, 2))
    return done(full(np.clip(sol.x, lo, hi)), converged, str(sol.message))
