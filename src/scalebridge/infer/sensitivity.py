"""Forward sensitivities of ODE solutions by the sensitivity equations.

For the state ``x`` (species values as SBML defines them: concentration unless
hasOnlySubstanceUnits) with ``dx/dt = f(x, p, t)`` and ``x(0) = x0(p)``, the sensitivities
``S = dx/dp`` (one column per parameter ``p_j``) solve

    dS/dt = J S + df/dp,        S(0) = dx0/dp,        J = df/dx.

``f`` is built symbolically from the network: a reaction-changed species has
``dx_i/dt = sum_j nu_ij v_j / V_i`` (``/ V_i`` only for concentrations; compartments must be
constant), with kinetic laws' local parameters, user functions, reaction-rate symbols,
assignment rules and the initial assignments of constant symbols substituted, so that
``J`` and ``df/dp`` are exact symbolic derivatives (:func:`scalebridge.model.expr.diff`).

Implementation: the state and the sensitivities become the variables of an *augmented*
network (non-constant parameters with rate rules), which is simulated with scalebridge's
compiled BDF (``simulate(aug, "ode")``), so the states and sensitivities are integrated
together, with the same error control on both.  The augmented network is built once per
model and parameter set; parameter values and initial values are passed per call.

A parameter ``p_j`` may be a model parameter (or a constant species) or a species id,
meaning that species' initial value (``dx0_i/dp_j = 1`` for that species, propagated through
initial assignments; ``df/dp_j = 0``).

Refused (:class:`~scalebridge.errors.UnsupportedFeatureError` naming the element): events,
algebraic constraints the model layer cannot express anyway, rate rules on compartments or
parameters, non-constant compartments, variable stoichiometry, ``rateOf``, fast reactions,
conversion factors, and compartments as sensitivity parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError, UnsupportedFeatureError
from ..model.expr import (
    ZERO,
    Expr,
    Num,
    Sym,
    add,
    diff,
    div,
    evaluate,
    expand_functions,
    fold,
    mul,
    substitute,
    symbols,
    uses_op,
)
from ..model.network import AssignmentRule, Parameter, RateRule, ReactionNetwork
from ..model.rates import stoichiometry_terms

__all__ = ["SensitivityModel", "SensitivityResult", "forward_sensitivities"]


@dataclass
class SensitivityResult:
    """States ``x[t, i]`` and sensitivities ``s[t, i, j] = d x_i(t) / d p_j``."""

    times: np.ndarray
    states: list[str]
    parameters: list[str]
    x: np.ndarray
    s: np.ndarray


class SensitivityModel:
    """The sensitivity system of ``net`` with respect to ``parameters``.

    ``given``: names whose values the caller always supplies (their initial assignments are
    dropped, as :meth:`ReactionNetwork.with_values` does).
    """

    def __init__(
        self,
        net: ReactionNetwork,
        parameters: Sequence[str],
        *,
        given: Iterable[str] = (),
    ):
        self.network = net
        self.parameters = list(parameters)
        self.given = frozenset(given)
        self._check(net)
        self.states = [s.id for s in net.species if net.reaction_changes(s.id)] + [
            r.variable for r in net.rate_rules
        ]
        state_set = set(self.states)
        for p in self.parameters:
            kind = net.kind_of(p)
            if kind == "compartment":
                raise UnsupportedFeatureError(
                    "sensitivity with respect to a compartment size", element=p, source=net.source
                )
            if kind not in ("parameter", "species"):
                raise ModelError("no parameter or species of this name", element=p)
            if p in net.assignment_rule_map:
                raise UnsupportedFeatureError(
                    "sensitivity with respect to a variable set by an assignment rule",
                    element=p,
                    source=net.source,
                )
        self._subst = self._substitutions(net, state_set)
        self.rhs: dict[str, Expr] = {x: self.expand(self._raw_rhs(net, x)) for x in self.states}
        self.jac = {(i, k): diff(self.rhs[i], k) for i in self.states for k in self.states}
        self.dfdp = {
            (i, p): (ZERO if p in state_set else diff(self.rhs[i], p))
            for i in self.states
            for p in self.parameters
        }
        self._names = self._augmented_names()
        self._defaults: dict[str, float] | None = None
        self.augmented = self._augmented_network()
        self._init_cache: dict[frozenset[str], tuple[list[Expr], list[tuple[int, int, Expr]]]] = {}
        self._runner: _Runner | None = None

    # ------------------------------------------------------------------ building

    @staticmethod
    def _check(net: ReactionNetwork) -> None:
        src = net.source
        if net.events:
            raise UnsupportedFeatureError(
                "sensitivities of models with events", element=net.events[0].id, source=src
            )
        for r in net.rate_rules:
            if net.kind_of(r.variable) != "species":
                raise UnsupportedFeatureError(
                    "sensitivities with a rate rule on a compartment or parameter",
                    element=r.variable,
                    source=src,
                )
        for c in net.compartments:
            if not c.constant or c.id in net.assignment_rule_map:
                raise UnsupportedFeatureError(
                    "sensitivities with a non-constant compartment", element=c.id, source=src
                )
        if net.conversion_factor or any(s.conversion_factor for s in net.species):
            raise UnsupportedFeatureError("sensitivities with conversion factors", source=src)
        for rx in net.reactions:
            if rx.fast:
                raise UnsupportedFeatureError("fast reaction", element=rx.id, source=src)
            for ref in rx.species_refs:
                if ref.id and (
                    not ref.constant
                    or ref.id in net.assignment_rule_map
                    or ref.id in net.initial_assignment_map
                ):
                    raise UnsupportedFeatureError(
                        "sensitivities with variable stoichiometry", element=ref.id, source=src
                    )
        maths = [r.rate for r in net.reactions if r.rate is not None]
        maths += [r.math for r in net.assignment_rules] + [r.math for r in net.rate_rules]
        maths += [a.math for a in net.initial_assignments]
        for m in maths:
            if uses_op(m, "rateOf"):
                raise UnsupportedFeatureError("sensitivities of models using rateOf", source=src)

    def _substitutions(self, net: ReactionNetwork, states: set[str]) -> dict[str, Expr]:
        """Symbols replaced by expressions: assignment-rule variables, reaction ids (their
        kinetic laws) and constant symbols set by initial assignments."""
        sub: dict[str, Expr] = {}
        for r in net.assignment_rules:
            sub[r.variable] = self._fn(r.math)
        for rx in net.reactions:
            if rx.rate is None:
                raise UnsupportedFeatureError(
                    "reaction without kinetic law", element=rx.id, source=net.source
                )
            local = {lp.id: Num(float(lp.value or 0.0)) for lp in rx.local_parameters}
            sub[rx.id] = substitute(self._fn(rx.rate), local)
        for a in net.initial_assignments:
            if a.symbol not in states and a.symbol not in self.given and a.symbol not in sub:
                if a.symbol in self.parameters:
                    raise UnsupportedFeatureError(
                        "sensitivity with respect to a symbol set by an initial assignment",
                        element=a.symbol,
                        source=net.source,
                    )
                sub[a.symbol] = self._fn(a.math)
        return sub

    def _fn(self, e: Expr) -> Expr:
        net = self.network
        return expand_functions(e, net.functions_table) if net.functions else e

    def expand(self, e: Expr) -> Expr:
        """``e`` with rule variables, reaction ids and initially-assigned constants replaced,
        down to states, constants and time."""
        for _ in range(len(self._subst) + 2):
            hit = symbols(e) & self._subst.keys()
            if not hit:
                return fold(e)
            e = substitute(e, {k: self._subst[k] for k in hit})
        raise UnsupportedFeatureError("cyclic rules", source=self.network.source)

    def _raw_rhs(self, net: ReactionNetwork, x: str) -> Expr:
        if x in net.rate_rule_map:
            return self._fn(net.rate_rule_map[x].math)
        terms = [mul(c, Sym(rid)) for c, rid in stoichiometry_terms(net, x)]
        total = add(*terms) if terms else ZERO
        s = net.species_map[x]
        return total if s.has_only_substance_units else div(total, Sym(s.compartment))

    def _augmented_names(self) -> dict[tuple[str, str], str]:
        net = self.network
        taken = {*(s.id for s in net.species), *(p.id for p in net.parameters)}
        taken |= {c.id for c in net.compartments} | {r.id for r in net.reactions}
        out: dict[tuple[str, str], str] = {}
        for i, x in enumerate(self.states):
            for j, p in enumerate(self.parameters):
                name = f"sens_{i}_{j}"
                while name in taken:
                    name = "_" + name
                out[(x, p)] = name
        return out

    def _augmented_network(self) -> ReactionNetwork:
        net = self.network
        states = set(self.states)
        params: list[Parameter] = []
        consts = self._constant_defaults()
        for name, v in consts.items():
            params.append(Parameter(id=name, value=v, constant=True))
        rules: list[RateRule] = []
        for x in self.states:
            params.append(Parameter(id=x, value=0.0, constant=False))
            rules.append(RateRule(variable=x, math=self.rhs[x]))
        # Each Jacobian entry becomes an assignment rule, evaluated once per right-hand side
        # instead of once per parameter column of S.
        taken = {q.id for q in params} | set(self._names.values())
        jsym: dict[tuple[str, str], Expr] = {}
        arules: list[AssignmentRule] = []
        for i, x in enumerate(self.states):
            for k_i, k in enumerate(self.states):
                jk = self.jac[(x, k)]
                if jk == ZERO:
                    continue
                if isinstance(jk, Num | Sym):
                    jsym[(x, k)] = jk
                    continue
                name = f"jac_{i}_{k_i}"
                while name in taken:
                    name = "_" + name
                taken.add(name)
                params.append(Parameter(id=name, value=0.0, constant=False))
                arules.append(AssignmentRule(variable=name, math=jk))
                jsym[(x, k)] = Sym(name)
        for x in self.states:
            for p in self.parameters:
                terms = [self.dfdp[(x, p)]]
                for k in self.states:
                    if (x, k) in jsym:
                        terms.append(mul(jsym[(x, k)], Sym(self._names[(k, p)])))
                sname = self._names[(x, p)]
                params.append(Parameter(id=sname, value=0.0, constant=False))
                rules.append(RateRule(variable=sname, math=fold(add(*terms))))
        del states
        return ReactionNetwork(
            id=f"{net.id}_sensitivities",
            parameters=tuple(params),
            rate_rules=tuple(rules),
            assignment_rules=tuple(arules),
        )

    def _constant_defaults(self) -> dict[str, float]:
        """Every non-state symbol the right-hand sides may read, with its declared value."""
        if self._defaults is None:
            self._defaults = self._compute_defaults()
        return dict(self._defaults)

    def _compute_defaults(self) -> dict[str, float]:
        net = self.network
        out: dict[str, float] = {}
        for c in net.compartments:
            out[c.id] = float(c.size if c.size is not None else 1.0)
        for p in net.parameters:
            if p.id not in self._subst:
                out[p.id] = float(p.value if p.value is not None else 0.0)
        for s in net.species:
            if s.id in self.states or s.id in self._subst:
                continue
            out[s.id] = self._declared_species_value(s.id)
        return out

    def _declared_species_value(self, sid: str) -> float:
        s = self.network.species_map[sid]
        size = self.network.compartment_map[s.compartment].size or 1.0
        if s.initial_concentration is not None:
            c = float(s.initial_concentration)
            return c * size if s.has_only_substance_units else c
        if s.initial_amount is not None:
            a = float(s.initial_amount)
            return a if s.has_only_substance_units else a / size
        return 0.0

    # ------------------------------------------------------------------ initial values

    def initial_expressions(self, values: Mapping[str, float]) -> dict[str, Expr]:
        """``x0_i`` as expressions of the constants and of each species' declared initial
        value (the species' own symbol, standing for its initial value)."""
        net = self.network
        out: dict[str, Expr] = {}
        ia = net.initial_assignment_map
        for x in self.states:
            if x in ia and x not in values and x not in self.given:
                out[x] = self.expand(self._fn(ia[x].math))
            else:
                out[x] = Sym(x)
        # An initial assignment may read other states' initial values.
        for _ in range(len(out) + 1):
            changed = False
            for x, e in out.items():
                hit = {k for k in symbols(e) & out.keys() if out[k] != Sym(k)}
                if hit:
                    out[x] = fold(substitute(e, {k: out[k] for k in hit}))
                    changed = True
            if not changed:
                return out
        raise UnsupportedFeatureError("cyclic initial assignments", source=net.source)

    def _env(self, values: Mapping[str, float]) -> dict[str, float]:
        env = self._constant_defaults()
        for x in self.states:
            env[x] = self._declared_species_value(x)
        for k, v in values.items():
            if k in self._subst:
                raise ModelError(
                    f"'{k}' is set by a rule or initial assignment; pass it in 'given'",
                    element=k,
                )
            if k not in env and k not in self.network.species_map:
                raise ModelError(f"'{k}' is not a constant of the model", element=k)
            env[k] = float(v)
        return env

    def initial_values(self, values: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """``x0`` and ``S0 = dx0/dp`` at the given values."""
        return self._initial(self._env(values), values)

    def _initial(
        self, env: Mapping[str, float], values: Mapping[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        # The expressions depend only on which symbols are given, not on their values.
        key = frozenset(k for k in values if k in self.network.initial_assignment_map)
        cached = self._init_cache.get(key)
        if cached is None:
            x0e = self.initial_expressions(values)
            exprs = [x0e[x] for x in self.states]
            ds0 = [
                (i, j, d)
                for i, x in enumerate(self.states)
                for j, p in enumerate(self.parameters)
                if (d := diff(x0e[x], p)) != ZERO
            ]
            cached = self._init_cache[key] = (exprs, ds0)
        exprs, ds0 = cached
        x0 = np.array([evaluate(e, env, time=0.0) for e in exprs])
        s0 = np.zeros((len(self.states), len(self.parameters)))
        for i, j, d in ds0:
            s0[i, j] = evaluate(d, env, time=0.0)
        return x0, s0

    # ------------------------------------------------------------------ solving

    def solve(
        self,
        times: Sequence[float] | np.ndarray,
        values: Mapping[str, float] | None = None,
        *,
        rtol: float = 1e-8,
        atol: float = 1e-10,
        s0: np.ndarray | None = None,
    ) -> SensitivityResult:
        """States and sensitivities at ``times`` (starting at the first time, which is the
        initial time of ``x0``), for parameter/initial values ``values``.

        ``s0`` (states x parameters) replaces the initial sensitivities ``dx0/dp`` (for a
        start from a preequilibrated state).  Error control: ``rtol`` and ``atol`` on the
        states; on the sensitivities to ``p_j``, ``rtol`` and ``atol / |p_j|`` (``atol`` when
        ``p_j = 0``), so that the scaled sensitivities ``p_j dx/dp_j`` are controlled like the
        states (the choice of CVODES).
        """
        values = dict(values or {})
        env = self._env(values)
        x0, s_init = self._initial(env, values)
        if s0 is not None:
            s_init = np.asarray(s0, dtype=np.float64).reshape(s_init.shape)
        if self._runner is None:
            self._runner = _Runner(self)
        grid = np.asarray(times, dtype=np.float64)
        pvals = np.array([abs(env.get(p, 0.0)) for p in self.parameters])
        xs, s = self._runner.run(env, x0, s_init, grid, rtol, atol, pvals)
        return SensitivityResult(
            times=grid, states=list(self.states), parameters=list(self.parameters), x=xs, s=s
        )


class _Runner:
    """The compiled augmented network, with its slot maps, for repeated direct integration
    (no labelled result is built: one gradient needs one run per condition)."""

    def __init__(self, model: SensitivityModel):
        from ..wellmixed.compiled import compiled

        self.model = model
        aug = model.augmented
        self.cm = compiled(aug)
        cm = self.cm
        n, m = len(model.states), len(model.parameters)
        order = [
            *model.states,
            *(model._names[(x, p)] for x in model.states for p in model.parameters),
        ]
        if cm.state_keys != order:  # the compiler keeps the rate rules' order
            raise AssertionError("unexpected state order of the augmented network")
        self.n, self.m = n, m
        self.K = cm.with_records([cm.slots[k] for k in order])
        self.y, self.v = cm.initial({}, 0.0, default_size=1.0)
        self.fixed = [(k, cm.slots[k]) for k in cm.fixed_keys]
        self.state_slots = np.array([cm.slots[k] for k in order], dtype=np.int64)

    def run(
        self,
        env: Mapping[str, float],
        x0: np.ndarray,
        s0: np.ndarray,
        grid: np.ndarray,
        rtol: float,
        atol: float,
        pvals: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        from ..errors import SolverError
        from ..wellmixed.bdf import solve as bdf_solve

        cm, K, n, m = self.cm, self.K, self.n, self.m
        v = self.v.copy()
        for k, slot in self.fixed:
            if k in env:
                v[slot] = env[k]
        y = np.concatenate([x0, s0.reshape(-1)])
        v[self.state_slots] = y
        v[0] = float(grid[0])
        a = np.empty(n * (1 + m))
        a[:n] = atol
        with np.errstate(divide="ignore"):
            a_s = np.where(pvals > 0.0, atol / pvals, atol)
        a[n:] = np.tile(a_s, n)
        out = np.full((grid.size, n * (1 + m)), np.nan)
        ws = cm.take("sens/bdf")
        res = bdf_solve(
            K, float(grid[0]), y, float(grid[-1]), grid, 1, out, v, rtol=rtol, atol=a,
            max_steps=500_000, workspace=ws,
        )  # fmt: skip
        cm.give("sens/bdf", res.workspace)
        if not res.ok:
            res.raise_for_status(cm.state_names)
        out[0] = y
        if res.i_out < grid.size:  # the final time itself
            out[res.i_out :] = res.y
        if not np.all(np.isfinite(out)):
            raise SolverError("sensitivities became NaN or infinite")
        xs = out[:, :n]
        return xs, out[:, n:].reshape(grid.size, n, m)


def forward_sensitivities(
    net: ReactionNetwork,
    parameters: Sequence[str],
    times: Sequence[float] | np.ndarray,
    values: Mapping[str, float] | None = None,
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> SensitivityResult:
    """Solve the sensitivity equations of ``net`` with respect to ``parameters`` (model
    parameters, or species ids for initial values) at ``times`` (see the module docstring)."""
    values = dict(values or {})
    return SensitivityModel(net, parameters, given=values).solve(
        times, values, rtol=rtol, atol=atol
    )
