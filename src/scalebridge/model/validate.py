"""Validation of a :class:`~scalebridge.model.network.ReactionNetwork` at construction.

Checks: identifier syntax, unique ids across the global namespace, references to existing
elements, finite stoichiometry (negative values are valid SBML, see test-suite case 01432),
symbols in every math element resolve, user functions exist with the right number of
arguments, at most one rule per variable and no rule on a constant or on a species that
reactions change, acyclic assignment rules and initial assignments, and event assignments to
variables that may change.  Every failure is a :class:`ModelError` that
names the element.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import ModelError
from .expr import Expr, FunCall, Sym, function_calls, symbols, walk

if TYPE_CHECKING:
    from .network import ReactionNetwork

_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_id(ident: str, what: str) -> None:
    if not isinstance(ident, str) or not _ID.match(ident):
        raise ModelError(f"{what} id {ident!r} is not a valid identifier", element=str(ident))


def _finite(v: float | None, what: str, element: str) -> None:
    if v is not None and not math.isfinite(v):
        raise ModelError(f"{what} of '{element}' is {v}, not a finite number", element=element)


def validate_network(net: ReactionNetwork) -> None:
    src = net.source
    try:
        _validate(net)
    except ModelError as e:
        if src and not e.source:
            e.source = src
        raise


def _validate(net: ReactionNetwork) -> None:
    seen: dict[str, str] = {}

    def declare(ident: str, what: str) -> None:
        _check_id(ident, what)
        if ident in seen:
            raise ModelError(
                f"duplicate id '{ident}': used by a {seen[ident]} and a {what}", element=ident
            )
        seen[ident] = what

    for c in net.compartments:
        declare(c.id, "compartment")
        _finite(c.size, "size", c.id)
        if c.size is not None and c.size < 0:
            raise ModelError(f"compartment '{c.id}' has negative size {c.size}", element=c.id)
    for s in net.species:
        declare(s.id, "species")
    for p in net.parameters:
        declare(p.id, "parameter")
        _finite(p.value, "value", p.id)
    for r in net.reactions:
        declare(r.id, "reaction")
    for r in net.reactions:
        for ref in r.species_refs:
            if ref.id:
                declare(ref.id, "species reference")
    for f in net.functions:
        declare(f.id, "function")
    for ev in net.events:
        if ev.id:
            declare(ev.id, "event")

    comp_ids = net.compartment_map
    species = net.species_map
    for s in net.species:
        if s.compartment not in comp_ids:
            raise ModelError(
                f"species '{s.id}' is in unknown compartment '{s.compartment}'", element=s.id
            )
        if s.initial_amount is not None and s.initial_concentration is not None:
            raise ModelError(
                f"species '{s.id}' has both an initial amount and an initial concentration",
                element=s.id,
            )
        _finite(s.initial_amount, "initial amount", s.id)
        _finite(s.initial_concentration, "initial concentration", s.id)
        if s.conversion_factor is not None and s.conversion_factor not in net.parameter_map:
            raise ModelError(
                f"species '{s.id}' has unknown conversion factor '{s.conversion_factor}'",
                element=s.id,
            )
    if net.conversion_factor is not None and net.conversion_factor not in net.parameter_map:
        raise ModelError(
            f"model conversion factor '{net.conversion_factor}' is not a parameter",
            element=net.conversion_factor,
        )

    # Function definitions: bodies use only their arguments and other (non-recursive) functions.
    fmap = net.function_map
    for f in net.functions:
        for a in f.args:
            _check_id(a, f"argument of function '{f.id}'")
        if len(set(f.args)) != len(f.args):
            raise ModelError(f"function '{f.id}' repeats an argument name", element=f.id)
        extra = symbols(f.body) - set(f.args)
        if extra:
            name = sorted(extra)[0]
            raise ModelError(
                f"function '{f.id}' uses '{name}', which is not one of its arguments", element=f.id
            )
        _check_calls(f.body, fmap, f.id)
    _check_function_recursion(net)

    global_names = set(seen) - {f.id for f in net.functions} - {e.id for e in net.events if e.id}

    def check_math(e: Expr | None, element: str, extra: Iterable[str] = ()) -> None:
        if e is None:
            return
        allowed = global_names | set(extra)
        for name in symbols(e):
            if name not in allowed:
                raise ModelError(f"unknown symbol '{name}' in '{element}'", element=element)
        _check_calls(e, fmap, element)
        for node in walk(e):
            if isinstance(node, FunCall):
                continue
            if getattr(node, "op", None) == "rateOf":
                arg = node.args[0]  # type: ignore[attr-defined]
                if not isinstance(arg, Sym):
                    raise ModelError(f"rateOf in '{element}' must name a symbol", element=element)

    for r in net.reactions:
        local_ids: set[str] = set()
        for lp in r.local_parameters:
            _check_id(lp.id, f"local parameter of reaction '{r.id}'")
            if lp.id in local_ids:
                raise ModelError(
                    f"reaction '{r.id}' has duplicate local parameter '{lp.id}'", element=r.id
                )
            local_ids.add(lp.id)
            _finite(lp.value, "value", f"{r.id}.{lp.id}")
        for ref in r.species_refs:
            if ref.species not in species:
                raise ModelError(
                    f"reaction '{r.id}' refers to unknown species '{ref.species}'", element=r.id
                )
            st = ref.stoichiometry
            if st is not None and not math.isfinite(st):
                raise ModelError(
                    f"reaction '{r.id}' has impossible stoichiometry {st} for '{ref.species}'",
                    element=r.id,
                )
            if st is None and not ref.id:
                raise ModelError(
                    f"reaction '{r.id}' gives no stoichiometry for '{ref.species}'", element=r.id
                )
        for m in r.modifiers:
            if m not in species:
                raise ModelError(f"reaction '{r.id}' has unknown modifier '{m}'", element=r.id)
        if r.compartment is not None and r.compartment not in comp_ids:
            raise ModelError(
                f"reaction '{r.id}' is in unknown compartment '{r.compartment}'", element=r.id
            )
        check_math(r.rate, r.id, local_ids)

    ruled: dict[str, str] = {}
    settable = set(species) | set(comp_ids) | set(net.parameter_map) | set(net.species_ref_map)

    def constant_of(name: str) -> bool:
        kind = net.kind_of(name)
        if kind == "species":
            return species[name].constant
        if kind == "compartment":
            return comp_ids[name].constant
        if kind == "parameter":
            return net.parameter_map[name].constant
        if kind == "species_ref":
            return net.species_ref_map[name][1].constant
        return True

    for rules, what in ((net.assignment_rules, "assignment rule"), (net.rate_rules, "rate rule")):
        for rule in rules:
            v = rule.variable
            element = rule.id or v
            if v not in settable:
                raise ModelError(f"{what} for unknown variable '{v}'", element=element)
            if v in ruled:
                raise ModelError(f"'{v}' has both {_a(ruled[v])} and {_a(what)}", element=element)
            if constant_of(v):
                raise ModelError(f"{what} for constant '{v}'", element=element)
            if v in species and net.reaction_changes(v):
                raise ModelError(
                    f"{what} for species '{v}', which reactions also change "
                    "(make it a boundary species)",
                    element=element,
                )
            ruled[v] = what
            check_math(rule.math, element)

    ia_seen: set[str] = set()
    for ia in net.initial_assignments:
        element = ia.id or ia.symbol
        if ia.symbol not in settable:
            raise ModelError(
                f"initial assignment for unknown symbol '{ia.symbol}'", element=element
            )
        if ia.symbol in ia_seen:
            raise ModelError(f"two initial assignments for '{ia.symbol}'", element=element)
        if ruled.get(ia.symbol) == "assignment rule":
            raise ModelError(
                f"'{ia.symbol}' has both an assignment rule and an initial assignment",
                element=element,
            )
        ia_seen.add(ia.symbol)
        check_math(ia.math, element)

    for i, ev in enumerate(net.events):
        element = ev.id or f"event #{i + 1}"
        check_math(ev.trigger, element)
        check_math(ev.delay, element)
        check_math(ev.priority, element)
        targets: set[str] = set()
        for ea in ev.assignments:
            if ea.variable not in settable:
                raise ModelError(f"event assigns unknown variable '{ea.variable}'", element=element)
            if ea.variable in targets:
                raise ModelError(f"event assigns '{ea.variable}' twice", element=element)
            targets.add(ea.variable)
            if constant_of(ea.variable):
                raise ModelError(f"event assigns constant '{ea.variable}'", element=element)
            if ruled.get(ea.variable) == "assignment rule":
                raise ModelError(
                    f"event assigns '{ea.variable}', which an assignment rule defines",
                    element=element,
                )
            check_math(ea.math, element)

    _check_cycles(net)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _check_calls(e: Expr, fmap: dict, element: str) -> None:
    for node in walk(e):
        if isinstance(node, FunCall):
            f = fmap.get(node.name)
            if f is None:
                raise ModelError(
                    f"call of undefined function '{node.name}' in '{element}'", element=element
                )
            if len(f.args) != len(node.args):
                raise ModelError(
                    f"function '{node.name}' takes {len(f.args)} arguments, "
                    f"called with {len(node.args)} in '{element}'",
                    element=element,
                )


def _check_function_recursion(net: ReactionNetwork) -> None:
    graph = {f.id: function_calls(f.body) for f in net.functions}
    cycle = _find_cycle(graph)
    if cycle:
        raise ModelError(
            f"function definitions call each other in a cycle: {' -> '.join(cycle)}",
            element=cycle[0],
        )


def _check_cycles(net: ReactionNetwork) -> None:
    # Assignment rules (and reaction rates, which math may read) must be computable in order.
    graph: dict[str, set[str]] = {}
    for rule in net.assignment_rules:
        graph[rule.variable] = symbols(_expanded(net, rule.math))
    for r in net.reactions:
        if r.rate is not None:
            local = {lp.id for lp in r.local_parameters}
            graph[r.id] = symbols(_expanded(net, r.rate)) - local
    keys = set(graph)
    cycle = _find_cycle({k: v & keys for k, v in graph.items()})
    if cycle:
        raise ModelError(
            f"assignment rules depend on each other in a cycle: {' -> '.join(cycle)}",
            element=cycle[0],
        )
    # Initial values: initial assignments and assignment rules together.
    init: dict[str, set[str]] = {k: v for k, v in graph.items() if k in net.assignment_rule_map}
    for ia in net.initial_assignments:
        init[ia.symbol] = symbols(_expanded(net, ia.math))
    init_keys = set(init)
    cycle = _find_cycle({k: v & init_keys for k, v in init.items()})
    if cycle:
        raise ModelError(
            f"initial values depend on each other in a cycle: {' -> '.join(cycle)}",
            element=cycle[0],
        )


def _expanded(net: ReactionNetwork, e: Expr) -> Expr:
    from .expr import expand_functions

    return expand_functions(e, net.functions_table) if net.functions else e


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` (node -> successors) as a list of nodes, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    for start in graph:
        if color[start] != WHITE:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        color[start] = GREY
        while stack:
            node, succ = stack[-1]
            if succ:
                nxt = succ.pop()
                if nxt not in color:
                    continue
                if color[nxt] == GREY:
                    return [*path[path.index(nxt) :], nxt]
                if color[nxt] == WHITE:
                    color[nxt] = GREY
                    path.append(nxt)
                    stack.append((nxt, sorted(graph[nxt])))
            else:
                color[node] = BLACK
                path.pop()
                stack.pop()
    return None
