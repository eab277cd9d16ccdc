"""Structural identifiability of ODE models: local by exact rank tests, global by Gröbner bases.

Which parameters (and unknown initial values) of ``dx/dt = f(x, p, u)``, ``y = g(x, p, u)`` do
perfect, noise-free output data determine?  :func:`structural_identifiability` answers for every
unknown with one of four labels:

``globally``
    one value is compatible with the output (for generic true values);
``locally-not-globally``
    finitely many values (at least two) are;
``locally``
    finitely many are, and the exact global test did not finish within the time budget;
``non-identifiable``
    infinitely many are.

Method
------
*Local* (Sedoglavic 2002; the rank condition of Hermann and Krener).  The model is written in
rational form (:mod:`scalebridge.infer.rational`).  At a random point of F_p (p = 2^61 - 1) the
power series solution and its exact sensitivities give the Jacobian ``J`` of the output Taylor
coefficients ``y_i,k`` (``k = 0 .. K``, ``K`` = number of unknowns, enough for the rank to
stabilize) with respect to the unknowns (:mod:`scalebridge.infer.series`).  An unknown is locally
identifiable exactly when its unit vector lies in the row space of ``J`` at a generic point,
i.e. when every kernel vector of ``J`` vanishes on its column.  The rank at a random point
equals the generic rank unless a nonzero minor vanishes there; by the Schwartz–Zippel lemma this
happens with probability at most ``deg / (p - 1)``, and :attr:`IdentifiabilityResult.error_bound`
states the resulting bound (a degree bound for the minors of ``J``, derived from the degrees of
the model's numerators and denominators, summed over every rank the labels rely on).

*Global* (SIAN; Hong, Ovchinnikov, Pogudin, Yap 2019).  A polynomial system in the jets of the
states, at a second random point modulo a 31-bit prime, is solved by a Gröbner basis
(:mod:`scalebridge.infer.sian`, :mod:`scalebridge.infer.groebner`); a locally identifiable unknown
is globally identifiable when it takes one value on all solutions.  The orders of the output
derivatives are those at which the rank grew, plus one (which removed the spurious solutions of
the minimal truncation in every case tried), and state jets use the weights of Ilmer et al. (2022)
(``x -> x^w``, ``w`` = 1 + distance from the outputs), which leave the parameter values of the
solutions unchanged and shorten the computation.  ``locally-not-globally`` is reported when a
second solution is found explicitly and its power series reproduces the output series to order
``2 (number of unknowns) + 2`` (a certificate, named in the notes), or when the other solutions
are not defined over F_p (said in the notes).  The step runs under a time budget; what it does
not settle stays ``locally``.  Its answers hold for the sampled point and prime; a wrong answer
needs that point (or prime) to fall on a proper algebraic subset, whose probability the code
does not bound.

*Identifiable combinations* (:mod:`scalebridge.infer.combinations`): monomials and low-degree
polynomials of the non-identifiable unknowns whose gradients lie in the row space of ``J`` at
random points (``koff/kon``, ``k1 + k2``), checked at an independent point, a maximal independent
family of them; and, for unknowns that are ``locally-not-globally`` identifiable, polynomials that
the Gröbner basis shows to be globally identifiable (``beta + delta``, ``beta*delta``).  Each
combination carries a label: ``globally`` when the Gröbner basis shows it, else ``locally``.
Initial values appear in combinations as ``<state>_0``.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any

import flint

from ..errors import ModelError, OptionError, UnsupportedFeatureError
from ..model.expr import Expr, substitute, symbols, to_infix
from ..model.odetext import OdeModel
from .combinations import (
    CandidateCombination,
    combination_expr,
    find_combinations,
)
from .groebner import GroebnerTimeout
from .rational import RationalModel, rationalize
from .series import DivisionByZeroSeries, Point, columns, sample_point, taylor
from .sian import RationalForms, SianSystem, build_system, degree_bound, rational_forms

__all__ = [
    "DEFAULT_BUDGET",
    "LABELS",
    "Combination",
    "IdentifiabilityResult",
    "identifiability_report",
    "parse_output_options",
    "structural_identifiability",
    "with_outputs",
]

LABELS = ("globally", "locally-not-globally", "locally", "non-identifiable")
LOCAL_PRIME = 2**61 - 1  # a Mersenne prime; FLINT's word-size modular arithmetic
GLOBAL_PRIME = 2147483629  # the largest prime below 2^31 (the F4 code needs p < 2^31)
DEFAULT_BUDGET = 5.0


@dataclass(frozen=True)
class Combination:
    """An identifiable combination of unknowns.

    ``expression`` is an expression tree over parameter names and ``<state>_0`` for initial
    values (``ic_names`` maps those back to states); ``label`` is ``globally`` when the Gröbner
    basis proved it, else ``locally``."""

    expression: Expr
    label: str
    variables: tuple[str, ...]

    @property
    def text(self) -> str:
        return to_infix(self.expression)


@dataclass(frozen=True)
class IdentifiabilityResult:
    """Labels (see :data:`LABELS`) for parameters and unknown initial values, and combinations.

    * ``parameters`` / ``initial_conditions`` -- name -> label (initial values by state);
    * ``combinations`` -- identifiable combinations of non-identifiable or locally (not
      globally) identifiable unknowns; ``combinations_complete`` says whether the search found
      a full independent family;
    * ``rank`` / ``unknowns`` -- rank of the output Jacobian and number of unknowns;
    * ``error_bound`` -- upper bound on the probability that a local label is wrong;
    * ``global_decided`` -- unknowns whose global status the Gröbner step settled;
    * ``orders`` -- output derivative orders used for the global step;
    * ``ic_names`` -- the names ``<state>_0`` used for initial values in combinations;
    * ``timings`` -- seconds per stage; ``notes`` -- rewriting and method remarks.
    """

    parameters: dict[str, str]
    initial_conditions: dict[str, str]
    combinations: tuple[Combination, ...]
    combinations_complete: bool
    rank: int
    unknowns: int
    error_bound: float
    global_decided: tuple[str, ...]
    global_attempted: bool
    orders: dict[str, int]
    outputs: tuple[str, ...]
    ic_names: dict[str, str]
    timings: dict[str, float]
    notes: tuple[str, ...] = ()
    seed: int | None = None
    source: str | None = None
    local_prime: int = LOCAL_PRIME
    global_prime: int = GLOBAL_PRIME
    _extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def identifiable(self, name: str) -> bool:
        """Is the parameter (or the initial value of the state) ``name`` identifiable?"""
        lab = self.parameters.get(name, self.initial_conditions.get(name))
        if lab is None:
            raise KeyError(name)
        return lab != "non-identifiable"

    @property
    def probability_statement(self) -> str:
        return (
            f"Local labels come from exact rank computations modulo p = 2^61 - 1 at a uniformly "
            f"random point; by the Schwartz-Zippel lemma the probability that any of them is "
            f"wrong is at most {self.error_bound:.3g}.  Global labels come from a Gröbner basis "
            f"modulo {self.global_prime} at a second random point; they are exact for that point "
            "and prime (a wrong answer needs the point to fall on a proper algebraic subset)."
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``scalebridge identifiability --json``)."""
        return {
            "parameters": dict(self.parameters),
            "initial_conditions": dict(self.initial_conditions),
            "identifiable_combinations": [
                {"expression": c.text, "label": c.label, "variables": list(c.variables)}
                for c in self.combinations
            ],
            "combinations_complete": self.combinations_complete,
            "outputs": list(self.outputs),
            "rank": self.rank,
            "unknowns": self.unknowns,
            "error_bound": self.error_bound,
            "probability": self.probability_statement,
            "global": {
                "attempted": self.global_attempted,
                "decided": list(self.global_decided),
                "prime": self.global_prime,
                "orders": dict(self.orders),
            },
            "initial_value_names": dict(self.ic_names),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "notes": list(self.notes),
            "seed": self.seed,
        }

    def to_text(self) -> str:
        """A short human-readable report."""
        lines = []
        w = max([len(n) for n in (*self.parameters, *self.initial_conditions)] + [4])
        if self.parameters:
            lines.append("parameters:")
            lines += [f"  {n:<{w}}  {lab}" for n, lab in self.parameters.items()]
        if self.initial_conditions:
            lines.append("initial conditions:")
            lines += [f"  {n:<{w}}  {lab}" for n, lab in self.initial_conditions.items()]
        if self.combinations:
            lines.append("identifiable combinations:")
            lines += [f"  {c.text}  ({c.label})" for c in self.combinations]
            used = {v for c in self.combinations for v in c.variables}
            ics = [f"{nm} = {s}(0)" for s, nm in self.ic_names.items() if nm in used]
            if ics:
                lines.append("  (initial values: " + ", ".join(ics) + ")")
            if not self.combinations_complete:
                lines.append("  (the search did not find a complete independent family)")
        lines.append(
            f"rank {self.rank} of {self.unknowns} unknowns; P(wrong local label) <= "
            f"{self.error_bound:.2g}"
        )
        if self.global_attempted and len(self.global_decided) < sum(
            1
            for v in (*self.parameters.values(), *self.initial_conditions.values())
            if v != "non-identifiable"
        ):
            lines.append("global status not settled within the time budget for some unknowns")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Model input
# ---------------------------------------------------------------------------------------------
def _as_ode_model(model: Any, outputs: Any, *, require_outputs: bool = True) -> OdeModel:
    from ..model.network import ReactionNetwork

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix.lower() in (".txt", ".ode"):
            from ..model.odetext import read_ode_text

            model = read_ode_text(path)
        else:
            from ..api import load

            model = load(path)
    if isinstance(model, ReactionNetwork):
        from .network import ode_model_from_network

        model = ode_model_from_network(model, outputs=outputs)
        outputs = None
    if not isinstance(model, OdeModel):
        raise OptionError(
            f"expected an OdeModel, a ReactionNetwork or a model file, got {type(model).__name__}"
        )
    if outputs is not None:
        model = with_outputs(model, outputs)
    if require_outputs and not model.outputs:
        raise ModelError(
            "the model has no outputs ('y = ...' lines): nothing is measured",
            source=model.source,
        )
    return model


def with_outputs(model: OdeModel, outputs: Mapping[str, Expr | str] | Sequence[str]) -> OdeModel:
    """``model`` with its outputs replaced: a sequence selects outputs of the model by name;
    a mapping gives output name -> expression (an Expr or text, parsed by the one whitelist
    parser with the model's names)."""
    from ..model.parse import parse_expr

    if isinstance(outputs, Mapping):
        new: dict[str, Expr] = {}
        names = set(model.symbols)
        for name, e in outputs.items():
            if isinstance(e, str):
                e = parse_expr(
                    e,
                    element=name,
                    source=model.source,
                    time_names=tuple(n for n in ("t", "time") if n not in names),
                    shadow=names,
                )
            new[name] = e
        return model.replace(outputs=new)
    missing = [y for y in outputs if y not in model.outputs]
    if missing:
        raise ModelError(
            f"no output named '{missing[0]}' (outputs: {', '.join(model.outputs) or 'none'})",
            element=missing[0],
            source=model.source,
        )
    return model.replace(outputs={y: model.outputs[y] for y in outputs})


# ---------------------------------------------------------------------------------------------
# The local engine
# ---------------------------------------------------------------------------------------------
class _Local:
    """Jacobians of output Taylor coefficients at random points modulo a prime."""

    def __init__(self, rm: RationalModel, p: int, rng: random.Random):
        self.rm = rm
        self.p = p
        self.rng = rng
        self.n_unknown = len(rm.parameters) + len(rm.unknown_initial)
        extra = len(rm.states) * (1 + len(rm.unknown_inputs)) if rm.unknown_inputs else 0
        self.K = self.n_unknown + extra
        self.in_order = self.K if rm.unknown_inputs else 0
        self.cols = columns(rm, self.in_order)

    def sample(self) -> tuple[Point, Any]:
        for _ in range(4):
            pt = sample_point(self.rm, self.p, self.K + 4, self.rng)
            try:
                tr = taylor(self.rm, pt, self.K, input_order=self.in_order)
            except DivisionByZeroSeries:
                continue
            return pt, tr
        raise UnsupportedFeatureError(
            "model with a denominator that vanishes at t = 0",
            source=self.rm.source,
            detail="a rational term is not defined at the initial state for any sampled point "
            "(for example a known initial value of 0 in a denominator)",
        )

    def rows(self, tr: Any) -> list[list[int]]:
        return [tr.dy[y][k] for k in range(self.K + 1) for y in self.rm.outputs]

    def kernel(self, rows: list[list[int]]) -> tuple[int, list[list[int]]]:
        n = len(self.cols)
        if not rows or n == 0:
            return 0, [[int(i == j) for i in range(n)] for j in range(n)]
        M = flint.nmod_mat(len(rows), n, [v for r in rows for v in r], self.p)
        N, nul = M.nullspace()
        ker = [[int(N[i, j]) for i in range(n)] for j in range(nul)]
        return n - nul, ker

    def point_values(self, pt: Point) -> list[int]:
        out = []
        for kind, name, a in self.cols:
            if kind == "input":
                out.append(pt.unknown_inputs[name][a])
            else:
                out.append(pt.values[name])
        return out


def _rank(rows: list[list[int]], n: int, p: int) -> int:
    if not rows or n == 0:
        return 0
    return flint.nmod_mat(len(rows), n, [v for r in rows for v in r], p).rank()


def _select_orders(
    rm: RationalModel, tr: Any, n: int, K: int, p: int
) -> tuple[dict[str, int], list[list[int]]]:
    """Greedy output orders: row (y, k) is kept while it raises the rank (level by level)."""
    sel: list[list[int]] = []
    orders = {y: -1 for y in rm.outputs}
    active = set(rm.outputs)
    for k in range(K + 1):
        for y in rm.outputs:
            if y not in active:
                continue
            cand = [*sel, tr.dy[y][k]]
            if _rank(cand, n, p) > len(sel):
                sel = cand
                orders[y] = k
            else:
                active.discard(y)
        if not active:
            break
    return orders, sel


def _weights(rm: RationalModel) -> dict[str, int]:
    """1 + distance of each state from the outputs in the dependency graph."""
    dist: dict[str, int] = {}
    frontier = [s for s in rm.states if any(s in symbols(e) for e in rm.outputs.values())]
    for s in frontier:
        dist[s] = 0
    while frontier:
        nxt = []
        for s in frontier:
            for s2 in symbols(rm.equations[s]):
                if s2 in rm.equations and s2 not in dist:
                    dist[s2] = dist[s] + 1
                    nxt.append(s2)
        frontier = nxt
    return {s: dist.get(s, 0) + 1 for s in rm.states}


def _error_bound(forms: RationalForms, K: int, rank: int, ncols: int, p: int) -> float:
    """Schwartz–Zippel bound for the local labels (see the module docstring).

    The polynomial form of the model (each denominator Q becomes a state 1/Q) has right-hand
    sides of degree ``d``; Taylor coefficient ``k`` of a state is then a polynomial of degree
    ``<= 1 + k (d - 1)`` in the random values, an output coefficient of degree ``<= d_g`` times
    that, and clearing the initial values of the added states multiplies by ``q``; a Jacobian
    entry at most doubles it; an r x r minor adds r entries; one minor per rank used (the rank
    of J and of J without each column) plus the non-vanishing of the denominators at t = 0."""
    d = degree_bound(forms)
    has_den = d["f_den"] > 0
    deg_f = max(d["f_num"] + 1, d["f_num"] + d["f_den"] + 2) if has_den else max(d["f_num"], 1)
    q = max(1, d["f_den"], d["g_den"])
    d_g = d["g_num"] + (1 if d["g_den"] > 0 else 0)
    entry = 2 * q * max(d_g, 1) * (1 + K * max(deg_f - 1, 0)) * d["ic"]
    total = (ncols + 1) * rank * entry + d["denominators"] * q
    return min(1.0, total / (p - 1))


# ---------------------------------------------------------------------------------------------
# The analysis
# ---------------------------------------------------------------------------------------------
def structural_identifiability(
    model: Any,
    *,
    outputs: Mapping[str, Expr | str] | Sequence[str] | None = None,
    time_budget: float = DEFAULT_BUDGET,
    combinations: bool = True,
    seed: int | None = 0,
) -> IdentifiabilityResult:
    """Structural identifiability of every parameter and unknown initial value of ``model``.

    ``model`` is an :class:`~scalebridge.model.odetext.OdeModel`, a
    :class:`~scalebridge.model.network.ReactionNetwork` (see
    :func:`scalebridge.infer.network.ode_model_from_network`) or a model file (ODE text
    ``.txt``/``.ode``, SBML, Antimony).  ``outputs`` selects model outputs by name or defines new
    ones (name -> expression).  ``time_budget`` bounds the exact global step in seconds (0 skips
    it: identifiable unknowns are then ``locally``); ``combinations`` searches identifiable
    combinations; ``seed`` fixes the random points (None: fresh).

    Returns an :class:`IdentifiabilityResult`.  Raises
    :class:`~scalebridge.errors.UnsupportedFeatureError` for terms that cannot be written in
    rational form (naming the term)."""
    if time_budget < 0 or not math.isfinite(time_budget):
        raise OptionError(f"time_budget must be a finite number >= 0, got {time_budget}")
    t_start = time.monotonic()
    timings: dict[str, float] = {}
    om = _as_ode_model(model, outputs)
    rm = rationalize(om)
    rng = random.Random(seed if seed is not None else random.SystemRandom().randrange(2**62))
    notes = list(rm.notes)
    if rm.unknown_inputs:
        notes.append(
            "unknown inputs: their Taylor coefficients are unknowns of the rank test up to order "
            "K; the exact global step is not attempted"
        )
    forms = rational_forms(rm)
    timings["rewrite"] = time.monotonic() - t_start

    # -- local --------------------------------------------------------------------------------
    t0 = time.monotonic()
    loc = _Local(rm, LOCAL_PRIME, rng)
    _, tr = loc.sample()
    rows = loc.rows(tr)
    rank, ker = loc.kernel(rows)
    ncols = len(loc.cols)
    base = len(rm.parameters) + len(rm.unknown_initial)
    ident_cols = [c for c in range(base) if all(kv[c] == 0 for kv in ker)]
    local_ok = set(ident_cols)
    bound = _error_bound(forms, loc.K, rank, ncols, LOCAL_PRIME)
    timings["local"] = time.monotonic() - t0

    # -- global -------------------------------------------------------------------------------
    t0 = time.monotonic()
    global_label: dict[int, str] = {}
    attempted = time_budget > 0 and not rm.unknown_inputs and bool(local_ok)
    gctx = _Global(rm, forms, loc, rank, rng, time.monotonic() + time_budget)
    if attempted:
        try:
            gctx.system()
            for c in sorted(local_ok):
                kind, name, _ = loc.cols[c]
                verdict = gctx.decide(_gkey(kind, name))
                if verdict is not None:
                    global_label[c] = verdict
        except GroebnerTimeout as e:
            notes.append(f"global step stopped: {e}")
    timings["global"] = time.monotonic() - t0

    if rm.initial_roots and "locally-not-globally" in global_label.values():
        # x(0) = r^q admits r -> zeta r: other branches of x^(p/q), not other real solutions
        for c, lab in list(global_label.items()):
            if lab == "locally-not-globally":
                del global_label[c]
        notes.append(
            "other solutions found by the global step may be other branches of the roots "
            "x^(p/q); their labels are left at 'locally'"
        )
    else:
        notes += gctx.notes
    labels: dict[int, str] = {}
    for c in range(base):
        if c not in local_ok:
            labels[c] = "non-identifiable"
        else:
            labels[c] = global_label.get(c, "locally")

    # -- combinations -------------------------------------------------------------------------
    t0 = time.monotonic()
    ic_names = _ic_names(rm, om)
    combos: list[Combination] = []
    complete = True
    if combinations:
        combos, complete = _combinations(
            rm, loc, ker, rank, local_ok, labels, gctx if gctx.sian is not None else None, ic_names
        )
    timings["combinations"] = time.monotonic() - t0
    timings["total"] = time.monotonic() - t_start

    # -- report -------------------------------------------------------------------------------
    params: dict[str, str] = {}
    new_to_old = {new: old for old, (new, _) in rm.reparametrized.items()}
    root_state = {r: x for x, (r, _) in rm.initial_roots.items()}
    ics: dict[str, str] = {}
    for c, (kind, name, _) in enumerate(loc.cols[:base]):
        if kind == "parameter" and name in root_state:
            # x(0) = r^q: identifiable with r; its global status is not settled through r^q
            lab = labels[c]
            ics[root_state[name]] = "locally" if lab == "locally-not-globally" else lab
        elif kind == "parameter":
            params[new_to_old.get(name, name)] = labels[c]
        elif name in om.states:
            ics[name] = labels[c]
    params = {p: params[p] for p in om.parameters if p in params}
    ics = {x: ics[x] for x in om.states if x in ics}
    decided = tuple(
        root_state.get(loc.cols[c][1], new_to_old.get(loc.cols[c][1], loc.cols[c][1]))
        for c in sorted(global_label)
        if loc.cols[c][1] in om.states or loc.cols[c][0] == "parameter"
    )
    return IdentifiabilityResult(
        parameters=params,
        initial_conditions=ics,
        combinations=tuple(combos),
        combinations_complete=complete,
        rank=rank,
        unknowns=ncols,
        error_bound=bound,
        global_decided=decided,
        global_attempted=attempted,
        orders=gctx.orders,
        outputs=tuple(om.outputs),
        ic_names={s: ic_names[s] for s in om.states if s in ic_names},
        timings=timings,
        notes=tuple(notes),
        seed=seed,
        source=om.source,
        _extra={"rational_model": rm, "kernel": ker, "local_columns": loc.cols},
    )


def _gkey(kind: str, name: str) -> str:
    return f"p:{name}" if kind == "parameter" else f"x:{name}:0"


class _Global:
    """The exact global step: SIAN systems at random points modulo a 31-bit prime."""

    def __init__(
        self,
        rm: RationalModel,
        forms: RationalForms,
        loc: _Local,
        rank: int,
        rng: random.Random,
        deadline: float,
    ):
        self.rm = rm
        self.forms = forms
        self.loc = loc
        self.rank = rank
        self.rng = rng
        self.deadline = deadline
        self.p = GLOBAL_PRIME
        self.sian: SianSystem | None = None
        self.point: Point | None = None
        self.orders: dict[str, int] = {}
        self.notes: list[str] = []
        self._second: SianSystem | None = None
        self._ref: dict[str, list[int]] | None = None

    def _build(self) -> tuple[SianSystem, dict[str, int], Point]:
        rm, p = self.rm, self.p
        gl = _Local(rm, p, self.rng)
        for _ in range(3):
            pt, tr = gl.sample()
            orders, sel = _select_orders(rm, tr, len(gl.cols), gl.K, p)
            if len(sel) == self.rank:
                break
        else:
            raise GroebnerTimeout("the rank at the second point differs from the first")
        # Slice: fix non-identifiable unknowns until the selected rows have full column rank.
        n = len(gl.cols)
        keep = list(range(n))
        fixed: list[tuple[str, str]] = []
        ident = _identifiable_cols(sel, n, p)
        order = [c for c in range(n) if c not in ident]
        order.sort(key=lambda c: 0 if gl.cols[c][0] == "parameter" else 1)
        for c in order:
            if len(keep) == self.rank:
                break
            trial = [k for k in keep if k != c]
            if _rank([[r[k] for k in trial] for r in sel], len(trial), p) == self.rank:
                keep = trial
                fixed.append((gl.cols[c][0], gl.cols[c][1]))
        # One order beyond the rank-determined ones (see the module docstring).
        orders1 = {y: (h + 1 if h >= 0 else h) for y, h in orders.items()}
        system = build_system(
            rm,
            self.forms,
            pt,
            tr.y,
            orders1,
            fixed,
            deadline=self.deadline,
            weights=_weights(rm),
        )
        if system.basis.is_one:
            raise GroebnerTimeout("the polynomial system has no solution (unlucky point)")
        return system, orders1, pt

    def system(self) -> SianSystem:
        if self.sian is None:
            self.sian, self.orders, self.point = self._build()
        return self.sian

    def second(self) -> SianSystem:
        """An independent system at a fresh point (to confirm identities found on the first)."""
        if self._second is None:
            self._second, _, _ = self._build()
        return self._second

    def reference_outputs(self, order: int) -> dict[str, list[int]]:
        assert self.point is not None
        if self._ref is None or len(next(iter(self._ref.values()), [])) <= order:
            self._ref = taylor(self.rm, self.point, order, gradient=False).y
        return self._ref

    def decide(self, key: str) -> str | None:
        """'globally', 'locally-not-globally' or None (undecided) for the unknown ``key``."""
        sian = self.system()
        if key not in sian.values:
            return None
        f = sian.polynomial({((key, 1),): 1, (): -sian.values[key]})
        if not sian.basis.normal_form(dict(f)):
            return "globally"
        mp = sian.minimal_polynomial(f, deadline=self.deadline)
        if mp is None:
            return None
        if all(int(c) == 0 for c in mp.coeffs()[:-1]):
            return "globally"  # f is nilpotent on the quotient: one value
        others = [int(r) for r, _ in mp.roots() if int(r) != 0]
        for r in others:
            value = (sian.values[key] + r) % self.p
            if self._certify(key, value):
                self.notes.append(
                    f"{key.split(':')[1]}: a second solution with value {value} (mod {self.p}) "
                    "reproduces the output series (certificate of non-global identifiability)"
                )
                return "locally-not-globally"
        if others:
            return None  # other values modulo p that are not genuine solutions: undecided
        self.notes.append(
            f"{key.split(':')[1]}: the other solutions are not defined over F_p; labelled "
            "locally-not-globally without an explicit certificate"
        )
        return "locally-not-globally"

    def _certify(self, key: str, value: int) -> bool:
        sian = self.system()
        assert self.point is not None
        return self.solution_with(sian, self.point, key, value) is not None

    def solution_with(
        self, sian: SianSystem, point: Point, key: str, value: int
    ) -> dict[str, int] | None:
        """A solution of ``sian`` with ``key = value`` (all unknowns, in F_p) that reproduces
        the output Taylor series at ``point`` to order 2 (unknowns) + 2, or None."""
        var = sian.polynomial({((key, 1),): 1})
        cur = sian.with_equations([{**var, 0: (var.get(0, 0) - value) % self.p}], self.deadline)
        found: dict[str, int] = {}
        for k in sian.values:
            if k not in sian.variables:
                found[k] = sian.values[k]
                continue
            if cur.basis.is_one:
                return None
            poly = cur.polynomial({((k, 1),): 1})
            nf = cur.basis.normal_form(dict(poly))
            if not nf or set(nf) == {0}:
                found[k] = nf.get(0, 0)
                continue
            mp = cur.minimal_polynomial(poly, deadline=self.deadline)
            roots = [int(r) for r, _ in mp.roots()] if mp is not None else []
            if not roots:
                return None
            found[k] = roots[0]
            cur = cur.with_equations(
                [{**poly, 0: (poly.get(0, 0) - roots[0]) % self.p}], self.deadline
            )
        if cur.basis.is_one:
            return None
        cand = Point(self.p, dict(point.values), point.inputs, point.unknown_inputs)
        for k, v in found.items():
            cand.values[k.split(":")[1]] = v
        order = 2 * len(self.loc.cols) + 2
        try:
            ref = taylor(self.rm, point, order, gradient=False).y
            got = taylor(self.rm, cand, order, gradient=False).y
        except DivisionByZeroSeries:
            return None
        if all(got[y] == ref[y] for y in ref):
            return found
        return None

    def alternatives(self, sian: SianSystem, point: Point, key: str) -> list[dict[str, int]]:
        """Verified solutions of ``sian`` other than the true point, distinguished by ``key``."""
        if key not in sian.variables:
            return []
        f = sian.polynomial({((key, 1),): 1, (): -sian.values[key]})
        mp = sian.minimal_polynomial(f, deadline=self.deadline)
        if mp is None:
            return []
        out = []
        for r, _ in mp.roots():
            if int(r) == 0:
                continue
            sol = self.solution_with(sian, point, key, (sian.values[key] + int(r)) % self.p)
            if sol is not None:
                out.append(sol)
        return out

    def fresh(self) -> tuple[SianSystem, Point]:
        """A new system at a fresh random point."""
        system, _, pt = self._build()
        return system, pt


def _identifiable_cols(rows: list[list[int]], n: int, p: int) -> set[int]:
    if not rows:
        return set()
    M = flint.nmod_mat(len(rows), n, [v for r in rows for v in r], p)
    N, nul = M.nullspace()
    return {c for c in range(n) if all(int(N[c, j]) == 0 for j in range(nul))}


def _ic_names(rm: RationalModel, om: OdeModel) -> dict[str, str]:
    taken = set(om.symbols) | set(om.outputs) | set(rm.states) | set(rm.parameters)
    out = {}
    for s in rm.states:
        nm = f"{s}_0"
        while nm in taken:
            nm += "_"
        taken.add(nm)
        out[s] = nm
    return out


def _combinations(
    rm: RationalModel,
    loc: _Local,
    ker: list[list[int]],
    rank: int,
    local_ok: set[int],
    labels: dict[int, str],
    gctx: _Global | None,
    ic_names: Mapping[str, str],
) -> tuple[list[Combination], bool]:
    base = len(rm.parameters) + len(rm.unknown_initial)
    new_to_old = {new: old for old, (new, _) in rm.reparametrized.items()}

    def display(c: int) -> str:
        kind, name, _ = loc.cols[c]
        return name if kind == "parameter" else ic_names[name]

    stands_for = {new: term for _, (new, term) in rm.reparametrized.items()}

    def expression(cand: CandidateCombination, names: list[str]) -> Expr:
        # reparametrized parameters appear as the terms they stand for (exp(-E/T), K^n)
        return (
            substitute(combination_expr(cand, names), stands_for)
            if stands_for
            else (combination_expr(cand, names))
        )

    def used_names(cand: CandidateCombination, names: list[str]) -> tuple[str, ...]:
        out_: list[str] = []
        for nm, e in zip(names, _support(cand), strict=True):
            if not e:
                continue
            if nm in stands_for:
                out_ += sorted(symbols(stands_for[nm]) & set(rm_params_original))
            else:
                out_.append(nm)
        return tuple(dict.fromkeys(out_))

    rm_params_original = [new_to_old.get(q, q) for q in rm.parameters]

    def gkey(c: int) -> str:
        kind, name, _ = loc.cols[c]
        return f"p:{name}" if kind == "parameter" else f"x:{name}:0"

    out: list[Combination] = []
    complete = True
    # Non-identifiable unknowns (excluding added states' initial values and input coefficients).
    nonid = [
        c
        for c in range(base)
        if c not in local_ok
        and (loc.cols[c][0] == "parameter" or loc.cols[c][1] in rm.original_states)
    ]
    # Independent identifiable directions not explained by identifiable unknowns themselves.
    id_inputs = sum(1 for c in range(base, len(loc.cols)) if all(kv[c] == 0 for kv in ker))
    target = rank - len(local_ok) - id_inputs
    if nonid and target > 0:

        def oracle() -> tuple[list[int], list[list[int]]]:
            pt, tr = loc.sample()
            _, k = loc.kernel(loc.rows(tr))
            return loc.point_values(pt), k

        params_cols = [c for c in nonid if loc.cols[c][0] == "parameter"]
        id_cols = [
            c
            for c in sorted(local_ok)
            if loc.cols[c][0] == "parameter" or loc.cols[c][1] in rm.original_states
        ]
        found, complete, pcols = find_combinations(
            oracle, nonid, len(loc.cols), loc.p, target, preferred=params_cols, extra_cols=id_cols
        )
        names = [display(c) for c in pcols]
        for cand in found:
            label = "locally"
            if gctx is not None and gctx.sian is not None:
                try:
                    label = _combination_label(cand, pcols, gkey, gctx.sian, gctx.deadline)
                except GroebnerTimeout:
                    label = "locally"
            out.append(Combination(expression(cand, names), label, used_names(cand, names)))
    # Locally-not-globally unknowns: globally identifiable polynomials via normal forms.
    lng = [c for c in range(base) if labels.get(c) == "locally-not-globally"]
    lng = [c for c in lng if loc.cols[c][0] == "parameter"]
    if lng and gctx is not None and gctx.sian is not None:
        glob = [
            c for c in range(base) if labels.get(c) == "globally" and loc.cols[c][0] == "parameter"
        ]
        try:
            found_g = _global_polynomials(gctx, lng, glob, gkey)
        except GroebnerTimeout:
            found_g = []
        for cand, vars_ in found_g:
            names = [display(c) for c in vars_]
            out.append(Combination(expression(cand, names), "globally", used_names(cand, names)))
    return out, complete


def _support(c: CandidateCombination) -> list[int]:
    n = len(c.terms[0][0])
    return [int(any(e[i] for e, _ in c.terms)) for i in range(n)]


def _combination_label(
    cand: CandidateCombination,
    var_cols: Sequence[int],
    gkey: Any,
    sian: SianSystem,
    deadline: float,
) -> str:
    """Global label of ``cand`` (a locally identifiable function) from the Gröbner basis."""
    p = sian.p
    keys = [gkey(c) for c in var_cols]
    vals = [sian.values[k] for k in keys]
    num, den = cand.numerator_denominator()

    def ev(poly: Mapping[tuple[int, ...], int]) -> int:
        total = 0
        for exps, c in poly.items():
            t = c % p
            for v, e in zip(vals, exps, strict=True):
                t = t * pow(v, e, p) % p
            total = (total + t) % p
        return total

    dv = ev(den)
    if dv == 0:
        return "locally"
    phi = ev(num) * pow(dv, -1, p) % p
    terms: dict[tuple[tuple[str, int], ...], int] = {}
    for exps, c in num.items():
        key = tuple((k, e) for k, e in zip(keys, exps, strict=True) if e)
        terms[key] = (terms.get(key, 0) + c) % p
    for exps, c in den.items():
        key = tuple((k, e) for k, e in zip(keys, exps, strict=True) if e)
        terms[key] = (terms.get(key, 0) - phi * c) % p
    verdict = sian.constant_on_solutions(sian.polynomial(terms), deadline=deadline)
    if verdict is None:
        return "locally"
    return "globally" if verdict else "locally-not-globally"


def _global_polynomials(
    gctx: _Global, lng: Sequence[int], glob: Sequence[int], gkey: Any, max_points: int = 24
) -> list[tuple[CandidateCombination, list[int]]]:
    """Polynomials of degree <= 2 in the locally-not-globally parameters (and the globally
    identified ones) that take the same value at every solution.

    At each random point the other solutions are found explicitly (and checked against the
    output series); ``phi(other) = phi(true)`` is linear in the coefficients of ``phi``.  Points
    are added until the solution space stops shrinking; small integer coefficients are then
    recovered by rational reconstruction and checked at one more point."""
    p = gctx.p
    vars_ = list(lng) + list(glob)
    keys = [gkey(c) for c in vars_]
    nv, nl = len(vars_), len(lng)
    support: list[tuple[int, ...]] = [tuple(int(i == j) for i in range(nv)) for j in range(nv)]
    for i, j in combinations_with_replacement(range(nv), 2):
        e = [0] * nv
        e[i] += 1
        e[j] += 1
        support.append(tuple(e))
    support = [e for e in support if any(e[:nl])]
    support.sort(key=lambda e: (sum(e), -sum(1 for x in e if x), e[::-1]))

    def mono(vals: Sequence[int], e: Sequence[int]) -> int:
        t = 1
        for v, k in zip(vals, e, strict=True):
            if k:
                t = t * pow(v, k, p) % p
        return t

    def conditions(sian: SianSystem, point: Point) -> list[list[int]] | None:
        alts = gctx.alternatives(sian, point, keys[0])
        if not alts:
            return None
        true = [sian.values[k] for k in keys]
        rows = []
        for alt in alts:
            other = [alt[k] for k in keys]
            rows.append([(mono(other, e) - mono(true, e)) % p for e in support])
        return rows

    rows: list[list[int]] = []
    dim, stable = len(support), 0
    assert gctx.sian is not None and gctx.point is not None
    systems = [(gctx.sian, gctx.point)]
    for it in range(max_points):
        sian, point = systems[it] if it < len(systems) else gctx.fresh()
        new = conditions(sian, point)
        if new is None:
            return []
        rows += new
        basis = _nullspace_rows(rows, len(support), p)
        if len(basis) == dim:
            stable += 1
            if stable >= 2:
                break
        else:
            dim, stable = len(basis), 0
        if dim == 0:
            return []
    else:
        return []
    check_sys, check_pt = gctx.fresh()
    check = conditions(check_sys, check_pt) or []
    out: list[tuple[CandidateCombination, list[int]]] = []
    grads: list[list[int]] = []
    for vec in _nullspace_rows(rows, len(support), p):
        ints = _lift_vector(vec, p)
        if ints is None or max(abs(x) for x in ints) > 1000:
            continue
        if any(sum(c * r for c, r in zip(ints, row, strict=True)) % p for row in check):
            continue
        terms = tuple((e, c) for e, c in zip(support, ints, strict=True) if c)
        if sum(c < 0 for _, c in terms) * 2 > len(terms) or (
            sum(c < 0 for _, c in terms) * 2 == len(terms) and terms[0][1] < 0
        ):
            terms = tuple((e, -c) for e, c in terms)
        cand = CandidateCombination("polynomial", terms)
        g = cand.gradient([gctx.sian.values[k] for k in keys], p)[:nl]
        if not any(g) or _rank([*grads, g], nl, p) < len(grads) + 1:
            continue
        grads.append(g)
        out.append((cand, vars_))
        if len(grads) == nl:
            break
    return out


def _nullspace_rows(rows: list[list[int]], n: int, p: int) -> list[list[int]]:
    from .combinations import _nullspace

    return _nullspace(rows, n, p)


def _lift_vector(vec: Sequence[int], p: int) -> list[int] | None:
    from .combinations import _lift

    return _lift(vec, p)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
_OUTPUT_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)(.+)$", re.ASCII)


def parse_output_options(items: Sequence[str]) -> dict[str, str]:
    """``NAME=EXPRESSION`` strings (``--output``) -> {name: expression text}."""
    out: dict[str, str] = {}
    for item in items:
        m = _OUTPUT_ITEM.match(item)
        if not m or not m.group(2).strip():
            raise OptionError(f"--output {item!r}: expected NAME=EXPRESSION, e.g. y=s*C")
        name = m.group(1)
        if name in out:
            raise OptionError(f"--output: '{name}' is given twice")
        out[name] = m.group(2).strip()
    return out


def identifiability_report(
    model: str | os.PathLike[str],
    *,
    outputs: Sequence[str] = (),
    time_budget: float = DEFAULT_BUDGET,
    seed: int | None = 0,
    as_json: bool = False,
) -> str:
    """The text that ``scalebridge identifiability MODEL [--output NAME=EXPR ...]
    [--time-budget S] [--seed N] [--json]`` prints: the JSON object of
    :meth:`IdentifiabilityResult.to_dict` (``parameters``, ``initial_conditions``,
    ``identifiable_combinations``, ...) or a short text report."""
    outs = parse_output_options(outputs) if outputs else None
    res = structural_identifiability(model, outputs=outs, time_budget=time_budget, seed=seed)
    if as_json:
        return json.dumps(res.to_dict(), indent=2, allow_nan=False)
    return res.to_text().rstrip("\n")
