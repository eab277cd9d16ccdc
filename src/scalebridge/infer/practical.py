"""Practical identifiability of a PEtab problem, dataset by dataset and for all data combined.

A multiscale problem holds datasets observed at different scales (the ``datasetId`` column of
the measurement table: a molecular assay, a cell-scale readout, ...) on one shared parameter
vector.  :func:`practical_identifiability` analyses each dataset alone and all of them together
(the *scopes*), and for each scope reports

* **Fisher information** (:func:`~scalebridge.infer.fim.fisher_information`): rank, condition
  number, the unseen directions named as combinations (``kon*koff``), the identifiable
  combinations (``koff/kon``) and Cramér–Rao intervals;
* **profile likelihoods** (:func:`~scalebridge.infer.profile.profile_likelihood`) and their
  confidence intervals.  The profiles start from a local fit of that scope's data (one start
  from ``x``, default the nominal values of the parameter table; ``fit=False`` profiles from
  ``x`` itself, which is right only when ``x`` is already that scope's optimum).  The Fisher
  information is evaluated at the same point;
* **structural identifiability** (:mod:`scalebridge.infer.structural`) of the same data, from
  the problem converted to the structural layer by :func:`structural_model` (below), with the
  measurements that would make a non-identifiable parameter identifiable
  (:func:`~scalebridge.infer.datasets.identifiability_across_datasets`).

Conversion to the structural layer (:func:`structural_model`)
---------------------------------------------------------------
Every simulation condition is one experiment.  The network's ODEs
(:func:`~scalebridge.infer.network.ode_model_from_network`) are copied once per condition that
has time-course data, states renamed ``<state>__<condition>``; in each copy, every symbol takes
its value in that condition: a condition-table number (the ligand level ``L``) becomes that
number (a known constant), a condition-table parameter id or an estimated parameter becomes the
unknown parameter, and everything else its nominal value.  Initial values are known (the
model's values, condition overrides or initial assignments), or expressions of estimated
parameters.  Each (observable, condition, overrides) of a dataset becomes one output, with
placeholders replaced by their overrides.  Noise parameters do not enter.

Measurements of a condition taken at one time only, at which the simulation (at ``x``) is at
equilibrium (``|dx_i/dt| * t <= 1e-6 * |x_i|`` for every state), are *equilibrium data*: the
output is the observable at the steady state, solved in closed form by sympy (the solution that
matches the simulated state), a function of the parameters only.  Observables that do not
depend on the state (a direct measurement of a parameter) are constant outputs.  Any other data
are treated as time courses: the structural analysis assumes the whole output trajectory is
observed, so for sparse snapshots its labels are optimistic (a note says so).

Refused with a note (structural labels then missing, the other analyses still run):
preequilibration, time-varying model inputs, steady states that sympy cannot solve uniquely
(conservation laws), and symbols the conversion cannot place.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, OptionError, ScalebridgeError, UnsupportedFeatureError
from ..model.expr import Expr, Num, Sym, evaluate, expand_functions, substitute, symbols
from ..model.odetext import OdeModel
from .fim import FimResult, fisher_information
from .petab_gradient import PetabGradient
from .petab_problem import PetabProblem, _is_missing, _split_overrides, unscale

__all__ = [
    "PracticalReport",
    "ScopeReport",
    "StructuralConversion",
    "practical_identifiability",
    "structural_model",
]

COMBINED = "combined"
EQUILIBRIUM_RTOL = 1e-6
STRUCTURAL_BUDGET = 2.0


# =============================================================================================
# Conversion to the structural layer
# =============================================================================================
@dataclass(frozen=True)
class StructuralConversion:
    """The structural model of a PEtab problem (see the module docstring).

    ``model``: an :class:`~scalebridge.model.odetext.OdeModel` with one output per
    (observable, condition, overrides); ``datasets``: dataset -> its output names;
    ``described``: output or state name -> what it is, for people
    (``"C_obs at equilibrium in condition eq_1"``); ``kinds``: (dataset, condition) ->
    ``"time course"`` | ``"equilibrium"`` | ``"constant"``; ``notes``: remarks."""

    model: OdeModel
    datasets: dict[str, list[str]]
    described: dict[str, str]
    kinds: dict[tuple[str, str], str]
    notes: tuple[str, ...] = ()


def _resolver(net: Any) -> Any:
    funcs = net.functions_table if net.functions else {}
    rule_of = {ar.variable: ar.math for ar in net.assignment_rules}

    def resolve(e: Expr) -> Expr:
        if funcs:
            e = expand_functions(e, funcs)
        for _ in range(100):
            rep = {s: rule_of[s] for s in symbols(e) if s in rule_of}
            if not rep:
                return e
            e = substitute(e, rep)
            if funcs:
                e = expand_functions(e, funcs)
        raise ModelError("assignment rules refer to each other in a cycle", source=net.source)

    return resolve


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def structural_model(
    problem: PetabProblem, x: Sequence[float] | np.ndarray | None = None
) -> StructuralConversion:
    """The PEtab problem as a structural-identifiability model (module docstring); ``x``
    (parameter scales; default nominal) is where equilibrium is checked."""
    from .network import ode_model_from_network

    pb = problem
    net = pb.network
    src = pb.source
    mdf = pb.problem.measurement_df.reset_index(drop=True)
    if "preequilibrationConditionId" in mdf.columns and not all(
        _is_missing(v) for v in mdf["preequilibrationConditionId"]
    ):
        raise UnsupportedFeatureError(
            "structural identifiability of PEtab problems with preequilibration",
            element="preequilibrationConditionId",
            source=src,
        )
    base = ode_model_from_network(net, outputs={"probe__": Num(0.0)})
    if base.inputs:
        raise UnsupportedFeatureError(
            "structural conversion of a model with time-varying inputs",
            element=base.inputs[0],
            source=src,
        )
    resolve = _resolver(net)
    est = list(pb.estimated_ids)
    pars = pb.parameter_values(x)
    cdf = pb.problem.condition_df
    states = list(base.states)
    notes: list[str] = []

    def value(name: str, cond: str) -> Expr:
        """The symbol ``name`` (not a state) in condition ``cond``."""
        if cdf is not None and name in cdf.columns and cond in cdf.index:
            v = cdf.loc[cond, name]
            if not _is_missing(v):
                if isinstance(v, str):
                    try:
                        return Num(float(v))
                    except ValueError:
                        pid = v.strip()
                        return Sym(pid) if pid in est else Num(pars[pid])
                if not math.isnan(float(v)):
                    return Num(float(v))
        if name in est:
            return Sym(name)
        if name in pars:
            return Num(pars[name])
        if name in base.known and base.known[name] is not None:
            return Num(float(base.known[name]))  # type: ignore[arg-type]
        p = net.parameter_map.get(name)
        if p is not None and p.value is not None:
            return Num(float(p.value))
        raise UnsupportedFeatureError(
            "a symbol without a value in the structural conversion", element=name, source=src
        )

    def in_condition(e: Expr, cond: str, state_map: Mapping[str, Expr]) -> Expr:
        rep: dict[str, Expr] = {}
        for s in symbols(e):
            rep[s] = state_map[s] if s in state_map else value(s, cond)
        return substitute(e, rep)

    def initial(s: str, cond: str) -> Expr:
        if cdf is not None and s in cdf.columns:
            v = cdf.loc[cond, s]
            if not _is_missing(v) and not (isinstance(v, float) and math.isnan(v)):
                return value(s, cond)
        ia = net.initial_assignment_map.get(s)
        if ia is not None:
            e = resolve(ia.math)
            if symbols(e) & set(states):
                raise UnsupportedFeatureError(
                    "an initial assignment that refers to other states", element=s, source=src
                )
            return in_condition(e, cond, {})
        sp = net.species_map.get(s)
        v0 = None
        if sp is not None:
            v0 = sp.initial_amount if sp.has_only_substance_units else sp.initial_concentration
        if v0 is None:
            raise UnsupportedFeatureError(
                "a state without an initial value in the structural conversion",
                element=s,
                source=src,
            )
        return Num(float(v0))

    # Observable expressions per measurement row (placeholders replaced).
    ds_col = "datasetId" if "datasetId" in mdf.columns else "observableId"
    rows: dict[tuple[str, str], list[tuple[str, Expr, float]]] = {}
    for _, row in mdf.iterrows():
        oid = str(row["observableId"])
        f = pb._observables[oid][0]
        rep: dict[str, Expr] = {}
        col = "observableParameters"
        ovr = _split_overrides(row[col]) if col in mdf.columns else []
        for n, ov in enumerate(ovr, start=1):
            if isinstance(ov, str):
                rep[f"observableParameter{n}_{oid}"] = Sym(ov) if ov in est else Num(pars[ov])
            else:
                rep[f"observableParameter{n}_{oid}"] = Num(ov)
        e = resolve(substitute(f, rep) if rep else f)
        key = (str(row[ds_col]), str(row["simulationConditionId"]))
        rows.setdefault(key, []).append((oid, e, float(row["time"])))

    # Classify each (dataset, condition).
    kinds: dict[tuple[str, str], str] = {}
    snapshot: list[str] = []
    for key, items in rows.items():
        times = {t for _, _, t in items}
        dynamic = any(symbols(e) & set(states) for _, e, _ in items)
        if not dynamic:
            kinds[key] = "constant"
        elif len(times) == 1 and _at_equilibrium(pb, base, key[1], times.pop(), pars, value):
            kinds[key] = "equilibrium"
        else:
            kinds[key] = "time course"
            if len({t for _, _, t in items}) < 3:
                snapshot.append(f"{key[0]}/{key[1]}")
    if snapshot:
        notes.append(
            "time courses with fewer than three time points ("
            + ", ".join(snapshot)
            + ") are treated as fully observed trajectories: the structural labels are "
            "optimistic for them"
        )

    # Steady states, solved once with symbolic condition values.
    steady: dict[str, dict[str, Expr]] = {}
    if any(k == "equilibrium" for k in kinds.values()):
        for cond in sorted({c for (_, c), k in kinds.items() if k == "equilibrium"}):
            steady[cond] = _steady_state(pb, base, cond, pars, value)

    equations: dict[str, Expr] = {}
    init: dict[str, float | Expr | None] = {}
    described: dict[str, str] = {}
    copies: dict[str, dict[str, Expr]] = {}
    for (_, cond), kind in kinds.items():
        if kind != "time course" or cond in copies:
            continue
        smap: dict[str, Expr] = {s: Sym(f"{s}__{_safe(cond)}") for s in states}
        copies[cond] = smap
        for s in states:
            name = f"{s}__{_safe(cond)}"
            equations[name] = in_condition(base.equations[s], cond, smap)
            iv = initial(s, cond)
            init[name] = float(iv.value) if isinstance(iv, Num) else iv
            described[name] = f"{s} in condition {cond}"
    outputs: dict[str, Expr] = {}
    datasets: dict[str, list[str]] = {}
    for (d, cond), items in rows.items():
        kind = kinds[(d, cond)]
        names = datasets.setdefault(d, [])
        for oid, e, _ in items:
            if kind == "time course":
                out = in_condition(e, cond, copies[cond])
                base_name, what = f"{oid}__{_safe(cond)}", f"{oid} over time in condition {cond}"
            elif kind == "equilibrium":
                out = in_condition(substitute(e, steady[cond]), cond, {})
                base_name = f"{oid}__{_safe(cond)}__eq"
                what = f"{oid} at equilibrium in condition {cond}"
            else:
                out = in_condition(e, cond, {})
                base_name, what = f"{oid}__{_safe(cond)}", f"{oid} in condition {cond}"
            name, i = base_name, 1
            while name in outputs and outputs[name] != out:
                i += 1
                name = f"{base_name}__{i}"
            outputs[name] = out
            described.setdefault(name, what)
            if name not in names:
                names.append(name)
    if not equations:
        # The structural layer needs a state: a constant placeholder (all data are static).
        equations["z__"] = Num(0.0)
        init["z__"] = 0.0
    used: set[str] = set()
    for e in (*equations.values(), *outputs.values()):
        used |= symbols(e)
    for v in init.values():
        if isinstance(v, Expr):
            used |= symbols(v)
    params = tuple(p for p in est if p in used)
    model = OdeModel(
        states=tuple(equations),
        equations=equations,
        outputs=outputs,
        parameters=params,
        initial=init,
        source=src,
    )
    return StructuralConversion(model, datasets, described, kinds, tuple(notes))


def _condition_env(
    base: OdeModel, cond: str, value: Any, numeric: Mapping[str, float]
) -> dict[str, float]:
    env: dict[str, float] = {}
    for e in base.equations.values():
        for s in symbols(e):
            if s in base.equations:
                continue
            v = value(s, cond)
            env[s] = float(v.value) if isinstance(v, Num) else numeric[v.name]
    return env


def _simulated_states(
    pb: PetabProblem, base: OdeModel, cond: str, t: float, pars: Mapping[str, float]
) -> dict[str, float]:
    sim = pb._simulate_condition(None, cond, np.array([t]), pars, list(base.states))
    return {s: float(sim[s][0]) for s in base.states}


def _at_equilibrium(
    pb: PetabProblem,
    base: OdeModel,
    cond: str,
    t: float,
    pars: Mapping[str, float],
    value: Any,
) -> bool:
    if t <= 0:
        return False
    xs = _simulated_states(pb, base, cond, t, pars)
    env = _condition_env(base, cond, value, pars)
    env.update(xs)
    big = max([abs(v) for v in xs.values()] + [1e-300])
    for s, e in base.equations.items():
        rate = evaluate(e, env, time=t)
        if abs(rate) * t > EQUILIBRIUM_RTOL * max(abs(xs[s]), 1e-9 * big):
            return False
    return True


def _steady_state(
    pb: PetabProblem,
    base: OdeModel,
    cond: str,
    pars: Mapping[str, float],
    value: Any,
) -> dict[str, Expr]:
    """The steady state of ``cond`` in closed form (the sympy solution that matches the
    simulated state at the measurement time), as expressions of the symbols of ``base``."""
    import sympy

    from ..model.symbolic import from_sympy, to_sympy

    if len(base.states) > 6:
        raise UnsupportedFeatureError(
            "equilibrium data of a model with more than 6 states in the structural conversion",
            source=pb.source,
        )
    table: dict[str, Any] = {}
    eqs = [to_sympy(e, table) for e in base.equations.values()]
    xs = [table.setdefault(s, sympy.Symbol(s, real=True)) for s in base.states]
    try:
        sols = sympy.solve(eqs, xs, dict=True)
    except (NotImplementedError, ValueError) as exc:
        raise UnsupportedFeatureError(
            f"a steady state that sympy cannot solve ({exc})", source=pb.source
        ) from None
    mdf = pb.problem.measurement_df
    t = float(mdf.loc[mdf["simulationConditionId"].astype(str) == cond, "time"].iloc[0])
    sim = _simulated_states(pb, base, cond, t, pars)
    env = _condition_env(base, cond, value, pars)
    for sol in sols:
        if set(sol) != set(xs):
            continue
        exprs = {s: from_sympy(sol[xs[i]]) for i, s in enumerate(base.states)}
        try:
            ok = all(
                math.isclose(evaluate(exprs[s], env), sim[s], rel_tol=1e-5, abs_tol=1e-9)
                for s in base.states
            )
        except (ScalebridgeError, ZeroDivisionError, OverflowError, ValueError):
            ok = False
        if ok:
            return exprs
    raise UnsupportedFeatureError(
        "a steady state without a unique closed form that matches the simulation "
        "(conservation laws or several solutions)",
        element=cond,
        source=pb.source,
    )


# =============================================================================================
# The report
# =============================================================================================
@dataclass
class ScopeReport:
    """One scope: a dataset alone, or all datasets combined (``name == "combined"``)."""

    name: str
    datasets: tuple[str, ...]
    n_measurements: int
    x: np.ndarray
    nllh: float | None
    fim: FimResult
    profile: Any = None
    structural: Any = None

    def profile_ci(self, parameter: str) -> tuple[float, float] | None:
        """The profile interval of ``parameter`` in linear values (None without profiles)."""
        if self.profile is None:
            return None
        pr = self.profile.profiles[parameter]
        scale = self.fim.scales[self.fim.parameter_ids.index(parameter)]
        return (_lin(pr.ci[0], scale), _lin(pr.ci[1], scale))

    def verdicts(self) -> dict[str, dict[str, Any]]:
        """Per parameter: structural label, seen by the FIM, profile-identifiable."""
        out: dict[str, dict[str, Any]] = {}
        unseen = set(self.fim.unseen_parameters)
        for p in self.fim.parameter_ids:
            v: dict[str, Any] = {"fim_seen": p not in unseen}
            if self.structural is not None:
                v["structural"] = self.structural.parameters.get(p)
            if self.profile is not None:
                pr = self.profile.profiles[p]
                v["profile_identifiable"] = bool(pr.identifiable)
                v["profile_flags"] = list(pr.flags)
            out[p] = v
        return out

    def agrees(self) -> bool | None:
        """Do the structural labels and the FIM agree on which parameters are identifiable?
        (None without structural labels.)"""
        if self.structural is None:
            return None
        unseen = set(self.fim.unseen_parameters)
        for p, lab in self.structural.parameters.items():
            if p in self.fim.parameter_ids and (lab == "non-identifiable") != (p in unseen):
                return False
        return True


@dataclass
class PracticalReport:
    """Practical (and structural) identifiability per dataset and combined (module docstring).

    ``scopes``: name -> :class:`ScopeReport` (datasets in order, then ``combined`` when there
    are several); ``structural``: the
    :class:`~scalebridge.infer.datasets.DatasetsResult` (None when the conversion was refused
    or ``structural=False``); ``suggestions``: readable texts of the measurements that would
    make non-identifiable parameters identifiable; ``conversion``: the
    :class:`StructuralConversion`."""

    parameter_ids: list[str]
    scales: list[str]
    x: np.ndarray
    alpha: float
    scopes: dict[str, ScopeReport]
    structural: Any = None
    conversion: StructuralConversion | None = None
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> Any:
        """pandas DataFrame, one row per (scope, parameter): structural label, FIM rank of the
        scope, seen by the FIM, Cramér–Rao and profile intervals (linear values), flags."""
        import pandas as pd

        rows = []
        for name, sc in self.scopes.items():
            ver = sc.verdicts()
            for p in sc.fim.parameter_ids:
                lo, hi = sc.fim.cramer_rao[p]
                prof = sc.profile_ci(p)
                v = ver[p]
                rows.append(
                    {
                        "scope": name,
                        "parameter": p,
                        "structural": v.get("structural"),
                        "fim_rank": sc.fim.rank,
                        "fim_seen": v["fim_seen"],
                        "cr_lower": lo,
                        "cr_upper": hi,
                        "profile_lower": prof[0] if prof else None,
                        "profile_upper": prof[1] if prof else None,
                        "profile_identifiable": v.get("profile_identifiable"),
                        "profile_flags": ";".join(v.get("profile_flags", [])),
                    }
                )
        return pd.DataFrame(rows)

    def format(self) -> str:
        """A readable report: one block per scope, then the suggestions."""
        lines: list[str] = []
        pct = f"{100 * self.alpha:g}%"
        for name, sc in self.scopes.items():
            head = name if name != COMBINED else f"combined ({', '.join(sc.datasets)})"
            f = sc.fim
            lines.append(
                f"== {head}: {sc.n_measurements} measurements; FIM rank {f.rank} of "
                f"{len(f.parameter_ids)}, condition number {_fmt(f.condition_number)}"
            )
            for u in f.unseen:
                lines.append(f"   unseen: {u.text}")
            if f.identifiable_combinations:
                lines.append(
                    "   identifiable combinations: " + ", ".join(f.identifiable_combinations)
                )
            if sc.structural is not None and sc.structural.combinations:
                lines.append(
                    "   structural combinations: "
                    + ", ".join(c.text for c in sc.structural.combinations)
                )
            w = max([len(p) for p in f.parameter_ids] + [9])
            lines.append(
                f"   {'parameter':<{w}}  {'structural':<20}  {'Cramér–Rao ' + pct:<24}  "
                f"{'profile ' + pct:<24}  flags"
            )
            ver = sc.verdicts()
            for p in f.parameter_ids:
                lab = ver[p].get("structural") or "-"
                cr = _interval(f.cramer_rao[p])
                prof = sc.profile_ci(p)
                pr = _interval(prof) if prof is not None else "-"
                flags = ",".join(ver[p].get("profile_flags", []))
                lines.append(f"   {p:<{w}}  {lab:<20}  {cr:<24}  {pr:<24}  {flags}")
            agree = sc.agrees()
            if agree is False:
                lines.append("   note: the structural labels and the FIM disagree")
        if self.suggestions:
            lines.append("suggested measurements:")
            lines += [f"  {s['text']}" for s in self.suggestions]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        from .._io import json_safe

        scopes: dict[str, Any] = {}
        for name, sc in self.scopes.items():
            d: dict[str, Any] = {
                "datasets": list(sc.datasets),
                "n_measurements": sc.n_measurements,
                "x": sc.x,
                "nllh": sc.nllh,
                "fim": sc.fim.to_dict(),
                "parameters": sc.verdicts(),
                "agree_structural_fim": sc.agrees(),
            }
            if sc.profile is not None:
                d["profile"] = {
                    p: {
                        "ci": list(sc.profile_ci(p) or ()),
                        "identifiable": bool(pr.identifiable),
                        "flags": list(pr.flags),
                    }
                    for p, pr in sc.profile.profiles.items()
                }
            if sc.structural is not None:
                d["structural"] = sc.structural.to_dict()
            scopes[name] = d
        out = {
            "parameters": list(self.parameter_ids),
            "scales": list(self.scales),
            "x": self.x,
            "alpha": self.alpha,
            "scopes": scopes,
            "suggestions": list(self.suggestions),
            "structural_model": (
                {
                    "outputs": dict(self.conversion.described),
                    "kinds": {f"{d}/{c}": k for (d, c), k in self.conversion.kinds.items()},
                    "notes": list(self.conversion.notes),
                }
                if self.conversion is not None
                else None
            ),
            "notes": list(self.notes),
        }
        result: dict[str, Any] = json_safe(out)
        return result

    def plot(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write ``profiles_<scope>.png`` (when profiles were computed) and ``fim_<scope>.png``
        for every scope into ``directory`` (created if needed); returns the paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths: list[str] = []
        for name, sc in self.scopes.items():
            tag = _safe(name)
            if sc.profile is not None:
                p = d / f"profiles_{tag}.png"
                sc.profile.plot(p)
                paths.append(str(p))
            p = d / f"fim_{tag}.png"
            sc.fim.plot(p)
            paths.append(str(p))
        return paths


def _lin(v: float, scale: str) -> float:
    if math.isinf(v):
        if v > 0:
            return math.inf
        return -math.inf if scale == "lin" else 0.0
    try:
        return unscale(float(v), scale)
    except OverflowError:
        return math.inf


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.4g}"


def _interval(iv: tuple[float, float]) -> str:
    return f"[{_fmt(iv[0])}, {_fmt(iv[1])}]"


def _suggestion_texts(res: Any, conv: StructuralConversion) -> list[dict[str, Any]]:
    out = []
    for s in res.suggestions:
        what = conv.described.get(s.measurement)
        if what is not None:
            measure = f"measure {what}"
        elif s.measurement in conv.model.parameters:
            measure = f"measure {s.measurement} directly (e.g. in an assay at another scale)"
        else:
            measure = f"measure {s.measurement}"
        where = f"added to dataset '{s.dataset}'" if s.dataset else "as a new experiment"
        text = f"{measure} {where}: identifies {', '.join(s.makes_identifiable)}"
        if s.still_non_identifiable:
            text += f" (still non-identifiable: {', '.join(s.still_non_identifiable)})"
        out.append(
            {
                "dataset": s.dataset,
                "measurement": s.measurement,
                "makes_identifiable": list(s.makes_identifiable),
                "still_non_identifiable": list(s.still_non_identifiable),
                "text": text,
            }
        )
    return out


def practical_identifiability(
    problem: PetabProblem,
    x: Sequence[float] | np.ndarray | None = None,
    *,
    datasets: Sequence[str] | None = None,
    profiles: bool = True,
    structural: bool = True,
    alpha: float = 0.95,
    fit: bool = True,
    max_steps: int = 60,
    workers: int | None = None,
    progress: bool | None = None,
    time_budget: float = STRUCTURAL_BUDGET,
    rtol_rank: float = 1e-8,
) -> PracticalReport:
    """Identifiability of ``problem``'s parameters from each dataset alone and from all of them
    (module docstring).

    ``x``: parameter scales, default nominal (the start of each scope's fit, and where
    equilibrium is checked); ``datasets``: which datasets (default all, see
    :meth:`PetabProblem.dataset_ids`); ``profiles``/``structural``: run those parts;
    ``alpha``: confidence level; ``fit``: profile from a local fit of each scope (one start from
    ``x``) rather than from ``x``; ``max_steps``/``workers``/``progress``: passed to
    :func:`~scalebridge.infer.profile.profile_likelihood`; ``time_budget``: seconds for each
    exact global structural step; ``rtol_rank``: the FIM rank tolerance."""
    if not 0.0 < alpha < 1.0:
        raise OptionError(f"alpha must lie in (0, 1), got {alpha}")
    known = problem.dataset_ids()
    chosen = list(known if datasets is None else datasets)
    for d in chosen:
        if d not in known:
            raise OptionError(f"unknown dataset '{d}' (known: {', '.join(known)})")
    if not chosen:
        raise OptionError("no datasets to analyse")
    ids = list(problem.estimated_ids)
    scales = [problem.parameter_scales[p] for p in ids]
    x0 = np.asarray(problem.x_nominal if x is None else x, dtype=np.float64)
    if x0.shape != (len(ids),):
        raise OptionError(f"expected {len(ids)} parameter values, got shape {x0.shape}")
    notes: list[str] = []
    scopes_def: list[tuple[str, tuple[str, ...]]] = [(d, (d,)) for d in chosen]
    if len(chosen) > 1:
        scopes_def.append((COMBINED, tuple(chosen)))
    # -- structural ---------------------------------------------------------------------------
    conv: StructuralConversion | None = None
    sres: Any = None
    suggestions: list[dict[str, Any]] = []
    if structural:
        from .datasets import identifiability_across_datasets

        try:
            conv = structural_model(problem, x0)
            sres = identifiability_across_datasets(
                conv.model,
                {d: conv.datasets[d] for d in chosen},
                experiments="shared",
                time_budget=time_budget,
            )
            suggestions = _suggestion_texts(sres, conv)
            notes += list(conv.notes)
        except (UnsupportedFeatureError, ModelError) as exc:
            notes.append(f"structural identifiability not available: {exc}")
            conv, sres = None, None
    # -- per scope ----------------------------------------------------------------------------
    scopes: dict[str, ScopeReport] = {}
    for name, dsets in scopes_def:
        sub = problem.subset(list(dsets)) if set(dsets) != set(known) else problem
        grad = PetabGradient(sub)
        xs, nllh = x0.copy(), None
        if profiles and fit:
            from .estimate import fit as run_fit

            fr = run_fit(sub, starts=1, x0=x0, objective=grad, workers=1, progress=False)
            xs, nllh = np.asarray(fr.x_best, dtype=np.float64), float(fr.nllh_best)
        fim = fisher_information(sub, xs, objective=grad, alpha=alpha, rtol_rank=rtol_rank)
        prof = None
        if profiles:
            from .profile import profile_likelihood

            prof = profile_likelihood(
                sub,
                xs,
                alpha=alpha,
                objective=grad,
                workers=workers,
                max_steps=max_steps,
                progress=progress,
            )
            nllh = float(prof.nllh_opt)
        st = None
        if sres is not None:
            st = sres.combined if name == COMBINED else sres.datasets[name]
        scopes[name] = ScopeReport(
            name=name,
            datasets=dsets,
            n_measurements=fim.n_measurements,
            x=xs,
            nllh=nllh,
            fim=fim,
            profile=prof,
            structural=st,
        )
    if profiles and not fit:
        notes.append("profiles start from the given x, not from a fit of each scope")
    return PracticalReport(
        parameter_ids=ids,
        scales=scales,
        x=x0,
        alpha=alpha,
        scopes=scopes,
        structural=sres,
        conversion=conv,
        suggestions=suggestions,
        notes=notes,
    )
