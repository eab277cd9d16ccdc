"""Rates of change of model symbols as expressions (for the SBML ``rateOf`` csymbol).

``rate_of_expr(net, x)`` is an expression for dx/dt in terms of model symbols and reaction ids
(whose values are the reaction rates):

* a species changed by reactions: dA/dt = cf * sum_j s_ij * rate_j for its amount A; its symbol
  is A when it has only substance units, else the concentration A/V with
  d(A/V)/dt = (dA/dt)/V - (A/V) (dV/dt)/V;
* a variable with a rate rule: the rule's math;
* a variable with an assignment rule x = e (and a reaction rate, e = its kinetic law): the
  total derivative sum_s (de/ds)(ds/dt) + de/dtime;
* anything else (constants, values changed only by events): 0.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnsupportedFeatureError
from .expr import (
    ONE,
    ZERO,
    Call,
    Expr,
    Sym,
    add,
    diff,
    div,
    expand_functions,
    fold,
    map_calls,
    mul,
    neg,
    sub,
    substitute,
)
from .network import ReactionNetwork

TIME_SYMBOL = "\0time"  # stands for the time while differentiating


def stoichiometry_terms(net: ReactionNetwork, species_id: str) -> list[tuple[Expr, str]]:
    """``[(coefficient, reaction id)]`` with dA/dt = sum coefficient * rate (no conversion factor).

    Numeric stoichiometry is netted per reaction; a stoichiometry set by rules or events is the
    symbol of its species reference.
    """
    out: list[tuple[Expr, str]] = []
    for r in net.reactions_of_species.get(species_id, ()):
        const = 0.0
        var: list[Expr] = []
        for sign, refs in ((-1.0, r.reactants), (1.0, r.products)):
            for ref in refs:
                if ref.species != species_id:
                    continue
                if ref.id and _stoich_is_variable(net, ref.id):
                    var.append(Sym(ref.id) if sign > 0 else neg(Sym(ref.id)))
                else:
                    st = ref.stoichiometry
                    const += sign * (1.0 if st is None else st)
        terms: list[Expr] = [_num(const)] if const != 0.0 else []
        terms += var
        if terms:
            out.append((add(*terms), r.id))
    return out


def _num(v: float) -> Expr:
    from .expr import Num

    return Num(v)


def _stoich_is_variable(net: ReactionNetwork, ref_id: str) -> bool:
    _, ref = net.species_ref_map[ref_id]
    return (
        not ref.constant
        or ref.stoichiometry is None
        or ref_id in net.assignment_rule_map
        or ref_id in net.rate_rule_map
        or ref_id in net.initial_assignment_map
    )


def conversion_factor(net: ReactionNetwork, species_id: str) -> str | None:
    s = net.species_map[species_id]
    return s.conversion_factor or net.conversion_factor


def amount_rate_expr(net: ReactionNetwork, species_id: str) -> Expr:
    """dA/dt of a species' amount from reactions (including its conversion factor)."""
    terms = [mul(c, Sym(rid)) for c, rid in stoichiometry_terms(net, species_id)]
    total = add(*terms) if terms else ZERO
    cf = conversion_factor(net, species_id)
    return mul(Sym(cf), total) if cf else total


def time_to_symbol(e: Expr) -> Expr:
    return map_calls(e, lambda node, args: Sym(TIME_SYMBOL) if node.op == "time" else None)


def symbol_to_time(e: Expr) -> Expr:
    return substitute(e, {TIME_SYMBOL: Call("time")})


def rate_of_expr(net: ReactionNetwork, name: str, _active: tuple[str, ...] = ()) -> Expr:
    """d(name)/dt as an expression of model symbols and reaction ids (see module docstring)."""
    if name in _active:
        raise UnsupportedFeatureError(
            "rateOf in a cycle", element=name, detail=" -> ".join((*_active, name))
        )
    active = (*_active, name)
    if name in net.rate_rule_map:
        return resolve_rate_of(net, _expand(net, net.rate_rule_map[name].math), active)
    if name in net.assignment_rule_map:
        return _total_derivative(net, _expand(net, net.assignment_rule_map[name].math), active)
    if name in net.reaction_map:
        r = net.reaction_map[name]
        if r.rate is None:
            return ZERO
        local = {lp.id: lp.value for lp in r.local_parameters}
        law = substitute(_expand(net, r.rate), {k: _num(v or 0.0) for k, v in local.items()})
        return _total_derivative(net, law, active)
    if name in net.species_map and net.reaction_changes(name):
        s = net.species_map[name]
        dadt = amount_rate_expr(net, name)
        if s.has_only_substance_units:
            return fold(dadt)
        v = Sym(s.compartment)
        dv = rate_of_expr(net, s.compartment, active)
        return fold(sub(div(dadt, v), div(mul(Sym(name), dv), v)))
    return ZERO


def _expand(net: ReactionNetwork, e: Expr) -> Expr:
    return expand_functions(e, net.functions_table) if net.functions else e


def _total_derivative(net: ReactionNetwork, e: Expr, active: tuple[str, ...]) -> Expr:
    e = time_to_symbol(resolve_rate_of(net, e, active))
    terms: list[Expr] = []
    for s in sorted(_symbols(e)):
        partial = diff(e, s)
        if partial == ZERO:
            continue
        ds = ONE if s == TIME_SYMBOL else rate_of_expr(net, s, active)
        terms.append(mul(partial, ds))
    return fold(symbol_to_time(add(*terms))) if terms else ZERO


def _symbols(e: Expr) -> set[str]:
    from .expr import symbols

    return symbols(e)


def resolve_rate_of(
    net: ReactionNetwork,
    e: Expr,
    active: tuple[str, ...] = (),
    replace: Callable[[str], Expr] | None = None,
) -> Expr:
    """Replace every ``rateOf(x)`` in ``e`` by :func:`rate_of_expr` (or ``replace(x)``)."""

    def rebuild(node: Call, args: tuple[Expr, ...]) -> Expr | None:
        if node.op != "rateOf":
            return None
        target = args[0]
        assert isinstance(target, Sym)
        if replace is not None:
            return replace(target.name)
        return rate_of_expr(net, target.name, active)

    return map_calls(e, rebuild)
