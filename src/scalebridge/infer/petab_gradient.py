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

import numpy as np

from ..errors import UnsupportedFeatureError
from ..model.expr import ZERO, Expr, diff, evaluate, symbols
from .petab_objective import log_likelihood_terms, residuals
from .petab_problem import PetabProblem, _is_missing, _split_overrides
from .sensitivity import SensitivityModel

__all__ = ["PetabGradient", "petab_gradient"]


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
        pb = self.problem
        pars = pb.parameter_values(x)
        est = pb.estimated_ids
        qidx = {q: i for i, q in enumerate(est)}
        mdf = pb.problem.measurement_df.reset_index(drop=True)
        states = self.sens.states
        sidx = {s: i for i, s in enumerate(states)}
        tidx = {t: j for j, t in enumerate(self.targets)}
        grad = np.zeros(len(est))
        llh = 0.0
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
            tm = np.zeros((len(self.targets), len(est)))
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
                sigma = evaluate(nf_full, env, time=tj)
                dy = self._total(f, env, tj, k, sq, sidx, srcs, direct, qidx, len(est))
                ds = self._total(nf_full, env, tj, k, sq, sidx, srcs, direct, qidx, len(est))
                mv, yv, sv = (np.array([v]) for v in (float(meas_all[i]), y, sigma))
                llh += float(log_likelihood_terms(mv, yv, sv, scale, dist)[0])
                r = float(residuals(mv, yv, sv, scale)[0])
                # h'(y) of the observable transformation h
                if scale == "lin":
                    hp = 1.0
                elif scale == "log":
                    hp = 1.0 / y
                else:
                    hp = 1.0 / (y * math.log(10.0))
                if dist == "normal":
                    dly, dls = r * hp / sigma, (r * r - 1.0) / sigma
                else:
                    dly, dls = float(np.sign(r)) * hp / sigma, (abs(r) - 1.0) / sigma
                grad += dly * dy + dls * ds
        dqdx = np.array(
            [
                1.0
                if pb.parameter_scales[q] == "lin"
                else pars[q] * (1.0 if pb.parameter_scales[q] == "log" else math.log(10.0))
                for q in est
            ]
        )
        return -llh, -grad * dqdx

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
