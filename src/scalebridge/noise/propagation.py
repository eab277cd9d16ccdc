r"""Noise propagation: from a molecule count to a cell phenotype, and from cells to a tissue.

Cell phenotype ``Y = g(P)``
--------------------------
``g`` is an expression in one variable (the count ``P``) and, optionally, parameters, written as
text and parsed by the one whitelist parser (:func:`scalebridge.model.parse.parse_expr`); its
derivatives come from :func:`scalebridge.model.expr.diff`.  With ``m = E[P]``, ``s^2 = Var P``
and the central moments ``mu_3``, ``mu_4`` of ``P``:

* the delta method (first order):  ``E[Y] ~ g(m)``,  ``Var Y ~ g'(m)^2 s^2``;
* its leading corrections, from the Taylor expansion of ``g`` about ``m`` keeping every term of
  the next order when ``g`` varies on the scale of ``m`` and the central moments of ``P`` grow
  like those of a Poisson or negative-binomial count (``mu_k = O(m^(k/2))``):
  ``E[Y] - g(m) ~ g''(m) s^2 / 2`` and
  ``Var Y - g'(m)^2 s^2 ~ g' g'' mu_3 + g''^2 (mu_4 - s^4) / 4 + g' g''' mu_4 / 3`` at ``m``
  (both exact when ``g`` is a polynomial of degree <= 2);
* exact transformation: ``E[g(P)]`` and ``Var g(P)`` of the samples themselves (an SSA or CLE
  ensemble at one time; sample variance with ``n - 1``, with standard errors
  ``sd/sqrt(n)`` and ``sqrt((m4 - s^4 (n-3)/(n-1)) / n)``), or of a distribution (an FSP
  marginal: ``sum_k p_k g(k)`` with ``p`` normalised -- the mass FSP lost is reported).

The report puts them side by side and gives the delta method's error (delta - exact), absolute
and relative, beside the predicted second-order error.  The delta method is exact for linear
``g``; its error grows with the curvature of ``g`` over the spread of ``P``.

Tissue averaging
----------------
A tissue property that averages ``N`` cells with per-cell variance ``s^2`` and pairwise
correlation ``rho`` between cells has

    Var(average) = s^2 / N                    (independent cells)
    Var(average) = s^2 (1 + (N - 1) rho) / N  (equicorrelated cells)

The equicorrelated covariance matrix is positive semi-definite only for
``-1/(N-1) <= rho <= 1``; outside that range the request is refused.  With ``rho > 0`` the
variance never falls below ``rho s^2`` however many cells are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._io import json_safe
from ..errors import ModelError, OptionError
from ..model.expr import Expr, diff, evaluate, symbols
from ..model.parse import parse_expr

__all__ = [
    "Phenotype",
    "PropagationReport",
    "TissueReport",
    "ensemble_samples",
    "fsp_marginal",
    "propagate",
    "tissue_average",
    "tissue_variance",
]


# =============================================================================================
# The phenotype map
# =============================================================================================
@dataclass(frozen=True)
class Phenotype:
    """``Y = g(P)``: an expression in one variable, parameters given numerically.

    Build with :meth:`parse`.  ``derivative(k)`` is the k-th derivative (an expression tree);
    calling the phenotype evaluates it element-wise (exactly as the scalar reference evaluator
    :func:`scalebridge.model.expr.evaluate`, once per distinct value).
    """

    expression: Expr
    variable: str
    params: Mapping[str, float] = field(default_factory=dict)
    text: str = ""

    @classmethod
    def parse(
        cls,
        g: str | Expr,
        *,
        variable: str | None = None,
        params: Mapping[str, float] | None = None,
    ) -> Phenotype:
        """Parse ``g``; ``variable`` names the count (by default the one symbol of ``g`` that
        ``params`` does not give)."""
        params = {str(k): float(v) for k, v in (params or {}).items()}
        expr = parse_expr(g, element="phenotype") if isinstance(g, str) else g
        free = sorted(symbols(expr) - set(params))
        if variable is None:
            if len(free) != 1:
                raise ModelError(
                    f"the phenotype {str(expr)!r} must have exactly one free variable (the "
                    f"count); it has {', '.join(free) or 'none'}: give variable= and params= "
                    "for the others",
                    element="phenotype",
                )
            variable = free[0]
        else:
            missing = [s for s in free if s != variable]
            if missing:
                raise ModelError(
                    f"no value for {', '.join(map(repr, missing))} in the phenotype "
                    f"{str(expr)!r}: give params=",
                    element="phenotype",
                )
        if variable in params:
            raise OptionError(f"'{variable}' is the variable; it cannot also be a parameter")
        return cls(expr, variable, params, g if isinstance(g, str) else str(expr))

    def derivative(self, order: int = 1) -> Expr:
        e = self.expression
        for _ in range(order):
            e = diff(e, self.variable)
        return e

    def _at(self, e: Expr, p: float) -> float:
        return evaluate(e, {**self.params, self.variable: float(p)})

    def __call__(self, p: Any) -> np.ndarray:
        x = np.asarray(p, dtype=np.float64)
        values, inverse = np.unique(x.ravel(), return_inverse=True)
        out = np.array([self._at(self.expression, v) for v in values], dtype=np.float64)
        return out[inverse].reshape(x.shape)

    def value(self, p: float) -> float:
        return self._at(self.expression, p)

    def slope(self, p: float, order: int = 1) -> float:
        return self._at(self.derivative(order), p)


# =============================================================================================
# Report
# =============================================================================================
@dataclass(frozen=True)
class PropagationReport:
    """Delta method against the exact transformation (module docstring).

    ``source``: ``"samples"``, ``"distribution"`` or ``"moments"`` (delta method only).
    ``p_*``: moments of ``P``; ``delta_*``: the delta method; ``second_order_*``: with the
    second-order corrections; ``exact_*``: of the transformed samples or distribution (``None``
    for ``"moments"``), ``exact_*_se`` their sampling standard errors (0 for a distribution).
    """

    phenotype: str
    variable: str
    source: str
    n: int
    p_mean: float
    p_var: float
    p_mu3: float | None
    p_mu4: float | None
    g_at_mean: float
    slope: float
    curvature: float
    delta_mean: float
    delta_var: float
    second_order_mean: float
    second_order_var: float | None
    exact_mean: float | None = None
    exact_var: float | None = None
    exact_mean_se: float | None = None
    exact_var_se: float | None = None
    lost_mass: float = 0.0

    @property
    def mean_error(self) -> float | None:
        """Delta-method mean minus exact mean."""
        return None if self.exact_mean is None else self.delta_mean - self.exact_mean

    @property
    def var_error(self) -> float | None:
        """Delta-method variance minus exact variance."""
        return None if self.exact_var is None else self.delta_var - self.exact_var

    @property
    def predicted_mean_error(self) -> float:
        """The leading error of the delta-method mean, ``-g''(m) s^2 / 2``."""
        return self.delta_mean - self.second_order_mean

    @property
    def predicted_var_error(self) -> float | None:
        """The leading error of the delta-method variance,
        ``-(g' g'' mu_3 + g''^2 (mu_4 - s^4) / 4 + g' g''' mu_4 / 3)`` at ``m``."""
        if self.second_order_var is None:
            return None
        return self.delta_var - self.second_order_var

    @staticmethod
    def _rel(err: float | None, ref: float | None) -> float | None:
        if err is None or ref is None or ref == 0:
            return None
        return err / abs(ref)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "phenotype": self.phenotype,
            "variable": self.variable,
            "source": self.source,
            "n": self.n,
            "count": {
                "mean": self.p_mean,
                "variance": self.p_var,
                "mu3": self.p_mu3,
                "mu4": self.p_mu4,
            },
            "g": {"value": self.g_at_mean, "slope": self.slope, "curvature": self.curvature},
            "delta": {"mean": self.delta_mean, "variance": self.delta_var},
            "second_order": {"mean": self.second_order_mean, "variance": self.second_order_var},
            "exact": {
                "mean": self.exact_mean,
                "variance": self.exact_var,
                "mean_se": self.exact_mean_se,
                "variance_se": self.exact_var_se,
            },
            "delta_error": {
                "mean": self.mean_error,
                "variance": self.var_error,
                "mean_relative": self._rel(self.mean_error, self.exact_mean),
                "variance_relative": self._rel(self.var_error, self.exact_var),
                "mean_predicted": self.predicted_mean_error,
                "variance_predicted": self.predicted_var_error,
            },
            "lost_mass": self.lost_mass,
        }
        return json_safe(d)

    def summary(self) -> str:
        f = _fmt
        lines = [
            f"phenotype Y = {self.phenotype} of {self.variable} ({self.source}, n = {self.n})",
            f"  {self.variable}: mean {f(self.p_mean)}, variance {f(self.p_var)}",
            f"  {'':<14}{'E[Y]':>14}{'Var Y':>14}",
            f"  {'delta method':<14}{f(self.delta_mean):>14}{f(self.delta_var):>14}",
            f"  {'2nd order':<14}{f(self.second_order_mean):>14}{f(self.second_order_var):>14}",
        ]
        if self.exact_mean is not None:
            lines.append(f"  {'exact':<14}{f(self.exact_mean):>14}{f(self.exact_var):>14}")
            if self.source == "samples":
                lines.append(f"  {'  (s.e.)':<14}{f(self.exact_mean_se):>14}"
                             f"{f(self.exact_var_se):>14}")  # fmt: skip
            rm = self._rel(self.mean_error, self.exact_mean)
            rv = self._rel(self.var_error, self.exact_var)
            lines.append(
                f"  delta-method error: mean {f(self.mean_error)} ({_pct(rm)}), variance "
                f"{f(self.var_error)} ({_pct(rv)}); predicted second-order: mean "
                f"{f(self.predicted_mean_error)}, variance {f(self.predicted_var_error)}"
            )
        if self.lost_mass > 0:
            lines.append(f"  probability outside the distribution given: {self.lost_mass:.3g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.3g} %"


# =============================================================================================
# Propagation
# =============================================================================================
def propagate(
    g: str | Expr | Phenotype,
    *,
    samples: Sequence[float] | np.ndarray | None = None,
    distribution: tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray] | None = None,
    mean: float | None = None,
    var: float | None = None,
    variable: str | None = None,
    params: Mapping[str, float] | None = None,
) -> PropagationReport:
    """Propagate the noise of a count ``P`` through ``Y = g(P)`` (module docstring).

    Give exactly one of ``samples`` (values of ``P``, e.g. an SSA ensemble at one time:
    :func:`ensemble_samples`), ``distribution`` (``(values, probabilities)``, e.g. an FSP
    marginal: :func:`fsp_marginal`) or ``mean`` and ``var`` (delta method only).
    """
    ph = g if isinstance(g, Phenotype) else Phenotype.parse(g, variable=variable, params=params)
    given = [x is not None for x in (samples, distribution)] + [mean is not None or var is not None]
    if sum(given) != 1:
        raise OptionError("give exactly one of samples=, distribution= or mean= and var=")
    lost = 0.0
    mu3 = mu4 = None
    exact_mean = exact_var = mean_se = var_se = None
    if samples is not None:
        x = np.asarray(samples, dtype=np.float64).ravel()
        if x.size < 2:
            raise OptionError("samples= needs at least two values")
        if not np.all(np.isfinite(x)):
            raise OptionError("samples= contains non-finite values")
        source, n = "samples", int(x.size)
        m = float(x.mean())
        dx = x - m
        s2 = float(dx @ dx) / (n - 1)
        mu3, mu4 = float(np.mean(dx**3)), float(np.mean(dx**4))
        y = ph(x)
        if not np.all(np.isfinite(y)):
            raise OptionError(f"the phenotype {ph.text!r} is not finite at some sample values")
        exact_mean = float(y.mean())
        dy = y - exact_mean
        exact_var = float(dy @ dy) / (n - 1)
        m4y = float(np.mean(dy**4))
        mean_se = math.sqrt(exact_var / n)
        var_se = math.sqrt(max(m4y - exact_var**2 * (n - 3) / (n - 1), 0.0) / n)
    elif distribution is not None:
        vals = np.asarray(distribution[0], dtype=np.float64).ravel()
        prob = np.asarray(distribution[1], dtype=np.float64).ravel()
        if vals.shape != prob.shape or vals.size == 0:
            raise OptionError("distribution= must be (values, probabilities) of equal length")
        if np.any(prob < 0) or not np.all(np.isfinite(prob)) or not np.all(np.isfinite(vals)):
            raise OptionError("distribution= needs finite values and non-negative probabilities")
        total = float(prob.sum())
        if not total > 0:
            raise OptionError("distribution= has no probability mass")
        lost = max(0.0, 1.0 - total)
        w = prob / total
        source, n = "distribution", int(np.count_nonzero(w))
        m = float(w @ vals)
        dx = vals - m
        s2 = float(w @ dx**2)
        mu3, mu4 = float(w @ dx**3), float(w @ dx**4)
        keep = w > 0
        y = ph(vals[keep])
        if not np.all(np.isfinite(y)):
            raise OptionError(f"the phenotype {ph.text!r} is not finite on the distribution")
        exact_mean = float(w[keep] @ y)
        exact_var = float(w[keep] @ (y - exact_mean) ** 2)
        mean_se = var_se = 0.0
    else:
        if mean is None or var is None:
            raise OptionError("give both mean= and var=")
        if not (math.isfinite(mean) and math.isfinite(var) and var >= 0):
            raise OptionError("mean= must be finite and var= finite and non-negative")
        source, n, m, s2 = "moments", 0, float(mean), float(var)
    g0, g1, g2 = ph.value(m), ph.slope(m, 1), ph.slope(m, 2)
    second_var = None
    if mu3 is not None and mu4 is not None:
        g3 = ph.slope(m, 3)
        second_var = (g1 * g1 * s2 + g1 * g2 * mu3 + 0.25 * g2 * g2 * (mu4 - s2 * s2)
                      + g1 * g3 * mu4 / 3.0)  # fmt: skip
    return PropagationReport(
        phenotype=ph.text,
        variable=ph.variable,
        source=source,
        n=n,
        p_mean=m,
        p_var=s2,
        p_mu3=mu3,
        p_mu4=mu4,
        g_at_mean=g0,
        slope=g1,
        curvature=g2,
        delta_mean=g0,
        delta_var=g1 * g1 * s2,
        second_order_mean=g0 + 0.5 * g2 * s2,
        second_order_var=second_var,
        exact_mean=exact_mean,
        exact_var=exact_var,
        exact_mean_se=mean_se,
        exact_var_se=var_se,
        lost_mass=lost,
    )


def fsp_marginal(result: Any, species: str, time_index: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, probabilities)`` of ``species`` in an FSP result at output ``time_index``."""
    key = f"{species}-marginal"
    if key not in result.data:
        raise OptionError(f"the result has no marginal distribution of '{species}' (use fsp)")
    da = result.data[key]
    counts = np.asarray(result.data[f"{species}-count"].values, dtype=np.float64)
    return counts, np.asarray(da.values[time_index], dtype=np.float64)


def ensemble_samples(result: Any, species: str, time_index: int = -1) -> np.ndarray:
    """The values of ``species`` over the runs of an ensemble result at ``time_index``."""
    if species not in result.data:
        raise OptionError(f"the result has no variable '{species}'")
    da = result.data[species]
    if "run" not in da.dims:
        raise OptionError("the result is not an ensemble (no 'run' dimension)")
    return np.asarray(da.transpose("run", "time").values[:, time_index], dtype=np.float64)


# =============================================================================================
# Tissue averaging
# =============================================================================================
def _check_rho(rho: float, n_max: int) -> None:
    if not (math.isfinite(rho) and -1.0 <= rho <= 1.0):
        raise OptionError(f"the correlation between cells must be in [-1, 1], got {rho!r}")
    if n_max > 1 and rho < -1.0 / (n_max - 1):
        raise OptionError(
            f"a correlation of {rho:g} between every pair of {n_max} cells is impossible: the "
            f"covariance matrix is positive semi-definite only for rho >= -1/(N-1) = "
            f"{-1.0 / (n_max - 1):.4g}"
        )


def _counts(n_cells: int | Iterable[int]) -> np.ndarray:
    raw = [n_cells] if isinstance(n_cells, int | np.integer) else list(n_cells)
    arr = np.asarray(raw, dtype=np.float64)
    if (arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr))
            or np.any(arr != np.floor(arr)) or np.any(arr < 1)):  # fmt: skip
        raise OptionError(f"the numbers of cells must be positive integers, got {raw!r}")
    return arr.astype(np.int64)


def tissue_variance(cell_var: float, n_cells: int | Iterable[int], rho: float = 0.0) -> Any:
    """``cell_var (1 + (N - 1) rho) / N`` for each ``N`` (a float for one ``N``)."""
    if not (math.isfinite(cell_var) and cell_var >= 0):
        raise OptionError(f"the cell variance must be finite and non-negative, got {cell_var!r}")
    ns = _counts(n_cells)
    _check_rho(float(rho), int(ns.max()))
    v = cell_var * (1.0 + (ns - 1) * rho) / ns
    return float(v[0]) if isinstance(n_cells, int | np.integer) else v


@dataclass(frozen=True)
class TissueReport:
    """Variance of an ``N``-cell average against ``N`` (module docstring)."""

    cell_mean: float | None
    cell_var: float
    rho: float
    n_cells: np.ndarray
    variance: np.ndarray

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(self.variance)

    @property
    def cv(self) -> np.ndarray | None:
        if self.cell_mean is None or self.cell_mean == 0:
            return None
        return self.sd / abs(self.cell_mean)

    @property
    def floor(self) -> float:
        """``rho s^2``: the variance left with infinitely many cells (0 when independent)."""
        return max(self.rho, 0.0) * self.cell_var

    def least_cells(self, cv: float) -> int | None:
        """The least ``N`` with ``sd_N / |mean| <= cv``; None when correlation makes it
        unreachable (``rho s^2 >= (cv mean)^2``)."""
        if self.cell_mean is None or self.cell_mean == 0:
            raise OptionError("least_cells needs the cell mean")
        if not (cv > 0):
            raise OptionError(f"the tolerance must be positive, got {cv!r}")
        target = (cv * self.cell_mean) ** 2
        s2, rho = self.cell_var, self.rho
        if s2 == 0:
            return 1
        if target <= rho * s2:
            return None
        n = max(1, math.ceil(s2 * (1 - rho) / (target - rho * s2) * (1 - 1e-12)))
        while s2 * (1 + (n - 1) * rho) / n > target * (1 + 1e-12):
            n += 1
        return n

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "cell_mean": self.cell_mean,
            "cell_variance": self.cell_var,
            "rho": self.rho,
            "n_cells": [int(n) for n in self.n_cells],
            "variance": [float(v) for v in self.variance],
            "sd": [float(v) for v in self.sd],
            "cv": None if self.cv is None else [float(v) for v in self.cv],
            "variance_floor": self.floor,
        })  # fmt: skip

    def summary(self) -> str:
        head = "independent cells" if self.rho == 0 else f"correlation rho = {self.rho:g}"
        lines = [f"tissue average of N cells ({head}); cell variance {self.cell_var:.6g}"]
        cv = self.cv
        cv_head = f"  {'CV':>10}" if cv is not None else ""
        lines.append(f"  {'N':>8}  {'variance':>12}  {'sd':>12}{cv_head}")
        for k, n in enumerate(self.n_cells):
            row = f"  {int(n):>8}  {self.variance[k]:>12.6g}  {self.sd[k]:>12.6g}"
            if cv is not None:
                row += f"  {cv[k]:>10.4g}"
            lines.append(row)
        if self.rho > 0:
            lines.append(f"  variance floor (N -> infinity): rho s^2 = {self.floor:.6g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def tissue_average(
    cell_var: float | PropagationReport,
    n_cells: int | Iterable[int],
    *,
    rho: float = 0.0,
    cell_mean: float | None = None,
) -> TissueReport:
    """The variance of the average of ``n_cells`` cells (each ``N`` given), independent or with
    pairwise correlation ``rho``.  ``cell_var`` may be a :class:`PropagationReport` (its exact
    phenotype variance where known, else the delta method's; its mean likewise)."""
    if isinstance(cell_var, PropagationReport):
        rep = cell_var
        cell_var = rep.exact_var if rep.exact_var is not None else rep.delta_var
        if cell_mean is None:
            cell_mean = rep.exact_mean if rep.exact_mean is not None else rep.delta_mean
    ns = _counts(n_cells)
    v = tissue_variance(float(cell_var), ns, rho)
    return TissueReport(
        cell_mean=None if cell_mean is None else float(cell_mean),
        cell_var=float(cell_var),
        rho=float(rho),
        n_cells=ns,
        variance=np.asarray(v, dtype=np.float64),
    )
