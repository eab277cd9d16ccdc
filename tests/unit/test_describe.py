"""The model description behind ``scalebridge info``: every element is listed, in both forms."""

from __future__ import annotations

import json

import pytest

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
from scalebridge.model.describe import SECTIONS, describe, describe_text, reaction_equation


def P(text: str):
    return parse_expr(text)


@pytest.fixture
def net() -> ReactionNetwork:
    return ReactionNetwork(
        id="demo",
        name="Demo model",
        compartments=(
            Compartment("cell", 2.0),
            Compartment("membrane", 0.5, spatial_dimensions=2.0, constant=False),
        ),
        species=(
            Species("E", "cell", initial_amount=1.0, name="enzyme"),
            Species("S", "cell", initial_concentration=5.0),
            Species("ES", "cell", initial_amount=0.0, has_only_substance_units=True),
            Species("P", "cell", initial_amount=0.0),
            Species("A", "cell", initial_amount=3.0),
            Species("C", "cell", initial_amount=1.0),
            Species("Src", "cell", initial_amount=10.0, boundary_condition=True, constant=True),
            Species("G", "membrane", initial_amount=None),
        ),
        parameters=(
            Parameter("k1", 1.0),
            Parameter("k2", 0.5, name="unbinding"),
            Parameter("kcat", 0.1, constant=False),
            Parameter("total", None, constant=False),
            Parameter("g_rate", 0.2, constant=False),
            Parameter("g0", 4.0),
        ),
        functions=(FunctionDefinition("mm", ("v", "km", "x"), P("v*x/(km + x)")),),
        reactions=(
            Reaction(
                "bind",
                (SpeciesRef("E"), SpeciesRef("S")),
                (SpeciesRef("ES"),),
                rate=P("k1*E*S - k2*ES"),
                reversible=True,
            ),
            Reaction(
                "cat",
                (SpeciesRef("ES"),),
                (SpeciesRef("E"), SpeciesRef("P")),
                rate=P("kcat*ES"),
                fast=True,
                local_parameters=(Parameter("kloc", 3.0),),
            ),
            Reaction(
                "dimer",
                (SpeciesRef("A", 2.0), SpeciesRef("E")),
                (SpeciesRef("C"),),
                rate=P("mm(1, 2, A)"),
                modifiers=("Src",),
            ),
            Reaction("feed", (), (SpeciesRef("A"),), rate=P("0.5")),
        ),
        assignment_rules=(AssignmentRule("total", P("E + ES")),),
        rate_rules=(RateRule("G", P("g_rate*G")), RateRule("membrane", P("0"))),
        initial_assignments=(InitialAssignment("G", P("2*g0")),),
        events=(
            Event(
                "boost",
                P("time >= 10"),
                (EventAssignment("kcat", P("2*kcat")), EventAssignment("g_rate", P("0"))),
                delay=P("1.5"),
                priority=P("3"),
                initial_value=False,
                persistent=False,
                use_values_from_trigger_time=False,
            ),
        ),
        source="demo.xml",
    )


def test_description_is_json_and_lists_every_element(net):
    d = describe(net)
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    assert list(d) == list(SECTIONS)
    assert [c["id"] for c in d["compartments"]] == ["cell", "membrane"]
    assert [s["id"] for s in d["species"]] == [s.id for s in net.species]
    assert [p["id"] for p in d["parameters"]] == [p.id for p in net.parameters]
    assert [r["id"] for r in d["reactions"]] == ["bind", "cat", "dimer", "feed"]
    assert [f["id"] for f in d["functions"]] == ["mm"]
    assert [a["variable"] for a in d["assignment_rules"]] == ["total"]
    assert [a["variable"] for a in d["rate_rules"]] == ["G", "membrane"]
    assert [a["symbol"] for a in d["initial_assignments"]] == ["G"]
    assert [e["id"] for e in d["events"]] == ["boost"]
    counts = d["model"]["counts"]
    assert counts["species"] == 8 and counts["reactions"] == 4 and counts["events"] == 1
    sp = {s["id"]: s for s in d["species"]}
    assert sp["S"]["initial_concentration"] == 5.0 and sp["S"]["initial_amount"] is None
    assert sp["G"]["set_by"] == "rate rule" and sp["G"]["initial_assignment"] == "2 * g0"
    r = {x["id"]: x for x in d["reactions"]}
    assert r["dimer"]["equation"] == "2 A + E -> C"
    assert r["feed"]["equation"] == "(nothing) -> A"
    assert r["bind"]["reversible"] and r["cat"]["fast"]
    assert r["cat"]["local_parameters"] == [{"id": "kloc", "name": "", "value": 3.0}]
    ev = d["events"][0]
    assert ev["delay"] == "1.5" and ev["priority"] == "3"
    assert ev["persistent"] is False and ev["initial_value"] is False
    assert ev["use_values_from_trigger_time"] is False
    assert [a["variable"] for a in ev["assignments"]] == ["kcat", "g_rate"]


def test_conservation_laws_in_description(net):
    d = describe(net)
    assert d["conservation_laws_note"] is None
    laws = {frozenset(x["coefficients"].items()): x for x in d["conservation_laws"]}
    # Changed species E, S, ES, P, A, C; four independent reactions, so 6 - 4 = 2 laws:
    # 'dimer' turns E into C (E + ES + C) and 'feed' makes A (A is in no law).
    sep = frozenset({("S", 1), ("ES", 1), ("P", 1)})
    eesc = frozenset({("E", 1), ("ES", 1), ("C", 1)})
    assert set(laws) == {sep, eesc}
    assert laws[sep]["total"] == pytest.approx(5.0 * 2.0)  # concentration x compartment size
    assert laws[sep]["text"] == "S + ES + P = 10.0"
    assert laws[eesc]["total"] == pytest.approx(1.0 + 0.0 + 1.0)
    assert laws[eesc]["text"] == "E + ES + C = 2.0"


def test_text_has_every_section_and_element(net):
    text = describe_text(net)
    for title in (
        'Model demo "Demo model"',
        "Compartments (2)",
        "Species (8)",
        "Parameters (6)",
        "Reactions (4)",
        "Function definitions (1)",
        "Assignment rules (1)",
        "Rate rules (2)",
        "Initial assignments (1)",
        "Events (1)",
        "Conservation laws (in amounts) (2)",
    ):
        assert title in text
    lines = text.splitlines()
    assert "  bind: E + S -> ES ; k1 * E * S - k2 * ES  [reversible]" in lines
    assert "  cat: ES -> E + P ; kcat * ES  [fast]" in lines
    assert "    local parameters: kloc = 3" in lines
    assert "  dimer: 2 A + E -> C ; mm(1, 2, A)" in lines
    assert "    modifiers: Src" in lines
    assert "  mm(v, km, x) = v * x / (km + x)" in lines
    assert "  total = E + ES" in lines
    assert "  dG/dt = g_rate * G" in lines
    assert "  S + ES + P = 10.0" in lines
    assert "  E + ES + C = 2.0" in lines
    assert "  boost: when time >= 10" in lines
    assert any(
        "delay 1.5" in ln and "priority 3" in ln and "persistent false" in ln for ln in lines
    )
    assert "    kcat = 2 * kcat" in lines
    assert any(ln.startswith("  S: ") and "initial concentration 5" in ln for ln in lines)
    assert any(ln.startswith('  E "enzyme": ') and "initial amount 1" in ln for ln in lines)
    assert any(ln.startswith("  Src: ") and "boundary" in ln and "constant" in ln for ln in lines)
    assert any(ln.startswith("  membrane: ") and "2-D" in ln and "variable" in ln for ln in lines)
    assert any(ln.startswith('  k2 "unbinding" = 0.5') for ln in lines)
    assert "source: demo.xml" in text


def test_text_wraps_at_width(net):
    text = describe_text(net, width=50)
    for ln in text.splitlines():
        # a line may exceed the width only when it is a single unbreakable word
        assert len(ln) <= 50 or " " not in ln.strip()


def test_extra_sections_hook(net):
    extra = {"mass_action": ["bind", "cat"], "advice": {"stiff": True}}
    d = describe(net, extra=extra)
    assert d["mass_action"] == ["bind", "cat"] and d["advice"] == {"stiff": True}
    text = describe_text(net, extra=extra)
    assert "Mass action (2)\n  bind\n  cat" in text
    assert "Advice (1)\n  stiff: true" in text
    with pytest.raises(ValueError, match="species"):
        describe(net, extra={"species": []})


def test_conservation_note_when_stoichiometry_is_not_numeric():
    net = ReactionNetwork(
        compartments=(Compartment("c"),),
        species=(Species("A", "c", initial_amount=1), Species("B", "c", initial_amount=0)),
        parameters=(Parameter("n", 2.0),),
        reactions=(Reaction("conv", (SpeciesRef("A"),), (SpeciesRef("B", None, id="sB"),)),),
        initial_assignments=(InitialAssignment("sB", P("n")),),
    )
    d = describe(net)
    assert d["conservation_laws"] == []
    assert "conv" in d["conservation_laws_note"]
    assert reaction_equation(net.reactions[0]) == "A -> (sB) B"
    assert "Conservation laws: not computed" in describe_text(net)


def test_empty_sections_say_none():
    net = ReactionNetwork(id="empty", compartments=(Compartment("c"),))
    text = describe_text(net)
    for title in ("Species", "Reactions", "Events", "Conservation laws (in amounts)"):
        assert f"\n{title}: none\n" in text
