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

Preequilibration: at the steady state ``x*`` of the preequilibration condition,
``f(x*, p) = 0`` gives ``J S* = -df/dp``; where the model has conservation laws ``L`` (rows
with ``L f(x) = 0`` for every ``x``, found as the common left null space of ``J`` at ``x*`` and
at two perturbed states), ``J`` is singular and the conserved totals fix the rest:
``L S* = L S(0)``, with ``S(0)`` the initial sensitivities of the preequilibration start.  The
stacked system ``[J; L] S* = [-df/dp; L S(0)]`` has full column rank exactly when the steady
state is isolated within its conservation class; otherwise the state and sensitivities of the
preequilibration condition are integrated to a long time until they stop changing (a robust
fallback).  The main simulation starts from ``x*``: its sensitivities are
``S(t) = F(t) + Phi(t) S_q(0)`` with ``F`` the sensitivities forced by the parameters (started
at zero), ``Phi = dx(t)/dx(0)`` (sensitivities to every state's initial value) and ``S_q(0)``
the carried-over ``S*`` (rows of species that the simulation condition re-sets take their own
initial sensitivities).

Refused: estimated compartment sizes, and whatever the sensitivity system refuses (events,
naming the event; see :mod:`.sensitivity`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SolverError, UnsupportedFeatureError
from ..model.expr import ZERO, Expr, diff, evaluate, substitute, symbols
from .petab_objective import log_likelihood_terms, residuals
from .petab_problem import PetabProblem, _Group, _is_missing, vector_evaluate
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
    """Objective (``-llh``) and its gradient for a :class:`PetabProblem`.

    Build once and reuse: the sensitivity system, its compiled form and the derivatives of
    the observables are prepared here; each call integrates one augmented system per
    (preequilibration, simulation) condition.
    """

    def __init__(self, problem: PetabProblem):
        self.problem = problem
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
        self._plan = problem._plan()
        self.has_preeq = any(g.preeq is not None for g in self._plan)
        given = set(problem._model_parameter_values(problem.nominal))
        if cdf is not None:
            given |= {str(c) for c in cdf.columns if c != "conditionName"}
        columns = list(self.targets)
        if self.has_preeq:
            # sensitivities to every state's initial value (Phi) carry S* into the simulation
            probe = SensitivityModel(net, [], given=given)
            columns += [x for x in probe.states if x not in targets]
            given |= set(probe.states)
        self.sens = SensitivityModel(net, columns, given=given)
        self.columns = columns
        self._qidx = {q: i for i, q in enumerate(est)}
        sidx = {s: i for i, s in enumerate(self.sens.states)}
        self._sidx = sidx
        # per observable: (f, noise with the observable substituted), each with its partial
        # derivatives by symbol (computed once)
        self._obs: dict[str, tuple[_Derived, _Derived]] = {}
        for oid, (f, nf, _, _) in problem._observables.items():
            fe = self.sens.expand(f)
            nfe = self.sens.expand(substitute(nf, {oid: f}) if oid in symbols(nf) else nf)
            self._obs[oid] = (_Derived(fe), _Derived(nfe))
        self._laws: dict[str, np.ndarray] = {}

    def _sources(self, cid: str) -> dict[str, str | None]:
        """Condition column -> the estimated parameter it is set to (None: a number or a
        parameter that is not estimated)."""
        out: dict[str, str | None] = {}
        for col, v, _ in self.problem._condition_row(cid):
            out[col] = v if isinstance(v, str) and v in self._qidx else None
        return out

    def _dq(self, sym: str, srcs: dict[str, str | None]) -> int:
        """Index of the estimated parameter that model symbol ``sym`` equals (-1: none)."""
        if sym in srcs:
            q = srcs[sym]
            return self._qidx[q] if q is not None else -1
        return self._qidx.get(sym, -1)

    def _target_map(self, srcs: dict[str, str | None]) -> np.ndarray:
        """d(target)/d(q): targets x estimated parameters."""
        tm = np.zeros((len(self.targets), len(self._qidx)))
        for j, t in enumerate(self.targets):
            qi = self._dq(t, srcs)
            if qi >= 0:
                tm[j, qi] = 1.0
        return tm

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
        mdf = pb.problem.measurement_df
        n_m, n_q = len(mdf), len(est)
        sim = np.full(n_m, np.nan)
        sig = np.full(n_m, np.nan)
        dy_all = np.zeros((n_m, n_q))
        ds_all = np.zeros((n_m, n_q))
        for g in self._plan:
            self._group(g, pars, sim, sig, dy_all, ds_all)
        dqdx = np.array(
            [
                1.0
                if pb.parameter_scales[q] == "lin"
                else pars[q] * (1.0 if pb.parameter_scales[q] == "log" else math.log(10.0))
                for q in est
            ]
        )
        static = self.__dict__.get("_static")
        if static is None:
            obs = pb._observables
            oids = tuple(str(v) for v in mdf["observableId"])
            ds_col = mdf["datasetId"] if "datasetId" in mdf.columns else None
            static = self._static = dict(
                measurement=mdf["measurement"].to_numpy(dtype=np.float64),
                scale=tuple(obs[o][2] for o in oids),
                distribution=tuple(obs[o][3] for o in oids),
                observable_ids=oids,
                condition_ids=tuple(str(v) for v in mdf["simulationConditionId"]),
                dataset_ids=tuple(
                    "" if ds_col is None or _is_missing(v) else str(v)
                    for v in (ds_col if ds_col is not None else [None] * n_m)
                ),
            )
        return MeasurementSensitivities(
            x=xa,
            parameter_ids=tuple(est),
            measurement=static["measurement"].copy(),
            simulation=sim,
            sigma=sig,
            dsim_dx=dy_all * dqdx,
            dsigma_dx=ds_all * dqdx,
            scale=static["scale"],
            distribution=static["distribution"],
            observable_ids=static["observable_ids"],
            condition_ids=static["condition_ids"],
            dataset_ids=static["dataset_ids"],
        )

    # ------------------------------------------------------------------ one condition

    def _group(
        self,
        g: _Group,
        pars: dict[str, float],
        sim: np.ndarray,
        sig: np.ndarray,
        dy_all: np.ndarray,
        ds_all: np.ndarray,
    ) -> None:
        pb, sm = self.problem, self.sens
        n_q = len(self._qidx)
        base = pb._model_parameter_values(pars)
        p_sim, s_sim = pb._condition_values(g.condition, pars)
        srcs = self._sources(g.condition)
        tm = self._target_map(srcs)
        values = dict(base)
        if g.preeq is None:
            values.update(p_sim)
            values.update(s_sim)
            sol = sm.solve(g.grid, values, rtol=pb.rtol, atol=pb.atol)
            sq = sol.s @ tm  # (time, state, q)
        else:
            pre_srcs = self._sources(g.preeq)
            carried = pb._preequilibrate(g.preeq, pars)
            s_star = self._steady_sensitivities(g.preeq, pars, carried, pre_srcs)
            # non-state symbols the preequilibration set keep its mapping unless re-set
            for k, v in pre_srcs.items():
                if k not in srcs and k not in self._sidx:
                    srcs[k] = v
            tm = self._target_map(srcs)
            values.update({k: v for k, v in carried.items() if k in self._sidx})
            values.update({k: v for k, v in carried.items() if k not in sm._subst})
            values.update(p_sim)
            values.update(s_sim)
            n = len(sm.states)
            cols = self.columns
            s0 = np.zeros((n, len(cols)))
            phi_col = np.array([cols.index(x) for x in sm.states])
            s0[np.arange(n), phi_col] = 1.0
            sol = sm.solve(g.grid, values, rtol=pb.rtol, atol=pb.atol, s0=s0)
            forcing = np.array([t not in self._sidx for t in self.targets])
            F = sol.s[:, :, : len(self.targets)][:, :, forcing] @ tm[forcing]
            sq0 = s_star.copy()
            for i, x in enumerate(sm.states):
                if x in s_sim:  # re-set by the simulation condition
                    sq0[i] = 0.0
                    qi = self._dq(x, srcs)
                    if qi >= 0:
                        sq0[i, qi] = 1.0
            sq = F + sol.s[:, :, phi_col] @ sq0
        env_base: dict[str, Any] = dict(pars)
        env_base.update(p_sim)
        env_base.update(values)
        for b in g.blocks:
            k = g.k[b.pos]
            nr = len(k)
            t = g.times[b.pos]
            env = dict(env_base)
            for name, i in self._sidx.items():
                env[name] = sol.x[k, i]
            ovr = pb._override_values(b, pars)
            env.update(ovr)
            f, nf = self._obs[b.observable]
            y = vector_evaluate(f.expr, env, nr, t)
            env[b.observable] = y
            sim[b.rows] = y
            sig[b.rows] = vector_evaluate(nf.expr, env, nr, t)
            for d, dst in ((f, dy_all), (nf, ds_all)):
                out = np.zeros((nr, n_q))
                for sym, de in d.partials:
                    val = vector_evaluate(de, env, nr, t)
                    if sym in self._sidx:
                        out += val[:, None] * sq[k, self._sidx[sym], :]
                    elif sym in b.overrides:
                        qs = np.array(
                            [self._qidx.get(v, -1) if isinstance(v, str) else -1
                             for v in b.overrides[sym]]
                        )  # fmt: skip
                        hit = qs >= 0
                        np.add.at(out, (np.nonzero(hit)[0], qs[hit]), val[hit])
                    else:
                        qi = self._dq(sym, srcs)
                        if qi >= 0:
                            out[:, qi] += val
                dst[b.rows] = out

    # ------------------------------------------------------------------ preequilibration

    def _steady_sensitivities(
        self,
        preeq: str,
        pars: dict[str, float],
        x_star: dict[str, float],
        pre_srcs: dict[str, str | None],
    ) -> np.ndarray:
        """``dx*/dq`` (states x estimated parameters) at the preequilibration steady state."""
        pb, sm = self.problem, self.sens
        base = pb._model_parameter_values(pars)
        p_pre, s_pre = pb._condition_values(preeq, pars)
        pre_values = {**base, **p_pre, **s_pre}
        env = sm._env(pre_values)
        _, s_init = sm._initial(env, pre_values)
        nt = len(self.targets)
        s_init = s_init[:, :nt]  # the target columns (Phi columns are not needed here)
        tm_pre = self._target_map(pre_srcs)
        xs = np.array([x_star[x] for x in sm.states])
        J, fp = self._jacobians(env, xs)
        L = self._laws.get(preeq)
        if L is None:
            L = self._laws[preeq] = self._conservation_laws(env, xs)
        M = np.vstack([J, L])
        rhs = np.vstack([-fp, L @ s_init])
        sv = np.linalg.svd(M, compute_uv=False) if M.size else np.zeros(0)
        n = len(sm.states)
        if n == 0:
            return np.zeros((0, len(self._qidx)))
        if sv[-1] > 1e-10 * sv[0]:
            S, *_ = np.linalg.lstsq(M, rhs, rcond=None)
            if np.allclose(M @ S, rhs, rtol=1e-8, atol=1e-10 * (1.0 + np.abs(rhs).max())):
                return np.asarray(S @ tm_pre)
        return self._relaxed_sensitivities(pre_values, s_init) @ tm_pre

    def _jacobians(self, env: dict[str, float], xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``J = df/dx`` and ``df/dp`` (target columns) at state ``xs``."""
        sm = self.sens
        entries = self.__dict__.get("_jac_entries")
        if entries is None:
            sidx = self._sidx
            tidx = {t: j for j, t in enumerate(self.targets)}
            entries = self._jac_entries = (
                [(sidx[i], sidx[k], e) for (i, k), e in sm.jac.items() if e != ZERO],
                [(sidx[i], tidx[p], e) for (i, p), e in sm.dfdp.items() if e != ZERO and p in tidx],
            )
        e2 = dict(env)
        for i, x in enumerate(sm.states):
            e2[x] = float(xs[i])
        n = len(sm.states)
        J = np.zeros((n, n))
        fp = np.zeros((n, len(self.targets)))
        for i, k, e in entries[0]:
            J[i, k] = evaluate(e, e2)
        for i, j, e in entries[1]:
            fp[i, j] = evaluate(e, e2)
        return J, fp

    def _conservation_laws(self, env: dict[str, float], xs: np.ndarray) -> np.ndarray:
        """Rows ``l`` with ``l J(x) = 0`` at ``xs`` and at two perturbed states (conservation
        laws: ``l f`` is constant in time for every state)."""
        rng = np.random.default_rng(0)
        blocks = [self._jacobians(env, xs)[0]]
        for _ in range(2):
            xp = xs * (1.0 + 0.3 * rng.uniform(-1.0, 1.0, xs.size)) + 0.1 * rng.uniform(
                0.0, 1.0, xs.size
            ) * (np.abs(xs).max() + 1.0)
            blocks.append(self._jacobians(env, xp)[0])
        A = np.hstack(blocks)
        U, sv, _ = np.linalg.svd(A)
        tol = max(A.shape) * np.finfo(float).eps * (sv[0] if sv.size else 0.0) * 1e3
        rank = int(np.sum(sv > tol))
        return np.asarray(U[:, rank:].T)

    def _relaxed_sensitivities(
        self, pre_values: dict[str, float], s_init: np.ndarray
    ) -> np.ndarray:
        """Fallback: integrate state and sensitivities of the preequilibration condition until
        the sensitivities stop changing (relative 1e-8 between successive decades)."""
        pb, sm = self.problem, self.sens
        nt = len(self.targets)
        s0 = np.zeros((len(sm.states), len(self.columns)))
        s0[:, :nt] = s_init
        grid = np.concatenate([[0.0], np.logspace(-2, 10, 25)])
        sol = sm.solve(grid, pre_values, rtol=pb.rtol, atol=pb.atol, s0=s0)
        S = sol.s[:, :, :nt]
        for k in range(2, len(grid)):
            d = np.abs(S[k] - S[k - 1]).max()
            if d <= 1e-8 * (np.abs(S[k]).max() + 1e-12):
                return np.asarray(S[k])
        raise SolverError(
            "the sensitivities of the preequilibration did not settle by t = 1e10",
            time=float(grid[-1]),
        )


class _Derived:
    """An expression and its non-zero partial derivatives by symbol."""

    def __init__(self, expr: Expr):
        self.expr = expr
        self.partials = [(s, d) for s in sorted(symbols(expr)) if (d := diff(expr, s)) != ZERO]


def petab_gradient(
    problem: PetabProblem, x: Sequence[float] | np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """``(nllh, d nllh / dx)`` of ``problem`` at ``x`` (default: nominal values)."""
    return PetabGradient(problem).gradient(x)
