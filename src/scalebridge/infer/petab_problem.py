"""PEtab v1 problems: read with the ``petab`` library, simulate with scalebridge's ODE path.

A PEtab problem is an SBML model plus tables: conditions, observables, measurements and
parameters.  :class:`PetabProblem` evaluates its log-likelihood (module
:mod:`.petab_objective` states the formulas) at a parameter vector.

Semantics implemented (PEtab v1):

* Parameter table: every listed parameter takes its ``nominalValue`` (linear scale) unless it
  is estimated and a parameter vector ``x`` is given on the ``parameterScale`` (``lin``,
  ``log``, ``log10``) of each estimated parameter, in parameter-table order.
* Condition table: a column naming a model parameter, compartment or species overrides that
  parameter, the compartment's initial size or the species' initial value (in the species'
  own units: concentration unless hasOnlySubstanceUnits); a cell is a number or a
  parameter-table id (estimated initial values); an empty/NaN cell keeps the model value.
* Measurement table: ``observableParameters`` / ``noiseParameters`` (numbers or
  parameter-table ids, separated by ``;``) replace the placeholders
  ``observableParameter{n}_{observableId}`` / ``noiseParameter{n}_{observableId}``;
  replicates are independent measurements.
* Preequilibration: the steady state of the preequilibration condition is found with
  :func:`scalebridge.wellmixed.steady.steady_state` (Newton, with forward integration when
  Newton alone fails); the simulation then starts at t = 0 from that state, with the
  simulation condition's parameters, and species that the simulation condition sets
  (non-NaN) reinitialised.
* Observables are evaluated on the species as SBML defines their symbols (``units="model"``).

Not supported (raise :class:`~scalebridge.errors.UnsupportedFeatureError` naming the file
and element): mapping tables, priors (the objective here is the likelihood only), several
models or several problems in one yaml, measurements at t = inf, condition-table columns that
are not model parameters, compartments or species.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ModelError, UnsupportedFeatureError
from ..model.expr import CONSTANT_VALUES, Call, Expr, Num, Sym, evaluate, symbols
from ..model.network import ReactionNetwork
from ..model.parse import parse_expr
from .petab_objective import (
    DISTRIBUTIONS,
    TRANSFORMATIONS,
    chi2_terms,
    log_likelihood_terms,
)

SCALES = ("lin", "log", "log10")
_VEC_UNARY: dict[str, Any] = {
    "exp": np.exp, "ln": np.log, "log10": np.log10, "sqrt": np.sqrt, "abs": np.abs,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan,
    "floor": np.floor, "ceiling": np.ceil,
}  # fmt: skip
_VEC_REL: dict[str, Any] = {
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "eq": np.equal, "ne": np.not_equal,
}  # fmt: skip
_PLACEHOLDER = re.compile(r"^(observable|noise)Parameter(\d+)_(.+)$")


def _petab() -> Any:
    try:
        import petab.v1 as petab
    except ImportError as exc:  # pragma: no cover - petab is an optional dependency
        raise UnsupportedFeatureError(
            "PEtab problems without the 'petab' package", detail="pip install 'petab<0.9'"
        ) from exc
    return petab


def unscale(value: float, scale: str) -> float:
    """Linear value of ``value`` given on ``scale`` (lin, log, log10)."""
    if scale == "lin":
        return float(value)
    if scale == "log":
        return math.exp(value)
    if scale == "log10":
        return 10.0**value
    raise UnsupportedFeatureError(f"parameter scale '{scale}'")


def to_scale(value: float, scale: str) -> float:
    """``value`` (linear) on ``scale`` (lin, log, log10)."""
    if scale == "lin":
        return float(value)
    if scale == "log":
        return math.log(value)
    if scale == "log10":
        return math.log10(value)
    raise UnsupportedFeatureError(f"parameter scale '{scale}'")


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _split_overrides(v: Any) -> list[float | str]:
    """The ``;``-separated overrides of a measurement-table cell: numbers or ids."""
    if _is_missing(v):
        return []
    if isinstance(v, int | float | np.integer | np.floating):
        return [float(v)]
    out: list[float | str] = []
    for part in str(v).split(";"):
        p = part.strip()
        try:
            out.append(float(p))
        except ValueError:
            out.append(p)
    return out


def vector_evaluate(
    e: Expr, env: Mapping[str, Any], n: int, time: np.ndarray | float = 0.0
) -> np.ndarray:
    """Value of ``e`` for ``n`` points at once: ``env`` maps symbols to numbers or arrays of
    ``n`` values, ``time`` is a number or an array.  Same semantics as
    :func:`scalebridge.model.expr.evaluate` (IEEE arithmetic; booleans are 1.0/0.0); operations
    without a vectorised form here are evaluated point by point with that reference."""

    def rec(node: Expr) -> Any:
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Sym):
            try:
                return env[node.name]
            except KeyError:
                raise ModelError(f"unknown symbol '{node.name}'", element=node.name) from None
        if isinstance(node, Call):
            op, args = node.op, node.args
            if op == "time":
                return time
            if op in CONSTANT_VALUES:
                return CONSTANT_VALUES[op]
            if op == "piecewise":
                vals = [rec(a) for a in args]
                out = vals[-1] if len(vals) % 2 == 1 else math.nan
                # the first true condition wins: apply the pairs from the last to the first
                for i in reversed(range(0, 2 * (len(vals) // 2), 2)):
                    out = np.where(np.asarray(vals[i + 1]) != 0.0, vals[i], out)
                return out
            if (
                op in ("add", "mul", "sub", "div", "neg", "pow")
                or op in _VEC_UNARY
                or (op in _VEC_REL or op in ("and", "or", "not", "min", "max"))
            ):
                v = [rec(a) for a in args]
                if op == "add":
                    r = v[0] if v else 0.0
                    for x in v[1:]:
                        r = r + x
                    return r
                if op == "mul":
                    r = 1.0
                    for x in v:
                        r = r * x
                    return r
                if op == "sub":
                    return np.subtract(v[0], v[1])
                if op == "div":
                    return np.divide(v[0], v[1])
                if op == "neg":
                    return np.negative(v[0])
                if op == "pow":
                    return np.power(np.asarray(v[0], dtype=np.float64), v[1])
                if op in _VEC_UNARY:
                    return _VEC_UNARY[op](np.asarray(v[0], dtype=np.float64))
                if op in _VEC_REL:
                    return _VEC_REL[op](v[0], v[1]).astype(np.float64)
                if op == "not":
                    return (np.asarray(v[0]) == 0.0).astype(np.float64)
                if op == "and":
                    return np.logical_and.reduce([np.asarray(x) != 0.0 for x in v] or [True])
                if op == "or":
                    return np.logical_or.reduce([np.asarray(x) != 0.0 for x in v] or [False])
                if op in ("min", "max"):
                    b = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in v])
                    return (np.min if op == "min" else np.max)(np.stack(b), axis=0)
        # anything else: point by point with the reference evaluator
        cols = {
            k: np.broadcast_to(np.asarray(val, dtype=np.float64), (n,)) for k, val in env.items()
        }
        tt = np.broadcast_to(np.asarray(time, dtype=np.float64), (n,))
        return np.array(
            [
                evaluate(node, {k: c[i] for k, c in cols.items()}, time=float(tt[i]))
                for i in range(n)
            ]
        )

    with np.errstate(all="ignore"):
        out = rec(e)
        return np.broadcast_to(np.asarray(out, dtype=np.float64), (n,)).astype(np.float64)


@dataclass
class _ObservableBlock:
    """The measurements of one observable within one simulation group."""

    observable: str
    pos: np.ndarray  # positions within the group's rows
    rows: np.ndarray  # rows of the measurement table
    overrides: dict[str, list[float | str]]  # placeholder -> per-row number or parameter id


@dataclass
class _Group:
    """The measurements simulated together: one (preequilibration, simulation) condition."""

    preeq: str | None
    condition: str
    rows: np.ndarray
    times: np.ndarray
    grid: np.ndarray  # 0 and the distinct measurement times
    k: np.ndarray  # index into grid of each row's time
    blocks: list[_ObservableBlock]


@dataclass
class PetabResult:
    """Log-likelihood ``llh`` (PEtab convention: the objective is ``-llh``), ``chi2`` and the
    simulation table (the measurement table with ``measurement`` replaced by ``simulation``)."""

    llh: float
    chi2: float
    simulation: np.ndarray = field(repr=False)
    measurement_table: pd.DataFrame = field(repr=False)

    @property
    def simulations(self) -> pd.DataFrame:
        """The measurement table with ``measurement`` replaced by ``simulation`` (built on
        first use: an optimizer needs only ``llh``)."""
        cached = self.__dict__.get("_simulations")
        if cached is None:
            cached = self.measurement_table.reset_index(drop=True).rename(
                columns={"measurement": "simulation"}
            )
            cached["simulation"] = self.simulation
            self.__dict__["_simulations"] = cached
        return cached

    @property
    def nllh(self) -> float:
        """The objective: the negative log-likelihood."""
        return -self.llh

    def to_dict(self) -> dict[str, float]:
        return {"llh": self.llh, "chi2": self.chi2}


class PetabProblem:
    """A PEtab v1 problem bound to a scalebridge :class:`ReactionNetwork`.

    ``rtol``/``atol`` are the ODE tolerances of every simulation.
    """

    def __init__(
        self,
        problem: Any,
        network: ReactionNetwork,
        *,
        source: str | None = None,
        rtol: float = 1e-10,
        atol: float = 1e-12,
    ):
        self.problem = problem
        self.network = network
        self.source = source
        self.rtol, self.atol = rtol, atol
        self._check_supported()
        pdf = problem.parameter_df
        self.parameter_scales: dict[str, str] = {
            str(k): str(s) if not _is_missing(s) else "lin"
            for k, s in pdf.get("parameterScale", pd.Series("lin", index=pdf.index)).items()
        }
        self.nominal: dict[str, float] = {
            str(k): float(v) for k, v in pdf["nominalValue"].items() if not _is_missing(v)
        }
        est = pdf["estimate"] if "estimate" in pdf.columns else pd.Series(0, index=pdf.index)
        self.estimated_ids: list[str] = [str(k) for k, e in est.items() if int(e) == 1]
        for pid in self.estimated_ids:
            if pid not in self.nominal:
                raise ModelError(
                    "estimated parameter without nominalValue", element=pid, source=self._pfile
                )
            if self.parameter_scales[pid] not in SCALES:
                raise UnsupportedFeatureError(
                    f"parameter scale '{self.parameter_scales[pid]}'",
                    element=pid,
                    source=self._pfile,
                )
        self._observables = self._parse_observables()

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **kwargs: Any) -> PetabProblem:
        """Read a PEtab v1 problem from its yaml file (``format_version: 1``)."""
        from ..api import load

        petab = _petab()
        path = os.fspath(path)
        cfg = petab.yaml.load_yaml(path)
        if str(cfg.get("format_version", "1")).split(".")[0] != "1":
            raise UnsupportedFeatureError(
                f"PEtab format_version {cfg.get('format_version')}", source=path
            )
        problems = cfg.get("problems", [])
        if len(problems) != 1:
            raise UnsupportedFeatureError(
                "PEtab yaml with several problems", source=path, element="problems"
            )
        p0 = problems[0]
        if len(p0.get("sbml_files", [])) != 1:
            raise UnsupportedFeatureError(
                "PEtab problem without exactly one SBML model", source=path, element="sbml_files"
            )
        if p0.get("mapping_files"):
            raise UnsupportedFeatureError(
                "PEtab mapping table", source=path, element=p0["mapping_files"][0]
            )
        base = os.path.dirname(os.path.abspath(path))
        sbml = os.path.join(base, p0["sbml_files"][0])
        problem = petab.Problem.from_yaml(path)
        net = load(sbml)
        return cls(problem, net, source=path, **kwargs)

    @property
    def _pfile(self) -> str:
        return f"{self.source} (parameter table)" if self.source else "parameter table"

    def _file(self, what: str) -> str:
        return f"{self.source} ({what} table)" if self.source else f"{what} table"

    def _check_supported(self) -> None:
        p = self.problem
        if getattr(p, "mapping_df", None) is not None:
            raise UnsupportedFeatureError("PEtab mapping table", source=self.source)
        pdf = p.parameter_df
        for col in ("priorType", "objectivePriorType"):
            if col in pdf.columns:
                used = [str(k) for k, v in pdf[col].items() if not _is_missing(v)]
                if used:
                    raise UnsupportedFeatureError(
                        "PEtab priors (the objective here is the likelihood only)",
                        element=used[0],
                        source=self._file("parameter"),
                    )
        mdf = p.measurement_df
        if np.any(np.isinf(mdf["time"].to_numpy(dtype=np.float64))):
            raise UnsupportedFeatureError(
                "steady-state measurements (time = inf)", source=self._file("measurement")
            )
        cdf = p.condition_df
        if cdf is not None:
            for col in cdf.columns:
                if col == "conditionName":
                    continue
                kind = self.network.kind_of(str(col))
                if kind not in ("parameter", "compartment", "species"):
                    raise UnsupportedFeatureError(
                        "condition-table column that is not a model parameter, compartment "
                        "or species",
                        element=str(col),
                        source=self._file("condition"),
                    )
                if kind == "parameter" and any(
                    r.variable == col for r in self.network.assignment_rules
                ):
                    raise UnsupportedFeatureError(
                        "condition-table override of a parameter set by an assignment rule",
                        element=str(col),
                        source=self._file("condition"),
                    )

    def _parse_observables(self) -> dict[str, tuple[Expr, Expr, str, str]]:
        odf = self.problem.observable_df
        src = self._file("observable")
        out: dict[str, tuple[Expr, Expr, str, str]] = {}
        for oid, row in odf.iterrows():
            oid = str(oid)
            f = parse_expr(str(row["observableFormula"]), element=oid, source=src)
            nf_raw = row.get("noiseFormula", 1.0)
            nf = parse_expr("1" if _is_missing(nf_raw) else str(nf_raw), element=oid, source=src)
            scale = row.get("observableTransformation", "lin")
            scale = "lin" if _is_missing(scale) else str(scale)
            dist = row.get("noiseDistribution", "normal")
            dist = "normal" if _is_missing(dist) else str(dist)
            if scale not in TRANSFORMATIONS:
                raise UnsupportedFeatureError(
                    f"observable transformation '{scale}'", element=oid, source=src
                )
            if dist not in DISTRIBUTIONS:
                raise UnsupportedFeatureError(
                    f"noise distribution '{dist}'", element=oid, source=src
                )
            out[oid] = (f, nf, scale, dist)
        return out

    # ------------------------------------------------------------------ datasets

    def dataset_ids(self) -> list[str]:
        """Names of the datasets of the measurement table, in order of appearance: the values
        of its ``datasetId`` column, or, without that column, its observable ids (one dataset
        per observable, e.g. one per measured scale)."""
        mdf = self.problem.measurement_df
        col = "datasetId" if "datasetId" in mdf.columns else "observableId"
        out: list[str] = []
        for v in mdf[col]:
            if _is_missing(v):
                raise ModelError(
                    f"measurement without a {col}", element=col, source=self._file("measurement")
                )
            if str(v) not in out:
                out.append(str(v))
        return out

    def subset(self, datasets: Sequence[str]) -> PetabProblem:
        """The same problem with only the measurements of ``datasets`` (see
        :meth:`dataset_ids`); parameters, conditions and observables are shared."""
        import copy

        known = self.dataset_ids()
        for d in datasets:
            if d not in known:
                raise ModelError(
                    f"unknown dataset (known: {', '.join(known)})",
                    element=d,
                    source=self._file("measurement"),
                )
        mdf = self.problem.measurement_df
        col = "datasetId" if "datasetId" in mdf.columns else "observableId"
        keep = mdf[col].astype(str).isin([str(d) for d in datasets])
        sub = copy.copy(self.problem)
        sub.measurement_df = mdf.loc[keep].copy()
        return PetabProblem(sub, self.network, source=self.source, rtol=self.rtol, atol=self.atol)

    # ------------------------------------------------------------------ parameters

    @property
    def x_nominal(self) -> np.ndarray:
        """Nominal values of the estimated parameters, on their parameter scales."""
        return np.array(
            [to_scale(self.nominal[p], self.parameter_scales[p]) for p in self.estimated_ids]
        )

    def parameter_values(self, x: Sequence[float] | np.ndarray | None = None) -> dict[str, float]:
        """Linear values of every parameter-table parameter; ``x`` (estimated parameters on
        their scales, parameter-table order) replaces the nominal values."""
        vals = dict(self.nominal)
        if x is not None:
            xa = np.asarray(x, dtype=np.float64)
            if xa.shape != (len(self.estimated_ids),):
                raise ModelError(
                    f"expected {len(self.estimated_ids)} estimated parameter values, got shape "
                    f"{xa.shape}"
                )
            for pid, xi in zip(self.estimated_ids, xa, strict=True):
                vals[pid] = unscale(float(xi), self.parameter_scales[pid])
        return vals

    def _resolve(self, v: float | str, pars: Mapping[str, float], where: str) -> float:
        if isinstance(v, float):
            return v
        if v in pars:
            return pars[v]
        raise ModelError(
            f"override '{v}' is neither a number nor a parameter-table id",
            element=v,
            source=self._file(where),
        )

    def _condition_row(self, cid: str) -> list[tuple[str, float | str, bool]]:
        """(column, number or parameter id, is a species) of each set cell of a condition."""
        cache: dict[str, list[tuple[str, float | str, bool]]] = self.__dict__.setdefault(
            "_condition_cache", {}
        )
        if cid in cache:
            return cache[cid]
        cdf = self.problem.condition_df
        if cdf is None or cid not in cdf.index:
            raise ModelError("unknown condition", element=cid, source=self._file("measurement"))
        out: list[tuple[str, float | str, bool]] = []
        for col, v in cdf.loc[cid].items():
            col = str(col)
            if col == "conditionName" or _is_missing(v):
                continue
            val: float | str
            if isinstance(v, str):
                try:
                    val = float(v)
                except ValueError:
                    val = v.strip()
            else:
                val = float(v)
            if isinstance(val, float) and math.isnan(val):
                continue
            out.append((col, val, self.network.kind_of(col) == "species"))
        cache[cid] = out
        return out

    def _condition_values(
        self, cid: str, pars: Mapping[str, float]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(parameter/compartment overrides, species initial values) of a condition."""
        params: dict[str, float] = {}
        species: dict[str, float] = {}
        for col, v, is_species in self._condition_row(cid):
            val = v if isinstance(v, float) else self._resolve(v, pars, "condition")
            if math.isnan(val):
                continue
            (species if is_species else params)[col] = val
        return params, species

    def _model_parameter_values(self, pars: Mapping[str, float]) -> dict[str, float]:
        keys: frozenset[str] | None = self.__dict__.get("_model_keys")
        if keys is None:
            net = self.network
            ruled = {r.variable for r in net.assignment_rules}
            keys = frozenset(
                k
                for k in self.nominal
                if net.kind_of(k) in ("parameter", "compartment", "species") and k not in ruled
            )
            self._model_keys = keys
        return {k: v for k, v in pars.items() if k in keys}

    # ------------------------------------------------------------------ simulation

    def _output_names(self) -> list[str]:
        """Model symbols the observables read (simulated and reported per measurement)."""
        net = self.network
        return sorted(
            {
                n
                for f, nf, _, _ in self._observables.values()
                for n in symbols(f) | symbols(nf)
                if net.kind_of(n) in ("species", "parameter", "compartment")
            }
        )

    def _plan(self) -> list[_Group]:
        """The measurement table grouped by (preequilibration, simulation) condition and by
        observable, with the overrides of every row; built once per problem."""
        plan: list[_Group] | None = self.__dict__.get("_plan_cache")
        if plan is not None:
            return plan
        mdf = self.problem.measurement_df.reset_index(drop=True)
        src = self._file("measurement")
        pre_col = (
            mdf["preequilibrationConditionId"]
            if "preequilibrationConditionId" in mdf.columns
            else pd.Series(None, index=mdf.index)
        )
        keys = [
            (None if _is_missing(p) else str(p), str(c))
            for p, c in zip(pre_col, mdf["simulationConditionId"], strict=True)
        ]
        rows_of: dict[tuple[str | None, str], list[int]] = {}
        for i, k in enumerate(keys):
            rows_of.setdefault(k, []).append(i)
        times_all = mdf["time"].to_numpy(dtype=np.float64)
        obs_all = mdf["observableId"].astype(str).to_numpy()
        ovr_cols = {
            kind: (list(mdf[f"{kind}Parameters"]) if f"{kind}Parameters" in mdf.columns else None)
            for kind in ("observable", "noise")
        }
        plan = []
        for (preeq, cid), rows_l in rows_of.items():
            rows = np.asarray(rows_l, dtype=np.int64)
            t = times_all[rows]
            grid = np.unique(t)
            if grid[0] < 0.0:
                raise ModelError("negative measurement time", source=src)
            if grid[0] > 0.0:
                grid = np.concatenate([[0.0], grid])
            blocks: list[_ObservableBlock] = []
            obs = obs_all[rows]
            for oid in dict.fromkeys(obs.tolist()):
                if oid not in self._observables:
                    raise ModelError("unknown observable", element=oid, source=src)
                f, nf, _, _ = self._observables[oid]
                used = symbols(f) | symbols(nf)
                pos = np.nonzero(obs == oid)[0]
                b_rows = rows[pos]
                overrides: dict[str, list[float | str]] = {}
                for kind, col in ovr_cols.items():
                    if col is None:
                        continue
                    per_row = [_split_overrides(col[i]) for i in b_rows]
                    for n_ovr in range(max((len(r) for r in per_row), default=0)):
                        name = f"{kind}Parameter{n_ovr + 1}_{oid}"
                        items: list[float | str] = []
                        for r in per_row:
                            if n_ovr >= len(r):
                                if name in used:
                                    raise ModelError(
                                        f"no value for '{name}' in a measurement row",
                                        element=name,
                                        source=src,
                                    )
                                items.append(math.nan)  # not read by the formulas
                                continue
                            v = r[n_ovr]
                            if isinstance(v, str) and v not in self.nominal:
                                self._resolve(v, self.nominal, "measurement")  # raises
                            items.append(v)
                        overrides[name] = items
                blocks.append(_ObservableBlock(oid, pos, b_rows, overrides))
            plan.append(_Group(preeq, cid, rows, t, grid, np.searchsorted(grid, t), blocks))
        self._plan_cache = plan
        return plan

    @staticmethod
    def _override_values(
        block: _ObservableBlock, pars: Mapping[str, float]
    ) -> dict[str, np.ndarray]:
        return {
            name: np.array([pars[v] if isinstance(v, str) else v for v in items])
            for name, items in block.overrides.items()
        }

    def _kernel_for(self, names: Sequence[str]) -> tuple[Any, Any]:
        """The compiled model and a kernel recording ``names`` (model units), cached."""
        from ..wellmixed.compiled import compiled

        cache: dict[tuple[str, ...], tuple[Any, Any]] = self.__dict__.setdefault(
            "_kernel_cache", {}
        )
        key = tuple(names)
        if key not in cache:
            cm = compiled(self.network)
            sm = self.network.species_map
            slots = [
                cm.slot_of(
                    n,
                    ("amount" if sm[n].has_only_substance_units else "concentration")
                    if n in sm
                    else None,
                )
                for n in names
            ]
            cache[key] = (cm, cm.with_records(slots))
        return cache[key]

    def _preequilibrate(self, preeq: str, pars: Mapping[str, float]) -> dict[str, float]:
        """Species (and rate-rule variables) at the steady state of condition ``preeq``."""
        from ..wellmixed.steady import steady_state

        net = self.network
        base = self._model_parameter_values(pars)
        p_pre, s_pre = self._condition_values(preeq, pars)
        carried = [s.id for s in net.species] + [
            r.variable for r in net.rate_rules if net.kind_of(r.variable) != "species"
        ]
        ss = steady_state(
            net,
            params={**base, **p_pre, **s_pre},
            vars=carried,
            units="model",
            rtol=self.rtol,
            atol=self.atol,
        )
        return {k: float(v) for k, v in ss.values.items()}

    def _simulate_condition(
        self,
        preeq: str | None,
        cid: str,
        times: np.ndarray,
        pars: Mapping[str, float],
        names: Sequence[str],
    ) -> dict[str, np.ndarray]:
        """Trajectories of ``names`` at ``times`` for one (preequilibration, simulation)
        condition: the compiled model integrated directly (no labelled result is built)."""
        from ..wellmixed.ode import DEFAULT_SIZE, ODE, integrate

        values = self._model_parameter_values(pars)
        if preeq is not None:
            # Only the state carries over: parameters return to their (simulation) values.
            values.update(self._preequilibrate(preeq, pars))
        p_sim, s_sim = self._condition_values(cid, pars)
        values.update(p_sim)
        values.update(s_sim)
        times = np.asarray(times, dtype=np.float64)
        grid = np.unique(times)
        if grid[0] > 0.0:
            grid = np.concatenate([[0.0], grid])
        elif grid[0] < 0.0:
            raise ModelError("negative measurement time", source=self._file("measurement"))
        cm, K = self._kernel_for(names)
        method = self.__dict__.get("_ode")
        if method is None:
            method = self._ode = ODE(rtol=self.rtol, atol=self.atol)
        y, v = cm.initial(values, float(grid[0]), default_size=DEFAULT_SIZE)
        out = np.full((grid.size, len(names)), np.nan)
        integrate(cm, K, y, v, grid, out, method)
        idx = np.searchsorted(grid, times)
        return {n: out[idx, j] for j, n in enumerate(names)}

    def evaluate(self, x: Sequence[float] | np.ndarray | None = None) -> PetabResult:
        """Log-likelihood, chi2 and simulation table at ``x`` (default: nominal values)."""
        pars = self.parameter_values(x)
        mdf = self.problem.measurement_df
        names = self.__dict__.get("_names")
        if names is None:
            names = self._names = self._output_names()
        n_m = len(mdf)
        sim = np.full(n_m, np.nan)
        sigma = np.full(n_m, np.nan)
        for g in self._plan():
            traj = (
                self._simulate_condition(g.preeq, g.condition, g.grid, pars, names) if names else {}
            )
            p_sim, _ = self._condition_values(g.condition, pars)
            base: dict[str, Any] = dict(pars)
            base.update(p_sim)
            for b in g.blocks:
                f, nf, _, _ = self._observables[b.observable]
                k = g.k[b.pos]
                env = dict(base)
                for n in names:
                    env[n] = traj[n][k]
                env.update(self._override_values(b, pars))
                t = g.times[b.pos]
                y = vector_evaluate(f, env, len(k), t)
                env[b.observable] = y
                sim[b.rows] = y
                sigma[b.rows] = vector_evaluate(nf, env, len(k), t)
        llh = 0.0
        chi2 = 0.0
        meas = mdf["measurement"].to_numpy(dtype=np.float64)
        obs_ids = self.__dict__.get("_obs_ids")
        if obs_ids is None:
            obs_ids = self._obs_ids = mdf["observableId"].astype(str).to_numpy()
        for oid, (_, _, scale, dist) in self._observables.items():
            sel = obs_ids == oid
            if not np.any(sel):
                continue
            llh += float(np.sum(log_likelihood_terms(meas[sel], sim[sel], sigma[sel], scale, dist)))
            chi2 += float(np.sum(chi2_terms(meas[sel], sim[sel], sigma[sel], scale)))
        return PetabResult(llh=llh, chi2=chi2, simulation=sim, measurement_table=mdf)


def load_petab(path: str | os.PathLike[str], **kwargs: Any) -> PetabProblem:
    """Read a PEtab v1 problem (see :meth:`PetabProblem.from_yaml`)."""
    return PetabProblem.from_yaml(path, **kwargs)


def petab_llh(
    path: str | os.PathLike[str],
    x: Sequence[float] | np.ndarray | None = None,
    **kwargs: Any,
) -> PetabResult:
    """Log-likelihood and chi2 of the PEtab problem at ``path`` at ``x`` (default nominal)."""
    return load_petab(path, **kwargs).evaluate(x)


def format_llh(result: PetabResult, *, as_json: bool = False) -> str:
    """The text printed by ``scalebridge petab PROBLEM.yaml --llh [--json]``.

    JSON: ``{"llh": ..., "chi2": ...}`` with ``llh`` the log-likelihood (PEtab test-suite
    convention; the objective is ``-llh``).
    """
    if as_json:
        import json

        return json.dumps(result.to_dict(), allow_nan=False)
    return f"llh   {result.llh:.12g}\nnllh  {result.nllh:.12g}\nchi2  {result.chi2:.12g}"
