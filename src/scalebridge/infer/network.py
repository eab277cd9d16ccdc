"""Reaction networks (SBML, Antimony) as explicit ODE models for identifiability analysis.

:func:`ode_model_from_network` turns a :class:`~scalebridge.model.network.ReactionNetwork` into
an :class:`~scalebridge.model.odetext.OdeModel`:

* **states**: species changed by reactions or rate rules, and parameters or compartments with
  rate rules; each equation is d(symbol)/dt as SBML defines it (concentration unless
  ``hasOnlySubstanceUnits``), with reaction rates, assignment rules and function definitions
  substituted and local parameters as their values;
* **parameters** (unknown): constant parameters, unless listed in ``known`` (then known, with
  the model's value when it has one) or used only in outputs -- all of them count;
* **known constants**: compartment sizes (with their values) and the ``known`` parameters;
* **inputs**: non-constant parameters without any rule (time courses given from outside);
* **initial values**: unknown, except the states in ``known_initial`` (with the model's value
  when it has a number, else generic);
* **outputs**: ``outputs`` (names of assignment-rule variables, or name -> expression); by default
  every assignment-rule variable that no other math uses (an observable).

Events, algebraic rules and delays are refused (:class:`UnsupportedFeatureError`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from ..errors import ModelError, UnsupportedFeatureError
from ..model.expr import Expr, Num, Sym, expand_functions, substitute, symbols
from ..model.network import ReactionNetwork
from ..model.odetext import OdeModel
from ..model.rates import rate_of_expr

__all__ = ["ode_model_from_network"]


def _math_users(net: ReactionNetwork) -> set[str]:
    used: set[str] = set()
    for r in net.reactions:
        if r.rate is not None:
            used |= symbols(r.rate)
    for rr in net.rate_rules:
        used |= symbols(rr.math)
    for ar in net.assignment_rules:
        used |= symbols(ar.math)
    return used


def ode_model_from_network(
    net: ReactionNetwork,
    *,
    outputs: Mapping[str, Expr | str] | Sequence[str] | None = None,
    known: Collection[str] = (),
    known_initial: Collection[str] = (),
) -> OdeModel:
    """The explicit ODE model of ``net`` (see the module docstring)."""
    src = net.source
    if getattr(net, "events", ()):
        raise UnsupportedFeatureError(
            "events in structural identifiability", source=src, element=net.events[0].id
        )
    funcs = net.functions_table if net.functions else {}
    rule_of = {ar.variable: ar.math for ar in net.assignment_rules}
    laws: dict[str, Expr] = {}
    for r in net.reactions:
        if r.rate is None:
            continue
        local = {lp.id: Num(lp.value or 0.0) for lp in r.local_parameters}
        laws[r.id] = substitute(r.rate, local)

    def resolve(e: Expr) -> Expr:
        if funcs:
            e = expand_functions(e, funcs)
        for _ in range(100):
            syms = symbols(e)
            rep = {s: laws[s] for s in syms if s in laws}
            rep.update({s: rule_of[s] for s in syms if s in rule_of})
            if not rep:
                return e
            e = substitute(e, rep)
            if funcs:
                e = expand_functions(e, funcs)
        raise ModelError("assignment rules refer to each other in a cycle", source=src)

    states: list[str] = []
    for s in net.species:
        if s.constant or s.id in rule_of:
            continue
        if s.id in net.rate_rule_map or (not s.boundary_condition and net.reaction_changes(s.id)):
            states.append(s.id)
    for rr in net.rate_rules:
        if rr.variable not in states:
            states.append(rr.variable)
    equations = {s: resolve(rate_of_expr(net, s)) for s in states}

    # Outputs.
    observables: dict[str, Expr] = {}
    if outputs is None:
        users = _math_users(net)
        for ar in net.assignment_rules:
            if ar.variable not in users and ar.variable not in states:
                observables[ar.variable] = resolve(ar.math)
        if not observables:
            raise ModelError(
                "no outputs: the model has no assignment-rule variable that only reports "
                "(an observable); give outputs",
                source=src,
            )
    elif isinstance(outputs, Mapping):
        from ..model.parse import parse_expr

        for name, e in outputs.items():
            if isinstance(e, str):
                e = parse_expr(e, element=name, source=src)
            observables[name] = resolve(e)
    else:
        for name in outputs:
            if name in rule_of:
                observables[name] = resolve(rule_of[name])
            elif name in states or name in net.species_map or name in net.parameter_map:
                observables[f"y_{name}"] = Sym(name)
            else:
                raise ModelError(f"no variable named '{name}' to observe", element=name, source=src)

    used: set[str] = set()
    for e in (*equations.values(), *observables.values()):
        used |= symbols(e)
    params: list[str] = []
    known_consts: dict[str, float | None] = {}
    inputs: list[str] = []
    for p in net.parameters:
        if p.id in rule_of or p.id in states or p.id not in used:
            continue
        if not p.constant:
            inputs.append(p.id)
        elif p.id in known:
            known_consts[p.id] = p.value
        else:
            params.append(p.id)
    for c in net.compartments:
        if c.id in used and c.id not in states:
            known_consts[c.id] = c.size
    for s in net.species:
        if s.id in used and s.id not in states:
            # constant or boundary species: known at its initial value
            v = s.initial_amount if s.has_only_substance_units else s.initial_concentration
            known_consts[s.id] = v
    initial: dict[str, float | Expr | None] = {}
    species = net.species_map
    for name in known_initial:
        if name not in states:
            raise ModelError(f"'{name}' is not a state", element=name, source=src)
        sp = species.get(name)
        v0 = None
        if sp is not None:
            v0 = sp.initial_amount if sp.has_only_substance_units else sp.initial_concentration
        initial[name] = v0
    taken = set(states) | set(params) | set(known_consts) | set(inputs)
    clash = [y for y in observables if y in taken]
    if clash:
        raise ModelError(f"output '{clash[0]}' has the name of a model symbol", element=clash[0])
    return OdeModel(
        states=tuple(states),
        equations=equations,
        outputs=observables,
        parameters=tuple(params),
        known=known_consts,
        inputs=tuple(inputs),
        initial=initial,
        source=src,
    )
