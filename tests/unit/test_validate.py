"""Validation of reaction networks at construction, and ``ReactionNetwork.with_values``.

Every invalid model must raise :class:`ModelError` naming the offending element (SBML Level 3
rules: one global namespace, references to existing elements, at most one rule per variable, no
rule on a constant or on a species that reactions change, acyclic assignment rules and initial
values, no recursive functions, event assignments only to variables that may change).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from scalebridge.errors import ModelError
from scalebridge.model import (
    AssignmentRule,
    Compartment,
    Event,
    EventAssignment,
    FunctionDefinition,
    InitialAssignment,
    Parameter,
    RateRule,
    Reaction,
    ReactionNetwork,
    Species,
    SpeciesRef,
    parse_expr,
)

P = parse_expr


def base(**changes: Any) -> dict[str, Any]:
    """A valid network A -> B (rate k*A) in compartment c, with overrides."""
    kw: dict[str, Any] = dict(
        compartments=(Compartment("c", 2.0),),
        species=(Species("A", "c", initial_amount=1.0), Species("B", "c", initial_amount=0.0)),
        parameters=(Parameter("k", 1.0),),
        reactions=(Reaction("r1", (SpeciesRef("A"),), (SpeciesRef("B"),), rate=P("k*A")),),
    )
    kw.update(changes)
    return kw


def rx(rate: str, rid: str = "r1", **kw: Any) -> tuple[Reaction, ...]:
    kw.setdefault("reactants", (SpeciesRef("A"),))
    return (Reaction(rid, rate=P(rate), **kw),)


def var(*ids: str, value: float | None = 0.0) -> tuple[Parameter, ...]:
    """``k`` (constant) plus non-constant parameters."""
    return (Parameter("k", 1.0), *(Parameter(i, value, constant=False) for i in ids))


def at(trigger: str, *assign: tuple[str, str], eid: str = "e1", **kw: Any) -> tuple[Event, ...]:
    return (Event(eid, P(trigger), tuple(EventAssignment(v, P(m)) for v, m in assign), **kw),)


FUNS = (FunctionDefinition("f", ("u",), P("2*u")),)

# (label, network overrides, element named, message pattern)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    # unknown symbols, in every kind of math
    ("symbol in kinetic law", dict(reactions=rx("q*A")), "r1", "unknown symbol 'q' in 'r1'"),
    (
        "symbol in assignment rule",
        dict(parameters=var("z", value=None), assignment_rules=(AssignmentRule("z", P("q")),)),
        "z",
        "unknown symbol 'q'",
    ),
    (
        "symbol in rule with id",
        dict(
            parameters=var("z", value=None),
            assignment_rules=(AssignmentRule("z", P("q"), id="rule7"),),
        ),
        "rule7",
        "unknown symbol",
    ),
    (
        "symbol in rate rule",
        dict(parameters=var("z"), rate_rules=(RateRule("z", P("-q")),)),
        "z",
        "unknown symbol 'q'",
    ),
    (
        "symbol in initial assignment",
        dict(initial_assignments=(InitialAssignment("k", P("q")),)),
        "k",
        "unknown symbol 'q'",
    ),
    ("symbol in trigger", dict(events=at("q > 1")), "e1", "unknown symbol 'q'"),
    ("symbol in delay", dict(events=at("time > 1", delay=P("q"))), "e1", "unknown symbol 'q'"),
    ("symbol in priority", dict(events=at("time > 1", priority=P("q"))), "e1", "unknown symbol"),
    (
        "symbol in event assignment",
        dict(parameters=var("z"), events=at("time > 1", ("z", "q"))),
        "e1",
        "unknown symbol 'q'",
    ),
    ("symbol in anonymous event", dict(events=at("q > 1", eid="")), "event #1", "unknown symbol"),
    (
        "function id as a symbol",
        dict(functions=FUNS, reactions=rx("f*A")),
        "r1",
        "unknown symbol 'f'",
    ),
    ("event id as a symbol", dict(events=at("time > 1"), reactions=rx("e1*A")), "r1", "'e1'"),
    (
        "local parameter of another reaction",
        dict(
            reactions=(
                Reaction(
                    "r1",
                    (SpeciesRef("A"),),
                    rate=P("kl*A"),
                    local_parameters=(Parameter("kl", 1.0),),
                ),
                Reaction("r2", (SpeciesRef("B"),), rate=P("kl*B")),
            )
        ),
        "r2",
        "unknown symbol 'kl'",
    ),
    # duplicate ids across kinds
    (
        "species and parameter",
        dict(parameters=(Parameter("A", 1.0), Parameter("k", 1.0))),
        "A",
        "duplicate id 'A': used by a species and a parameter",
    ),
    ("compartment and reaction", dict(reactions=rx("k*A", rid="c")), "c", "duplicate id 'c'"),
    (
        "parameter and function",
        dict(functions=(FunctionDefinition("k", ("u",), P("u")),)),
        "k",
        "duplicate id 'k'",
    ),
    ("species and event", dict(events=at("time > 1", eid="A")), "A", "duplicate id 'A'"),
    (
        "parameter and species reference",
        dict(reactions=(Reaction("r1", (SpeciesRef("A", id="k"),), rate=P("A")),)),
        "k",
        "duplicate id 'k'",
    ),
    (
        "two compartments",
        dict(compartments=(Compartment("c"), Compartment("c"))),
        "c",
        "duplicate id 'c'",
    ),
    # identifiers
    ("species id", dict(species=(Species("1A", "c", initial_amount=1.0),)), "1A", "not a valid"),
    (
        "parameter id",
        dict(parameters=(Parameter("k-1", 1.0), Parameter("k", 1.0))),
        "k-1",
        "not a valid identifier",
    ),
    ("compartment id", dict(compartments=(Compartment("c c"),)), "c c", "not a valid identifier"),
    ("reaction id", dict(reactions=rx("k*A", rid="r.1")), "r.1", "not a valid identifier"),
    (
        "function argument",
        dict(functions=(FunctionDefinition("g", ("1u",), P("1")),)),
        "1u",
        "argument of function 'g'",
    ),
    (
        "local parameter id",
        dict(reactions=rx("k*A", local_parameters=(Parameter("a b", 1.0),))),
        "a b",
        "local parameter of reaction 'r1'",
    ),
    # numbers
    (
        "NaN stoichiometry",
        dict(reactions=(Reaction("r1", (SpeciesRef("A", math.nan),), rate=P("k*A")),)),
        "r1",
        "impossible stoichiometry nan for 'A'",
    ),
    (
        "infinite stoichiometry",
        dict(reactions=(Reaction("r1", (), (SpeciesRef("B", math.inf),), rate=P("k")),)),
        "r1",
        "impossible stoichiometry inf for 'B'",
    ),
    (
        "no stoichiometry and no id",
        dict(reactions=(Reaction("r1", (SpeciesRef("A", None),), rate=P("k*A")),)),
        "r1",
        "gives no stoichiometry for 'A'",
    ),
    ("infinite parameter", dict(parameters=(Parameter("k", math.inf),)), "k", "not a finite"),
    (
        "NaN initial amount",
        dict(
            species=(
                Species("A", "c", initial_amount=math.nan),
                Species("B", "c", initial_amount=0.0),
            )
        ),
        "A",
        "initial amount of 'A' is nan",
    ),
    (
        "infinite concentration",
        dict(species=(Species("A", "c", initial_concentration=-math.inf), Species("B", "c"))),
        "A",
        "initial concentration",
    ),
    (
        "amount and concentration",
        dict(
            species=(
                Species("A", "c", initial_amount=1.0, initial_concentration=1.0),
                Species("B", "c"),
            )
        ),
        "A",
        "both an initial amount",
    ),
    ("negative size", dict(compartments=(Compartment("c", -1.0),)), "c", "negative size"),
    ("NaN size", dict(compartments=(Compartment("c", math.nan),)), "c", "not a finite"),
    (
        "NaN local parameter",
        dict(reactions=rx("kl*A", local_parameters=(Parameter("kl", math.nan),))),
        "r1.kl",
        "not a finite",
    ),
    (
        "duplicate local parameter",
        dict(reactions=rx("kl*A", local_parameters=(Parameter("kl", 1.0), Parameter("kl", 2.0)))),
        "r1",
        "duplicate local parameter 'kl'",
    ),
    # references
    (
        "unknown species",
        dict(reactions=(Reaction("r1", (SpeciesRef("X"),), rate=P("k")),)),
        "r1",
        "unknown species 'X'",
    ),
    (
        "unknown compartment",
        dict(species=(Species("A", "nowhere", initial_amount=1.0), Species("B", "c"))),
        "A",
        "unknown compartment 'nowhere'",
    ),
    ("unknown modifier", dict(reactions=rx("k*A", modifiers=("M",))), "r1", "unknown modifier 'M'"),
    (
        "unknown reaction compartment",
        dict(reactions=rx("k*A", compartment="zz")),
        "r1",
        "unknown compartment 'zz'",
    ),
    (
        "unknown conversion factor",
        dict(
            species=(
                Species("A", "c", initial_amount=1.0, conversion_factor="cf"),
                Species("B", "c"),
            )
        ),
        "A",
        "unknown conversion factor 'cf'",
    ),
    ("model conversion factor", dict(conversion_factor="cf"), "cf", "not a parameter"),
    # rules
    (
        "two rules for one variable",
        dict(
            parameters=var("z"),
            assignment_rules=(AssignmentRule("z", P("k")),),
            rate_rules=(RateRule("z", P("k")),),
        ),
        "z",
        "'z' has both an assignment rule and a rate rule",
    ),
    (
        "two assignment rules",
        dict(
            parameters=var("z"),
            assignment_rules=(AssignmentRule("z", P("k")), AssignmentRule("z", P("2*k"))),
        ),
        "z",
        "'z' has both",
    ),
    (
        "assignment rule on a constant",
        dict(assignment_rules=(AssignmentRule("k", P("2")),)),
        "k",
        "assignment rule for constant 'k'",
    ),
    (
        "rate rule on a constant compartment",
        dict(rate_rules=(RateRule("c", P("1")),)),
        "c",
        "rate rule for constant 'c'",
    ),
    (
        "rate rule on a constant species",
        dict(
            species=(
                Species("A", "c", initial_amount=1.0, constant=True, boundary_condition=True),
                Species("B", "c", initial_amount=0.0),
            ),
            rate_rules=(RateRule("A", P("1")),),
        ),
        "A",
        "rate rule for constant 'A'",
    ),
    (
        "rule on a reaction-changed species",
        dict(assignment_rules=(AssignmentRule("A", P("2")),)),
        "A",
        "which reactions also change",
    ),
    (
        "rate rule on a reaction-changed species",
        dict(rate_rules=(RateRule("B", P("2")),)),
        "B",
        "which reactions also change",
    ),
    (
        "rule for a reaction id",
        dict(assignment_rules=(AssignmentRule("r1", P("2")),)),
        "r1",
        "unknown variable 'r1'",
    ),
    (
        "rule for an unknown variable",
        dict(rate_rules=(RateRule("zz", P("2")),)),
        "zz",
        "rate rule for unknown variable 'zz'",
    ),
    (
        "rule on a constant stoichiometry",
        dict(
            reactions=(Reaction("r1", (SpeciesRef("A", id="sr"),), rate=P("k*A")),),
            assignment_rules=(AssignmentRule("sr", P("2")),),
        ),
        "sr",
        "constant 'sr'",
    ),
    # cycles
    (
        "assignment-rule cycle",
        dict(
            parameters=var("u", "v"),
            assignment_rules=(AssignmentRule("u", P("v + 1")), AssignmentRule("v", P("2*u"))),
        ),
        "u",
        "assignment rules depend on each other in a cycle: u -> v -> u",
    ),
    (
        "assignment rule on itself",
        dict(parameters=var("u"), assignment_rules=(AssignmentRule("u", P("u + 1")),)),
        "u",
        "cycle: u -> u",
    ),
    (
        "cycle through a reaction rate",
        dict(
            parameters=(Parameter("k", 1.0, constant=False),),
            assignment_rules=(AssignmentRule("k", P("r1")),),
        ),
        "k",
        "cycle: k -> r1 -> k",
    ),
    (
        "cycle through a function",
        dict(
            functions=FUNS,
            parameters=var("u", "v"),
            assignment_rules=(AssignmentRule("u", P("f(v)")), AssignmentRule("v", P("f(u)"))),
        ),
        "u",
        "in a cycle",
    ),
    (
        "initial-assignment cycle",
        dict(
            parameters=(Parameter("k", 1.0), Parameter("u"), Parameter("v")),
            initial_assignments=(
                InitialAssignment("u", P("v")),
                InitialAssignment("v", P("u + 1")),
            ),
        ),
        "u",
        "initial values depend on each other in a cycle",
    ),
    (
        "initial assignment and rule cycle",
        dict(
            parameters=(*var("v"), Parameter("u")),
            initial_assignments=(InitialAssignment("u", P("v")),),
            assignment_rules=(AssignmentRule("v", P("u")),),
        ),
        "v",
        "initial values depend",
    ),
    (
        "two initial assignments",
        dict(initial_assignments=(InitialAssignment("k", P("1")), InitialAssignment("k", P("2")))),
        "k",
        "two initial assignments for 'k'",
    ),
    (
        "initial assignment and assignment rule",
        dict(
            parameters=var("z"),
            assignment_rules=(AssignmentRule("z", P("k")),),
            initial_assignments=(InitialAssignment("z", P("1")),),
        ),
        "z",
        "both an assignment rule and an initial assignment",
    ),
    (
        "initial assignment to nothing",
        dict(initial_assignments=(InitialAssignment("zz", P("1")),)),
        "zz",
        "unknown symbol 'zz'",
    ),
    # functions
    (
        "function cycle",
        dict(
            functions=(
                FunctionDefinition("g", ("u",), P("h(u)")),
                FunctionDefinition("h", ("u",), P("g(u) + 1")),
            )
        ),
        "g",
        "call each other in a cycle: g -> h",
    ),
    (
        "recursive function",
        dict(functions=(FunctionDefinition("g", ("u",), P("g(u - 1)")),)),
        "g",
        "cycle: g -> g",
    ),
    (
        "function arity in a law",
        dict(functions=FUNS, reactions=rx("f(A, k)")),
        "r1",
        "function 'f' takes 1 arguments, called with 2 in 'r1'",
    ),
    (
        "function arity in a body",
        dict(functions=(*FUNS, FunctionDefinition("g", ("u",), P("f(u, u)")))),
        "g",
        "called with 2 in 'g'",
    ),
    ("undefined function", dict(reactions=rx("h(A)")), "r1", "undefined function 'h' in 'r1'"),
    (
        "free symbol in a body",
        dict(functions=(FunctionDefinition("g", ("u",), P("u*k")),)),
        "g",
        "uses 'k', which is not one of its arguments",
    ),
    (
        "repeated argument",
        dict(functions=(FunctionDefinition("g", ("u", "u"), P("u")),)),
        "g",
        "repeats an argument",
    ),
    # events
    (
        "event assigns a constant",
        dict(events=at("time > 1", ("k", "2"))),
        "e1",
        "event assigns constant 'k'",
    ),
    (
        "event assigns a constant species",
        dict(
            species=(
                Species("A", "c", initial_amount=1.0, constant=True),
                Species("B", "c", initial_amount=0.0),
            ),
            events=at("time > 1", ("A", "2")),
        ),
        "e1",
        "constant 'A'",
    ),
    (
        "event assigns a constant compartment",
        dict(events=at("time > 1", ("c", "2"))),
        "e1",
        "constant 'c'",
    ),
    (
        "event assigns a constant stoichiometry",
        dict(
            reactions=(Reaction("r1", (SpeciesRef("A", id="sr"),), rate=P("k*A")),),
            events=at("time > 1", ("sr", "2")),
        ),
        "e1",
        "constant 'sr'",
    ),
    (
        "event assigns a rule variable",
        dict(
            parameters=var("z"),
            assignment_rules=(AssignmentRule("z", P("k")),),
            events=at("time > 1", ("z", "2")),
        ),
        "e1",
        "which an assignment rule defines",
    ),
    (
        "event assigns a reaction",
        dict(events=at("time > 1", ("r1", "2"))),
        "e1",
        "unknown variable 'r1'",
    ),
    (
        "event assigns twice",
        dict(parameters=var("z"), events=at("time > 1", ("z", "1"), ("z", "2"))),
        "e1",
        "assigns 'z' twice",
    ),
]


@pytest.mark.parametrize(("changes", "element", "pattern"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])  # fmt: skip
def test_invalid_networks_name_the_element(changes: dict[str, Any], element: str, pattern: str
                                           ) -> None:  # fmt: skip
    with pytest.raises(ModelError) as ei:
        ReactionNetwork(**base(**changes))
    err = ei.value
    assert err.element == element
    assert pattern in str(err), str(err)
    assert element in str(err)


def test_valid_variants_are_accepted() -> None:
    # Negative stoichiometry is valid SBML (test-suite case 01432); a rule on a boundary
    # species; an event on a non-constant stoichiometry; rateOf; a function called by name.
    ReactionNetwork(**base(reactions=(Reaction("r1", (SpeciesRef("A", -1.0),), rate=P("k")),)))
    ReactionNetwork(**base(
        species=(Species("A", "c", initial_amount=1.0, boundary_condition=True),
                 Species("B", "c", initial_amount=0.0)),
        assignment_rules=(AssignmentRule("A", P("2 + time")),)))  # fmt: skip
    ReactionNetwork(**base(
        reactions=(Reaction("r1", (SpeciesRef("A", id="sr", constant=False),), rate=P("k*A")),),
        events=at("time > 1", ("sr", "2"))))  # fmt: skip
    ReactionNetwork(
        **base(parameters=var("z"), assignment_rules=(AssignmentRule("z", P("rateOf(A)")),))
    )
    ReactionNetwork(**base(functions=FUNS, reactions=rx("f(k)*A")))


def test_error_carries_the_source() -> None:
    with pytest.raises(ModelError) as ei:
        ReactionNetwork(**base(reactions=rx("q*A")), source="model.xml")
    assert ei.value.source == "model.xml"
    assert str(ei.value).startswith("model.xml: ")


# ---------------------------------------------------------------------------------------------
# with_values
# ---------------------------------------------------------------------------------------------
def network() -> ReactionNetwork:
    return ReactionNetwork(
        compartments=(Compartment("c", 2.0),),
        species=(
            Species("A", "c", initial_amount=1.0),  # symbol: concentration
            Species("N", "c", initial_concentration=3.0, has_only_substance_units=True),
            Species("B", "c", initial_amount=0.0),
        ),
        parameters=(Parameter("k", 1.0), Parameter("x", 3.0), Parameter("m", 1.0)),
        reactions=(Reaction("r1", (SpeciesRef("A"),), (SpeciesRef("B"),), rate=P("k*A")),),
        initial_assignments=(InitialAssignment("m", P("2*x")), InitialAssignment("B", P("x"))),
    )


def test_with_values_species_in_their_own_units() -> None:
    net = network().with_values({"A": 5.0, "N": 7.0, "c": 4.0, "k": 0.5})
    a, n = net.species_map["A"], net.species_map["N"]
    assert (a.initial_concentration, a.initial_amount) == (5.0, None)  # concentration
    assert (n.initial_amount, n.initial_concentration) == (7.0, None)  # amount
    assert net.compartment_map["c"].size == 4.0
    assert net.parameter_map["k"].value == 0.5
    assert net.parameter_map["x"].value == 3.0
    assert network().with_values({}) == network()


def test_with_values_refuses_unknown_names() -> None:
    for name in ("nope", "r1", "e1"):
        with pytest.raises(ModelError, match=f"'{name}'") as ei:
            network().with_values({name: 1.0})
        assert ei.value.element == name
    with pytest.raises(ModelError, match="not a finite"):
        network().with_values({"k": math.nan})


def test_with_values_drops_initial_assignments_to_given_names() -> None:
    net = network()
    assert {a.symbol for a in net.with_values({"B": 4.0}).initial_assignments} == {"m"}
    # An initial assignment that reads a changed value is kept (it is recomputed from it).
    assert {a.symbol for a in net.with_values({"x": 5.0}).initial_assignments} == {"m", "B"}
    # The given value wins even when it equals the declared one (m = 1 was declared, 2*x = 6
    # would be computed).
    assert {a.symbol for a in net.with_values({"m": 1.0}).initial_assignments} == {"B"}
