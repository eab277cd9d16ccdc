"""Gradient of the PEtab objective (negative log-likelihood) by forward sensitivities.

For measurement ``k`` with simulation ``y_k`` and noise ``sigma_k`` (both expressions of the
model state, model parameters, placeholders and parameter-table parameters),

    d llh / d q = sum_k  (d llh_k / d y_k) (d y_k / d q) + (d llh_k / d sigma_k) (d sigma_k / d q)

with, for ``r = (h(m) - h(y)) / sigma`` and ``h' = 1, 1/y, 1/(y ln 10)`` (lin, log, log10),

* normal:  ``d llh/dy = r h'(y) / sigma``,        ``d llh/dsigma = (r^2 - 1) / sigma``;
* Laplace: ``d llh/dy = sign(r) h'(y) / sigma``,  ``d llh/dsigma = (|r| - 1) / sigma``.

``d y / d q`` chains the partial derivatives of the observable (after substituting assignment
rules and constant initial assignments) through the state sensitivities
(:mod:`.sensitivity`) and through the identity maps q -> model parameter, q -> condition
override, q -> placeholder.  A parameter that a condition overrides with a number has zero
sensitivity in that condition.  The gradient with respect to ``x`` on the parameter scales
multiplies by ``dq/dx = 1, q, q ln 10`` (lin, log, log10).  The objective gradient is
``-d llh / dx``.

Refused: preequilibration, estimated compartment sizes, and whatever the sensitivity system
refuses (:mod:`.sensitivity`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedFeatureError
from ..model.expr import ZERO, Expr, diff, evaluate, symbols
from .petab_objective import log_likelihood_terms, residuals
from .petab_problem import PetabProblem, _is_missing, _split_overrides
from .sensitivity import SensitivityModel

__all__ = ["MeasurementSensitivities", "PetabGradient", "petab_gradient"]


def _hprime(y: np.ndarray, scale: Sequence[str]) -> np.ndarray:
    """``h'(y)`` of the observable transformations (1, 1/y, 1/(y ln 10))."""
    out = np.ones_like(y)
    sc = np.asarray(scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(sc == "log", 1.0 / y, out)
        out = np.where(sc == "log10", 1.0 / (y * math.log(10.0)), out)
    return out


@dataclass(frozen=True)
class MeasurementSensitivities:
    """Per-measurement simulations ``y``, noise ``sigma`` and their derivatives with respect to
    the estimated parameters ``x`` on their parameter scales (rows in measurement-table order).

    With ``r = (h(m) - h(y)) / sigma``:

    * :meth:`residuals` is ``r``; :meth:`residual_jacobian` is
      ``dr/dx = -(h'(y) dy/dx + r dsigma/dx) / sigma``;
    * :meth:`gradient` is ``d(-llh)/dx`` (formulas in the module docstring);
    * :meth:`fim` is the Fisher information of the measurement model,
      ``sum_k a_k g_k g_k^T + b_k s_k s_k^T`` with ``g_k = h'(y_k) dy_k/dx / sigma_k`` and
      ``s_k = dsigma_k/dx / sigma_k``, where ``(a, b) = (1, 2)`` for normal and ``(1, 1)``
      for Laplace noise (the information of a location and of a scale parameter).
    """

    x: np.ndarray
    parameter_ids: tuple[str, ...]
    measurement: np.ndarray
    simulation: np.ndarray
    sigma: np.ndarray
    dsim_dx: np.ndarray
    dsigma_dx: np.ndarray
    scale: tuple[str, ...]
    distribution: tuple[str, ...]
    observable_ids: tuple[str, ...]
    condition_ids: tuple[str, ...]
    dataset_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.measurement)

    def _terms(self) -> tuple[np.ndarray, np.ndarray]:
        r = np.empty(len(self))
        hp = _hprime(self.simulation, self.scale)
        for sc in set(self.scale):
            sel = np.asarray(self.scale) == sc
            r[sel] = residuals(self.measurement[sel], self.simulation[sel], self.sigma[sel], sc)
        return r, hp

    @property
    def llh(self) -> float:
        """Log-likelihood of all measurements."""
        total = 0.0
        key = list(zip(self.scale, self.distribution, strict=True))
        for sc, dist in set(key):
            sel = np.array([k == (sc, dist) for k in key])
            total += float(
                np.sum(
                    log_likelihood_terms(
                        self.measurement[sel], self.simulation[sel], self.sigma[sel], sc, dist
                    )
                )
            )
        return total

    @property
    def chi2(self) -> float:
        return float(np.sum(self.residuals() ** 2))

    def residuals(self) -> np.ndarray:
        """``r = (h(m) - h(y)) / sigma``."""
        return self._terms()[0]

    def residual_jacobian(self) -> np.ndarray:
        """``dr/dx``, shape ``(measurements, parameters)``."""
        r, hp = self._terms()
        out: np.ndarray = (
            -(hp[:, None] * self.dsim_dx + r[:, None] * self.dsigma_dx) / (self.sigma[:, None])
        )
        return out

    def gradient(self) -> np.ndarray:
        """``d(-llh)/dx``."""
        r, hp = self._terms()
        lap = np.asarray(self.distribution) == "laplace"
        dly = np.where(lap, np.sign(r), r) * hp / self.sigma
        dls = np.where(lap, np.abs(r) - 1.0, r * r - 1.0) / self.sigma
        out: np.ndarray = -(dly @ self.dsim_dx + dls @ self.dsigma_dx)
        return out

    def fim(self) -> np.ndarray:
        """Fisher information matrix (see the class docstring)."""
        _, hp = self._terms()
        g = hp[:, None] * self.dsim_dx / self.sigma[:, None]
        s = self.dsigma_dx / self.sigma[:, None]
        b = np.where(np.asarray(self.distribution) == "laplace", 1.0, 2.0)
        out: np.ndarray = g.T @ g + (b[:, None] * s).T @ s
        return out

    def subset(self, rows: np.ndarray) -> MeasurementSensitivities:
        """The measurements selected by a boolean mask or index array."""
        idx = np.arange(len(self))[rows]
        pick = lambda t: tuple(t[i] for i in idx)  # noqa: E731
        return MeasurementSensitivities(
            x=self.x,
            parameter_ids=self.parameter_ids,
            measurement=self.measurement[idx],
            simulation=self.simulation[idx],
            sigma=self.sigma[idx],
            dsim_dx=self.dsim_dx[idx],
            dsigma_dx=self.dsigma_dx[idx],
            scale=pick(self.scale),
            distribution=pick(self.distribution),
            observable_ids=pick(self.observable_ids),
            condition_ids=pick(self.condition_ids),
            dataset_ids=pick(self.dataset_ids),
        )


class PetabGradient:
    """Objective (``-llh``) and its gradient for a :class:`PetabProblem`."""

    def __init__(self, problem: PetabProblem):
        self.problem = problem
        mdf = problem.problem.measurement_df
        if "preequilibrationConditionId" in mdf.columns and not all(
            _is_missing(v) for v in mdf["preequilibrationConditionId"]
        ):
            raise UnsupportedFeatureError(
                "gradients of PEtab problems with preequilibration",
                element="preequilibrationConditionId",
                source=problem._file("measurement"),
            )
        net = problem.network
        est = problem.estimated_ids
        for q in est:
            if net.kind_of(q) == "compartment":
                raise UnsupportedFeatureError(
                    "gradient with respect to a compartment size", element=q, source=problem.source
                )
        # Model symbols that an estimated parameter can reach: itself, or a condition column.
        targets: set[str] = {q for q in est if net.kind_of(q) in ("parameter", "species")}
        cdf = problem.problem.condition_df
        for col in cdf.columns if cdf is not None else ():
            if col == "conditionName":
                continue
            for v in cdf[col]:
                if isinstance(v, str) and v.strip() in est:
                    if net.kind_of(str(col)) == "compartment":
                        raise UnsupportedFeatureError(
                            "gradient with respect to a compartment size",
                            element=str(col),
                            source=problem._file("condition"),
                        )
                    targets.add(str(col))
        self.targets = sorted(targets)
        given = set(problem._model_parameter_values(problem.nominal))
        if cdf is not None:
            given |= {str(c) for c in cdf.columns if c != "conditionName"}
        self.sens = SensitivityModel(net, self.targets, given=given)
        self._obs: dict[str, tuple[Expr, Expr]] = {
            oid: (self.sens.expand(f), self.sens.expand(nf))
            for oid, (f, nf, _, _) in problem._observables.items()
        }

    def _condition_sources(self, cid: str) -> dict[str, str | None]:
        """Condition column -> the parameter-table id it is set to (None for numbers)."""
        row = self.problem.problem.condition_df.loc[cid]
        out: dict[str, str | None] = {}
        for col, v in row.items():
            col = str(col)
            if col == "conditionName" or _is_missing(v):
                continue
            if isinstance(v, str):
                try:
                    float(v)
                    out[col] = None
                except ValueError:
                    out[col] = v.strip()
            elif not math.isnan(float(v)):
                out[col] = None
        return out

    def gradient(self, x: Sequence[float] | np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """``(nllh, d nllh / dx)`` at ``x`` (estimated parameters on their scales)."""
        ms = self.measurement_sensitivities(x)
        return -ms.llh, ms.gradient()

    def measurement_sensitivities(
        self, x: Sequence[float] | np.ndarray | None = None
    ) -> MeasurementSensitivities:
        """Simulations, noise and their derivatives with respect to ``x`` for every
        measurement (measurement-table order) at ``x`` (default: nominal values)."""
        pb = self.problem
        if x is None:
            x = pb.x_nominal
        xa = np.asarray(x, dtype=np.float64).copy()
        pars = pb.parameter_values(xa)
        est = pb.estimated_ids
        qidx = {q: i for i, q in enumerate(est)}
        mdf = pb.problem.measurement_df.reset_index(drop=True)
        n_m, n_q = len(mdf), len(est)
        sim = np.full(n_m, np.nan)
        sig = np.full(n_m, np.nan)
        dy_all = np.zeros((n_m, n_q))
        ds_all = np.zeros((n_m, n_q))
        scales: list[str] = [""] * n_m
        dists: list[str] = [""] * n_m
        states = self.sens.states
        sidx = {s: i for i, s in enumerate(states)}
        tidx = {t: j for j, t in enumerate(self.targets)}
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(mdf["simulationConditionId"]):
            groups.setdefault(str(c), []).append(i)
        times_all = mdf["time"].to_numpy(dtype=np.float64)
        meas_all = mdf["measurement"].to_numpy(dtype=np.float64)
        for cid, rows in groups.items():
            base = pb._model_parameter_values(pars)
            p_sim, s_sim = pb._condition_values(cid, pars)
            srcs = self._condition_sources(cid)
            values = {**base, **p_sim, **s_sim}
            # d(model symbol)/dq for this condition
            dmdq: dict[str, dict[int, float]] = {}
            for t in self.targets:
                if t in srcs:
                    q = srcs[t]
                    dmdq[t] = {qidx[q]: 1.0} if q is not None and q in qidx else {}
                else:
                    dmdq[t] = {qidx[t]: 1.0} if t in qidx else {}
            t = times_all[rows]
            grid = np.unique(t)
            if grid[0] > 0.0:
                grid = np.concatenate([[0.0], grid])
            sol = self.sens.solve(grid, values, rtol=pb.rtol, atol=pb.atol)
            # state sensitivities with respect to the estimated parameters: (time, state, q)
            tm = np.zeros((len(self.targets), n_q))
            for tname, d in dmdq.items():
                for qi, v in d.items():
                    tm[tidx[tname], qi] = v
            sq = sol.s @ tm
            env_base: dict[str, float] = dict(pars)
            env_base.update(p_sim)
            env_base.update(values)
            for j, i in enumerate(rows):
                k = int(np.searchsorted(grid, t[j]))
                row = mdf.iloc[i]
                oid = str(row["observableId"])
                f, nf = self._obs[oid]
                _, _, scale, dist = pb._observables[oid]
                env = dict(env_base)
                for n, s in enumerate(states):
                    env[s] = float(sol.x[k, n])
                direct: dict[str, dict[int, float]] = {}
                for kind in ("observable", "noise"):
                    col = f"{kind}Parameters"
                    ovr = _split_overrides(row[col]) if col in mdf.columns else []
                    for n_ovr, ov in enumerate(ovr, start=1):
                        name = f"{kind}Parameter{n_ovr}_{oid}"
                        env[name] = pb._resolve(ov, pars, "measurement")
                        direct[name] = {qidx[ov]: 1.0} if isinstance(ov, str) and ov in qidx else {}
                tj = float(t[j])
                y = evaluate(f, env, time=tj)
                env[oid] = y
                nf_full = _subst_observable(nf, oid, f)
                sim[i] = y
                sig[i] = evaluate(nf_full, env, time=tj)
                dy_all[i] = self._total(f, env, tj, k, sq, sidx, srcs, direct, qidx, n_q)
                ds_all[i] = self._total(nf_full, env, tj, k, sq, sidx, srcs, direct, qidx, n_q)
                scales[i], dists[i] = scale, dist
        dqdx = np.array(
            [
                1.0
                if pb.parameter_scales[q] == "lin"
                else pars[q] * (1.0 if pb.parameter_scales[q] == "log" else math.log(10.0))
                for q in est
            ]
        )
        ds_col = mdf["datasetId"] if "datasetId" in mdf.columns else None
        return MeasurementSensitivities(
            x=xa,
            parameter_ids=tuple(est),
            measurement=meas_all.copy(),
            simulation=sim,
            sigma=sig,
            dsim_dx=dy_all * dqdx,
            dsigma_dx=ds_all * dqdx,
            scale=tuple(scales),
            distribution=tuple(dists),
            observable_ids=tuple(str(v) for v in mdf["observableId"]),
            condition_ids=tuple(str(v) for v in mdf["simulationConditionId"]),
            dataset_ids=tuple(
                "" if ds_col is None or _is_missing(v) else str(v)
                for v in (ds_col if ds_col is not None else [None] * n_m)
            ),
        )

    def _total(
        self,
        e: Expr,
        env: dict[str, float],
        t: float,
        k: int,
        sq: np.ndarray,
        sidx: dict[str, int],
        srcs: dict[str, str | None],
        direct: dict[str, dict[int, float]],
        qidx: dict[str, int],
        n: int,
    ) -> np.ndarray:
        """d e / dq (linear q) at time index ``k``."""
        out = np.zeros(n)
        for sym in symbols(e):
            d = diff(e, sym)
            if d == ZERO:
                continue
            if sym in sidx:
                out += evaluate(d, env, time=t) * sq[k, sidx[sym]]
                continue
            if sym in direct:
                dq = direct[sym]
            elif sym in srcs:
                q = srcs[sym]
                dq = {qidx[q]: 1.0} if q is not None and q in qidx else {}
            else:
                dq = {qidx[sym]: 1.0} if sym in qidx else {}
            if dq:
                v = evaluate(d, env, time=t)
                for qi, w in dq.items():
                    out[qi] += v * w
        return out


def _subst_observable(nf: Expr, oid: str, f: Expr) -> Expr:
    from ..model.expr import substitute

    return substitute(nf, {oid: f}) if oid in symbols(nf) else nf


def petab_gradient(
    problem: PetabProblem, x: Sequence[float] | np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """``(nllh, d nllh / dx)`` of ``problem`` at ``x`` (default: nominal values)."""
    return PetabGradient(problem).gradient(x)
