"""SBML and MathML reading and writing (scalebridge.model.sbml, scalebridge.model.mathml).

References: the SBML test suite (semantic cases with their t=0 results, the DSMTS cases in
Level 2 and Level 3), the Catalyst benchmark networks and the PEtab benchmark models vendored
in tests/data, the SBML Level 3 Version 2 and MathML 2 specifications, and libSBML's own
consistency checks for what is written.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import re
from pathlib import Path

import libsbml
import pytest

from scalebridge.errors import ModelError, UnsupportedFeatureError
from scalebridge.model.expr import OPS, Call, Expr, FunCall, Num, Sym, evaluate, uses_op
from scalebridge.model.mathml import (
    ast_to_expr,
    ast_to_lambda,
    expr_to_ast,
    expr_to_mathml,
)
from scalebridge.model.network import (
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
    Units,
)
from scalebridge.model.parse import parse_expr
from scalebridge.model.sbml import read_sbml, read_sbml_string, write_sbml, write_sbml_string

DATA = Path(__file__).resolve().parents[1] / "data"
SEMANTIC_CASES = sorted(p for p in (DATA / "sbml-semantic").iterdir() if p.is_dir())
SEMANTIC_MODELS = sorted(DATA.glob("sbml-semantic/*/*.xml"))
DSMTS_MODELS = sorted(DATA.glob("dsmts/*/*.xml"))
ALL_MODELS = (
    SEMANTIC_MODELS
    + sorted(DATA.glob("networks/*.xml"))
    + sorted(DATA.glob("petab-benchmark/*/model_*.xml"))
    + DSMTS_MODELS
)
MATHML_NS = "http://www.w3.org/1998/Math/MathML"
L3V2 = "http://www.sbml.org/sbml/level3/version2/core"


def _name(p: Path) -> str:
    return f"{p.parent.parent.name}/{p.name}"


def _doc(body: str, *, header: str = "", model_attrs: str = 'id="m"') -> str:
    """A Level 3 Version 2 document with ``body`` inside the model."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<sbml xmlns="{L3V2}" level="3" version="2" {header}>\n'
        f"<model {model_attrs}>{body}</model></sbml>"
    )


def _math(inner: str) -> str:
    return f'<math xmlns="{MATHML_NS}">{inner}</math>'


def _read_math(inner: str) -> Expr:
    node = libsbml.readMathMLFromString(_math(inner))
    assert node is not None, inner
    return ast_to_expr(node, element="test")


SPECIES_A = (
    '<listOfCompartments><compartment id="c" spatialDimensions="3" size="2" constant="true"/>'
    "</listOfCompartments><listOfSpecies>"
    '<species id="A" compartment="c" initialAmount="10" hasOnlySubstanceUnits="false" '
    'boundaryCondition="false" constant="false"/></listOfSpecies>'
)


def _libsbml_errors(text: str) -> list[str]:
    doc = libsbml.readSBMLFromString(text)
    doc.checkConsistency()
    return [
        f"{doc.getError(i).getErrorId()}: {doc.getError(i).getMessage()}"
        for i in range(doc.getNumErrors())
        if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]


# =============================================================================================
# Round trip over every vendored model
# =============================================================================================
def test_the_vendored_suites_are_complete():
    assert len(SEMANTIC_MODELS) == 167
    assert len(DSMTS_MODELS) == 2 * 27
    assert len(ALL_MODELS) == 167 + 3 + 6 + 54


@pytest.mark.parametrize("path", ALL_MODELS, ids=_name)
def test_read_write_read_gives_an_equal_network_and_valid_sbml(path):
    net = read_sbml(path)
    assert net.source == str(path)
    text = write_sbml_string(net)
    again = read_sbml_string(text, source="rewritten")
    assert again == net
    assert again.source == "rewritten"
    assert _libsbml_errors(text) == []


# =============================================================================================
# Semantic suite: the values every case reports at t = 0 follow from what was read
# =============================================================================================
def _settings(case: Path) -> dict[str, str]:
    out = {}
    for line in (case / f"{case.name}-settings.txt").read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def _names(text: str) -> set[str]:
    return {x.strip() for x in text.split(",") if x.strip()}


def _initial_values(net: ReactionNetwork) -> dict[str, float]:
    """Every symbol's value at t0 by SBML Level 3 semantics (declared values, then initial
    assignments and assignment rules in dependency order; species symbols are concentrations
    unless hasOnlySubstanceUnits or the compartment is 0-dimensional)."""
    fns = net.functions_table
    defined: dict[str, Expr] = {a.symbol: a.math for a in net.initial_assignments}
    defined.update({r.variable: r.math for r in net.assignment_rules})
    env: dict[str, float] = {}
    declared = [(c.id, c.size) for c in net.compartments]
    declared += [(p.id, p.value) for p in net.parameters]
    declared += [(ref.id, ref.stoichiometry) for r in net.reactions for ref in r.species_refs]
    env.update({k: v for k, v in declared if k and k not in defined and v is not None})

    def species_value(s: Species, env: dict[str, float]) -> float:
        amount, conc = s.initial_amount, s.initial_concentration
        if net.compartment_map[s.compartment].spatial_dimensions == 0:
            return amount if amount is not None else conc  # type: ignore[return-value]
        size = env[s.compartment]
        if s.has_only_substance_units:
            return amount if amount is not None else conc * size  # type: ignore[operator]
        return conc if conc is not None else amount / size  # type: ignore[operator]

    tasks: dict[str, object] = dict(defined)
    tasks.update({s.id: s for s in net.species if s.id not in defined})
    tasks.update({r.id: r for r in net.reactions if r.rate is not None})
    while tasks:
        done = []
        for name, task in tasks.items():
            try:
                if isinstance(task, Species):
                    env[name] = species_value(task, env)
                elif isinstance(task, Reaction):
                    local = {p.id: p.value for p in task.local_parameters}
                    env[name] = evaluate(task.rate, {**env, **local}, functions=fns)  # type: ignore[arg-type]
                else:
                    env[name] = evaluate(task, env, functions=fns)  # type: ignore[arg-type]
            except (ModelError, KeyError):
                continue  # an input is not known yet
            done.append(name)
        assert done, f"initial values depend on each other: {sorted(tasks)}"
        for name in done:
            del tasks[name]
    return env


def _all_math(net: ReactionNetwork) -> list[Expr]:
    out = [r.rate for r in net.reactions if r.rate is not None]
    out += [x.math for x in (*net.assignment_rules, *net.rate_rules, *net.initial_assignments)]
    out += [e.trigger for e in net.events] + [f.body for f in net.functions]
    return out


@pytest.mark.parametrize("case", SEMANTIC_CASES, ids=lambda p: p.name)
def test_semantic_case_initial_values_match_the_reference_results(case):
    net = read_sbml(sorted(case.glob("*.xml"))[-1])
    if any(uses_op(m, "rateOf") for m in _all_math(net)):
        pytest.skip("rateOf at t0 needs the derivatives, i.e. a simulator")
    env = _initial_values(net)
    fns = net.functions_table
    if any(not ev.initial_value and evaluate(ev.trigger, env, functions=fns) for ev in net.events):
        pytest.skip("an event fires at t0 and changes the reported values")
    settings = _settings(case)
    amounts, concentrations = _names(settings["amount"]), _names(settings["concentration"])
    atol, rtol = float(settings["absolute"]), float(settings["relative"])
    with open(case / f"{case.name}-results.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    checked = 0
    for column, text in row.items():
        name, ref = column.strip(), float(text)
        if name.lower() == "time":
            continue
        value = env[name]
        if name in net.species_map:
            s = net.species_map[name]
            size = env.get(s.compartment, 1.0)
            if name in amounts and not s.has_only_substance_units:
                value *= size
            elif name in concentrations and s.has_only_substance_units:
                value /= size
        assert value == pytest.approx(ref, rel=rtol, abs=atol, nan_ok=True), name
        checked += 1
    assert checked > 0


# =============================================================================================
# Level 2 documents: converted with the same simulation semantics
# =============================================================================================
def _without_level2_conversion_artifacts(net: ReactionNetwork) -> ReactionNetwork:
    """What libSBML's Level 2 -> 3 conversion and the suite's own Level 3 files legitimately
    differ in, none of which changes a simulation: units (Level 2's built-in substance, volume,
    area and time become unit definitions), the ``constant`` flag of species references that
    no math sets, and ``initialValue`` of event triggers that are false at t0 (Level 2 has no
    such attribute; libSBML writes true, the suite false)."""
    targets = {r.variable for r in (*net.assignment_rules, *net.rate_rules)}
    targets |= {a.variable for e in net.events for a in e.assignments}
    targets |= {a.symbol for a in net.initial_assignments}

    def ref(r: SpeciesRef) -> SpeciesRef:
        return r if r.id in targets else dataclasses.replace(r, constant=True)

    def event(e: Event) -> Event:
        fires_at_t0 = evaluate(e.trigger, {}, time=0.0)  # DSMTS triggers depend on time only
        return e if fires_at_t0 else dataclasses.replace(e, initial_value=True)

    return net.replace(
        units=Units(),
        compartments=[dataclasses.replace(c, units=None) for c in net.compartments],
        species=[dataclasses.replace(s, substance_units=None) for s in net.species],
        reactions=[
            dataclasses.replace(
                r, reactants=[ref(x) for x in r.reactants], products=[ref(x) for x in r.products]
            )
            for r in net.reactions
        ],
        events=[event(e) for e in net.events],
    )


@pytest.mark.parametrize(
    "path", sorted(DATA.glob("dsmts/*/*-sbml-l2v4.xml")), ids=lambda p: p.parent.name
)
def test_dsmts_level2_and_level3_files_give_the_same_network(path):
    l2 = read_sbml(path)
    l3 = read_sbml(path.with_name(path.name.replace("l2v4", "l3v2")))
    assert _without_level2_conversion_artifacts(l2) == _without_level2_conversion_artifacts(l3)


def test_dsmts_level2_units_become_explicit_definitions():
    net = read_sbml(DATA / "dsmts/00001/00001-sbml-l2v4.xml")
    # The L2 file redefines its built-in 'substance' as items; the L3 file says so directly.
    assert dict(net.units.definitions)["substance"] == (("item", 1.0, 0, 1.0),)
    assert net.species_map["X"].substance_units == "substance"
    assert read_sbml(DATA / "dsmts/00001/00001-sbml-l3v2.xml").units.substance == "item"


L2_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level2/version4" level="2" version="4">
 <model id="m">
  <listOfCompartments><compartment id="c" size="2"/></listOfCompartments>
  <listOfSpecies>
   <species id="A" compartment="c" initialAmount="10"/>
   <species id="B" compartment="c" initialConcentration="1"/>
  </listOfSpecies>
  <listOfParameters><parameter id="n" value="3"/></listOfParameters>
  <listOfReactions><reaction id="r" reversible="false">
   <listOfReactants><speciesReference species="A">
    <stoichiometryMath><math xmlns="http://www.w3.org/1998/Math/MathML">
     <apply><times/><ci>n</ci><cn>2</cn></apply></math></stoichiometryMath>
   </speciesReference></listOfReactants>
   <listOfProducts><speciesReference species="B"/></listOfProducts>
   <kineticLaw>
    <math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>k</ci><ci>A</ci></apply>
    </math>
    <listOfParameters><parameter id="k" value="0.5"/></listOfParameters>
   </kineticLaw>
  </reaction></listOfReactions>
 </model>
</sbml>"""


def test_level2_stoichiometry_math_and_kinetic_law_parameters():
    net = read_sbml_string(L2_DOC)
    (r,) = net.reactions
    # Level 2 default stoichiometry is 1; stoichiometryMath sets the reference through a rule.
    assert r.products == (SpeciesRef("B", 1.0, None, True),)
    (a,) = r.reactants
    assert a.species == "A" and a.stoichiometry is None and a.id and not a.constant
    assert net.assignment_rule_map[a.id].math == Call("mul", (Sym("n"), Num(2.0)))
    assert r.local_parameters == (Parameter("k", 0.5),)
    assert r.rate == Call("mul", (Sym("k"), Sym("A")))
    # Level 2 defaults made explicit: 3 dimensions, constant compartment and species flags.
    assert net.compartments[0].spatial_dimensions == 3.0 and net.compartments[0].constant
    assert net.species_map["A"].initial_amount == 10.0
    assert net.species_map["B"].initial_concentration == 1.0
    assert read_sbml_string(write_sbml_string(net)) == net


# =============================================================================================
# Elements without math (SBML test-suite cases tagged NoMathML)
# =============================================================================================
def _case(number: str) -> ReactionNetwork:
    return read_sbml(next((DATA / "sbml-semantic" / number).glob("*.xml")))


def test_event_whose_trigger_has_no_math_is_ignored():
    net = _case("01238")  # "the Event is ignored"; p stays 3
    assert net.events == ()
    assert net.parameter_map["p"].value == 3.0


def test_event_assignment_without_math_is_ignored():
    (ev,) = _case("01243").events  # d = (nothing), p = 5
    assert ev.id == "_E0"
    assert ev.assignments == (EventAssignment("p", Num(5.0)),)
    (ev,) = _case("01600").events  # a delayed event whose only assignment has no math
    assert ev.assignments == () and ev.delay == Num(1.0)


def test_rules_without_math_are_ignored():
    net = _case("01465")  # assignment rule with no math on a species reference
    assert net.assignment_rules == ()
    assert net.reactions[0].products == (SpeciesRef("S1", 2.0, "S1_sr", False),)
    net = _case("01556")  # rate rule with no math on a boundary species
    assert net.rate_rules == ()
    net = _case("01657")  # k0 = S1_stoich * 2 reads the declared stoichiometry
    assert _initial_values(net)["k0"] == 4.0


def test_reaction_without_kinetic_law_or_math_has_no_rate():
    body = (
        SPECIES_A + '<listOfReactions><reaction id="r1" reversible="false"/>'
        '<reaction id="r2" reversible="false"><kineticLaw/></reaction></listOfReactions>'
    )
    net = read_sbml_string(_doc(body))
    assert [r.rate for r in net.reactions] == [None, None]
    assert read_sbml_string(write_sbml_string(net)) == net


def test_kinetic_law_with_local_parameters_but_no_math_round_trips():
    body = (
        SPECIES_A + '<listOfReactions><reaction id="r" reversible="false"><kineticLaw>'
        '<listOfLocalParameters><localParameter id="k" value="2"/></listOfLocalParameters>'
        "</kineticLaw></reaction></listOfReactions>"
    )
    net = read_sbml_string(_doc(body))
    assert net.reactions[0].rate is None
    assert net.reactions[0].local_parameters == (Parameter("k", 2.0),)
    assert read_sbml_string(write_sbml_string(net)) == net


# =============================================================================================
# Species references
# =============================================================================================
def _reaction_doc(ref_attrs: str, extra: str = "") -> str:
    return _doc(
        SPECIES_A + extra + '<listOfReactions><reaction id="r" reversible="false">'
        f'<listOfReactants><speciesReference species="A" {ref_attrs}/></listOfReactants>'
        f"<kineticLaw>{_math('<cn>1</cn>')}</kineticLaw></reaction></listOfReactions>"
    )


def test_unset_stoichiometry_without_a_setter_is_an_error_naming_reaction_and_species():
    with pytest.raises(ModelError) as ei:
        read_sbml_string(_reaction_doc('constant="true"'), source="f.xml")
    msg = str(ei.value)
    assert "f.xml" in msg and "'r'" in msg and "'A'" in msg and "stoichiometry" in msg
    assert ei.value.element == "r"


@pytest.mark.parametrize(
    "setter",
    [
        f'<listOfInitialAssignments><initialAssignment symbol="sr">{_math("<cn>3</cn>")}'
        "</initialAssignment></listOfInitialAssignments>",
        f'<listOfRules><assignmentRule variable="sr">{_math("<cn>3</cn>")}'
        "</assignmentRule></listOfRules>",
        f'<listOfRules><rateRule variable="sr">{_math("<cn>0</cn>")}</rateRule></listOfRules>',
    ],
    ids=["initial-assignment", "assignment-rule", "rate-rule"],
)
def test_unset_stoichiometry_set_by_math_stays_none(setter):
    net = read_sbml_string(_reaction_doc('id="sr" constant="false"', setter))
    assert net.reactions[0].reactants == (SpeciesRef("A", None, "sr", False),)
    assert read_sbml_string(write_sbml_string(net)) == net


def test_unset_stoichiometry_set_by_an_event_stays_none():
    event = (
        '<listOfEvents><event useValuesFromTriggerTime="true">'
        f'<trigger initialValue="true" persistent="true">{_math("<true/>")}</trigger>'
        f'<listOfEventAssignments><eventAssignment variable="sr">{_math("<cn>2</cn>")}'
        "</eventAssignment></listOfEventAssignments></event></listOfEvents>"
    )
    text = _reaction_doc('id="sr" constant="false"').replace("</model>", event + "</model>")
    net = read_sbml_string(text)
    assert net.reactions[0].reactants[0].stoichiometry is None
    assert net.events[0].id == ""  # events without an id are allowed
    assert read_sbml_string(write_sbml_string(net)) == net


def test_negative_stoichiometry_is_kept():
    net = _case("01432")  # 2A + -1B -> -1A + 2B
    (r,) = net.reactions
    assert [(x.species, x.stoichiometry) for x in r.reactants] == [("A", 2.0), ("B", -1.0)]
    assert [(x.species, x.stoichiometry) for x in r.products] == [("A", -1.0), ("B", 2.0)]


# =============================================================================================
# Unsupported constructs and bad input
# =============================================================================================
UNSUPPORTED = {
    "algebraic-rule": (
        '<listOfParameters><parameter id="x" value="1" constant="false"/></listOfParameters>'
        f'<listOfRules><algebraicRule id="alg">{_math("<ci>x</ci>")}</algebraicRule>'
        "</listOfRules>",
        "algebraic rule",
        "alg",
    ),
    "constraint": (
        '<listOfParameters><parameter id="x" value="1" constant="true"/></listOfParameters>'
        f'<listOfConstraints><constraint id="positive">'
        f"{_math('<apply><gt/><ci>x</ci><cn>0</cn></apply>')}</constraint></listOfConstraints>",
        "constraint",
        "positive",
    ),
    "delay-csymbol": (
        '<listOfParameters><parameter id="x" value="1" constant="false"/></listOfParameters>'
        '<listOfRules><assignmentRule variable="x">'
        + _math(
            "<apply><csymbol encoding='text' definitionURL="
            "'http://www.sbml.org/sbml/symbols/delay'>delay</csymbol>"
            "<csymbol encoding='text' definitionURL='http://www.sbml.org/sbml/symbols/time'>"
            "t</csymbol><cn>1</cn></apply>"
        )
        + "</assignmentRule></listOfRules>",
        "delay",
        "x",
    ),
    "semantics": (
        '<listOfParameters><parameter id="x" value="1" constant="true"/></listOfParameters>'
        '<listOfInitialAssignments><initialAssignment symbol="x">'
        + _math("<semantics><cn>2</cn><annotation encoding='text'>two</annotation></semantics>")
        + "</initialAssignment></listOfInitialAssignments>",
        "semantics",
        "x",
    ),
    "lambda-outside-function": (
        '<listOfParameters><parameter id="x" value="1" constant="true"/></listOfParameters>'
        '<listOfInitialAssignments><initialAssignment symbol="x">'
        + _math("<lambda><bvar><ci>y</ci></bvar><ci>y</ci></lambda>")
        + "</initialAssignment></listOfInitialAssignments>",
        "lambda",
        "x",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_construct_raises_naming_construct_and_element(case):
    body, construct, element = UNSUPPORTED[case]
    with pytest.raises(UnsupportedFeatureError) as ei:
        read_sbml_string(_doc(body), source="model.xml")
    msg = str(ei.value)
    assert construct in msg and f"'{element}'" in msg and "model.xml" in msg
    assert ei.value.element == element


def test_fast_reaction_in_level3_version1_is_unsupported():
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">'
        '<model id="m">'
        + SPECIES_A
        + '<listOfReactions><reaction id="fastone" reversible="true" fast="true">'
        '<listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/>'
        "</listOfReactants></reaction></listOfReactions></model></sbml>"
    )
    with pytest.raises(UnsupportedFeatureError, match="fast reaction") as ei:
        read_sbml_string(text)
    assert ei.value.element == "fastone"
    assert read_sbml_string(text.replace('fast="true"', 'fast="false"')).reactions[0].id


def test_fast_reaction_in_level2_is_unsupported():
    text = L2_DOC.replace('reversible="false"', 'reversible="false" fast="true"')
    with pytest.raises(UnsupportedFeatureError, match="fast reaction"):
        read_sbml_string(text)


def test_writing_an_invalid_model_id_is_refused():
    with pytest.raises(ModelError, match="not a valid SBML identifier"):
        write_sbml_string(ReactionNetwork(id="my model"))


def test_writing_a_fast_reaction_is_refused():
    net = ReactionNetwork(
        compartments=[Compartment("c")],
        species=[Species("A", "c", initial_amount=1.0)],
        reactions=[Reaction("r", reactants=[SpeciesRef("A")], fast=True)],
    )
    with pytest.raises(UnsupportedFeatureError, match="'r'"):
        write_sbml_string(net)


COMP_NS = "http://www.sbml.org/sbml/level3/version1/comp/version1"
LAYOUT_NS = "http://www.sbml.org/sbml/level3/version1/layout/version1"


def test_required_package_is_unsupported():
    text = _doc(SPECIES_A, header=f'xmlns:comp="{COMP_NS}" comp:required="true"')
    with pytest.raises(UnsupportedFeatureError, match="package 'comp'"):
        read_sbml_string(text)


def test_package_that_is_not_required_is_accepted():
    text = _doc(SPECIES_A, header=f'xmlns:layout="{LAYOUT_NS}" layout:required="false"')
    assert read_sbml_string(text).species_ids == ["A"]


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nothere.xml"
    with pytest.raises(ModelError, match=r"nothere\.xml"):
        read_sbml(missing)
    with pytest.raises(ModelError, match=re.escape(str(tmp_path))):
        read_sbml(tmp_path)  # a directory


@pytest.mark.parametrize(
    "text, line",
    [
        ('<?xml version="1.0"?>\n<sbml xmlns="x">\n<model>\n</sbml>', 4),
        ("not xml at all", None),  # libSBML puts the end of input on line 2
        (_doc(SPECIES_A).replace("<listOfSpecies>", "<listOfSpecies>\n<species/>"), 4),
    ],
    ids=["unclosed", "not-xml", "schema"],
)
def test_malformed_documents_name_file_and_line(tmp_path, text, line):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(ModelError) as ei:
        read_sbml(path)
    msg = str(ei.value)
    assert str(path) in msg and (f"line {line}:" if line else "line ") in msg


INJECTION = "__import__('os').system('touch {marker}')"


def test_level1_formula_injection_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level1" level="1" version="2"><model name="m">
 <listOfCompartments><compartment name="c" volume="1"/></listOfCompartments>
 <listOfSpecies><species name="A" compartment="c" initialAmount="10"/></listOfSpecies>
 <listOfReactions><reaction name="r" reversible="false">
  <listOfReactants><speciesReference species="A"/></listOfReactants>
  <kineticLaw formula="{INJECTION.format(marker=marker)}"/>
 </reaction></listOfReactions></model></sbml>"""
    path = tmp_path / "l1.xml"
    path.write_text(text)
    with pytest.raises(ModelError) as ei:
        read_sbml(path)
    assert "l1.xml" in str(ei.value) and ei.value.element == "r"
    assert not marker.exists()
    # The same document with a harmless formula is read (so the refusal is about the formula).
    ok = text.replace(INJECTION.format(marker=marker), "2*A")
    assert read_sbml_string(ok).reactions[0].rate == Call("mul", (Num(2.0), Sym("A")))


@pytest.mark.parametrize(
    "math",
    ["<ci>{code}</ci>", "<apply><ci>__import__</ci><ci>os</ci></apply>"],
    ids=["ci", "function-call"],
)
def test_math_injection_is_rejected(tmp_path, math):
    marker = tmp_path / "pwned"
    inner = math.format(code=INJECTION.format(marker=marker).replace("'", "&apos;"))
    body = (
        SPECIES_A + '<listOfReactions><reaction id="r" reversible="false">'
        '<listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/>'
        f"</listOfReactants><kineticLaw>{_math(inner)}</kineticLaw></reaction></listOfReactions>"
    )
    with pytest.raises(ModelError) as ei:
        read_sbml_string(_doc(body), source="evil.xml")
    assert "evil.xml" in str(ei.value) and "'r'" in str(ei.value)
    assert not marker.exists()


# =============================================================================================
# Content: units, notes, names, ids
# =============================================================================================
def test_notes_are_read_as_plain_text():
    net = read_sbml(
        DATA / "petab-benchmark/Boehm_JProteomeRes2014/model_Boehm_JProteomeRes2014.xml"
    )
    assert net.notes == (
        "PEtab implementation of the model from Boehm et al. (2014), "
        "J. Proteome Res., 13, 12, 5685-5694"
    )


def test_notes_paragraphs_and_markup_round_trip():
    notes = (
        '<notes><body xmlns="http://www.w3.org/1999/xhtml"><p>First  line &amp; more</p>'
        "<p>second <b>bold</b>\n  text</p><pre>x &lt; y</pre></body></notes>"
    )
    net = read_sbml_string(_doc(notes + SPECIES_A))
    assert net.notes == "First line & more\nsecond bold text\nx < y"
    assert read_sbml_string(write_sbml_string(net)).notes == net.notes


def test_level3_units_and_unit_definitions():
    units = (
        '<listOfUnitDefinitions><unitDefinition id="per_uM_s"><listOfUnits>'
        '<unit kind="mole" exponent="-1" scale="-6" multiplier="1"/>'
        '<unit kind="litre" exponent="1" scale="0" multiplier="1"/>'
        '<unit kind="second" exponent="-1" scale="0" multiplier="60"/>'
        "</listOfUnits></unitDefinition></listOfUnitDefinitions>"
    )
    attrs = (
        'id="m" substanceUnits="mole" timeUnits="second" volumeUnits="litre" '
        'areaUnits="metre" lengthUnits="metre" extentUnits="mole"'
    )
    net = read_sbml_string(_doc(units + SPECIES_A, model_attrs=attrs))
    assert net.units == Units(
        substance="mole",
        time="second",
        volume="litre",
        area="metre",
        length="metre",
        extent="mole",
        definitions=(
            (
                "per_uM_s",
                (("mole", -1.0, -6, 1.0), ("litre", 1.0, 0, 1.0), ("second", -1.0, 0, 60.0)),
            ),
        ),
    )
    assert read_sbml_string(write_sbml_string(net)) == net


def test_unset_optional_values_stay_unset():
    body = (
        '<listOfCompartments><compartment id="c" constant="true"/></listOfCompartments>'
        '<listOfSpecies><species id="S" compartment="c" hasOnlySubstanceUnits="true" '
        'boundaryCondition="true" constant="true"/></listOfSpecies>'
        '<listOfParameters><parameter id="p" constant="false"/></listOfParameters>'
    )
    net = read_sbml_string(_doc(body))
    assert net.compartments == (Compartment("c", size=None, spatial_dimensions=None),)
    assert net.species == (
        Species("S", "c", None, None, has_only_substance_units=True, boundary_condition=True,
                constant=True),
    )  # fmt: skip
    assert net.parameters == (Parameter("p", None, constant=False),)
    text = write_sbml_string(net)
    assert "size=" not in text and "value=" not in text and "initialAmount" not in text
    assert read_sbml_string(text) == net


def _everything_network() -> ReactionNetwork:
    """A network using every dataclass field, with binary (libSBML-stable) math."""
    x = Sym("x")
    return ReactionNetwork(
        id="every",
        name="Every feature",
        compartments=[
            Compartment("cell", 1.5e-12, 3.0, True, "Cell", "litre"),
            Compartment("membrane", 2.0, 2.0, False, "", None),
        ],
        species=[
            Species("A", "cell", initial_amount=0.1 + 0.2, substance_units="mole", name="A!"),
            Species("B", "cell", initial_concentration=1e-300, has_only_substance_units=True),
            Species("C", "membrane", 3.0, boundary_condition=True, constant=True),
            Species("D", "cell", 1.0, conversion_factor="cf"),
        ],
        parameters=[
            Parameter("k", 1 / 3, True, "rate", "per_second"),
            Parameter("cf", 2.0),
            Parameter("x", None, False),
            Parameter("y", 0.0, False),
        ],
        reactions=[
            Reaction(
                "r1",
                reactants=[SpeciesRef("A", 2.0, "a_ref", False, "ref")],
                products=[SpeciesRef("B", 1.5), SpeciesRef("D", None, "d_ref", False)],
                modifiers=["C"],
                rate=Call("mul", (Sym("kl"), FunCall("f", (Sym("A"), Sym("a_ref"))))),
                local_parameters=[Parameter("kl", 12345.678901234567, units="per_second")],
                reversible=True,
                compartment="cell",
                name="reaction one",
            ),
        ],
        functions=[
            FunctionDefinition("f", ("u", "v"), Call("pow", (Sym("u"), Sym("v"))), "power"),
        ],
        assignment_rules=[AssignmentRule("x", Call("mul", (Num(2.0), Sym("y"))), "rule_x")],
        rate_rules=[RateRule("membrane", Num(-1e-3)), RateRule("y", Call("time"))],
        initial_assignments=[InitialAssignment("d_ref", Num(4.0), "ia1")],
        events=[
            Event(
                "e1",
                Call("gt", (Call("time"), Num(10.0))),
                [EventAssignment("y", Num(0.0)), EventAssignment("a_ref", Num(3.0))],
                delay=Num(0.5),
                priority=x,
                initial_value=False,
                persistent=False,
                use_values_from_trigger_time=False,
                name="the event",
            ),
            Event("", Call("lt", (Sym("y"), Num(-1.0)))),
        ],
        conversion_factor="cf",
        units=Units(
            substance="mole",
            time="second",
            definitions=(("per_second", (("second", -1.0, 0, 1.0),)),),
        ),
        notes="a model\nwith two lines",
    )


def test_a_network_using_every_field_round_trips_exactly_and_validates(tmp_path):
    net = _everything_network()
    text = write_sbml_string(net)
    assert _libsbml_errors(text) == []
    assert read_sbml_string(text) == net
    path = tmp_path / "every.xml"
    write_sbml(net, path)
    assert read_sbml(path) == net
    assert read_sbml(path).source == str(path)


def test_write_sbml_is_atomic_and_replaces_the_file(tmp_path):
    path = tmp_path / "model.xml"
    path.write_text("old content")
    net = _everything_network()
    write_sbml(net, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.xml"]
    assert read_sbml(path) == net


def test_written_numbers_are_exact():
    rng = random.Random(7)
    values = [rng.uniform(0, 10) * 10.0 ** rng.randint(-300, 300) for _ in range(200)]
    values += [0.1 + 0.2, 1 / 3, 2.2250738585072014e-308, 1.7976931348623157e308, 2.0**53 + 2]
    net = ReactionNetwork(
        parameters=[Parameter(f"p{i}", v) for i, v in enumerate(values)],
        initial_assignments=[InitialAssignment("p0", Num(2.0**-1074) * Num(values[1]))],
    )
    assert read_sbml_string(write_sbml_string(net)) == net


def test_subnormal_attribute_values_are_refused_not_rounded():
    # libSBML cannot read a subnormal attribute value back; MathML numbers are fine (above).
    net = ReactionNetwork(parameters=[Parameter("tiny", 5e-324)])
    with pytest.raises(ModelError, match="'tiny'"):
        write_sbml_string(net)


# =============================================================================================
# MathML
# =============================================================================================
A, B, C, X = Sym("a"), Sym("b"), Sym("c"), Sym("x")
TIME = "<csymbol encoding='text' definitionURL='http://www.sbml.org/sbml/symbols/time'>t</csymbol>"
AVOGADRO = (
    "<csymbol encoding='text' definitionURL='http://www.sbml.org/sbml/symbols/avogadro'>"
    "NA</csymbol>"
)
RATE_OF = (
    "<csymbol encoding='text' definitionURL='http://www.sbml.org/sbml/symbols/rateOf'>"
    "rateOf</csymbol>"
)
MATHML_CASES = [
    ("<cn type='integer'> 42 </cn>", Num(42.0)),
    ("<cn> -0.5 </cn>", Num(-0.5)),
    ("<cn>0.30000000000000004</cn>", Num(0.30000000000000004)),
    ("<cn type='e-notation'> 1.5 <sep/> -7 </cn>", Num(1.5e-7)),
    ("<cn type='rational'> 1 <sep/> 4 </cn>", Num(0.25)),
    ("<ci> x </ci>", X),
    (TIME, Call("time")),
    (AVOGADRO, Call("avogadro")),
    (f"<apply>{RATE_OF}<ci>x</ci></apply>", Call("rateOf", (X,))),
    ("<pi/>", Call("pi")),
    ("<exponentiale/>", Call("exponentiale")),
    ("<true/>", Call("true")),
    ("<false/>", Call("false")),
    ("<infinity/>", Call("inf")),
    ("<notanumber/>", Call("nan")),
    ("<apply><plus/><ci>a</ci><ci>b</ci></apply>", Call("add", (A, B))),
    ("<apply><plus/><ci>a</ci></apply>", Call("add", (A,))),
    ("<apply><plus/></apply>", Call("add", ())),
    ("<apply><times/></apply>", Call("mul", ())),
    ("<apply><minus/><ci>a</ci></apply>", Call("neg", (A,))),
    ("<apply><minus/><ci>a</ci><ci>b</ci></apply>", Call("sub", (A, B))),
    ("<apply><divide/><ci>a</ci><ci>b</ci></apply>", Call("div", (A, B))),
    ("<apply><power/><ci>a</ci><cn>2</cn></apply>", Call("pow", (A, Num(2.0)))),
    ("<apply><root/><ci>x</ci></apply>", Call("root", (Num(2.0), X))),
    ("<apply><root/><degree><cn>3</cn></degree><ci>x</ci></apply>", Call("root", (Num(3.0), X))),
    ("<apply><log/><ci>x</ci></apply>", Call("log10", (X,))),
    ("<apply><log/><logbase><cn>10</cn></logbase><ci>x</ci></apply>", Call("log10", (X,))),
    ("<apply><log/><logbase><ci>a</ci></logbase><ci>x</ci></apply>", Call("logb", (A, X))),
    ("<apply><ln/><ci>x</ci></apply>", Call("ln", (X,))),
    (
        "<piecewise><piece><ci>a</ci><apply><lt/><ci>x</ci><cn>0</cn></apply></piece>"
        "<otherwise><ci>b</ci></otherwise></piecewise>",
        Call("piecewise", (A, Call("lt", (X, Num(0.0))), B)),
    ),
    (
        "<piecewise><piece><ci>a</ci><true/></piece></piecewise>",
        Call("piecewise", (A, Call("true"))),
    ),
    ("<piecewise><otherwise><ci>b</ci></otherwise></piecewise>", Call("piecewise", (B,))),
    ("<piecewise/>", Call("nan")),
    (
        "<apply><lt/><ci>a</ci><ci>b</ci><ci>c</ci></apply>",
        Call("and", (Call("lt", (A, B)), Call("lt", (B, C)))),
    ),
    ("<apply><geq/><ci>a</ci></apply>", Call("true")),
    ("<apply><neq/><ci>a</ci><ci>b</ci></apply>", Call("ne", (A, B))),
    ("<apply><and/></apply>", Call("and", ())),
    ("<apply><or/><ci>a</ci></apply>", Call("or", (A,))),
    ("<apply><xor/><ci>a</ci><ci>b</ci><ci>c</ci></apply>", Call("xor", (A, B, C))),
    ("<apply><implies/><ci>a</ci><ci>b</ci></apply>", Call("implies", (A, B))),
    ("<apply><max/><ci>a</ci><ci>b</ci><ci>c</ci></apply>", Call("max", (A, B, C))),
    ("<apply><min/><ci>a</ci></apply>", Call("min", (A,))),
    ("<apply><rem/><ci>a</ci><ci>b</ci></apply>", Call("rem", (A, B))),
    ("<apply><quotient/><ci>a</ci><ci>b</ci></apply>", Call("quotient", (A, B))),
    ("<apply><ci>f</ci><ci>a</ci><cn>1</cn></apply>", FunCall("f", (A, Num(1.0)))),
    ("<apply><ci>g</ci></apply>", FunCall("g", ())),
]
UNARY_MATHML = (
    "exp ln abs floor ceiling factorial not sin cos tan sec csc cot sinh cosh tanh sech csch "
    "coth arcsin arccos arctan arcsec arccsc arccot arcsinh arccosh arctanh arcsech arccsch "
    "arccoth"
).split()
RELATIONAL_MATHML = {"lt": "lt", "leq": "le", "gt": "gt", "geq": "ge", "eq": "eq", "neq": "ne"}


@pytest.mark.parametrize("mathml, expected", MATHML_CASES, ids=[m for m, _ in MATHML_CASES])
def test_mathml_reads_to_the_expected_tree_and_writes_back(mathml, expected):
    e = _read_math(mathml)
    assert e == expected
    assert ast_to_expr(expr_to_ast(e)) == e


@pytest.mark.parametrize("name", UNARY_MATHML)
def test_mathml_unary_functions(name):
    e = _read_math(f"<apply><{name}/><ci>x</ci></apply>")
    assert e == Call(name, (X,))
    assert ast_to_expr(expr_to_ast(e)) == e


@pytest.mark.parametrize("tag", sorted(RELATIONAL_MATHML))
def test_mathml_binary_relationals(tag):
    e = _read_math(f"<apply><{tag}/><ci>a</ci><ci>b</ci></apply>")
    assert e == Call(RELATIONAL_MATHML[tag], (A, B))
    assert ast_to_expr(expr_to_ast(e)) == e


def test_every_whitelisted_operation_is_written_and_read_back():
    seen = set()
    for op, (lo, hi) in OPS.items():
        n = lo if hi is None or lo == hi else hi
        n = max(n, 3) if hi is None else n
        args = tuple(Sym(f"v{i}") for i in range(n))
        e = Call(op, args)
        back = ast_to_expr(expr_to_ast(e))
        if op == "sqrt":
            assert back == Call("root", (Num(2.0), args[0]))
        else:
            assert back == e, op
        seen.add(op)
    assert seen == set(OPS)


@pytest.mark.parametrize(
    "mathml, value",
    [
        ("<apply><lt/><cn>1</cn><cn>2</cn><cn>3</cn></apply>", 1.0),
        ("<apply><lt/><cn>1</cn><cn>3</cn><cn>2</cn></apply>", 0.0),  # 1<3 but not 3<2
        ("<apply><eq/><cn>2</cn><cn>2</cn><cn>2.5</cn></apply>", 0.0),
        ("<apply><plus/></apply>", 0.0),
        ("<apply><times/></apply>", 1.0),
        ("<apply><and/></apply>", 1.0),
        ("<apply><or/></apply>", 0.0),
        ("<apply><xor/></apply>", 0.0),
        ("<apply><root/><degree><cn>3</cn></degree><cn>27</cn></apply>", 3.0),
        ("<apply><root/><cn>16</cn></apply>", 4.0),
        ("<apply><log/><cn>1000</cn></apply>", 3.0),
        ("<apply><log/><logbase><cn>2</cn></logbase><cn>1024</cn></apply>", 10.0),
        ("<apply><minus/><cn>7</cn></apply>", -7.0),
        ("<cn type='e-notation'>2.5<sep/>3</cn>", 2500.0),
        ("<cn type='rational'>-3<sep/>8</cn>", -0.375),
        ("<apply><quotient/><cn>7</cn><cn>2</cn></apply>", 3.0),
        ("<apply><rem/><cn>-7</cn><cn>2</cn></apply>", -1.0),
        ("<apply><implies/><false/><cn>0</cn></apply>", 1.0),
        ("<apply><factorial/><cn>5</cn></apply>", 120.0),
        ("<piecewise><piece><cn>1</cn><false/></piece></piecewise>", math.nan),
    ],
)
def test_mathml_evaluates_as_the_specification_says(mathml, value):
    got = evaluate(_read_math(mathml), {})
    assert got == pytest.approx(value, nan_ok=True)


def test_mathml_numbers_are_exact():
    rng = random.Random(3)
    for _ in range(300):
        v = rng.uniform(-10, 10) * 10.0 ** rng.randint(-300, 300)
        assert ast_to_expr(expr_to_ast(Num(v))) == Num(v)
    assert ast_to_expr(expr_to_ast(Num(2.0**31))) == Num(2.0**31)
    assert ast_to_expr(expr_to_ast(Num(-(2.0**31) + 1))) == Num(-(2.0**31) + 1)


def test_non_finite_numbers_are_written_as_mathml_constants():
    assert "<infinity />" in expr_to_mathml(Num(math.inf))
    assert ast_to_expr(expr_to_ast(Num(math.inf))) == Call("inf")
    assert ast_to_expr(expr_to_ast(Num(-math.inf))) == Call("neg", (Call("inf"),))
    assert ast_to_expr(expr_to_ast(Num(math.nan))) == Call("nan")


def test_nested_sums_and_products_read_as_one_nary_node():
    a_b_c = "<ci>a</ci><ci>b</ci><ci>c</ci>"
    assert _read_math(f"<apply><plus/>{a_b_c}</apply>") == Call("add", (A, B, C))
    nested = "<apply><times/><apply><times/><ci>a</ci><ci>b</ci></apply><ci>c</ci></apply>"
    assert _read_math(nested) == Call("mul", (A, B, C))
    # Right-nested and mixed operations keep their structure.
    right = "<apply><plus/><ci>a</ci><apply><plus/><ci>b</ci><ci>c</ci></apply></apply>"
    assert _read_math(right) == Call("add", (A, Call("add", (B, C))))


def test_a_sum_of_thousands_of_terms_is_read_without_deep_recursion():
    n = 5000
    terms = "".join(f"<ci>p{i}</ci>" for i in range(n))
    e = _read_math(f"<apply><plus/>{terms}</apply>")
    assert isinstance(e, Call) and len(e.args) == n
    assert evaluate(e, {f"p{i}": float(i) for i in range(n)}) == n * (n - 1) / 2
    assert ast_to_expr(expr_to_ast(e)) == e


def test_parsed_infix_survives_mathml():
    for text in [
        "piecewise(k*x, x < 2 && y >= 1, -x^2)",
        "log(2, x) + root(3, x) - exp(-x)/max(x, y, 1)",
        "f(x, time) * avogadro",
        "not(x > 1) || xor(x, y)",
    ]:
        e = parse_expr(text)
        assert ast_to_expr(expr_to_ast(e)) == e, text


def test_function_definition_lambda():
    node = libsbml.readMathMLFromString(
        _math(
            "<lambda><bvar><ci>x</ci></bvar><bvar><ci>y</ci></bvar>"
            "<apply><times/><ci>x</ci><ci>y</ci></apply></lambda>"
        )
    )
    args, body = ast_to_lambda(node, element="f")
    assert args == ("x", "y") and body == Call("mul", (X, Sym("y")))
    args, body = ast_to_lambda(expr_to_ast(body, args=args))
    assert args == ("x", "y") and body == Call("mul", (X, Sym("y")))
    with pytest.raises(ModelError, match="lambda"):
        ast_to_lambda(libsbml.readMathMLFromString(_math("<ci>x</ci>")), element="f")


@pytest.mark.parametrize(
    "mathml, error",
    [
        ("<apply><max/></apply>", ModelError),
        ("<apply><divide/><ci>a</ci></apply>", ModelError),
        (f"<apply>{RATE_OF}<cn>1</cn></apply>", ModelError),
        ("<lambda><bvar><ci>y</ci></bvar><ci>y</ci></lambda>", UnsupportedFeatureError),
    ],
    ids=["max-no-args", "divide-one-arg", "rateOf-number", "lambda"],
)
def test_bad_or_unsupported_mathml_names_the_element(mathml, error):
    node = libsbml.readMathMLFromString(_math(mathml))
    with pytest.raises(error) as ei:
        ast_to_expr(node, element="J7", source="m.xml")
    assert "'J7'" in str(ei.value) and "m.xml" in str(ei.value)
