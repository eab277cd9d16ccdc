r"""The stationary linear noise approximation as formulas (sympy), for small networks.

The same model as the numeric LNA (:mod:`scalebridge.wellmixed.lna`): molecule counts ``x``,
stoichiometric matrix ``S`` of the stochastic model, macroscopic propensities
``a_j(x) = counts_per_amount x (rate law of reaction j)`` with every species symbol written in
counts (an amount is ``x / counts_per_amount``, a concentration ``x / (counts_per_amount V)``).
For mass action this is ``Omega f_j(x / Omega)``, the leading order of the combinatorial
propensity the SSA uses.  Then, symbolically:

* the stationary mean: ``S a(x*) = 0`` together with the conservation laws ``c_k . x* = T_k``
  (``c_k`` spanning the left null space of ``S``; ``T_k`` a symbol per law, or its value from the
  initial state when ``totals="initial"``), solved by :func:`sympy.solve`; where several roots
  exist the one that is real and non-negative at the model's parameter values is taken;
* ``J = S da/dx`` and ``D = S diag(a) S^T`` at ``x*``;
* the Lyapunov equation ``J Sigma + Sigma J^T + D = 0`` as a linear system in the
  ``n(n+1)/2`` entries of ``Sigma``, with ``c_k^T Sigma = 0`` added when there are conservation
  laws (there ``J`` is singular; fluctuations stay on the conservation surface, so this fixes
  the unique solution -- the same one the numeric LNA finds in reduced coordinates);
* Fano factors ``Sigma_ii / x*_i`` and squared CVs ``Sigma_ii / x*_i^2``, simplified.

Rate laws are converted to sympy node by node (:func:`scalebridge.model.symbolic.to_sympy`);
no text is parsed by sympy.  Parameters stay symbols unless ``params`` gives values for them;
compartment sizes are replaced by their values unless ``keep_sizes`` (so a model without sizes,
where every size is 1, gives formulas free of them).  Networks larger than ``max_species``
species or ``max_reactions`` reactions are refused with a pointer to the numeric path
(:func:`scalebridge.wellmixed.lna.lna_stationary`): symbolic solving grows quickly with size.

For the two-stage gene model (0 -> M at k_m; M -> 0 at g_m M; M -> M + P at k_p M; P -> 0 at
g_p P) this gives ``Fano(P) = 1 + k_p / (g_m + g_p)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from ..codegen.build import AMOUNT
from ..errors import OptionError, SolverError, UnsupportedFeatureError
from ..model.expr import Expr
from ..model.network import ReactionNetwork
from ..model.symbolic import from_sympy, sym, to_sympy
from ..problem import TimeCourse
from .lna import _prepare, expanded_laws

__all__ = ["MAX_REACTIONS", "MAX_SPECIES", "SymbolicLna", "lna_symbolic"]

MAX_SPECIES = 6
MAX_REACTIONS = 16
# A root of the steady-state equations is admissible when every count is real and at least
# -ADMISSIBLE_TOL x (1 + its size) at the model's values.
ADMISSIBLE_TOL = 1e-9


@dataclass(frozen=True)
class SymbolicLna:
    """The stationary LNA as sympy expressions (module docstring), in molecule counts.

    ``counts``: the sympy symbol of each species' count; ``propensities``: macroscopic
    propensities in those symbols; ``stoichiometry``: ``S``; ``mean``: stationary counts;
    ``jacobian``, ``diffusion``, ``covariance``: matrices at the stationary mean; ``fano``,
    ``cv2``: per species; ``totals``: the symbol of each conservation law -> its left-hand side
    (counts); ``values``: the model's numeric value of every remaining symbol (for
    :meth:`evaluate`).
    """

    species: tuple[str, ...]
    counts: dict[str, sympy.Symbol]
    propensities: tuple[Any, ...]
    stoichiometry: sympy.Matrix
    mean: dict[str, Any]
    jacobian: sympy.Matrix
    diffusion: sympy.Matrix
    covariance: sympy.Matrix
    fano: dict[str, Any]
    cv2: dict[str, Any]
    totals: dict[str, Any] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    model: str = ""

    def index(self, species: str) -> int:
        try:
            return self.species.index(species)
        except ValueError:
            raise OptionError(
                f"no species '{species}' in the LNA; it has {', '.join(self.species)}"
            ) from None

    def variance(self, species: str) -> Any:
        i = self.index(species)
        return self.covariance[i, i]

    def expr(self, what: str, species: str, other: str | None = None) -> Expr:
        """An expression tree (``scalebridge.model.expr``) of ``"mean"``, ``"fano"``, ``"cv2"``
        or ``"covariance"`` (with ``other``) -- e.g. to put a formula into a model."""
        if what == "covariance":
            return from_sympy(self.covariance[self.index(species), self.index(other or species)])
        table = {"mean": self.mean, "fano": self.fano, "cv2": self.cv2}.get(what)
        if table is None:
            raise OptionError(f"what must be mean, fano, cv2 or covariance, not {what!r}")
        self.index(species)
        return from_sympy(table[species])

    def evaluate(self, values: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Numbers: ``{"mean": array, "covariance": array, "fano": array}`` with the model's
        values, overridden by ``values`` (by symbol name)."""
        env = {**self.values, **dict(values or {})}
        subs = {sym(k): v for k, v in env.items()}
        subs.update({s: env[str(s)] for s in self._free() if str(s) in env})

        def num(e: Any) -> float:
            v = complex(sympy.N(sympy.sympify(e).xreplace(subs), 17))
            if abs(v.imag) > 1e-12 * max(1.0, abs(v.real)):
                raise SolverError(f"the formula is not real at these values ({v})")
            return v.real

        missing = sorted(str(s) for s in self._free() if str(s) not in env)
        if missing:
            raise OptionError(f"no value for {', '.join(missing)}")
        mean = np.array([num(self.mean[s]) for s in self.species])
        cov = np.array([[num(c) for c in row] for row in self.covariance.tolist()])
        with np.errstate(divide="ignore", invalid="ignore"):
            fano = np.where(mean != 0, np.diag(cov) / mean, np.nan)
        return {"mean": mean, "covariance": cov, "fano": fano}

    def _free(self) -> set[Any]:
        out: set[Any] = set()
        for e in (*self.mean.values(), *self.covariance):
            out |= sympy.sympify(e).free_symbols
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: formulas as sympy text (``str``), per species."""
        sp_ = list(self.species)
        return {
            "lna_symbolic": {
                "units": "molecules",
                "mean": {s: str(self.mean[s]) for s in sp_},
                "covariance": {
                    s: {t: str(self.covariance[i, j]) for j, t in enumerate(sp_)}
                    for i, s in enumerate(sp_)
                },
                "fano": {s: str(self.fano[s]) for s in sp_},
                "cv2": {s: str(self.cv2[s]) for s in sp_},
                "propensities": [str(a) for a in self.propensities],
                "jacobian": [[str(e) for e in row] for row in self.jacobian.tolist()],
                "diffusion": [[str(e) for e in row] for row in self.diffusion.tolist()],
                "totals": {k: str(v) for k, v in self.totals.items()},
            }
        }

    def summary(self) -> str:
        lines = [
            f"symbolic stationary LNA{f' of {self.model!r}' if self.model else ''} "
            "(molecule counts)"
        ]
        for k, v in self.totals.items():
            lines.append(f"  conservation: {v} = {k}")
        for s in self.species:
            lines.append(f"  <{s}>     = {self.mean[s]}")
        for s in self.species:
            lines.append(f"  Fano({s}) = {self.fano[s]}")
        n = len(self.species)
        for i in range(n):
            for j in range(i + 1, n):
                c = self.covariance[i, j]
                if c != 0:
                    lines.append(f"  Cov({self.species[i]}, {self.species[j]}) = {c}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def lna_symbolic(
    net: ReactionNetwork,
    *,
    params: Mapping[str, float] | None = None,
    keep_sizes: bool = False,
    totals: str = "symbolic",
    counts_per_amount: float | None = None,
    simplify: bool = True,
    max_species: int = MAX_SPECIES,
    max_reactions: int = MAX_REACTIONS,
) -> SymbolicLna:
    """The stationary LNA of ``net`` as formulas (module docstring).

    ``params``: numeric values to substitute for these parameters (the others stay symbols);
    ``keep_sizes``: keep compartment sizes as symbols; ``totals``: ``"symbolic"`` (a symbol
    ``T1, T2, ...`` per conservation law) or ``"initial"`` (their values at the initial state);
    ``simplify``: simplify every entry (slower).  Raises
    :class:`~scalebridge.errors.OptionError` for networks beyond ``max_species`` /
    ``max_reactions`` (use :func:`scalebridge.wellmixed.lna.lna_stationary`), and
    :class:`~scalebridge.errors.UnsupportedFeatureError` when sympy finds no closed form.
    """
    if totals not in ("symbolic", "initial"):
        raise OptionError(f"totals must be 'symbolic' or 'initial', not {totals!r}")
    params = dict(params or {})
    problem = TimeCourse(net, np.zeros(1), values={})
    prepared = _prepare(problem, counts_per_amount)
    sm = prepared.sm
    species = list(sm.species)
    n, n_r = len(species), len(sm.reactions)
    if n > max_species or n_r > max_reactions:
        raise OptionError(
            f"the network has {n} species and {n_r} reactions, beyond the symbolic LNA's limit "
            f"({max_species} species, {max_reactions} reactions): use the numeric "
            "lna_stationary (scalebridge analyze MODEL --lna)"
        )
    cm, T = sm.cm, sm.tables
    scale = sympy.nsimplify(float(T.scale)) if float(T.scale).is_integer() else T.scale
    counts = {s: sympy.Symbol(s, real=True, nonnegative=True) for s in species}
    compartments = {c.id for c in net.compartments}
    v0 = prepared.v0

    def value_of(name: str) -> float:
        return float(v0[cm.slots[name]])

    subs: dict[str, Any] = {AMOUNT + s: counts[s] / scale for s in species}
    for name in list(cm.slots):
        if name in compartments and not keep_sizes:
            subs[name] = sympy.nsimplify(value_of(name), rational=True)
        elif name in params:
            subs[name] = sympy.nsimplify(float(params[name]), rational=True)
    unknown = sorted(k for k in params if k not in cm.slots)
    if unknown:
        raise OptionError(f"no parameter named {', '.join(map(repr, unknown))}")

    laws = expanded_laws(sm)
    props = []
    for j, law in enumerate(laws):
        try:
            props.append(sympy.nsimplify(scale) * to_sympy(law, subs))
        except UnsupportedFeatureError as e:
            raise UnsupportedFeatureError(
                "rate law without a symbolic form", element=sm.reactions[j], detail=str(e)
            ) from None
    cols = np.repeat(np.arange(n_r), np.diff(T.st_ptr))
    S = sympy.zeros(n, n_r)
    for p, col in enumerate(cols):
        S[int(T.st_idx[p]), int(col)] += sympy.Integer(int(T.st_val[p]))
    xs = [counts[s] for s in species]
    a = sympy.Matrix(props)
    drift = S * a

    # Conservation laws: integer vectors spanning the left null space of S.
    laws_c = []
    for vec in S.T.nullspace():
        den = sympy.ilcm(*[sympy.fraction(v)[1] for v in vec])
        vec = vec * den
        g = sympy.igcd(*[int(v) for v in vec if v != 0])
        vec = vec / g
        if sum(1 for v in vec if v < 0) > sum(1 for v in vec if v > 0):
            vec = -vec
        laws_c.append(vec)
    x0 = prepared.x0
    total_syms: dict[str, Any] = {}
    law_eqs = []
    numeric_env = _numeric_env(cm, v0, params, keep_sizes, compartments)
    for k, vec in enumerate(laws_c):
        lhs = sum(vec[i] * xs[i] for i in range(n))
        tot_value = float(sum(float(vec[i]) * float(x0[i]) for i in range(n)))
        if totals == "symbolic":
            tsym = sympy.Symbol(f"T{k + 1}", real=True, positive=True)
            total_syms[str(tsym)] = lhs
            numeric_env[str(tsym)] = tot_value
            law_eqs.append(lhs - tsym)
        else:
            law_eqs.append(lhs - sympy.nsimplify(tot_value, rational=True))

    mean = _steady(list(drift) + law_eqs, xs, numeric_env, net.id)
    at = {x: mean[x] for x in xs}
    da = a.jacobian(xs)
    J = (S * da).xreplace(at)
    a_star = a.xreplace(at)
    D = S * sympy.diag(*a_star) * S.T
    cov = _lyapunov(J, D, laws_c, n)
    tidy = _tidy if simplify else (lambda e: e)
    mean_d = {s: tidy(mean[counts[s]]) for s in species}
    cov = cov.applyfunc(tidy)
    fano = {s: tidy(cov[i, i] / mean[counts[s]]) if mean[counts[s]] != 0 else sympy.nan
            for i, s in enumerate(species)}  # fmt: skip
    cv2 = {s: tidy(cov[i, i] / mean[counts[s]] ** 2) if mean[counts[s]] != 0 else sympy.nan
           for i, s in enumerate(species)}  # fmt: skip
    free: set[Any] = set()
    for entry in (*mean_d.values(), *cov):
        free |= sympy.sympify(entry).free_symbols
    values = {str(s): numeric_env[str(s)] for s in free if str(s) in numeric_env}
    return SymbolicLna(
        species=tuple(species),
        counts=counts,
        propensities=tuple(tidy(p) for p in props),
        stoichiometry=S,
        mean=mean_d,
        jacobian=J.applyfunc(tidy),
        diffusion=D.applyfunc(tidy),
        covariance=cov,
        fano=fano,
        cv2=cv2,
        totals=total_syms,
        values=values,
        model=net.id,
    )


def _tidy(e: Any) -> Any:
    return sympy.simplify(sympy.factor(sympy.cancel(e)))


def _numeric_env(cm: Any, v0: np.ndarray, params: Mapping[str, float], keep_sizes: bool,
                 compartments: set[str]) -> dict[str, float]:  # fmt: skip
    """Every model symbol's value (for choosing the admissible root and :meth:`evaluate`)."""
    env: dict[str, float] = {}
    for name, slot in cm.slots.items():
        if name.startswith("\0") or "#" in name:
            continue
        env[name] = float(params.get(name, v0[slot]))
    return env


def _steady(eqs: list[Any], xs: list[Any], env: Mapping[str, float], model: str) -> dict[Any, Any]:
    """The admissible root of ``eqs`` (real, non-negative counts at the model's values)."""
    eqs = [e for e in (sympy.expand(q) for q in eqs) if e != 0]
    try:
        sols = sympy.solve(eqs, xs, dict=True)
    except NotImplementedError:
        sols = []
    sols = [s for s in sols if all(x in s for x in xs)]
    if not sols:
        raise UnsupportedFeatureError(
            "steady state without a closed form",
            element=model or None,
            detail="sympy could not solve the rate equations; use the numeric lna_stationary",
        )
    good = []
    for s in sols:
        try:
            vals = [complex(_subs_env(s[x], env)) for x in xs]
        except (TypeError, ValueError):
            continue  # a symbol without a value: cannot be judged
        if all(
            abs(v.imag) <= 1e-9 * (1 + abs(v.real))
            and v.real >= -ADMISSIBLE_TOL * (1 + abs(v.real))
            for v in vals
        ):
            good.append(s)
    if len(good) != 1:
        raise UnsupportedFeatureError(
            "steady state not unique",
            element=model or None,
            detail=f"{len(good)} of the {len(sols)} roots are real and non-negative at the "
            "model's values; use the numeric lna_stationary",
        )
    return good[0]


def _subs_env(e: Any, env: Mapping[str, float]) -> Any:
    rep = {s: env[str(s)] for s in sympy.sympify(e).free_symbols if str(s) in env}
    return sympy.N(sympy.sympify(e).xreplace(rep))


def _lyapunov(J: sympy.Matrix, D: sympy.Matrix, laws: list[Any], n: int) -> sympy.Matrix:
    """Symmetric ``Sigma`` with ``J Sigma + Sigma J^T + D = 0`` and ``c_k^T Sigma = 0``."""
    unknowns = {}
    Sig = sympy.zeros(n, n)
    for i in range(n):
        for j in range(i, n):
            u = sympy.Symbol(f"_sigma_{i}_{j}")
            unknowns[(i, j)] = u
            Sig[i, j] = Sig[j, i] = u
    R = J * Sig + Sig * J.T + D
    eqs = [R[i, j] for i in range(n) for j in range(i, n)]
    for c in laws:
        eqs += list(c.T * Sig)
    syms = list(unknowns.values())
    sol = sympy.linsolve(eqs, syms)
    if not sol:
        raise SolverError(
            "no stationary covariance: the Lyapunov equation has no solution (the steady state "
            "is not stable)"
        )
    (vals,) = tuple(sol)
    vals = tuple(vals)
    if any(v.free_symbols & set(syms) for v in vals):
        raise SolverError(
            "the stationary covariance is not unique (the Jacobian is singular on the "
            "conservation surface)"
        )
    out = sympy.zeros(n, n)
    for (i, j), v in zip(unknowns, vals, strict=True):
        out[i, j] = out[j, i] = v
    return out
